/* test_jwt.c - proto/jwt: the RFC 7515 Appendix A.1 HS256 example, every
 * way a token can be malformed, tampering anywhere, output bounds, and the
 * token at the end of a guard page (a read past it crashes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "guardbuf.h"
#include "jwt.h"

/* RFC 7515 A.1: the JWS using HMAC SHA-256. */
static const char rfc_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                                ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtc"
                                "GxlLmNvbS9pc19yb290Ijp0cnVlfQ"
                                ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char rfc_jwk_k[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

static size_t rfc_key(uint8_t *key)
{
    long n = rc_base64_decode(rfc_jwk_k, strlen(rfc_jwk_k), key, 64, 1);
    assert_true(n == 64);
    return (size_t)n;
}

static int check(const char *tok, size_t len, const uint8_t *key, size_t klen, char *out,
                 size_t cap, size_t *h, size_t *p)
{
    const char *g = guardbuf_put(tok, len);
    return jwt_hs256_check(g, len, (const char *)key, klen, out, cap, h, p);
}

static void test_jwt__rfc7515_a1_verifies_and_decodes(void **state)
{
    (void)state;
    uint8_t key[64];
    size_t klen = rfc_key(key);
    char out[512];
    size_t h, p;
    assert_int_equal(check(rfc_token, strlen(rfc_token), key, klen, out, sizeof(out), &h, &p),
                     JWT_OK);
    const char *hdr = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    const char *pay = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n "
                      "\"http://example.com/is_root\":true}";
    assert_int_equal(h, strlen(hdr));
    assert_memory_equal(out, hdr, h);
    assert_int_equal(p, strlen(pay));
    assert_memory_equal(out + h, pay, p);
}

static void test_jwt__any_changed_byte_is_refused(void **state)
{
    (void)state;
    uint8_t key[64];
    size_t klen = rfc_key(key);
    char tok[sizeof(rfc_token)];
    char out[512];
    size_t h, p;
    for (size_t i = 0; i < strlen(rfc_token); i++) {
        if (rfc_token[i] == '.')
            continue;
        memcpy(tok, rfc_token, sizeof(rfc_token));
        tok[i] = tok[i] == 'A' ? 'B' : 'A';
        int rc = check(tok, strlen(tok), key, klen, out, sizeof(out), &h, &p);
        assert_true(rc == JWT_BAD_SIGNATURE || rc == JWT_MALFORMED);
    }
    /* a different secret */
    key[0] ^= 1;
    assert_int_equal(check(rfc_token, strlen(rfc_token), key, klen, out, sizeof(out), &h, &p),
                     JWT_BAD_SIGNATURE);
}

static void test_jwt__malformed_shapes(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",     ".",    "..",   "abc",    "a.b",    "a.b.c.d",
        ".b.c", "a..c", "a.b.", "a$.b.c", "a.b.c=", "eyJ0.eyJ0.!!!!",
    };
    char out[256];
    size_t h, p;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = check(bad[i], strlen(bad[i]), (const uint8_t *)"k", 1, out, sizeof(out), &h, &p);
        assert_true(rc == JWT_MALFORMED || rc == JWT_BAD_SIGNATURE);
        assert_int_not_equal(rc, JWT_OK);
    }
}

static void test_jwt__output_too_small_is_too_big_not_overflow(void **state)
{
    (void)state;
    uint8_t key[64];
    size_t klen = rfc_key(key);
    char out[40];
    size_t h, p;
    /* header (29 bytes) fits, header + payload does not */
    assert_int_equal(check(rfc_token, strlen(rfc_token), key, klen, out, sizeof(out), &h, &p),
                     JWT_TOO_BIG);
    assert_int_equal(check(rfc_token, strlen(rfc_token), key, klen, out, 8, &h, &p), JWT_TOO_BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt__rfc7515_a1_verifies_and_decodes),
        cmocka_unit_test(test_jwt__any_changed_byte_is_refused),
        cmocka_unit_test(test_jwt__malformed_shapes),
        cmocka_unit_test(test_jwt__output_too_small_is_too_big_not_overflow),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    guardbuf_free();
    return rc;
}
