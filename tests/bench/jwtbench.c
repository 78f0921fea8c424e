/* jwtbench - JWT verifications per second on one core: roomcast's
 * jwt_verify (core/proto/jwt.c: split, base64url, key choice, signature)
 * against the bare OpenSSL call it ends in (its peer in the same run: HMAC()
 * or EVP_DigestVerify on the already-decoded signature with the same key).
 *
 *   jwtbench [-d SECONDS]    one JSON line per algorithm on stdout:
 *   {"alg":"RS256","verify_per_s":N,"raw_per_s":N,"ratio":R}
 *   jwtbench --mint DIR      writes DIR/jwt-rs256.pem (a new RSA public key)
 *                            and prints an RS256 token it signed, for run.sh's
 *                            upgrade storm with tokens
 *
 * Keys are made here with OpenSSL (RSA 2048, P-256); tokens are signed here
 * too, and the public keys reach roomcast's key set as PEM, the way
 * plugins/jwt_auth.lua's public_key does. Single-threaded; run.sh pins it. */
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "jwt.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "jwtbench: %s\n", what);
    exit(1);
}

static size_t b64url(const uint8_t *in, size_t len, char *out)
{
    size_t n = rc_base64_encode(in, len, out);
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return n;
}

struct bench {
    const char *alg;
    char token[2048];
    size_t tlen, input_len;
    uint8_t der[1024]; /* the signature as OpenSSL takes it */
    size_t der_len;
    EVP_PKEY *pk;  /* the key pair (signs); NULL for HS256 */
    EVP_PKEY *pub; /* its public half read back from the PEM (the raw check uses it) */
    struct jwt_keyset *ks;
};

static const char secret[] = "a-32-byte-secret-for-the-bench!!";

static void make(struct bench *b, const char *alg, const char *type)
{
    b->alg = alg;
    char hdr[64], claims[160];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    snprintf(claims, sizeof(claims),
             "{\"sub\":\"bench-user\",\"iss\":\"https://auth.example\",\"aud\":\"chat\","
             "\"iat\":1700000000,\"exp\":4000000000}");
    size_t n = b64url((const uint8_t *)hdr, strlen(hdr), b->token);
    b->token[n++] = '.';
    n += b64url((const uint8_t *)claims, strlen(claims), b->token + n);
    b->input_len = n;
    uint8_t sig[512];
    size_t slen = sizeof(sig);
    int id = jwt_alg_from_name(alg, strlen(alg));
    b->ks = jwt_keyset_new(1u << id);
    char err[256];
    if (type == NULL) {
        slen = rc_hmac(RC_MD_SHA256, secret, strlen(secret), b->token, n, sig);
        memcpy(b->der, sig, slen);
        b->der_len = slen;
        struct jwt_str nokid = {NULL, 0};
        if (jwt_keyset_add_secret(b->ks, nokid, secret, strlen(secret), err, sizeof(err)) != 0)
            die(err);
    } else {
        b->pk = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                                         : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (b->pk == NULL)
            die("keygen");
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        b->der_len = sizeof(b->der);
        if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, b->pk) != 1 ||
            EVP_DigestSign(ctx, b->der, &b->der_len, (const uint8_t *)b->token, n) != 1)
            die("sign");
        EVP_MD_CTX_free(ctx);
        if (strcmp(type, "EC") == 0) {
            /* RFC 7518 §3.4: DER -> fixed-size r || s */
            const uint8_t *p = b->der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)b->der_len);
            if (es == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) != 32 ||
                BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) != 32)
                die("ecdsa sig");
            ECDSA_SIG_free(es);
            slen = 64;
        } else {
            memcpy(sig, b->der, b->der_len);
            slen = b->der_len;
        }
        BIO *bio = BIO_new(BIO_s_mem());
        char *pem;
        if (PEM_write_bio_PUBKEY(bio, b->pk) != 1)
            die("pem");
        long plen = BIO_get_mem_data(bio, &pem);
        struct jwt_str nokid = {NULL, 0};
        if (jwt_keyset_add_pem(b->ks, nokid, pem, (size_t)plen, err, sizeof(err)) != 0)
            die(err);
        b->pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        if (b->pub == NULL)
            die("pem read");
        BIO_free(bio);
    }
    b->token[n++] = '.';
    n += b64url(sig, slen, b->token + n);
    b->tlen = n;
}

/* One check the way roomcast makes it. */
static int ours(struct bench *b)
{
    char out[512];
    size_t plen;
    struct jwt_str nokid = {NULL, 0};
    int alg = jwt_alg_from_name(b->alg, strlen(b->alg));
    return jwt_verify(b->ks, alg, nokid, b->token, b->tlen, out, sizeof(out), &plen) == 0;
}

/* The bare OpenSSL call, signature already decoded. */
static int raw(struct bench *b)
{
    if (b->pk == NULL) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned int ml = sizeof(mac);
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)b->token, b->input_len,
             mac, &ml);
        return CRYPTO_memcmp(mac, b->der, ml) == 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok =
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, b->pub) == 1 &&
        EVP_DigestVerify(ctx, b->der, b->der_len, (const uint8_t *)b->token, b->input_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static double rate(struct bench *b, int (*fn)(struct bench *), double secs)
{
    /* warm-up, and a check that it verifies at all */
    for (int i = 0; i < 50; i++)
        if (!fn(b))
            die("a check failed");
    unsigned long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 64; i++)
            n += (unsigned long)fn(b);
        t = now_s();
    } while (t - t0 < secs);
    return (double)n / (t - t0);
}

static int mint(const char *dir)
{
    static struct bench b;
    make(&b, "RS256", "RSA");
    char path[4096];
    snprintf(path, sizeof(path), "%s/jwt-rs256.pem", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL || PEM_write_PUBKEY(f, b.pub) != 1 || fclose(f) != 0)
        die("cannot write the PEM");
    printf("%s\n", b.token);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--mint") == 0)
        return mint(argv[2]);
    double secs = 1.0;
    if (argc == 3 && strcmp(argv[1], "-d") == 0)
        secs = atof(argv[2]);
    else if (argc != 1)
        die("usage: jwtbench [-d SECONDS]");
    if (!(secs > 0 && secs < 60))
        die("bad -d");
    static struct bench b[3];
    make(&b[0], "HS256", NULL);
    make(&b[1], "RS256", "RSA");
    make(&b[2], "ES256", "EC");
    for (int i = 0; i < 3; i++) {
        /* Alternate short slices and keep the best of each: on a shared
         * machine the slower slices measure the neighbours, not the code. */
        double v = 0, r = 0;
        for (int k = 0; k < 5; k++) {
            double x = rate(&b[i], ours, secs / 5), y = rate(&b[i], raw, secs / 5);
            v = x > v ? x : v;
            r = y > r ? y : r;
        }
        printf("{\"alg\":\"%s\",\"verify_per_s\":%.0f,\"raw_per_s\":%.0f,\"ratio\":%.3f}\n",
               b[i].alg, v, r, v / r);
        jwt_keyset_free(b[i].ks);
        EVP_PKEY_free(b[i].pk);
        EVP_PKEY_free(b[i].pub);
    }
    return 0;
}
