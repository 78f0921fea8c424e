/* users.h - the user index: user id -> connections, across all workers,
 * for direct messages. A mutex-protected map (lookups are per direct
 * message, updates per auth/close: both rare next to room traffic).
 * Thread: any worker. */
#ifndef RC_APP_USERS_H
#define RC_APP_USERS_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct server;
struct worker;

void users_init(struct server *s);
void users_destroy(struct server *s);

/* Sets (or clears, user NULL) c->user and updates the index. Returns 0 or
 * RC_E_INVAL (empty or longer than 256 bytes). Runs on c's worker. */
int conn_set_user(struct conn *c, const char *user, size_t len);

/* Sends payload as one frame to every connection of `user` (on any worker).
 * Returns the number of connections it was queued for (>= 0). */
long users_send(struct worker *w, const char *user, size_t ulen, const void *payload, size_t plen,
                int binary);

#define USERS_NAME_MAX 256

/* Copies the user of connection `id` (on any worker) into buf (cap bytes,
 * NUL-terminated) and returns its length, or 0 when it has none or is gone. */
size_t users_name_of(struct server *s, uint64_t id, char *buf, size_t cap);

/* Number of connections of a user. */
long users_count(struct server *s, const char *user, size_t ulen);

#endif
