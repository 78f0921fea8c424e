/* users.h - the user index: user id -> connections, across all workers,
 * for direct messages. A mutex-protected map (lookups are per direct
 * message, updates per auth/close: both rare next to room traffic).
 *
 * It follows the conns' users (conn_user) through a user hook registered with each worker's
 * connection set (conn_set_user, and the release of a connection with a
 * user), and reaches other workers' connections through their mailboxes
 * (MAIL_SEND_CONN). Thread: any worker, unless said otherwise.
 */
#ifndef RC_APP_USERS_H
#define RC_APP_USERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "config.h"
#include "conn.h"
#include "mailbox.h"
#include "strmap.h"

#define USERS_NAME_MAX CONN_USER_MAX

struct users {
    pthread_mutex_t lock;
    struct strmap by_user; /* user id -> struct user_conns *, under lock */
    struct strmap user_of; /* conn id (8 bytes) -> char * user (owned), under lock */
    int nworkers;
    struct bus *bus;                    /* borrowed, may be NULL: told of user_interest */
    struct connset *cs[RC_MAX_WORKERS]; /* borrowed */
    struct mailbox *mb[RC_MAX_WORKERS]; /* borrowed */
};

/* Main thread, before the workers start: the index, then each worker's part.
 * bus (may be NULL) hears user_interest when a user's first connection on
 * this node appears and its last one goes. */
void users_init(struct users *u, int nworkers, struct bus *bus);
void users_attach(struct users *u, int worker, struct connset *cs, struct mailbox *mb);
void users_destroy(struct users *u);

/* Sends payload as one frame to every connection of `user` (on any worker),
 * from worker `from`'s thread (-1: another thread: every frame goes by mail). Returns the number of
 * connections it was queued for (>= 0). */
long users_send(struct users *u, int from, const char *user, size_t ulen, const void *payload,
                size_t plen, int binary);

/* Closes every connection of `user` on this node (on any worker, by mail
 * from worker `from`, -1: another thread) with close code `code` and
 * reason[0..rlen) (at most 123 bytes). Returns how many were asked to close. */
long users_close(struct users *u, int from, const char *user, size_t ulen, unsigned code,
                 const char *reason, size_t rlen);

/* Copies the user of connection `id` (on any worker) into buf (cap bytes,
 * NUL-terminated) and returns its length, or 0 when it has none or is gone. */
size_t users_name_of(struct users *u, uint64_t id, char *buf, size_t cap);

/* Copies up to cap connection ids of `user` on this node into ids; returns
 * how many the user has (may exceed cap). Any thread, the admin's too. */
long users_conn_ids(struct users *u, const char *user, size_t ulen, uint64_t *ids, size_t cap);

#endif
