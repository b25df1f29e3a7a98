/* Unit tests for gateway/script.c's decoding of the reserve script's
 * results: each word of its contract, and what is not one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../gateway/script.h"

static struct reserve_result decode(const char *s)
{
	struct reserve_result r;
	script_decode_reserve(s, strlen(s), &r);
	return r;
}

static void test_each_word(void **state)
{
	(void)state;
	assert_int_equal(decode("ok").verdict, RESERVE_OK);
	assert_int_equal(decode("sold_out").verdict, RESERVE_SOLD_OUT);
	assert_int_equal(decode("unknown").verdict, RESERVE_UNKNOWN);
	struct reserve_result r = decode("insufficient:3");
	assert_int_equal(r.verdict, RESERVE_INSUFFICIENT);
	assert_int_equal(r.number, 3);
	r = decode("limit:0");
	assert_int_equal(r.verdict, RESERVE_LIMIT);
	assert_int_equal(r.number, 0);
	r = decode("not_started:1796349600000");
	assert_int_equal(r.verdict, RESERVE_NOT_STARTED);
	assert_true(r.number == 1796349600000LL);
	assert_int_equal(decode("ended:1").verdict, RESERVE_ENDED);
	assert_int_equal(decode("dry:12").number, 12);
	assert_int_equal(decode("buckets:4").verdict, RESERVE_BUCKETS);
	r = decode("dup:0123456789abcdef");
	assert_int_equal(r.verdict, RESERVE_DUP);
	assert_string_equal(r.order_id, "0123456789abcdef");
	assert_int_equal(decode("inflight:0123456789abcdef").verdict, RESERVE_INFLIGHT);
	assert_int_equal(decode("mismatch:0123456789abcdef").verdict, RESERVE_MISMATCH);
}

static void test_what_is_not_a_result(void **state)
{
	(void)state;
	const char *bad[] = {"", "okay", "ok:", "sold_out:1", "insufficient", "insufficient:", "insufficient:x",
			     "limit:-1", "dup:0123", "dup:0123456789abcdef0", "unknownx", "dry:99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct reserve_result r = decode(bad[i]);
		if (r.verdict != RESERVE_BAD)
			fail_msg("'%s' decoded as %d", bad[i], r.verdict);
		assert_string_equal(r.text, bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_word),
		cmocka_unit_test(test_what_is_not_a_result),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
