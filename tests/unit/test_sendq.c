/* test_sendq.c - a connection's outgoing queue: the wire order writev sees
 * (a partly written data frame, then control frames, then data), partial
 * writes at every byte boundary, the single-entry lane that allocates
 * nothing, growth into a ring, small frames copied behind others, slow-
 * consumer drops, and no reference leaked or dropped twice. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame_ref.h"
#include "sendq.h"

static struct frame_ref *text(const char *s)
{
    return frame_ref_encode(0x1, 0, s, strlen(s));
}

/* Every test's end (its teardown): what the queues cached is given back,
 * and no frame reference is leaked or dropped twice. */
static int live_setup(void **state)
{
    static long live0;
    live0 = frame_ref_live();
    *state = &live0;
    return 0;
}

static int live_teardown(void **state)
{
    sendq_cache_flush();
    assert_int_equal(frame_ref_live(), *(long *)*state);
    return 0;
}

/* The replies' frame headers: 16-bit, 7-bit and 64-bit length forms. */
static const uint8_t hdrs[3][10] = {
    {0x82, 0x7e, 1, 2}, {0x82, 5}, {0x82, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8}};
static const size_t hls[3] = {4, 2, 10};

/* Drains q through sendq_iov/sendq_consume, `step` bytes per write (0: all
 * the iovecs at once), and returns what a socket would have received. */
static size_t drain(struct sendq *q, uint8_t *out, size_t cap, size_t step)
{
    size_t got = 0;
    while (!sendq_empty(q)) {
        struct iovec iov[SENDQ_MAX_IOV];
        int n = sendq_iov(q, iov, SENDQ_MAX_IOV);
        assert_true(n > 0);
        size_t want = 0;
        for (int i = 0; i < n; i++)
            want += iov[i].iov_len;
        size_t take = step && step < want ? step : want;
        size_t left = take;
        for (int i = 0; i < n && left > 0; i++) {
            size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
            assert_true(got + k <= cap);
            memcpy(out + got, iov[i].iov_base, k);
            got += k;
            left -= k;
        }
        sendq_consume(q, take);
    }
    return got;
}

static void test_single_frame_by_reference(void **state)
{
    (void)state;
    struct sendq q;
    sendq_init(&q);
    struct frame_ref *f = text("hello");
    sendq_push_ref(&q, f);
    /* Queued by reference: the queue holds the second reference, in its
     * one-entry slot, with no lanes allocated. */
    assert_int_equal(atomic_load(&f->refs), 2);
    assert_ptr_equal(q.one, f);
    assert_null(q.lanes);
    assert_int_equal(q.bytes, f->len);
    struct iovec iov[4];
    assert_int_equal(sendq_iov(&q, iov, 4), 1);
    assert_ptr_equal(iov[0].iov_base, f->data);
    assert_int_equal(iov[0].iov_len, f->len);
    sendq_consume(&q, 3);
    /* A partly written entry keeps its offset in the lanes. */
    assert_null(q.one);
    assert_non_null(q.lanes);
    assert_int_equal(sendq_iov(&q, iov, 4), 1);
    assert_ptr_equal(iov[0].iov_base, f->data + 3);
    sendq_consume(&q, f->len - 3);
    assert_true(sendq_empty(&q));
    assert_null(q.one);
    assert_null(q.lanes);
    assert_int_equal(atomic_load(&f->refs), 1);
    frame_ref_put(f);
}

static void test_push_first_and_single_done(void **state)
{
    (void)state;
    struct sendq q;
    sendq_init(&q);
    struct frame_ref *f = text("fan-out"), *g = text("behind");
    assert_null(sendq_single(&q));
    /* On an empty queue: the only entry, by reference, as sendq_push_ref. */
    assert_int_equal(sendq_push_first(&q, f), 1);
    assert_int_equal(atomic_load(&f->refs), 2);
    assert_ptr_equal(sendq_single(&q), f);
    assert_null(q.lanes);
    assert_int_equal(q.bytes, f->len);
    /* Not empty: nothing is queued, g keeps its one reference. */
    assert_int_equal(sendq_push_first(&q, g), 0);
    assert_int_equal(atomic_load(&g->refs), 1);
    assert_int_equal(q.bytes, f->len);
    /* Written whole: the entry's reference is dropped, the queue is empty. */
    sendq_single_done(&q);
    assert_true(sendq_empty(&q));
    assert_null(sendq_single(&q));
    assert_int_equal(atomic_load(&f->refs), 1);
    /* A queue with lanes (a control frame) has no single entry and takes
     * no first push. */
    sendq_push_ctrl(&q, g);
    assert_null(sendq_single(&q));
    assert_int_equal(sendq_push_first(&q, f), 0);
    sendq_clear(&q);
    frame_ref_put(f);
    frame_ref_put(g);
}

static void test_small_frames_behind_others_are_copied(void **state)
{
    (void)state;
    struct sendq q;
    sendq_init(&q);
    struct frame_ref *a = text("first"), *b = text("second"), *c = text("third");
    sendq_push_ref(&q, a);
    sendq_push_ref(&q, b);
    sendq_push_ref(&q, c);
    /* a by reference, b and c copied into one private chunk */
    assert_int_equal(atomic_load(&a->refs), 2);
    assert_int_equal(atomic_load(&b->refs), 1);
    assert_int_equal(atomic_load(&c->refs), 1);
    struct iovec iov[4];
    assert_int_equal(sendq_iov(&q, iov, 4), 2);
    uint8_t out[64], want[64];
    size_t wl = 0;
    memcpy(want + wl, a->data, a->len), wl += a->len;
    memcpy(want + wl, b->data, b->len), wl += b->len;
    memcpy(want + wl, c->data, c->len), wl += c->len;
    assert_int_equal(drain(&q, out, sizeof(out), 0), wl);
    assert_memory_equal(out, want, wl);
    frame_ref_put(a), frame_ref_put(b), frame_ref_put(c);
}

/* Builds the same mixed queue again and again and drains it `step` bytes at
 * a time: the bytes must come out in wire order whatever the write sizes. */
static void test_partial_writes_keep_wire_order(void **state)
{
    (void)state;
    static uint8_t big[3000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    for (size_t step = 1; step <= 97; step += 3) {
        struct sendq q;
        sendq_init(&q);
        struct frame_ref *large = frame_ref_encode(0x2, 0, big, sizeof(big));
        struct frame_ref *small = text("tiny");
        struct frame_ref *ping = frame_ref_encode(0x9, 0, "p", 1);
        uint8_t want[8192], out[8192];
        size_t wl = 0;
        sendq_push_ref(&q, large);
        /* the first write starts the large frame: the ping must wait */
        struct iovec iov[SENDQ_MAX_IOV];
        sendq_iov(&q, iov, SENDQ_MAX_IOV);
        sendq_consume(&q, 10);
        memcpy(want, large->data, large->len), wl = large->len;
        sendq_push_ref(&q, small);
        sendq_push_ctrl(&q, ping);
        assert_int_equal(
            sendq_push_copy(&q, (const uint8_t *)"\x81\x02", 2, (const uint8_t *)"ok", 2), 0);
        memcpy(want + wl, ping->data, ping->len), wl += ping->len;
        memcpy(want + wl, small->data, small->len), wl += small->len;
        memcpy(want + wl, "\x81\x02ok", 4), wl += 4;
        assert_int_equal(q.bytes, wl - 10);
        size_t got = drain(&q, out, sizeof(out), step);
        assert_int_equal(got, wl - 10);
        assert_memory_equal(out, want + 10, wl - 10);
        assert_null(q.one);
        assert_null(q.lanes);
        frame_ref_put(large), frame_ref_put(small), frame_ref_put(ping);
    }
}

/* A reply into an empty queue (sendq_push_copyv's inline copy up to 128
 * bytes, the general copy above): every header size and payload size from 0
 * to 300 comes out byte for byte, in one entry, a second time from the
 * chunk cache, and in two parts. */
static void test_reply_copy_every_size(void **state)
{
    (void)state;
    uint8_t payload[300], out[400];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 13 + 1);
    for (int h = 0; h < 3; h++) {
        for (size_t n = 0; n <= sizeof(payload); n++) {
            for (int round = 0; round < 2; round++) { /* a new chunk, then a cached one */
                struct sendq q;
                sendq_init(&q);
                struct iovec parts[2] = {{.iov_base = payload, .iov_len = n / 2},
                                         {.iov_base = payload + n / 2, .iov_len = n - n / 2}};
                if (round == 0) {
                    struct iovec one = {.iov_base = payload, .iov_len = n};
                    assert_int_equal(sendq_push_copyv(&q, hdrs[h], hls[h], &one, 1), 0);
                } else {
                    assert_int_equal(sendq_push_copyv(&q, hdrs[h], hls[h], parts, 2), 0);
                }
                assert_non_null(sendq_single(&q));
                assert_int_equal(q.bytes, hls[h] + n);
                memset(out, 0xee, sizeof(out));
                assert_int_equal(drain(&q, out, sizeof(out), sizeof(out)), hls[h] + n);
                assert_memory_equal(out, hdrs[h], hls[h]);
                assert_memory_equal(out + hls[h], payload, n);
                assert_true(sendq_empty(&q));
            }
        }
    }
}

/* A longer reply into an empty queue (push_copyv_slow's first case: one
 * part that fits a chunk, a chunk of its own and one memcpy) at the sizes
 * around its limits, every header size, into a new chunk and a cached one;
 * past the limit it takes the general copy. Then a short reply reuses the
 * cached chunk without the long one's bytes. */
static void test_reply_copy_long_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {129,
                                   130,
                                   255,
                                   1024,
                                   1025,
                                   SENDQ_CHUNK - 33,
                                   SENDQ_CHUNK - 32,
                                   SENDQ_CHUNK - 31,
                                   SENDQ_CHUNK - 10,
                                   SENDQ_CHUNK - 4,
                                   SENDQ_CHUNK - 2,
                                   SENDQ_CHUNK,
                                   SENDQ_CHUNK + 1,
                                   3 * SENDQ_CHUNK};
    size_t max = 3 * SENDQ_CHUNK;
    uint8_t *payload = malloc(max), *out = malloc(max + 16);
    assert_non_null(payload);
    assert_non_null(out);
    for (size_t i = 0; i < max; i++)
        payload[i] = (uint8_t)(i * 7 + (i >> 9));
    for (int h = 0; h < 3; h++) {
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            size_t n = sizes[si];
            for (int round = 0; round < 2; round++) { /* a new chunk, then a cached one */
                struct sendq q;
                sendq_init(&q);
                struct iovec one = {.iov_base = payload, .iov_len = n};
                assert_int_equal(sendq_push_copyv(&q, hdrs[h], hls[h], &one, 1), 0);
                assert_int_equal(q.bytes, hls[h] + n);
                if (hls[h] + n <= SENDQ_CHUNK) { /* one chunk, the queue's only entry */
                    assert_non_null(sendq_single(&q));
                    assert_int_equal(sendq_single(&q)->len, hls[h] + n);
                    assert_int_equal(sendq_single(&q)->cap, SENDQ_CHUNK);
                }
                memset(out, 0xee, max + 16);
                assert_int_equal(drain(&q, out, max + 16, 0), hls[h] + n);
                assert_memory_equal(out, hdrs[h], hls[h]);
                assert_memory_equal(out + hls[h], payload, n);
                assert_true(sendq_empty(&q));
                /* the chunk goes back to the cache; a short reply takes it */
                assert_int_equal(
                    sendq_push_copy(&q, (const uint8_t *)"\x81\x02", 2, (const uint8_t *)"ok", 2),
                    0);
                assert_int_equal(q.bytes, 4);
                assert_int_equal(drain(&q, out, max + 16, 0), 4);
                assert_memory_equal(out, "\x81\x02ok", 4);
            }
        }
    }
    free(payload);
    free(out);
}

/* The queue stays in its one-entry state (no lanes allocated) while replies
 * and small frames fit in one private chunk, and moves to the lanes, in wire
 * order, when a control frame or a second entry arrives. */
static void test_one_entry_state_and_its_end(void **state)
{
    (void)state;
    struct sendq q;
    sendq_init(&q);
    uint8_t want[8192], out[8192];
    size_t wl = 0;
    assert_int_equal(sendq_push_copy(&q, (const uint8_t *)"\x81\x02", 2, (const uint8_t *)"ab", 2),
                     0);
    assert_int_equal(sendq_push_copy(&q, (const uint8_t *)"\x81\x02", 2, (const uint8_t *)"cd", 2),
                     0);
    memcpy(want + wl,
           "\x81\x02"
           "ab\x81\x02"
           "cd",
           8),
        wl += 8;
    struct frame_ref *small = text("shared");
    sendq_push_ref(&q, small); /* copied into the same chunk */
    memcpy(want + wl, small->data, small->len), wl += small->len;
    assert_non_null(q.one);
    assert_true(q.one->flags & FRAME_PRIVATE);
    assert_int_equal(q.one->len, wl);
    assert_null(q.lanes);
    assert_int_equal(atomic_load(&small->refs), 1);
    /* a control frame overtakes the chunk, which has not started */
    struct frame_ref *ping = frame_ref_encode(0x9, 0, "p", 1);
    sendq_push_ctrl(&q, ping);
    assert_null(q.one);
    assert_non_null(q.lanes);
    uint8_t all[8192];
    memcpy(all, ping->data, ping->len);
    memcpy(all + ping->len, want, wl);
    size_t got = drain(&q, out, sizeof(out), 3);
    assert_int_equal(got, ping->len + wl);
    assert_memory_equal(out, all, got);
    assert_null(q.lanes);
    assert_null(q.one);

    /* a large frame by reference, then a small one: two entries */
    static uint8_t big[SENDQ_COPY_MAX + 10];
    struct frame_ref *large = frame_ref_encode(0x2, 0, big, sizeof(big));
    sendq_push_ref(&q, large);
    assert_ptr_equal(q.one, large);
    sendq_push_ref(&q, small);
    assert_null(q.one);
    assert_int_equal(q.lanes->data.count, 2);
    assert_int_equal(q.bytes, large->len + small->len);
    got = drain(&q, out, sizeof(out), 0);
    assert_int_equal(got, large->len + small->len);
    assert_memory_equal(out, large->data, large->len);
    assert_memory_equal(out + large->len, small->data, small->len);
    assert_null(q.lanes);

    /* behind a control frame only, a small data frame keeps its reference
     * (and so its flags: a close frame is never dropped as data) */
    struct frame_ref *close = frame_ref_encode(0x8, 0, "\x03\xe8", 2);
    close->flags |= FRAME_CLOSE;
    sendq_push_ctrl(&q, ping);
    sendq_push_ref(&q, close);
    assert_int_equal(q.lanes->data.count, 1);
    assert_int_equal(atomic_load(&close->refs), 2);
    size_t dropped_bytes = 0;
    assert_int_equal(sendq_drop_pending(&q, 0, &dropped_bytes), 0);
    got = drain(&q, out, sizeof(out), 0);
    assert_int_equal(got, ping->len + close->len);
    assert_memory_equal(out + ping->len, close->data, close->len);
    assert_null(q.lanes);
    frame_ref_put(close);
    frame_ref_put(small), frame_ref_put(ping), frame_ref_put(large);
}

static void test_ring_growth_and_clear(void **state)
{
    (void)state;
    static uint8_t big[SENDQ_COPY_MAX + 10];
    struct frame_ref *f = frame_ref_encode(0x2, 0, big, sizeof(big));
    struct sendq q;
    sendq_init(&q);
    for (int i = 0; i < 100; i++)
        sendq_push_ref(&q, f);
    assert_int_equal(q.lanes->data.count, 100);
    assert_true(q.lanes->data.cap >= 100);
    assert_int_equal(atomic_load(&f->refs), 101);
    /* consume 30 whole frames and half of the 31st */
    sendq_consume(&q, 30 * f->len + f->len / 2);
    assert_int_equal(q.lanes->data.count, 70);
    assert_int_equal(atomic_load(&f->refs), 71);
    sendq_clear(&q);
    assert_true(sendq_empty(&q));
    assert_int_equal(atomic_load(&f->refs), 1);
    frame_ref_put(f);
}

static void test_drop_pending(void **state)
{
    (void)state;
    static uint8_t big[SENDQ_COPY_MAX + 10];
    struct frame_ref *room_a = frame_ref_encode(0x2, 0, big, sizeof(big));
    struct frame_ref *room_b = frame_ref_encode(0x2, 0, big, sizeof(big));
    struct frame_ref *close = frame_ref_encode(0x8, 0, "\x03\xe8", 2);
    room_a->tag = 1;
    room_b->tag = 2;
    close->flags |= FRAME_CLOSE;
    struct sendq q;
    sendq_init(&q);
    sendq_push_ref_nocopy(&q, room_a); /* partly written below: kept */
    sendq_consume(&q, 5);
    sendq_push_ref_nocopy(&q, room_a);
    sendq_push_ref_nocopy(&q, room_b);
    sendq_push_ref_nocopy(&q, room_a);
    size_t bytes = 0;
    assert_int_equal(sendq_drop_pending(&q, 1, &bytes), 2);
    assert_int_equal(bytes, 2 * room_a->len);
    assert_int_equal(q.lanes->data.count, 2);
    assert_int_equal(q.bytes, room_a->len - 5 + room_b->len);
    sendq_push_ref_nocopy(&q, close);
    assert_int_equal(sendq_drop_pending(&q, 0, &bytes), 1); /* room_b; the close stays */
    assert_int_equal(q.lanes->data.count, 2);
    uint8_t out[4096];
    size_t got = drain(&q, out, sizeof(out), 0);
    assert_int_equal(got, room_a->len - 5 + close->len);
    assert_memory_equal(out + got - close->len, close->data, close->len);
    /* a single entry dropped from the one-entry slot */
    sendq_push_ref(&q, room_b);
    assert_ptr_equal(q.one, room_b);
    assert_null(q.lanes);
    assert_int_equal(sendq_drop_pending(&q, 2, &bytes), 1);
    assert_true(sendq_empty(&q));
    assert_null(q.one);
    assert_null(q.lanes);
    frame_ref_put(room_a), frame_ref_put(room_b), frame_ref_put(close);
}

/* sendq_push_ref_from: a frame built behind headroom goes out from `from`,
 * as a partly written data head (control frames wait behind it, drops keep
 * it), and only onto an empty data lane. */
static void test_push_ref_from(void **state)
{
    (void)state;
    struct frame_ref *blk = frame_ref_new(64, 0);
    memcpy(blk->data, "xxxxxxxxxx", 10);        /* headroom, never sent */
    memcpy(blk->data + 10, "\x81\x05hello", 7); /* the frame */
    blk->len = 17;
    struct frame_ref *pong = frame_ref_encode(0xA, 0, "p", 1);
    struct frame_ref *other = text("other");
    struct sendq q;
    sendq_init(&q);
    assert_int_equal(sendq_push_ref_from(&q, blk, 10), 0);
    assert_int_equal(atomic_load(&blk->refs), 2);
    assert_int_equal(q.bytes, 7);
    sendq_push_ctrl(&q, pong);
    sendq_push_ref(&q, other);
    size_t bytes = 0;
    assert_int_equal(sendq_drop_pending(&q, 0, &bytes), 1); /* `other`; the frame stays */
    assert_int_equal(sendq_push_ref_from(&q, blk, 10), -EAGAIN);
    sendq_push_ref(&q, other);
    assert_int_equal(sendq_push_ref_from(&q, blk, 10), -EAGAIN); /* a data frame queued */
    assert_int_equal(atomic_load(&blk->refs), 2);
    for (size_t step = 0; step <= 3; step++) {
        uint8_t out[64];
        size_t got = drain(&q, out, sizeof(out), step);
        assert_int_equal(got, 7 + pong->len + other->len);
        assert_memory_equal(out, "\x81\x05hello", 7); /* from `from`, before the pong */
        assert_memory_equal(out + 7, pong->data, pong->len);
        assert_memory_equal(out + 7 + pong->len, other->data, other->len);
        assert_int_equal(atomic_load(&blk->refs), 1);
        sendq_push_ref_from(&q, blk, 10);
        sendq_push_ctrl(&q, pong);
        sendq_push_ref(&q, other);
    }
    sendq_clear(&q);
    /* behind a control frame alone, the data lane is empty: accepted */
    sendq_push_ctrl(&q, pong);
    assert_int_equal(sendq_push_ref_from(&q, blk, 10), 0);
    uint8_t out[64];
    assert_int_equal(drain(&q, out, sizeof(out), 1), pong->len + 7);
    frame_ref_put(blk), frame_ref_put(pong), frame_ref_put(other);
}

/* Big blocks (256 KiB..16 MiB) come in power-of-two classes and are reused
 * through a small cache (off under sanitizers), so a history answer's block
 * is not mapped afresh per read. */
static void test_big_blocks(void **state)
{
    (void)state;
    struct frame_ref *a = frame_ref_new(300 << 10, 0);
    assert_true(a->flags & FRAME_BIG);
    assert_int_equal(a->cap, 512 << 10);
    struct frame_ref *small = frame_ref_new(100 << 10, 0);
    assert_false(small->flags & FRAME_BIG);
    struct frame_ref *huge = frame_ref_try_new((size_t)17 << 20, 0);
    assert_non_null(huge);
    assert_false(huge->flags & FRAME_BIG);
    memset(a->data, 'a', a->cap);
    void *was = a;
    frame_ref_put(a);
    struct frame_ref *b = frame_ref_new(400 << 10, 0); /* the same class */
#ifndef RC_SANITIZED
    assert_ptr_equal(b, was);
#else
    (void)was;
#endif
    assert_int_equal(atomic_load(&b->refs), 1);
    assert_int_equal(b->len, 0);
    frame_ref_put(b), frame_ref_put(small), frame_ref_put(huge);
}

/* Each test between live_setup and live_teardown. */
#define SENDQ_TEST(t) cmocka_unit_test_setup_teardown(t, live_setup, live_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        SENDQ_TEST(test_single_frame_by_reference),
        SENDQ_TEST(test_push_first_and_single_done),
        SENDQ_TEST(test_small_frames_behind_others_are_copied),
        SENDQ_TEST(test_reply_copy_every_size),
        SENDQ_TEST(test_reply_copy_long_sizes),
        SENDQ_TEST(test_partial_writes_keep_wire_order),
        SENDQ_TEST(test_one_entry_state_and_its_end),
        SENDQ_TEST(test_ring_growth_and_clear),
        SENDQ_TEST(test_drop_pending),
        SENDQ_TEST(test_push_ref_from),
        SENDQ_TEST(test_big_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
