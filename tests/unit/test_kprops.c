/* Unit tests for core/kprops.c: the properties file's syntax, the keys
 * flashgate keeps, and what reaches librdkafka. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/kprops.h"

static void expect_refused(const char *text, int want_line, const char *fragment)
{
	int line = 0;
	const char *why = kprops_check(text, &line);
	if (!why || line != want_line || !strstr(why, fragment))
		fail_msg("'%s': got '%s' at line %d, want '%s' at %d", text, why ? why : "(accepted)", line, fragment,
			 want_line);
}

static void test_lines(void **state)
{
	(void)state;
	int line;
	assert_null(kprops_check(NULL, &line));
	assert_null(kprops_check("", &line));
	assert_null(kprops_check("# only a comment\n\n   \n", &line));
	assert_null(kprops_check("security.protocol=SASL_SSL\r\n  sasl.mechanism = SCRAM-SHA-512  \n"
				 "sasl.oauthbearer.config=principal=admin scope=x\nssl.ca.location=/etc/ca.pem",
				 &line));
	expect_refused("security.protocol=SASL_SSL\nno equals sign\n", 2, "expected key=value");
	expect_refused("=value\n", 1, "not a librdkafka property name");
	expect_refused("Security.Protocol=SSL\n", 1, "not a librdkafka property name");
	expect_refused("sasl.username=\n", 1, "empty value");
	expect_refused("# fine\nacks=1\n", 2, "flashgate sets it itself");
	expect_refused("enable.idempotence=false\n", 1, "flashgate sets it itself");
	expect_refused("bootstrap.servers=elsewhere:9092\n", 1, "flashgate sets it itself");
	expect_refused("group.id=mine\n", 1, "flashgate sets it itself");
}

static void test_apply(void **state)
{
	(void)state;
	char err[512], value[256];
	size_t len = sizeof(value);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const struct kprops ok = {"b1:9092,b2:9092", "# sasl\nsasl.username = fg\nsocket.keepalive.enable=true\n",
				  "/etc/fg/kafka.properties"};
	assert_int_equal(kprops_apply(&ok, conf, err, sizeof(err)), 0);
	assert_int_equal(rd_kafka_conf_get(conf, "bootstrap.servers", value, &len), RD_KAFKA_CONF_OK);
	assert_string_equal(value, "b1:9092,b2:9092");
	len = sizeof(value);
	assert_int_equal(rd_kafka_conf_get(conf, "sasl.username", value, &len), RD_KAFKA_CONF_OK);
	assert_string_equal(value, "fg");
	rd_kafka_conf_destroy(conf);

	/* librdkafka's refusal, at the file's line. */
	conf = rd_kafka_conf_new();
	const struct kprops bad = {"b:9092", "sasl.username=fg\n\nsecurity.protocol=CARRIER_PIGEON\n", "k.properties"};
	assert_int_equal(kprops_apply(&bad, conf, err, sizeof(err)), -EINVAL);
	if (strncmp(err, "k.properties:3: security.protocol: ", 35) != 0)
		fail_msg("error '%s'", err);
	rd_kafka_conf_destroy(conf);

	/* No file: the brokers alone. */
	conf = rd_kafka_conf_new();
	const struct kprops none = {"b:9092", NULL, NULL};
	assert_int_equal(kprops_apply(&none, conf, err, sizeof(err)), 0);
	rd_kafka_conf_destroy(conf);
}

/* What a reload may take live: the credentials, and nothing else. */
static void test_only_credentials(void **state)
{
	(void)state;
	const char *a = "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=u1\nsasl.password=p1\n";
	const char *b = "# rotated\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username = u2\n"
			"sasl.password=p2\n";
	const char *c = "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u1\nsasl.password=p1\n";
	assert_true(kprops_only_credentials_differ(a, b));
	assert_true(kprops_only_credentials_differ(a, a));
	assert_false(kprops_only_credentials_differ(a, c));
	assert_false(kprops_only_credentials_differ(a, "security.protocol=SASL_SSL\n"));
	char v[64];
	assert_int_equal(kprops_get(b, "sasl.username", v, sizeof(v)), 1);
	assert_string_equal(v, "u2");
	assert_int_equal(kprops_get(b, "ssl.ca.location", v, sizeof(v)), 0);
	assert_string_equal(v, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_only_credentials),
	};
	return cmocka_run_group_tests_name("kprops", tests, NULL, NULL);
}
