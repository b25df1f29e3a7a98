/* Unit tests for core/bucket.c: tags, home buckets, the initial split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/bucket.h"

static void test_tags(void **state)
{
	(void)state;
	char tag[BKT_TAG_MAX];
	bkt_tag(tag, "sku-1", 0);
	assert_string_equal(tag, "sku-1"); /* K = 1 keeps the unsharded layout */
	bkt_tag(tag, "sku-1", 13);
	assert_string_equal(tag, "sku-1#13");
	char longest[ORDER_ID_MAX + 1];
	memset(longest, 'x', ORDER_ID_MAX);
	longest[ORDER_ID_MAX] = '\0';
	bkt_tag(tag, longest, BKT_MAX - 1);
	assert_int_equal(strlen(tag), ORDER_ID_MAX + 3);
	assert_string_equal(tag + ORDER_ID_MAX, "#63");
}

/* The home bucket is part of the data layout in Redis: every gateway, and
 * the integration tests' copy in Python, must compute the same one. */
static void test_home_is_fixed_fnv1a(void **state)
{
	(void)state;
	static const unsigned want[8] = {0, 3, 6, 9, 12, 15, 2, 5};
	char user[8];
	for (unsigned i = 0; i < 8; i++) {
		size_t n = (size_t)snprintf(user, sizeof(user), "u%u", i);
		assert_int_equal(bkt_home(user, n, 16), want[i]);
	}
	assert_int_equal(bkt_home("alice", 5, 4), 3);
	assert_int_equal(bkt_home("bob", 3, 64), 20);
	assert_int_equal(bkt_home("anyone", 6, 1), 0);
}

static void test_shares_sum_to_the_stock(void **state)
{
	(void)state;
	static const unsigned long long stocks[] = {0, 1, 15, 16, 17, 997, 1000000000001ull};
	static const unsigned ks[] = {1, 4, 16, 64};
	for (size_t s = 0; s < sizeof(stocks) / sizeof(stocks[0]); s++) {
		for (size_t j = 0; j < sizeof(ks) / sizeof(ks[0]); j++) {
			unsigned long long sum = 0, lo = ~0ull, hi = 0;
			for (unsigned i = 0; i < ks[j]; i++) {
				unsigned long long v = bkt_share(stocks[s], ks[j], i);
				sum += v;
				lo = v < lo ? v : lo;
				hi = v > hi ? v : hi;
			}
			assert_true(sum == stocks[s]);
			assert_true(hi - lo <= 1);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_home_is_fixed_fnv1a),
		cmocka_unit_test(test_shares_sum_to_the_stock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
