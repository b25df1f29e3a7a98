/*
 * hist: HdrHistogram-style indexing with unit 1 and 2048 sub-buckets
 * (3 significant digits). Bucket 0 holds 0..2047 exactly; bucket b >= 1
 * holds [1024 << b, 2048 << b) in 1024 steps of 1 << b.
 */
#include "hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUB_BITS 11
#define SUB_COUNT (1u << SUB_BITS)
#define HALF_BITS (SUB_BITS - 1)
#define HALF_COUNT (1u << HALF_BITS)
/* 60,000,000 < 2^26, so it falls in bucket 26 - 11 + 1 = 16 */
#define BUCKETS 17
#define COUNTS ((BUCKETS + 1) * HALF_COUNT)

struct hist {
	uint64_t total, clamped, min, max;
	double sum;
	uint64_t counts[COUNTS];
};

static unsigned bucket_of(uint64_t v)
{
	unsigned pow2ceiling = 64u - (unsigned)__builtin_clzll(v | (SUB_COUNT - 1));
	return pow2ceiling - SUB_BITS;
}

static unsigned index_of(uint64_t v)
{
	unsigned b = bucket_of(v);
	unsigned sub = (unsigned)(v >> b);
	return ((b + 1) << HALF_BITS) + sub - HALF_COUNT;
}

static uint64_t highest_equivalent(unsigned idx)
{
	unsigned b, sub;
	if (idx < SUB_COUNT) {
		b = 0;
		sub = idx;
	} else {
		b = (idx >> HALF_BITS) - 1;
		sub = (idx & (HALF_COUNT - 1)) + HALF_COUNT;
	}
	return ((uint64_t)sub << b) + (1ull << b) - 1;
}

struct hist *hist_new(void)
{
	struct hist *h = malloc(sizeof(*h));
	if (h)
		hist_reset(h);
	return h;
}

void hist_free(struct hist *h)
{
	free(h);
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_record(struct hist *h, uint64_t v)
{
	if (v > HIST_MAX_VALUE) {
		v = HIST_MAX_VALUE;
		h->clamped++;
	}
	h->counts[index_of(v)]++;
	h->total++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < COUNTS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->clamped += src->clamped;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_count(const struct hist *h) { return h->total; }
uint64_t hist_clamped(const struct hist *h) { return h->clamped; }
uint64_t hist_min(const struct hist *h) { return h->total ? h->min : 0; }
uint64_t hist_max(const struct hist *h) { return h->max; }
double hist_mean(const struct hist *h) { return h->total ? h->sum / (double)h->total : 0.0; }

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (h->total == 0)
		return 0;
	if (p > 100.0)
		p = 100.0;
	uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->total);
	if (want == 0)
		want = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < COUNTS; i++) {
		seen += h->counts[i];
		if (seen >= want) {
			uint64_t v = highest_equivalent(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}
