/* Unit tests for loadgen/trace.c: the three trace formats, renumbering,
 * order and the errors a bad trace gets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../loadgen/trace.h"

static int parse(const char *text, struct trace *t, char *err)
{
	return trace_parse("t", text, strlen(text), t, err, 256);
}

static void test_csv_sorted_and_renumbered(void **state)
{
	(void)state;
	struct trace t;
	char err[256];
	const char *csv = "# a comment\n"
			  "offset_ms,user,sku,qty,key\n"
			  "20.5,bob,iphone,1,k1\n"
			  "0,alice,case,2\n"
			  "10,alice,iphone,1\n"
			  "30,carol,iphone,1,k1\r\n";
	assert_int_equal(parse(csv, &t, err), 0);
	assert_int_equal(t.format, TRACE_CSV);
	assert_int_equal(t.n, 4);
	assert_int_equal(t.users, 3);
	assert_int_equal(t.skus, 2);
	/* by time; users numbered as the file names them (bob 1, alice 2,
	 * carol 3); iphone, the most ordered, is SKU 1 */
	assert_true(t.o[0].at_s == 0 && t.o[0].user == 2 && t.o[0].sku == 2 && t.o[0].qty == 2 && !t.o[0].key);
	assert_true(t.o[1].at_s == 0.01 && t.o[1].user == 2 && t.o[1].sku == 1);
	assert_true(t.o[2].at_s == 0.0205 && t.o[2].user == 1 && t.o[2].sku == 1 && t.o[2].key);
	assert_true(t.o[3].user == 3 && t.o[3].key == t.o[2].key); /* one key, one order */
	assert_true(t.duration_s == 0.03);
	trace_shard(&t, 1, 2); /* user % 2 == 0: alice's orders */
	assert_int_equal(t.n, 2);
	assert_true(t.o[0].user == 2 && t.o[1].user == 2);
	trace_free(&t);
}

static void test_jsonl(void **state)
{
	(void)state;
	struct trace t;
	char err[256];
	const char *jl = "{\"offset_ms\": 5, \"user\": \"u1\", \"sku\": \"s\", \"qty\": 3, \"key\": \"x\"}\n"
			 "\n"
			 "{\"offset_ms\": 1.5, \"user\": \"u2\", \"sku\": \"s\"}\n";
	assert_int_equal(parse(jl, &t, err), 0);
	assert_int_equal(t.format, TRACE_JSONL);
	assert_int_equal(t.n, 2);
	assert_true(t.o[0].at_s == 0.0015 && t.o[0].qty == 1 && t.o[0].user == 2);
	assert_true(t.o[1].qty == 3 && t.o[1].key);
	trace_free(&t);
}

static void test_nginx_combined(void **state)
{
	(void)state;
	struct trace t;
	char err[256];
	const char *log =
		"10.0.0.1 - - [11/Nov/2026:00:00:00.250 +0800] \"POST /v1/orders?sku=tv&qty=2 HTTP/1.1\" 202 60 \"-\" \"app\"\n"
		"10.0.0.2 - - [11/Nov/2026:00:00:00.100 +0800] \"GET /health HTTP/1.1\" 200 2 \"-\" \"lb\"\n"
		"10.0.0.2 - shopper7 [10/Nov/2026:17:00:01 +0100] \"POST /v1/orders HTTP/1.1\" 409 40 \"-\" \"app\"\n"
		"10.0.0.1 - - [11/Nov/2026:00:00:00 +0800] \"POST /v1/orders HTTP/1.1\" 202 60 \"-\" \"app\"\n";
	assert_int_equal(parse(log, &t, err), 0);
	assert_int_equal(t.format, TRACE_NGINX);
	assert_int_equal(t.n, 3);
	assert_int_equal(t.skipped, 1);
	assert_int_equal(t.users, 2); /* 10.0.0.1, and shopper7 by $remote_user */
	/* 00:00:00 +0800 is 16:00:00 UTC; 17:00:01 +0100 is 16:00:01 UTC */
	assert_true(t.o[0].at_s == 0 && t.o[0].sku == 0 && t.o[0].qty == 1);
	assert_true(t.o[1].at_s == 0.25 && t.o[1].sku == 1 && t.o[1].qty == 2);
	assert_true(t.o[2].at_s == 1 && t.o[2].user != t.o[0].user);
	assert_true(t.duration_s == 1);
	trace_free(&t);
}

static void test_bad_traces_name_their_line(void **state)
{
	(void)state;
	struct trace t;
	char err[256];
	const struct {
		const char *text, *why;
	} bad[] = {
		{"0,a,s,1\n5,a,s\n", "t:2: expected offset_ms,user,sku,qty"},
		{"0,a,s,0\n", "t:1: qty must be 1 to 1000000"},
		{"-1,a,s,1\n", "t:1: the offset must be"},
		{"x,a,s,1\n", "t:1: the offset must be"},
		{"0,,s,1\n", "t:1: the user must be"},
		{"{\"offset_ms\": 1}\n", "t:1: expected {"},
		{"{\"offset_ms\": 1, \"user\": \"a\", \"sku\": \"b\"}\n{oops\n", "t:2: not a JSON object"},
		{"1.2.3.4 - - [11/Nov/2026:00:00:00 +0800] \"POST /v1/orders\" 1\n1.2.3.4 - - [99/Foo/2026] \"x\"\n",
		 "t:2: the time is not"},
		{"# only a comment\n", "t: no orders"},
		{"1.2.3.4 - - [11/Nov/2026:00:00:00 +0800] \"GET / HTTP/1.1\" 200\n", "t: no orders"},
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[k].text, &t, err), -EINVAL);
		if (!strstr(err, bad[k].why)) {
			print_error("trace %zu: got '%s', want '%s'\n", k, err, bad[k].why);
			fail();
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_sorted_and_renumbered),
		cmocka_unit_test(test_jsonl),
		cmocka_unit_test(test_nginx_combined),
		cmocka_unit_test(test_bad_traces_name_their_line),
	};
	return cmocka_run_group_tests_name("trace", tests, NULL, NULL);
}
