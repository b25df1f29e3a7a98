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

#include <stdbool.h>
#include <stddef.h>
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

/*
 * Lossless export, for reports that other processes merge. A bucket index
 * is HdrHistogram's counts index for lowest value 1 and 3 significant
 * digits (2048 sub-buckets), so an exported histogram means the same thing
 * to HdrHistogram's tools. hist_next walks the non-empty buckets: start
 * with *idx = 0; returns false after the last.
 */
#define HIST_INDEXES 18432u
bool hist_next(const struct hist *h, unsigned *idx, uint64_t *count);
double hist_sum(const struct hist *h);

/*
 * Adds count values to bucket idx, as if recorded at the bucket's highest
 * equivalent value (exported histograms say where their values fell, not
 * what they were). 0, or -EINVAL for an index out of range.
 */
int hist_add_bucket(struct hist *h, unsigned idx, uint64_t count)
	__attribute__((warn_unused_result));
/* After hist_add_bucket: the exported min, max, sum and clamped count, so
 * a re-imported histogram reports what the original did. -EINVAL when they
 * contradict the buckets (max below the highest bucket's floor, ...). */
int hist_set_summary(struct hist *h, uint64_t min, uint64_t max, double sum, uint64_t clamped)
	__attribute__((warn_unused_result));

/*
 * A histogram packed to its non-empty buckets, for keeping many (one per
 * second of a run) without 150 KB each. Read-only once made.
 */
struct hist_packed {
	uint64_t total, clamped, min, max;
	double sum;
	size_t n;
	uint32_t *idx;
	uint64_t *count;
};

/* NULL when out of memory. */
struct hist_packed *hist_pack(const struct hist *h);
void hist_packed_free(struct hist_packed *p);
/* Adds p's values into h (merge); 0 or -EINVAL (a corrupt pack). */
int hist_unpack_into(struct hist *h, const struct hist_packed *p) __attribute__((warn_unused_result));

#endif
