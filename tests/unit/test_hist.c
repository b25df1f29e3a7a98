/* Unit tests for core/hist.c: precision, percentiles, merge. */
#include <errno.h>
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

/* What a report exports and another process imports is the same
 * histogram: every percentile, the extremes and the mean. */
static void test_export_import_is_lossless(void **state)
{
	(void)state;
	struct hist *a = hist_new(), *b = hist_new();
	uint64_t x = 12345;
	for (int i = 0; i < 100000; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		hist_record(a, (x >> 33) % 5000000);
	}
	hist_record(a, HIST_MAX_VALUE * 2);
	unsigned idx = 0, buckets = 0;
	uint64_t count;
	while (hist_next(a, &idx, &count)) {
		assert_int_equal(hist_add_bucket(b, idx - 1, count), 0);
		buckets++;
	}
	assert_true(buckets > 100);
	assert_int_equal(hist_set_summary(b, hist_min(a), hist_max(a), hist_sum(a), hist_clamped(a)), 0);
	assert_int_equal(hist_count(b), hist_count(a));
	assert_int_equal(hist_clamped(b), 1);
	assert_int_equal(hist_min(b), hist_min(a));
	assert_int_equal(hist_max(b), hist_max(a));
	assert_true(hist_mean(b) == hist_mean(a));
	for (double p = 1; p <= 100; p += 0.5)
		assert_int_equal(hist_percentile(b, p), hist_percentile(a, p));
	assert_int_equal(hist_percentile(b, 99.99), hist_percentile(a, 99.99));

	struct hist_packed *pk = hist_pack(a);
	assert_non_null(pk);
	assert_int_equal(pk->n, buckets);
	hist_reset(b);
	assert_int_equal(hist_unpack_into(b, pk), 0);
	assert_int_equal(hist_unpack_into(b, pk), 0);
	assert_int_equal(hist_count(b), 2 * hist_count(a));
	assert_int_equal(hist_percentile(b, 99.9), hist_percentile(a, 99.9));
	assert_int_equal(hist_max(b), hist_max(a));
	pk->total++;
	assert_int_equal(hist_unpack_into(b, pk), -EINVAL);
	assert_int_equal(hist_count(b), 2 * hist_count(a));
	hist_packed_free(pk);
	hist_free(a);
	hist_free(b);
}

/* A report is input from elsewhere: an index past the range, a zero
 * count, or extremes outside the buckets they claim are refused. */
static void test_import_refuses_what_cannot_be(void **state)
{
	(void)state;
	struct hist *h = hist_new();
	assert_int_equal(hist_add_bucket(h, HIST_INDEXES, 1), -EINVAL);
	assert_int_equal(hist_add_bucket(h, HIST_INDEXES - 1, 1), -EINVAL);
	assert_int_equal(hist_add_bucket(h, 5, 0), -EINVAL);
	assert_int_equal(hist_set_summary(h, 0, 0, 0, 0), 0);
	assert_int_equal(hist_set_summary(h, 1, 1, 1, 0), -EINVAL);
	assert_int_equal(hist_add_bucket(h, 100, 3), 0);
	assert_int_equal(hist_set_summary(h, 101, 100, 300, 0), -EINVAL);
	assert_int_equal(hist_set_summary(h, 100, 2000, 300, 0), -EINVAL);
	assert_int_equal(hist_set_summary(h, 100, 100, 300, 4), -EINVAL);
	assert_int_equal(hist_set_summary(h, 100, 100, 300, 0), 0);
	assert_int_equal(hist_add_bucket(h, 7, UINT64_MAX), -EINVAL);
	hist_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_below_2048),
		cmocka_unit_test(test_relative_error_under_a_tenth_of_a_percent),
		cmocka_unit_test(test_clamp_and_merge),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_export_import_is_lossless),
		cmocka_unit_test(test_import_refuses_what_cannot_be),
	};
	return cmocka_run_group_tests_name("hist", tests, NULL, NULL);
}
