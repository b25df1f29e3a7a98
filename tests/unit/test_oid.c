/* Unit tests for core/oid.c: uniqueness, order and the text form. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/oid.h"

#define T0 1795397103911LL

static void test_monotonic_within_a_burst(void **state)
{
	(void)state;
	struct oid_gen g;
	assert_int_equal(oid_gen_init(&g, 7, 3), 0);
	uint64_t prev = 0;
	/* 5000 ids in the same millisecond: the sequence borrows ahead. */
	for (int i = 0; i < 5000; i++) {
		uint64_t id = oid_next(&g, T0);
		assert_true(id > prev);
		prev = id;
	}
	/* A clock that steps back never repeats or reorders ids. */
	uint64_t id = oid_next(&g, T0 - 10000);
	assert_true(id > prev);
}

/* A new holder of a node id (gateway/lease.h) starts after the bound the
 * last one left, even with its clock behind, and says so in advance. */
static void test_start_after_a_previous_holder(void **state)
{
	(void)state;
	struct oid_gen old, next;
	assert_int_equal(oid_gen_init(&old, 9, 0), 0);
	assert_int_equal(oid_gen_init(&next, 9, 0), 0);
	uint64_t last_old = 0;
	for (int i = 0; i < 300; i++) /* fills T0's sequence and borrows T0 + 1 */
		last_old = oid_next(&old, T0);
	assert_int_equal(oid_gen_last_ms(&old), T0 + 1);
	oid_gen_start_after(&next, oid_gen_last_ms(&old));
	/* Its clock 5 s behind: */
	assert_int_equal(oid_gen_next_ms(&next, T0 - 5000), T0 + 2);
	uint64_t first = oid_next(&next, T0 - 5000);
	assert_true(first > last_old);
	assert_int_equal(oid_gen_last_ms(&next), T0 + 2);
	/* A bound in its past changes nothing. */
	oid_gen_start_after(&next, T0 - 100);
	assert_true(oid_next(&next, T0 - 5000) > first);
	/* Once its clock passes the bound, ids follow the clock again. */
	assert_int_equal(oid_gen_next_ms(&next, T0 + 50), T0 + 50);
}

static void test_distinct_across_workers_and_nodes(void **state)
{
	(void)state;
	struct oid_gen a, b, c;
	assert_int_equal(oid_gen_init(&a, 1, 0), 0);
	assert_int_equal(oid_gen_init(&b, 1, 1), 0);
	assert_int_equal(oid_gen_init(&c, 2, 0), 0);
	for (int i = 0; i < 1000; i++) {
		uint64_t x = oid_next(&a, T0), y = oid_next(&b, T0), z = oid_next(&c, T0);
		assert_true(x != y && y != z && x != z);
	}
	assert_int_equal(oid_gen_init(&a, 1024, 0), -EINVAL);
	assert_int_equal(oid_gen_init(&a, 0, 16), -EINVAL);
}

static void test_sorts_by_time(void **state)
{
	(void)state;
	struct oid_gen late, early;
	assert_int_equal(oid_gen_init(&late, 0, 0), 0);
	assert_int_equal(oid_gen_init(&early, 1023, 15), 0);
	uint64_t e = oid_next(&early, T0), l = oid_next(&late, T0 + 1);
	assert_true(l > e);
	char te[OID_TEXT_LEN + 1], tl[OID_TEXT_LEN + 1];
	oid_format(e, te);
	oid_format(l, tl);
	assert_true(strcmp(tl, te) > 0);
	assert_int_equal(oid_unix_ms(l), T0 + 1);
}

static void test_text_round_trip(void **state)
{
	(void)state;
	char t[OID_TEXT_LEN + 1];
	uint64_t v;
	oid_format(0x00ab0000000000ffULL, t);
	assert_string_equal(t, "00ab0000000000ff");
	assert_int_equal(oid_parse(t, strlen(t), &v), 0);
	assert_true(v == 0x00ab0000000000ffULL);
	assert_int_equal(oid_parse("00AB0000000000FF", 16, &v), -EINVAL);
	assert_int_equal(oid_parse("123", 3, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_monotonic_within_a_burst),
		cmocka_unit_test(test_start_after_a_previous_holder),
		cmocka_unit_test(test_distinct_across_workers_and_nodes),
		cmocka_unit_test(test_sorts_by_time),
		cmocka_unit_test(test_text_round_trip),
	};
	return cmocka_run_group_tests_name("oid", tests, NULL, NULL);
}
