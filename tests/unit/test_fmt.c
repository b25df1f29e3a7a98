/* Unit tests for core/fmt.h: decimal integers without printf. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/fmt.h"

/* Each value must read as printf would write it, and nothing past the
 * returned end may be touched. */
static void test_unsigned(void **state)
{
	(void)state;
	const uint64_t values[] = {0, 7, 10, 99, 100, 4294967295u, 1234567890123ULL, UINT64_MAX};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char got[FMT_U64_MAX + 4], want[32];
		memset(got, 'x', sizeof(got));
		size_t n = (size_t)(fmt_u64(got, values[i]) - got);
		snprintf(want, sizeof(want), "%" PRIu64, values[i]);
		assert_int_equal(n, strlen(want));
		assert_memory_equal(got, want, n);
		assert_int_equal(got[n], 'x');
	}
}

static void test_signed(void **state)
{
	(void)state;
	const int64_t values[] = {0, -1, 1, -10, 1795397103911LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char got[FMT_I64_MAX + 4], want[32];
		memset(got, 'x', sizeof(got));
		size_t n = (size_t)(fmt_i64(got, values[i]) - got);
		snprintf(want, sizeof(want), "%" PRId64, values[i]);
		assert_int_equal(n, strlen(want));
		assert_true(n <= FMT_I64_MAX);
		assert_memory_equal(got, want, n);
		assert_int_equal(got[n], 'x');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unsigned),
		cmocka_unit_test(test_signed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
