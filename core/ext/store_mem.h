/* store_mem.h - the memory store (store.h): per room, a ring of the last
 * `history_size` messages, each kept as a reference to the frame members
 * were sent (no copy), plus the room's last seq and epoch. Lost on restart
 * (every start gives each room a new epoch).
 *
 * Threads: append/room_open/room_close on the room's owner worker, read on
 * any worker (answered later through host->post). A mutex over the room map
 * and one per room (held for an append or for collecting a read's refs).
 */
#ifndef RC_EXT_STORE_MEM_H
#define RC_EXT_STORE_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A memory store keeping `history_size` messages per room (0: none, only
 * the last seq). host is copied. Main thread. */
struct store *store_mem_new(const struct store_host *host, size_t history_size);

#endif
