/* crypto.h - the one place that talks to OpenSSL's libcrypto for the pure
 * layers (SHA-1 for the handshake, base64, HMAC-SHA256 for JWT).
 *
 * All functions are pure, thread-safe and allocation-free.
 */
#ifndef RC_BASE_CRYPTO_H
#define RC_BASE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define RC_SHA1_LEN 20
#define RC_SHA256_LEN 32

void rc_sha1(const void *data, size_t len, uint8_t out[RC_SHA1_LEN]);
/* SHA-1 of the concatenation a||b (saves a copy for the accept key). */
void rc_sha1_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[RC_SHA1_LEN]);
void rc_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[RC_SHA256_LEN]);

/* Standard base64 with padding. `out` must hold 4*ceil(len/3)+1 bytes; the
 * result is NUL-terminated. Returns the length written (without the NUL). */
size_t rc_base64_encode(const uint8_t *in, size_t len, char *out);
/* Decodes standard (url=0) or URL-safe unpadded-or-padded (url=1) base64.
 * Returns the decoded length, or -1 on any invalid character, bad padding or
 * if the output would exceed `cap`. */
long rc_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, int url);

/* Constant-time comparison; 0 when equal. */
int rc_memeq_ct(const void *a, const void *b, size_t n);

#endif
