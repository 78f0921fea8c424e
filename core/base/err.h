/* err.h - the one error vocabulary of roomcast.
 *
 * Convention (libuv): 0 is success, a negative int is an error. System call
 * failures are carried as -errno. Project codes start at -5000 and are listed
 * once in RC_ERR_MAP, which generates the enum, rc_err_name() and
 * rc_strerror(). RC_NEED_MORE is an outcome, not a failure.
 */
#ifndef RC_BASE_ERR_H
#define RC_BASE_ERR_H

#define RC_ERR_MAP(XX)                                                                             \
    XX(NEED_MORE, -5000, "more input needed")                                                      \
    XX(E_PROTO, -5001, "protocol violation")                                                       \
    XX(E_UTF8, -5002, "invalid UTF-8")                                                             \
    XX(E_TOO_BIG, -5003, "message too big")                                                        \
    XX(E_LIMIT, -5004, "limit exceeded")                                                           \
    XX(E_CLOSED, -5005, "closed")                                                                  \
    XX(E_SCRIPT, -5006, "script error")                                                            \
    XX(E_TLS, -5007, "TLS error")                                                                  \
    XX(E_NOMEM, -5008, "out of memory")                                                            \
    XX(E_INVAL, -5009, "invalid argument")                                                         \
    XX(E_HEAD_TOO_BIG, -5010, "request head too large")                                            \
    XX(E_TOO_MANY_HEADERS, -5011, "too many headers")                                              \
    XX(E_NOT_FOUND, -5012, "not found")                                                            \
    XX(E_EXISTS, -5013, "already exists")                                                          \
    XX(E_DENIED, -5014, "denied")                                                                  \
    XX(E_TIMEOUT, -5015, "timed out")                                                              \
    XX(E_CONFIG, -5016, "configuration error")                                                     \
    XX(PENDING, -5017, "waiting for an asynchronous answer")                                       \
    XX(E_DATA, -5018, "invalid compressed data")

enum rc_err {
#define RC_ERR_ENUM(name, val, msg) RC_##name = (val),
    RC_ERR_MAP(RC_ERR_ENUM)
#undef RC_ERR_ENUM
};

/* Short symbolic name ("RC_E_PROTO", or "EAGAIN" for -EAGAIN). Never NULL. Static storage. */
const char *rc_err_name(int err);
/* Human text for any code: project codes and -errno alike. Never NULL. Static storage. */
const char *rc_strerror(int err);

#endif
