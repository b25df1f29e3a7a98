/* Unit tests for core/hist.c: precision, percentiles, merge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../core/hist.h"

static void test_exact_below_2048(void **state)
{
	(void)state;
	struct hist *h = hist_new();
	for (uint64_t v = 1; v <= 1000; v++)
		hist_record(h, v);
	assert_int_equal(hist_count(h), 1000);
	assert_int_equal(hist_percentile(h, 50), 500);
	assert_int_equal(hist_percentile(h, 99), 990);
	assert_int_equal(hist_percentile(h, 100), 1000);
	assert_int_equal(hist_min(h), 1);
	assert_int_equal(hist_max(h), 1000);
	hist_free(h);
}

static void test_relative_error_under_a_tenth_of_a_percent(void **state)
{
	(void)state;
	struct hist *h = hist_new();
	for (uint64_t v = 2048; v < HIST_MAX_VALUE; v = v * 3 / 2 + 7) {
		hist_reset(h);
		hist_record(h, v);
		hist_record(h, HIST_MAX_VALUE); /* so p50 is not clipped to max */
		uint64_t got = hist_percentile(h, 50);
		assert_true(got >= v);
		assert_true((double)(got - v) <= (double)v * 0.001);
	}
	hist_free(h);
}

static void test_clamp_and_merge(void **state)
{
	(void)state;
	struct hist *a = hist_new(), *b = hist_new();
	hist_record(a, 100);
	hist_record(b, HIST_MAX_VALUE * 10);
	assert_int_equal(hist_clamped(b), 1);
	hist_merge(a, b);
	assert_int_equal(hist_count(a), 2);
	assert_int_equal(hist_max(a), HIST_MAX_VALUE);
	assert_int_equal(hist_percentile(a, 50), 100);
	hist_free(a);
	hist_free(b);
}

static void test_empty(void **state)
{
	(void)state;
	struct hist *h = hist_new();
	assert_int_equal(hist_percentile(h, 99), 0);
	assert_int_equal(hist_min(h), 0);
	hist_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_below_2048),
		cmocka_unit_test(test_relative_error_under_a_tenth_of_a_percent),
		cmocka_unit_test(test_clamp_and_merge),
		cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests_name("hist", tests, NULL, NULL);
}
