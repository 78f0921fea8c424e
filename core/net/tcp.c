#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static ssize_t tcp_read(struct transport *t, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(t->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static ssize_t tcp_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t n = writev(t->fd, iov, iovcnt);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static int tcp_shutdown(struct transport *t)
{
    return shutdown(t->fd, SHUT_WR) == -1 ? -errno : 0;
}

static void tcp_destroy(struct transport *t)
{
    (void)t;
}

static int tcp_want_events(const struct transport *t)
{
    (void)t;
    return 0;
}

static int tcp_handshaking(const struct transport *t)
{
    (void)t;
    return 0;
}

const struct transport_ops tcp_transport_ops = {
    .name = "tcp",
    .read = tcp_read,
    .writev = tcp_writev,
    .shutdown = tcp_shutdown,
    .destroy = tcp_destroy,
    .want_events = tcp_want_events,
    .handshaking = tcp_handshaking,
};
