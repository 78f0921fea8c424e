/* test_json_scan.c - proto/json_scan: the HTTP API's request bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "guardbuf.h"
#include "json_scan.h"

static ssize_t scan(const char *s, struct json_member *m, size_t cap)
{
    return json_scan_object(s, strlen(s), m, cap);
}

static void test_members(void **state)
{
    (void)state;
    struct json_member m[4];
    const char *s = " {\"room_id\" : \"lobby\", \"data\":{\"x\":[1,-2.5e+3,true,null]},"
                    "\"n\":0} ";
    assert_int_equal(scan(s, m, 4), 3);
    const struct json_member *r = json_find(m, 3, "room_id");
    assert_non_null(r);
    assert_int_equal(r->type, JSON_STRING);
    assert_int_equal(r->val_len, 7);
    assert_memory_equal(r->val, "\"lobby\"", 7);
    const struct json_member *d = json_find(m, 3, "data");
    assert_int_equal(d->type, JSON_OBJECT);
    assert_int_equal(d->val_len, strlen("{\"x\":[1,-2.5e+3,true,null]}"));
    assert_int_equal(json_find(m, 3, "n")->type, JSON_NUMBER);
    assert_null(json_find(m, 3, "missing"));
    assert_int_equal(scan("{}", m, 4), 0);
    /* more members than cap: counted, the first cap stored */
    assert_int_equal(scan("{\"a\":1,\"b\":2,\"c\":3}", m, 2), 3);
    /* duplicates: the last wins */
    assert_int_equal(scan("{\"a\":1,\"a\":2}", m, 4), 2);
    assert_memory_equal(json_find(m, 2, "a")->val, "2", 1);
}

static void test_invalid(void **state)
{
    (void)state;
    struct json_member m[4];
    static const char *const bad[] = {
        "",
        "[]",
        "1",
        "\"s\"",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{a:1}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\xff\"}",
        "{\"a\":1}x",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\":\"unterminated}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (scan(bad[i], m, 4) != RC_E_INVAL)
            fail_msg("accepted: %s", bad[i]);
    /* nesting deeper than JSON_MAX_DEPTH */
    char deep[200] = "{\"a\":";
    size_t o = strlen(deep);
    for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
        deep[o++] = '[';
    for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    deep[o] = '\0';
    assert_int_equal(scan(deep, m, 4), RC_E_INVAL);
}

static void test_decode(void **state)
{
    (void)state;
    char out[32];
    const char *s = "\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\"";
    ssize_t n = json_string_decode(s, strlen(s), out, sizeof(out));
    assert_int_equal(n, 13);
    assert_memory_equal(out, "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80", 13);
    assert_int_equal(json_string_decode("\"\\ud800\"", 8, out, sizeof(out)), RC_E_INVAL);
    assert_int_equal(json_string_decode("\"\\udc00\"", 8, out, sizeof(out)), RC_E_INVAL);
    assert_int_equal(json_string_decode("\"\\u0000\"", 8, out, sizeof(out)), RC_E_INVAL);
    assert_int_equal(json_string_decode("\"abcdef\"", 8, out, 4), RC_E_TOO_BIG);
    assert_int_equal(json_string_decode("abc", 3, out, sizeof(out)), RC_E_INVAL);
}

/* Every input at the end of a guard page: no read past it, whole or cut. */
static void test_guarded_prefixes(void **state)
{
    (void)state;
    const char *s = "{\"room_id\":\"l\\u00e9\",\"data\":{\"x\":[1,2e3,\"\\n\"]}}";
    size_t len = strlen(s);
    struct json_member m[4];
    for (size_t n = 0; n <= len; n++) {
        char *p = guardbuf_put(s, n);
        ssize_t r = json_scan_object(p, n, m, 4);
        assert_true(n == len ? r == 2 : r == RC_E_INVAL);
        guardbuf_free();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_guarded_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
