/* host.h - how the store and the bus reach the workers: the callbacks of
 * struct bus_host (ext/bus.h, which embeds struct store_host), backed by
 * the workers' mailboxes, the room registry and the user index.
 *
 *   ext (store, bus) --post(worker, fn, arg)----> mail_call on that worker's mailbox
 *                    --owner_of(room)-----------> rooms_owner_of
 *                    --deliver / deliver_frame--> room_deliver[_frame] (owner worker)
 *                    --deliver_user-------------> users_send
 *                    --epoch_changed------------> room_set_epoch
 *                    --room_head----------------> room_note_seq
 *
 * Filled by the server before the workers start; read-only afterwards.
 */
#ifndef RC_APP_HOST_H
#define RC_APP_HOST_H

#include "bus.h"
#include "config.h"
#include "mailbox.h"
#include "room.h"
#include "users.h"

struct host {
    struct rooms *rooms; /* borrowed */
    struct users *users; /* borrowed */
    int nworkers;
    struct mailbox *mb[RC_MAX_WORKERS]; /* borrowed */
};

/* Main thread: the host of a server with n workers. */
void host_init(struct host *h, struct rooms *rooms, struct users *users, int n);
void host_attach(struct host *h, int worker, struct mailbox *mb);
/* The bus host (its base is the store host), with ctx = h. */
struct bus_host host_bus(struct host *h);

#endif
