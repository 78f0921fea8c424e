/* test_busmsg.c - the channel-message codec: valid room and direct messages
 * parse to the right fields; every truncation of a valid message, every
 * malformed field (sign, leading zero, overflow, bad epoch or node bytes,
 * missing LF, another program's text) is refused; inputs sit at the end of a
 * guard-page buffer so an over-read crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "busmsg.h"
#include "err.h"
#include "guardbuf.h"

static int parse(const char *s, size_t n, struct busmsg *m)
{
    const char *p = guardbuf_put(s, n);
    return busmsg_parse_room(p, n, m);
}

static void test_room_valid(void **state)
{
    (void)state;
    const char s[] = "rc1 42 1764460800123 2 e1Ab_- node-1:8080:x 77\n{\"a\":1,\"seq\":42}";
    struct busmsg m;
    assert_int_equal(parse(s, sizeof(s) - 1, &m), 0);
    assert_true(m.seq == 42);
    assert_true(m.ts_ms == 1764460800123LL);
    assert_int_equal(m.flags, 2);
    assert_int_equal(m.epoch_len, 6);
    assert_memory_equal(m.epoch, "e1Ab_-", 6);
    assert_int_equal(m.origin_len, 13);
    assert_memory_equal(m.origin, "node-1:8080:x", 13);
    assert_true(m.exclude == 77);
    assert_int_equal(m.len, strlen("{\"a\":1,\"seq\":42}"));
    assert_memory_equal(m.data, "{\"a\":1,\"seq\":42}", m.len);
}

static void test_room_binary_and_empty_data(void **state)
{
    (void)state;
    const char s[] = "rc1 1 0 1 E n 0\n\x00\xff\n ";
    struct busmsg m;
    assert_int_equal(parse(s, sizeof(s) - 1, &m), 0);
    assert_int_equal(m.len, 4);
    assert_memory_equal(m.data, "\x00\xff\n ", 4);
    const char e[] = "rc1 18446744073709551 0 0 E n 18446744073709551615\n";
    assert_int_equal(parse(e, sizeof(e) - 1, &m), 0);
    assert_int_equal(m.len, 0);
    assert_true(m.exclude == UINT64_MAX);
}

static void test_room_every_truncation_refused(void **state)
{
    (void)state;
    const char s[] = "rc1 42 1764460800123 2 ep node 77\n";
    struct busmsg m;
    /* every proper prefix lacks the LF: refused */
    for (size_t n = 0; n < sizeof(s) - 1; n++)
        assert_int_equal(parse(s, n, &m), RC_E_PROTO);
    assert_int_equal(parse(s, sizeof(s) - 1, &m), 0);
}

static void test_room_bad_fields(void **state)
{
    (void)state;
    static const char *bad[] = {
        "hello world",                           /* not ours */
        "rc2 1 0 0 e n 0\nx",                    /* unknown version */
        "rc1 0 0 0 e n 0\nx",                    /* seq 0 */
        "rc1 -1 0 0 e n 0\nx",                   /* sign */
        "rc1 +1 0 0 e n 0\nx",                   /* sign */
        "rc1 01 0 0 e n 0\nx",                   /* leading zero */
        "rc1 1.5 0 0 e n 0\nx",                  /* not an integer */
        "rc1 abc 0 0 e n 0\nx",                  /* wrong seq type */
        "rc1 9223372036854775808 0 0 e n 0\nx",  /* seq over 2^63-1 */
        "rc1 1 9223372036854775808 0 e n 0\nx",  /* ts overflow */
        "rc1 1 0 4294967296 e n 0\nx",           /* flags overflow */
        "rc1 1 0 0 e n 18446744073709551616\nx", /* exclude overflow */
        "rc1 1 0 0  n 0\nx",                     /* empty epoch */
        "rc1 1 0 0 e\"x n 0\nx",                 /* quote in epoch */
        "rc1 1 0 0 e\\x n 0\nx",                 /* backslash in epoch */
        "rc1 1 0 0 abcdefghijklmnopq n 0\nx",    /* epoch of 17 */
        "rc1 1 0 0 e  0\nx",                     /* empty node */
        "rc1 1 0 0 e n\x01 0\nx",                /* control byte in node */
        "rc1 1 0 0 e n 0 x",                     /* space instead of LF */
        "rc1 1 0 0 e n 0",                       /* no LF */
        "rc1  1 0 0 e n 0\nx",                   /* double space */
        "rc1 1 0 0 e n\n",                       /* missing field */
        "RC1 1 0 0 e n 0\nx",                    /* case */
    };
    struct busmsg m;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], strlen(bad[i]), &m) != RC_E_PROTO)
            fail_msg("accepted: %s", bad[i]);
    }
    const char node65[] = "rc1 1 0 0 e "
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0\nx";
    assert_int_equal(parse(node65, sizeof(node65) - 1, &m), RC_E_PROTO);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char h[BUSMSG_HEADER_MAX + 8];
    int n = busmsg_format_room(
        h, 9223372036854775807ULL, 9223372036854775807LL, UINT32_MAX, "abcdefghijklmnop",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", UINT64_MAX);
    assert_true(n > 0 && n <= BUSMSG_HEADER_MAX);
    memcpy(h + n, "xy", 2);
    struct busmsg m;
    assert_int_equal(parse(h, (size_t)n + 2, &m), 0);
    assert_true(m.seq == 9223372036854775807ULL);
    assert_true(m.exclude == UINT64_MAX);
    assert_int_equal(m.len, 2);
    assert_int_equal(busmsg_format_room(h, 1, 0, 0, "bad epoch", "n", 0), RC_E_INVAL);
    assert_int_equal(busmsg_format_room(h, 1, 0, 0, "e", "", 0), RC_E_INVAL);
    assert_int_equal(busmsg_format_room(h, 0, 0, 0, "e", "n", 0), RC_E_INVAL);
}

static void test_direct(void **state)
{
    (void)state;
    int bin = -1;
    const char *d;
    size_t n;
    const char ok[] = "rcd1 1\n\x00z";
    const char *p = guardbuf_put(ok, sizeof(ok) - 1);
    assert_int_equal(busmsg_parse_direct(p, sizeof(ok) - 1, &bin, &d, &n), 0);
    assert_int_equal(bin, 1);
    assert_int_equal(n, 2);
    assert_memory_equal(d, "\x00z", 2);
    const char empty[] = "rcd1 0\n";
    p = guardbuf_put(empty, 7);
    assert_int_equal(busmsg_parse_direct(p, 7, &bin, &d, &n), 0);
    assert_int_equal(bin, 0);
    assert_int_equal(n, 0);
    static const char *bad[] = {"rcd1 2\nx", "rcd1 0x", "rcd1 0", "rcd0 0\nx", "rc1 1 0 0 e n 0\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = guardbuf_put(bad[i], strlen(bad[i]));
        assert_int_equal(busmsg_parse_direct(p, strlen(bad[i]), &bin, &d, &n), RC_E_PROTO);
    }
}

static void test_kick(void **state)
{
    (void)state;
    unsigned code = 0;
    const char *r;
    size_t n;
    const char ok[] = "rck1 4000\nbye";
    const char *p = guardbuf_put(ok, sizeof(ok) - 1);
    assert_int_equal(busmsg_parse_kick(p, sizeof(ok) - 1, &code, &r, &n), 0);
    assert_int_equal(code, 4000);
    assert_int_equal(n, 3);
    assert_memory_equal(r, "bye", 3);
    p = guardbuf_put("rck1 1000\n", 10);
    assert_int_equal(busmsg_parse_kick(p, 10, &code, &r, &n), 0);
    assert_int_equal(code, 1000);
    assert_int_equal(n, 0);
    static const char *bad[] = {"rck1 999\n",   "rck1 1001\n", "rck1 5000\n",
                                "rck1 04000\n", "rck1 4000",   "rck1 \n",
                                "rck1 40a0\n",  "rcd1 0\nx",   "rck1 99999999999\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = guardbuf_put(bad[i], strlen(bad[i]));
        assert_int_equal(busmsg_parse_kick(p, strlen(bad[i]), &code, &r, &n), RC_E_PROTO);
    }
    char big[10 + BUSMSG_KICK_REASON_MAX + 1];
    memcpy(big, "rck1 4000\n", 10);
    memset(big + 10, 'x', sizeof(big) - 10);
    p = guardbuf_put(big, sizeof(big));
    assert_int_equal(busmsg_parse_kick(p, sizeof(big), &code, &r, &n), RC_E_PROTO);
    assert_int_equal(busmsg_parse_kick(p, sizeof(big) - 1, &code, &r, &n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_valid),
        cmocka_unit_test(test_room_binary_and_empty_data),
        cmocka_unit_test(test_room_every_truncation_refused),
        cmocka_unit_test(test_room_bad_fields),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_kick),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    guardbuf_free();
    return rc;
}
