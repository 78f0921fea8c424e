/* test_store_mem.c - the memory store against the store.h contract, with a
 * fake host whose post() queues the call until the test runs it (so "never
 * synchronously" is checked): room_open/append/last seq, the ring keeping
 * the newest history_size, range reads (since, before, limit, newest),
 * frame references (no copy, nothing leaked, history_size 0 keeps none),
 * room_close, and the bad queries that get an error instead of a callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "bus.h"
#include "err.h"
#include "frame_ref.h"
#include "msgframe.h"
#include "store_mem.h"

/* The fake host: posted calls wait here, with the worker they were for. */
static struct {
    void (*fn)(void *);
    void *arg;
    int worker;
} posted[64];
static int nposted;

static void fake_post(void *ctx, int worker, void (*fn)(void *arg), void *arg)
{
    assert_true(nposted < 64);
    posted[nposted].fn = fn;
    posted[nposted].arg = arg;
    posted[nposted].worker = worker;
    nposted++;
}

static int run_posted(void)
{
    int n = nposted;
    for (int i = 0; i < n; i++)
        posted[i].fn(posted[i].arg);
    nposted = 0;
    return n;
}

static struct store *new_store(size_t history)
{
    struct store_host h = {.ctx = NULL, .nworkers = 2, .post = fake_post};
    return store_mem_new(&h, history);
}

/* Appends seq 1..n to room "r" the way the local bus does (encoded frame). */
static void append_n(struct store *st, uint64_t from, uint64_t to)
{
    for (uint64_t seq = from; seq <= to; seq++) {
        char p[32];
        int n = snprintf(p, sizeof(p), "{\"n\":%llu}", (unsigned long long)seq);
        uint32_t off;
        struct frame_ref *f =
            msgframe_encode("r", 1, p, (size_t)n, ROOM_PUB_STAMP, seq, 1000 + (int64_t)seq, &off);
        struct store_msg m = {.seq = seq,
                              .ts_ms = 1000 + (int64_t)seq,
                              .flags = ROOM_PUB_STAMP,
                              .data = (const char *)f->data + off,
                              .len = f->len - off};
        assert_int_equal(st->ops->append(st, "r", 1, &m, f), 0);
        frame_ref_put(f);
    }
}

struct got {
    int calls, status;
    size_t n;
    uint64_t seqs[16];
    uint64_t last_seq;
    char first[64];
};

static void on_read(void *ud, int status, const struct store_room *info,
                    const struct store_msg *msgs, size_t n)
{
    struct got *g = ud;
    g->calls++;
    g->status = status;
    g->n = n;
    g->last_seq = info->last_seq;
    for (size_t i = 0; i < n && i < 16; i++)
        g->seqs[i] = msgs[i].seq;
    if (n)
        snprintf(g->first, sizeof(g->first), "%.*s", (int)msgs[0].len, msgs[0].data);
}

static struct got read_q(struct store *st, uint64_t since, uint64_t before, uint32_t limit,
                         int newest)
{
    struct got g;
    memset(&g, 0, sizeof(g));
    struct store_query q = {.since = since, .before = before, .limit = limit, .newest = newest};
    assert_int_equal(st->ops->read(st, 1, "r", 1, &q, on_read, &g), 0);
    assert_int_equal(g.calls, 0); /* never synchronously */
    assert_int_equal(nposted, 1);
    assert_int_equal(posted[0].worker, 1);
    run_posted();
    assert_int_equal(g.calls, 1);
    return g;
}

/* The room's last seq as a read answers it (0: unknown room). */
static uint64_t last_seq(struct store *st)
{
    return read_q(st, 0, 0, 1, 1).last_seq;
}

static void test_store_mem__ring_keeps_the_newest_and_reads_ranges(void **state)
{
    long live0 = frame_ref_live();
    struct store *st = new_store(10);
    struct store_room info;
    assert_int_equal(st->ops->room_open(st, "r", 1, &info), 0);
    assert_int_equal(info.last_seq, 0);
    assert_true(strlen(info.epoch) > 0);
    char epoch[STORE_EPOCH_MAX + 1];
    memcpy(epoch, info.epoch, sizeof(epoch));
    append_n(st, 1, 25);
    assert_int_equal(frame_ref_live(), live0 + 10); /* the ring holds refs, no copies */
    assert_int_equal(st->ops->room_open(st, "r", 1, &info), 0);
    assert_int_equal(info.last_seq, 25);
    assert_string_equal(info.epoch, epoch);

    struct got g = read_q(st, 0, 0, 100, 0); /* all: seq 16..25 */
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 10);
    assert_int_equal(g.seqs[0], 16);
    assert_int_equal(g.seqs[9], 25);
    assert_int_equal(g.last_seq, 25);
    assert_string_equal(g.first, "{\"n\":16,\"seq\":16,\"ts\":1016}");

    g = read_q(st, 20, 0, 3, 0); /* replay after 20: the oldest 3 */
    assert_int_equal(g.n, 3);
    assert_int_equal(g.seqs[0], 21);
    assert_int_equal(g.seqs[2], 23);

    g = read_q(st, 0, 0, 3, 1); /* the last 3 */
    assert_int_equal(g.n, 3);
    assert_int_equal(g.seqs[0], 23);
    assert_int_equal(g.seqs[2], 25);

    g = read_q(st, 0, 20, 2, 1); /* paging back: the 2 before 20 */
    assert_int_equal(g.n, 2);
    assert_int_equal(g.seqs[0], 18);
    assert_int_equal(g.seqs[1], 19);

    /* Reads hold their own references: a read whose answer is pending
     * survives the ring overwriting those entries. */
    struct got late;
    memset(&late, 0, sizeof(late));
    struct store_query q = {.since = 0, .limit = 2, .newest = 0};
    assert_int_equal(st->ops->read(st, 0, "r", 1, &q, on_read, &late), 0);
    append_n(st, 26, 40);
    run_posted();
    assert_int_equal(late.n, 2);
    assert_int_equal(late.seqs[0], 16);
    assert_string_equal(late.first, "{\"n\":16,\"seq\":16,\"ts\":1016}");

    st->ops->destroy(st);
    assert_int_equal(frame_ref_live(), live0);
}

/* store_query.sink: begin, the rows oldest first, end, once, just before cb
 * (which gets the messages too). */
struct sunk {
    int begins, rows, ends, cbs, cb_after_end, desc, in_order;
    size_t bytes;
    uint64_t first, prev;
};

static void sink_begin(void *arg, const struct store_room *info, int desc, size_t bytes)
{
    (void)info;
    struct sunk *k = arg;
    k->begins++;
    k->desc = desc;
    k->bytes = bytes;
    k->in_order = 1;
}

static void sink_row(void *arg, const struct store_msg *m)
{
    struct sunk *k = arg;
    if (k->rows++ == 0)
        k->first = m->seq;
    else if (m->seq != k->prev + 1)
        k->in_order = 0;
    k->prev = m->seq;
}

static void sink_end(void *arg, int status)
{
    struct sunk *k = arg;
    k->ends += status == 0;
}

static const struct store_sink test_sink = {.begin = sink_begin, .row = sink_row, .end = sink_end};

static void on_sunk(void *ud, int status, const struct store_room *info,
                    const struct store_msg *msgs, size_t n)
{
    (void)info;
    struct sunk *k = ud;
    k->cbs++;
    k->cb_after_end = k->begins == 1 && k->ends == 1 && status == 0 && (size_t)k->rows == n &&
                      n > 0 && msgs[0].seq == k->first;
}

static void test_store_mem__sink_runs_before_cb(void **state)
{
    (void)state;
    long live0 = frame_ref_live();
    struct store *st = new_store(10);
    append_n(st, 1, 5);
    struct sunk k;
    memset(&k, 0, sizeof(k));
    struct store_query q = {
        .since = 2, .limit = 10, .newest = 1, .sink = &test_sink, .sink_arg = &k};
    assert_int_equal(st->ops->read(st, 1, "r", 1, &q, on_sunk, &k), 0);
    assert_int_equal(k.begins, 0); /* never synchronously */
    assert_int_equal(run_posted(), 1);
    assert_int_equal(k.cbs, 1);
    assert_true(k.cb_after_end);
    assert_int_equal(k.desc, 0); /* oldest first, newest read or not */
    assert_true(k.in_order);
    assert_int_equal(k.rows, 3);
    assert_int_equal(k.first, 3);
    assert_true(k.bytes > 0);
    st->ops->destroy(st);
    assert_int_equal(frame_ref_live(), live0);
}

static void test_store_mem__unknown_rooms_bad_queries_and_close(void **state)
{
    long live0 = frame_ref_live();
    struct store *st = new_store(4);
    struct got g;
    memset(&g, 0, sizeof(g));
    struct store_query q = {.since = 0, .limit = 10};
    assert_int_equal(st->ops->read(st, 0, "none", 4, &q, on_read, &g), 0);
    run_posted();
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.last_seq, 0);

    q.limit = 0;
    assert_int_equal(st->ops->read(st, 0, "r", 1, &q, on_read, &g), RC_E_INVAL);
    q.limit = STORE_READ_MAX + 1;
    assert_int_equal(st->ops->read(st, 0, "r", 1, &q, on_read, &g), RC_E_INVAL);
    q.limit = 1;
    assert_int_equal(st->ops->read(st, 2, "r", 1, &q, on_read, &g), RC_E_INVAL); /* no worker 2 */
    assert_int_equal(nposted, 0);

    append_n(st, 1, 3);
    assert_int_equal(last_seq(st), 3);
    st->ops->room_close(st, "r", 1);
    assert_int_equal(last_seq(st), 0);
    assert_int_equal(frame_ref_live(), live0);
    struct store_room info;
    assert_int_equal(st->ops->room_open(st, "r", 1, &info), 0);
    assert_int_equal(info.last_seq, 0);
    char why[32];
    assert_int_equal(st->ops->health(st, why, sizeof(why)), 0);
    st->ops->flush(st);
    st->ops->destroy(st);
}

/* history_size 0 keeps only the last seq; no frame is held. */
static void test_store_mem__history_size_zero_keeps_no_frames(void **state)
{
    long live0 = frame_ref_live();
    struct store *st = new_store(0);
    append_n(st, 1, 5);
    assert_int_equal(frame_ref_live(), live0);
    assert_int_equal(last_seq(st), 5);
    struct got g = read_q(st, 0, 0, 10, 1);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.last_seq, 5);
    st->ops->destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_mem__ring_keeps_the_newest_and_reads_ranges),
        cmocka_unit_test(test_store_mem__unknown_rooms_bad_queries_and_close),
        cmocka_unit_test(test_store_mem__sink_runs_before_cb),
        cmocka_unit_test(test_store_mem__history_size_zero_keeps_no_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
