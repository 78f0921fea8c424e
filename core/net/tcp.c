#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "transport.h"

/* glibc's read and writev are pthread cancellation points: each call turns
 * asynchronous cancellation on and off around the syscall (about 40
 * instructions, a tenth of an echo's user-space cost). Workers are never
 * cancelled, so the hot paths enter the kernel directly. Sanitizer builds
 * keep the libc calls, whose interceptors check the buffers. */
#ifdef RC_SANITIZED
#define SYS_READ(fd, buf, len) read(fd, buf, len)
#define SYS_WRITEV(fd, iov, n) writev(fd, iov, n)
#else
#define SYS_READ(fd, buf, len) syscall(SYS_read, (long)(fd), (buf), (long)(len))
#define SYS_WRITEV(fd, iov, n) syscall(SYS_writev, (long)(fd), (iov), (long)(n))
#endif

static ssize_t tcp_read(struct transport *t, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = SYS_READ(t->fd, buf, len);
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
        ssize_t n = SYS_WRITEV(t->fd, iov, iovcnt);
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
