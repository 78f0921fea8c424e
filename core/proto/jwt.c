#include "jwt.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

static const struct alg_info {
    const char *name;
    int kind;
    enum rc_sig sig;
    enum rc_md md;
} algs[JWT_NALGS] = {
#define JWT_ALG_ROW(id, name, kind, sig, md) {name, kind, (enum rc_sig)(sig), md},
    JWT_ALG_MAP(JWT_ALG_ROW)
#undef JWT_ALG_ROW
};

static const char *const reason_names[JWT_NREASONS] = {"ok",
#define JWT_REASON_NAME(id, name) #name,
                                                       JWT_REASON_MAP(JWT_REASON_NAME)
#undef JWT_REASON_NAME
};

const char *jwt_alg_name(int alg)
{
    return alg >= 0 && alg < JWT_NALGS ? algs[alg].name : NULL;
}

int jwt_alg_from_name(const char *name, size_t len)
{
    for (int i = 0; i < JWT_NALGS; i++)
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0)
            return i;
    return -1;
}

const char *jwt_reason_name(int r)
{
    return r >= 0 && r < JWT_NREASONS ? reason_names[r] : NULL;
}

/* The three parts of a compact JWS (RFC 7515 §7.1). */
struct parts {
    const char *h, *p, *s;
    size_t hlen, plen, slen;
};

static int split(const char *token, size_t tlen, struct parts *pt)
{
    const char *d1 = memchr(token, '.', tlen);
    if (d1 == NULL)
        return -JWT_R_MALFORMED;
    const char *d2 = memchr(d1 + 1, '.', tlen - (size_t)(d1 + 1 - token));
    if (d2 == NULL || memchr(d2 + 1, '.', tlen - (size_t)(d2 + 1 - token)) != NULL)
        return -JWT_R_MALFORMED;
    pt->h = token;
    pt->hlen = (size_t)(d1 - token);
    pt->p = d1 + 1;
    pt->plen = (size_t)(d2 - d1 - 1);
    pt->s = d2 + 1;
    pt->slen = tlen - (size_t)(d2 + 1 - token);
    /* An empty signature would be "alg": "none" (RFC 7518 §3.6): never. */
    if (pt->hlen == 0 || pt->plen == 0 || pt->slen == 0)
        return -JWT_R_MALFORMED;
    if (pt->hlen > JWT_MAX_PART || pt->plen > JWT_MAX_PART || pt->slen > (JWT_MAX_SIG * 4 + 2) / 3)
        return -JWT_R_TOO_BIG;
    return 0;
}

/* base64url part -> out[0..cap); canonical only (rc_base64_decode). */
static int decode_part(const char *in, size_t len, char *out, size_t cap, size_t *outlen)
{
    long n = rc_base64_decode(in, len, (uint8_t *)out, cap, 1);
    if (n < 0)
        return (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0) > cap ? -JWT_R_TOO_BIG
                                                                 : -JWT_R_MALFORMED;
    *outlen = (size_t)n;
    return 0;
}

int jwt_decode_header(const char *token, size_t tlen, char *out, size_t cap, size_t *hlen)
{
    *hlen = 0;
    struct parts pt;
    int rc = split(token, tlen, &pt);
    if (rc == 0)
        rc = decode_part(pt.h, pt.hlen, out, cap, hlen);
    return rc;
}

/* -- key sets ---------------------------------------------------------------------- */

struct jwt_keyset *jwt_keyset_new(uint32_t allowed)
{
    struct jwt_keyset *ks = rc_xcalloc(1, sizeof(*ks));
    ks->allowed = allowed & ((1u << JWT_NALGS) - 1);
    return ks;
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
    if (ks == NULL)
        return;
    for (int i = 0; i < ks->nkeys; i++) {
        rc_pkey_free(ks->keys[i].pk);
        rc_free(ks->keys[i].secret);
    }
    rc_free(ks);
}

static int fail(char *err, size_t errcap, int rc, const char *msg)
{
    snprintf(err, errcap, "%s", msg);
    return rc;
}

/* The next free slot, with kid set; NULL (and err) when full or kid bad. */
static struct jwt_key *slot(struct jwt_keyset *ks, struct jwt_str kid, char *err, size_t errcap,
                            int *rc)
{
    if (ks->nkeys >= JWT_MAX_KEYS) {
        *rc = fail(err, errcap, RC_E_LIMIT, "too many keys");
        return NULL;
    }
    if (kid.p != NULL && (kid.len == 0 || kid.len > JWT_MAX_KID)) {
        *rc = fail(err, errcap, RC_E_INVAL, "kid must be 1 to 128 bytes");
        return NULL;
    }
    struct jwt_key *k = &ks->keys[ks->nkeys];
    memset(k, 0, sizeof(*k));
    k->alg = -1;
    if (kid.p != NULL) {
        k->has_kid = 1;
        k->kid_len = kid.len;
        memcpy(k->kid, kid.p, kid.len);
    }
    return k;
}

int jwt_keyset_add_secret(struct jwt_keyset *ks, struct jwt_str kid, const void *secret, size_t len,
                          char *err, size_t errcap)
{
    int rc = 0;
    struct jwt_key *k = slot(ks, kid, err, errcap, &rc);
    if (k == NULL)
        return rc;
    k->kind = JWT_KIND_HMAC;
    k->secret = rc_xmalloc(len ? len : 1);
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    ks->nkeys++;
    return 0;
}

int jwt_keyset_add_pem(struct jwt_keyset *ks, struct jwt_str kid, const char *pem, size_t len,
                       char *err, size_t errcap)
{
    int rc = 0;
    struct jwt_key *k = slot(ks, kid, err, errcap, &rc);
    if (k == NULL)
        return rc;
    struct rc_pkey *pk;
    rc = rc_pkey_from_pem(pem, len, &pk, err, errcap);
    if (rc < 0)
        return rc;
    k->kind = rc;
    k->pk = pk;
    ks->nkeys++;
    return 0;
}

static int str_is(struct jwt_str s, const char *lit)
{
    return s.p != NULL && s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

/* Decodes the base64url member s of a JWK into out[0..cap). */
static int member(struct jwt_str s, const char *name, uint8_t *out, size_t cap, size_t *len,
                  char *err, size_t errcap)
{
    if (s.p == NULL) {
        snprintf(err, errcap, "JWK has no \"%s\"", name);
        return RC_E_INVAL;
    }
    long n = rc_base64_decode(s.p, s.len, out, cap, 1);
    if (n <= 0) {
        snprintf(err, errcap, "JWK \"%s\" is not base64url of a sensible size", name);
        return RC_E_INVAL;
    }
    *len = (size_t)n;
    return 0;
}

/* Builds the key of a JWK whose kty/crv we support; kind is its rc_pkey_kind. */
static int jwk_key(const struct jwt_jwk *j, int kind, struct rc_pkey **pk, char *err, size_t errcap)
{
    uint8_t a[1024], b[64];
    size_t alen = 0, blen = 0;
    int rc;
    switch (kind) {
    case RC_PKEY_RSA:
        /* RFC 7518 §6.3.1: n and e, big-endian unsigned. */
        if ((rc = member(j->n, "n", a, sizeof(a), &alen, err, errcap)) != 0 ||
            (rc = member(j->e, "e", b, sizeof(b), &blen, err, errcap)) != 0)
            return rc;
        return rc_pkey_from_rsa(a, alen, b, blen, pk, err, errcap);
    case RC_PKEY_P256:
    case RC_PKEY_P384:
        if ((rc = member(j->x, "x", a, sizeof(a), &alen, err, errcap)) != 0 ||
            (rc = member(j->y, "y", b, sizeof(b), &blen, err, errcap)) != 0)
            return rc;
        return rc_pkey_from_ec(kind, a, alen, b, blen, pk, err, errcap);
    default:
        if ((rc = member(j->x, "x", a, sizeof(a), &alen, err, errcap)) != 0)
            return rc;
        return rc_pkey_from_ed25519(a, alen, pk, err, errcap);
    }
}

int jwt_keyset_add_jwk(struct jwt_keyset *ks, const struct jwt_jwk *j, char *err, size_t errcap)
{
    int kind = 0;
    if (j->kty.p == NULL)
        return fail(err, errcap, RC_E_INVAL, "JWK has no \"kty\"");
    if (str_is(j->kty, "RSA")) {
        kind = RC_PKEY_RSA;
    } else if (str_is(j->kty, "EC")) {
        if (str_is(j->crv, "P-256"))
            kind = RC_PKEY_P256;
        else if (str_is(j->crv, "P-384"))
            kind = RC_PKEY_P384;
        else if (j->crv.p == NULL)
            return fail(err, errcap, RC_E_INVAL, "EC JWK has no \"crv\"");
        else
            return fail(err, errcap, 1, "EC JWK on a curve other than P-256 or P-384 skipped");
    } else if (str_is(j->kty, "OKP")) {
        if (str_is(j->crv, "Ed25519"))
            kind = RC_PKEY_ED25519;
        else if (j->crv.p == NULL)
            return fail(err, errcap, RC_E_INVAL, "OKP JWK has no \"crv\"");
        else
            return fail(err, errcap, 1, "OKP JWK on a curve other than Ed25519 skipped");
    } else {
        /* RFC 7517 §5: ignore keys of a kty we do not understand ("oct"
         * included: a shared secret does not belong in a key set meant to
         * be public; use `secret`). */
        return fail(err, errcap, 1, "JWK of a kty other than RSA, EC or OKP skipped");
    }
    /* RFC 7517 §4.2: "use" other than "sig" is for encryption. */
    if (j->use.p != NULL && !str_is(j->use, "sig"))
        return fail(err, errcap, 1, "JWK with a \"use\" other than \"sig\" skipped");
    int alg = -1;
    if (j->alg.p != NULL) {
        alg = jwt_alg_from_name(j->alg.p, j->alg.len);
        if (alg < 0)
            return fail(err, errcap, 1,
                        "JWK with an \"alg\" that is no signature algorithm here skipped");
        if (algs[alg].kind != kind)
            return fail(err, errcap, RC_E_INVAL, "JWK \"alg\" does not fit its key type");
    }
    if (j->has_private)
        return fail(err, errcap, RC_E_INVAL,
                    "JWK holds private key material; publish the public key only");
    int rc = 0;
    struct jwt_key *k = slot(ks, j->kid, err, errcap, &rc);
    if (k == NULL)
        return rc;
    struct rc_pkey *pk;
    rc = jwk_key(j, kind, &pk, err, errcap);
    if (rc < 0)
        return rc;
    k->kind = rc;
    k->alg = alg;
    k->pk = pk;
    ks->nkeys++;
    return 0;
}

/* -- verification ------------------------------------------------------------------- */

static int usable(const struct jwt_key *k, int alg)
{
    return k->kind == algs[alg].kind && (k->alg < 0 || k->alg == alg);
}

static int check_one(const struct jwt_key *k, int alg, const char *input, size_t ilen,
                     const uint8_t *sig, size_t slen)
{
    const struct alg_info *a = &algs[alg];
    if (a->kind == JWT_KIND_HMAC) {
        uint8_t mac[RC_HMAC_MAX];
        size_t n = rc_hmac(a->md, k->secret, k->secret_len, input, ilen, mac);
        return n != 0 && n == slen && rc_memeq_ct(mac, sig, n) == 0;
    }
    return rc_pkey_verify(k->pk, a->sig, a->md, input, ilen, sig, slen) == 0;
}

int jwt_verify(const struct jwt_keyset *ks, int alg, struct jwt_str kid, const char *token,
               size_t tlen, char *out, size_t cap, size_t *plen)
{
    *plen = 0;
    struct parts pt;
    int rc = split(token, tlen, &pt);
    if (rc != 0)
        return rc;
    /* RFC 8725 §3.1: the verifier, not the token, decides the algorithms. */
    if (alg < 0 || alg >= JWT_NALGS || !(ks->allowed & (1u << alg)))
        return -JWT_R_BAD_ALG;
    uint8_t sig[JWT_MAX_SIG];
    size_t slen;
    if ((rc = decode_part(pt.s, pt.slen, (char *)sig, sizeof(sig), &slen)) != 0)
        return rc;
    /* Pick the candidates: keys named by the kid, else the unnamed ones. */
    int named = 0;
    if (kid.p != NULL)
        for (int i = 0; i < ks->nkeys; i++)
            named |= ks->keys[i].has_kid && ks->keys[i].kid_len == kid.len &&
                     memcmp(ks->keys[i].kid, kid.p, kid.len) == 0;
    size_t ilen = pt.hlen + 1 + pt.plen; /* RFC 7515 §5.2: ASCII(header "." payload) */
    int tried = 0, ok = 0;
    for (int i = 0; i < ks->nkeys && !ok; i++) {
        const struct jwt_key *k = &ks->keys[i];
        if (named ? !(k->has_kid && k->kid_len == kid.len && memcmp(k->kid, kid.p, kid.len) == 0)
                  : k->has_kid)
            continue;
        if (!usable(k, alg))
            continue;
        tried++;
        ok = check_one(k, alg, token, ilen, sig, slen);
    }
    if (!ok) {
        if (tried > 0)
            return -JWT_R_BAD_SIGNATURE;
        return kid.p != NULL && !named ? -JWT_R_UNKNOWN_KID : -JWT_R_NO_KEY;
    }
    return decode_part(pt.p, pt.plen, out, cap, plen);
}
