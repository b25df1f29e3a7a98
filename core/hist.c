/*
 * hist: HdrHistogram-style indexing with unit 1 and 2048 sub-buckets
 * (3 significant digits). Bucket 0 holds 0..2047 exactly; bucket b >= 1
 * holds [1024 << b, 2048 << b) in 1024 steps of 1 << b.
 */
#include "hist.h"

#include <errno.h>
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

_Static_assert(COUNTS == HIST_INDEXES, "hist.h's HIST_INDEXES is the counts array's size");

bool hist_next(const struct hist *h, unsigned *idx, uint64_t *count)
{
	for (unsigned i = *idx; i < COUNTS; i++) {
		if (h->counts[i]) {
			*count = h->counts[i];
			*idx = i + 1;
			return true;
		}
	}
	*idx = COUNTS;
	return false;
}

double hist_sum(const struct hist *h) { return h->sum; }

static uint64_t lowest_equivalent(unsigned idx)
{
	unsigned b = idx < SUB_COUNT ? 0 : (idx >> HALF_BITS) - 1;
	return highest_equivalent(idx) + 1 - (1ull << b);
}

int hist_add_bucket(struct hist *h, unsigned idx, uint64_t count)
{
	/* The last bucket's top end lies above HIST_MAX_VALUE: indexes past
	 * the one holding it are never recorded, so none may be imported. */
	if (idx > (unsigned)index_of(HIST_MAX_VALUE) || count == 0 || h->total + count < h->total)
		return -EINVAL;
	uint64_t v = highest_equivalent(idx);
	if (v > HIST_MAX_VALUE)
		v = HIST_MAX_VALUE;
	h->counts[idx] += count;
	h->total += count;
	h->sum += (double)v * (double)count;
	uint64_t lo = lowest_equivalent(idx);
	if (lo < h->min)
		h->min = lo;
	if (v > h->max)
		h->max = v;
	return 0;
}

int hist_set_summary(struct hist *h, uint64_t min, uint64_t max, double sum, uint64_t clamped)
{
	if (h->total == 0)
		return min == 0 && max == 0 && sum == 0 && clamped == 0 ? 0 : -EINVAL;
	/* h->min and h->max now span the buckets' ends: the true extremes lie
	 * in the first and last buckets. */
	unsigned first = index_of(h->min), last = index_of(h->max);
	if (min > max || max > HIST_MAX_VALUE || clamped > h->total || !(sum >= 0) ||
	    index_of(min) != first || index_of(max) != last)
		return -EINVAL;
	h->min = min;
	h->max = max;
	h->sum = sum;
	h->clamped = clamped;
	return 0;
}

struct hist_packed *hist_pack(const struct hist *h)
{
	struct hist_packed *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	unsigned idx = 0;
	uint64_t count;
	while (hist_next(h, &idx, &count))
		p->n++;
	p->idx = malloc((p->n ? p->n : 1) * sizeof(*p->idx));
	p->count = malloc((p->n ? p->n : 1) * sizeof(*p->count));
	if (!p->idx || !p->count) {
		hist_packed_free(p);
		return NULL;
	}
	size_t k = 0;
	for (idx = 0; hist_next(h, &idx, &count); k++) {
		p->idx[k] = idx - 1;
		p->count[k] = count;
	}
	p->total = h->total;
	p->clamped = h->clamped;
	p->min = hist_min(h);
	p->max = h->max;
	p->sum = h->sum;
	return p;
}

void hist_packed_free(struct hist_packed *p)
{
	if (!p)
		return;
	free(p->idx);
	free(p->count);
	free(p);
}

int hist_unpack_into(struct hist *h, const struct hist_packed *p)
{
	struct hist *one = hist_new();
	if (!one)
		return -ENOMEM;
	int rc = 0;
	for (size_t k = 0; k < p->n && rc == 0; k++)
		rc = hist_add_bucket(one, p->idx[k], p->count[k]);
	if (rc == 0)
		rc = hist_set_summary(one, p->min, p->max, p->sum, p->clamped);
	if (rc == 0 && one->total != p->total)
		rc = -EINVAL;
	if (rc == 0)
		hist_merge(h, one);
	hist_free(one);
	return rc;
}
