#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "defs.h"
#include "sysraw.h"
#include "transport.h"

/* glibc's read and writev are pthread cancellation points: each call turns
 * asynchronous cancellation on and off around the syscall (about 40
 * instructions, a tenth of an echo's user-space cost). Workers are never
 * cancelled, so the hot paths enter the kernel directly. Sanitizer builds
 * keep the libc calls, whose interceptors check the buffers. */
#if RC_SYSRAW
#define SYS_READ(fd, buf, len) rc_sys3(SYS_read, (long)(fd), (buf), (long)(len))
#define SYS_WRITEV(fd, iov, n) rc_sys3(SYS_writev, (long)(fd), (iov), (long)(n))
#else
/* A libc result as the count or -errno. */
static inline long sys_ret(long n)
{
    return n >= 0 ? n : -(long)errno;
}
#ifdef RC_SANITIZED
#define SYS_READ(fd, buf, len) sys_ret(read(fd, buf, len))
#define SYS_WRITEV(fd, iov, n) sys_ret(writev(fd, iov, n))
#else
#define SYS_READ(fd, buf, len) sys_ret(syscall(SYS_read, (long)(fd), (buf), (long)(len)))
#define SYS_WRITEV(fd, iov, n) sys_ret(syscall(SYS_writev, (long)(fd), (iov), (long)(n)))
#endif
#endif

static ssize_t tcp_read(struct transport *t, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = SYS_READ(t->fd, buf, len);
        if (rc_likely(n >= 0))
            return n;
        if (n == -EINTR)
            continue;
        return n == -EWOULDBLOCK ? -EAGAIN : n;
    }
}

static ssize_t tcp_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t n = SYS_WRITEV(t->fd, iov, iovcnt);
        if (rc_likely(n >= 0))
            return n;
        if (n == -EINTR)
            continue;
        return n == -EWOULDBLOCK ? -EAGAIN : n;
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
