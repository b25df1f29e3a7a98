/* capacity: the search for the highest rate under a p99 target. See capacity.h. */
#include "capacity.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static int run_step(const struct lg_profile *base, const struct lg_target *t,
		    const struct cap_opts *o, double rate, struct cap_step *st, char *err,
		    size_t err_len)
{
	struct lg_profile p = *base;
	struct lg_target quiet = *t;
	struct lg_result r;
	quiet.quiet = true;
	p.closed_loop = false;
	p.max_requests = 0;
	p.t0_unix_ms = 0;
	p.n_stages = 1;
	p.stages[0] = (struct prof_stage){"step", o->step_s, rate, rate};
	int rc = lg_run(&p, &quiet, &r, err, err_len);
	if (rc < 0) {
		lg_result_free(&r);
		return rc;
	}
	uint64_t errors = r.c.counts[LG_UNAVAILABLE] + r.c.counts[LG_TIMEOUT] +
			  r.c.counts[LG_CONN_ERROR] + r.c.counts[LG_OTHER_STATUS];
	st->rate = rate;
	st->achieved = o->step_s > 0 ? (double)r.c.completed / o->step_s : 0;
	st->p99_us = hist_percentile(r.latency, 99);
	st->error_share = r.c.completed ? (double)errors / (double)r.c.completed : 1;
	st->generator_limited = r.generator_limited;
	st->passed = st->p99_us <= o->p99_target_us && (double)r.c.completed >= 0.99 * r.scheduled &&
		     st->error_share <= 0.01 && !r.generator_limited;
	lg_result_free(&r);
	return 0;
}

int cap_find(const struct lg_profile *base, const struct lg_target *t, const struct cap_opts *o,
	     FILE *out, struct cap_result *res, char *err, size_t err_len)
{
	memset(res, 0, sizeof(*res));
	double lo = 0, hi = 0, rate = o->start_rate;
	unsigned max_steps = o->max_steps < CAP_MAX_STEPS ? o->max_steps : CAP_MAX_STEPS;
	fprintf(out, "find-capacity: p99 target %.2f ms, steps of %.1f s, starting at %.0f req/s\n",
		(double)o->p99_target_us / 1000, o->step_s, rate);
	while (res->n_steps < max_steps) {
		struct cap_step *st = &res->steps[res->n_steps];
		int rc = run_step(base, t, o, rate, st, err, err_len);
		if (rc < 0)
			return rc;
		res->n_steps++;
		fprintf(out, "  step %2u: %9.0f req/s -> answered %9.0f/s, p99 %8.2f ms, errors %5.2f%%%s: %s\n",
			res->n_steps, rate, st->achieved, (double)st->p99_us / 1000, st->error_share * 100,
			st->generator_limited ? ", generator-limited" : "", st->passed ? "pass" : "fail");
		fflush(out);
		if (st->passed) {
			lo = rate;
			if (lo > res->capacity)
				res->capacity = lo;
		} else {
			hi = rate;
			if (st->generator_limited) {
				res->lower_bound = true;
				break; /* beyond here flashload measures itself */
			}
		}
		/* Doubling until the first failure, halving until the first pass,
		 * then bisecting to within 5%. */
		if (hi == 0)
			rate = lo * 2;
		else if (lo == 0)
			rate = hi / 2;
		else if (hi / lo <= 1.05)
			break;
		else
			rate = (lo + hi) / 2;
		if (rate < 1)
			break;
	}
	if (res->capacity > 0)
		fprintf(out, "capacity: %.0f req/s with p99 within %.2f ms%s\n", res->capacity,
			(double)o->p99_target_us / 1000,
			res->lower_bound ? " (at least: flashload became the limit above it; add --threads "
					   "or generator machines)" : "");
	else
		fprintf(out, "capacity: no rate tried kept p99 within %.2f ms (lowest tried %.0f req/s)\n",
			(double)o->p99_target_us / 1000, rate);
	return 0;
}

int cap_json(const char *path, const struct cap_opts *o, const struct cap_result *res)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		int rc = -errno;
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return rc;
	}
	fprintf(f, "{\n  \"p99_target_us\": %" PRIu64 ",\n  \"step_s\": %.3f,\n  \"capacity_rps\": %.0f,\n"
		   "  \"lower_bound\": %s,\n  \"steps\": [\n",
		o->p99_target_us, o->step_s, res->capacity, res->lower_bound ? "true" : "false");
	for (unsigned i = 0; i < res->n_steps; i++) {
		const struct cap_step *s = &res->steps[i];
		fprintf(f, "    {\"rate\": %.0f, \"answered_rps\": %.1f, \"p99_us\": %" PRIu64
			   ", \"error_share\": %.5f, \"generator_limited\": %s, \"passed\": %s}%s\n",
			s->rate, s->achieved, s->p99_us, s->error_share,
			s->generator_limited ? "true" : "false", s->passed ? "true" : "false",
			i + 1 < res->n_steps ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	if (fclose(f) != 0) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}
