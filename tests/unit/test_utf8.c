/* test_utf8.c - the incremental validator: Autobahn 6.x style vectors (valid
 * boundaries and fail-fast invalid ones), each fed whole, split at every
 * offset and byte by byte from a guard-page buffer, plus an exhaustive check
 * against an independent codepoint-based reference on short sequences. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guardbuf.h"
#include "utf8.h"

struct vec {
    const char *name;
    const char *s;
    size_t n;
    long fail_at; /* index of the byte at which the validator must reject; -1 valid;
                     -2 a valid prefix that ends inside a character */
};

#define V(name, lit, fail)                                                                         \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, fail                                                           \
    }

/* "κόσμε" is Autobahn 6.2/6.3's greeting: CE BA E1 BD B9 CF 83 CE BC CE B5. */
#define KOSME "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

static const struct vec vecs[] = {
    /* 6.1, 6.2, 6.3: empty and valid text */
    V("6.1 empty", "", -1),
    V("6.2 hello", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", -1),
    V("6.3 kosme", KOSME, -1),
    /* 6.5/6.6: first and last code points of each sequence length */
    V("U+0000", "\x00", -1),
    V("U+007F", "\x7f", -1),
    V("U+0080", "\xc2\x80", -1),
    V("U+07FF", "\xdf\xbf", -1),
    V("U+0800", "\xe0\xa0\x80", -1),
    V("U+FFFF", "\xef\xbf\xbf", -1),
    V("U+10000", "\xf0\x90\x80\x80", -1),
    V("U+10FFFF", "\xf4\x8f\xbf\xbf", -1),
    /* 6.7/6.8: other boundary conditions */
    V("U+D7FF", "\xed\x9f\xbf", -1),
    V("U+E000", "\xee\x80\x80", -1),
    V("U+FFFD", "\xef\xbf\xbd", -1),
    V("U+FFFE noncharacter is valid", "\xef\xbf\xbe", -1),
    V("long ascii + kosme", "0123456789abcdefghijklmnopqrstuvwxyz" KOSME "0123456789abcdef", -1),
    /* 6.4.x fail-fast: kosme then a code point above U+10FFFF, then more text */
    V("6.4.1 F4 90 after kosme",
      KOSME "\xf4\x90\x80\x80"
            "edited",
      12),
    V("6.4.3 F4 90 bare", KOSME "\xf4\x90\x80\x80", 12),
    V("6.4.4 surrogate in kosme",
      KOSME "\xed\xa0\x80"
            "edited",
      12),
    /* 6.8-6.9: code points beyond the range, 5- and 6-byte forms */
    V("F4 90 80 80 (U+110000)", "\xf4\x90\x80\x80", 1),
    V("F7 BF BF BF", "\xf7\xbf\xbf\xbf", 0),
    V("5-byte F8 88 80 80 80", "\xf8\x88\x80\x80\x80", 0),
    V("6-byte FC 84 80 80 80 80", "\xfc\x84\x80\x80\x80\x80", 0),
    /* 6.10-6.11: lone and stray continuation bytes */
    V("lone 80", "\x80", 0),
    V("lone BF", "\xbf", 0),
    V("80 BF after ascii", "ab\x80\xbf", 2),
    V("extra continuation", "\xc2\x80\x80", 2),
    /* 6.12-6.13: lead bytes followed by a space */
    V("C0 space", "\xc0 ", 0),
    V("DF space", "\xdf ", 1),
    V("E1 space", "\xe1 ", 1),
    V("E1 80 space", "\xe1\x80 ", 2),
    V("F1 80 80 space", "\xf1\x80\x80 ", 3),
    /* 6.14-6.15: sequences with the last byte missing (incomplete at the end) */
    V("C2 at end", "\xc2", -2),
    V("E1 80 at end", "\xe1\x80", -2),
    V("F1 80 80 at end", "\xf1\x80\x80", -2),
    V("E0 A0 at end", "\xe0\xa0", -2),
    V("F4 8F at end", "\xf4\x8f", -2),
    /* 6.16: impossible bytes */
    V("FE", "\xfe", 0),
    V("FF", "\xff", 0),
    V("FE FE FF FF", "\xfe\xfe\xff\xff", 0),
    /* 6.17-6.18: overlong forms */
    V("overlong / C0 AF", "\xc0\xaf", 0),
    V("overlong / E0 80 AF", "\xe0\x80\xaf", 1),
    V("overlong / F0 80 80 AF", "\xf0\x80\x80\xaf", 1),
    V("max overlong C1 BF", "\xc1\xbf", 0),
    V("max overlong E0 9F BF", "\xe0\x9f\xbf", 1),
    V("max overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", 1),
    V("overlong NUL C0 80", "\xc0\x80", 0),
    /* 6.19-6.21: surrogates, single and paired */
    V("U+D800", "\xed\xa0\x80", 1),
    V("U+DB7F", "\xed\xad\xbf", 1),
    V("U+DFFF", "\xed\xbf\xbf", 1),
    V("U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80", 1),
    V("after 17 ascii", "0123456789abcdefg\xed\xa0\x80", 18),
    V("after 31 ascii", "0123456789abcdef0123456789abcde\xc0", 31),
};

static void check_vec(const struct vec *v)
{
    const uint8_t *s = (const uint8_t *)v->s;
    uint32_t want_end = v->fail_at == -1   ? UTF8_ACCEPT
                        : v->fail_at == -2 ? 0xFFFFFFFFu /* "inside", checked below */
                                           : UTF8_REJECT;

    /* Whole. */
    uint32_t st = utf8_validate(UTF8_ACCEPT, guardbuf_put(s, v->n), v->n);
    if (want_end == 0xFFFFFFFFu)
        assert_true(st != UTF8_ACCEPT && st != UTF8_REJECT);
    else
        assert_int_equal(st, want_end);
    assert_int_equal(utf8_is_valid(guardbuf_put(s, v->n), v->n), v->fail_at == -1);

    /* Split at every offset. */
    for (size_t k = 0; k <= v->n; k++) {
        uint32_t a = utf8_validate(UTF8_ACCEPT, guardbuf_put(s, k), k);
        uint32_t b = utf8_validate(a, guardbuf_put(s + k, v->n - k), v->n - k);
        assert_int_equal(b, st);
        /* Fail-fast: rejected exactly once the bad byte is in. */
        if (v->fail_at >= 0)
            assert_int_equal(a == UTF8_REJECT, (long)k > v->fail_at);
        else
            assert_true(a != UTF8_REJECT);
    }

    /* One byte at a time. */
    uint32_t c = UTF8_ACCEPT;
    for (size_t i = 0; i < v->n; i++) {
        c = utf8_validate(c, guardbuf_put(s + i, 1), 1);
        if (v->fail_at >= 0)
            assert_int_equal(c == UTF8_REJECT, (long)i >= v->fail_at);
    }
    assert_int_equal(c, st);
}

static void test_utf8__autobahn_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++)
        check_vec(&vecs[i]);
}

static void test_utf8__reject_is_sticky(void **state)
{
    assert_int_equal(utf8_validate(UTF8_REJECT, (const uint8_t *)"abc", 3), UTF8_REJECT);
    assert_int_equal(utf8_validate(UTF8_REJECT, NULL, 0), UTF8_REJECT);
    assert_int_equal(utf8_validate(UTF8_ACCEPT, NULL, 0), UTF8_ACCEPT);
    /* A state we never handed out is treated as invalid, not as an index. */
    assert_int_equal(utf8_validate(12345, (const uint8_t *)"a", 1), UTF8_REJECT);
}

static void test_utf8__fast_path_finds_late_error(void **state)
{
    /* Bad bytes at every position of a long ASCII run (word boundaries). */
    uint8_t buf[200];
    for (size_t bad = 0; bad < sizeof(buf); bad++) {
        memset(buf, 'a', sizeof(buf));
        buf[bad] = 0xFF;
        assert_int_equal(utf8_validate(UTF8_ACCEPT, guardbuf_put(buf, sizeof(buf)), sizeof(buf)),
                         UTF8_REJECT);
        assert_int_equal(utf8_validate(UTF8_ACCEPT, guardbuf_put(buf, bad), bad), UTF8_ACCEPT);
        /* A valid 4-byte character placed at every offset. */
        memset(buf, 'a', sizeof(buf));
        if (bad + 4 <= sizeof(buf)) {
            memcpy(buf + bad, "\xf0\x9f\x98\x80", 4);
            assert_true(utf8_is_valid(guardbuf_put(buf, sizeof(buf)), sizeof(buf)));
        }
    }
}

/* Independent reference: decode code points by value. Returns 1 valid, 0 a
 * valid prefix ending inside a character, -1 invalid. */
static int ref_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return -1;
        }
        if (i + len > n) {
            /* Incomplete: a prefix is acceptable if some completion is valid. */
            uint8_t tmp[4];
            size_t have = n - i;
            static const uint8_t cands[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF};
            size_t missing = len - have;
            size_t combos = 1;
            for (size_t k = 0; k < missing; k++)
                combos *= sizeof(cands);
            for (size_t c = 0; c < combos; c++) {
                memcpy(tmp, s + i, have);
                size_t x = c;
                for (size_t k = 0; k < missing; k++, x /= sizeof(cands))
                    tmp[have + k] = cands[x % sizeof(cands)];
                if (ref_check(tmp, len) == 1)
                    return 0;
            }
            return -1;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        i += len;
    }
    return 1;
}

static void compare_with_ref(const uint8_t *s, size_t n)
{
    uint32_t st = utf8_validate(UTF8_ACCEPT, s, n);
    int ref = ref_check(s, n);
    int got = st == UTF8_ACCEPT ? 1 : st == UTF8_REJECT ? -1 : 0;
    if (got != ref)
        fail_msg("len %zu bytes %02x %02x %02x %02x: dfa %d ref %d", n, s[0], n > 1 ? s[1] : 0,
                 n > 2 ? s[2] : 0, n > 3 ? s[3] : 0, got, ref);
}

static void test_utf8__exhaustive_matches_reference(void **state)
{
    uint8_t s[4];
    /* Every 1-, 2- and 3-byte sequence (fail-fast at every prefix follows,
     * since every prefix is itself one of the sequences checked). */
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        compare_with_ref(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            compare_with_ref(s, 2);
            if (a < 0x80 && b < 0x80)
                continue; /* plain ASCII pairs: the third byte is covered above */
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                compare_with_ref(s, 3);
            }
        }
    }
    /* 4-byte sequences: every lead >= C0, every second byte, and the boundary
     * values for the rest. */
    static const uint8_t edge[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F,
                                   0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF};
    for (unsigned a = 0xC0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++)
            for (size_t c = 0; c < sizeof(edge); c++)
                for (size_t d = 0; d < sizeof(edge); d++) {
                    s[0] = (uint8_t)a, s[1] = (uint8_t)b, s[2] = edge[c], s[3] = edge[d];
                    compare_with_ref(s, 4);
                }
}

static void test_utf8__truncate_keeps_whole_characters(void **state)
{
    const uint8_t *k = (const uint8_t *)KOSME; /* 2,3,2,2,2 byte characters */
    static const size_t want[] = {0, 0, 2, 2, 2, 5, 5, 7, 7, 9, 9, 11};
    for (size_t n = 0; n <= 11; n++)
        assert_int_equal(utf8_truncate(guardbuf_put(k, n), n), want[n]);
    /* Stops before invalid input. */
    assert_int_equal(utf8_truncate((const uint8_t *)"ab\xff"
                                                    "cd",
                                   5),
                     2);
    assert_int_equal(utf8_truncate((const uint8_t *)"ab\xed\xa0\x80", 5), 2);
    assert_int_equal(utf8_truncate((const uint8_t *)"hello", 5), 5);
    assert_int_equal(utf8_truncate(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8__autobahn_vectors),
        cmocka_unit_test(test_utf8__reject_is_sticky),
        cmocka_unit_test(test_utf8__fast_path_finds_late_error),
        cmocka_unit_test(test_utf8__exhaustive_matches_reference),
        cmocka_unit_test(test_utf8__truncate_keeps_whole_characters),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    guardbuf_free();
    return rc;
}
