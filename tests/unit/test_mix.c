/* Unit tests for loadgen/mix.c: request bytes and answer outcomes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../loadgen/mix.h"
#include "../../loadgen/tokens.h"

static void test_order_request_bytes(void **state)
{
	(void)state;
	struct lg_profile p;
	struct mix_host h;
	char buf[MIX_REQ_MAX + 1];
	prof_defaults(&p);
	mix_host_init(&h, "127.0.0.1", 18080);
	struct mix_order o = {.user = 42, .sku = 7, .qty = 2, .key = "fl1-0-9"};
	size_t n = mix_order_request(buf, &h, &p, &o, (struct mix_auth){0});
	buf[n] = '\0';
	assert_string_equal(buf, "POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n"
				 "Content-Type: application/json\r\nIdempotency-Key: fl1-0-9\r\n"
				 "Content-Length: 38\r\n\r\n{\"user_id\":\"u42\",\"sku\":\"sku7\",\"qty\":2}");
	o.key[0] = '\0';
	n = mix_order_request(buf, &h, &p, &o, (struct mix_auth){0});
	buf[n] = '\0';
	assert_null(strstr(buf, "Idempotency-Key"));
	assert_null(strstr(buf, "Authorization"));
	/* the longest token tokens.h makes, with a key: still fits */
	static char tok[TOKENS_TOKEN_MAX];
	memset(tok, 'x', sizeof(tok) - 1);
	strcpy(o.key, "fl0123456789-0123456789-012345678901234");
	n = mix_order_request(buf, &h, &p, &o, (struct mix_auth){.tok = tok, .len = sizeof(tok) - 1});
	assert_true(n <= MIX_REQ_MAX);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\r\nAuthorization: Bearer xxx"));
}

/* Every malformed kind fits the buffer, and the body matches its length. */
static void test_malformed_requests(void **state)
{
	(void)state;
	struct lg_profile p;
	struct mix_host h;
	char buf[MIX_REQ_MAX + 1];
	prof_defaults(&p);
	mix_host_init(&h, "localhost", 1);
	for (int k = 0; k < MAL_KINDS; k++) {
		size_t n = mix_malformed_request(buf, &h, &p, (enum prof_malformed)k, 123456789, (struct mix_auth){0});
		assert_true(n > 0 && n <= MIX_REQ_MAX);
		buf[n] = '\0';
		const char *body = strstr(buf, "\r\n\r\n");
		assert_non_null(body);
		const char *cl = strstr(buf, "Content-Length: ");
		if (k == MAL_WRONG_METHOD) {
			assert_true(strncmp(buf, "GET ", 4) == 0);
			assert_null(cl);
		} else if (k == MAL_OVERSIZED || k == MAL_BAD_LENGTH) {
			assert_string_equal(body, "\r\n\r\n"); /* the head alone */
		} else {
			assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body + 4));
		}
	}
	size_t n = mix_malformed_request(buf, &h, &p, MAL_MISSING_FIELD, 1, (struct mix_auth){0});
	buf[n] = '\0';
	assert_null(strstr(buf, "\"sku\""));
}

static enum lg_outcome classify(const char *raw)
{
	struct resp rs;
	assert_true(resp_parse(raw, strlen(raw), &rs) > 0);
	return mix_classify(&rs);
}


static enum lg_outcome answer(const char *status_line, const char *body)
{
	static char raw[512];
	snprintf(raw, sizeof(raw), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n\r\n%s", status_line,
		 strlen(body), body);
	return classify(raw);
}

static void test_outcomes(void **state)
{
	(void)state;
	assert_int_equal(answer("202 Accepted", "{\"order_id\":\"1\",\"status\":\"accepted\"}"), LG_ACCEPTED);
	assert_int_equal(answer("200 OK", "{\"order_id\":\"1\",\"status\":\"accepted\"}"), LG_DUPLICATE);
	assert_int_equal(answer("409 Conflict", "{\"status\":\"sold_out\"}"), LG_SOLD_OUT);
	assert_int_equal(answer("409 Conflict", "{\"status\":\"insufficient_stock\",\"available\":1}"), LG_SOLD_OUT);
	assert_int_equal(answer("409 Conflict", "{\"status\":\"limit_exceeded\",\"remaining\":0}"), LG_LIMIT);
	assert_int_equal(answer("409 Conflict", "{\"status\":\"in_progress\",\"order_id\":\"1\"}"), LG_IN_PROGRESS);
	assert_int_equal(answer("425 Too Early", "{\"status\":\"not_started\"}"), LG_WINDOW);
	assert_int_equal(answer("403 Forbidden", "{\"status\":\"ended\"}"), LG_WINDOW);
	assert_int_equal(answer("403 Forbidden", "{\"status\":\"forbidden\",\"reason\":\"user_mismatch\"}"),
			 LG_FORBIDDEN);
	assert_int_equal(answer("401 Unauthorized", "{\"status\":\"unauthorized\",\"reason\":\"expired\"}"),
			 LG_UNAUTHORIZED);
	assert_int_equal(answer("429 Too Many Requests", "{\"status\":\"too_many_requests\"}"), LG_THROTTLED);
	assert_false(mix_retryable(LG_THROTTLED) || mix_retryable(LG_UNAUTHORIZED));
	assert_int_equal(answer("422 Unprocessable Content", "{}"), LG_BAD_REQUEST);
	assert_int_equal(answer("404 Not Found", "{}"), LG_NOT_FOUND);
	assert_int_equal(answer("503 Service Unavailable", "{}"), LG_UNAVAILABLE);
	assert_int_equal(answer("500 Internal Server Error", ""), LG_OTHER_STATUS);
	assert_true(mix_retryable(LG_UNAVAILABLE) && mix_retryable(LG_TIMEOUT) &&
		    mix_retryable(LG_CONN_ERROR) && mix_retryable(LG_IN_PROGRESS));
	assert_false(mix_retryable(LG_SOLD_OUT) || mix_retryable(LG_ACCEPTED));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_request_bytes),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_outcomes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
