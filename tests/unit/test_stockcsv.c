/* Unit tests for core/stockcsv.c: the stock file's format. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/stockcsv.h"

/* Reads text as a file would be read; returns stockcsv_read's result. */
static int read_text(struct stockcsv *s, const char *text)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(f);
	int rc = stockcsv_read(s, f);
	fclose(f);
	return rc;
}

/* text is refused at line with a reason containing why. */
static void expect_refused(const char *text, unsigned line, const char *why)
{
	struct stockcsv *s = stockcsv_new();
	assert_non_null(s);
	assert_int_equal(read_text(s, text), -EINVAL);
	unsigned got;
	const char *msg = stockcsv_error(s, &got);
	if (!strstr(msg, why))
		fail_msg("'%s' does not say '%s'", msg, why);
	assert_int_equal(got, line);
	stockcsv_free(s);
}

static void test_rows_in_file_order(void **state)
{
	(void)state;
	struct stockcsv *s = stockcsv_new();
	assert_non_null(s);
	assert_int_equal(read_text(s, "# a comment\r\nsku,stock,per_user_limit\r\n\r\nhot1,100,2\r\nb.2:x-y_z,0,1"),
			 0);
	size_t n;
	const struct stock_row *r = stockcsv_rows(s, &n);
	assert_int_equal(n, 2);
	assert_string_equal(r[0].sku, "hot1");
	assert_int_equal(r[0].stock, 100);
	assert_int_equal(r[0].limit, 2);
	assert_int_equal(r[0].line, 4);
	assert_string_equal(r[1].sku, "b.2:x-y_z");
	assert_int_equal(r[1].stock, 0);
	assert_int_equal(r[1].starts, 0);
	assert_int_equal(r[1].line, 5);
	stockcsv_free(s);
}

static void test_sale_windows(void **state)
{
	(void)state;
	struct stockcsv *s = stockcsv_new();
	assert_non_null(s);
	assert_int_equal(read_text(s, "sku,stock,per_user_limit,starts_at_ms,ends_at_ms\n"
				      "a,1,1,1000,2000\nb,1,1,,2000\nc,1,1,1000,\n"),
			 0);
	size_t n;
	const struct stock_row *r = stockcsv_rows(s, &n);
	assert_int_equal(n, 3);
	assert_int_equal(r[0].starts, 1000);
	assert_int_equal(r[0].ends, 2000);
	assert_int_equal(r[1].starts, 0);
	assert_int_equal(r[2].ends, 0);
	stockcsv_free(s);
	expect_refused("sku,stock,per_user_limit,starts_at_ms,ends_at_ms\na,1,1,2000,2000\n", 2, "end after the start");
	expect_refused("sku,stock,per_user_limit,starts_at_ms,ends_at_ms\na,1,1,x,\n", 2, "Unix milliseconds");
	/* A sixth column was once read as part of the fifth, and dropped. */
	expect_refused("sku,stock,per_user_limit,starts_at_ms,ends_at_ms\na,1,1,1,2,3\n", 2, "expected 5 columns");
	expect_refused("sku,stock,per_user_limit,starts_at_ms,ends_at_ms\na,1,1,1,2,\n", 2, "expected 5 columns");
}

static void test_bad_rows_name_their_line(void **state)
{
	(void)state;
	expect_refused("", 0, "empty (expected the header");
	expect_refused("# only a comment\n", 0, "empty");
	expect_refused("sku,stock\n", 1, "expected the header");
	expect_refused("sku,stock,per_user_limit\na,1\n", 2, "expected 3 columns");
	expect_refused("sku,stock,per_user_limit\na,1,1,1\n", 2, "expected 3 columns");
	expect_refused("sku,stock,per_user_limit\na b,1,1\n", 2, "sku 'a b' must be 1-64 characters");
	expect_refused("sku,stock,per_user_limit\n,1,1\n", 2, "sku '' must be");
	expect_refused("sku,stock,per_user_limit\na,-3,1\n", 2, "stock '-3' must be an integer 0..1000000000000");
	expect_refused("sku,stock,per_user_limit\na,1000000000001,1\n", 2, "stock '1000000000001'");
	expect_refused("sku,stock,per_user_limit\na,1,0\n", 2, "per_user_limit '0' must be an integer 1..");
	expect_refused("sku,stock,per_user_limit\na,1,1x\n", 2, "per_user_limit '1x'");
	expect_refused("sku,stock,per_user_limit\na,99999999999999999999,1\n", 2, "stock '99999999999999999999'");
}

static void test_a_sku_twice_names_both_lines(void **state)
{
	(void)state;
	expect_refused("sku,stock,per_user_limit\na,1,1\nb,1,1\n# c\na,2,1\n", 5,
		       "sku 'a' appears twice (first on line 2)");
}

/* Enough rows to grow the index several times: every duplicate is still
 * found, and every distinct SKU kept. */
static void test_many_rows(void **state)
{
	(void)state;
	enum { N = 100000 };
	struct stockcsv *s = stockcsv_new();
	assert_non_null(s);
	char line[64] = "sku,stock,per_user_limit";
	assert_int_equal(stockcsv_line(s, line), 0);
	for (int i = 0; i < N; i++) {
		snprintf(line, sizeof(line), "sku%d,%d,1", i, i);
		assert_int_equal(stockcsv_line(s, line), 0);
	}
	for (int i = 0; i < N; i += 9973) {
		snprintf(line, sizeof(line), "sku%d,1,1", i);
		assert_int_equal(stockcsv_line(s, line), -EINVAL);
		unsigned at;
		char want[64];
		snprintf(want, sizeof(want), "(first on line %d)", i + 2);
		assert_non_null(strstr(stockcsv_error(s, &at), want));
	}
	assert_int_equal(stockcsv_end(s), 0);
	size_t n;
	const struct stock_row *r = stockcsv_rows(s, &n);
	assert_int_equal(n, N);
	assert_string_equal(r[N - 1].sku, "sku99999");
	assert_int_equal(r[N - 1].stock, N - 1);
	stockcsv_free(s);
}

static void test_line_length(void **state)
{
	(void)state;
	char text[1200];
	/* At the limit: refused for its SKU, not its length. */
	int n = snprintf(text, sizeof(text), "sku,stock,per_user_limit\n");
	memset(text + n, 'a', STOCKCSV_LINE_MAX - 4);
	strcpy(text + n + STOCKCSV_LINE_MAX - 4, ",1,1");
	expect_refused(text, 2, "must be 1-64 characters");
	/* One more byte: too long, through the reader and the line call alike. */
	memset(text + n, 'a', STOCKCSV_LINE_MAX + 1);
	strcpy(text + n + STOCKCSV_LINE_MAX + 1, "\n");
	expect_refused(text, 2, "line too long");
	text[n + STOCKCSV_LINE_MAX + 1] = '\0';
	struct stockcsv *s = stockcsv_new();
	assert_non_null(s);
	char header[] = "sku,stock,per_user_limit";
	assert_int_equal(stockcsv_line(s, header), 0);
	assert_int_equal(stockcsv_line(s, text + n), -EINVAL);
	unsigned at;
	assert_string_equal(stockcsv_error(s, &at), "line too long");
	stockcsv_free(s);
}

static void test_u64(void **state)
{
	(void)state;
	unsigned long long v;
	assert_int_equal(stockcsv_u64("0", 5, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(stockcsv_u64("5", 5, &v), 0);
	assert_int_equal(stockcsv_u64("6", 5, &v), -EINVAL);
	assert_int_equal(stockcsv_u64("", 5, &v), -EINVAL);
	assert_int_equal(stockcsv_u64("+1", 5, &v), -EINVAL);
	assert_int_equal(stockcsv_u64(" 1", 5, &v), -EINVAL);
	assert_int_equal(stockcsv_u64("1 ", 5, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows_in_file_order),
		cmocka_unit_test(test_sale_windows),
		cmocka_unit_test(test_bad_rows_name_their_line),
		cmocka_unit_test(test_a_sku_twice_names_both_lines),
		cmocka_unit_test(test_many_rows),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_u64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
