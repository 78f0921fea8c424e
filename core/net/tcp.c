#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "defs.h"
#include "tcpio.h"
#include "transport.h"

static ssize_t tcp_read(struct transport *t, void *buf, size_t len)
{
    return tcp_read_fd(t->fd, buf, len);
}

static ssize_t tcp_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    return tcp_writev_fd(t->fd, iov, iovcnt);
}

static int tcp_shutdown(struct transport *t)
{
    return shutdown(t->fd, SHUT_WR) == -1 ? -errno : 0;
}

static void tcp_destroy(struct transport *t)
{
    (void)t;
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
    .want_events = NULL, /* never needs the other direction */
    .handshaking = tcp_handshaking,
};
