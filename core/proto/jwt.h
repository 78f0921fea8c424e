/* jwt.h - JSON Web Token signature checks (RFC 7519 §7.2, RFC 7515 §5.2):
 * the parsing and crypto half of roomcast.jwt (lua/roomcast/jwt.lua).
 *
 * What lives where:
 *   here (C)     the compact serialization (three base64url parts), the
 *                algorithm table, the key set and which key may check which
 *                token, and the signature check through base/crypto
 *                (OpenSSL EVP);
 *   jwt.lua      the JSON: the header's "alg", "kid" and "crit", the JWKS
 *                file (RFC 7517; each key's fields come here through
 *                jwt_keyset_add_jwk) and the claims (exp, nbf, iat, iss,
 *                aud, sub).
 *
 * Algorithm confusion (RFC 8725 §2.1, §3.1): a key has one kind (an HMAC
 * secret, RSA, P-256, P-384 or Ed25519) and only checks the algorithms of
 * that kind, and only those in the key set's allow-list. The PEM bytes of an
 * RSA key can never serve as an HS256 secret, and "none" is not an
 * algorithm here at all.
 *
 *   token:  base64url(header) "." base64url(payload) "." base64url(signature)
 *           \________ signing input (RFC 7515 §5.2) ______/
 *
 * Key selection for a token with alg A and kid K:
 *   1. A must be in the allow-list, else JWT_R_BAD_ALG;
 *   2. candidates = keys whose kid is K (when the token has one); if no key
 *      carries K, or the token has no kid, the keys without a kid (secret,
 *      public_key, JWKs without "kid");
 *   3. of those, the keys of A's kind (and whose JWK "alg", if any, is A);
 *      none left: JWT_R_UNKNOWN_KID when K was given and no key carries it,
 *      JWT_R_NO_KEY otherwise;
 *   4. the first candidate whose signature checks wins; none: JWT_R_BAD_SIGNATURE.
 *
 * Thread: a key set is built on one thread; once built it is only read, so
 * jwt_verify may run on several threads at once (each worker builds its own
 * today, when its Lua state loads the jwt_auth plugin).
 */
#ifndef RC_PROTO_JWT_H
#define RC_PROTO_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/* The algorithms (RFC 7518 §3.1, RFC 8037 §3.1): enum name, "alg" value,
 * key kind, signature scheme, digest. Kind 0 is an HMAC secret. */
#define JWT_KIND_HMAC 0
/* clang-format off */
#define JWT_ALG_MAP(XX) \
    XX(HS256, "HS256", JWT_KIND_HMAC, 0, RC_MD_SHA256) \
    XX(HS384, "HS384", JWT_KIND_HMAC, 0, RC_MD_SHA384) \
    XX(HS512, "HS512", JWT_KIND_HMAC, 0, RC_MD_SHA512) \
    XX(RS256, "RS256", RC_PKEY_RSA, RC_SIG_RSA_PKCS1, RC_MD_SHA256) \
    XX(RS384, "RS384", RC_PKEY_RSA, RC_SIG_RSA_PKCS1, RC_MD_SHA384) \
    XX(RS512, "RS512", RC_PKEY_RSA, RC_SIG_RSA_PKCS1, RC_MD_SHA512) \
    XX(PS256, "PS256", RC_PKEY_RSA, RC_SIG_RSA_PSS, RC_MD_SHA256) \
    XX(ES256, "ES256", RC_PKEY_P256, RC_SIG_ECDSA_RAW, RC_MD_SHA256) \
    XX(ES384, "ES384", RC_PKEY_P384, RC_SIG_ECDSA_RAW, RC_MD_SHA384) \
    XX(EDDSA, "EdDSA", RC_PKEY_ED25519, RC_SIG_EDDSA, RC_MD_NONE)
/* clang-format on */
enum jwt_alg {
#define JWT_ALG_ENUM(id, name, kind, sig, md) JWT_ALG_##id,
    JWT_ALG_MAP(JWT_ALG_ENUM)
#undef JWT_ALG_ENUM
        JWT_NALGS
};

/* Why a token was refused: the stable reasons of roomcast.jwt, counted in
 * /metrics as roomcast_jwt_refusals_by_reason_total{reason}. The first
 * group comes from here, the rest from the claim checks in jwt.lua; one
 * table so the metric and the Lua names cannot drift apart. Functions below
 * return 0 or -(the reason). */
/* clang-format off */
#define JWT_REASON_MAP(XX) \
    XX(MALFORMED, malformed)               /* not header.payload.signature, bad base64url or JSON */ \
    XX(TOO_BIG, too_big)                   /* a part over JWT_MAX_PART, or the output buffer */ \
    XX(BAD_ALG, bad_alg)                   /* "alg" missing, unknown, "none" or not allowed */ \
    XX(UNSUPPORTED_CRIT, unsupported_crit) /* a "crit" header (RFC 7515 §4.1.11) */ \
    XX(UNKNOWN_KID, unknown_kid)           /* no key carries the token's "kid" */ \
    XX(NO_KEY, no_key)                     /* no key of the token's algorithm */ \
    XX(BAD_SIGNATURE, bad_signature)       /* no candidate key verifies it */ \
    XX(EXPIRED, expired)                   /* now >= exp + leeway */ \
    XX(NOT_YET_VALID, not_yet_valid)       /* now + leeway < nbf */ \
    XX(ISSUED_IN_FUTURE, issued_in_future) /* iat > now + leeway */ \
    XX(MISSING_IAT, missing_iat)           /* max_age is set and the token has no iat */ \
    XX(TOO_OLD, too_old)                   /* now > iat + max_age + leeway */ \
    XX(BAD_ISSUER, bad_issuer)             /* iss is not the configured issuer */ \
    XX(BAD_AUDIENCE, bad_audience)         /* aud does not name the configured audience */ \
    XX(BAD_SUBJECT, bad_subject)           /* sub is not a string of 1..128 bytes */ \
    XX(BAD_CLAIM, bad_claim)               /* exp, nbf or iat is not a number */
/* clang-format on */
enum jwt_reason {
    JWT_OK = 0,
#define JWT_REASON_ENUM(id, name) JWT_R_##id,
    JWT_REASON_MAP(JWT_REASON_ENUM)
#undef JWT_REASON_ENUM
        JWT_NREASONS /* the reasons above plus JWT_OK */
};

#define JWT_MAX_PART 8192 /* bytes of base64url in the header or the payload */
#define JWT_MAX_SIG 1024  /* signature bytes (RSA up to 8192 bits) */
#define JWT_MAX_KEYS 64   /* keys in one set */
#define JWT_MAX_KID 128   /* bytes of a "kid" */

/* The "alg" name of a (JWT_ALG_*), or NULL when out of range. Static. */
const char *jwt_alg_name(int alg);
/* The JWT_ALG_* of name[0..len), or -1 when it is none of them ("none"
 * included). Case-sensitive (RFC 7515 §4.1.1). */
int jwt_alg_from_name(const char *name, size_t len);
/* The stable name of reason r (1..JWT_NREASONS-1), "ok" for 0, NULL when
 * out of range. Static. */
const char *jwt_reason_name(int r);

/* Decodes the header part of token[0..tlen) into out[0..cap) and sets
 * *hlen. Returns 0, -JWT_R_MALFORMED (not three non-empty base64url parts)
 * or -JWT_R_TOO_BIG. Pure: no allocation, never reads outside the token. */
int jwt_decode_header(const char *token, size_t tlen, char *out, size_t cap, size_t *hlen);

/* -- key sets ---------------------------------------------------------------------- */

/* One key. Owned by its set. */
struct jwt_key {
    int kind;       /* JWT_KIND_HMAC or an enum rc_pkey_kind */
    int alg;        /* the only JWT_ALG_* it checks (a JWK's "alg"), or -1: any of its kind */
    int has_kid;    /* 0: a key without a kid (secret, public_key, a JWK without one) */
    size_t kid_len; /* bytes of kid */
    char kid[JWT_MAX_KID];
    struct rc_pkey *pk; /* owned; NULL for an HMAC key */
    uint8_t *secret;    /* owned (rc_xmalloc); HMAC keys only */
    size_t secret_len;
};

/* A set of keys and the algorithms it accepts. Owned by whoever made it
 * with jwt_keyset_new (the Lua state through ffi.gc, or a test); freed with
 * jwt_keyset_free. */
struct jwt_keyset {
    uint32_t allowed; /* bit JWT_ALG_x set: tokens with alg x may be checked */
    int nkeys;
    struct jwt_key keys[JWT_MAX_KEYS];
};

/* A new, empty set accepting the algorithms of mask `allowed` (bits
 * 1 << JWT_ALG_x; others ignored). Aborts on out of memory (fixed size). */
struct jwt_keyset *jwt_keyset_new(uint32_t allowed);
/* Frees ks and its keys (NULL is fine). */
void jwt_keyset_free(struct jwt_keyset *ks);

/* A borrowed byte string: p NULL means absent. */
struct jwt_str {
    const char *p;
    size_t len;
};

/* Adds an HMAC secret (copied), with kid or without (kid.p NULL). Returns
 * 0, or RC_E_LIMIT (the set is full) / RC_E_INVAL (kid too long) with err. */
int jwt_keyset_add_secret(struct jwt_keyset *ks, struct jwt_str kid, const void *secret, size_t len,
                          char *err, size_t errcap);
/* Adds the public key of a PEM text (rc_pkey_from_pem), with kid or
 * without. Returns 0, or RC_E_INVAL / RC_E_LIMIT with err. */
int jwt_keyset_add_pem(struct jwt_keyset *ks, struct jwt_str kid, const char *pem, size_t len,
                       char *err, size_t errcap);

/* The members of one JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2) as the
 * JSON strings found (base64url still encoded); an absent member has p
 * NULL. has_private: the JWK has a "d" (or RSA "p", "q"...) member. */
struct jwt_jwk {
    struct jwt_str kty, crv, kid, alg, use, n, e, x, y;
    int has_private;
};
/* Adds the key a JWK describes. Returns:
 *   0           added;
 *   1           skipped, as RFC 7517 §5 asks for keys we cannot use: an
 *               unknown kty or curve ("P-521", "X25519"...), a "use" other
 *               than "sig", an "alg" that is not a signature algorithm here
 *               (err says which, for a warning);
 *   RC_E_INVAL  the JWK is broken (missing or bad member, private key
 *               material, an "alg" that does not fit the key), err says why;
 *   RC_E_LIMIT  the set is full. */
int jwt_keyset_add_jwk(struct jwt_keyset *ks, const struct jwt_jwk *jwk, char *err, size_t errcap);

/* Verifies token[0..tlen), whose header (decoded by the caller) names
 * algorithm alg (a JWT_ALG_* or -1) and kid (kid.p NULL: none), against ks,
 * choosing the key as the diagram above says. On 0 the payload JSON is in
 * out[0..*plen); out is caller-owned, cap bytes. Returns 0 or
 * -JWT_R_{MALFORMED, TOO_BIG, BAD_ALG, UNKNOWN_KID, NO_KEY, BAD_SIGNATURE}.
 * HMACs are compared in constant time. Never reads outside the token.
 * Allocates nothing itself (OpenSSL makes a context per public-key check). */
int jwt_verify(const struct jwt_keyset *ks, int alg, struct jwt_str kid, const char *token,
               size_t tlen, char *out, size_t cap, size_t *plen);

#endif
