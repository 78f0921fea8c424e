/* lapi.h - the C functions Lua calls through the FFI (lua/roomcast/ffi.lua
 * declares each one; lua/roomcast/init.lua wraps them in the `roomcast`
 * module of lua/API.md).
 *
 * Rules (STYLE §3.3 item 8, §3.5 rule 9):
 *   - plain C signatures; the result is an int status (0 or a negative
 *     RC_* code) or a count, and values come back through out-params;
 *   - they never raise and never call back into Lua (an FFI call must not
 *     re-enter the VM), so whatever they trigger that reaches a handler is
 *     deferred by lhandler.c;
 *   - connections and rooms are named by id / name and looked up on every
 *     call: Lua holds no C pointers, C frees nothing Lua holds. A stale
 *     connection id gives RC_E_CLOSED.
 *   - they run on a worker thread (worker_current()); without one (unit
 *     tests) the connection and room calls give RC_E_CLOSED.
 * Connection ids of another worker: send and close are posted to that
 * worker's mailbox (MAIL_SEND_CONN / MAIL_CLOSE_CONN) and return 0 at once;
 * every other per-connection call gives RC_E_DENIED ("remote").
 * Borrowed out-pointers (user, conn kv values) are valid until the next call
 * into the same connection; Lua copies them at once with ffi.string.
 */
#ifndef RC_LUA_LAPI_H
#define RC_LUA_LAPI_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#define RC_FFI_EXPORT __attribute__((used, visibility("default")))

#include "jwt.h"

/* -- connections ---------------------------------------------------------- */
/* Queues one text (binary = 0) or binary frame. 0, RC_E_CLOSED, RC_E_LIMIT
 * (send queue full: dropped), RC_E_NOMEM. */
int rc_ffi_send(uint64_t id, const char *data, size_t len, int binary);
/* One frame of a .. b .. c (conn:send with parts; b may be a history blob). */
int rc_ffi_send3(uint64_t id, const char *a, size_t alen, const char *b, size_t blen, const char *c,
                 size_t clen, int binary);
/* One text frame of a .. blob .. c, blob a room:history{json = true} buffer
 * (the userdata): the first plain send to a local connection frames the
 * buffer in place and queues it without a copy; otherwise as rc_ffi_send3. */
int rc_ffi_send_blob(uint64_t id, const char *a, size_t alen, void *blob, const char *c,
                     size_t clen);
/* The JSON bytes of such a buffer (its length is the Lua side's). */
const char *rc_ffi_blob_data(const void *blob);
/* json:free(): releases the blob's buffer now (the blob is not used again). */
void rc_ffi_blob_free(void *blob);
/* Starts the closing handshake later, from the mailbox (never inside the
 * calling handler). code 0 means 1000. 0 or RC_E_CLOSED. */
int rc_ffi_close(uint64_t id, int code, const char *reason, size_t len);
/* Joins / leaves in C (the Lua chains run in init.lua around these).
 * 0, RC_E_EXISTS, RC_E_NOT_FOUND (leave: not a member), RC_E_INVAL,
 * RC_E_LIMIT, RC_E_CLOSED, RC_E_DENIED. */
int rc_ffi_join(uint64_t id, const char *room, size_t len);
/* conn:join(name, {hold = true}), conn:hold_intact(name), conn:release(name,
 * after): room_join_ex with ROOM_JOIN_HOLD, room_hold_state, room_release
 * (room.h). after: a seq, 0 .. 2^53 (else RC_E_INVAL). A held join also
 * registers an end action with the calling handler (lcall_at_end): when
 * that call ends with the member still waiting, room_hold_end ends the
 * wait (released after 0, or the connection closed 1011), logged and
 * counted (lua/API.md "Held joins"). Every local send sets c->sent_mark. */
int rc_ffi_join_held(uint64_t id, const char *room, size_t len);
int rc_ffi_hold_state(uint64_t id, const char *room, size_t len);
double rc_ffi_release(uint64_t id, const char *room, size_t len, double after);
/* Ends now the held joins the calling handler left waiting, as its end
 * would (lua/API.md "Held joins"; boot.lua before the chain answers). */
void rc_ffi_end_holds(int raised);
int rc_ffi_leave(uint64_t id, const char *room, size_t len);
/* 1 member, 0 not, or a negative code. */
int rc_ffi_in_room(uint64_t id, const char *room, size_t len);
/* Writes the names of c's rooms into buf, each followed by a NUL byte;
 * *used = bytes needed. Returns the count, or RC_E_LIMIT when cap < *used
 * (call again with a bigger buffer), or a negative code. */
int rc_ffi_conn_rooms(uint64_t id, char *buf, size_t cap, size_t *used);
/* user NULL clears. 0, RC_E_INVAL, RC_E_CLOSED. */
int rc_ffi_set_user(uint64_t id, const char *user, size_t len);
/* *user = borrowed conn_user(c) or NULL. 0 or RC_E_CLOSED. */
int rc_ffi_get_user(uint64_t id, const char **user, size_t *len);
/* "ip:port" into buf (NUL-terminated). Returns its length or RC_E_CLOSED. */
int rc_ffi_peer(uint64_t id, char *buf, size_t cap);
/* conn.data: *val borrowed, NULL when absent (returns 0 either way). */
int rc_ffi_conn_get(uint64_t id, const char *key, size_t klen, const char **val, size_t *vlen);
/* val NULL deletes. 0, RC_E_LIMIT, RC_E_CLOSED. */
int rc_ffi_conn_set(uint64_t id, const char *key, size_t klen, const char *val, size_t vlen);

/* -- rooms ---------------------------------------------------------------- */
/* flags: ROOM_PUB_BINARY | ROOM_PUB_STAMP (room.h). Queues the publish for
 * the room's owner, which assigns the seq later (rc_ffi_publish_wait waits
 * for it). 0, RC_E_INVAL, RC_E_NOMEM, RC_E_CLOSED (no worker). */
int rc_ffi_publish(const char *room, size_t len, const char *data, size_t dlen, unsigned flags,
                   uint64_t exclude);
/* Members (connections); 0 when the room does not exist. */
long rc_ffi_room_count(const char *room, size_t len);
/* Fills up to cap ids; returns the total (may exceed cap: call again). */
long rc_ffi_room_members(const char *room, size_t len, uint64_t *ids, size_t cap);
/* Distinct user ids, each followed by NUL, into buf; *used = bytes needed.
 * Returns the count or RC_E_LIMIT when cap < *used. */
long rc_ffi_room_presence(const char *room, size_t len, char *buf, size_t cap, size_t *used);
/* room:presence in cluster mode (the bus has a presence op): asks the bus
 * for the cluster's users of the room; the ticket's answer is an array of
 * user ids, or (nil, "unavailable"). RC_E_NOT_FOUND: no cluster presence
 * (use rc_ffi_room_presence); 0: the handler cannot wait. */
double rc_ffi_room_presence_wait(const char *room, size_t len);
/* room:presence_count in cluster mode (the bus has a presence_count op):
 * the room's connections on every node, without a member crossing the wire;
 * the ticket's answer is the count or (nil, "unavailable"). RC_E_NOT_FOUND:
 * no cluster (use rc_ffi_room_count); 0: the handler cannot wait. */
double rc_ffi_room_count_wait(const char *room, size_t len);
/* room:publish(payload, {wait = true}): publishes and returns the ticket
 * whose answer is the seq the room gave it, or (nil, "unavailable") when the
 * store or bus refused it. 0: the handler cannot wait; RC_E_INVAL,
 * RC_E_CLOSED, or the bus's error at once (nothing to yield). */
double rc_ffi_publish_wait(const char *room, size_t len, const char *data, size_t dlen,
                           unsigned flags, uint64_t exclude);

/* room:history / room:last_seq: starts a store read (store.h) of `room`
 * (since, before: 0 = no bound; limit 1..STORE_READ_MAX; mode: RC_READ_NEWEST
 * keeps the newest `limit`; RC_READ_JSON answers one buffer (a userdata),
 * the JSON array of the text entries that are JSON objects, built here in C
 * instead of a table of up to STORE_READ_MAX entries) whose answer resumes the calling
 * handler. Returns the
 * ticket to yield (> 0), 0 when the handler cannot wait, or RC_E_INVAL,
 * RC_E_CLOSED (no worker or store), or the store's error (nothing to yield).
 * The handler waits at most lua_wait_timeout (lapi_wait_ms). */
double rc_ffi_room_read(const char *room, size_t len, double since, double before, double limit,
                        unsigned mode);
#define RC_READ_NEWEST 1u
#define RC_READ_JSON 2u
/* How long a handler waits on the store or the bus: lua_wait_timeout (ms). */
uint32_t lapi_wait_ms(void);
/* Sets the room's slow-consumer policy (0 drop, 1 close, 2 latest). 0 or RC_E_INVAL. */
int rc_ffi_room_set_policy(const char *room, size_t len, int policy);
/* room.data: *val is malloc'd (free it with rc_ffi_free), NULL when absent. */
int rc_ffi_room_get(const char *room, size_t len, const char *key, size_t klen, char **val,
                    size_t *vlen);
int rc_ffi_room_set(const char *room, size_t len, const char *key, size_t klen, const char *val,
                    size_t vlen);
void rc_ffi_free(void *p);

/* -- misc ----------------------------------------------------------------- */
/* Frames queued for every connection of user (any worker); >= 0 or a code. */
long rc_ffi_send_to_user(const char *user, size_t ulen, const char *data, size_t dlen, int binary);
/* rc.send_to_user in cluster mode: hands the message to the bus; the
 * ticket's answer is how many nodes the bus gave it to ("delivered" means
 * accepted by the bus: 0 when no node has the user), or (nil,
 * "unavailable"). RC_E_NOT_FOUND: one node (use rc_ffi_send_to_user); 0: the
 * handler cannot wait; RC_E_DENIED: the bus is down. */
double rc_ffi_send_to_user_wait(const char *user, size_t ulen, const char *data, size_t dlen,
                                int binary);
/* level: enum rc_log_level. */
void rc_ffi_log(int level, const char *msg, size_t len);
/* Milliseconds since the epoch (the worker loop's cached time). */
double rc_ffi_now(void);

/* -- JWT (proto/jwt.h; wrapped by lua/roomcast/jwt.lua) ---------------------
 * A key set is owned by the Lua state that made it (ffi.gc calls
 * rc_ffi_jwt_keyset_free when it is collected); it is never shared with C
 * code or another state. Results are 0 or -(enum jwt_reason) unless said. */
/* kind 0: the name of reason i (jwt_reason_name); kind 1: of algorithm i
 * (jwt_alg_name). NULL past the end. Static strings. */
const char *rc_ffi_jwt_name(int kind, int i);
struct jwt_keyset *rc_ffi_jwt_keyset_new(uint32_t allowed);
void rc_ffi_jwt_keyset_free(struct jwt_keyset *ks);
/* jwt_keyset_add_secret / _add_pem / _add_jwk: 0, 1 (JWK skipped), or a
 * negative RC_E_* with the reason in err (NUL-terminated, errcap bytes). */
int rc_ffi_jwt_add_secret(struct jwt_keyset *ks, const char *kid, size_t kidlen, const char *secret,
                          size_t len, char *err, size_t errcap);
int rc_ffi_jwt_add_pem(struct jwt_keyset *ks, const char *kid, size_t kidlen, const char *pem,
                       size_t len, char *err, size_t errcap);
int rc_ffi_jwt_add_jwk(struct jwt_keyset *ks, const struct jwt_jwk *jwk, char *err, size_t errcap);
/* jwt_decode_header. */
int rc_ffi_jwt_header(const char *token, size_t tlen, char *out, size_t cap, size_t *hlen);
/* jwt_verify; kid NULL: the token has none. */
int rc_ffi_jwt_verify(const struct jwt_keyset *ks, int alg, const char *kid, size_t kidlen,
                      const char *token, size_t tlen, char *out, size_t cap, size_t *plen);
/* Counts one refused token for reason r (1..JWT_NREASONS-1) in the calling
 * worker's stats (roomcast_jwt_refusals_by_reason_total); no-op without a
 * worker or for an r out of range. */
void rc_ffi_jwt_refused(int r);

/* Every rc_ffi_* function, so that the linker keeps lapi.o and its symbols
 * in any binary that uses the Lua bridge (ffi.C looks them up by name). */
extern void *const rc_ffi_symbols[];
extern const char *const rc_ffi_names[];

/* -- asynchronous calls (lhandler.h) -------------------------------------- */
/* How the handler layer (lhandler.c, above this module) completes waits:
 * set once before the workers start. */
struct worker;
struct lapi_async {
    uint64_t (*sleep)(struct worker *w, double ms);
    int (*complete)(struct worker *w, uint64_t ticket, int (*push)(lua_State *co, void *ud),
                    void *ud);
};
void lapi_set_async(const struct lapi_async *ops);

/* rc.sleep: a ticket (as a number) the caller yields at once
 * (coroutine.yield(t)), or 0 when the running handler cannot wait. */
double rc_ffi_sleep(double ms);

#endif
