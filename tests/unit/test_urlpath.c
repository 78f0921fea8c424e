/* test_urlpath.c - proto/urlpath: safe relative paths for static files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "urlpath.h"

static void ok(const char *in, const char *want)
{
    char out[128];
    ssize_t n = urlpath_normalize(in, strlen(in), out, sizeof(out));
    if (n < 0)
        fail_msg("%s refused (%zd), want %s", in, n, want);
    assert_string_equal(out, want);
    assert_int_equal((size_t)n, strlen(want));
}

static void refused(const char *in)
{
    char out[128];
    ssize_t n = urlpath_normalize(in, strlen(in), out, sizeof(out));
    if (n != RC_E_INVAL)
        fail_msg("%s accepted or odd (%zd)", in, n);
}

static void test_accepts(void **state)
{
    (void)state;
    ok("/", "index.html");
    ok("/index.html", "index.html");
    ok("/js/app.js", "js/app.js");
    ok("/a/b/", "a/b/index.html");
    ok("//a//b", "a/b");
    ok("/a%20b.txt", "a b.txt");
    ok("/%41", "A");
    ok("/caf%C3%A9", "caf\xc3\xa9");
    ok("/a.b.c", "a.b.c");
    ok("/a..b", "a..b"); /* dots inside a name are fine */
}

static void test_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",        "x",         "/..",     "/../x",   "/a/../b", "/a/..",   "/./x",   "/a/./b",
        "/.",      "/%2e%2e/x", "/%2E%2e", "/.%2e/x", "/%2e/x",  "/..%2fx", "/a%2fb", "/a%2Fb",
        "/..%5cx", "/a\\b",     "/a%00b",  "/%00",    "/a%0ab",  "/a\x01",  "/.git",  "/a/.env",
        "/%2egit", "/%",        "/%4",     "/%zz",    "/a%7f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refused(bad[i]);
}

static void test_too_big(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(urlpath_normalize("/abcdefgh", 9, out, sizeof(out)), RC_E_TOO_BIG);
    assert_int_equal(urlpath_normalize("/", 1, out, sizeof(out)), RC_E_TOO_BIG);
    char out2[11];
    assert_int_equal(urlpath_normalize("/", 1, out2, sizeof(out2)), 10);
}

/* Every prefix of a valid path is handled without reading past it. */
static void test_prefixes(void **state)
{
    (void)state;
    const char *p = "/a%20b/c%2e/d";
    char out[64];
    for (size_t n = 0; n <= strlen(p); n++) {
        char buf[64];
        memcpy(buf, p, n);
        ssize_t r = urlpath_normalize(buf, n, out, sizeof(out));
        assert_true(r >= 0 || r == RC_E_INVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
