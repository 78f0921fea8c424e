/* test_jwt.c - proto/jwt: the RFC 7515 Appendix A examples (A.1 HS256, A.2
 * RS256, A.3 ES256) and RFC 8037 A.4 (EdDSA) with the keys the RFCs give as
 * JWKs; key selection by kid and the allow-list (algorithm confusion), every
 * way a JWK can be refused or skipped, tampering anywhere, malformed
 * shapes, output bounds, and every token at the end of a guard page (a read
 * past it crashes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "err.h"
#include "guardbuf.h"
#include "jwt.h"

/* The payload of RFC 7515 A.1 to A.3. */
#define RFC_PAYLOAD                                                                                \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl" \
    "fQ"
static const char rfc_claims[] = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n "
                                 "\"http://example.com/is_root\":true}";

/* RFC 7515 A.1: HMAC SHA-256. */
static const char a1_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC_PAYLOAD
                               ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char a1_k[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

/* RFC 7515 A.2: RSASSA-PKCS1-v1_5 SHA-256 (the public half of its JWK). */
static const char a2_token[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC_PAYLOAD
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L"
    "07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEU"
    "ipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
static const char a2_n[] =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d"
    "4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMd"
    "bBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-"
    "DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

/* RFC 7515 A.3: ECDSA P-256 SHA-256 (signature as JOSE r || s). */
static const char a3_token[] = "eyJhbGciOiJFUzI1NiJ9." RFC_PAYLOAD
                               ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISl"
                               "SApmWQxfKTUJqPP3-Kg6NU1Q";
static const char a3_x[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char a3_y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

/* RFC 8037 A.4: Ed25519 over "Example of Ed25519 signing" (A.2's public key). */
static const char ed_token[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
                               "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5Bh"
                               "VsPt9g7sVvpAr_MuM0KAg";
static const char ed_x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

#define ALL_ALGS ((1u << JWT_NALGS) - 1)
#define BIT(a) (1u << JWT_ALG_##a)
static const struct jwt_str nokid = {NULL, 0};

static struct jwt_str S(const char *s) {
    struct jwt_str r = {s, s ? strlen(s) : 0};
    return r;
}

static void
add_a1_secret(struct jwt_keyset *ks, struct jwt_str kid)
{
    uint8_t key[64];
    char err[128];
    assert_int_equal(rc_base64_decode(a1_k, strlen(a1_k), key, sizeof(key), 1), 64);
    assert_int_equal(jwt_keyset_add_secret(ks, kid, key, 64, err, sizeof(err)), 0);
}

static int add_jwk(struct jwt_keyset *ks, const char *kty, const char *crv, const char *kid,
                   const char *alg, const char *n, const char *e, const char *x, const char *y)
{
    struct jwt_jwk j = {.kty = S(kty),
                        .crv = S(crv),
                        .kid = S(kid),
                        .alg = S(alg),
                        .n = S(n),
                        .e = S(e),
                        .x = S(x),
                        .y = S(y)};
    char err[256];
    return jwt_keyset_add_jwk(ks, &j, err, sizeof(err));
}

/* jwt_verify on a guard-page copy of tok. */
static int verify(const struct jwt_keyset *ks, int alg, struct jwt_str kid, const char *tok,
                  size_t len, char *out, size_t cap, size_t *plen)
{
    const char *g = guardbuf_put(tok, len);
    return jwt_verify(ks, alg, kid, g, len, out, cap, plen);
}

static void expect_ok(const struct jwt_keyset *ks, int alg, struct jwt_str kid, const char *tok,
                      const char *payload)
{
    char out[512];
    size_t p = 99;
    assert_int_equal(verify(ks, alg, kid, tok, strlen(tok), out, sizeof(out), &p), 0);
    assert_int_equal(p, strlen(payload));
    assert_memory_equal(out, payload, p);
}

static int verdict(const struct jwt_keyset *ks, int alg, struct jwt_str kid, const char *tok)
{
    char out[512];
    size_t p;
    return verify(ks, alg, kid, tok, strlen(tok), out, sizeof(out), &p);
}

static void test_jwt__rfc7515_a1_hs256(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(BIT(HS256));
    add_a1_secret(ks, nokid);
    expect_ok(ks, JWT_ALG_HS256, nokid, a1_token, rfc_claims);
    /* the header, as the Lua side reads it */
    char out[128];
    size_t h;
    const char *g = guardbuf_put(a1_token, strlen(a1_token));
    assert_int_equal(jwt_decode_header(g, strlen(a1_token), out, sizeof(out), &h), 0);
    const char *hdr = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    assert_int_equal(h, strlen(hdr));
    assert_memory_equal(out, hdr, h);
    /* the same MAC under HS384 / HS512 is refused even when they are allowed */
    ks->allowed = ALL_ALGS;
    assert_int_equal(verdict(ks, JWT_ALG_HS384, nokid, a1_token), -JWT_R_BAD_SIGNATURE);
    assert_int_equal(verdict(ks, JWT_ALG_HS512, nokid, a1_token), -JWT_R_BAD_SIGNATURE);
    jwt_keyset_free(ks);
}

static void test_jwt__rfc7515_a2_rs256(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(BIT(RS256) | BIT(PS256) | BIT(RS512));
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, NULL, a2_n, "AQAB", NULL, NULL), 0);
    expect_ok(ks, JWT_ALG_RS256, nokid, a2_token, rfc_claims);
    /* same key, other padding or digest: refused */
    assert_int_equal(verdict(ks, JWT_ALG_PS256, nokid, a2_token), -JWT_R_BAD_SIGNATURE);
    assert_int_equal(verdict(ks, JWT_ALG_RS512, nokid, a2_token), -JWT_R_BAD_SIGNATURE);
    jwt_keyset_free(ks);
}

static void test_jwt__rfc7515_a3_es256_raw_signature(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(BIT(ES256) | BIT(ES384));
    assert_int_equal(add_jwk(ks, "EC", "P-256", NULL, NULL, NULL, NULL, a3_x, a3_y), 0);
    expect_ok(ks, JWT_ALG_ES256, nokid, a3_token, rfc_claims);
    /* a P-256 key never checks ES384 */
    assert_int_equal(verdict(ks, JWT_ALG_ES384, nokid, a3_token), -JWT_R_NO_KEY);
    /* RFC 7518 §3.4: the signature is exactly 64 bytes; 63 or 66 are refused */
    char tok[sizeof(a3_token) + 8];
    size_t dot = strrchr(a3_token, '.') - a3_token;
    memcpy(tok, a3_token, sizeof(a3_token));
    tok[strlen(tok) - 2] = '\0'; /* 86 chars -> 84: 63 bytes */
    assert_int_equal(verdict(ks, JWT_ALG_ES256, nokid, tok), -JWT_R_BAD_SIGNATURE);
    memcpy(tok, a3_token, sizeof(a3_token));
    strcat(tok, "AA"); /* 88 chars: 66 bytes */
    assert_int_equal(verdict(ks, JWT_ALG_ES256, nokid, tok), -JWT_R_BAD_SIGNATURE);
    /* an all-zero r || s */
    memcpy(tok, a3_token, dot + 1);
    memset(tok + dot + 1, 'A', 86);
    tok[dot + 1 + 86] = '\0';
    assert_int_equal(verdict(ks, JWT_ALG_ES256, nokid, tok), -JWT_R_BAD_SIGNATURE);
    jwt_keyset_free(ks);
}

static void test_jwt__rfc8037_a4_eddsa(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(BIT(EDDSA));
    assert_int_equal(add_jwk(ks, "OKP", "Ed25519", NULL, "EdDSA", NULL, NULL, ed_x, NULL), 0);
    expect_ok(ks, JWT_ALG_EDDSA, nokid, ed_token, "Example of Ed25519 signing");
    jwt_keyset_free(ks);
}

static void test_jwt__any_changed_byte_is_refused(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(ALL_ALGS);
    add_a1_secret(ks, nokid);
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, NULL, a2_n, "AQAB", NULL, NULL), 0);
    assert_int_equal(add_jwk(ks, "EC", "P-256", NULL, NULL, NULL, NULL, a3_x, a3_y), 0);
    assert_int_equal(add_jwk(ks, "OKP", "Ed25519", NULL, NULL, NULL, NULL, ed_x, NULL), 0);
    static const struct {
        const char *tok;
        int alg;
    } v[] = {{a1_token, JWT_ALG_HS256},
             {a2_token, JWT_ALG_RS256},
             {a3_token, JWT_ALG_ES256},
             {ed_token, JWT_ALG_EDDSA}};
    char tok[sizeof(a2_token)];
    for (size_t t = 0; t < sizeof(v) / sizeof(v[0]); t++) {
        assert_int_equal(verdict(ks, v[t].alg, nokid, v[t].tok), 0);
        size_t len = strlen(v[t].tok);
        for (size_t i = 0; i < len; i++) {
            if (v[t].tok[i] == '.')
                continue;
            memcpy(tok, v[t].tok, len + 1);
            tok[i] = tok[i] == 'A' ? 'B' : 'A';
            int rc = verdict(ks, v[t].alg, nokid, tok);
            assert_true(rc == -JWT_R_BAD_SIGNATURE || rc == -JWT_R_MALFORMED);
        }
    }
    jwt_keyset_free(ks);
}

/* RFC 8725 §2.1: the HS256 key is the RSA key's PEM text; a token "signed"
 * with it under HS256 must be refused because no HMAC key exists. */
static void test_jwt__algorithm_confusion(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(ALL_ALGS);
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, NULL, a2_n, "AQAB", NULL, NULL), 0);
    uint8_t n[256];
    long nlen = rc_base64_decode(a2_n, strlen(a2_n), n, sizeof(n), 1);
    assert_int_equal(nlen, 256);
    /* forge: HS256 over the A.2 signing input with the modulus bytes as key */
    const char *hdr = "eyJhbGciOiJIUzI1NiJ9"; /* {"alg":"HS256"} */
    char tok[512];
    int off = snprintf(tok, sizeof(tok), "%s.%s", hdr, RFC_PAYLOAD);
    uint8_t mac[RC_HMAC_MAX];
    size_t ml = rc_hmac(RC_MD_SHA256, n, (size_t)nlen, tok, (size_t)off, mac);
    char b64[128];
    size_t bl = rc_base64_encode(mac, ml, b64);
    while (bl > 0 && b64[bl - 1] == '=')
        b64[--bl] = '\0';
    for (size_t i = 0; i < bl; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    snprintf(tok + off, sizeof(tok) - (size_t)off, ".%s", b64);
    assert_int_equal(verdict(ks, JWT_ALG_HS256, nokid, tok), -JWT_R_NO_KEY);
    /* the RS256 token is refused as every other algorithm */
    for (int a = 0; a < JWT_NALGS; a++)
        if (a != JWT_ALG_RS256)
            assert_int_not_equal(verdict(ks, a, nokid, a2_token), 0);
    /* not in the allow-list: bad_alg before any key is looked at */
    ks->allowed = BIT(ES256);
    assert_int_equal(verdict(ks, JWT_ALG_RS256, nokid, a2_token), -JWT_R_BAD_ALG);
    assert_int_equal(verdict(ks, -1, nokid, a2_token), -JWT_R_BAD_ALG);
    assert_int_equal(verdict(ks, JWT_NALGS, nokid, a2_token), -JWT_R_BAD_ALG);
    jwt_keyset_free(ks);
}

static void test_jwt__kid_selects_the_key(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(ALL_ALGS);
    /* "old" is A.3's EC key, "new" the RSA one, "ed" restricted to EdDSA */
    assert_int_equal(add_jwk(ks, "EC", "P-256", "old", "ES256", NULL, NULL, a3_x, a3_y), 0);
    assert_int_equal(add_jwk(ks, "RSA", NULL, "new", "RS256", a2_n, "AQAB", NULL, NULL), 0);
    assert_int_equal(add_jwk(ks, "OKP", "Ed25519", "ed", "EdDSA", NULL, NULL, ed_x, NULL), 0);
    expect_ok(ks, JWT_ALG_ES256, S("old"), a3_token, rfc_claims);
    expect_ok(ks, JWT_ALG_RS256, S("new"), a2_token, rfc_claims);
    /* the right algorithm with another key's kid */
    assert_int_equal(verdict(ks, JWT_ALG_RS256, S("old"), a2_token), -JWT_R_NO_KEY);
    assert_int_equal(verdict(ks, JWT_ALG_ES256, S("ed"), a3_token), -JWT_R_NO_KEY);
    /* a JWK "alg" limits its key: the RSA key never checks PS256 */
    assert_int_equal(verdict(ks, JWT_ALG_PS256, S("new"), a2_token), -JWT_R_NO_KEY);
    /* unknown kid, no kid (every key here has one), a kid prefix */
    assert_int_equal(verdict(ks, JWT_ALG_RS256, S("gone"), a2_token), -JWT_R_UNKNOWN_KID);
    assert_int_equal(verdict(ks, JWT_ALG_RS256, nokid, a2_token), -JWT_R_NO_KEY);
    assert_int_equal(verdict(ks, JWT_ALG_RS256, S("ne"), a2_token), -JWT_R_UNKNOWN_KID);
    /* a key without a kid serves tokens with an unknown kid, or none */
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, NULL, a2_n, "AQAB", NULL, NULL), 0);
    expect_ok(ks, JWT_ALG_RS256, S("gone"), a2_token, rfc_claims);
    expect_ok(ks, JWT_ALG_RS256, nokid, a2_token, rfc_claims);
    /* but not tokens whose kid names another key */
    assert_int_equal(verdict(ks, JWT_ALG_RS256, S("old"), a2_token), -JWT_R_NO_KEY);
    jwt_keyset_free(ks);
}

static void test_jwt__jwk_refusals(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(ALL_ALGS);
    char err[256];
    /* skipped (RFC 7517 §5): unknown kty, oct, other curves, use enc, alg of encryption */
    assert_int_equal(add_jwk(ks, "oct", NULL, NULL, NULL, NULL, NULL, NULL, NULL), 1);
    assert_int_equal(add_jwk(ks, "XYZ", NULL, NULL, NULL, NULL, NULL, NULL, NULL), 1);
    assert_int_equal(add_jwk(ks, "EC", "P-521", NULL, NULL, NULL, NULL, a3_x, a3_y), 1);
    assert_int_equal(add_jwk(ks, "OKP", "X25519", NULL, NULL, NULL, NULL, ed_x, NULL), 1);
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, "RSA-OAEP", a2_n, "AQAB", NULL, NULL), 1);
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, "none", a2_n, "AQAB", NULL, NULL), 1);
    struct jwt_jwk enc = {.kty = S("RSA"), .use = S("enc"), .n = S(a2_n), .e = S("AQAB")};
    assert_int_equal(jwt_keyset_add_jwk(ks, &enc, err, sizeof(err)), 1);
    assert_int_equal(ks->nkeys, 0);
    /* broken */
    assert_int_equal(add_jwk(ks, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), RC_E_INVAL);
    assert_int_equal(add_jwk(ks, "EC", NULL, NULL, NULL, NULL, NULL, a3_x, a3_y), RC_E_INVAL);
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, NULL, NULL, "AQAB", NULL, NULL), RC_E_INVAL);
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, NULL, a2_n, "AQ$B", NULL, NULL), RC_E_INVAL);
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, "ES256", a2_n, "AQAB", NULL, NULL), RC_E_INVAL);
    /* RSA under 2048 bits (RFC 7518 §3.3): A.2's modulus cut to 1024 bits */
    char small[200];
    memcpy(small, a2_n, 171);
    small[171] = '\0';
    assert_int_equal(add_jwk(ks, "RSA", NULL, NULL, NULL, small, "AQAB", NULL, NULL), RC_E_INVAL);
    /* EC: short coordinate; a point off the curve (y of another point) */
    assert_int_equal(add_jwk(ks, "EC", "P-256", NULL, NULL, NULL, NULL, a3_x, "AQAB"), RC_E_INVAL);
    assert_int_equal(add_jwk(ks, "EC", "P-256", NULL, NULL, NULL, NULL, a3_x, a3_x), RC_E_INVAL);
    assert_int_equal(add_jwk(ks, "OKP", "Ed25519", NULL, NULL, NULL, NULL, a3_y + 1, NULL),
                     RC_E_INVAL);
    /* private key material */
    struct jwt_jwk priv = {.kty = S("OKP"), .crv = S("Ed25519"), .x = S(ed_x), .has_private = 1};
    assert_int_equal(jwt_keyset_add_jwk(ks, &priv, err, sizeof(err)), RC_E_INVAL);
    assert_non_null(strstr(err, "private"));
    /* a kid too long */
    char kid[JWT_MAX_KID + 2];
    memset(kid, 'k', sizeof(kid) - 1);
    kid[sizeof(kid) - 1] = '\0';
    assert_int_equal(add_jwk(ks, "OKP", "Ed25519", kid, NULL, NULL, NULL, ed_x, NULL), RC_E_INVAL);
    assert_int_equal(ks->nkeys, 0);
    /* full */
    for (int i = 0; i < JWT_MAX_KEYS; i++)
        assert_int_equal(add_jwk(ks, "OKP", "Ed25519", NULL, NULL, NULL, NULL, ed_x, NULL), 0);
    assert_int_equal(add_jwk(ks, "OKP", "Ed25519", NULL, NULL, NULL, NULL, ed_x, NULL), RC_E_LIMIT);
    jwt_keyset_free(ks);
}

static void test_jwt__pem_keys(void **state)
{
    (void)state;
    char err[256];
    struct rc_pkey *pk = NULL;
    /* RFC 8410 §10.1's Ed25519 public key example */
    static const char ed_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                 "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
                                 "-----END PUBLIC KEY-----\n";
    assert_int_equal(rc_pkey_from_pem(ed_pem, strlen(ed_pem), &pk, err, sizeof(err)),
                     RC_PKEY_ED25519);
    rc_pkey_free(pk);
    static const char priv[] =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp"
        "+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    assert_int_equal(rc_pkey_from_pem(priv, strlen(priv), &pk, err, sizeof(err)), RC_E_INVAL);
    assert_null(pk);
    assert_int_equal(rc_pkey_from_pem("garbage", 7, &pk, err, sizeof(err)), RC_E_INVAL);
    struct jwt_keyset *ks = jwt_keyset_new(ALL_ALGS);
    assert_int_equal(jwt_keyset_add_pem(ks, nokid, ed_pem, strlen(ed_pem), err, sizeof(err)), 0);
    assert_int_equal(ks->keys[0].kind, RC_PKEY_ED25519);
    /* the RFC 8037 token is not signed by this key */
    assert_int_equal(verdict(ks, JWT_ALG_EDDSA, nokid, ed_token), -JWT_R_BAD_SIGNATURE);
    jwt_keyset_free(ks);
}

static void test_jwt__malformed_shapes(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(BIT(HS256));
    add_a1_secret(ks, nokid);
    static const char *bad[] = {
        "",     ".",    "..",   "abc",    "a.b",    "a.b.c.d",
        ".b.c", "a..c", "a.b.", "a$.b.c", "a.b.c=", "eyJ0.eyJ0.!!!!",
    };
    char out[256];
    size_t h;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = verdict(ks, JWT_ALG_HS256, nokid, bad[i]);
        assert_true(rc == -JWT_R_MALFORMED || rc == -JWT_R_BAD_SIGNATURE);
        const char *g = guardbuf_put(bad[i], strlen(bad[i]));
        rc = jwt_decode_header(g, strlen(bad[i]), out, sizeof(out), &h);
        assert_true(rc == 0 || rc == -JWT_R_MALFORMED);
    }
    /* the header of "a$.b.c" is bad base64url */
    assert_int_equal(jwt_decode_header("a$.b.c", 6, out, sizeof(out), &h), -JWT_R_MALFORMED);
    jwt_keyset_free(ks);
}

static void test_jwt__sizes(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new(BIT(HS256));
    add_a1_secret(ks, nokid);
    char out[40];
    size_t p, h;
    /* the payload (76 bytes) does not fit in 40 */
    assert_int_equal(
        verify(ks, JWT_ALG_HS256, nokid, a1_token, strlen(a1_token), out, sizeof(out), &p),
        -JWT_R_TOO_BIG);
    assert_int_equal(jwt_decode_header(a1_token, strlen(a1_token), out, 8, &h), -JWT_R_TOO_BIG);
    /* a part over JWT_MAX_PART */
    static char big[JWT_MAX_PART + 64];
    memset(big, 'A', sizeof(big));
    big[JWT_MAX_PART + 1] = '.';
    big[JWT_MAX_PART + 3] = '.';
    big[JWT_MAX_PART + 5] = '\0';
    assert_int_equal(verdict(ks, JWT_ALG_HS256, nokid, big), -JWT_R_TOO_BIG);
    jwt_keyset_free(ks);
}

static void test_jwt__names(void **state)
{
    (void)state;
    for (int a = 0; a < JWT_NALGS; a++) {
        const char *n = jwt_alg_name(a);
        assert_non_null(n);
        assert_int_equal(jwt_alg_from_name(n, strlen(n)), a);
    }
    assert_null(jwt_alg_name(JWT_NALGS));
    assert_int_equal(jwt_alg_from_name("none", 4), -1);
    assert_int_equal(jwt_alg_from_name("hs256", 5), -1);
    assert_int_equal(jwt_alg_from_name("HS25", 4), -1);
    assert_string_equal(jwt_reason_name(0), "ok");
    assert_string_equal(jwt_reason_name(JWT_R_UNKNOWN_KID), "unknown_kid");
    assert_null(jwt_reason_name(JWT_NREASONS));
    for (int i = 1; i < JWT_NREASONS; i++)
        for (int j = i + 1; j < JWT_NREASONS; j++)
            assert_string_not_equal(jwt_reason_name(i), jwt_reason_name(j));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt__rfc7515_a1_hs256),
        cmocka_unit_test(test_jwt__rfc7515_a2_rs256),
        cmocka_unit_test(test_jwt__rfc7515_a3_es256_raw_signature),
        cmocka_unit_test(test_jwt__rfc8037_a4_eddsa),
        cmocka_unit_test(test_jwt__any_changed_byte_is_refused),
        cmocka_unit_test(test_jwt__algorithm_confusion),
        cmocka_unit_test(test_jwt__kid_selects_the_key),
        cmocka_unit_test(test_jwt__jwk_refusals),
        cmocka_unit_test(test_jwt__pem_keys),
        cmocka_unit_test(test_jwt__malformed_shapes),
        cmocka_unit_test(test_jwt__sizes),
        cmocka_unit_test(test_jwt__names),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    guardbuf_free();
    return rc;
}
