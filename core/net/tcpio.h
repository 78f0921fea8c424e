/* tcpio.h - plain TCP's read and writev (tcp.c), inline: the result is the
 * count or -errno (-EAGAIN when it would block), EINTR retried.
 *
 * glibc's read and writev are pthread cancellation points: each call turns
 * asynchronous cancellation on and off around the syscall (about 40
 * instructions, a tenth of an echo's user-space cost). Workers are never
 * cancelled, so the hot paths enter the kernel directly. Sanitizer builds
 * keep the libc calls, whose interceptors check the buffers.
 */
#ifndef RC_NET_TCPIO_H
#define RC_NET_TCPIO_H

#include <errno.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "defs.h"
#include "sysraw.h"

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

static inline ssize_t tcp_read_fd(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = SYS_READ(fd, buf, len);
        if (rc_likely(n >= 0))
            return n;
        if (n == -EINTR)
            continue;
        return n == -EWOULDBLOCK ? -EAGAIN : n;
    }
}

static inline ssize_t tcp_writev_fd(int fd, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t n = SYS_WRITEV(fd, iov, iovcnt);
        if (rc_likely(n >= 0))
            return n;
        if (n == -EINTR)
            continue;
        return n == -EWOULDBLOCK ? -EAGAIN : n;
    }
}

#endif
