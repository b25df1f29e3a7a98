/* series: per-second hand-off between engine threads. See series.h. */
#include "series.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct series {
	pthread_mutex_t mu;
	unsigned nthreads;
	size_t *published; /* per thread: seconds published so far */
	bool *done;
	struct lg_second *secs;
	struct hist **hists; /* per second until final */
	size_t n, cap, final;
};

struct series *ser_new(unsigned nthreads)
{
	struct series *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->nthreads = nthreads;
	s->published = calloc(nthreads, sizeof(*s->published));
	s->done = calloc(nthreads, sizeof(*s->done));
	if (!s->published || !s->done || pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s->published);
		free(s->done);
		free(s);
		return NULL;
	}
	return s;
}

void ser_free(struct series *s)
{
	if (!s)
		return;
	for (size_t i = s->final; i < s->n; i++)
		hist_free(s->hists[i]);
	pthread_mutex_destroy(&s->mu);
	free(s->published);
	free(s->done);
	ser_seconds_free(s->secs, s->final);
	free(s->hists);
	free(s);
}

static int grow(struct series *s, size_t want)
{
	if (want <= s->n)
		return 0;
	if (want > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		while (cap < want)
			cap *= 2;
		struct lg_second *secs = realloc(s->secs, cap * sizeof(*secs));
		if (!secs)
			return -ENOMEM;
		s->secs = secs;
		struct hist **hists = realloc(s->hists, cap * sizeof(*hists));
		if (!hists)
			return -ENOMEM;
		s->hists = hists;
		s->cap = cap;
	}
	for (size_t i = s->n; i < want; i++) {
		memset(&s->secs[i], 0, sizeof(s->secs[i]));
		s->hists[i] = NULL;
	}
	s->n = want;
	return 0;
}

int ser_publish(struct series *s, unsigned tid, size_t sec, const struct lg_second *c,
		const struct hist *latency)
{
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	rc = grow(s, sec + 1);
	if (rc < 0)
		goto out;
	struct lg_second *d = &s->secs[sec];
	d->offered += c->offered;
	d->sent += c->sent;
	d->completed += c->completed;
	for (int k = 0; k < LG_OUTCOMES; k++)
		d->counts[k] += c->counts[k];
	if (hist_count(latency)) {
		if (!s->hists[sec] && !(s->hists[sec] = hist_new())) {
			rc = -ENOMEM;
			goto out;
		}
		hist_merge(s->hists[sec], latency);
	}
	s->published[tid] = sec + 1;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void ser_thread_done(struct series *s, unsigned tid)
{
	pthread_mutex_lock(&s->mu);
	s->done[tid] = true;
	pthread_mutex_unlock(&s->mu);
}

size_t ser_finalize(struct series *s)
{
	pthread_mutex_lock(&s->mu);
	size_t ready = s->n;
	for (unsigned t = 0; t < s->nthreads; t++)
		if (!s->done[t] && s->published[t] < ready)
			ready = s->published[t];
	for (; s->final < ready; s->final++) {
		struct lg_second *d = &s->secs[s->final];
		struct hist *h = s->hists[s->final];
		if (h) {
			d->p50 = hist_percentile(h, 50);
			d->p90 = hist_percentile(h, 90);
			d->p99 = hist_percentile(h, 99);
			d->p999 = hist_percentile(h, 99.9);
			d->max = hist_max(h);
			d->latency = hist_pack(h);
			hist_free(h);
			s->hists[s->final] = NULL;
		}
	}
	size_t n = s->final;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int ser_get(struct series *s, size_t sec, struct lg_second *out)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&s->mu);
	if (sec < s->final) {
		*out = s->secs[sec];
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

struct lg_second *ser_take(struct series *s, size_t *n)
{
	pthread_mutex_lock(&s->mu);
	struct lg_second *secs = s->secs;
	*n = s->final;
	for (size_t i = s->final; i < s->n; i++)
		hist_free(s->hists[i]);
	s->secs = NULL;
	s->n = s->cap = s->final = 0;
	pthread_mutex_unlock(&s->mu);
	return secs;
}

void ser_seconds_free(struct lg_second *secs, size_t n)
{
	for (size_t i = 0; secs && i < n; i++)
		hist_packed_free(secs[i].latency);
	free(secs);
}
