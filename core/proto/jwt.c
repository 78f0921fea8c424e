#include "jwt.h"

#include <stdint.h>
#include <string.h>

#include "crypto.h"

int jwt_hs256_check(const char *token, size_t tlen, const char *secret, size_t slen, char *out,
                    size_t cap, size_t *hlen, size_t *plen)
{
    *hlen = *plen = 0;
    /* RFC 7515 §7.1 compact serialization: three base64url parts. */
    const char *d1 = memchr(token, '.', tlen);
    if (d1 == NULL)
        return JWT_MALFORMED;
    const char *d2 = memchr(d1 + 1, '.', tlen - (size_t)(d1 + 1 - token));
    if (d2 == NULL || memchr(d2 + 1, '.', tlen - (size_t)(d2 + 1 - token)) != NULL)
        return JWT_MALFORMED;
    size_t l1 = (size_t)(d1 - token), l2 = (size_t)(d2 - d1 - 1);
    size_t l3 = tlen - (size_t)(d2 + 1 - token);
    if (l1 == 0 || l2 == 0 || l3 == 0)
        return JWT_MALFORMED;
    if (l1 > JWT_MAX_PART || l2 > JWT_MAX_PART)
        return JWT_TOO_BIG;
    /* The header first, so the caller can tell a wrong "alg" from a bad
     * signature. */
    long h = rc_base64_decode(token, l1, (uint8_t *)out, cap, 1);
    if (h < 0)
        return (l1 * 3) / 4 > cap ? JWT_TOO_BIG : JWT_MALFORMED;
    *hlen = (size_t)h;
    /* RFC 7515 §5.2: the signature covers ASCII(header "." payload). */
    uint8_t sig[64];
    long n = rc_base64_decode(d2 + 1, l3, sig, sizeof(sig), 1);
    if (n < 0)
        return JWT_MALFORMED;
    uint8_t mac[RC_SHA256_LEN];
    rc_hmac_sha256(secret, slen, token, (size_t)(d2 - token), mac);
    if (n != RC_SHA256_LEN || rc_memeq_ct(sig, mac, RC_SHA256_LEN) != 0)
        return JWT_BAD_SIGNATURE;
    long p = rc_base64_decode(d1 + 1, l2, (uint8_t *)out + h, cap - (size_t)h, 1);
    if (p < 0)
        return (l2 * 3) / 4 > cap - (size_t)h ? JWT_TOO_BIG : JWT_MALFORMED;
    *plen = (size_t)p;
    return JWT_OK;
}
