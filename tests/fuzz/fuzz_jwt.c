/* fuzz_jwt.c - libFuzzer driver for proto/jwt and its base/crypto keys.
 *
 * Input: byte 0 picks the path, the rest feeds it.
 *   0  token:  byte 1 = algorithm (mod JWT_NALGS + 1; the last is -1),
 *              byte 2 = kid choice (none, "a", "b", "c", "d", "missing"),
 *              rest = the token, checked against a fixed key set with one
 *              key of every kind (an HMAC secret, RSA, P-256, P-384,
 *              Ed25519), so every algorithm's signature path (HMAC, PKCS#1,
 *              PSS, ECDSA r||s to DER, EdDSA) and jwt_decode_header run;
 *   1  JWK:    rest = the members kty, crv, kid, alg, use, n, e, x, y
 *              separated by 0xFF (missing ones absent), byte 1 bit 0 =
 *              has_private: jwt_keyset_add_jwk (base64url, RSA/EC/Ed25519
 *              key building, the on-curve check);
 *   2  PEM:    rest = a PEM text: jwt_keyset_add_pem (OpenSSL's decoders).
 * Checks: no read outside the input (ASan; exact-size heap copies), results
 * within the documented set, outputs within cap, no leak (LSan), and a token
 * accepted under HS* is refused under a key set with another secret. */
#define _GNU_SOURCE /* memmem */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jwt_str S(const char *s) {
    struct jwt_str r = {s, strlen(s)};
    return r;
}

/* RFC 7515 A.2 (RSA), A.3 (P-256), RFC 8037 A.2 (Ed25519), a P-384 key. */
static const char rsa_n[] =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d"
    "4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMd"
    "bBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-"
    "DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

static struct jwt_keyset *keys, *other;

static void setup(void)
{
    char err[256];
    keys = jwt_keyset_new((1u << JWT_NALGS) - 1);
    other = jwt_keyset_new((1u << JWT_NALGS) - 1);
    jwt_keyset_add_secret(keys, S("a"), "secret", 6, err, sizeof(err));
    jwt_keyset_add_secret(other, S("a"), "secreT", 6, err, sizeof(err));
    struct jwt_jwk rsa = {.kty = S("RSA"), .kid = S("b"), .n = S(rsa_n), .e = S("AQAB")};
    struct jwt_jwk p256 = {.kty = S("EC"),
                           .crv = S("P-256"),
                           .kid = S("c"),
                           .x = S("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"),
                           .y = S("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0")};
    struct jwt_jwk p384 = {
        .kty = S("EC"),
        .crv = S("P-384"),
        .x = S("23RP7-MizSpgIQSJ1I3h7gwDiAqDIPVgnXsYadBXT12vBRzkPN3xt6d3CAeMrYus"),
        .y = S("hGn433Ib9Jawpd1W9Fl_lwhasFFm6c66CRVYceTRhf9-bINSxB25MFMGDjJ-Iv4R")};
    struct jwt_jwk ed = {.kty = S("OKP"),
                         .crv = S("Ed25519"),
                         .kid = S("d"),
                         .x = S("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")};
    const struct jwt_jwk *all[] = {&rsa, &p256, &p384, &ed};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (jwt_keyset_add_jwk(keys, all[i], err, sizeof(err)) != 0)
            abort();
    if (keys->nkeys != 5)
        abort();
}

static void fuzz_token(const uint8_t *d, size_t n)
{
    if (n < 2)
        return;
    int alg = d[0] % (JWT_NALGS + 1);
    if (alg == JWT_NALGS)
        alg = -1;
    static const char *const kids[] = {NULL, "a", "b", "c", "d", "missing"};
    const char *k = kids[d[1] % 6];
    struct jwt_str kid = {k, k ? strlen(k) : 0};
    size_t tlen = n - 2;
    char *tok = malloc(tlen ? tlen : 1);
    memcpy(tok, d + 2, tlen);
    char out[512];
    size_t h = 0, p = 0;
    int rc = jwt_decode_header(tok, tlen, out, sizeof(out), &h);
    if ((rc != 0 && rc != -JWT_R_MALFORMED && rc != -JWT_R_TOO_BIG) || h > sizeof(out))
        abort();
    rc = jwt_verify(keys, alg, kid, tok, tlen, out, sizeof(out), &p);
    if (rc > 0 || rc <= -JWT_NREASONS || p > sizeof(out))
        abort();
    if (rc == 0 && alg >= JWT_ALG_HS256 && alg <= JWT_ALG_HS512 &&
        jwt_verify(other, alg, kid, tok, tlen, out, sizeof(out), &p) == 0)
        abort();
    free(tok);
}

static void fuzz_jwk(const uint8_t *d, size_t n)
{
    if (n < 1)
        return;
    int priv = d[0] & 1;
    d++;
    n--;
    /* Exact-size copy, split at 0xFF into the members. */
    char *buf = malloc(n ? n : 1);
    memcpy(buf, d, n);
    struct jwt_str f[9];
    memset(f, 0, sizeof(f));
    size_t start = 0;
    int i = 0;
    for (size_t j = 0; j <= n && i < 9; j++) {
        if (j == n || (uint8_t)buf[j] == 0xFF) {
            /* "-" alone means absent, so absence is reachable mid-list */
            if (!(j - start == 1 && buf[start] == '-')) {
                f[i].p = buf + start;
                f[i].len = j - start;
            }
            i++;
            start = j + 1;
        }
    }
    struct jwt_jwk jwk = {.kty = f[0],
                          .crv = f[1],
                          .kid = f[2],
                          .alg = f[3],
                          .use = f[4],
                          .n = f[5],
                          .e = f[6],
                          .x = f[7],
                          .y = f[8],
                          .has_private = priv};
    struct jwt_keyset *ks = jwt_keyset_new((1u << JWT_NALGS) - 1);
    char err[256];
    int rc = jwt_keyset_add_jwk(ks, &jwk, err, sizeof(err));
    if (rc != 0 && rc != 1 && rc != RC_E_INVAL && rc != RC_E_LIMIT)
        abort();
    if (rc == 0 && (ks->nkeys != 1 || priv))
        abort();
    if (strlen(err) >= sizeof(err))
        abort();
    jwt_keyset_free(ks);
    free(buf);
}

static void fuzz_pem(const uint8_t *d, size_t n)
{
    char *pem = malloc(n ? n : 1);
    memcpy(pem, d, n);
    struct jwt_keyset *ks = jwt_keyset_new((1u << JWT_NALGS) - 1);
    char err[256];
    int rc = jwt_keyset_add_pem(ks, S("k"), pem, n, err, sizeof(err));
    if (rc != 0 && rc != RC_E_INVAL)
        abort();
    if (rc == 0 && memmem(pem, n, "PRIVATE KEY", 11) != NULL)
        abort();
    jwt_keyset_free(ks);
    free(pem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (keys == NULL)
        setup();
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_token(data + 1, size - 1);
        break;
    case 1:
        fuzz_jwk(data + 1, size - 1);
        break;
    default:
        fuzz_pem(data + 1, size - 1);
        break;
    }
    return 0;
}
