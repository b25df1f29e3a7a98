/* sched: stage arithmetic. See sched.h. */
#include "sched.h"

#include <math.h>

/* Requests sent in the first t seconds of stage k. */
static double stage_count(const struct prof_stage *st, double t)
{
	if (st->duration_s <= 0)
		return 0;
	double slope = (st->to_rate - st->from_rate) / st->duration_s;
	return st->from_rate * t + slope * t * t / 2;
}

void sched_init(struct sched *s, const struct lg_profile *p)
{
	s->p = p;
	s->start_s[0] = 0;
	s->count_at[0] = 0;
	for (unsigned k = 0; k < p->n_stages; k++) {
		const struct prof_stage *st = &p->stages[k];
		s->start_s[k + 1] = s->start_s[k] + st->duration_s;
		s->count_at[k + 1] = s->count_at[k] + stage_count(st, st->duration_s);
	}
}

double sched_total(const struct sched *s)
{
	return s->count_at[s->p->n_stages];
}

double sched_time_of(const struct sched *s, double n)
{
	const struct lg_profile *p = s->p;
	for (unsigned k = 0; k < p->n_stages; k++) {
		if (n >= s->count_at[k + 1])
			continue;
		const struct prof_stage *st = &p->stages[k];
		double m = n - s->count_at[k]; /* requests into this stage */
		double r0 = st->from_rate;
		double a = (st->to_rate - r0) / st->duration_s / 2; /* N = r0 t + a t^2 */
		double t;
		if (fabs(a) < 1e-12) {
			t = m / r0;
		} else {
			/* The root of a t^2 + r0 t - m = 0 within the stage; written so
			 * that it stays exact when a is tiny relative to r0. */
			double disc = r0 * r0 + 4 * a * m;
			double den = r0 + sqrt(disc > 0 ? disc : 0);
			t = den > 0 ? 2 * m / den : 0;
		}
		if (t > st->duration_s)
			t = st->duration_s;
		return s->start_s[k] + t;
	}
	return -1;
}

unsigned sched_stage_at(const struct sched *s, double t)
{
	unsigned n = s->p->n_stages;
	for (unsigned k = 0; k < n; k++)
		if (t < s->start_s[k + 1])
			return k;
	return n ? n - 1 : 0;
}

double sched_rate_at(const struct sched *s, double t)
{
	const struct lg_profile *p = s->p;
	if (t < 0 || t >= s->start_s[p->n_stages])
		return 0;
	unsigned k = sched_stage_at(s, t);
	const struct prof_stage *st = &p->stages[k];
	double into = t - s->start_s[k];
	return st->from_rate + (st->to_rate - st->from_rate) * into / st->duration_s;
}

static double count_by(const struct sched *s, double t)
{
	unsigned n = s->p->n_stages;
	if (t <= 0)
		return 0;
	if (t >= s->start_s[n])
		return s->count_at[n];
	unsigned k = sched_stage_at(s, t);
	return s->count_at[k] + stage_count(&s->p->stages[k], t - s->start_s[k]);
}

double sched_count_between(const struct sched *s, double a, double b)
{
	return count_by(s, b) - count_by(s, a);
}
