/* bus_local.h - the one-node bus (bus.h): worker mailboxes.
 *
 *   publish (worker A) --host.post--> owner worker B: seq = last + 1
 *       --> msgframe_encode (stamp, encode once) --> store.append(msg, frame)
 *       --> host.deliver_frame (B: one MAIL_DELIVER per worker with members)
 *       --> ack(seq) posted back to A
 *
 * The per-room seq lives in a map per owner worker, touched only on that
 * worker's thread (no lock); a room's seq starts from store.room_open's
 * last_seq. Per sender, publishes reach the owner in order (mailboxes are
 * FIFO per sender), and the owner posts deliveries in seq order.
 */
#ifndef RC_EXT_BUS_LOCAL_H
#define RC_EXT_BUS_LOCAL_H

#include "bus.h"

/* host is copied; store is borrowed (it outlives the bus). Main thread. */
struct bus *bus_local_new(const struct bus_host *host, struct store *store);

#endif
