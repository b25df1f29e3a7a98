/* Unit tests for core/order.c: request validation and the record codec. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/order.h"

static int parse(const char *body, struct order_req *o, struct order_error *e)
{
	return order_parse_request(body, strlen(body), 10, true, o, e);
}

static void expect_field(const char *body, const char *field)
{
	struct order_req o;
	struct order_error e = {0};
	assert_int_equal(parse(body, &o, &e), -EINVAL);
	assert_string_equal(e.field, field);
	assert_non_null(e.why);
}

static void test_valid(void **state)
{
	(void)state;
	struct order_req o;
	struct order_error e;
	assert_int_equal(parse(" { \"user_id\" : \"u-1\", \"sku\":\"hk:1.a_b\",\n\"qty\": 2 } ", &o, &e), 0);
	assert_string_equal(o.user_id, "u-1");
	assert_int_equal(o.user_len, 3);
	assert_string_equal(o.sku, "hk:1.a_b");
	assert_int_equal(o.qty, 2);
	/* order of fields does not matter */
	assert_int_equal(parse("{\"qty\":10,\"sku\":\"s\",\"user_id\":\"u\"}", &o, &e), 0);
	assert_int_equal(o.qty, 10);
}

static void test_missing_fields(void **state)
{
	(void)state;
	expect_field("{\"sku\":\"s\",\"qty\":1}", "user_id");
	expect_field("{\"user_id\":\"u\",\"qty\":1}", "sku");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\"}", "qty");
}

static void test_user_id_optional_with_a_token(void **state)
{
	(void)state;
	struct order_req o;
	struct order_error e;
	const char *b = "{\"sku\":\"s1\",\"qty\":2}";
	assert_int_equal(order_parse_request(b, strlen(b), 10, true, &o, &e), -EINVAL);
	assert_string_equal(e.field, "user_id");
	assert_int_equal(order_parse_request(b, strlen(b), 10, false, &o, &e), 0);
	assert_int_equal(o.user_len, 0);
	assert_int_equal(o.qty, 2);
	b = "{\"user_id\":\"u:1\",\"sku\":\"s1\",\"qty\":2}";
	assert_int_equal(order_parse_request(b, strlen(b), 10, false, &o, &e), 0);
	assert_string_equal(o.user_id, "u:1");
}

static void test_bad_qty(void **state)
{
	(void)state;
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":0}", "qty");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":11}", "qty");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":-1}", "qty");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":1.5}", "qty");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":\"1\"}", "qty");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":01}", "qty");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":99999999999999999999999}", "qty");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":true}", "qty");
}

static void test_bad_identifiers(void **state)
{
	(void)state;
	expect_field("{\"user_id\":\"\",\"sku\":\"s\",\"qty\":1}", "user_id");
	expect_field("{\"user_id\":\"a b\",\"sku\":\"s\",\"qty\":1}", "user_id");
	expect_field("{\"user_id\":\"u\",\"sku\":\"{s}\",\"qty\":1}", "sku");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\\n\",\"qty\":1}", "sku");
	expect_field("{\"user_id\":7,\"sku\":\"s\",\"qty\":1}", "user_id");
	/* An escaped string is a string: the reason names the characters. */
	struct order_req o;
	struct order_error e = {0};
	assert_int_equal(parse("{\"user_id\":\"u\\u0031\",\"sku\":\"s\",\"qty\":1}", &o, &e), -EINVAL);
	assert_string_equal(e.field, "user_id");
	assert_non_null(strstr(e.why, "characters of"));
	assert_int_equal(parse("{\"user_id\":7,\"sku\":\"s\",\"qty\":1}", &o, &e), -EINVAL);
	assert_string_equal(e.why, "must be a string");
	char body[256];
	char longid[66];
	memset(longid, 'a', 65);
	longid[65] = '\0';
	snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"sku\":\"s\",\"qty\":1}", longid);
	expect_field(body, "user_id");
	longid[64] = '\0';
	snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"sku\":\"s\",\"qty\":1}", longid);
	assert_int_equal(parse(body, &o, &e), 0);
	assert_int_equal(o.user_len, 64);
}

static void test_malformed_bodies(void **state)
{
	(void)state;
	expect_field("", "body");
	expect_field("[]", "body");
	expect_field("{", "body");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":1", "body");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":1}x", "body");
	expect_field("{\"user_id\":\"u\" \"sku\":\"s\",\"qty\":1}", "body");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":1,\"extra\":2}", "body");
	expect_field("{\"user_id\":\"u\",\"user_id\":\"v\",\"sku\":\"s\",\"qty\":1}", "user_id");
	expect_field("{\"user_id\":\"u\",\"sku\":\"s\",\"qty\":1,}", "body");
}

static void test_record_round_trip(void **state)
{
	(void)state;
	struct order_record in = {.order_id = 0x0123456789abcdefULL, .user_id = "u-9", .sku = "hk1",
				  .qty = 3, .accepted_at_ms = 1795397103911LL, .node_id = 1023};
	char buf[ORDER_RECORD_MAX];
	int n = order_encode_record(buf, sizeof(buf), &in);
	assert_true(n > 0);
	assert_string_equal(buf, "{\"order_id\":\"0123456789abcdef\",\"user_id\":\"u-9\",\"sku\":\"hk1\","
				 "\"qty\":3,\"accepted_at_ms\":1795397103911,\"node_id\":1023}");
	struct order_record out;
	assert_int_equal(order_decode_record(buf, (size_t)n, &out), 0);
	assert_memory_equal(&in.order_id, &out.order_id, sizeof(in.order_id));
	assert_string_equal(out.user_id, "u-9");
	assert_string_equal(out.sku, "hk1");
	assert_int_equal(out.qty, 3);
	assert_int_equal(out.accepted_at_ms, in.accepted_at_ms);
	assert_int_equal(out.node_id, 1023);
	assert_string_equal(out.idempotency_key, "");
	assert_int_equal(order_encode_record(buf, 20, &in), -ENOSPC);
	/* The room is exact: the record and its NUL. */
	assert_int_equal(order_encode_record(buf, (size_t)n + 1, &in), n);
	assert_int_equal(order_encode_record(buf, (size_t)n, &in), -ENOSPC);
	assert_int_equal(order_decode_record("{\"order_id\":\"xyz\"}", 18, &out), -EINVAL);
}

/* The key rides along when there is one, and the longest record still fits. */
static void test_record_with_key(void **state)
{
	(void)state;
	struct order_record in = {.order_id = 42, .qty = 1, .accepted_at_ms = 1, .node_id = 7};
	memset(in.user_id, 'u', ORDER_ID_MAX);
	memset(in.sku, 's', ORDER_ID_MAX);
	memset(in.idempotency_key, 'k', ORDER_ID_MAX);
	in.qty = UINT32_MAX;
	in.accepted_at_ms = INT64_MAX;
	char buf[ORDER_RECORD_MAX];
	int n = order_encode_record(buf, sizeof(buf), &in);
	assert_true(n > 0);
	struct order_record out;
	assert_int_equal(order_decode_record(buf, (size_t)n, &out), 0);
	assert_string_equal(out.idempotency_key, in.idempotency_key);
	assert_string_equal(out.user_id, in.user_id);
	const char *bad = "{\"order_id\":\"000000000000002a\",\"user_id\":\"u\",\"sku\":\"s\",\"qty\":1,"
			  "\"accepted_at_ms\":1,\"node_id\":7,\"idempotency_key\":\"no/slash\"}";
	assert_int_equal(order_decode_record(bad, strlen(bad), &out), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_user_id_optional_with_a_token),
		cmocka_unit_test(test_bad_qty),
		cmocka_unit_test(test_bad_identifiers),
		cmocka_unit_test(test_malformed_bodies),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_with_key),
	};
	return cmocka_run_group_tests_name("order", tests, NULL, NULL);
}
