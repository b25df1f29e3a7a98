/*
 * hist: latency histograms of the HdrHistogram kind: log-linear buckets,
 * 3 significant digits (relative error under 0.1%), values 1..60,000,000
 * (microseconds: 1 us to 60 s; larger values are clamped and counted in
 * hist_clamped). Fixed size (about 150 KB), no allocation after creation,
 * merged by adding counts.
 *
 * Owns: recording and percentile queries. Does not own: clocks or units;
 * the caller decides what a value means. Not thread-safe: one per thread,
 * merged at the end.
 */
#ifndef FG_HIST_H
#define FG_HIST_H

#include <stdint.h>

#define HIST_MAX_VALUE 60000000ull

struct hist;

struct hist *hist_new(void);
void hist_free(struct hist *h);
void hist_reset(struct hist *h);
void hist_record(struct hist *h, uint64_t value);
void hist_merge(struct hist *dst, const struct hist *src);

uint64_t hist_count(const struct hist *h);
uint64_t hist_clamped(const struct hist *h);
uint64_t hist_min(const struct hist *h);
uint64_t hist_max(const struct hist *h);
double hist_mean(const struct hist *h);

/*
 * The value at percentile p (0..100]: the highest value equivalent to the
 * first bucket whose cumulative count reaches ceil(p/100 * count), as
 * HdrHistogram reports it. 0 for an empty histogram.
 */
uint64_t hist_percentile(const struct hist *h, double p);

#endif
