/* hist.c - log-bucket latency histogram; see hist.h for the layout. */
#include "hist.h"

#include <string.h>

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
    if (v < HIST_LINEAR)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
    unsigned m = (unsigned)(v >> (e - HIST_SUB_BITS)) - (1u << HIST_SUB_BITS);
    return HIST_LINEAR + (e - HIST_SUB_BITS - 1) * (1u << HIST_SUB_BITS) + m;
}

uint64_t hist_bucket_low(unsigned i)
{
    if (i < HIST_LINEAR)
        return i;
    unsigned k = i - HIST_LINEAR;
    unsigned e = k / (1u << HIST_SUB_BITS) + HIST_SUB_BITS + 1;
    uint64_t m = k % (1u << HIST_SUB_BITS) + (1u << HIST_SUB_BITS);
    return m << (e - HIST_SUB_BITS);
}

void hist_record(struct hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo = hist_bucket_low(i);
            uint64_t hi = i + 1 < HIST_BUCKETS ? hist_bucket_low(i + 1) : lo;
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
