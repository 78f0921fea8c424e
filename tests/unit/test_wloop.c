/* test_wloop.c - the worker loop (net/wloop.c): fd readiness on a real
 * socketpair, mask changes and removal, a handle stopped by an earlier
 * callback of the same poll, timers (order, repeat, stop, restart from the
 * callback, a thousand at random deadlines), the before-sleep hook and its
 * "more work" answer, and wakeups from a real second thread (coalescing,
 * and what the sender wrote is visible to the callback: TSan runs this).
 * Timers are a few milliseconds; nothing here measures speed.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "defs.h"
#include "wloop.h"

struct probe {
    struct wio io;
    int calls;
    unsigned last;
    struct wloop *l;
    struct probe *victim; /* stopped by this probe's callback */
};

static void on_probe(struct wio *io, unsigned revents)
{
    struct probe *p = rc_container_of(io, struct probe, io);
    p->calls++;
    p->last = revents;
    if (p->victim)
        wio_stop(p->l, &p->victim->io);
}

static void test_io_size(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct wio), 16);
}

static void test_io_readiness_and_masks(void **state)
{
    (void)state;
    struct wloop *l = wloop_new();
    assert_non_null(l);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct probe p = {0};
    wio_init(&p.io, sv[0], on_probe);

    /* Writable at once; not readable until the peer writes. */
    assert_int_equal(wio_set(l, &p.io, WL_READ | WL_WRITE), 0);
    assert_int_equal(p.io.events, WL_READ | WL_WRITE);
    wloop_run_once(l);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.last, WL_WRITE);

    /* Read only: nothing until data comes, then level-triggered until read. */
    assert_int_equal(wio_set(l, &p.io, WL_READ), 0);
    wloop_run_once(l);
    assert_int_equal(p.calls, 1);
    assert_int_equal(write(sv[1], "x", 1), 1);
    wloop_run_once(l);
    assert_int_equal(p.calls, 2);
    assert_int_equal(p.last, WL_READ);
    wloop_run_once(l);
    assert_int_equal(p.calls, 3); /* not read yet: reported again */
    char b;
    assert_int_equal(read(sv[0], &b, 1), 1);
    wloop_run_once(l);
    assert_int_equal(p.calls, 3);

    /* The same mask again changes nothing (no epoll_ctl: still registered). */
    assert_int_equal(wio_set(l, &p.io, WL_READ), 0);

    /* Removed: data waits unreported; re-added: reported. */
    wio_stop(l, &p.io);
    assert_int_equal(p.io.events, 0);
    assert_int_equal(write(sv[1], "y", 1), 1);
    wloop_run_once(l);
    assert_int_equal(p.calls, 3);
    wio_stop(l, &p.io); /* twice is fine */
    assert_int_equal(wio_set(l, &p.io, WL_READ), 0);
    wloop_run_once(l);
    assert_int_equal(p.calls, 4);
    assert_int_equal(p.last, WL_READ);

    /* The peer gone: a hangup reaches a read-only watcher as readable. */
    close(sv[1]);
    assert_int_equal(read(sv[0], &b, 1), 1);
    wloop_run_once(l);
    assert_int_equal(p.calls, 5);
    assert_true(p.last & WL_READ);
    wio_stop(l, &p.io);
    close(sv[0]);
    wloop_free(l);
}

/* Two ready handles in one poll; whichever runs first stops the other,
 * which must then not be called (its event is still in the array). */
static void test_io_stopped_by_earlier_callback(void **state)
{
    (void)state;
    struct wloop *l = wloop_new();
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    struct probe p = {0}, q = {0};
    wio_init(&p.io, a[0], on_probe);
    wio_init(&q.io, b[0], on_probe);
    p.l = q.l = l;
    p.victim = &q;
    q.victim = &p;
    wio_set(l, &p.io, WL_WRITE);
    wio_set(l, &q.io, WL_WRITE);
    wloop_run_once(l);
    assert_int_equal(p.calls + q.calls, 1);
    assert_int_equal(p.io.events + q.io.events, WL_WRITE);
    wio_stop(l, &p.io);
    wio_stop(l, &q.io);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    wloop_free(l);
}

/* -- timers ------------------------------------------------------------------------ */

static int order[16];
static int norder;

struct tprobe {
    struct wtimer t;
    int id;
    int fired;
    int restart; /* restart from the callback this many times */
    double again;
};

static void on_tprobe(struct wloop *l, struct wtimer *t)
{
    struct tprobe *p = t->data;
    p->fired++;
    if (norder < 16)
        order[norder++] = p->id;
    if (p->restart > 0) {
        p->restart--;
        wtimer_start(l, t, p->again, 0);
    }
}

/* Iterates until cond or 2 s of loop time. */
static void run_until(struct wloop *l, int *flag, int want)
{
    double end = wloop_now(l) + 2.0;
    while (*flag < want && wloop_now(l) < end) {
        usleep(1000);
        wloop_run_once(l);
    }
}

static void test_timers_order_stop_restart(void **state)
{
    (void)state;
    struct wloop *l = wloop_new();
    norder = 0;
    struct tprobe p[4];
    for (int i = 0; i < 4; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].id = i;
        wtimer_init(&p[i].t, on_tprobe, &p[i]);
    }
    wtimer_start(l, &p[0].t, 0.030, 0);
    wtimer_start(l, &p[1].t, 0.010, 0);
    wtimer_start(l, &p[2].t, 0.020, 0);
    wtimer_start(l, &p[3].t, 0.015, 0);
    assert_int_equal(wloop_timers(l), 4);
    wtimer_stop(l, &p[3].t); /* stopped: never fires */
    assert_false(wtimer_active(&p[3].t));
    wtimer_stop(l, &p[3].t); /* twice is fine */
    assert_int_equal(wloop_timers(l), 3);
    /* Restarting an active timer moves it (once in the heap). */
    wtimer_start(l, &p[2].t, 0.005, 0);
    assert_int_equal(wloop_timers(l), 3);
    run_until(l, &norder, 3);
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 0);
    assert_int_equal(p[3].fired, 0);
    assert_int_equal(wloop_timers(l), 0);
    for (int i = 0; i < 4; i++)
        assert_false(wtimer_active(&p[i].t));

    /* Restarted from its own callback, twice, with 0: it runs once per
     * iteration, never twice in one (no endless loop). */
    norder = 0;
    p[0].restart = 2;
    p[0].again = 0;
    p[0].fired = 0;
    wtimer_start(l, &p[0].t, 0.001, 0);
    run_until(l, &p[0].fired, 1);
    assert_int_equal(p[0].fired, 1);
    assert_true(wtimer_active(&p[0].t));
    run_until(l, &p[0].fired, 3);
    assert_int_equal(p[0].fired, 3);
    assert_false(wtimer_active(&p[0].t));
    wloop_free(l);
}

static void test_timer_repeat_and_blocking_run(void **state)
{
    (void)state;
    struct wloop *l = wloop_new();
    struct tprobe p = {0};
    wtimer_init(&p.t, on_tprobe, &p);
    double t0 = wloop_now(l);
    wtimer_start(l, &p.t, 0.005, 0.005);
    while (p.fired < 5)
        wloop_run_once(l); /* spins: the poll does not block */
    assert_true(wtimer_active(&p.t));
    /* Five periods have passed by the fifth call. */
    assert_true(wloop_now(l) - t0 >= 0.025);
    wtimer_stop(l, &p.t);
    assert_int_equal(wloop_timers(l), 0);
    wloop_free(l);
}

struct breaker {
    struct wtimer t;
    int n;
};

static void on_breaker(struct wloop *l, struct wtimer *t)
{
    struct breaker *b = t->data;
    if (++b->n == 3)
        wloop_break(l);
}

static int hook_calls;
static int hook_busy;

static int before_sleep(struct wloop *l, void *data)
{
    assert_ptr_equal(data, &hook_calls);
    hook_calls++;
    if (hook_busy > 0) {
        if (--hook_busy == 0)
            wloop_break(l);
        return 1;
    }
    return 0;
}

/* wloop_run sleeps in epoll_wait until the timer, runs the hook before every
 * poll, and returns after wloop_break. */
static void test_run_blocks_until_timer(void **state)
{
    (void)state;
    struct wloop *l = wloop_new();
    hook_calls = 0;
    hook_busy = 0;
    wloop_set_before_sleep(l, before_sleep, &hook_calls);
    struct breaker b = {0};
    wtimer_init(&b.t, on_breaker, &b);
    wtimer_start(l, &b.t, 0.02, 0.02);
    double t0 = wloop_time();
    wloop_run(l);
    double took = wloop_time() - t0;
    assert_int_equal(b.n, 3);
    assert_true(took >= 0.06 - 0.002);
    /* Blocking polls: one iteration per firing (an early wakeup at most once
     * more each), not a spin. */
    assert_true(hook_calls >= 3 && hook_calls <= 7);

    /* "More work" from the hook makes the next poll not block: 50 busy
     * answers (the last one breaks) go by long before a 10 s timer. */
    hook_calls = 0;
    hook_busy = 50;
    wtimer_start(l, &b.t, 10.0, 0);
    t0 = wloop_time();
    wloop_run(l);
    assert_int_equal(hook_calls, 50);
    assert_true(wloop_time() - t0 < 5.0);
    assert_true(wtimer_active(&b.t));
    wtimer_stop(l, &b.t);
    wloop_free(l);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define MANY 1000
static double fired_at[MANY];
static int nfired;

static void on_many(struct wloop *l, struct wtimer *t)
{
    (void)l;
    fired_at[nfired++] = t->at;
}

/* A thousand timers at shuffled deadlines, a third stopped and some moved:
 * every live one fires once, in deadline order. */
static void test_many_timers(void **state)
{
    (void)state;
    struct wloop *l = wloop_new();
    static struct wtimer t[MANY];
    srand(7);
    nfired = 0;
    for (int i = 0; i < MANY; i++) {
        wtimer_init(&t[i], on_many, NULL);
        wtimer_start(l, &t[i], 0.001 + (rand() % 20000) * 1e-6, 0);
    }
    int live = MANY;
    for (int i = 0; i < MANY; i += 3) {
        wtimer_stop(l, &t[i]);
        live--;
    }
    for (int i = 1; i < MANY; i += 7) /* moved, or restarted after a stop */
        wtimer_start(l, &t[i], 0.001 + (rand() % 20000) * 1e-6, 0);
    for (int i = 1; i < MANY; i += 7)
        live += i % 3 == 0;
    assert_int_equal(wloop_timers(l), (unsigned)live);
    run_until(l, &nfired, live);
    assert_int_equal(nfired, live);
    double sorted[MANY];
    memcpy(sorted, fired_at, sizeof(double) * (size_t)live);
    qsort(sorted, (size_t)live, sizeof(double), cmp_double);
    assert_memory_equal(sorted, fired_at, sizeof(double) * (size_t)live);
    assert_int_equal(wloop_timers(l), 0);
    wloop_free(l);
}

/* -- wakeups from another thread ------------------------------------------------------ */

/* The sender writes `value` (a plain int) and sends; the callback reads it
 * and acknowledges; the sender waits for the acknowledgement before the
 * next write. Only the send and the acknowledgement order the plain
 * accesses: without wasync's release/acquire TSan reports a race. */
struct wake {
    struct wloop *l;
    struct wasync a, other;
    int value;
    int seen, calls, other_calls;
    _Atomic int ack;
};

static void on_wake(struct wloop *l, struct wasync *a)
{
    struct wake *w = a->data;
    w->calls++;
    assert_int_equal(w->value, w->seen * 3 + 1);
    w->seen++;
    atomic_store_explicit(&w->ack, w->seen, memory_order_release);
    if (w->seen == 64)
        wloop_break(l);
}

static void on_other(struct wloop *l, struct wasync *a)
{
    (void)l;
    struct wake *w = a->data;
    w->other_calls++;
}

static void *sender(void *arg)
{
    struct wake *w = arg;
    for (int i = 0; i < 64; i++) {
        w->value = i * 3 + 1;
        wasync_send(w->l, &w->a);
        while (atomic_load_explicit(&w->ack, memory_order_acquire) != i + 1)
            usleep(100);
    }
    return NULL;
}

static void on_timeout(struct wloop *l, struct wtimer *t)
{
    (void)t;
    wloop_break(l);
    fail_msg("no wakeup within 5 s");
}

static void test_cross_thread_wake(void **state)
{
    (void)state;
    static struct wake w;
    memset(&w, 0, sizeof(w));
    w.l = wloop_new();
    wasync_start(w.l, &w.a, on_wake, &w);
    wasync_start(w.l, &w.other, on_other, &w);
    struct wtimer guard;
    wtimer_init(&guard, on_timeout, NULL);
    wtimer_start(w.l, &guard, 5.0, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sender, &w), 0);
    wloop_run(w.l); /* sleeps in epoll_wait between wakes */
    pthread_join(th, NULL);
    assert_int_equal(w.seen, 64);
    assert_int_equal(w.calls, 64);      /* one call per send: each waited for its ack */
    assert_int_equal(w.other_calls, 0); /* only the handle sent to runs */

    /* Coalescing: three sends before the loop looks, one call. */
    int before = w.calls;
    wasync_send(w.l, &w.other);
    wasync_send(w.l, &w.other);
    wasync_send(w.l, &w.other);
    wloop_run_once(w.l);
    assert_int_equal(w.other_calls, 1);
    assert_int_equal(w.calls, before);
    wloop_run_once(w.l);
    assert_int_equal(w.other_calls, 1);
    /* A stopped handle is no longer called. */
    wasync_stop(w.l, &w.other);
    wasync_send(w.l, &w.other);
    wloop_run_once(w.l);
    assert_int_equal(w.other_calls, 1);
    wtimer_stop(w.l, &guard);
    wloop_free(w.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io_size),
        cmocka_unit_test(test_io_readiness_and_masks),
        cmocka_unit_test(test_io_stopped_by_earlier_callback),
        cmocka_unit_test(test_timers_order_stop_restart),
        cmocka_unit_test(test_timer_repeat_and_blocking_run),
        cmocka_unit_test(test_run_blocks_until_timer),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_cross_thread_wake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
