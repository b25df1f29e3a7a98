/*
 * series: the per-second time series of a run, gathered from every
 * engine thread. Each thread counts its own second locally and, once the
 * second is over, publishes it here (counts added, latency histogram
 * merged); a second's percentiles are computed once every thread has
 * published it or finished, and its histogram is packed to its non-empty
 * buckets (a few KB) for the reports to carry losslessly. Memory stays
 * bounded per second however long the run, with at most a few full
 * histograms live.
 *
 * Owns: that hand-off, under one mutex taken once per thread per second.
 * Does not own: the live line or reports (they read lg_second records).
 */
#ifndef LG_SERIES_H
#define LG_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "../core/hist.h"
#include "mix.h"

struct lg_second {
	uint64_t offered;   /* requests that became due (first tries, retries, double clicks) */
	uint64_t sent;
	uint64_t completed; /* answered, failed or timed out */
	uint64_t counts[LG_OUTCOMES];
	/* latency from the intended send time, us; 0 when nothing completed */
	uint64_t p50, p90, p99, p999, max;
	struct hist_packed *latency; /* NULL when nothing completed; owned by the series, then the result */
};

struct series;

struct series *ser_new(unsigned nthreads);
void ser_free(struct series *s);

/* Thread tid's numbers for second sec (seconds are published in order). */
int ser_publish(struct series *s, unsigned tid, size_t sec, const struct lg_second *counts,
		const struct hist *latency) __attribute__((warn_unused_result));

/* Thread tid will publish nothing more. */
void ser_thread_done(struct series *s, unsigned tid);

/* Computes the percentiles of every second all threads are done with;
 * returns how many seconds are final. */
size_t ser_finalize(struct series *s);

/* Copies final second sec into *out; 0, or -ENOENT when it is not final. */
int ser_get(struct series *s, size_t sec, struct lg_second *out);

/* Hands the final seconds to the caller (ser_seconds_free them) and their number. */
struct lg_second *ser_take(struct series *s, size_t *n);

void ser_seconds_free(struct lg_second *secs, size_t n);

#endif
