/* crypto.h - the one place that talks to OpenSSL's libcrypto for the pure
 * layers (SHA-1 for the handshake, base64, HMAC and public-key signature
 * checks for JWT).
 *
 * All functions are thread-safe. The hashes, HMAC and base64 allocate
 * nothing; public keys (struct rc_pkey) are OpenSSL objects made by the
 * rc_pkey_* constructors and freed by rc_pkey_free. A key is immutable once
 * made, so several threads may verify with it at once.
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

/* Digests for rc_hmac and rc_pkey_verify. */
enum rc_md { RC_MD_NONE = 0, RC_MD_SHA256, RC_MD_SHA384, RC_MD_SHA512 };
#define RC_HMAC_MAX 64 /* SHA-512 */

/* HMAC (RFC 2104) with digest md over data; writes the MAC into out (at
 * least RC_HMAC_MAX bytes) and returns its length (32, 48 or 64), or 0 when
 * md is not one of the three SHA-2 digests. */
size_t rc_hmac(enum rc_md md, const void *key, size_t keylen, const void *data, size_t len,
               uint8_t *out);

/* Public keys for signature checks. */
struct rc_pkey; /* an EVP_PKEY */
enum rc_pkey_kind {
    RC_PKEY_RSA = 1,
    RC_PKEY_P256,    /* ECDSA on NIST P-256 (secp256r1) */
    RC_PKEY_P384,    /* ECDSA on NIST P-384 (secp384r1) */
    RC_PKEY_ED25519, /* EdDSA, RFC 8032 */
};
/* Signature schemes for rc_pkey_verify. */
enum rc_sig {
    RC_SIG_RSA_PKCS1 = 1, /* RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) */
    RC_SIG_RSA_PSS,       /* RSASSA-PSS, MGF1 with the same digest, salt = digest length */
    RC_SIG_ECDSA_RAW,     /* ECDSA, signature as fixed-size big-endian r || s (RFC 7518 §3.4) */
    RC_SIG_EDDSA,         /* pure Ed25519 over the message (RFC 8037 §3.1) */
};

/* Reads the first public key of a PEM text (a "PUBLIC KEY", an "RSA PUBLIC
 * KEY" or a "CERTIFICATE", whose subject key is taken). A PEM that holds a
 * private key is refused: the server needs only the public half. On success
 * *out is a new key the caller owns and the result is its rc_pkey_kind; on
 * failure the result is RC_E_INVAL and err holds the reason (NUL-terminated,
 * at most errcap bytes). An RSA key under 2048 bits is refused (RFC 7518
 * §3.3), and so is any other key type or curve. */
int rc_pkey_from_pem(const char *pem, size_t len, struct rc_pkey **out, char *err, size_t errcap);
/* Builds an RSA public key from its big-endian modulus n and exponent e
 * (RFC 7518 §6.3.1). Returns RC_PKEY_RSA with *out set, or RC_E_INVAL with
 * err set (under 2048 bits, zero or even exponent). */
int rc_pkey_from_rsa(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
                     struct rc_pkey **out, char *err, size_t errcap);
/* Builds an EC public key on kind (RC_PKEY_P256 or RC_PKEY_P384) from its
 * affine coordinates, each exactly the field size (32 or 48 bytes, RFC 7518
 * §6.2.1.2). The point must lie on the curve. Returns kind with *out set, or
 * RC_E_INVAL with err set. */
int rc_pkey_from_ec(enum rc_pkey_kind kind, const uint8_t *x, size_t xlen, const uint8_t *y,
                    size_t ylen, struct rc_pkey **out, char *err, size_t errcap);
/* Builds an Ed25519 public key from its 32 bytes (RFC 8037 §2). Returns
 * RC_PKEY_ED25519 with *out set, or RC_E_INVAL with err set. */
int rc_pkey_from_ed25519(const uint8_t *x, size_t xlen, struct rc_pkey **out, char *err,
                         size_t errcap);
/* The kind of k, and its size in bits. */
enum rc_pkey_kind rc_pkey_kind(const struct rc_pkey *k);
int rc_pkey_bits(const struct rc_pkey *k);
/* Frees k (NULL is fine). */
void rc_pkey_free(struct rc_pkey *k);
/* Checks sig over data[0..len) with key k, scheme and digest md (ignored
 * for RC_SIG_EDDSA). The scheme must suit the key (the caller's job; a
 * mismatch simply fails). Returns 0 when the signature is valid, -1 when it
 * is not (wrong length, wrong key, tampered data, or an OpenSSL failure).
 * Never reads outside data or sig. Allocates only OpenSSL's per-call
 * context. */
int rc_pkey_verify(const struct rc_pkey *k, enum rc_sig scheme, enum rc_md md, const void *data,
                   size_t len, const uint8_t *sig, size_t siglen);

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
