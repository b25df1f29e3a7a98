/* Unit tests for core/rcl.c's key hashing: the slot a key belongs to must
 * be the one Redis Cluster computes, or commands go to the wrong master.
 * The expected values were read from a real cluster (CLUSTER KEYSLOT). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/rcl.h"

static unsigned slot(const char *key)
{
	return rcl_slot(key, strlen(key));
}

static void test_slots_match_redis(void **state)
{
	(void)state;
	assert_int_equal(slot("somekey"), 11058);
	assert_int_equal(slot("foo{hash_tag}"), 2515);
	assert_int_equal(slot("bar{hash_tag}"), 2515);
	assert_int_equal(slot("fg:{d11-1#7}:pending"), 5907);
	/* Only the first {...} counts; an empty one or an unclosed one means
	 * the whole key is hashed. */
	assert_int_equal(slot("a{b}c{d}"), 3300);
	assert_int_equal(slot("foo{}bar"), 14292);
	assert_int_equal(slot("{}foo"), 9500);
	assert_int_equal(slot("{a"), 10276);
}

/* Every key of one SKU bucket lands in one slot, so one script may touch
 * them all on a cluster. */
static void test_a_buckets_keys_share_its_slot(void **state)
{
	(void)state;
	unsigned s = slot("fg:{hot#3}");
	assert_int_equal(slot("fg:{hot#3}:users"), s);
	assert_int_equal(slot("fg:{hot#3}:pending"), s);
	assert_int_equal(slot("fg:{hot#3}:idem:u1:k-1"), s);
	assert_int_equal(slot("fg:{hot#3}:xin:0000000000000001:2"), s);
	assert_int_equal(slot("hot#3"), s); /* resv routes by the bare tag */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots_match_redis),
		cmocka_unit_test(test_a_buckets_keys_share_its_slot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
