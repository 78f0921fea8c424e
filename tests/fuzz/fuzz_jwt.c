/* fuzz_jwt.c - libFuzzer driver for proto/jwt (HS256 token check).
 * Input: first byte = secret length (mod 32), then the secret, then the
 * token. Checks: no read outside the token (ASan), outputs within cap, and
 * a token accepted under a secret is refused under any other secret. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t slen = data[0] % 32;
    if (size < 1 + slen)
        return 0;
    const char *secret = (const char *)data + 1;
    size_t tlen = size - 1 - slen;
    /* An exact-size heap copy so ASan catches any over-read. */
    char *tok = malloc(tlen ? tlen : 1);
    memcpy(tok, data + 1 + slen, tlen);
    char out[256];
    size_t h = 0, p = 0;
    int rc = jwt_hs256_check(tok, tlen, secret, slen, out, sizeof(out), &h, &p);
    if (rc != JWT_OK && rc != JWT_MALFORMED && rc != JWT_BAD_SIGNATURE && rc != JWT_TOO_BIG)
        abort();
    if (h + p > sizeof(out))
        abort();
    if (rc == JWT_OK) {
        char other[33];
        memcpy(other, secret, slen);
        other[slen] = 'x';
        size_t h2, p2;
        if (jwt_hs256_check(tok, tlen, other, slen + 1, out, sizeof(out), &h2, &p2) == JWT_OK)
            abort();
    }
    free(tok);
    return 0;
}
