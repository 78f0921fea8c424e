/* wloop.h - the worker's own event loop: one epoll set, a timer heap, one
 * eventfd for wakeups from other threads.
 *
 * Why not libev here: DESIGN.md has the core on libev, and the main thread,
 * the admin loop, the bus and store threads and the file watcher stay on it.
 * The worker threads leave it because of what one libev iteration costs. An
 * echo on one connection is one ready socket per poll, and callgrind put
 * libev's share of it at ~413 instructions of ~1194 (ev_run 151, the epoll
 * backend 92, ev_invoke_pending 72, ev_feed_event 34, glibc's epoll_wait and
 * its cancellation points 53; tests/bench/RESULTS.md, session 3). Batching
 * cannot amortise that when each poll returns one socket. This loop does
 * what the workers need and nothing else: dispatch straight from the
 * epoll_event array (data.ptr is the handle), epoll_ctl only when a handle's
 * mask changes, level-triggered, one clock read per iteration.
 *
 *   wloop_run:  before_sleep() -> epoll_wait(next timer) -> now = clock
 *               -> each ready handle's callback -> due timers -> again
 *
 * Handles stay owned by their users. A handle stopped during an iteration
 * must stay allocated until that iteration ends (its event may still be in
 * the array; it is skipped because its mask no longer asks for it): the
 * connections' reaper frees them in before_sleep, which is after dispatch.
 *
 * Single-threaded except wasync_send, which any thread may call.
 */
#ifndef RC_NET_WLOOP_H
#define RC_NET_WLOOP_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>

/* Event bits: the epoll ones, so that no translation is needed. */
#define WL_READ EPOLLIN
#define WL_WRITE EPOLLOUT

struct wloop;
struct wio;
struct wtimer;
struct wasync;

typedef void (*wio_cb)(struct wio *io, unsigned revents);
typedef void (*wtimer_cb)(struct wloop *l, struct wtimer *t);
typedef void (*wasync_cb)(struct wloop *l, struct wasync *a);

/* An fd watcher: 16 bytes (the connection has one). Find the owner with
 * rc_container_of. */
struct wio {
    int fd;
    uint8_t events; /* the mask registered with epoll, 0 = not in the set */
    wio_cb cb;
};

struct wtimer {
    double at;     /* deadline, loop time */
    double repeat; /* 0: one-shot */
    uint32_t slot; /* index in the heap + 1, 0 = stopped */
    wtimer_cb cb;
    void *data;
};

struct wasync {
    atomic_int pending;
    wasync_cb cb;
    void *data;
    struct wasync *next; /* on the loop's list */
};

/* Called at the top of every iteration (and once as wloop_run starts),
 * after the previous iteration's events and timers: the worker flushes,
 * reaps, and checks its drain there. Returns nonzero when it left work for
 * the next iteration (the poll then does not block). */
typedef int (*wloop_before_sleep)(struct wloop *l, void *data);

/* A new loop, or NULL (errno set). */
struct wloop *wloop_new(void);
/* Frees the loop. Handles and timers still registered are forgotten, not
 * called or touched (their owners may be gone already). */
void wloop_free(struct wloop *l);

void wloop_set_before_sleep(struct wloop *l, wloop_before_sleep fn, void *data);

/* Runs until wloop_break. */
void wloop_run(struct wloop *l);
/* One iteration without blocking (tests). */
void wloop_run_once(struct wloop *l);
/* Makes wloop_run return after the current iteration. Loop thread. */
void wloop_break(struct wloop *l);

/* The loop time: CLOCK_MONOTONIC in seconds, read once per iteration after
 * the poll. */
double wloop_now(const struct wloop *l);
/* Reads the clock again (after a long computation). */
void wloop_now_update(struct wloop *l);
/* The monotonic clock now, in seconds, without a loop. */
double wloop_time(void);
/* The wall clock (CLOCK_REALTIME) in seconds, read at most once per
 * iteration. */
double wloop_wall(struct wloop *l);

/* -- fd watchers ------------------------------------------------------------ */

static inline void wio_init(struct wio *io, int fd, wio_cb cb)
{
    io->fd = fd;
    io->events = 0;
    io->cb = cb;
}

/* Registers, changes or (want = 0) removes io's mask; a no-op when it does
 * not change. Returns 0 or -errno from epoll_ctl. */
int wio_set_slow(struct wloop *l, struct wio *io, unsigned want);
static inline int wio_set(struct wloop *l, struct wio *io, unsigned want)
{
    return want == io->events ? 0 : wio_set_slow(l, io, want);
}
/* Removes io from the set (call it before close(io->fd)). */
static inline void wio_stop(struct wloop *l, struct wio *io)
{
    wio_set(l, io, 0);
}

/* -- timers ----------------------------------------------------------------- */

static inline void wtimer_init(struct wtimer *t, wtimer_cb cb, void *data)
{
    t->at = 0;
    t->repeat = 0;
    t->slot = 0;
    t->cb = cb;
    t->data = data;
}

static inline int wtimer_active(const struct wtimer *t)
{
    return t->slot != 0;
}

/* (Re)starts t: first after `after` seconds from the loop time, then every
 * `repeat` seconds (0: once). A timer stops before its callback runs unless
 * it repeats; the callback may restart or stop it. An active timer's memory
 * must outlive its time in the heap (stop it before freeing it, unless the
 * loop is freed first): the heap reads the deadlines from the timers. */
void wtimer_start(struct wloop *l, struct wtimer *t, double after, double repeat);
void wtimer_stop(struct wloop *l, struct wtimer *t);
/* The number of active timers. */
unsigned wloop_timers(const struct wloop *l);

/* -- wakeups from other threads --------------------------------------------- */

/* Adds a to l's list (loop thread, or before the loop runs). */
void wasync_start(struct wloop *l, struct wasync *a, wasync_cb cb, void *data);
/* Removes a from l's list (loop thread, or after the loop stopped). */
void wasync_stop(struct wloop *l, struct wasync *a);
/* Any thread: a's callback runs on the loop thread soon. Sends that arrive
 * before it runs coalesce into one call; the eventfd is written only on the
 * loop's not-pending -> pending transition. Release/acquire: what the
 * sender wrote before the send is visible to the callback. */
void wasync_send(struct wloop *l, struct wasync *a);

#endif
