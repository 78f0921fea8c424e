#include "crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

void rc_sha1(const void *data, size_t len, uint8_t out[RC_SHA1_LEN])
{
    SHA1(data, len, out);
}

void rc_sha1_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[RC_SHA1_LEN])
{
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    EVP_DigestUpdate(ctx, a, alen);
    EVP_DigestUpdate(ctx, b, blen);
    EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
}

void rc_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[RC_SHA256_LEN])
{
    uint8_t mac[RC_HMAC_MAX];
    rc_hmac(RC_MD_SHA256, key, keylen, data, len, mac);
    memcpy(out, mac, RC_SHA256_LEN);
}

static const EVP_MD *md_of(enum rc_md md)
{
    switch (md) {
    case RC_MD_SHA256:
        return EVP_sha256();
    case RC_MD_SHA384:
        return EVP_sha384();
    case RC_MD_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

size_t rc_hmac(enum rc_md md, const void *key, size_t keylen, const void *data, size_t len,
               uint8_t *out)
{
    const EVP_MD *m = md_of(md);
    unsigned int n = RC_HMAC_MAX;
    /* HMAC() with a NULL key means "no key" in some versions; an empty
     * key is a valid (if useless) HMAC key, so pass a real pointer. */
    static const uint8_t empty[1];
    if (m == NULL || HMAC(m, keylen ? key : empty, (int)keylen, data, len, out, &n) == NULL)
        return 0;
    return n;
}

/* -- public keys -------------------------------------------------------------------- */

struct rc_pkey {
    EVP_PKEY *pk; /* owned */
    enum rc_pkey_kind kind;
    int bits;
};

static int fail(char *err, size_t errcap, const char *msg)
{
    snprintf(err, errcap, "%s", msg);
    return RC_E_INVAL;
}

/* Wraps pk (taking it) after checking it is a kind we verify with. */
static int wrap(EVP_PKEY *pk, struct rc_pkey **out, char *err, size_t errcap)
{
    enum rc_pkey_kind kind = 0;
    int bits = EVP_PKEY_get_bits(pk);
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA:
        kind = RC_PKEY_RSA;
        /* RFC 7518 §3.3: RSA keys of 2048 bits or larger MUST be used. */
        if (bits < 2048) {
            EVP_PKEY_free(pk);
            return fail(err, errcap, "RSA key under 2048 bits (RFC 7518 section 3.3)");
        }
        break;
    case EVP_PKEY_EC: {
        char group[64];
        size_t glen = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &glen) == 1) {
            if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
                kind = RC_PKEY_P256;
            else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
                kind = RC_PKEY_P384;
        }
        if (kind == 0) {
            EVP_PKEY_free(pk);
            return fail(err, errcap, "EC key on a curve other than P-256 or P-384");
        }
        break;
    }
    case EVP_PKEY_ED25519:
        kind = RC_PKEY_ED25519;
        break;
    default:
        EVP_PKEY_free(pk);
        return fail(err, errcap, "key type is not RSA, EC (P-256, P-384) or Ed25519");
    }
    struct rc_pkey *k = OPENSSL_zalloc(sizeof(*k));
    if (k == NULL) {
        EVP_PKEY_free(pk);
        return fail(err, errcap, "out of memory");
    }
    k->pk = pk;
    k->kind = kind;
    k->bits = bits;
    *out = k;
    return (int)kind;
}

int rc_pkey_from_pem(const char *pem, size_t len, struct rc_pkey **out, char *err, size_t errcap)
{
    *out = NULL;
    if (memmem(pem, len, "PRIVATE KEY", 11) != NULL)
        return fail(err, errcap, "the PEM holds a private key; give the public key only");
    if (len > INT32_MAX)
        return fail(err, errcap, "PEM too large");
    EVP_PKEY *pk = NULL;
    /* SubjectPublicKeyInfo ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY"). */
    OSSL_DECODER_CTX *dc =
        OSSL_DECODER_CTX_new_for_pkey(&pk, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    if (dc != NULL) {
        const unsigned char *p = (const unsigned char *)pem;
        size_t left = len;
        if (OSSL_DECODER_from_data(dc, &p, &left) != 1)
            pk = NULL;
        OSSL_DECODER_CTX_free(dc);
    }
    if (pk == NULL) {
        /* A certificate: its subject's key. */
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        if (x != NULL) {
            pk = X509_get_pubkey(x);
            X509_free(x);
        }
        BIO_free(bio);
    }
    ERR_clear_error();
    if (pk == NULL)
        return fail(err, errcap, "no PEM public key or certificate found");
    return wrap(pk, out, err, errcap);
}

/* EVP_PKEY_fromdata for a public key of type name with params. */
static EVP_PKEY *from_params(const char *name, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

int rc_pkey_from_rsa(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
                     struct rc_pkey **out, char *err, size_t errcap)
{
    *out = NULL;
    if (nlen == 0 || elen == 0 || nlen > 2048 || elen > 16)
        return fail(err, errcap, "RSA modulus or exponent of a bad size");
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    const char *why = "cannot build the RSA key";
    if (bn && be && bld) {
        if (BN_num_bits(bn) < 2048)
            why = "RSA key under 2048 bits (RFC 7518 section 3.3)";
        else if (!BN_is_odd(be) || BN_is_one(be))
            why = "RSA exponent must be odd and above 1";
        else if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
                 OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1)
            pk = from_params("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    ERR_clear_error();
    if (pk == NULL)
        return fail(err, errcap, why);
    return wrap(pk, out, err, errcap);
}

int rc_pkey_from_ec(enum rc_pkey_kind kind, const uint8_t *x, size_t xlen, const uint8_t *y,
                    size_t ylen, struct rc_pkey **out, char *err, size_t errcap)
{
    *out = NULL;
    size_t fl = kind == RC_PKEY_P256 ? 32 : kind == RC_PKEY_P384 ? 48 : 0;
    if (fl == 0)
        return fail(err, errcap, "unsupported curve");
    /* RFC 7518 §6.2.1.2-3: x and y are the full field size, zero-padded. */
    if (xlen != fl || ylen != fl)
        return fail(err, errcap, "EC coordinate of the wrong length for its curve");
    uint8_t point[1 + 2 * 48];
    point[0] = 0x04; /* SEC 1 §2.3.3: uncompressed point */
    memcpy(point + 1, x, fl);
    memcpy(point + 1 + fl, y, fl);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        kind == RC_PKEY_P256 ? "prime256v1" : "secp384r1",
                                        0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * fl) == 1)
        pk = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (pk != NULL) {
        /* The point must be on the curve (and not the point at infinity). */
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        if (ctx == NULL || EVP_PKEY_public_check(ctx) != 1) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
        EVP_PKEY_CTX_free(ctx);
    }
    ERR_clear_error();
    if (pk == NULL)
        return fail(err, errcap, "EC point is not on the curve");
    return wrap(pk, out, err, errcap);
}

int rc_pkey_from_ed25519(const uint8_t *x, size_t xlen, struct rc_pkey **out, char *err,
                         size_t errcap)
{
    *out = NULL;
    if (xlen != 32)
        return fail(err, errcap, "Ed25519 public key must be 32 bytes");
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
    ERR_clear_error();
    if (pk == NULL)
        return fail(err, errcap, "cannot build the Ed25519 key");
    return wrap(pk, out, err, errcap);
}

enum rc_pkey_kind rc_pkey_kind(const struct rc_pkey *k)
{
    return k->kind;
}

int rc_pkey_bits(const struct rc_pkey *k)
{
    return k->bits;
}

void rc_pkey_free(struct rc_pkey *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pk);
    OPENSSL_free(k);
}

/* JOSE r || s (each n bytes) -> DER ECDSA-Sig-Value (RFC 3279 §2.2.3), into
 * der[0..cap). Returns the DER length, or 0. */
static size_t ecdsa_raw_to_der(const uint8_t *sig, size_t n, uint8_t *der, size_t cap)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)n, NULL), *s = BN_bin2bn(sig + n, (int)n, NULL);
    size_t out = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        int need = i2d_ECDSA_SIG(es, NULL);
        if (need > 0 && (size_t)need <= cap) {
            unsigned char *p = der;
            out = (size_t)i2d_ECDSA_SIG(es, &p);
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return out;
}

int rc_pkey_verify(const struct rc_pkey *k, enum rc_sig scheme, enum rc_md md, const void *data,
                   size_t len, const uint8_t *sig, size_t siglen)
{
    const EVP_MD *m = scheme == RC_SIG_EDDSA ? NULL : md_of(md);
    if (scheme != RC_SIG_EDDSA && m == NULL)
        return -1;
    uint8_t der[2 * 48 + 16];
    if (scheme == RC_SIG_ECDSA_RAW) {
        /* RFC 7518 §3.4: exactly 2 * the field size, else refuse. */
        size_t n = k->kind == RC_PKEY_P256 ? 32 : k->kind == RC_PKEY_P384 ? 48 : 0;
        if (n == 0 || siglen != 2 * n)
            return -1;
        siglen = ecdsa_raw_to_der(sig, n, der, sizeof(der));
        if (siglen == 0)
            return -1;
        sig = der;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, &pctx, m, NULL, k->pk) == 1;
    if (ok && scheme == RC_SIG_RSA_PSS)
        /* RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash. */
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, m) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    else if (ok && scheme == RC_SIG_RSA_PKCS1)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    if (ok)
        ok = EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        ERR_clear_error();
    return ok ? 0 : -1;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t rc_base64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = (i + 1 < len) ? b64[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64val(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

long rc_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, int url)
{
    size_t pad = 0;
    while (len > 0 && in[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (!url && (len + pad) % 4 != 0)
        return -1;
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)in[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero (canonical encoding). */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

int rc_memeq_ct(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d != 0;
}
