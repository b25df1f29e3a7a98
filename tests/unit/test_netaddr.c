/* Unit tests for core/netaddr.c: addresses, CIDR lists, X-Forwarded-For. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/netaddr.h"

static struct netaddr addr(const char *s)
{
	struct netaddr a;
	assert_int_equal(netaddr_parse(s, strlen(s), &a), 0);
	return a;
}

static void test_lists_match_both_families(void **state)
{
	(void)state;
	struct netaddr_list l;
	const char *why = NULL;
	assert_int_equal(netaddr_parse_list(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8", &l, &why), 0);
	assert_int_equal(l.n, 3);
	struct netaddr a = addr("10.200.3.4"), b = addr("11.0.0.1"), c = addr("192.168.1.7"), d = addr("192.168.1.8");
	struct netaddr e = addr("fd12::1"), f = addr("fe80::1");
	assert_true(netaddr_in_list(&l, &a));
	assert_false(netaddr_in_list(&l, &b));
	assert_true(netaddr_in_list(&l, &c));
	assert_false(netaddr_in_list(&l, &d));
	assert_true(netaddr_in_list(&l, &e));
	assert_false(netaddr_in_list(&l, &f));
	assert_int_equal(netaddr_parse_list("", &l, &why), 0);
	assert_int_equal(l.n, 0);
	assert_false(netaddr_in_list(&l, &a));
	assert_int_equal(netaddr_parse_list("0.0.0.0/0", &l, &why), 0);
	assert_true(netaddr_in_list(&l, &b));
	assert_false(netaddr_in_list(&l, &f)); /* an IPv4 range holds no IPv6 address */
}

static void test_bad_lists(void **state)
{
	(void)state;
	struct netaddr_list l;
	const char *why = NULL;
	assert_int_equal(netaddr_parse_list("10.0.0.0/33", &l, &why), -EINVAL);
	assert_non_null(strstr(why, "0 to 32"));
	assert_int_equal(netaddr_parse_list("::/129", &l, &why), -EINVAL);
	assert_int_equal(netaddr_parse_list("10.0.0/8", &l, &why), -EINVAL);
	assert_int_equal(netaddr_parse_list("10.0.0.1/", &l, &why), -EINVAL);
	assert_int_equal(netaddr_parse_list("10.0.0.1/8x", &l, &why), -EINVAL);
	char many[1024] = "";
	for (int i = 0; i < 33; i++)
		strcat(many, "10.0.0.1,");
	assert_int_equal(netaddr_parse_list(many, &l, &why), -EINVAL);
}

static void test_forwarded_for(void **state)
{
	(void)state;
	struct netaddr_list l;
	const char *why;
	char buf[NETADDR_TEXT_MAX];
	assert_int_equal(netaddr_parse_list("10.0.0.0/8", &l, &why), 0);
	struct netaddr out = addr("10.1.1.1");
	/* the client's own entries (left) prove nothing: the right-most untrusted */
	const char *x = "1.2.3.4, 198.51.100.7, 10.0.0.2";
	assert_int_equal(netaddr_forwarded_client(&l, x, strlen(x), &out), 0);
	assert_string_equal(netaddr_format(&out, buf), "198.51.100.7");
	x = "198.51.100.7:5555";
	assert_int_equal(netaddr_forwarded_client(&l, x, strlen(x), &out), 0);
	assert_string_equal(netaddr_format(&out, buf), "198.51.100.7");
	x = "[2001:db8::9]:443";
	assert_int_equal(netaddr_forwarded_client(&l, x, strlen(x), &out), 0);
	assert_string_equal(netaddr_format(&out, buf), "2001:db8::9");
	x = "2001:db8::9";
	assert_int_equal(netaddr_forwarded_client(&l, x, strlen(x), &out), 0);
	assert_string_equal(netaddr_format(&out, buf), "2001:db8::9");
	x = "10.0.0.3, 10.0.0.2"; /* all trusted: the left-most */
	assert_int_equal(netaddr_forwarded_client(&l, x, strlen(x), &out), 0);
	assert_string_equal(netaddr_format(&out, buf), "10.0.0.3");
	struct netaddr keep = addr("10.9.9.9");
	out = keep;
	x = "unknown";
	assert_int_equal(netaddr_forwarded_client(&l, x, strlen(x), &out), -EINVAL);
	assert_memory_equal(&out, &keep, sizeof(out));
	assert_int_equal(netaddr_forwarded_client(&l, "", 0, &out), -EINVAL);
	x = "1.2.3.4,,";
	assert_int_equal(netaddr_forwarded_client(&l, x, strlen(x), &out), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lists_match_both_families),
		cmocka_unit_test(test_bad_lists),
		cmocka_unit_test(test_forwarded_for),
	};
	return cmocka_run_group_tests_name("netaddr", tests, NULL, NULL);
}
