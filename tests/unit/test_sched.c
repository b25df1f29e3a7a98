/* Unit tests for loadgen/sched.c: the n-th send time of a stage curve. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../loadgen/sched.h"

static void stages(struct lg_profile *p, unsigned n, const struct prof_stage *s)
{
	prof_defaults(p);
	p->n_stages = n;
	for (unsigned k = 0; k < n; k++)
		p->stages[k] = s[k];
}

static void test_constant_rate(void **state)
{
	(void)state;
	struct lg_profile p;
	struct sched sc;
	stages(&p, 1, (struct prof_stage[]){{"s", 10, 1000, 1000}});
	sched_init(&sc, &p);
	assert_float_equal(sched_total(&sc), 10000, 1e-6);
	assert_float_equal(sched_time_of(&sc, 0), 0, 1e-12);
	assert_float_equal(sched_time_of(&sc, 2500), 2.5, 1e-9);
	assert_true(sched_time_of(&sc, 10000) < 0);
	assert_float_equal(sched_rate_at(&sc, 3), 1000, 1e-9);
	assert_float_equal(sched_rate_at(&sc, 10), 0, 1e-9);
}

/* A linear ramp: N(t) = r0 t + (r1 - r0) t^2 / 2D, and time_of inverts it. */
static void test_ramps_invert(void **state)
{
	(void)state;
	struct lg_profile p;
	struct sched sc;
	stages(&p, 3, (struct prof_stage[]){{"up", 10, 0, 1000}, {"hold", 5, 1000, 1000},
					  {"down", 4, 1000, 200}});
	sched_init(&sc, &p);
	assert_float_equal(sched_total(&sc), 5000 + 5000 + 2400, 1e-6);
	for (double t = 0; t < 19; t += 0.37) {
		double n = sched_count_between(&sc, 0, t);
		assert_float_equal(sched_time_of(&sc, n), t, 1e-7);
	}
	/* In a ramp from 0, the first request waits sqrt(2D / r1) = 0.1414 s. */
	assert_float_equal(sched_time_of(&sc, 1), sqrt(2 * 10 / 1000.0), 1e-9);
	assert_float_equal(sched_rate_at(&sc, 5), 500, 1e-9);
	assert_float_equal(sched_rate_at(&sc, 17), 600, 1e-9);
	double prev = -1;
	for (double n = 0; n < sched_total(&sc); n += 97) {
		double t = sched_time_of(&sc, n);
		assert_true(t > prev);
		prev = t;
	}
}

/* A 0 s stage is a step: it sends nothing and the next stage starts at once. */
static void test_step_and_stage_lookup(void **state)
{
	(void)state;
	struct lg_profile p;
	struct sched sc;
	stages(&p, 3, (struct prof_stage[]){{"low", 2, 100, 100}, {"jump", 0, 100, 5000},
					  {"high", 1, 5000, 5000}});
	sched_init(&sc, &p);
	assert_float_equal(sched_total(&sc), 5200, 1e-6);
	assert_int_equal(sched_stage_at(&sc, 1.99), 0);
	assert_int_equal(sched_stage_at(&sc, 2.0), 2);
	assert_int_equal(sched_stage_at(&sc, 99), 2);
	assert_float_equal(sched_time_of(&sc, 200), 2.0, 1e-12);
	assert_float_equal(sched_time_of(&sc, 2700), 2.5, 1e-9);
	assert_float_equal(sched_count_between(&sc, 1.5, 2.5), 50 + 2500, 1e-6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_constant_rate),
		cmocka_unit_test(test_ramps_invert),
		cmocka_unit_test(test_step_and_stage_lookup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
