/*
 * capacity: --find-capacity. Runs short steady steps of the profile's
 * traffic at one rate each, doubling while a step passes, then bisecting
 * between the last pass and the first failure, and reports the highest
 * rate that passed. A step passes when its p99 (from the intended send
 * time) is within the target, it answered at least 99% of its schedule,
 * at most 1% of answers were errors (503, timeouts, broken connections)
 * and flashload itself kept the schedule. When the generator was the
 * limit, the answer is a lower bound and says so.
 *
 * Owns: the search and its report. Does not own: running a step (run).
 */
#ifndef LG_CAPACITY_H
#define LG_CAPACITY_H

#include <stdint.h>
#include <stdio.h>

#include "profile.h"
#include "run.h"

struct cap_opts {
	uint64_t p99_target_us;
	double step_s;     /* length of one step */
	double start_rate; /* first rate tried */
	unsigned max_steps;
};

struct cap_step {
	double rate, achieved;
	uint64_t p99_us;
	double error_share;
	bool generator_limited, passed;
};

#define CAP_MAX_STEPS 40

struct cap_result {
	double capacity;   /* highest passing rate; 0 when none passed */
	bool lower_bound;  /* the generator, not the server, stopped the search */
	struct cap_step steps[CAP_MAX_STEPS];
	unsigned n_steps;
};

int cap_find(const struct lg_profile *base, const struct lg_target *t, const struct cap_opts *o,
	     FILE *out, struct cap_result *res, char *err, size_t err_len)
	__attribute__((warn_unused_result));

int cap_json(const char *path, const struct cap_opts *o, const struct cap_result *res)
	__attribute__((warn_unused_result));

#endif
