/* deflate.h - permessage-deflate (RFC 7692) for the server: negotiation of a
 * request's offers, inflating received messages, and compressing what is
 * sent (per connection, or once per room message).
 *
 * The glue between the pure parts (proto/ws_ext.h for the offers, ws_msg for
 * the RSV1 rules) and the zlib streams (net/pmd.h, pooled per worker). It
 * knows no connection: callers pass their worker's pool, stats and config,
 * and the numbers they negotiated (struct conn keeps two small fields).
 *
 *   upgrade:  deflate_negotiate -> pmd_params (c->pmd, c->pmd_bits) + answer line
 *   receive:  ws_msg event with RSV1 -> deflate_inflate -> on_message(plain text)
 *   send:     conn_send -> deflate_payload (per connection, scratch bytes)
 *             conn_send_ref -> deflate_frame (per connection, a new frame)
 *             room publish -> deflate_frame once -> every deflate member's queue
 *
 * Every function runs on the thread that owns the pool passed in.
 */
#ifndef RC_APP_DEFLATE_H
#define RC_APP_DEFLATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "frame_ref.h"
#include "http_parse.h"
#include "pmd.h"
#include "stats.h"
#include "ws_ext.h"

/* Reads every Sec-WebSocket-Extensions line of req (one list, RFC 9110
 * §5.3) and picks the first permessage-deflate offer cfg can honour.
 * Returns the length of the answer line written to line[0..cap) (complete
 * "Sec-WebSocket-Extensions: ...\r\n") and fills *prm, or 0 when compression
 * is off, not offered, or every offer was declined. Pure; any thread. */
int deflate_negotiate(const struct rc_config *cfg, const struct http_request *req,
                      struct pmd_params *prm, char *line, size_t cap);

/* Inflates a compressed message (ws_event with RSV1) of `opcode` into a new
 * buffer *out (owned by the caller: rc_free) and checks a text message's
 * UTF-8 (RFC 6455 §8.1, on the inflated bytes). The inflated size counts
 * against max (the message cap): inflation stops there.
 * Returns the inflated length, or RC_E_TOO_BIG (1009), RC_E_DATA or
 * RC_E_UTF8 (1007), RC_E_NOMEM; *out is NULL after an error. */
ssize_t deflate_inflate(struct pmd_pool *p, struct worker_stats *st, unsigned opcode,
                        const uint8_t *in, size_t n, size_t max, uint8_t **out);

/* Whether a payload of len bytes is worth compressing: at least
 * cfg->compression_threshold and, unless cfg->compression_max is 0, at most
 * that. A longer message goes plain so one big answer (a history read of
 * megabytes) never holds the worker's loop in zlib for milliseconds. */
static inline int deflate_wants(const struct rc_config *cfg, size_t len)
{
    return len >= cfg->compression_threshold &&
           (cfg->compression_max == 0 || len <= cfg->compression_max);
}

/* Compresses one message payload for a connection whose server window is
 * `bits`. Returns the compressed length with *z borrowing the pool's scratch
 * (valid until the next compression on this pool), or 0 when the payload
 * goes plain: not deflate_wants(cfg, len), not made smaller, or
 * the compressor could not get memory. */
size_t deflate_payload(struct pmd_pool *p, struct worker_stats *st, const struct rc_config *cfg,
                       unsigned bits, const void *data, size_t len, const uint8_t **z);

/* A compressed copy (RSV1 set, same opcode and tag) of a whole plain
 * text/binary server frame, made with a `bits` window. Returns a new frame
 * (refs = 1, the caller's), or NULL when `plain` goes as it is (see
 * deflate_payload, and any frame that is not a plain data frame). */
struct frame_ref *deflate_frame(struct pmd_pool *p, struct worker_stats *st,
                                const struct rc_config *cfg, unsigned bits,
                                const struct frame_ref *plain);

/* Whether a frame compressed with the server's configured window (`cfg_bits`)
 * may go to a connection that negotiated `conn_bits`: always when they are
 * equal; otherwise only when the message is at most 2^conn_bits bytes (no
 * back-reference can reach further than the message is long). */
static inline int deflate_frame_fits(unsigned conn_bits, unsigned cfg_bits, size_t raw_len)
{
    return conn_bits >= cfg_bits || raw_len <= ((size_t)1 << conn_bits);
}

/* The payload length of a whole unmasked frame (its header decoded). */
size_t deflate_frame_payload_len(const struct frame_ref *f);

/* The window the server compresses shared room frames with (9..15). */
static inline unsigned deflate_cfg_bits(const struct rc_config *cfg)
{
    return cfg->compression_window_bits < 9 ? 9u : (unsigned)cfg->compression_window_bits;
}

#endif
