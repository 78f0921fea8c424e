/* sysraw.h - system calls by the syscall instruction inline (x86-64 Linux).
 *
 * glibc's read, writev and epoll_wait are cancellation points, and its
 * syscall() is a call through the PLT that sets errno; the workers' hot
 * paths enter the kernel directly instead. The result is the kernel's: a
 * count, or -errno. Defined only where RC_SYSRAW is 1; elsewhere (and in
 * sanitizer builds, whose interceptors must see the libc calls) the callers
 * use libc.
 */
#ifndef RC_NET_SYSRAW_H
#define RC_NET_SYSRAW_H

#if defined(__x86_64__) && defined(__linux__) && !defined(RC_SANITIZED)
#define RC_SYSRAW 1

static inline long rc_sys3(long nr, long a, const void *b, long c)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline long rc_sys6(long nr, long a, const void *b, long c, long d, const void *e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register const void *r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#else
#define RC_SYSRAW 0
#endif

#endif
