/* room.h - rooms: membership, presence, sequencing, history and fan-out.
 *
 * A room is an actor owned by one worker (hash of its name). Publishing posts
 * MAIL_PUBLISH to the owner, which alone assigns the room's next `seq`,
 * encodes the frame once (splicing seq/ts into a JSON object when asked),
 * appends it to the history ring, and posts ONE MAIL_DELIVER per worker that
 * has members; each worker fans the frame out to its local members by
 * reference. Every member therefore sees the room's messages in seq order.
 *
 *   conn on w1 --publish--> owner w0 [seq=42, history, encode once]
 *                               |--deliver(ref)--> w0 local members
 *                               `--deliver(ref)--> w1 local members
 *
 * Membership, presence and the room's KV are kept in the room under a short
 * mutex, updated synchronously by join/leave from any worker: a client that
 * got "joined" receives every message published after it, and presence or
 * count right after a join includes the joiner. (Departure from DESIGN.md,
 * which routes joins through the mailbox too: synchronous reads from Lua
 * need them, and joins are rare next to publishes.)
 *
 * Local membership (which of MY connections are in room R) lives in the
 * worker (struct local_room) and in the connection (c->rooms).
 * Thread: the functions taking a conn run on that conn's worker; the read
 * functions taking a server run on any worker.
 */
#ifndef RC_APP_ROOM_H
#define RC_APP_ROOM_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct worker;
struct server;
struct mail;

#define ROOM_NAME_MAX 256
#define ROOM_PUB_BINARY 0x1u
#define ROOM_PUB_STAMP 0x2u /* payload is a JSON object: splice ,"seq":N,"ts":MS before its '}' */

/* Creates the room registries (one per worker). Main thread, before start. */
void rooms_init(struct server *s);
void rooms_destroy(struct server *s);

/* Joins c to room `name`. Returns 0, RC_E_EXISTS (already a member),
 * RC_E_INVAL (empty or too long name), RC_E_CLOSED (c not open),
 * RC_E_LIMIT (too many rooms for this connection). */
int room_join(struct conn *c, const char *name, size_t len);
/* Records c->user (just changed) in every room c is in, for presence. */
void room_update_user(struct conn *c);
/* Returns 0 or RC_E_NOT_FOUND (not a member). */
int room_leave(struct conn *c, const char *name, size_t len);
/* Leaves every room (connection teardown). */
void room_leave_all(struct conn *c);
int room_is_member(const struct conn *c, const char *name, size_t len);

/* Publishes payload to the room (any worker; the room is created if needed).
 * flags: ROOM_PUB_BINARY, ROOM_PUB_STAMP. exclude: a conn id that does not
 * receive it (0 = none). Returns 0, RC_E_INVAL (name), RC_E_NOMEM. */
int room_publish(struct worker *w, const char *name, size_t len, const void *payload, size_t plen,
                 unsigned flags, uint64_t exclude);

/* Reads (any worker). Return -1/RC_E_NOT_FOUND when the room does not exist. */
long room_count(struct server *s, const char *name, size_t len);
/* Calls cb for each member conn id. Returns the count or RC_E_NOT_FOUND. */
long room_members(struct server *s, const char *name, size_t len,
                  void (*cb)(void *ud, uint64_t conn_id), void *ud);
/* Calls cb once per distinct user id among members with a user. */
long room_presence(struct server *s, const char *name, size_t len,
                   void (*cb)(void *ud, const char *user, size_t ulen), void *ud);
/* Calls cb for history entries with seq > since, oldest first, at most
 * limit (the newest `limit` of them). payload is the stored (stamped) text. */
long room_history(struct server *s, const char *name, size_t len, uint64_t since, size_t limit,
                  void (*cb)(void *ud, uint64_t seq, const char *payload, size_t plen), void *ud);
/* The room's last assigned seq (0 if none or no room). */
uint64_t room_last_seq(struct server *s, const char *name, size_t len);

/* room.data: get copies the value into a malloc'd buffer the caller frees
 * with rc_free (NULL if absent); set with val NULL deletes.
 * Returns 0, RC_E_LIMIT, RC_E_NOT_FOUND (get: absent). */
int room_kv_get(struct server *s, const char *name, size_t len, const char *key, size_t klen,
                char **val, size_t *vlen);
int room_kv_set(struct server *s, const char *name, size_t len, const char *key, size_t klen,
                const char *val, size_t vlen);

/* Sets the room's slow-consumer policy (enum slow_policy in config.h) for
 * its future deliveries. Returns 0 or RC_E_INVAL. Any worker. */
int room_set_policy(struct server *s, const char *name, size_t len, int policy);

/* Mailbox handlers (mailbox.c dispatches to these on the receiving worker). */
void room_handle_publish(struct worker *w, struct mail *m);
void room_handle_deliver(struct worker *w, struct mail *m);

/* Rooms owned by this worker (for stats). */
long room_owned_count(struct worker *w);

#endif
