/* jwt.h - HS256 JSON Web Token signature check (RFC 7519 §7.2, RFC 7515
 * §5.2 and §7.1): the parsing and crypto half of roomcast.jwt.verify.
 *
 * Pure: no allocation, no I/O; HMAC-SHA256 and base64url through
 * base/crypto. Claims (exp, nbf, sub...) are JSON and are judged by the Lua
 * wrapper (lua/roomcast/init.lua), which also checks the header's "alg". */
#ifndef RC_PROTO_JWT_H
#define RC_PROTO_JWT_H

#include <stddef.h>

enum jwt_result {
    JWT_OK = 0,
    JWT_MALFORMED = -1,     /* not three non-empty base64url parts, or bad base64url */
    JWT_BAD_ALG = -2,       /* reserved for the caller's "alg" check */
    JWT_BAD_SIGNATURE = -3, /* the MAC does not match (compared in constant time) */
    JWT_TOO_BIG = -4,       /* a part is over JWT_MAX_PART or does not fit in out */
};

#define JWT_MAX_PART 8192 /* bytes of base64url in the header or the payload */

/* Verifies token[0..tlen) as an HS256 JWT signed with secret[0..slen).
 * The signature is HMAC-SHA256 over "header.payload" whatever the header
 * says, so a forged "alg" cannot weaken it. On JWT_OK, out[0..*hlen) holds
 * the decoded header JSON and out[*hlen..*hlen+*plen) the decoded payload
 * JSON. On JWT_BAD_SIGNATURE the header is still decoded (so a caller can
 * report a wrong alg rather than a bad signature). out is caller-owned,
 * cap bytes. Never reads outside the token. Thread-safe. */
int jwt_hs256_check(const char *token, size_t tlen, const char *secret, size_t slen, char *out,
                    size_t cap, size_t *hlen, size_t *plen);

#endif
