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

#include <stddef.h>
#include <stdint.h>

#define RC_FFI_EXPORT __attribute__((used, visibility("default")))

/* JWT verification results (rc_ffi_jwt_verify): proto/jwt.h's codes. */
#include "jwt.h"
enum {
    RC_JWT_OK = (int)JWT_OK,
    RC_JWT_MALFORMED = (int)JWT_MALFORMED,
    RC_JWT_BAD_ALG = (int)JWT_BAD_ALG,
    RC_JWT_BAD_SIGNATURE = (int)JWT_BAD_SIGNATURE,
    RC_JWT_TOO_BIG = (int)JWT_TOO_BIG,
};

/* -- connections ---------------------------------------------------------- */
/* Queues one text (binary = 0) or binary frame. 0, RC_E_CLOSED, RC_E_LIMIT
 * (send queue full: dropped), RC_E_NOMEM. */
int rc_ffi_send(uint64_t id, const char *data, size_t len, int binary);
/* Starts the closing handshake later, from the mailbox (never inside the
 * calling handler). code 0 means 1000. 0 or RC_E_CLOSED. */
int rc_ffi_close(uint64_t id, int code, const char *reason, size_t len);
/* Joins / leaves in C (the Lua chains run in init.lua around these).
 * 0, RC_E_EXISTS, RC_E_NOT_FOUND (leave: not a member), RC_E_INVAL,
 * RC_E_LIMIT, RC_E_CLOSED, RC_E_DENIED. */
int rc_ffi_join(uint64_t id, const char *room, size_t len);
int rc_ffi_leave(uint64_t id, const char *room, size_t len);
/* 1 member, 0 not, or a negative code. */
int rc_ffi_in_room(uint64_t id, const char *room, size_t len);
/* Writes the names of c's rooms into buf, each followed by a NUL byte;
 * *used = bytes needed. Returns the count, or RC_E_LIMIT when cap < *used
 * (call again with a bigger buffer), or a negative code. */
int rc_ffi_conn_rooms(uint64_t id, char *buf, size_t cap, size_t *used);
/* user NULL clears. 0, RC_E_INVAL, RC_E_CLOSED. */
int rc_ffi_set_user(uint64_t id, const char *user, size_t len);
/* *user = borrowed c->user or NULL. 0 or RC_E_CLOSED. */
int rc_ffi_get_user(uint64_t id, const char **user, size_t *len);
/* "ip:port" into buf (NUL-terminated). Returns its length or RC_E_CLOSED. */
int rc_ffi_peer(uint64_t id, char *buf, size_t cap);
/* conn.data: *val borrowed, NULL when absent (returns 0 either way). */
int rc_ffi_conn_get(uint64_t id, const char *key, size_t klen, const char **val, size_t *vlen);
/* val NULL deletes. 0, RC_E_LIMIT, RC_E_CLOSED. */
int rc_ffi_conn_set(uint64_t id, const char *key, size_t klen, const char *val, size_t vlen);

/* -- rooms ---------------------------------------------------------------- */
/* flags: ROOM_PUB_BINARY | ROOM_PUB_STAMP (room.h). *seq = the seq when the
 * room layer knows it synchronously, else 0. 0, RC_E_INVAL, RC_E_NOMEM,
 * RC_E_CLOSED (no worker). */
int rc_ffi_publish(const char *room, size_t len, const char *data, size_t dlen, unsigned flags,
                   uint64_t exclude, uint64_t *seq);
/* Members (connections); 0 when the room does not exist. */
long rc_ffi_room_count(const char *room, size_t len);
/* Fills up to cap ids; returns the total (may exceed cap: call again). */
long rc_ffi_room_members(const char *room, size_t len, uint64_t *ids, size_t cap);
/* Distinct user ids, each followed by NUL, into buf; *used = bytes needed.
 * Returns the count or RC_E_LIMIT when cap < *used. */
long rc_ffi_room_presence(const char *room, size_t len, char *buf, size_t cap, size_t *used);
/* History entries with seq > since, oldest first, at most limit, packed as
 * [uint64 seq][uint32 len][len bytes] (native endian, unaligned) into buf;
 * *used = bytes needed. Returns the count or RC_E_LIMIT when cap < *used. */
long rc_ffi_room_history(const char *room, size_t len, uint64_t since, size_t limit, char *buf,
                         size_t cap, size_t *used);
int rc_ffi_room_last_seq(const char *room, size_t len, uint64_t *seq);
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
/* level: enum rc_log_level. */
void rc_ffi_log(int level, const char *msg, size_t len);
/* Milliseconds since the epoch (the worker loop's cached time). */
double rc_ffi_now(void);
/* HS256 (RFC 7519 §7.2, RFC 7515 §5.2): verifies the signature over
 * "header.payload" in constant time, then copies the decoded header JSON
 * followed by the decoded payload JSON into out (cap bytes): *hlen and *plen
 * are their lengths. Returns RC_JWT_*. The alg check and the claims (exp,
 * nbf) are the Lua wrapper's (the signature is HMAC-SHA256 whatever the
 * header says, so a forged "alg" cannot weaken it). */
int rc_ffi_jwt_verify(const char *token, size_t tlen, const char *secret, size_t slen, char *out,
                      size_t cap, size_t *hlen, size_t *plen);

/* Every rc_ffi_* function, so that the linker keeps lapi.o and its symbols
 * in any binary that uses the Lua bridge (ffi.C looks them up by name). */
extern void *const rc_ffi_symbols[];
extern const char *const rc_ffi_names[];

#endif
