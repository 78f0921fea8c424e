/* pmd.h - permessage-deflate (RFC 7692) compression and decompression with
 * zlib, on streams pooled per worker.
 *
 * roomcast negotiates no context takeover in both directions (ws_ext.h), so
 * a zlib stream never has to outlive one message: each worker keeps one
 * inflate stream and one deflate stream per window size it has used, resets
 * them before every message, and no connection ever holds one. An idle
 * deflate connection costs a few bits in struct conn.
 *
 *   worker --owns--> struct pmd_pool
 *                      inf ------------> z_stream (raw, 15-bit window: inflates any
 *                                         client window 8..15)
 *                      def[9..15] -----> z_stream per server window, made on first use
 *                      scratch --------> compressed output of the last pmd_deflate
 *
 * Memory at the default settings (window_bits 15, mem_level 8): about 268 KiB
 * per deflate stream and 40 KiB for the inflate stream, per worker, plus the
 * scratch buffer (trimmed back to PMD_SCRATCH_KEEP after a large message);
 * all of it is freed when a period passes without use (pmd_pool_trim_idle,
 * driven by a worker timer). Everything here runs on the pool owner's
 * thread only.
 */
#ifndef RC_NET_PMD_H
#define RC_NET_PMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PMD_SCRATCH_KEEP (64 * 1024)

struct z_stream_s;

/* Owned by one worker (struct worker embeds it). */
struct pmd_pool {
    struct z_stream_s *inf;     /* owned, NULL until the first inflate */
    struct z_stream_s *def[16]; /* owned, indexed by window bits (9..15), NULL until used */
    uint8_t *scratch;           /* owned: output of the last pmd_deflate */
    size_t scratch_cap;
    size_t zbytes;      /* bytes zlib allocated for these streams */
    uint64_t uses;      /* inflates and deflates so far */
    uint64_t uses_seen; /* uses at the last pmd_pool_trim_idle */
    int level;          /* zlib level 0..9 */
    int mem_level;      /* zlib memLevel 1..9 */
};

/* Sets up an empty pool (allocates nothing). */
void pmd_pool_init(struct pmd_pool *p, int level, int mem_level);

/* Frees every stream and the scratch buffer. The pool may be used again. */
void pmd_pool_destroy(struct pmd_pool *p);

/* Bytes the pool holds now (streams and scratch), for tests and stats. */
size_t pmd_pool_bytes(const struct pmd_pool *p);

/* Inflates one whole compressed message payload in[0..n) (RFC 7692 §7.2.2:
 * the 00 00 ff ff tail is appended here) into a new buffer *out (owned by the
 * caller, free with rc_free; never NULL on success, even for 0 bytes).
 * Inflation stops as soon as the output would exceed `max` bytes, so a
 * decompression bomb costs at most max + 1 bytes of output.
 * Returns the inflated length, RC_E_TOO_BIG (over max), RC_E_DATA (not a
 * valid deflate stream), or RC_E_NOMEM. *out is NULL after an error. */
ssize_t pmd_inflate(struct pmd_pool *p, const uint8_t *in, size_t n, size_t max, uint8_t **out);

/* Compresses in[0..n) as one message with a fresh window of `window_bits`
 * (9..15; no context takeover, RFC 7692 §7.1.1.1) and removes the 00 00 ff ff
 * tail (§7.2.1). *out borrows the pool's scratch buffer: valid until the next
 * pmd_deflate on this pool. Returns the compressed length, or RC_E_NOMEM. */
ssize_t pmd_deflate(struct pmd_pool *p, unsigned window_bits, const void *in, size_t n,
                    const uint8_t **out);

/* Called periodically: frees every stream and the scratch buffer when the
 * pool was not used since the previous call (a worker whose deflate clients
 * went quiet gives its ~300 KiB back). Returns 1 when it freed something. */
int pmd_pool_trim_idle(struct pmd_pool *p);

/* Trims the scratch buffer back to nothing when it grew past PMD_SCRATCH_KEEP
 * (call after the compressed bytes were copied). */
void pmd_trim(struct pmd_pool *p);

#endif
