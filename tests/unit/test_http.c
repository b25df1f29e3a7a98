/* Unit tests for core/http.c: the strict request-head parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/http.h"

static const struct http_limits limits = {
	.max_head_bytes = 1024, .max_headers = 8, .max_body_bytes = 100};

static int parse(const char *s, struct http_request *req)
{
	return http_parse_request(s, strlen(s), &limits, req);
}

static void expect_error(const char *s, unsigned status)
{
	struct http_request req;
	int rc = parse(s, &req);
	assert_int_equal(rc, -EBADMSG);
	assert_int_equal(req.error_status, status);
	assert_non_null(req.error_reason);
}

static void test_simple_post(void **state)
{
	(void)state;
	const char *s = "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"a\":1}";
	struct http_request req;
	int rc = parse(s, &req);
	assert_int_equal(rc, (int)(strstr(s, "\r\n\r\n") - s + 4));
	assert_int_equal(req.method, HTTP_METHOD_POST);
	assert_int_equal(req.path_len, 10);
	assert_memory_equal(req.path, "/v1/orders", 10);
	assert_int_equal(req.content_length, 12);
	assert_true(req.keep_alive);
	assert_int_equal(req.minor_version, 1);
}

static void test_incomplete_at_every_split(void **state)
{
	(void)state;
	const char *s = "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	struct http_request req;
	for (size_t n = 0; n < strlen(s); n++)
		assert_int_equal(http_parse_request(s, n, &limits, &req), HTTP_INCOMPLETE);
	assert_int_equal(parse(s, &req), (int)strlen(s));
	assert_false(req.keep_alive);
	assert_int_equal(req.method, HTTP_METHOD_GET);
}

static void test_pipelined_heads(void **state)
{
	(void)state;
	const char *s = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http_request req;
	int first = parse(s, &req);
	assert_true(first > 0);
	assert_memory_equal(req.path, "/a", 2);
	assert_int_equal(http_parse_request(s + first, strlen(s) - (size_t)first, &limits, &req),
			 (int)strlen(s) - first);
	assert_memory_equal(req.path, "/b", 2);
}

static void test_http10_defaults_to_close(void **state)
{
	(void)state;
	struct http_request req;
	assert_true(parse("GET / HTTP/1.0\r\n\r\n", &req) > 0);
	assert_false(req.keep_alive);
	assert_true(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &req) > 0);
	assert_true(req.keep_alive);
}

static void test_expect_and_idempotency_key(void **state)
{
	(void)state;
	struct http_request req;
	assert_true(parse("POST /v1/orders HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
			  "Idempotency-Key: k-1\r\nContent-Length: 5\r\n\r\n", &req) > 0);
	assert_true(req.expect_continue);
	assert_int_equal(req.idempotency_key_len, 3);
	assert_memory_equal(req.idempotency_key, "k-1", 3);
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\n", 417);
}

static void test_smuggling_defences(void **state)
{
	(void)state;
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400);
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400);
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
	expect_error("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400);     /* obs-fold */
	expect_error("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);                   /* space before colon */
	expect_error("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);                      /* bare LF */
	expect_error("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400);                 /* bare CR */
	expect_error("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400);                /* control byte */
	/* The same Content-Length twice is allowed (RFC 9110 8.6). */
	struct http_request req;
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", &req) > 0);
	assert_int_equal(req.content_length, 5);
}

static void test_bad_request_lines(void **state)
{
	(void)state;
	expect_error("GET\r\n\r\n", 400);
	expect_error("GET /\r\n\r\n", 400);
	expect_error("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
	expect_error("GET / FTP/1.1\r\nHost: a\r\n\r\n", 400);
	expect_error("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\n\r\n", 400); /* no Host */
	expect_error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\nIdempotency-Key: k2\r\n\r\n", 400);
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\nIdempotency-Key: k1\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nAuthorization: Bearer y\r\n\r\n", 400);
}

static void test_limits(void **state)
{
	(void)state;
	char big[2048];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	struct http_request req;
	assert_int_equal(http_parse_request(big, sizeof(big), &limits, &req), -EBADMSG);
	assert_int_equal(req.error_status, 431);
	expect_error("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n", 431);
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413);
}

static void test_leading_empty_lines_ignored(void **state)
{
	(void)state;
	struct http_request req;
	const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(parse(s, &req), (int)strlen(s));
}

/* 20 KB of CRLF used to wait for a request line until the request timeout:
 * refused as soon as there are more empty lines than the parser tolerates,
 * also before the rest arrives. */
static void test_a_flood_of_empty_lines_is_refused_at_once(void **state)
{
	(void)state;
	static char flood[20 * 1024 + 64];
	struct http_request req;
	for (size_t i = 0; i + 1 < 20 * 1024; i += 2)
		memcpy(flood + i, "\r\n", 2);
	assert_int_equal(http_parse_request(flood, 20 * 1024, &limits, &req), -EBADMSG);
	assert_int_equal(req.error_status, 400);
	/* the most it tolerates still parses */
	char ok[2 * HTTP_MAX_EMPTY_LINES + 64] = "";
	for (int i = 0; i < HTTP_MAX_EMPTY_LINES; i++)
		strcat(ok, "\r\n");
	strcat(ok, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(parse(ok, &req), (int)strlen(ok));
	/* one more, even with nothing after it yet, is refused */
	char over[2 * HTTP_MAX_EMPTY_LINES + 4] = "";
	for (int i = 0; i <= HTTP_MAX_EMPTY_LINES; i++)
		strcat(over, "\r\n");
	assert_int_equal(parse(over, &req), -EBADMSG);
}

/* RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored. */
static void test_expect_is_ignored_from_http10(void **state)
{
	(void)state;
	struct http_request req;
	assert_true(parse("POST /v1/orders HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
			  &req) > 0);
	assert_false(req.expect_continue);
	assert_int_equal(req.minor_version, 0);
}

static void expect_path(const char *target, const char *path)
{
	char s[256];
	snprintf(s, sizeof(s), "POST %s HTTP/1.1\r\nHost: a\r\n\r\n", target);
	struct http_request req;
	assert_int_equal(parse(s, &req), (int)strlen(s));
	assert_int_equal(req.path_len, strlen(path));
	assert_memory_equal(req.path, path, strlen(path));
}

static void test_absolute_form_is_routed_by_its_path(void **state)
{
	(void)state;
	expect_path("http://gw.example:8080/v1/orders", "/v1/orders");
	expect_path("HTTPS://gw/admin/v1/metrics?x=1", "/admin/v1/metrics?x=1");
	expect_path("http://gw", "/");
	expect_path("http://gw?q=1", "/");
	expect_path("/v1/orders", "/v1/orders");
	expect_path("httpx://gw/v1/orders", "httpx://gw/v1/orders"); /* not ours to read: 404 later */
	expect_error("POST http:///v1/orders HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	expect_error("POST http://:80/v1/orders HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_post),
		cmocka_unit_test(test_incomplete_at_every_split),
		cmocka_unit_test(test_pipelined_heads),
		cmocka_unit_test(test_http10_defaults_to_close),
		cmocka_unit_test(test_expect_and_idempotency_key),
		cmocka_unit_test(test_smuggling_defences),
		cmocka_unit_test(test_bad_request_lines),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_leading_empty_lines_ignored),
		cmocka_unit_test(test_a_flood_of_empty_lines_is_refused_at_once),
		cmocka_unit_test(test_expect_is_ignored_from_http10),
		cmocka_unit_test(test_absolute_form_is_routed_by_its_path),
	};
	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
