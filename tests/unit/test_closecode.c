/* test_closecode.c - close code validity (RFC 6455 §7.4), the error -> close
 * code table, and close payload building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "closecode.h"
#include "err.h"
#include "utf8.h"

static void test_closecode__validity_table(void **state)
{
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                     1010, 1011, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0,    1,    999,  1004, 1005, 1006, 1012,  1013, 1014,
                                       1015, 1016, 1100, 2000, 2999, 5000, 65535, 65536};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        if (!ws_close_code_valid(valid[i]))
            fail_msg("%u should be valid", valid[i]);
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        if (ws_close_code_valid(invalid[i]))
            fail_msg("%u should be invalid", invalid[i]);
    /* The whole 16-bit range against the rule as written. */
    for (unsigned c = 0; c <= 0xFFFF; c++) {
        int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
        assert_int_equal(ws_close_code_valid(c), want);
    }
}

static void test_closecode__error_mapping(void **state)
{
    assert_int_equal(ws_close_code_for(RC_E_PROTO), 1002);
    assert_int_equal(ws_close_code_for(RC_E_UTF8), 1007);
    assert_int_equal(ws_close_code_for(RC_E_TOO_BIG), 1009);
    assert_int_equal(ws_close_code_for(RC_E_LIMIT), 1008);
    assert_int_equal(ws_close_code_for(RC_E_SCRIPT), 1011);
    assert_int_equal(ws_close_code_for(RC_E_NOMEM), 1011);
    assert_int_equal(ws_close_code_for(RC_E_TIMEOUT), 1001);
    assert_int_equal(ws_close_code_for(RC_E_TLS), 1011);
    assert_int_equal(ws_close_code_for(-5), 1011);
    assert_int_equal(ws_close_code_for(0), 1011);
}

static void test_closecode__reasons(void **state)
{
    assert_string_equal(ws_close_reason(1002), "protocol error");
    static const unsigned known[] = {1000, 1001, 1002, 1003, 1005, 1006, 1007,
                                     1008, 1009, 1010, 1011, 1012, 1013};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        const char *r = ws_close_reason(known[i]);
        assert_non_null(r);
        assert_true(strlen(r) > 0 && strlen(r) <= 123);
    }
    assert_non_null(ws_close_reason(4321));
}

static void test_closecode__payload_code_and_reason(void **state)
{
    uint8_t out[125];
    assert_int_equal(ws_close_payload(out, 0, "ignored", 7), 0);
    assert_int_equal(ws_close_payload(out, 1000, NULL, 0), 2);
    assert_memory_equal(out, "\x03\xe8", 2);
    assert_int_equal(ws_close_payload(out, 1002, "bye", 3), 5);
    assert_memory_equal(out,
                        "\x03\xea"
                        "bye",
                        5);
    assert_int_equal(ws_close_payload(out, 4999, "", 0), 2);
    assert_memory_equal(out, "\x13\x87", 2);
}

static void test_closecode__payload_truncates_at_character_boundary(void **state)
{
    uint8_t out[125];
    char reason[200];
    /* 122 ASCII bytes then a 2-byte character straddling the 123-byte limit. */
    memset(reason, 'x', 122);
    memcpy(reason + 122,
           "\xc3\xa9"
           "tail",
           6);
    assert_int_equal(ws_close_payload(out, 1000, reason, 128), 2 + 122);
    assert_true(utf8_is_valid(out + 2, 122));
    /* Exactly 123 bytes fit. */
    memset(reason, 'y', sizeof(reason));
    assert_int_equal(ws_close_payload(out, 1000, reason, sizeof(reason)), 125);
    /* 3-byte characters: 41 fit (123 bytes). */
    for (int i = 0; i < 60; i++)
        memcpy(reason + 3 * i, "\xe2\x82\xac", 3);
    assert_int_equal(ws_close_payload(out, 1011, reason, 180), 125);
    assert_true(utf8_is_valid(out + 2, 123));
    /* Invalid bytes never reach the wire. */
    assert_int_equal(ws_close_payload(out, 1000,
                                      "ok\xff"
                                      "no",
                                      5),
                     4);
    assert_memory_equal(out + 2, "ok", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closecode__validity_table),
        cmocka_unit_test(test_closecode__error_mapping),
        cmocka_unit_test(test_closecode__reasons),
        cmocka_unit_test(test_closecode__payload_code_and_reason),
        cmocka_unit_test(test_closecode__payload_truncates_at_character_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
