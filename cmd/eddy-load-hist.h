/* eddy-load: a latency histogram with log-linear buckets.
 *
 * Values (nanoseconds) below 128 get a bucket each; above, every power of
 * two is split into 128 equal buckets, so any recorded value is known to
 * within 1/128 (0.8%) of itself, from nanoseconds up to 2^42 ns (73
 * minutes; larger values land in the last bucket, and max stays exact).
 * Recording is an index computation and an increment; histograms of
 * several threads merge by adding their buckets. */
#ifndef EDDY_LOAD_HIST_H
#define EDDY_LOAD_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 42
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 1) << HIST_SUB_BITS)

struct hist {
    uint64_t count;
    uint64_t sum; /* of all values, for the mean */
    uint64_t min;
    uint64_t max;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t value);

/* Adds the counts of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at percentile p (0..100]: the middle of the bucket that holds
 * the ceil(p% * count)-th smallest value, clamped to [min, max]. 0 when the
 * histogram is empty. */
uint64_t hist_percentile(const struct hist *h, double p);

/* The mean of the recorded values; 0 when empty. */
double hist_mean(const struct hist *h);

#endif
