/* test_ws_frame.c - header codec and masking against hand-written RFC 6455
 * §5.7 bytes; every header is also decoded from every prefix, with the input
 * ending at a guard page so a read past the end crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "guardbuf.h"
#include "ws_frame.h"

struct hdr_vec {
    const char *name;
    uint8_t bytes[WS_MAX_HEADER];
    size_t n; /* header size */
    uint8_t fin, rsv, opcode, masked;
    uint8_t mask[4];
    uint64_t len;
};

/* RFC 6455 §5.7 examples (headers only) plus the length-form boundaries. */
static const struct hdr_vec good[] = {
    {"unmasked Hello", {0x81, 0x05}, 2, 1, 0, WS_OP_TEXT, 0, {0}, 5},
    {"masked Hello",
     {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d},
     6,
     1,
     0,
     WS_OP_TEXT,
     1,
     {0x37, 0xfa, 0x21, 0x3d},
     5},
    {"fragment Hel", {0x01, 0x03}, 2, 0, 0, WS_OP_TEXT, 0, {0}, 3},
    {"fragment lo", {0x80, 0x02}, 2, 1, 0, WS_OP_CONT, 0, {0}, 2},
    {"unmasked ping", {0x89, 0x05}, 2, 1, 0, WS_OP_PING, 0, {0}, 5},
    {"masked pong",
     {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d},
     6,
     1,
     0,
     WS_OP_PONG,
     1,
     {0x37, 0xfa, 0x21, 0x3d},
     5},
    {"256 bytes binary", {0x82, 0x7E, 0x01, 0x00}, 4, 1, 0, WS_OP_BINARY, 0, {0}, 256},
    {"64KiB binary",
     {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00},
     10,
     1,
     0,
     WS_OP_BINARY,
     0,
     {0},
     65536},
    {"125 control", {0x88, 0x7D}, 2, 1, 0, WS_OP_CLOSE, 0, {0}, 125},
    {"126 in 16 bits", {0x82, 0x7E, 0x00, 0x7E}, 4, 1, 0, WS_OP_BINARY, 0, {0}, 126},
    {"65535 in 16 bits", {0x02, 0x7E, 0xFF, 0xFF}, 4, 0, 0, WS_OP_BINARY, 0, {0}, 65535},
    {"max 63-bit, masked",
     {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
     14,
     1,
     0,
     WS_OP_BINARY,
     1,
     {1, 2, 3, 4},
     UINT64_C(0x7FFFFFFFFFFFFFFF)},
    {"rsv bits reported", {0xF1, 0x00}, 2, 1, 7, WS_OP_TEXT, 0, {0}, 0},
    {"rsv1 only", {0xC2, 0x00}, 2, 1, WS_RSV1, WS_OP_BINARY, 0, {0}, 0},
    {"empty close", {0x88, 0x00}, 2, 1, 0, WS_OP_CLOSE, 0, {0}, 0},
};

static void check_decoded(const struct hdr_vec *v, const struct ws_frame_hdr *h)
{
    assert_int_equal(h->fin, v->fin);
    assert_int_equal(h->rsv, v->rsv);
    assert_int_equal(h->opcode, v->opcode);
    assert_int_equal(h->masked, v->masked);
    if (v->masked)
        assert_memory_equal(h->mask, v->mask, 4);
    assert_true(h->len == v->len);
}

static void test_ws_frame__decode_rfc_examples(void **state)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const struct hdr_vec *v = &good[i];
        /* Every prefix: NEED_MORE; the whole header: its size. */
        for (size_t k = 0; k <= v->n; k++) {
            struct ws_frame_hdr h;
            memset(&h, 0xAA, sizeof(h));
            const uint8_t *p = guardbuf_put(v->bytes, k);
            ssize_t r = ws_frame_decode_header(p, k, &h);
            if (k < v->n) {
                assert_int_equal(r, RC_NEED_MORE);
            } else {
                assert_int_equal(r, (ssize_t)v->n);
                check_decoded(v, &h);
            }
        }
        /* Trailing payload bytes do not change the result. */
        uint8_t more[WS_MAX_HEADER + 4] = {0};
        memcpy(more, v->bytes, v->n);
        struct ws_frame_hdr h;
        assert_int_equal(ws_frame_decode_header(guardbuf_put(more, sizeof(more)), sizeof(more), &h),
                         (ssize_t)v->n);
        check_decoded(v, &h);
    }
}

static void test_ws_frame__encode_matches_rfc_bytes(void **state)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const struct hdr_vec *v = &good[i];
        uint8_t out[WS_MAX_HEADER];
        size_t n = ws_frame_encode_header(out, v->fin, v->rsv, v->opcode, v->len,
                                          v->masked ? v->mask : NULL);
        assert_int_equal(n, v->n);
        assert_memory_equal(out, v->bytes, n);
        assert_int_equal(ws_frame_header_size(v->len, v->masked), n);
    }
}

static void test_ws_frame__encode_decode_roundtrip_boundaries(void **state)
{
    static const uint64_t lens[] = {
        0, 1, 124, 125, 126, 127, 65535, 65536, 65537, 1u << 31, UINT64_C(1) << 62};
    static const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int masked = 0; masked <= 1; masked++) {
            uint8_t out[WS_MAX_HEADER];
            size_t n =
                ws_frame_encode_header(out, 0, WS_RSV2, WS_OP_BINARY, lens[i], masked ? key : NULL);
            assert_int_equal(n, ws_frame_header_size(lens[i], masked));
            struct ws_frame_hdr h;
            assert_int_equal(ws_frame_decode_header(guardbuf_put(out, n), n, &h), (ssize_t)n);
            assert_int_equal(h.fin, 0);
            assert_int_equal(h.rsv, WS_RSV2);
            assert_int_equal(h.opcode, WS_OP_BINARY);
            assert_int_equal(h.masked, masked);
            assert_true(h.len == lens[i]);
            if (masked)
                assert_memory_equal(h.mask, key, 4);
        }
    }
    assert_int_equal(ws_frame_header_size(125, 0), 2);
    assert_int_equal(ws_frame_header_size(126, 0), 4);
    assert_int_equal(ws_frame_header_size(65536, 1), 14);
}

struct bad_vec {
    const char *name;
    uint8_t bytes[WS_MAX_HEADER];
    size_t n;
    size_t fail_at; /* shortest prefix that already yields RC_E_PROTO */
};

static const struct bad_vec bad[] = {
    {"opcode 3", {0x83, 0x00}, 2, 2},
    {"opcode 7", {0x87, 0x00}, 2, 2},
    {"opcode 0xB", {0x8B, 0x00}, 2, 2},
    {"opcode 0xF", {0x8F, 0x80, 1, 2, 3, 4}, 6, 2},
    {"ping without FIN (§5.5)", {0x09, 0x00}, 2, 2},
    {"close without FIN", {0x08, 0x02}, 2, 2},
    {"ping 126 bytes (§5.5)", {0x89, 0x7E, 0x00, 0x7E}, 4, 2},
    {"pong 64-bit length", {0x8A, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, 10, 2},
    {"close 126", {0x88, 0x7E}, 2, 2},
    {"16-bit form for 5", {0x82, 0x7E, 0x00, 0x05}, 4, 4},
    {"16-bit form for 125", {0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4}, 8, 4},
    {"64-bit form for 5", {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5}, 10, 10},
    {"64-bit form for 65535", {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, 10, 10},
    {"64-bit MSB set (§5.2)", {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 10},
    {"64-bit all ones",
     {0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
     14,
     10},
};

static void test_ws_frame__decode_rejects_invalid_headers(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const struct bad_vec *v = &bad[i];
        for (size_t k = 0; k <= v->n; k++) {
            struct ws_frame_hdr h;
            ssize_t r = ws_frame_decode_header(guardbuf_put(v->bytes, k), k, &h);
            if (k < v->fail_at)
                assert_int_equal(r, RC_NEED_MORE);
            else
                assert_int_equal(r, RC_E_PROTO);
        }
    }
}

static void naive_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) % 4];
}

static void test_ws_frame__mask_rfc_hello(void **state)
{
    static const uint8_t masked[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t *p = guardbuf_put(masked, 5);
    ws_mask(p, 5, key, 0);
    assert_memory_equal(p, "Hello", 5);
    /* Resumed mid-frame: "Hel" then "lo" at offset 3. */
    p = guardbuf_put(masked, 5);
    ws_mask(p, 3, key, 0);
    ws_mask(p + 3, 2, key, 3);
    assert_memory_equal(p, "Hello", 5);
}

static void test_ws_frame__mask_matches_naive_any_alignment_offset(void **state)
{
    static const uint8_t key[4] = {0x01, 0x80, 0x7f, 0xfe};
    uint8_t src[300], want[300];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 31 + 7);
    for (size_t len = 0; len <= 100; len++) {
        for (uint64_t off = 0; off < 8; off++) {
            /* Unaligned starts: the data may begin at any address (guard page end
             * moves with len; the inner copies move by `align`). */
            for (size_t align = 0; align < 8; align++) {
                uint8_t *buf = guardbuf_put(src, align + len);
                memcpy(want, src + align, len);
                naive_mask(want, len, key, off + UINT64_C(0xFFFFFFFC));
                ws_mask(buf + align, len, key, off + UINT64_C(0xFFFFFFFC));
                assert_memory_equal(buf + align, want, len);
                assert_memory_equal(buf, src, align); /* bytes before untouched */
            }
        }
    }
}

/* ws_mask's 16-byte blocks (64 at a time from 64 bytes on, then 16, 8 and
 * single bytes): every length 0..330 (every tail after one to five 64-byte
 * blocks), every start address modulo 16 and every key phase, against the
 * byte-at-a-time reference; the bytes around the range stay untouched. */
static void test_ws_frame__mask_blocks_every_length_alignment_phase(void **state)
{
    static const uint8_t key[4] = {0xa5, 0x00, 0xff, 0x3c};
    uint8_t src[16 + 330 + 16], want[330];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 151 + 3);
    for (size_t len = 0; len <= 330; len++) {
        for (size_t align = 0; align < 16; align++) {
            for (uint64_t off = 0; off < 4; off++) {
                /* align + len + 16 bytes: the range, with 16 bytes after it */
                uint8_t *buf = guardbuf_put(src, align + len + 16);
                memcpy(want, src + align, len);
                naive_mask(want, len, key, off);
                ws_mask(buf + align, len, key, off);
                assert_memory_equal(buf + align, want, len);
                assert_memory_equal(buf, src, align);
                assert_memory_equal(buf + align + len, src + align + len, 16);
            }
        }
    }
}

/* Random lengths up to 70 000 (past the 16-bit frame length), random keys,
 * offsets and starts, and the range split at a random point as a frame fed
 * in two reads would be: always the byte-at-a-time reference. */
static void test_ws_frame__mask_random_matches_naive(void **state)
{
    enum { MAX = 70000 };
    uint8_t *src = malloc(MAX + 16), *want = malloc(MAX);
    assert_non_null(src);
    assert_non_null(want);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 400; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = round < 200 ? (size_t)(x % 2048) : (size_t)(x % MAX);
        size_t align = (size_t)(x >> 20) % 16;
        uint64_t off = x >> 40;
        uint8_t key[4] = {(uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24),
                          (uint8_t)(x >> 32)};
        for (size_t i = 0; i < align + len; i++)
            src[i] = (uint8_t)(i ^ (x >> (i % 48)));
        uint8_t *buf = guardbuf_put(src, align + len);
        memcpy(want, src + align, len);
        naive_mask(want, len, key, off);
        size_t cut = len ? (size_t)(x >> 3) % (len + 1) : 0;
        ws_mask(buf + align, cut, key, off);
        ws_mask(buf + align + cut, len - cut, key, off + cut);
        assert_memory_equal(buf + align, want, len);
        assert_memory_equal(buf, src, align);
    }
    free(src);
    free(want);
}

static void test_ws_frame__mask_resumes_at_every_split(void **state)
{
    static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    uint8_t src[257], want[257];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)i;
    memcpy(want, src, sizeof(src));
    naive_mask(want, sizeof(want), key, 0);
    for (size_t a = 0; a <= sizeof(src); a++) {
        for (size_t b = a; b <= sizeof(src); b += 13) {
            uint8_t *p = guardbuf_put(src, sizeof(src));
            ws_mask(p, a, key, 0);
            ws_mask(p + a, b - a, key, a);
            ws_mask(p + b, sizeof(src) - b, key, b);
            assert_memory_equal(p, want, sizeof(src));
        }
    }
    /* Masking twice restores the data. */
    uint8_t *p = guardbuf_put(src, sizeof(src));
    ws_mask(p, sizeof(src), key, 5);
    ws_mask(p, sizeof(src), key, 5);
    assert_memory_equal(p, src, sizeof(src));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_frame__decode_rfc_examples),
        cmocka_unit_test(test_ws_frame__encode_matches_rfc_bytes),
        cmocka_unit_test(test_ws_frame__encode_decode_roundtrip_boundaries),
        cmocka_unit_test(test_ws_frame__decode_rejects_invalid_headers),
        cmocka_unit_test(test_ws_frame__mask_rfc_hello),
        cmocka_unit_test(test_ws_frame__mask_matches_naive_any_alignment_offset),
        cmocka_unit_test(test_ws_frame__mask_resumes_at_every_split),
        cmocka_unit_test(test_ws_frame__mask_blocks_every_length_alignment_phase),
        cmocka_unit_test(test_ws_frame__mask_random_matches_naive),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    guardbuf_free();
    return rc;
}
