/* utf8.h - incremental UTF-8 validator (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF).
 *
 * The state is a small integer carried between calls, so a text message can
 * be validated fragment by fragment and chunk by chunk, and fails at the
 * first byte that can no longer start or continue a valid sequence (fail-fast,
 * as Autobahn 6.4.x requires). Pure, allocation-free, thread-safe.
 */
#ifndef RC_PROTO_UTF8_H
#define RC_PROTO_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u /* at a character boundary */
#define UTF8_REJECT 1u /* invalid; sticky */

/* Advances state over p[0..n). Returns the new state: UTF8_ACCEPT, UTF8_REJECT
 * or another value meaning "inside a multi-byte sequence". Once REJECT,
 * further calls return REJECT. Has an ASCII fast path (8 bytes at a time). */
uint32_t utf8_validate(uint32_t state, const uint8_t *p, size_t n);

/* 1 if p[0..n) is complete, valid UTF-8. */
int utf8_is_valid(const uint8_t *p, size_t n);

/* Largest k <= n such that p[0..k) ends on a character boundary of valid
 * UTF-8 input (used to truncate close reasons without splitting a character). */
size_t utf8_truncate(const uint8_t *p, size_t n);

#endif
