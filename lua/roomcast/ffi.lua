-- roomcast.ffi: the FFI declarations of the C functions in core/lua/lapi.h
-- (they live in the roomcast executable, exported, so ffi.C finds them).
-- Keep this file and lapi.h in step: test_lbridge checks that every name
-- declared here resolves, and that lapi.c exports nothing undeclared.
--
-- Not reachable from scripts (roomcast.sandbox denies it): raw C access.

local ffi = require("ffi")

ffi.cdef([[
int rc_ffi_send(uint64_t id, const char *data, size_t len, int binary);
int rc_ffi_send3(uint64_t id, const char *a, size_t alen, const char *b, size_t blen, const char *c,
                 size_t clen, int binary);
int rc_ffi_send_blob(uint64_t id, const char *a, size_t alen, void *blob, const char *c,
                     size_t clen);
const char *rc_ffi_blob_data(const void *blob);
void rc_ffi_blob_free(void *blob);
int rc_ffi_close(uint64_t id, int code, const char *reason, size_t len);
int rc_ffi_join(uint64_t id, const char *room, size_t len);
int rc_ffi_join_held(uint64_t id, const char *room, size_t len);
int rc_ffi_hold_state(uint64_t id, const char *room, size_t len);
double rc_ffi_release(uint64_t id, const char *room, size_t len, double after);
void rc_ffi_end_holds(int raised);
int rc_ffi_leave(uint64_t id, const char *room, size_t len);
int rc_ffi_in_room(uint64_t id, const char *room, size_t len);
int rc_ffi_conn_rooms(uint64_t id, char *buf, size_t cap, size_t *used);
int rc_ffi_set_user(uint64_t id, const char *user, size_t len);
int rc_ffi_get_user(uint64_t id, const char **user, size_t *len);
int rc_ffi_peer(uint64_t id, char *buf, size_t cap);
int rc_ffi_conn_get(uint64_t id, const char *key, size_t klen, const char **val, size_t *vlen);
int rc_ffi_conn_set(uint64_t id, const char *key, size_t klen, const char *val, size_t vlen);
int rc_ffi_publish(const char *room, size_t len, const char *data, size_t dlen, unsigned flags,
                   uint64_t exclude);
long rc_ffi_room_count(const char *room, size_t len);
long rc_ffi_room_members(const char *room, size_t len, uint64_t *ids, size_t cap);
long rc_ffi_room_presence(const char *room, size_t len, char *buf, size_t cap, size_t *used);
double rc_ffi_room_presence_wait(const char *room, size_t len);
double rc_ffi_room_count_wait(const char *room, size_t len);
double rc_ffi_publish_wait(const char *room, size_t len, const char *data, size_t dlen,
                           unsigned flags, uint64_t exclude);
double rc_ffi_room_read(const char *room, size_t len, double since, double before, double limit,
                        unsigned mode);
int rc_ffi_room_set_policy(const char *room, size_t len, int policy);
int rc_ffi_room_get(const char *room, size_t len, const char *key, size_t klen, char **val,
                    size_t *vlen);
int rc_ffi_room_set(const char *room, size_t len, const char *key, size_t klen, const char *val,
                    size_t vlen);
void rc_ffi_free(void *p);
long rc_ffi_send_to_user(const char *user, size_t ulen, const char *data, size_t dlen, int binary);
double rc_ffi_send_to_user_wait(const char *user, size_t ulen, const char *data, size_t dlen,
                                int binary);
void rc_ffi_log(int level, const char *msg, size_t len);
double rc_ffi_now(void);
struct jwt_keyset;
struct jwt_str { const char *p; size_t len; };
struct jwt_jwk { struct jwt_str kty, crv, kid, alg, use, n, e, x, y; int has_private; };
const char *rc_ffi_jwt_name(int kind, int i);
struct jwt_keyset *rc_ffi_jwt_keyset_new(uint32_t allowed);
void rc_ffi_jwt_keyset_free(struct jwt_keyset *ks);
int rc_ffi_jwt_add_secret(struct jwt_keyset *ks, const char *kid, size_t kidlen, const char *secret,
                          size_t len, char *err, size_t errcap);
int rc_ffi_jwt_add_pem(struct jwt_keyset *ks, const char *kid, size_t kidlen, const char *pem,
                       size_t len, char *err, size_t errcap);
int rc_ffi_jwt_add_jwk(struct jwt_keyset *ks, const struct jwt_jwk *jwk, char *err, size_t errcap);
int rc_ffi_jwt_header(const char *token, size_t tlen, char *out, size_t cap, size_t *hlen);
int rc_ffi_jwt_verify(const struct jwt_keyset *ks, int alg, const char *kid, size_t kidlen,
                      const char *token, size_t tlen, char *out, size_t cap, size_t *plen);
void rc_ffi_jwt_refused(int r);
double rc_ffi_sleep(double ms);
]])

local M = {
    C = ffi.C,
    -- every declared function, for the symbol check in test_lbridge
    NAMES = {
        "rc_ffi_send", "rc_ffi_send3", "rc_ffi_send_blob", "rc_ffi_blob_data", "rc_ffi_blob_free", "rc_ffi_close", "rc_ffi_join", "rc_ffi_leave", "rc_ffi_in_room",
        "rc_ffi_join_held", "rc_ffi_hold_state", "rc_ffi_release", "rc_ffi_end_holds",
        "rc_ffi_conn_rooms", "rc_ffi_set_user", "rc_ffi_get_user", "rc_ffi_peer",
        "rc_ffi_conn_get", "rc_ffi_conn_set", "rc_ffi_publish", "rc_ffi_publish_wait",
        "rc_ffi_room_count",
        "rc_ffi_room_members", "rc_ffi_room_presence", "rc_ffi_room_presence_wait",
        "rc_ffi_room_count_wait",
        "rc_ffi_room_read",
        "rc_ffi_room_set_policy", "rc_ffi_room_get", "rc_ffi_room_set", "rc_ffi_free",
        "rc_ffi_send_to_user", "rc_ffi_send_to_user_wait", "rc_ffi_log", "rc_ffi_now", "rc_ffi_jwt_name",
        "rc_ffi_jwt_keyset_new", "rc_ffi_jwt_keyset_free", "rc_ffi_jwt_add_secret",
        "rc_ffi_jwt_add_pem", "rc_ffi_jwt_add_jwk", "rc_ffi_jwt_header", "rc_ffi_jwt_verify",
        "rc_ffi_jwt_refused", "rc_ffi_sleep",
    },
    -- core/base/err.h
    E = {
        LIMIT = -5004, CLOSED = -5005, NOMEM = -5008, INVAL = -5009, NOT_FOUND = -5012,
        EXISTS = -5013, DENIED = -5014,
    },
    -- core/app/room.h
    PUB_BINARY = 1,
    PUB_STAMP = 2,
    READ_NEWEST = 1, -- RC_READ_NEWEST (core/lua/lapi.h)
    READ_JSON = 2,   -- RC_READ_JSON
    -- core/base/log.h
    LOG = { debug = 0, info = 1, warn = 2, error = 3 },
}

return M
