/* Unit tests for gateway/metrics.c: histogram buckets, the sum over
 * workers' slots, the reconcile thread's counters, and the text format. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../gateway/metrics.h"

/* The value on the line that starts with `sample ` in text, or -1. */
static long long value_of(const char *text, const char *sample)
{
	size_t n = strlen(sample);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, sample, n) == 0 && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	}
	return -1;
}

static void test_latency_bucket_bounds_are_inclusive(void **state)
{
	(void)state;
	struct metrics_latency l = {0};
	metrics_latency_add(&l, 0);
	metrics_latency_add(&l, 250);     /* on the first bound: in it */
	metrics_latency_add(&l, 251);     /* just past: the next */
	metrics_latency_add(&l, 5000);    /* the 5 ms SLO bound */
	metrics_latency_add(&l, 5001);
	metrics_latency_add(&l, 9999999); /* past the last bound: +Inf */
	metrics_latency_add(&l, -3);      /* a clock read once per turn: counted as 0 */
	assert_int_equal(l.bucket[0], 3);
	assert_int_equal(l.bucket[1], 1);
	assert_int_equal(l.bucket[4], 1);
	assert_int_equal(l.bucket[5], 1);
	assert_int_equal(l.bucket[METRICS_LATENCY_BOUNDS], 1);
	assert_int_equal(l.sum_us, 0 + 250 + 251 + 5000 + 5001 + 9999999);
}

static void test_page_sums_the_workers_and_cumulates_buckets(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(2);
	assert_non_null(m);
	struct metrics_sample a = {0}, b = {0};
	a.stats.requests = 10, a.stats.accepted = 4, a.connections = 3, a.redis_up = 1;
	b.stats.requests = 5, b.stats.accepted = 1, b.connections = 1, b.redis_up = 0;
	metrics_latency_add(&a.accept_latency, 100);
	metrics_latency_add(&a.accept_latency, 3000);
	metrics_latency_add(&b.accept_latency, 700);
	metrics_publish(m, 0, &a);
	metrics_publish(m, 1, &b);
	b.stats.requests = 6; /* a later tick replaces the slot, not adds to it */
	metrics_publish(m, 1, &b);

	char text[METRICS_TEXT_MAX];
	int n = metrics_render(m, text, sizeof(text), "9.9.9", "abc123");
	assert_true(n > 0 && (size_t)n == strlen(text));
	assert_int_equal(value_of(text, "flashgate_requests_total"), 16);
	assert_int_equal(value_of(text, "flashgate_orders_accepted_total"), 5);
	assert_int_equal(value_of(text, "flashgate_connections"), 4);
	assert_int_equal(value_of(text, "flashgate_redis_workers_up"), 1);
	assert_int_equal(value_of(text, "flashgate_workers"), 2);
	assert_int_equal(value_of(text, "flashgate_build_info{version=\"9.9.9\",commit=\"abc123\"}"), 1);
	assert_int_equal(value_of(text, "flashgate_order_accept_seconds_bucket{le=\"0.00025\"}"), 1);
	assert_int_equal(value_of(text, "flashgate_order_accept_seconds_bucket{le=\"0.001\"}"), 2);
	assert_int_equal(value_of(text, "flashgate_order_accept_seconds_bucket{le=\"0.005\"}"), 3);
	assert_int_equal(value_of(text, "flashgate_order_accept_seconds_bucket{le=\"+Inf\"}"), 3);
	assert_int_equal(value_of(text, "flashgate_order_accept_seconds_count"), 3);
	assert_non_null(strstr(text, "flashgate_order_accept_seconds_sum 0.003800\n"));
	assert_non_null(strstr(text, "# TYPE flashgate_requests_total counter\n"));
	assert_non_null(strstr(text, "# TYPE flashgate_order_accept_seconds histogram\n"));
	metrics_free(m);
}

static void test_reconcile_counters_are_the_last_published(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(2);
	assert_non_null(m);
	char text[METRICS_TEXT_MAX];
	assert_true(metrics_render(m, text, sizeof(text), "1", "c") > 0);
	assert_int_equal(value_of(text, "flashgate_reconcile_passes_total"), 0);
	struct metrics_reconcile r = {.passes = 3, .passes_failed = 1, .confirmed = 4, .published = 5,
				      .released = 6, .transfers = 2, .transfer_units = 7};
	metrics_publish_reconcile(m, &r);
	r.passes = 4; /* running totals: a later pass replaces them */
	metrics_publish_reconcile(m, &r);
	assert_true(metrics_render(m, text, sizeof(text), "1", "c") > 0);
	assert_int_equal(value_of(text, "flashgate_reconcile_passes_total"), 4);
	assert_int_equal(value_of(text, "flashgate_reconcile_passes_failed_total"), 1);
	assert_int_equal(value_of(text, "flashgate_reconcile_orders_total{outcome=\"confirmed\"}"), 4);
	assert_int_equal(value_of(text, "flashgate_reconcile_orders_total{outcome=\"published\"}"), 5);
	assert_int_equal(value_of(text, "flashgate_reconcile_orders_total{outcome=\"released\"}"), 6);
	assert_int_equal(value_of(text, "flashgate_reconcile_transfers_total"), 2);
	assert_int_equal(value_of(text, "flashgate_reconcile_transfer_units_total"), 7);
	assert_non_null(strstr(text, "# TYPE flashgate_reconcile_orders_total counter\n"));
	metrics_free(m);
}

static void test_small_buffer_is_refused_not_cut(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(1);
	assert_non_null(m);
	char text[256];
	assert_int_equal(metrics_render(m, text, sizeof(text), "1", "c"), -ENOSPC);
	char big[METRICS_TEXT_MAX];
	int n = metrics_render(m, big, sizeof(big), "1", "c");
	assert_true(n > 0 && n < METRICS_TEXT_MAX / 2); /* room to grow */
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_latency_bucket_bounds_are_inclusive),
		cmocka_unit_test(test_page_sums_the_workers_and_cumulates_buckets),
		cmocka_unit_test(test_reconcile_counters_are_the_last_published),
		cmocka_unit_test(test_small_buffer_is_refused_not_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
