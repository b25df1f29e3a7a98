/* Unit tests for loadgen/jobs.c: the due FIFO keeps order across growth,
 * the retry heap releases jobs by time, slots are reused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../loadgen/jobs.h"

static void test_queue_keeps_order_across_growth(void **state)
{
	(void)state;
	struct jobs j;
	jobs_init(&j);
	/* Interleave pops so the ring wraps before it grows. */
	uint32_t next_in = 0, next_out = 0;
	for (int round = 0; round < 5000; round++) {
		for (int k = 0; k < 3; k++)
			assert_int_equal(jobs_push(&j, (struct job){.slot = next_in++}), 0);
		assert_int_equal(jobs_pop(&j).slot, next_out++);
	}
	while (jobs_queued(&j))
		assert_int_equal(jobs_pop(&j).slot, next_out++);
	assert_int_equal(next_out, next_in);
	jobs_free(&j);
}

static void test_deferred_jobs_come_due_in_time_order(void **state)
{
	(void)state;
	struct jobs j;
	jobs_init(&j);
	uint64_t x = 88172645463325252ULL;
	for (int i = 0; i < 3000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		assert_int_equal(jobs_defer(&j, (struct job){.slot = (uint32_t)i, .intended_ns = (int64_t)(x % 1000000)}), 0);
	}
	assert_int_equal(jobs_release_due(&j, 499999), 0);
	size_t early = jobs_queued(&j);
	assert_true(early > 0 && early < 3000);
	assert_int_equal(jobs_deferred(&j) + early, 3000);
	int64_t last = -1;
	while (jobs_queued(&j)) {
		struct job job = jobs_pop(&j);
		assert_true(job.intended_ns >= last && job.intended_ns <= 499999);
		last = job.intended_ns;
	}
	assert_true(jobs_next_deferred_ns(&j) >= 500000);
	assert_int_equal(jobs_release_due(&j, INT64_MAX), 0);
	assert_int_equal(jobs_deferred(&j), 0);
	assert_int_equal(jobs_queued(&j), 3000 - early);
	jobs_free(&j);
}

static void test_slots_are_reused(void **state)
{
	(void)state;
	struct jobs j;
	uint32_t a, b, c;
	jobs_init(&j);
	assert_int_equal(jobs_slot_new(&j, &a), 0);
	assert_int_equal(jobs_slot_new(&j, &b), 0);
	assert_int_not_equal(a, b);
	jobs_slot_free(&j, a);
	assert_int_equal(jobs_slot_new(&j, &c), 0);
	assert_int_equal(c, a);
	for (int i = 0; i < 5000; i++) /* grows past the first block, keeping old slots */
		assert_int_equal(jobs_slot_new(&j, &c), 0);
	jobs_slot(&j, b)->attempts = 7;
	assert_int_equal(jobs_slot(&j, b)->attempts, 7);
	jobs_free(&j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_keeps_order_across_growth),
		cmocka_unit_test(test_deferred_jobs_come_due_in_time_order),
		cmocka_unit_test(test_slots_are_reused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
