/* Unit tests for core/proxyproto.c: PROXY protocol v1 and v2 headers,
 * whole, cut at every byte, and malformed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/proxyproto.h"

static void expect_client(const char *buf, size_t len, const char *client)
{
	struct proxyproto pp;
	char text[NETADDR_TEXT_MAX];
	assert_int_equal(proxyproto_parse(buf, len, &pp), (int)len);
	if (client) {
		assert_true(pp.has_client);
		assert_string_equal(netaddr_format(&pp.client, text), client);
	} else {
		assert_false(pp.has_client);
	}
	/* every prefix asks for more */
	for (size_t n = 0; n < len; n++)
		assert_int_equal(proxyproto_parse(buf, n, &pp), PROXYPROTO_INCOMPLETE);
}

static void test_v1(void **state)
{
	(void)state;
	const char *a = "PROXY TCP4 192.0.2.7 198.51.100.2 56324 443\r\n";
	expect_client(a, strlen(a), "192.0.2.7");
	const char *b = "PROXY TCP6 2001:db8::7 2001:db8::1 56324 443\r\n";
	expect_client(b, strlen(b), "2001:db8::7");
	const char *c = "PROXY UNKNOWN\r\n";
	expect_client(c, strlen(c), NULL);
	const char *d = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
	expect_client(d, strlen(d), NULL);
	/* the header, then the request: only the header is taken */
	const char *e = "PROXY TCP4 192.0.2.7 198.51.100.2 1 2\r\nGET / HTTP/1.1\r\n";
	struct proxyproto pp;
	assert_int_equal(proxyproto_parse(e, strlen(e), &pp), (int)(strstr(e, "GET") - e));
}

static void test_v1_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
		"PROXY TCP4 192.0.2.7 198.51.100.2 56324\r\n",        /* a port missing */
		"PROXY TCP4 192.0.2.7 198.51.100.2 56324 443 1\r\n",  /* one too many */
		"PROXY TCP4 2001:db8::7 198.51.100.2 1 2\r\n",        /* family */
		"PROXY TCP6 192.0.2.7 198.51.100.2 1 2\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.2 70000 2\r\n",      /* port range */
		"PROXY TCP4 192.0.2.x 198.51.100.2 1 2\r\n",
		"PROXY UDP4 192.0.2.7 198.51.100.2 1 2\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.2 1 2\n",            /* bare LF */
		"PROXY TCP4 192.0.2.7 198.51.100.2 1 2\rX",           /* bare CR */
		"PROXY TCP4 192.0.2.7 198.51.100.2 1  2\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"proxy TCP4 192.0.2.7 198.51.100.2 1 2\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct proxyproto pp;
		assert_int_equal(proxyproto_parse(bad[i], strlen(bad[i]), &pp), -EBADMSG);
	}
	/* a line that never ends is refused at 108 bytes */
	char longline[200] = "PROXY TCP4 ";
	memset(longline + 11, '1', 150);
	struct proxyproto pp;
	assert_int_equal(proxyproto_parse(longline, 120, &pp), -EBADMSG);
}

static size_t v2(unsigned char *b, unsigned char ver_cmd, unsigned char fam, const unsigned char *addr,
		 size_t alen, size_t tlv)
{
	static const unsigned char sig[12] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
	memcpy(b, sig, 12);
	b[12] = ver_cmd;
	b[13] = fam;
	b[14] = (unsigned char)((alen + tlv) >> 8);
	b[15] = (unsigned char)(alen + tlv);
	memcpy(b + 16, addr, alen);
	memset(b + 16 + alen, 0xee, tlv); /* TLVs, skipped */
	return 16 + alen + tlv;
}

static void test_v2(void **state)
{
	(void)state;
	unsigned char b[600];
	const unsigned char a4[12] = {192, 0, 2, 9, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb};
	size_t n = v2(b, 0x21, 0x11, a4, sizeof(a4), 0);
	expect_client((const char *)b, n, "192.0.2.9");
	n = v2(b, 0x21, 0x11, a4, sizeof(a4), 20);
	expect_client((const char *)b, n, "192.0.2.9");
	unsigned char a6[36] = {0x20, 0x01, 0x0d, 0xb8};
	a6[15] = 7;
	n = v2(b, 0x21, 0x21, a6, sizeof(a6), 0);
	expect_client((const char *)b, n, "2001:db8::7");
	n = v2(b, 0x20, 0x00, a4, 0, 0); /* LOCAL: a health check */
	expect_client((const char *)b, n, NULL);
	struct proxyproto pp;
	n = v2(b, 0x11, 0x11, a4, sizeof(a4), 0); /* version 1 in a v2 header */
	assert_int_equal(proxyproto_parse((const char *)b, n, &pp), -EBADMSG);
	n = v2(b, 0x22, 0x11, a4, sizeof(a4), 0); /* no such command */
	assert_int_equal(proxyproto_parse((const char *)b, n, &pp), -EBADMSG);
	n = v2(b, 0x21, 0x11, a4, 8, 0); /* too short for its family */
	assert_int_equal(proxyproto_parse((const char *)b, n, &pp), -EBADMSG);
	n = v2(b, 0x21, 0x11, a4, sizeof(a4), PROXYPROTO_MAX);
	assert_int_equal(proxyproto_parse((const char *)b, n, &pp), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1),
		cmocka_unit_test(test_v1_malformed),
		cmocka_unit_test(test_v2),
	};
	return cmocka_run_group_tests_name("proxyproto", tests, NULL, NULL);
}
