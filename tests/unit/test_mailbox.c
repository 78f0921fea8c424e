/* test_mailbox.c - the cross-thread path: several producer threads publish
 * through the local bus (a MAIL_CALL to the room's owner) while the workers
 * run; the owner must sequence every message exactly once (seq 1..N, no
 * gaps, no duplicates), keep each producer's order (per-sender FIFO), store
 * it, ack each publish with its seq on the worker named in the call, answer
 * an asynchronous store read on the reader's worker, and leak nothing.
 * Built and run under TSan as well (label "tsan"). */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "bus.h"
#include "config.h"
#include "confload.h"
#include "echo.h"
#include "frame_ref.h"
#include "mailbox.h"
#include "room.h"
#include "store_mem.h"
#include "wloop.h"
#include "worker.h"

#define PRODUCERS 3
#define PER_PRODUCER 2000

struct prod {
    struct server *s;
    int id;
};

/* Acks: seq -> how many times acked, and whether each ran on worker 1. */
static atomic_int acked[PRODUCERS * PER_PRODUCER + 2];
static atomic_int acks_total, acks_wrong_thread;

static void on_ack(void *ud, int status, uint64_t seq)
{
    struct server *s = ud;
    struct worker *w = worker_current();
    if (w == NULL || w != &s->workers[1] || status != 0)
        atomic_fetch_add(&acks_wrong_thread, 1);
    if (seq >= 1 && seq <= PRODUCERS * PER_PRODUCER)
        atomic_fetch_add(&acked[seq], 1);
    atomic_fetch_add(&acks_total, 1);
}

static void *producer(void *arg)
{
    struct prod *p = arg;
    const char *room = "r";
    struct server *s = p->s;
    for (int i = 0; i < PER_PRODUCER; i++) {
        char payload[64];
        int n = snprintf(payload, sizeof(payload), "{\"p\":%d,\"n\":%d}", p->id, i);
        struct bus_publish pub = {.room = room,
                                  .room_len = 1,
                                  .data = payload,
                                  .len = (size_t)n,
                                  .flags = ROOM_PUB_STAMP};
        assert_int_equal(s->bus->ops->publish(s->bus, 1, &pub, on_ack, s), 0);
    }
    return NULL;
}

struct seen {
    uint64_t count;
    uint64_t last_seq;
    int last_n[PRODUCERS];
    int ok;
};

static void on_hist(void *ud, uint64_t seq, const char *payload, size_t plen)
{
    struct seen *sn = ud;
    int p = -1, n = -1;
    unsigned long long sq = 0;
    char buf[128];
    memcpy(buf, payload, plen < sizeof(buf) - 1 ? plen : sizeof(buf) - 1);
    buf[plen < sizeof(buf) - 1 ? plen : sizeof(buf) - 1] = '\0';
    if (sscanf(buf, "{\"p\":%d,\"n\":%d,\"seq\":%llu", &p, &n, &sq) != 3)
        sn->ok = 0;
    if (sq != seq || seq != sn->last_seq + 1)
        sn->ok = 0;
    if (p < 0 || p >= PRODUCERS || n != sn->last_n[p] + 1)
        sn->ok = 0;
    else
        sn->last_n[p] = n;
    sn->last_seq = seq;
    sn->count++;
}

struct read_seen {
    struct server *s;
    struct seen *sn; /* when set, every entry goes through on_hist */
    atomic_int done;
    int status, on_worker2;
    size_t n;
    uint64_t first, last, last_seq;
};

static void on_read(void *ud, int status, const struct store_room *info,
                    const struct store_msg *msgs, size_t n)
{
    struct read_seen *rs = ud;
    rs->status = status;
    rs->n = n;
    rs->first = n ? msgs[0].seq : 0;
    rs->last = n ? msgs[n - 1].seq : 0;
    rs->last_seq = info->last_seq;
    for (size_t i = 0; rs->sn != NULL && i < n; i++)
        on_hist(rs->sn, msgs[i].seq, msgs[i].data, msgs[i].len);
    rs->on_worker2 = worker_current() == &rs->s->workers[2];
    atomic_store(&rs->done, 1);
}

static void test_mailbox__publishers_on_threads_are_sequenced_once_in_order(void **state)
{
    (void)state;
    long live0 = frame_ref_live();
    struct rc_config cfg;
    rc_config_defaults(&cfg);
    rc_config_set_str(&cfg.bind_addr, "127.0.0.1");
    cfg.port = 0;
    cfg.workers = 3;
    cfg.history_size = PRODUCERS * PER_PRODUCER;
    struct server s;
    assert_int_equal(server_init(&s, &cfg, &echo_handler), 0);
    assert_int_equal(server_start(&s), 0);

    pthread_t th[PRODUCERS];
    struct prod pr[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        pr[i].s = &s;
        pr[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, producer, &pr[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);

    uint64_t want = PRODUCERS * PER_PRODUCER;
    for (int tries = 0; tries < 1000 && atomic_load(&acks_total) < (int)want; tries++)
        usleep(10000);
    assert_int_equal(atomic_load(&acks_total), (int)want);
    assert_int_equal(atomic_load(&acks_wrong_thread), 0);
    for (uint64_t q = 1; q <= want; q++)
        assert_int_equal(atomic_load(&acked[q]), 1);

    struct seen sn;
    memset(&sn, 0, sizeof(sn));
    sn.ok = 1;
    for (int i = 0; i < PRODUCERS; i++)
        sn.last_n[i] = -1;
    /* The whole history, in pages of STORE_READ_MAX through ops->read. */
    for (uint64_t since = 0; since < want;) {
        struct read_seen pg = {.s = &s, .sn = &sn};
        struct store_query pq = {.since = since, .limit = STORE_READ_MAX};
        assert_int_equal(s.store->ops->read(s.store, 1, "r", 1, &pq, on_read, &pg), 0);
        for (int tries = 0; tries < 1000 && atomic_load(&pg.done) == 0; tries++)
            usleep(10000);
        assert_int_equal(atomic_load(&pg.done), 1);
        assert_int_equal(pg.status, 0);
        assert_true(pg.n > 0);
        assert_int_equal(pg.last_seq, want);
        since = pg.last;
    }
    assert_int_equal(sn.count, want);
    assert_true(sn.ok);

    /* The asynchronous read: the newest 10 below seq 100, answered on
     * worker 2's thread. */
    struct read_seen rs = {.s = &s};
    struct store_query q = {.since = 0, .before = 100, .limit = 10, .newest = 1};
    assert_int_equal(s.store->ops->read(s.store, 2, "r", 1, &q, on_read, &rs), 0);
    for (int tries = 0; tries < 1000 && atomic_load(&rs.done) == 0; tries++)
        usleep(10000);
    assert_int_equal(atomic_load(&rs.done), 1);
    assert_int_equal(rs.status, 0);
    assert_int_equal(rs.n, 10);
    assert_int_equal(rs.first, 90);
    assert_int_equal(rs.last, 99);
    assert_int_equal(rs.last_seq, want);
    assert_true(rs.on_worker2);

    server_stop(&s, 1);
    server_join(&s);
    rc_config_free(&cfg);
    assert_int_equal(frame_ref_live(), live0);
}

/* What the run receiver and the plain receiver saw, in order: a run as its
 * length and first mail's flags, a plain mail as -1. */
static struct {
    int n;
    int len[200];
    uint32_t first[200];
} seen_runs;

static void run_rx(void *ctx, struct mail *first, unsigned n)
{
    (void)ctx;
    struct mail *m = first;
    for (unsigned i = 1; i < n; i++) { /* the run is consecutive and in order */
        assert_int_equal(m->next->flags, m->flags + 1);
        m = m->next;
    }
    seen_runs.len[seen_runs.n] = (int)n;
    seen_runs.first[seen_runs.n++] = first->flags;
}

static void plain_rx(void *ctx, struct mail *m)
{
    (void)ctx;
    seen_runs.len[seen_runs.n] = -1;
    seen_runs.first[seen_runs.n++] = m->flags;
}

/* A run receiver gets each run of consecutive mails of its type found in
 * one drain, at most MAIL_RUN_MAX at a time, in post order; a mail of
 * another type ends a run; every mail is freed. */
static void test_mailbox__run_receiver_gets_consecutive_runs(void **state)
{
    (void)state;
    memset(&seen_runs, 0, sizeof(seen_runs));
    struct wloop *loop = wloop_new();
    assert_non_null(loop);
    struct mailbox mb;
    mailbox_init(&mb, loop);
    mailbox_register_run(&mb, MAIL_DELIVER, run_rx, NULL, NULL);
    mailbox_register(&mb, MAIL_SEND_CONN, plain_rx, NULL, NULL);
    mail_cache_flush();
    long live0 = rc_alloc_live();
    uint32_t k = 0;
    /* 3 deliveries, a send, MAIL_RUN_MAX + 2 deliveries, a send, 1 delivery */
    int plan[][2] = {{MAIL_DELIVER, 3},
                     {MAIL_SEND_CONN, 1},
                     {MAIL_DELIVER, MAIL_RUN_MAX + 2},
                     {MAIL_SEND_CONN, 1},
                     {MAIL_DELIVER, 1}};
    for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++)
        for (int j = 0; j < plan[i][1]; j++) {
            struct mail *m = mail_new((uint32_t)plan[i][0], "r", 1, NULL, 0);
            m->flags = k++;
            mail_post(&mb, &mb, m);
        }
    mailbox_drain_local(&mb);
    int want_len[] = {3, -1, MAIL_RUN_MAX, 2, -1, 1};
    uint32_t want_first[] = {0, 3, 4, 4 + MAIL_RUN_MAX, 6 + MAIL_RUN_MAX, 7 + MAIL_RUN_MAX};
    assert_int_equal(seen_runs.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(seen_runs.len[i], want_len[i]);
        assert_int_equal(seen_runs.first[i], want_first[i]);
    }
    mail_cache_flush();
    assert_int_equal(rc_alloc_live(), live0); /* every mail freed */
    mailbox_destroy(&mb);
    wloop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailbox__publishers_on_threads_are_sequenced_once_in_order),
        cmocka_unit_test(test_mailbox__run_receiver_gets_consecutive_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
