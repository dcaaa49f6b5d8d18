/* eddy-load: the log-linear latency histogram (see eddy-load-hist.h). */
#include "eddy-load-hist.h"

#include <string.h>

#define SUB ((uint64_t)1 << HIST_SUB_BITS)

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

/* Bucket of a value: below SUB the value itself; otherwise the block of its
 * power of two (1, 2, ...) times SUB plus its next HIST_SUB_BITS bits below
 * the leading one. The two ranges meet without a gap: 128 maps to 128. */
static unsigned bucket_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned top = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
    if (top >= HIST_MAX_BITS)
        return HIST_BUCKETS - 1;
    unsigned shift = top - HIST_SUB_BITS;
    return (shift + 1) * (unsigned)SUB + (unsigned)((v >> shift) & (SUB - 1));
}

/* The lowest value of a bucket and its width. */
static void bucket_range(unsigned i, uint64_t *low, uint64_t *width)
{
    if (i < SUB) {
        *low = i;
        *width = 1;
        return;
    }
    unsigned shift = i / (unsigned)SUB - 1;
    *low = (SUB + i % SUB) << shift;
    *width = (uint64_t)1 << shift;
}

void hist_record(struct hist *h, uint64_t value)
{
    h->buckets[bucket_of(value)]++;
    h->count++;
    h->sum += value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    /* The rank is rounded up by hand: libm is not linked for one ceil(). */
    double exact = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen < rank)
            continue;
        uint64_t low, width;
        bucket_range(i, &low, &width);
        uint64_t v = low + width / 2;
        if (v < h->min)
            v = h->min;
        if (v > h->max)
            v = h->max;
        return v;
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
