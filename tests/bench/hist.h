/* hist.h - log-bucket latency histogram (HDR-style) for rcbench.
 *
 * Values are unsigned 64-bit (rcbench records nanoseconds). Below 128 every
 * value has its own bucket; above, each power of two [2^e, 2^(e+1)) is split
 * into 64 equal sub-buckets, so a reported value is within 1/64 (1.6 %) of
 * the true one. Recording is one clz, a shift and an increment: no
 * allocation, no floating point.
 *
 *   index: 0 .. 127            value itself
 *          128 + (e-7)*64 + m  value in [2^e, 2^(e+1)), m = (v >> (e-6)) - 64
 *
 * A histogram is owned by one thread while it records; merge them after the
 * threads are joined.
 */
#ifndef RC_BENCH_HIST_H
#define RC_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_LINEAR (1u << (HIST_SUB_BITS + 1)) /* 128 */
#define HIST_BUCKETS (HIST_LINEAR + (64 - HIST_SUB_BITS - 1) * (1u << HIST_SUB_BITS))

struct hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t b[HIST_BUCKETS];
};

/* Empties h. */
void hist_reset(struct hist *h);

/* Adds one value. */
void hist_record(struct hist *h, uint64_t v);

/* Adds every value of src into dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at quantile q (0 <= q <= 1): the midpoint of the bucket holding
 * the ceil(q * count)-th smallest value, clamped to [min, max]. 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

/* Arithmetic mean, 0 when empty. */
double hist_mean(const struct hist *h);

/* Bucket index of v, and the smallest value of bucket i (exposed for tests). */
unsigned hist_index(uint64_t v);
uint64_t hist_bucket_low(unsigned i);

#endif
