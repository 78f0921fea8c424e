/* test_ws_msg.c - the incremental receiver.
 *
 * Every vector is fed whole, split in two at every offset, and one byte at a
 * time; each chunk is copied to the end of a guard page, so reading past the
 * bytes fed crashes. Expected bytes are written by hand from RFC 6455 §5.7;
 * longer client frames come from a small masked encoder below. Every run ends
 * with ws_msg_reset and a check that rc_alloc_live is back where it started.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "closecode.h"
#include "err.h"
#include "guardbuf.h"
#include "utf8.h"
#include "ws_frame.h"
#include "ws_msg.h"

#define MAX_EVENTS 16

static const struct ws_msg_cfg server_cfg = {.max_message = 1 << 20, .require_mask = 1};
static const struct ws_msg_cfg client_cfg = {.max_message = 1 << 20, .reject_masked = 1};
static const struct ws_msg_cfg any_cfg = {.max_message = 1 << 20};

/* --- recording ---------------------------------------------------------------- */

struct rec_ev {
    enum ws_event_type type;
    unsigned opcode, rsv, close_code;
    uint8_t *data; /* malloc'd copy (the event's data dies with the guard buffer) */
    size_t len;
};

struct run {
    struct rec_ev ev[MAX_EVENTS];
    size_t nev;
    int err;       /* 0 or the error ws_msg_feed returned */
    size_t err_at; /* offset of the last byte fed when the error came */
};

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->nev; i++)
        free(r->ev[i].data);
    memset(r, 0, sizeof(*r));
}

/* Feeds data[0..n) (global offset `base`) as one read. Returns 0 or the error. */
static int feed_chunk(struct ws_msg *m, const uint8_t *data, size_t n, size_t base, struct run *r)
{
    uint8_t *p = guardbuf_put(data, n);
    size_t left = n;
    do {
        struct ws_event ev;
        ssize_t c = ws_msg_feed(m, p, left, &ev);
        if (c < 0) {
            r->err = (int)c;
            r->err_at = base + n - 1;
            return (int)c;
        }
        assert_true((size_t)c <= left);
        if (ev.type == WS_EV_NONE) {
            assert_int_equal(c, left); /* no event: everything was used */
        } else {
            assert_true(r->nev < MAX_EVENTS);
            assert_non_null(ev.data);
            struct rec_ev *e = &r->ev[r->nev++];
            e->type = ev.type;
            e->opcode = ev.opcode;
            e->rsv = ev.rsv;
            e->close_code = ev.close_code;
            e->len = ev.len;
            e->data = malloc(ev.len + 1);
            memcpy(e->data, ev.data, ev.len);
        }
        p += c;
        left -= (size_t)c;
    } while (left > 0);
    return 0;
}

/* Feeds data split at the offsets cuts[0..ncuts) (ascending). */
static void run_cuts(const struct ws_msg_cfg *cfg, const uint8_t *data, size_t len,
                     const size_t *cuts, size_t ncuts, struct run *r)
{
    struct ws_msg m;
    ws_msg_init(&m, cfg);
    memset(r, 0, sizeof(*r));
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (feed_chunk(&m, data + at, end - at, at, r) < 0)
            break;
        at = end;
    }
    /* After a close the peer sends nothing more, so a message may stay open. */
    if (r->err == 0 && !(r->nev && r->ev[r->nev - 1].type == WS_EV_CLOSE))
        assert_true(ws_msg_idle(&m));
    ws_msg_reset(&m);
}

/* --- expectations --------------------------------------------------------------- */

struct exp_ev {
    enum ws_event_type type;
    unsigned opcode;
    unsigned close_code;
    const void *data;
    size_t len;
};

#define EXP_MSG(op, s)                                                                             \
    {                                                                                              \
        WS_EV_MESSAGE, op, 0, s, sizeof(s) - 1                                                     \
    }
#define EXP_CTRL(t, s)                                                                             \
    {                                                                                              \
        t, 0, 0, s, sizeof(s) - 1                                                                  \
    }
#define EXP_CLOSE(code, s)                                                                         \
    {                                                                                              \
        WS_EV_CLOSE, WS_OP_CLOSE, code, s, sizeof(s) - 1                                           \
    }

static void expect_run(const struct run *r, const struct exp_ev *exp, size_t nexp, int err,
                       const char *mode, size_t k)
{
    if (r->err != err)
        fail_msg("%s %zu: error %d, want %d", mode, k, r->err, err);
    if (err)
        return;
    if (r->nev != nexp)
        fail_msg("%s %zu: %zu events, want %zu", mode, k, r->nev, nexp);
    for (size_t i = 0; i < nexp; i++) {
        const struct rec_ev *e = &r->ev[i];
        assert_int_equal(e->type, exp[i].type);
        if (exp[i].type == WS_EV_MESSAGE)
            assert_int_equal(e->opcode, exp[i].opcode);
        if (exp[i].type == WS_EV_CLOSE)
            assert_int_equal(e->close_code, exp[i].close_code);
        assert_int_equal(e->len, exp[i].len);
        assert_memory_equal(e->data, exp[i].data, exp[i].len);
    }
}

/* Whole, split at every offset (every `stride`-th for big inputs), and byte by
 * byte. fail_at >= 0: the error must come exactly when byte fail_at is fed. */
static void check_stride(const struct ws_msg_cfg *cfg, const void *vdata, size_t len,
                         const struct exp_ev *exp, size_t nexp, int err, long fail_at,
                         size_t stride)
{
    const uint8_t *data = vdata;
    long live = rc_alloc_live();
    struct run r;

    run_cuts(cfg, data, len, NULL, 0, &r);
    expect_run(&r, exp, nexp, err, "whole", 0);
    if (fail_at >= 0)
        assert_int_equal(r.err_at, len - 1);
    run_free(&r);
    assert_int_equal(rc_alloc_live(), live);

    for (size_t k = 0; k <= len; k += (k < 64 || len - k < 64) ? 1 : stride) {
        run_cuts(cfg, data, len, &k, 1, &r);
        expect_run(&r, exp, nexp, err, "split", k);
        if (fail_at >= 0)
            assert_int_equal(r.err_at, (long)k > fail_at ? k - 1 : len - 1);
        run_free(&r);
        assert_int_equal(rc_alloc_live(), live);
    }

    size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    run_cuts(cfg, data, len, cuts, len ? len - 1 : 0, &r);
    free(cuts);
    expect_run(&r, exp, nexp, err, "bytewise", 1);
    if (fail_at >= 0)
        assert_int_equal(r.err_at, (size_t)fail_at);
    run_free(&r);
    assert_int_equal(rc_alloc_live(), live);
}

static void check(const struct ws_msg_cfg *cfg, const void *data, size_t len,
                  const struct exp_ev *exp, size_t nexp)
{
    check_stride(cfg, data, len, exp, nexp, 0, -1, 1);
}

static void check_err(const struct ws_msg_cfg *cfg, const void *data, size_t len, int err,
                      long fail_at)
{
    check_stride(cfg, data, len, NULL, 0, err, fail_at, 1);
}

/* --- a masked client encoder ------------------------------------------------------ */

struct bld {
    uint8_t *p;
    size_t len, cap;
    unsigned nframes;
};

static void bld_raw(struct bld *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

/* Appends one frame; masked with a key that changes per frame. */
static void bld_frame_rsv(struct bld *b, int fin, unsigned rsv, unsigned op, const void *payload,
                          size_t n, int masked)
{
    uint8_t key[4] = {(uint8_t)(0x37 + b->nframes), 0xfa, (uint8_t)(0x21 ^ b->nframes), 0x3d};
    uint8_t h[WS_MAX_HEADER];
    b->nframes++;
    size_t hn = ws_frame_encode_header(h, fin, rsv, op, n, masked ? key : NULL);
    bld_raw(b, h, hn);
    size_t at = b->len;
    if (n)
        bld_raw(b, payload, n);
    if (masked)
        ws_mask(b->p + at, n, key, 0);
}

static void bld_frame(struct bld *b, int fin, unsigned op, const void *payload, size_t n)
{
    bld_frame_rsv(b, fin, 0, op, payload, n, 1);
}

static void bld_free(struct bld *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* --- RFC 6455 §5.7 examples ---------------------------------------------------- */

static void test_ws_msg__rfc_unmasked_hello(void **state)
{
    static const uint8_t v[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const struct exp_ev e[] = {EXP_MSG(WS_OP_TEXT, "Hello")};
    check(&client_cfg, v, sizeof(v), e, 1);
    check(&any_cfg, v, sizeof(v), e, 1);
}

static void test_ws_msg__rfc_masked_hello(void **state)
{
    static const uint8_t v[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const struct exp_ev e[] = {EXP_MSG(WS_OP_TEXT, "Hello")};
    check(&server_cfg, v, sizeof(v), e, 1);
}

static void test_ws_msg__rfc_fragmented_hello(void **state)
{
    static const uint8_t v[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    static const struct exp_ev e[] = {EXP_MSG(WS_OP_TEXT, "Hello")};
    check(&client_cfg, v, sizeof(v), e, 1);
}

static void test_ws_msg__rfc_ping_pong(void **state)
{
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const struct exp_ev eping[] = {EXP_CTRL(WS_EV_PING, "Hello")};
    static const struct exp_ev epong[] = {EXP_CTRL(WS_EV_PONG, "Hello")};
    check(&client_cfg, ping, sizeof(ping), eping, 1);
    check(&server_cfg, pong, sizeof(pong), epong, 1);
}

static void test_ws_msg__rfc_256_and_64k_binary(void **state)
{
    /* 82 7E 0100 [256 bytes] and 82 7F 0000000000010000 [65536 bytes], unmasked. */
    uint8_t *v = malloc(10 + 65536);
    uint8_t *payload = malloc(65536);
    for (size_t i = 0; i < 65536; i++)
        payload[i] = (uint8_t)(i * 7 + (i >> 8));

    memcpy(v, "\x82\x7e\x01\x00", 4);
    memcpy(v + 4, payload, 256);
    struct exp_ev e = {WS_EV_MESSAGE, WS_OP_BINARY, 0, payload, 256};
    check(&client_cfg, v, 4 + 256, &e, 1);

    memcpy(v, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    memcpy(v + 10, payload, 65536);
    e.len = 65536;
    check_stride(&client_cfg, v, 10 + 65536, &e, 1, 0, -1, 509);
    free(v);
    free(payload);
}

static void test_ws_msg__masked_256_and_64k_binary(void **state)
{
    uint8_t *payload = malloc(65536);
    for (size_t i = 0; i < 65536; i++)
        payload[i] = (uint8_t)(i * 13 + 5);
    struct bld b = {0};
    bld_frame(&b, 1, WS_OP_BINARY, payload, 256);
    assert_int_equal(b.len, 8 + 256);
    struct exp_ev e = {WS_EV_MESSAGE, WS_OP_BINARY, 0, payload, 256};
    check(&server_cfg, b.p, b.len, &e, 1);
    bld_free(&b);

    bld_frame(&b, 1, WS_OP_BINARY, payload, 65536);
    assert_int_equal(b.len, 14 + 65536);
    e.len = 65536;
    check_stride(&server_cfg, b.p, b.len, &e, 1, 0, -1, 1021);
    bld_free(&b);
    free(payload);
}

/* --- assembling ------------------------------------------------------------------ */

static void test_ws_msg__control_frames_between_fragments(void **state)
{
    /* §5.4: "Hel" [ping "p"] "l" [pong ""] "o" then a second message. */
    struct bld b = {0};
    bld_frame(&b, 0, WS_OP_TEXT, "Hel", 3);
    bld_frame(&b, 1, WS_OP_PING, "p", 1);
    bld_frame(&b, 0, WS_OP_CONT, "l", 1);
    bld_frame(&b, 1, WS_OP_PONG, "", 0);
    bld_frame(&b, 1, WS_OP_CONT, "o", 1);
    bld_frame(&b, 1, WS_OP_BINARY, "\x00\x01", 2);
    static const struct exp_ev e[] = {
        EXP_CTRL(WS_EV_PING, "p"),
        EXP_CTRL(WS_EV_PONG, ""),
        EXP_MSG(WS_OP_TEXT, "Hello"),
        EXP_MSG(WS_OP_BINARY, "\x00\x01"),
    };
    check(&server_cfg, b.p, b.len, e, 4);
    bld_free(&b);

    /* A close between fragments is delivered too (the caller then stops). */
    bld_frame(&b, 0, WS_OP_BINARY, "ab", 2);
    bld_frame(&b, 1, WS_OP_CLOSE,
              "\x03\xe8"
              "bye",
              5);
    static const struct exp_ev e2[] = {EXP_CLOSE(1000, "bye")};
    check(&server_cfg, b.p, b.len, e2, 1);
    bld_free(&b);
}

static void test_ws_msg__close_frames(void **state)
{
    static const uint8_t empty[] = {0x88, 0x00};
    static const uint8_t code[] = {0x88, 0x02, 0x03, 0xe8};
    static const struct exp_ev e0[] = {EXP_CLOSE(0, "")};
    static const struct exp_ev e1[] = {EXP_CLOSE(1000, "")};
    check(&client_cfg, empty, sizeof(empty), e0, 1);
    check(&client_cfg, code, sizeof(code), e1, 1);

    struct bld b = {0};
    bld_frame(&b, 1, WS_OP_CLOSE,
              "\x0f\xa0"
              "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
              13);
    static const struct exp_ev e2[] = {
        EXP_CLOSE(4000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")};
    check(&server_cfg, b.p, b.len, e2, 1);
    bld_free(&b);

    /* 125-byte close, the largest control payload. */
    uint8_t p[125];
    p[0] = 0x0b, p[1] = 0xb8; /* 3000 */
    memset(p + 2, 'r', 123);
    bld_frame(&b, 1, WS_OP_CLOSE, p, 125);
    struct exp_ev e3 = {WS_EV_CLOSE, WS_OP_CLOSE, 3000, p + 2, 123};
    check(&server_cfg, b.p, b.len, &e3, 1);
    bld_free(&b);
}

static void test_ws_msg__empty_messages_and_fragments(void **state)
{
    struct bld b = {0};
    bld_frame(&b, 1, WS_OP_TEXT, "", 0);
    bld_frame(&b, 1, WS_OP_BINARY, "", 0);
    bld_frame(&b, 0, WS_OP_TEXT, "", 0);
    bld_frame(&b, 0, WS_OP_CONT, "", 0);
    bld_frame(&b, 1, WS_OP_CONT, "", 0);
    bld_frame(&b, 0, WS_OP_TEXT, "", 0);
    bld_frame(&b, 0, WS_OP_CONT, "a", 1);
    bld_frame(&b, 0, WS_OP_CONT, "", 0);
    bld_frame(&b, 1, WS_OP_CONT, "", 0);
    bld_frame(&b, 1, WS_OP_PING, "", 0);
    static const struct exp_ev e[] = {
        EXP_MSG(WS_OP_TEXT, ""),  EXP_MSG(WS_OP_BINARY, ""), EXP_MSG(WS_OP_TEXT, ""),
        EXP_MSG(WS_OP_TEXT, "a"), EXP_CTRL(WS_EV_PING, ""),
    };
    check(&server_cfg, b.p, b.len, e, 5);
    bld_free(&b);

    /* The RFC's unmasked form, ending exactly at the end of the input. */
    static const uint8_t v[] = {0x81, 0x00};
    static const struct exp_ev e1[] = {EXP_MSG(WS_OP_TEXT, "")};
    check(&client_cfg, v, sizeof(v), e1, 1);
}

static void test_ws_msg__several_messages_in_one_buffer(void **state)
{
    struct bld b = {0};
    bld_frame(&b, 1, WS_OP_TEXT, "one", 3);
    bld_frame(&b, 1, WS_OP_BINARY, "two", 3);
    bld_frame(&b, 1, WS_OP_PING, "three", 5);
    bld_frame(&b, 0, WS_OP_TEXT, "fo", 2);
    bld_frame(&b, 1, WS_OP_CONT, "ur", 2);
    bld_frame(&b, 1, WS_OP_TEXT, "\xf0\x9f\x98\x80", 4);
    bld_frame(&b, 1, WS_OP_CLOSE, "\x03\xe9", 2);
    static const struct exp_ev e[] = {
        EXP_MSG(WS_OP_TEXT, "one"),
        EXP_MSG(WS_OP_BINARY, "two"),
        EXP_CTRL(WS_EV_PING, "three"),
        EXP_MSG(WS_OP_TEXT, "four"),
        EXP_MSG(WS_OP_TEXT, "\xf0\x9f\x98\x80"),
        EXP_CLOSE(1001, ""),
    };
    check(&server_cfg, b.p, b.len, e, 6);
    bld_free(&b);
}

static void test_ws_msg__zero_copy_points_into_input(void **state)
{
    struct bld b = {0};
    bld_frame(&b, 1, WS_OP_BINARY, "abcdef", 6);
    bld_frame(&b, 1, WS_OP_PING, "xy", 2);
    uint8_t *in = guardbuf_put(b.p, b.len);
    struct ws_msg m;
    struct ws_event ev;
    long live = rc_alloc_live();
    ws_msg_init(&m, &server_cfg);
    ssize_t c = ws_msg_feed(&m, in, b.len, &ev);
    assert_int_equal(c, 12);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_ptr_equal(ev.data, in + 6); /* in place, unmasked */
    assert_memory_equal(in + 6, "abcdef", 6);
    assert_int_equal(rc_alloc_live(), live);
    c = ws_msg_feed(&m, in + 12, b.len - 12, &ev);
    assert_int_equal(c, 8);
    assert_int_equal(ev.type, WS_EV_PING);
    assert_ptr_equal(ev.data, in + 18);
    assert_null(m.buf);
    ws_msg_reset(&m);
    bld_free(&b);
}

static void test_ws_msg__control_split_inside_fragmented_message(void **state)
{
    /* A ping arriving in pieces while a message is buffered must not disturb it. */
    struct bld b = {0};
    char big[300];
    memset(big, 'z', sizeof(big));
    bld_frame(&b, 0, WS_OP_TEXT, big, 200);
    bld_frame(&b, 1, WS_OP_PING, "0123456789", 10);
    bld_frame(&b, 1, WS_OP_CONT, big + 200, 100);
    struct exp_ev e[] = {EXP_CTRL(WS_EV_PING, "0123456789"),
                         {WS_EV_MESSAGE, WS_OP_TEXT, 0, big, 300}};
    check(&server_cfg, b.p, b.len, e, 2);
    bld_free(&b);
}

/* --- rule violations, each with its exact code ------------------------------------ */

static void test_ws_msg__mask_rules(void **state)
{
    /* §5.1: unmasked client frame on the server; fails once the header is in. */
    static const uint8_t unmasked[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    check_err(&server_cfg, unmasked, sizeof(unmasked), RC_E_PROTO, 1);
    static const uint8_t unmasked_ping[] = {0x89, 0x00};
    check_err(&server_cfg, unmasked_ping, sizeof(unmasked_ping), RC_E_PROTO, 1);
    /* Masked server frame on the client. */
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    check_err(&client_cfg, masked, sizeof(masked), RC_E_PROTO, 5);
}

/* RFC 7692 §6, §6.1: with permessage-deflate, RSV1 marks a compressed
 * message on its first frame only; a compressed text message is not UTF-8
 * checked here (its bytes are deflate data). */
static void test_ws_msg__deflate_rsv1(void **state)
{
    (void)state;
    struct ws_msg_cfg z = server_cfg;
    z.allowed_rsv = WS_RSV1;
    z.deflate = 1;
    struct bld b = {0};
    /* First frame RSV1, continuation without: one message, rsv reported. */
    static const uint8_t bad_utf8[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    bld_frame_rsv(&b, 0, WS_RSV1, WS_OP_TEXT, (const char *)bad_utf8, 4, 1);
    bld_frame_rsv(&b, 1, 0, WS_OP_CONT, (const char *)bad_utf8 + 4, 3, 1);
    static const struct exp_ev e[] = {{WS_EV_MESSAGE, WS_OP_TEXT, 0, bad_utf8, sizeof(bad_utf8)}};
    check(&z, b.p, b.len, e, 1);
    struct ws_msg m;
    struct ws_event ev;
    ws_msg_init(&m, &z);
    uint8_t *in = guardbuf_put(b.p, b.len);
    assert_int_equal(ws_msg_feed(&m, in, b.len, &ev), (ssize_t)b.len);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_int_equal(ev.rsv, WS_RSV1);
    ws_msg_reset(&m);
    bld_free(&b);
    /* The same bytes without RSV1 are text: invalid UTF-8. */
    bld_frame_rsv(&b, 1, 0, WS_OP_TEXT, (const char *)bad_utf8, sizeof(bad_utf8), 1);
    check_err(&z, b.p, b.len, RC_E_UTF8, 7);
    bld_free(&b);
    /* RSV1 on a continuation frame: 1002. */
    bld_frame_rsv(&b, 0, WS_RSV1, WS_OP_TEXT, "ab", 2, 1);
    bld_frame_rsv(&b, 1, WS_RSV1, WS_OP_CONT, "cd", 2, 1);
    check_err(&z, b.p, b.len, RC_E_PROTO, 13);
    bld_free(&b);
    /* RSV1 on a control frame, alone or between fragments: 1002. */
    bld_frame_rsv(&b, 1, WS_RSV1, WS_OP_PING, "", 0, 1);
    check_err(&z, b.p, b.len, RC_E_PROTO, 5);
    bld_free(&b);
    bld_frame_rsv(&b, 0, WS_RSV1, WS_OP_BINARY, "ab", 2, 1);
    bld_frame_rsv(&b, 1, WS_RSV1, WS_OP_PONG, "", 0, 1);
    check_err(&z, b.p, b.len, RC_E_PROTO, 13);
    bld_free(&b);
    /* The cap: a compressed message may carry max_message plus deflate's
     * worst-case growth on the wire (its inflated size is capped by the
     * caller); an uncompressed one exactly max_message. */
    struct ws_msg_cfg zs = z;
    zs.max_message = 4096;
    size_t slack = (4096 >> 3) + (4096 >> 6) + 64;
    uint8_t *big = calloc(1, 4096 + slack + 1);
    bld_frame_rsv(&b, 1, WS_RSV1, WS_OP_BINARY, big, 4096 + slack, 1);
    static struct exp_ev ebig[1];
    ebig[0] = (struct exp_ev){WS_EV_MESSAGE, WS_OP_BINARY, 0, big, 4096 + slack};
    check_stride(&zs, b.p, b.len, ebig, 1, 0, -1, 97);
    bld_free(&b);
    bld_frame_rsv(&b, 0, WS_RSV1, WS_OP_BINARY, big, 4000, 1);
    bld_frame_rsv(&b, 1, 0, WS_OP_CONT, big, slack + 97, 1);
    check_err(&zs, b.p, b.len, RC_E_TOO_BIG, -1);
    bld_free(&b);
    bld_frame_rsv(&b, 1, 0, WS_OP_BINARY, big, 4097, 1);
    check_err(&zs, b.p, b.len, RC_E_TOO_BIG, -1);
    bld_free(&b);
    free(big);
    /* Without the extension, RSV1 stays a protocol error. */
    bld_frame_rsv(&b, 1, WS_RSV1, WS_OP_BINARY, "ab", 2, 1);
    check_err(&server_cfg, b.p, b.len, RC_E_PROTO, 5);
    bld_free(&b);
}

static void test_ws_msg__rsv_rules(void **state)
{
    struct bld b = {0};
    bld_frame_rsv(&b, 1, WS_RSV1, WS_OP_TEXT, "hi", 2, 1);
    check_err(&server_cfg, b.p, b.len, RC_E_PROTO, 5);
    /* Allowed when an extension negotiated it; reported on the event. */
    struct ws_msg_cfg deflate = server_cfg;
    deflate.allowed_rsv = WS_RSV1;
    static const struct exp_ev e[] = {EXP_MSG(WS_OP_TEXT, "hi")};
    check(&deflate, b.p, b.len, e, 1);
    struct ws_msg m;
    struct ws_event ev;
    ws_msg_init(&m, &deflate);
    uint8_t *in = guardbuf_put(b.p, b.len);
    assert_int_equal(ws_msg_feed(&m, in, b.len, &ev), (ssize_t)b.len);
    assert_int_equal(ev.rsv, WS_RSV1);
    ws_msg_reset(&m);
    bld_free(&b);
    /* RSV2 and RSV3 stay forbidden; RSV on a control frame too. */
    bld_frame_rsv(&b, 1, WS_RSV2, WS_OP_BINARY, "x", 1, 1);
    check_err(&deflate, b.p, b.len, RC_E_PROTO, 5);
    bld_free(&b);
    bld_frame_rsv(&b, 1, WS_RSV3, WS_OP_PING, "", 0, 1);
    check_err(&deflate, b.p, b.len, RC_E_PROTO, 5);
    bld_free(&b);
}

static void test_ws_msg__framing_errors(void **state)
{
    static const struct {
        uint8_t b[16];
        size_t n;
        long fail_at;
    } v[] = {
        {{0x83, 0x80, 1, 2, 3, 4}, 6, 1},                    /* reserved opcode 3 */
        {{0x8B, 0x80, 1, 2, 3, 4}, 6, 1},                    /* reserved opcode 0xB */
        {{0x09, 0x80, 1, 2, 3, 4}, 6, 1},                    /* ping without FIN (§5.5) */
        {{0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4}, 8, 1},        /* ping 126 bytes (§5.5) */
        {{0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4}, 8, 3},        /* non-minimal 16-bit */
        {{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0x01, 0x00}, 10, 9}, /* non-minimal 64-bit */
        {{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 9},    /* 64-bit MSB (§5.2) */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        check_err(&server_cfg, v[i].b, v[i].n, RC_E_PROTO, v[i].fail_at);
}

static void test_ws_msg__fragmentation_errors(void **state)
{
    struct bld b = {0};
    /* Continuation with no message in progress. */
    bld_frame(&b, 1, WS_OP_CONT, "x", 1);
    check_err(&server_cfg, b.p, b.len, RC_E_PROTO, 5);
    bld_free(&b);
    /* ... also right after a complete message. */
    bld_frame(&b, 1, WS_OP_TEXT, "a", 1);
    bld_frame(&b, 0, WS_OP_CONT, "x", 1);
    check_err(&server_cfg, b.p, b.len, RC_E_PROTO, 7 + 5);
    bld_free(&b);
    /* A new data frame inside a fragmented message. */
    bld_frame(&b, 0, WS_OP_TEXT, "a", 1);
    bld_frame(&b, 1, WS_OP_TEXT, "b", 1);
    check_err(&server_cfg, b.p, b.len, RC_E_PROTO, 7 + 5);
    bld_free(&b);
    bld_frame(&b, 0, WS_OP_BINARY, "a", 1);
    bld_frame(&b, 1, WS_OP_PING, "", 0);
    bld_frame(&b, 0, WS_OP_BINARY, "b", 1);
    check_err(&server_cfg, b.p, b.len, RC_E_PROTO, 7 + 6 + 5);
    bld_free(&b);
}

static void test_ws_msg__close_payload_errors(void **state)
{
    struct bld b = {0};
    /* §5.5.1: a 1-byte body cannot hold the code. */
    bld_frame(&b, 1, WS_OP_CLOSE, "\x03", 1);
    check_err(&server_cfg, b.p, b.len, RC_E_PROTO, 6);
    bld_free(&b);
    static const unsigned bad[] = {0,    999,  1004, 1005, 1006, 1012, 1013, 1014,
                                   1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        bld_frame(&b, 1, WS_OP_CLOSE, p, 2);
        check_err(&server_cfg, b.p, b.len, RC_E_PROTO, 7);
        bld_free(&b);
    }
    /* The reason must be UTF-8 (Autobahn 7.5.1). */
    bld_frame(&b, 1, WS_OP_CLOSE,
              "\x03\xe8"
              "\xce\xba\xed\xa0\x80",
              7);
    check_err(&server_cfg, b.p, b.len, RC_E_UTF8, 12);
    bld_free(&b);
    bld_frame(&b, 1, WS_OP_CLOSE,
              "\x03\xe8"
              "ab\xce",
              5);
    check_err(&server_cfg, b.p, b.len, RC_E_UTF8, 10);
    bld_free(&b);
}

static void test_ws_msg__text_invalid_utf8(void **state)
{
    struct bld b = {0};
    /* Whole frame, bad byte in the middle: fails at the bad byte even though
     * the frame is not complete yet. */
    bld_frame(&b, 1, WS_OP_TEXT,
              "Hello\xc0"
              "world",
              11);
    check_err(&server_cfg, b.p, b.len, RC_E_UTF8, 6 + 5);
    bld_free(&b);
    /* A message that ends inside a character fails at its last byte. */
    bld_frame(&b, 1, WS_OP_TEXT, "ab\xce", 3);
    check_err(&server_cfg, b.p, b.len, RC_E_UTF8, 8);
    bld_free(&b);
    bld_frame(&b, 0, WS_OP_TEXT, "ab", 2);
    bld_frame(&b, 1, WS_OP_CONT, "\xe2\x82", 2);
    check_err(&server_cfg, b.p, b.len, RC_E_UTF8, 15);
    bld_free(&b);
    /* Autobahn 6.4.1-style: kosme then F4 90 in the middle of the second
     * fragment, before the message (or even the fragment) is complete. */
    bld_frame(&b, 0, WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11);
    bld_frame(&b, 0, WS_OP_CONT,
              "ok\xf4\x90\x80\x80"
              "edited",
              12);
    bld_frame(&b, 1, WS_OP_CONT, "more", 4);
    check_err(&server_cfg, b.p, b.len, RC_E_UTF8, 17 + 6 + 3);
    bld_free(&b);
    /* Surrogate split across fragments: ED | A0 fails at A0. */
    bld_frame(&b, 0, WS_OP_TEXT, "a\xed", 2);
    bld_frame(&b, 1, WS_OP_CONT, "\xa0\x80", 2);
    check_err(&server_cfg, b.p, b.len, RC_E_UTF8, 8 + 6);
    bld_free(&b);
    /* Binary messages are not checked. */
    bld_frame(&b, 1, WS_OP_BINARY, "\xc0\xff", 2);
    static const struct exp_ev e[] = {EXP_MSG(WS_OP_BINARY, "\xc0\xff")};
    check(&server_cfg, b.p, b.len, e, 1);
    bld_free(&b);
}

static void test_ws_msg__text_partial_frame_fails_fast(void **state)
{
    /* The header announces 100 bytes; only 10 arrive, the 6th is invalid. */
    char text[100];
    memset(text, 'a', sizeof(text));
    text[5] = (char)0xff;
    struct bld b = {0};
    bld_frame(&b, 1, WS_OP_TEXT, text, sizeof(text));
    size_t hdr = 6;
    struct ws_msg m;
    struct ws_event ev;
    long live = rc_alloc_live();
    ws_msg_init(&m, &server_cfg);
    assert_int_equal(ws_msg_feed(&m, guardbuf_put(b.p, hdr + 5), hdr + 5, &ev), hdr + 5);
    assert_int_equal(ev.type, WS_EV_NONE);
    assert_int_equal(ws_msg_feed(&m, guardbuf_put(b.p + hdr + 5, 5), 5, &ev), RC_E_UTF8);
    ws_msg_reset(&m);
    assert_int_equal(rc_alloc_live(), live);
    check_err(&server_cfg, b.p, b.len, RC_E_UTF8, (long)hdr + 5);
    bld_free(&b);
}

static void test_ws_msg__text_valid_characters_split_across_fragments(void **state)
{
    struct bld b = {0};
    bld_frame(&b, 0, WS_OP_TEXT, "\xf0", 1);
    bld_frame(&b, 0, WS_OP_CONT, "\x9f\x98", 2);
    bld_frame(&b, 1, WS_OP_PING, "", 0);
    bld_frame(&b, 0, WS_OP_CONT, "", 0);
    bld_frame(&b, 1, WS_OP_CONT, "\x80\xce\xba", 3);
    static const struct exp_ev e[] = {EXP_CTRL(WS_EV_PING, ""),
                                      EXP_MSG(WS_OP_TEXT, "\xf0\x9f\x98\x80\xce\xba")};
    check(&server_cfg, b.p, b.len, e, 2);
    bld_free(&b);
}

static void test_ws_msg__too_big(void **state)
{
    struct ws_msg_cfg small = server_cfg;
    small.max_message = 300;
    char data[400];
    memset(data, 'q', sizeof(data));
    struct bld b = {0};

    /* Exactly the cap: fine, whether in one frame or in fragments. */
    bld_frame(&b, 1, WS_OP_BINARY, data, 300);
    struct exp_ev e = {WS_EV_MESSAGE, WS_OP_BINARY, 0, data, 300};
    check(&small, b.p, b.len, &e, 1);
    bld_free(&b);
    bld_frame(&b, 0, WS_OP_TEXT, data, 150);
    bld_frame(&b, 1, WS_OP_CONT, data, 150);
    e.opcode = WS_OP_TEXT;
    check(&small, b.p, b.len, &e, 1);
    bld_free(&b);

    /* One over, decided by the header alone (no payload sent at all). */
    bld_frame(&b, 1, WS_OP_BINARY, data, 301);
    check_err(&small, b.p, 8, RC_E_TOO_BIG, 7);
    bld_free(&b);
    /* The fragment that would push the total over fails at its header. */
    bld_frame(&b, 0, WS_OP_TEXT, data, 200);
    bld_frame(&b, 0, WS_OP_CONT, data, 100);
    bld_frame(&b, 1, WS_OP_CONT, data, 1);
    check_err(&small, b.p, b.len, RC_E_TOO_BIG, 208 + 106 + 5);
    bld_free(&b);
    /* A huge 64-bit announcement. */
    static const uint8_t huge[] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 1,    2,    3,    4};
    check_err(&server_cfg, huge, sizeof(huge), RC_E_TOO_BIG, 13);
    /* max_message 0: only empty messages. */
    small.max_message = 0;
    bld_frame(&b, 1, WS_OP_TEXT, "", 0);
    static const struct exp_ev e0[] = {EXP_MSG(WS_OP_TEXT, "")};
    check(&small, b.p, b.len, e0, 1);
    bld_frame(&b, 1, WS_OP_TEXT, "x", 1);
    check_err(&small, b.p, b.len, RC_E_TOO_BIG, 6 + 5);
    bld_free(&b);
    /* Control frames do not count against the cap. */
    bld_frame(&b, 1, WS_OP_PING, "ping", 4);
    static const struct exp_ev ep[] = {EXP_CTRL(WS_EV_PING, "ping")};
    check(&small, b.p, b.len, ep, 1);
    bld_free(&b);
}

static void test_ws_msg__alloc_failure_nomem_no_leak(void **state)
{
    /* 10 fragments of 1000 bytes: several buffer growths. */
    struct bld b = {0};
    char *data = malloc(10000);
    for (int i = 0; i < 10000; i++)
        data[i] = (char)('a' + i % 26);
    for (int i = 0; i < 10; i++)
        bld_frame(&b, i == 9, i ? WS_OP_CONT : WS_OP_TEXT, data + 1000 * i, 1000);
    long live = rc_alloc_live();
    int saw_nomem = 0, saw_ok = 0;
    for (unsigned long n = 1; n <= 20; n++) {
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            struct ws_msg m;
            struct ws_event ev;
            ws_msg_init(&m, &server_cfg);
            rc_alloc_fail_after(n);
            ssize_t rc = 0;
            size_t at = 0, step = bytewise ? 97 : b.len;
            ev.type = WS_EV_NONE;
            while (at < b.len) {
                size_t k = RC_MIN(step, b.len - at);
                rc = ws_msg_feed(&m, guardbuf_put(b.p + at, k), k, &ev);
                if (rc < 0)
                    break;
                at += (size_t)rc;
            }
            rc_alloc_fail_after(0);
            if (rc < 0) {
                assert_int_equal(rc, RC_E_NOMEM);
                saw_nomem = 1;
            } else {
                assert_int_equal(ev.type, WS_EV_MESSAGE);
                assert_int_equal(ev.len, 10000);
                assert_memory_equal(ev.data, data, 10000);
                saw_ok = 1;
            }
            ws_msg_reset(&m);
            assert_int_equal(rc_alloc_live(), live);
        }
    }
    assert_true(saw_nomem);
    assert_true(saw_ok);
    /* An unfragmented frame split across reads is buffered, so it can fail too. */
    bld_free(&b);
    bld_frame(&b, 1, WS_OP_BINARY, data, 500);
    struct ws_msg m;
    struct ws_event ev;
    ws_msg_init(&m, &server_cfg);
    rc_alloc_fail_after(1);
    assert_int_equal(ws_msg_feed(&m, guardbuf_put(b.p, 100), 100, &ev), RC_E_NOMEM);
    rc_alloc_fail_after(0);
    ws_msg_reset(&m);
    ws_msg_reset(&m); /* twice is fine */
    assert_int_equal(rc_alloc_live(), live);
    bld_free(&b);
    free(data);
}

/* Builds `count` fragments of `size` bytes and checks they join into one message. */
static void many_fragments(size_t count, size_t size, size_t chunk, int guard)
{
    size_t total = count * size;
    struct ws_msg_cfg cfg = server_cfg;
    cfg.max_message = total;
    struct bld b = {0};
    b.cap = count * (size + 14);
    b.p = malloc(b.cap);
    uint8_t frag[256];
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < size; j++)
            frag[j] = (uint8_t)('A' + (i + j) % 50);
        bld_frame(&b, i + 1 == count, i ? WS_OP_CONT : WS_OP_TEXT, frag, size);
    }
    long live = rc_alloc_live();
    struct ws_msg m;
    struct ws_event ev;
    ws_msg_init(&m, &cfg);
    size_t at = 0, events = 0;
    while (at < b.len) {
        size_t k = RC_MIN(chunk, b.len - at);
        uint8_t *p = guard ? guardbuf_put(b.p + at, k) : b.p + at;
        ssize_t rc = ws_msg_feed(&m, p, k, &ev);
        assert_true(rc >= 0);
        at += (size_t)rc;
        if (ev.type != WS_EV_NONE) {
            events++;
            assert_int_equal(ev.type, WS_EV_MESSAGE);
            assert_int_equal(ev.opcode, WS_OP_TEXT);
            assert_true(ev.len == total);
            for (size_t i = 0; i < count; i += 997)
                for (size_t j = 0; j < size; j++)
                    assert_int_equal(ev.data[i * size + j], 'A' + (i + j) % 50);
            assert_int_equal(ev.data[total - 1], 'A' + (count - 1 + size - 1) % 50);
        }
    }
    assert_int_equal(events, 1);
    assert_true(ws_msg_idle(&m));
    ws_msg_trim(&m);
    assert_int_equal(rc_alloc_live(), live);
    ws_msg_reset(&m);
    bld_free(&b);
}

static void test_ws_msg__many_small_fragments(void **state)
{
    many_fragments(100000, 64, 65536, 1);
    many_fragments(100000, 64, 1000, 0); /* chunk boundaries inside headers too */
}

static void test_ws_msg__64mib_in_64_byte_fragments(void **state)
{
    /* No cap on the fragment count: only max_message limits a message. */
    many_fragments((size_t)64 << 14, 64, 1 << 20, 0);
}

static void test_ws_msg__idle_reset_and_lazy_release(void **state)
{
    struct bld b = {0};
    bld_frame(&b, 0, WS_OP_TEXT, "ab", 2);
    bld_frame(&b, 1, WS_OP_CONT, "cd", 2);
    long live = rc_alloc_live();
    struct ws_msg m;
    struct ws_event ev;
    ws_msg_init(&m, &server_cfg);
    assert_true(ws_msg_idle(&m));
    /* Partial header: not idle. */
    assert_int_equal(ws_msg_feed(&m, guardbuf_put(b.p, 1), 1, &ev), 1);
    assert_false(ws_msg_idle(&m));
    /* First fragment complete: message in progress, not idle, buffer held. */
    assert_int_equal(ws_msg_feed(&m, guardbuf_put(b.p + 1, 7), 7, &ev), 7);
    assert_int_equal(ev.type, WS_EV_NONE);
    assert_false(ws_msg_idle(&m));
    assert_int_equal(rc_alloc_live(), live + 1);
    /* Message delivered from the buffer: the data stays valid until the next
     * call, so the buffer is still held. */
    assert_int_equal(ws_msg_feed(&m, guardbuf_put(b.p + 8, 8), 8, &ev), 8);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_true(ws_msg_idle(&m));
    assert_int_equal(rc_alloc_live(), live + 1);
    assert_memory_equal(ev.data, "abcd", 4);
    /* The next feed (even an empty one) releases it. */
    assert_int_equal(ws_msg_feed(&m, NULL, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NONE);
    assert_int_equal(rc_alloc_live(), live);

    /* ws_msg_trim releases it as well, and is a no-op mid-message. */
    uint8_t *in = guardbuf_put(b.p, b.len);
    assert_int_equal(ws_msg_feed(&m, in, b.len, &ev), (ssize_t)b.len);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    ws_msg_trim(&m);
    assert_int_equal(rc_alloc_live(), live);
    in = guardbuf_put(b.p, 8);
    assert_int_equal(ws_msg_feed(&m, in, 8, &ev), 8);
    ws_msg_trim(&m);
    assert_int_equal(rc_alloc_live(), live + 1);

    /* reset drops a message in progress; the state is fresh afterwards. */
    ws_msg_reset(&m);
    assert_true(ws_msg_idle(&m));
    assert_int_equal(rc_alloc_live(), live);
    in = guardbuf_put(b.p, b.len);
    assert_int_equal(ws_msg_feed(&m, in, b.len, &ev), (ssize_t)b.len);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    ws_msg_reset(&m);
    assert_int_equal(rc_alloc_live(), live);
    bld_free(&b);
}

/* Whole small frames take a shortcut in ws_msg_feed; every size from 0 to 125
 * bytes, text and binary, must give what the general path gives (the same
 * bytes fed one at a time), and the shortcut must not bypass the size cap,
 * the fragmentation rules or UTF-8 validation. */
static void test_ws_msg__small_frame_shortcut_matches_general_path(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (unsigned op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
        for (size_t n = 0; n <= 125; n++) {
            uint8_t plain[125], frame[WS_MAX_HEADER + 125], copy[WS_MAX_HEADER + 125];
            for (size_t i = 0; i < n; i++)
                plain[i] = (uint8_t)('a' + i % 26);
            size_t hl = ws_frame_encode_header(frame, 1, 0, op, n, key);
            assert_int_equal(hl, 6);
            memcpy(frame + hl, plain, n);
            ws_mask(frame + hl, n, key, 0);
            memcpy(copy, frame, hl + n);
            /* whole: the shortcut */
            struct ws_msg m;
            ws_msg_init(&m, &server_cfg);
            struct ws_event ev;
            assert_int_equal(ws_msg_feed(&m, frame, hl + n, &ev), (ssize_t)(hl + n));
            assert_int_equal(ev.type, WS_EV_MESSAGE);
            assert_int_equal(ev.opcode, op);
            assert_int_equal(ev.len, n);
            assert_memory_equal(ev.data, plain, n);
            assert_true(ws_msg_idle(&m));
            /* one byte at a time: the general path */
            ws_msg_reset(&m);
            size_t off = 0;
            ev.type = WS_EV_NONE;
            while (off < hl + n) {
                ssize_t r = ws_msg_feed(&m, copy + off, 1, &ev);
                assert_true(r == 1);
                off += 1;
                if (ev.type != WS_EV_NONE)
                    break;
            }
            assert_int_equal(off, hl + n);
            assert_int_equal(ev.type, WS_EV_MESSAGE);
            assert_int_equal(ev.len, n);
            assert_memory_equal(ev.data, plain, n);
            ws_msg_reset(&m);
            /* over a smaller cap: 1009, not delivered */
            if (n > 0) {
                struct ws_msg_cfg small = server_cfg;
                small.max_message = n - 1;
                ws_msg_init(&m, &small);
                memcpy(frame, copy, hl + n);
                assert_int_equal(ws_msg_feed(&m, frame, hl + n, &ev), RC_E_TOO_BIG);
                ws_msg_reset(&m);
            }
            /* while a fragmented message is open: a new data frame is 1002 */
            ws_msg_init(&m, &server_cfg);
            uint8_t first[WS_MAX_HEADER];
            assert_int_equal(ws_frame_encode_header(first, 0, 0, WS_OP_BINARY, 0, key), 6);
            assert_int_equal(ws_msg_feed(&m, first, 6, &ev), 6);
            assert_int_equal(ev.type, WS_EV_NONE);
            memcpy(frame, copy, hl + n);
            assert_int_equal(ws_msg_feed(&m, frame, hl + n, &ev), RC_E_PROTO);
            ws_msg_reset(&m);
        }
    }
    /* invalid UTF-8 in a whole small text frame: 1007 */
    uint8_t bad[WS_MAX_HEADER + 3];
    static const uint8_t bytes[3] = {'o', 0xc3, 'k'};
    size_t hl = ws_frame_encode_header(bad, 1, 0, WS_OP_TEXT, 3, key);
    memcpy(bad + hl, bytes, 3);
    ws_mask(bad + hl, 3, key, 0);
    struct ws_msg m;
    ws_msg_init(&m, &server_cfg);
    struct ws_event ev;
    assert_int_equal(ws_msg_feed(&m, bad, hl + 3, &ev), RC_E_UTF8);
    ws_msg_reset(&m);
}

/* Fills p[0..n) with valid UTF-8 text (ASCII with two-, three- and four-byte
 * characters mixed in, never cut at the end) when text, or any bytes. */
static void fill_payload(uint8_t *p, size_t n, int text, unsigned seed)
{
    static const char *const chars[] = {"a", "Z", "\xce\xba", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    size_t i = 0;
    while (i < n) {
        if (!text) {
            p[i] = (uint8_t)(i * 29 + seed);
            i++;
            continue;
        }
        const char *c = chars[(i * 7 + seed) % 5];
        size_t cl = strlen(c);
        if (cl > n - i)
            c = "q", cl = 1;
        memcpy(p + i, c, cl);
        i += cl;
    }
}

/* One frame of n bytes (op, FIN) masked with key into out; returns its size. */
static size_t masked_frame(uint8_t *out, int fin, unsigned op, const uint8_t *plain, size_t n,
                           const uint8_t key[4])
{
    size_t hl = ws_frame_encode_header(out, fin, 0, op, n, key);
    memcpy(out + hl, plain, n);
    ws_mask(out + hl, n, key, 0);
    return hl + n;
}

/* Whole frames in the 16-bit length form (126..65535 bytes) take ws_msg_feed's
 * second shortcut (and ws_msg_feed_any's, when the last event's buffer was
 * just released). Every length 126..200 (every tail of the 16-byte unmask)
 * and longer ones, text and binary, at every start address modulo 16, must
 * be delivered in place with what the general path gives; the shortcut must
 * not bypass the size cap, the fragmentation rules, the minimal length rule
 * or UTF-8 validation, and a frame cut short must wait for the rest. */
static void test_ws_msg__16bit_frame_shortcut_matches_general_path(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x5a, 0x01, 0xc3, 0x80};
    static const size_t more[] = {255, 256, 1000, 1023, 1024, 1025, 4096, 65535};
    size_t sizes[75 + sizeof(more) / sizeof(more[0])], nsizes = 0;
    for (size_t n = 126; n <= 200; n++)
        sizes[nsizes++] = n;
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        sizes[nsizes++] = more[i];
    uint8_t *plain = malloc(65535), *frame = malloc(16 + 8 + 65535), *copy = malloc(8 + 65535);
    long live = rc_alloc_live();
    for (unsigned op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
        for (size_t si = 0; si < nsizes; si++) {
            size_t n = sizes[si];
            fill_payload(plain, n, op == WS_OP_TEXT, (unsigned)si);
            size_t fl = masked_frame(copy, 1, op, plain, n, key);
            assert_int_equal(fl, 8 + n);
            struct ws_msg m;
            struct ws_event ev;
            for (size_t align = 0; align < 16; align += n <= 200 ? 1 : 5) {
                /* whole: the shortcut, in place */
                uint8_t *in = frame + align;
                memcpy(in, copy, fl);
                ws_msg_init(&m, &server_cfg);
                assert_int_equal(ws_msg_feed(&m, in, fl, &ev), (ssize_t)fl);
                assert_int_equal(ev.type, WS_EV_MESSAGE);
                assert_int_equal(ev.opcode, op);
                assert_int_equal(ev.rsv, 0);
                assert_ptr_equal(ev.data, in + 8);
                assert_int_equal(ev.len, n);
                assert_memory_equal(ev.data, plain, n);
                assert_true(ws_msg_blank(&m));
                ws_msg_reset(&m);
            }
            /* one byte at a time (the general path), and whole at the end of a
             * guard page: the same message */
            struct exp_ev e = {WS_EV_MESSAGE, op, 0, plain, n};
            if (n <= 200)
                check_stride(&server_cfg, copy, fl, &e, 1, 0, -1, 7);
            else {
                struct run r;
                size_t cut = 3;
                run_cuts(&server_cfg, copy, fl, &cut, 1, &r);
                expect_run(&r, &e, 1, 0, "split", cut);
                run_free(&r);
                run_cuts(&server_cfg, copy, fl, NULL, 0, &r);
                expect_run(&r, &e, 1, 0, "whole", 0);
                run_free(&r);
            }
            /* cut short by one byte: nothing yet, then the last byte completes it */
            memcpy(frame, copy, fl);
            ws_msg_init(&m, &server_cfg);
            assert_int_equal(ws_msg_feed(&m, frame, fl - 1, &ev), (ssize_t)(fl - 1));
            assert_int_equal(ev.type, WS_EV_NONE);
            assert_int_equal(ws_msg_feed(&m, frame + fl - 1, 1, &ev), 1);
            assert_int_equal(ev.type, WS_EV_MESSAGE);
            assert_int_equal(ev.len, n);
            assert_memory_equal(ev.data, plain, n);
            ws_msg_reset(&m);
            /* over a cap one smaller: 1009; at the cap exactly: delivered */
            struct ws_msg_cfg small = server_cfg;
            small.max_message = n - 1;
            ws_msg_init(&m, &small);
            memcpy(frame, copy, fl);
            assert_int_equal(ws_msg_feed(&m, frame, fl, &ev), RC_E_TOO_BIG);
            ws_msg_reset(&m);
            small.max_message = n;
            ws_msg_init(&m, &small);
            memcpy(frame, copy, fl);
            assert_int_equal(ws_msg_feed(&m, frame, fl, &ev), (ssize_t)fl);
            assert_int_equal(ev.len, n);
            ws_msg_reset(&m);
            /* while a fragmented message is open: a new data frame is 1002 */
            ws_msg_init(&m, &server_cfg);
            uint8_t first[WS_MAX_HEADER];
            assert_int_equal(ws_frame_encode_header(first, 0, 0, WS_OP_BINARY, 0, key), 6);
            assert_int_equal(ws_msg_feed(&m, first, 6, &ev), 6);
            memcpy(frame, copy, fl);
            assert_int_equal(ws_msg_feed(&m, frame, fl, &ev), RC_E_PROTO);
            ws_msg_reset(&m);
            /* not final: the first fragment of a message, not a message */
            ws_msg_init(&m, &server_cfg);
            masked_frame(frame, 0, op, plain, n, key);
            assert_int_equal(ws_msg_feed(&m, frame, fl, &ev), (ssize_t)fl);
            assert_int_equal(ev.type, WS_EV_NONE);
            assert_false(ws_msg_idle(&m));
            ws_msg_reset(&m);
            /* unmasked from a client: 1002 (§5.1) */
            ws_msg_init(&m, &server_cfg);
            size_t ul = ws_frame_encode_header(frame, 1, 0, op, n, NULL);
            memcpy(frame + ul, plain, n);
            assert_int_equal(ws_msg_feed(&m, frame, ul + n, &ev), RC_E_PROTO);
            ws_msg_reset(&m);
            /* right after a fragmented message whose buffer backs the last
             * event: ws_msg_feed_any releases it, then takes the shortcut */
            ws_msg_init(&m, &server_cfg);
            struct bld b = {0};
            bld_frame(&b, 0, WS_OP_TEXT, "ab", 2);
            bld_frame(&b, 1, WS_OP_CONT, "c", 1);
            size_t off = 0;
            while (off < b.len) {
                ssize_t r = ws_msg_feed(&m, b.p + off, b.len - off, &ev);
                assert_true(r > 0);
                off += (size_t)r;
            }
            assert_int_equal(ev.type, WS_EV_MESSAGE);
            assert_non_null(m.buf); /* backs the event just delivered */
            memcpy(frame, copy, fl);
            assert_int_equal(ws_msg_feed(&m, frame, fl, &ev), (ssize_t)fl);
            assert_int_equal(ev.type, WS_EV_MESSAGE);
            assert_ptr_equal(ev.data, frame + 8);
            assert_memory_equal(ev.data, plain, n);
            assert_null(m.buf);
            ws_msg_reset(&m);
            bld_free(&b);
        }
    }
    /* A 16-bit length under 126 is not minimal (§5.2), even with the whole
     * payload there: 1002, never delivered. */
    for (size_t n = 0; n < 126; n++) {
        uint8_t v[8 + 125] = {0x82, 0xFE, 0x00, (uint8_t)n, 1, 2, 3, 4};
        struct ws_msg m;
        struct ws_event ev;
        ws_msg_init(&m, &server_cfg);
        assert_int_equal(ws_msg_feed(&m, v, 8 + n, &ev), RC_E_PROTO);
        ws_msg_reset(&m);
    }
    assert_int_equal(rc_alloc_live(), live);
    free(plain);
    free(frame);
    free(copy);
}

/* Invalid UTF-8 at every position of a whole 16-bit-length text frame (the
 * shortcut validates it whole) fails with 1007, and at the same byte as the
 * general path when the frame arrives in pieces (fail-fast, §8.1): an
 * invalid byte, an overlong form, a surrogate, a code point over U+10FFFF,
 * and a character cut by the end of the message. */
static void test_ws_msg__16bit_text_invalid_utf8_every_position(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x01, 0x02, 0x03, 0x04};
    static const struct {
        const char *bytes;
        size_t len, bad; /* the sequence, and which of its bytes makes it invalid */
    } seqs[] = {
        {"\xff", 1, 0},             /* never valid */
        {"\xc0\xaf", 2, 0},         /* overlong "/" */
        {"\xe0\x80\xaf", 3, 1},     /* overlong, three bytes */
        {"\xed\xa0\x80", 3, 1},     /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 1}, /* over U+10FFFF */
        {"\x80", 1, 0},             /* a lone continuation */
    };
    enum { N = 140 };
    uint8_t plain[N], frame[8 + N];
    for (size_t si = 0; si < sizeof(seqs) / sizeof(seqs[0]); si++) {
        for (size_t pos = 0; pos + seqs[si].len <= N; pos++) {
            memset(plain, 'x', N);
            memcpy(plain + pos, seqs[si].bytes, seqs[si].len);
            size_t fl = masked_frame(frame, 1, WS_OP_TEXT, plain, N, key);
            check_stride(&server_cfg, frame, fl, NULL, 0, RC_E_UTF8, (long)(8 + pos + seqs[si].bad),
                         pos % 16 == 0 ? 1 : 17);
        }
    }
    /* cut at the end of the message: E2 82 as its last two bytes, and F0 9F 98 */
    static const char *const cuts[] = {"\xe2\x82", "\xf0\x9f\x98", "\xce"};
    for (size_t i = 0; i < 3; i++) {
        size_t cl = strlen(cuts[i]);
        memset(plain, 'y', N);
        memcpy(plain + N - cl, cuts[i], cl);
        size_t fl = masked_frame(frame, 1, WS_OP_TEXT, plain, N, key);
        check_err(&server_cfg, frame, fl, RC_E_UTF8, (long)fl - 1);
    }
    /* the same bytes as binary are delivered as they are */
    memcpy(plain, "\xed\xa0\x80\xff", 4);
    size_t fl = masked_frame(frame, 1, WS_OP_BINARY, plain, N, key);
    struct exp_ev e = {WS_EV_MESSAGE, WS_OP_BINARY, 0, plain, N};
    check(&server_cfg, frame, fl, &e, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_msg__deflate_rsv1),
        cmocka_unit_test(test_ws_msg__rfc_unmasked_hello),
        cmocka_unit_test(test_ws_msg__rfc_masked_hello),
        cmocka_unit_test(test_ws_msg__rfc_fragmented_hello),
        cmocka_unit_test(test_ws_msg__rfc_ping_pong),
        cmocka_unit_test(test_ws_msg__rfc_256_and_64k_binary),
        cmocka_unit_test(test_ws_msg__masked_256_and_64k_binary),
        cmocka_unit_test(test_ws_msg__control_frames_between_fragments),
        cmocka_unit_test(test_ws_msg__close_frames),
        cmocka_unit_test(test_ws_msg__empty_messages_and_fragments),
        cmocka_unit_test(test_ws_msg__several_messages_in_one_buffer),
        cmocka_unit_test(test_ws_msg__zero_copy_points_into_input),
        cmocka_unit_test(test_ws_msg__control_split_inside_fragmented_message),
        cmocka_unit_test(test_ws_msg__mask_rules),
        cmocka_unit_test(test_ws_msg__rsv_rules),
        cmocka_unit_test(test_ws_msg__framing_errors),
        cmocka_unit_test(test_ws_msg__fragmentation_errors),
        cmocka_unit_test(test_ws_msg__close_payload_errors),
        cmocka_unit_test(test_ws_msg__text_invalid_utf8),
        cmocka_unit_test(test_ws_msg__text_partial_frame_fails_fast),
        cmocka_unit_test(test_ws_msg__text_valid_characters_split_across_fragments),
        cmocka_unit_test(test_ws_msg__too_big),
        cmocka_unit_test(test_ws_msg__alloc_failure_nomem_no_leak),
        cmocka_unit_test(test_ws_msg__many_small_fragments),
        cmocka_unit_test(test_ws_msg__64mib_in_64_byte_fragments),
        cmocka_unit_test(test_ws_msg__idle_reset_and_lazy_release),
        cmocka_unit_test(test_ws_msg__small_frame_shortcut_matches_general_path),
        cmocka_unit_test(test_ws_msg__16bit_frame_shortcut_matches_general_path),
        cmocka_unit_test(test_ws_msg__16bit_text_invalid_utf8_every_position),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    guardbuf_free();
    return rc;
}
