/* test_redisurl.c - the cluster's Redis URL: defaults, every part, IPv6,
 * percent-escapes, and each refusal with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "redisurl.h"

static void test_defaults(void **state)
{
    (void)state;
    struct redis_url u;
    char why[128];
    assert_int_equal(redis_url_parse("redis://127.0.0.1", &u, why, sizeof(why)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.user, "");
    assert_int_equal(u.has_password, 0);
    assert_int_equal(redis_url_parse("redis://localhost/", &u, why, sizeof(why)), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.db, 0);
}

static void test_all_parts(void **state)
{
    (void)state;
    struct redis_url u;
    char why[128];
    assert_int_equal(
        redis_url_parse("redis://app:s%40cr%3At@redis-1.example.net:6380/12", &u, why, sizeof(why)),
        0);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "s@cr:t");
    assert_int_equal(u.has_password, 1);
    assert_string_equal(u.host, "redis-1.example.net");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 12);
    assert_int_equal(redis_url_parse("redis://:pw@h", &u, why, sizeof(why)), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "pw");
    assert_int_equal(redis_url_parse("redis://[::1]:7000/3", &u, why, sizeof(why)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);
    assert_int_equal(redis_url_parse("redis://[fe80::1]", &u, why, sizeof(why)), 0);
    assert_int_equal(u.port, 6379);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *why;
    } bad[] = {
        {"rediss://h", "TLS"},           {"http://h", "redis://"},
        {"127.0.0.1:6379", "redis://"},  {"redis://", "no host"},
        {"redis://:6379", "no host"},    {"redis://h:0", "port"},
        {"redis://h:65536", "port"},     {"redis://h:", "port"},
        {"redis://h:63x9", "port"},      {"redis://h/x", "database"},
        {"redis://h/10000", "database"}, {"redis://h/-1", "database"},
        {"redis://h?db=1", "query"},     {"redis://h#x", "fragment"},
        {"redis://h o", "host"},         {"redis://[::1", "IPv6"},
        {"redis://[]", "IPv6"},          {"redis://[::1]x", "IPv6"},
        {"redis://[zz]", "IPv6"},        {"redis://u:%4@h", "password"},
        {"redis://u:%00@h", "password"}, {"redis://%zz@h", "user"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct redis_url u;
        char why[128] = "";
        if (redis_url_parse(bad[i].url, &u, why, sizeof(why)) != RC_E_INVAL)
            fail_msg("accepted %s", bad[i].url);
        if (strstr(why, bad[i].why) == NULL)
            fail_msg("%s: reason '%s' lacks '%s'", bad[i].url, why, bad[i].why);
    }
}

static void test_long_host(void **state)
{
    (void)state;
    char url[400] = "redis://";
    memset(url + 8, 'a', 300);
    url[308] = '\0';
    struct redis_url u;
    char why[64];
    assert_int_equal(redis_url_parse(url, &u, why, sizeof(why)), RC_E_INVAL);
    assert_non_null(strstr(why, "too long"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_parts),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_long_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
