/*
 * sched: the send schedule of a profile's stages. The rate curve r(t) is
 * piecewise linear, so the expected number of requests by time t,
 * N(t) = integral of r, is piecewise quadratic with a closed-form inverse:
 * the n-th request is due at N^-1(n). Uniform arrivals use n = 0, 1, 2...;
 * Poisson arrivals feed N^-1 the partial sums of exponential gaps, which
 * turns a unit-rate Poisson process into one that follows the curve.
 *
 * Owns: that arithmetic. Does not own: clocks, threads or sending.
 */
#ifndef LG_SCHED_H
#define LG_SCHED_H

#include "profile.h"

struct sched {
	const struct lg_profile *p;
	double start_s[PROF_MAX_STAGES + 1]; /* stage k runs [start_s[k], start_s[k+1]) */
	double count_at[PROF_MAX_STAGES + 1]; /* N(start_s[k]) */
};

void sched_init(struct sched *s, const struct lg_profile *p);

/* Requests the whole schedule is expected to send. */
double sched_total(const struct sched *s);

/* Seconds from the start at which cumulative count n is reached, or a
 * negative value when n is past the end of the schedule. */
double sched_time_of(const struct sched *s, double n);

/* The stage running at t seconds (the last one past the end). */
unsigned sched_stage_at(const struct sched *s, double t);

/* The scheduled rate at t seconds (0 past the end). */
double sched_rate_at(const struct sched *s, double t);

/* Requests the schedule sends in [a, b). */
double sched_count_between(const struct sched *s, double a, double b);

#endif
