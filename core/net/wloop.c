#include "wloop.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "defs.h"
#include "log.h"
#include "sysraw.h"

/* Events taken from one epoll_wait. A closed-loop echo has one; a fan-out
 * burst many. More than this stay ready for the next call (level-triggered). */
#define WL_MAX_EVENTS 128

/* glibc's epoll_wait is a cancellation point (about 50 instructions per call
 * around the syscall, RESULTS.md); workers are never cancelled, so release
 * builds enter the kernel directly as tcp.c does for read and writev.
 * epoll_pwait with no mask is epoll_wait on every architecture. Sanitizer
 * builds keep the libc call, whose interceptors see it. */
#if RC_SYSRAW
/* The syscall instruction inline (sysraw.h); errno is set on failure only. */
static inline int sys_epoll_wait(int ep, struct epoll_event *evs, int n, int ms)
{
    long r = rc_sys6(SYS_epoll_pwait, ep, evs, n, ms, NULL, 8L);
    if (rc_unlikely(r < 0)) {
        errno = (int)-r;
        return -1;
    }
    return (int)r;
}
#define SYS_EPOLL_WAIT(ep, evs, n, ms) sys_epoll_wait(ep, evs, n, ms)
#elif defined(RC_SANITIZED)
#define SYS_EPOLL_WAIT(ep, evs, n, ms) epoll_wait(ep, evs, n, ms)
#else
#define SYS_EPOLL_WAIT(ep, evs, n, ms)                                                             \
    (int)syscall(SYS_epoll_pwait, (long)(ep), (evs), (long)(n), (long)(ms), NULL, 8L)
#endif

struct wloop {
    int epfd;
    int stop;
    double now;
    double wall; /* 0: not read in this iteration */
    double next; /* heap[0]->at, HUGE_VAL without timers */
    struct wtimer **heap;
    uint32_t nheap, heap_cap;
    wloop_before_sleep before_sleep;
    void *before_data;
    struct wasync *asyncs;
    struct wio evio;         /* the eventfd */
    atomic_int wake_pending; /* 1 while an eventfd write is unconsumed */
    struct epoll_event evs[WL_MAX_EVENTS];
};

double wloop_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double wloop_now(const struct wloop *l)
{
    return l->now;
}

void wloop_now_update(struct wloop *l)
{
    l->now = wloop_time();
    l->wall = 0;
}

double wloop_wall(struct wloop *l)
{
    if (l->wall == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        l->wall = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    return l->wall;
}

/* -- wakeups ------------------------------------------------------------------ */

static void on_eventfd(struct wio *io, unsigned revents)
{
    (void)revents;
    struct wloop *l = rc_container_of(io, struct wloop, evio);
    uint64_t n;
    while (read(l->evio.fd, &n, sizeof(n)) == -1 && errno == EINTR) {
    }
    /* Cleared before the handles are looked at: a send after this point
     * writes the eventfd again (wasync_send), so none is lost. */
    atomic_store_explicit(&l->wake_pending, 0, memory_order_seq_cst);
    struct wasync *a = l->asyncs;
    while (a) {
        struct wasync *next = a->next;
        if (atomic_exchange_explicit(&a->pending, 0, memory_order_acq_rel))
            a->cb(l, a);
        a = next;
    }
}

void wasync_start(struct wloop *l, struct wasync *a, wasync_cb cb, void *data)
{
    atomic_init(&a->pending, 0);
    a->cb = cb;
    a->data = data;
    a->next = l->asyncs;
    l->asyncs = a;
}

void wasync_stop(struct wloop *l, struct wasync *a)
{
    for (struct wasync **pp = &l->asyncs; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            a->next = NULL;
            return;
        }
    }
}

void wasync_send(struct wloop *l, struct wasync *a)
{
    /* seq_cst pairs with on_eventfd: either the loop sees a->pending after
     * clearing wake_pending, or this exchange sees 0 and writes. */
    if (atomic_exchange_explicit(&a->pending, 1, memory_order_seq_cst))
        return;
    if (atomic_exchange_explicit(&l->wake_pending, 1, memory_order_seq_cst))
        return;
    uint64_t one = 1;
    while (write(l->evio.fd, &one, sizeof(one)) == -1 && errno == EINTR) {
    }
}

/* -- loop ---------------------------------------------------------------------- */

struct wloop *wloop_new(void)
{
    struct wloop *l = rc_xcalloc(1, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd == -1) {
        int e = errno;
        rc_free(l);
        errno = e;
        return NULL;
    }
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd == -1) {
        int e = errno;
        close(l->epfd);
        rc_free(l);
        errno = e;
        return NULL;
    }
    atomic_init(&l->wake_pending, 0);
    wio_init(&l->evio, efd, on_eventfd);
    if (wio_set(l, &l->evio, WL_READ) != 0) {
        int e = errno;
        close(efd);
        close(l->epfd);
        rc_free(l);
        errno = e;
        return NULL;
    }
    l->next = HUGE_VAL;
    wloop_now_update(l);
    return l;
}

void wloop_free(struct wloop *l)
{
    if (l == NULL)
        return;
    close(l->evio.fd);
    close(l->epfd);
    rc_free(l->heap);
    rc_free(l);
}

void wloop_set_before_sleep(struct wloop *l, wloop_before_sleep fn, void *data)
{
    l->before_sleep = fn;
    l->before_data = data;
}

void wloop_break(struct wloop *l)
{
    l->stop = 1;
}

int wio_set_slow(struct wloop *l, struct wio *io, unsigned want)
{
    struct epoll_event ev;
    ev.events = want;
    ev.data.ptr = io;
    int op = io->events == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(l->epfd, op, io->fd, &ev) == -1) {
        int e = errno;
        if (op == EPOLL_CTL_DEL) { /* the fd is gone from the set either way */
            io->events = 0;
            return 0;
        }
        static struct rc_ratelimit rl;
        rc_log_limited(&rl, 1, RC_LOG_WARN, "epoll_ctl(%d, fd %d): %s", op, io->fd, strerror(e));
        return -e;
    }
    io->events = (uint8_t)want;
    return 0;
}

/* -- timers: a binary min-heap on `at` -------------------------------------------- */

/* After every change to the heap: the one deadline the iteration looks at. */
static void set_next(struct wloop *l)
{
    l->next = l->nheap > 0 ? l->heap[0]->at : HUGE_VAL;
}

static void heap_put(struct wloop *l, uint32_t i, struct wtimer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(struct wloop *l, uint32_t i)
{
    struct wtimer *t = l->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (l->heap[p]->at <= t->at)
            break;
        heap_put(l, i, l->heap[p]);
        i = p;
    }
    heap_put(l, i, t);
}

static void sift_down(struct wloop *l, uint32_t i)
{
    struct wtimer *t = l->heap[i];
    uint32_t n = l->nheap;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && l->heap[c + 1]->at < l->heap[c]->at)
            c++;
        if (t->at <= l->heap[c]->at)
            break;
        heap_put(l, i, l->heap[c]);
        i = c;
    }
    heap_put(l, i, t);
}

void wtimer_stop(struct wloop *l, struct wtimer *t)
{
    if (t->slot == 0)
        return;
    uint32_t i = t->slot - 1;
    t->slot = 0;
    struct wtimer *last = l->heap[--l->nheap];
    if (last != t) {
        heap_put(l, i, last);
        if (i > 0 && l->heap[(i - 1) / 2]->at > last->at)
            sift_up(l, i);
        else
            sift_down(l, i);
    }
    set_next(l);
}

void wtimer_start(struct wloop *l, struct wtimer *t, double after, double repeat)
{
    wtimer_stop(l, t);
    t->at = l->now + (after > 0 ? after : 0);
    t->repeat = repeat > 0 ? repeat : 0;
    if (l->nheap == l->heap_cap) {
        l->heap_cap = l->heap_cap ? l->heap_cap * 2 : 16;
        l->heap = rc_xrealloc(l->heap, l->heap_cap * sizeof(*l->heap));
    }
    uint32_t i = l->nheap++;
    heap_put(l, i, t);
    sift_up(l, i);
    set_next(l);
}

unsigned wloop_timers(const struct wloop *l)
{
    return l->nheap;
}

/* Runs the timers whose deadline is before the loop time. Strictly before:
 * a timer a callback (re)starts with 0 runs in the next iteration, not in
 * this loop forever. */
static void run_timers(struct wloop *l)
{
    while (l->next < l->now && !l->stop) {
        struct wtimer *t = l->heap[0];
        if (t->repeat > 0) {
            t->at += t->repeat;
            if (t->at < l->now)
                t->at = l->now + t->repeat; /* late: no burst of catch-up calls */
            sift_down(l, 0);
            set_next(l);
        } else {
            wtimer_stop(l, t);
        }
        t->cb(l, t);
    }
}

/* epoll_wait's timeout in ms: 0 when work waits, -1 without timers, else
 * the next deadline rounded up (an early wakeup would only poll again). */
static int poll_timeout(struct wloop *l, int busy)
{
    double d = l->next - l->now;
    if (busy || d <= 0)
        return 0;
    if (d > 86400.0)
        return l->nheap == 0 ? -1 : 86400 * 1000;
    return (int)(d * 1000.0) + 1;
}

/* Inlined into wloop_run (no call and prologue per iteration). */
static RC_ALWAYS_INLINE void iterate(struct wloop *l, int block)
{
    int busy = l->before_sleep ? l->before_sleep(l, l->before_data) : 0;
    if (l->stop)
        return;
    int n = SYS_EPOLL_WAIT(l->epfd, l->evs, WL_MAX_EVENTS, block ? poll_timeout(l, busy) : 0);
    wloop_now_update(l);
    for (int i = 0; i < n; i++) {
        struct wio *io = l->evs[i].data.ptr;
        unsigned e = l->evs[i].events;
        /* An error or hangup is news for whichever direction is wanted. */
        if (rc_unlikely(e & (EPOLLERR | EPOLLHUP)))
            e |= WL_READ | WL_WRITE;
        e &= io->events; /* stopped or changed by an earlier callback: skip */
        if (e)
            io->cb(io, e);
    }
    if (n < 0 && errno != EINTR) {
        static struct rc_ratelimit rl;
        rc_log_limited(&rl, 1, RC_LOG_WARN, "epoll_wait: %s", strerror(errno));
    }
    if (l->next < l->now) /* run_timers' own test, without the call when nothing is due */
        run_timers(l);
}

void wloop_run(struct wloop *l)
{
    l->stop = 0;
    while (!l->stop)
        iterate(l, 1);
}

void wloop_run_once(struct wloop *l)
{
    l->stop = 0;
    iterate(l, 0);
}
