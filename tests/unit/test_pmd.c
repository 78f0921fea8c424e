/* test_pmd.c - the pooled zlib streams of permessage-deflate (RFC 7692 §7.2).
 *
 * Compressed inputs are made here with zlib itself (raw deflate, sync flush,
 * the 00 00 ff ff tail removed, as a client does), and what pmd_deflate makes
 * is inflated with zlib, so each direction is checked against the library
 * rather than against itself. Every test ends with the pool destroyed and
 * rc_alloc_live back where it started.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "alloc.h"
#include "err.h"
#include "pmd.h"

/* A client's compression of in[0..n): raw deflate with `bits`, Z_SYNC_FLUSH,
 * tail removed (§7.2.1). final: end with a BFINAL block instead. */
static uint8_t *client_deflate(const void *in, size_t n, int bits, int final, size_t *out_len)
{
    z_stream s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&s, n) + 64;
    uint8_t *out = malloc(cap);
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)n;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    int z = deflate(&s, final ? Z_FINISH : Z_SYNC_FLUSH);
    assert_true(z == Z_OK || z == Z_STREAM_END);
    size_t len = cap - s.avail_out;
    deflateEnd(&s);
    if (!final) {
        assert_true(len >= 4);
        assert_memory_equal(out + len - 4, "\x00\x00\xff\xff", 4);
        len -= 4;
    }
    *out_len = len;
    return out;
}

/* A client's inflation of a server message (tail put back, §7.2.2). */
static uint8_t *client_inflate(const uint8_t *in, size_t n, size_t expect, int bits)
{
    z_stream s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(inflateInit2(&s, -bits), Z_OK);
    uint8_t *buf = malloc(n + 4);
    memcpy(buf, in, n);
    memcpy(buf + n, "\x00\x00\xff\xff", 4);
    uint8_t *out = malloc(expect + 1);
    s.next_in = buf;
    s.avail_in = (uInt)(n + 4);
    s.next_out = out;
    s.avail_out = (uInt)(expect + 1);
    int z = inflate(&s, Z_SYNC_FLUSH);
    assert_true(z == Z_OK || z == Z_STREAM_END);
    assert_int_equal(s.avail_in, 0);
    assert_int_equal(expect + 1 - s.avail_out, expect);
    inflateEnd(&s);
    free(buf);
    return out;
}

static uint8_t *sample(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n ? n : 1);
    static const char words[] =
        "{\"type\":\"broadcast\",\"room_id\":\"lobby\",\"content\":\"hello ";
    for (size_t i = 0; i < n; i++)
        p[i] = (i % 7 == 3) ? (uint8_t)(seed * 31 + i * 7) : (uint8_t)words[(i + seed) % 55];
    return p;
}

static void test_inflate_sizes_and_windows(void **state)
{
    (void)state;
    long live = rc_alloc_live();
    struct pmd_pool p;
    pmd_pool_init(&p, 1, 8);
    static const size_t sizes[] = {0, 1, 64, 1000, 32768, 70000, 1 << 20};
    for (int bits = 9; bits <= 15; bits++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            uint8_t *raw = sample(sizes[i], (unsigned)bits);
            size_t zl;
            uint8_t *z = client_deflate(raw, sizes[i], bits, bits == 12, &zl);
            uint8_t *out;
            ssize_t r = pmd_inflate(&p, z, zl, 1 << 20, &out);
            assert_int_equal(r, (ssize_t)sizes[i]);
            assert_non_null(out);
            assert_memory_equal(out, raw, sizes[i]);
            rc_free(out);
            free(z);
            free(raw);
        }
    }
    /* One inflate stream per pool, however many messages. */
    assert_non_null(p.inf);
    assert_true(pmd_pool_bytes(&p) < 64 * 1024);
    pmd_pool_destroy(&p);
    assert_int_equal(rc_alloc_live(), live);
}

/* A decompression bomb: 64 MiB of zeros in about 64 KiB. Inflation stops at
 * the cap; the output never grows past max + 1. */
static void test_inflate_bomb(void **state)
{
    (void)state;
    long live = rc_alloc_live();
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    size_t zl;
    uint8_t *z = client_deflate(zeros, big, 15, 0, &zl);
    free(zeros);
    assert_true(zl < 128 * 1024);
    struct pmd_pool p;
    pmd_pool_init(&p, 1, 8);
    uint8_t *out = (uint8_t *)1;
    assert_int_equal(pmd_inflate(&p, z, zl, 1 << 20, &out), RC_E_TOO_BIG);
    assert_null(out);
    /* Exactly at the cap is fine, one byte over is not. */
    uint8_t *raw = sample(5000, 1);
    free(z);
    z = client_deflate(raw, 5000, 15, 0, &zl);
    assert_int_equal(pmd_inflate(&p, z, zl, 5000, &out), 5000);
    rc_free(out);
    assert_int_equal(pmd_inflate(&p, z, zl, 4999, &out), RC_E_TOO_BIG);
    assert_int_equal(pmd_inflate(&p, z, zl, 0, &out), RC_E_TOO_BIG);
    free(z);
    free(raw);
    pmd_pool_destroy(&p);
    assert_int_equal(rc_alloc_live(), live);
}

static void test_inflate_bad_data(void **state)
{
    (void)state;
    long live = rc_alloc_live();
    struct pmd_pool p;
    pmd_pool_init(&p, 1, 8);
    uint8_t *out;
    /* BTYPE 11 (reserved) */
    static const uint8_t reserved[] = {0x07, 0x00};
    assert_int_equal(pmd_inflate(&p, reserved, sizeof(reserved), 1000, &out), RC_E_DATA);
    /* a distance before the start of the window (no context takeover) */
    static const uint8_t far[] = {0x63, 0x00, 0x02, 0x00};
    ssize_t r = pmd_inflate(&p, far, sizeof(far), 1000, &out);
    if (r >= 0)
        rc_free(out);
    /* a stored block whose LEN and NLEN disagree */
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'};
    assert_int_equal(pmd_inflate(&p, stored, sizeof(stored), 1000, &out), RC_E_DATA);
    /* bytes after a final block */
    uint8_t *raw = sample(300, 2);
    size_t zl;
    uint8_t *z = client_deflate(raw, 300, 15, 1, &zl);
    z = realloc(z, zl + 3);
    memcpy(z + zl, "abc", 3);
    assert_int_equal(pmd_inflate(&p, z, zl, 1000, &out), 300);
    rc_free(out);
    assert_int_equal(pmd_inflate(&p, z, zl + 3, 1000, &out), RC_E_DATA);
    free(z);
    free(raw);
    /* The stream recovers for the next message after an error. */
    raw = sample(100, 3);
    z = client_deflate(raw, 100, 15, 0, &zl);
    assert_int_equal(pmd_inflate(&p, z, zl, 1000, &out), 100);
    assert_memory_equal(out, raw, 100);
    rc_free(out);
    free(z);
    free(raw);
    pmd_pool_destroy(&p);
    assert_int_equal(rc_alloc_live(), live);
}

static void test_deflate_round_trip(void **state)
{
    (void)state;
    long live = rc_alloc_live();
    struct pmd_pool p;
    pmd_pool_init(&p, 1, 8);
    static const size_t sizes[] = {0, 1, 100, 1024, 65536, 300000};
    for (unsigned bits = 8; bits <= 15; bits++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            uint8_t *raw = sample(sizes[i], bits);
            const uint8_t *z;
            ssize_t zl = pmd_deflate(&p, bits, raw, sizes[i], &z);
            assert_true(zl >= 0);
            if (sizes[i] >= 1024)
                assert_true((size_t)zl < sizes[i] * 3 / 4);
            /* The client inflates with the window it negotiated (8 runs as 9). */
            uint8_t *back = client_inflate(z, (size_t)zl, sizes[i], bits < 9 ? 9 : (int)bits);
            assert_memory_equal(back, raw, sizes[i]);
            free(back);
            free(raw);
            pmd_trim(&p);
        }
    }
    /* No context takeover: the same message compresses to the same bytes. */
    uint8_t *raw = sample(2000, 9);
    const uint8_t *z;
    ssize_t a = pmd_deflate(&p, 15, raw, 2000, &z);
    uint8_t *first = malloc((size_t)a);
    memcpy(first, z, (size_t)a);
    assert_int_equal(pmd_deflate(&p, 15, raw, 2000, &z), a);
    assert_memory_equal(first, z, (size_t)a);
    free(first);
    free(raw);
    /* One stream per window size used, sized by mem_level and window bits. */
    assert_non_null(p.def[15]);
    assert_non_null(p.def[9]);
    assert_null(p.def[8]);
    pmd_trim(&p);
    assert_true(p.scratch_cap <= PMD_SCRATCH_KEEP);
    pmd_pool_destroy(&p);
    assert_int_equal(pmd_pool_bytes(&p), 0);
    assert_int_equal(rc_alloc_live(), live);
}

/* The periodic trim frees the streams of a pool unused since the last call. */
static void test_trim_idle(void **state)
{
    (void)state;
    long live = rc_alloc_live();
    struct pmd_pool p;
    pmd_pool_init(&p, 1, 8);
    assert_int_equal(pmd_pool_trim_idle(&p), 0); /* nothing held */
    uint8_t *raw = sample(2000, 6);
    const uint8_t *z;
    assert_true(pmd_deflate(&p, 15, raw, 2000, &z) > 0);
    assert_true(pmd_pool_bytes(&p) > 200 * 1024);
    assert_int_equal(pmd_pool_trim_idle(&p), 0); /* used since the last call */
    assert_true(pmd_pool_bytes(&p) > 200 * 1024);
    assert_int_equal(pmd_pool_trim_idle(&p), 1); /* a whole period unused */
    assert_int_equal(pmd_pool_bytes(&p), 0);
    assert_null(p.def[15]);
    /* and it works again afterwards */
    assert_true(pmd_deflate(&p, 15, raw, 2000, &z) > 0);
    pmd_pool_destroy(&p);
    free(raw);
    assert_int_equal(rc_alloc_live(), live);
}

/* mem_level and window bits size the streams: a small setting holds less. */
static void test_pool_sizing(void **state)
{
    (void)state;
    uint8_t *raw = sample(4096, 4);
    const uint8_t *z;
    struct pmd_pool big, small;
    pmd_pool_init(&big, 1, 8);
    pmd_pool_init(&small, 1, 1);
    assert_true(pmd_deflate(&big, 15, raw, 4096, &z) > 0);
    assert_true(pmd_deflate(&small, 9, raw, 4096, &z) > 0);
    size_t b = big.zbytes, s = small.zbytes;
    assert_true(b > 200 * 1024);
    assert_true(s < 16 * 1024);
    pmd_pool_destroy(&big);
    pmd_pool_destroy(&small);
    free(raw);
}

/* Every allocation failing in turn: a clean RC_E_NOMEM, nothing leaked. */
static void test_alloc_failures(void **state)
{
    (void)state;
    uint8_t *raw = sample(3000, 5);
    size_t zl;
    uint8_t *zin = client_deflate(raw, 3000, 15, 0, &zl);
    long live = rc_alloc_live();
    for (unsigned long n = 1; n < 12; n++) {
        struct pmd_pool p;
        pmd_pool_init(&p, 1, 8);
        rc_alloc_fail_after(n);
        uint8_t *out;
        ssize_t r = pmd_inflate(&p, zin, zl, 1 << 20, &out);
        if (r >= 0)
            rc_free(out);
        else
            assert_int_equal(r, RC_E_NOMEM);
        rc_alloc_fail_after(n);
        const uint8_t *z;
        r = pmd_deflate(&p, 15, raw, 3000, &z);
        assert_true(r > 0 || r == RC_E_NOMEM);
        rc_alloc_fail_after(0);
        pmd_pool_destroy(&p);
        assert_int_equal(rc_alloc_live(), live);
    }
    free(zin);
    free(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inflate_sizes_and_windows),
        cmocka_unit_test(test_inflate_bomb),
        cmocka_unit_test(test_inflate_bad_data),
        cmocka_unit_test(test_deflate_round_trip),
        cmocka_unit_test(test_pool_sizing),
        cmocka_unit_test(test_trim_idle),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
