/* transport.h - the byte stream under a connection: plain TCP or TLS.
 *
 * conn calls only these operations, so TLS (and the scripted transport of
 * the unit tests) slot in without the connection code knowing.
 * Return values: bytes moved (> 0), 0 for end of stream (read only),
 * -EAGAIN when it would block, another -errno or RC_E_TLS on failure.
 * For TLS a read may need the socket writable and a write readable:
 * want_events() reports WL_READ/WL_WRITE (wloop.h) the transport needs beyond what
 * the caller asked for.
 */
#ifndef RC_NET_TRANSPORT_H
#define RC_NET_TRANSPORT_H

#include <sys/types.h>
#include <sys/uio.h>

#include "tcpio.h"

struct transport;

struct transport_ops {
    const char *name;
    ssize_t (*read)(struct transport *t, void *buf, size_t len);
    ssize_t (*writev)(struct transport *t, const struct iovec *iov, int iovcnt);
    /* Half-closes the write side (TCP FIN, TLS close_notify). Returns 0 or -errno. */
    int (*shutdown)(struct transport *t);
    /* Releases transport state; does NOT close the fd (the connection does). */
    void (*destroy)(struct transport *t);
    /* Extra WL_READ/WL_WRITE bits the transport needs right now (TLS), or 0.
     * NULL when it never needs any (plain TCP): see transport_want_events. */
    int (*want_events)(const struct transport *t);
    /* 1 while a handshake (TLS) is still in progress. */
    int (*handshaking)(const struct transport *t);
};

struct transport {
    const struct transport_ops *ops; /* static */
    int fd;                          /* borrowed from the connection */
    void *impl;                      /* owned by the ops (e.g. SSL *) */
};

/* The extra events t needs now (want_events), 0 without the operation. The
 * connection asks on every readable event: plain TCP skips the call. */
static inline int transport_want_events(const struct transport *t)
{
    return t->ops->want_events ? t->ops->want_events(t) : 0;
}

/* 1 when t may want events of its own (want_events), 0 for plain TCP. */
static inline int transport_has_wants(const struct transport *t)
{
    return t->ops->want_events != NULL;
}

/* Plain TCP: read(2), writev(2) with EINTR retried, shutdown(SHUT_WR). */
extern const struct transport_ops tcp_transport_ops;

static inline void transport_init_tcp(struct transport *t, int fd)
{
    t->ops = &tcp_transport_ops;
    t->fd = fd;
    t->impl = 0;
}

/* t's read and writev, plain TCP's inline (no call through the table on a
 * connection's hot path). */
static inline ssize_t transport_read(struct transport *t, void *buf, size_t len)
{
    if (t->ops == &tcp_transport_ops)
        return tcp_read_fd(t->fd, buf, len);
    return t->ops->read(t, buf, len);
}

static inline ssize_t transport_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    if (t->ops == &tcp_transport_ops)
        return tcp_writev_fd(t->fd, iov, iovcnt);
    return t->ops->writev(t, iov, iovcnt);
}

#endif
