/* Unit tests for core/cfg.c: the documented defaults and bad files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../core/cfg.h"

static char path[64];

static void write_file(const char *text)
{
	strcpy(path, "/tmp/flashgate-test-cfg-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void expect_error(const char *text, int line, const char *fragment)
{
	struct cfg c;
	char err[512], want[128];
	write_file(text);
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:%d: ", path, line);
	if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, fragment))
		fail_msg("error '%s' lacks '%s' or '%s'", err, want, fragment);
	unlink(path);
}

/* The shipped file documents every key with its default value. */
static void test_shipped_file_is_the_defaults(void **state)
{
	(void)state;
	struct cfg defaults, shipped;
	char err[512];
	cfg_defaults(&defaults);
	assert_int_equal(cfg_load(&shipped, "config/flashgate.conf", err, sizeof(err)), 0);
	assert_memory_equal(&defaults, &shipped, sizeof(defaults));
	/* And every key of the table appears in it. */
	char dump[8192];
	FILE *f = fmemopen(dump, sizeof(dump), "w");
	cfg_dump(&defaults, f);
	fclose(f);
	FILE *shipped_file = fopen("config/flashgate.conf", "r");
	assert_non_null(shipped_file);
	char text[16384];
	size_t n = fread(text, 1, sizeof(text) - 1, shipped_file);
	text[n] = '\0';
	fclose(shipped_file);
	for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n"))
		if (line[0] != '[' && !strstr(text, line))
			fail_msg("config/flashgate.conf does not document '%s'", line);
}

static void test_values_override_defaults(void **state)
{
	(void)state;
	struct cfg c;
	char err[512];
	write_file("; comment\n[server]\nport = 9000 ; inline comment\nworkers=2\n[kafka]\n"
		   "compression = ZSTD\ntopic = t1\n");
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.port, 9000);
	assert_int_equal(c.workers, 2);
	assert_string_equal(c.kafka_compression, "zstd");
	assert_string_equal(c.kafka_topic, "t1");
	assert_int_equal(c.redis_port, 16379);
	write_file("[server]\nlisten = ::\n");
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.listen, "::");
	unlink(path);
}

static void test_bad_files(void **state)
{
	(void)state;
	expect_error("[server]\nport = 0\n", 2, "[server] port: '0' is out of range 1..65535");
	expect_error("[server]\nport = 80x\n", 2, "not a non-negative integer");
	expect_error("[server]\nport = -1\n", 2, "not a non-negative integer");
	expect_error("[server]\nport = 99999999999999999999\n", 2, "out of range");
	expect_error("\n\n[server]\nbogus = 1\n", 4, "[server] bogus: unknown key");
	expect_error("[nosuch]\nport = 1\n", 2, "[nosuch] port: unknown key");
	expect_error("[server]\nport = 1\nport = 2\n", 3, "set twice");
	expect_error("[kafka]\ncompression = brotli\n", 2, "not one of the allowed values");
	expect_error("[server]\nthis is not a key\n", 2, "syntax error");
	expect_error("[order]\nnode_id = 1024\n", 2, "out of range 0..1023");
	/* librdkafka's idempotent producer allows at most 5 requests in flight. */
	expect_error("[kafka]\ninflight_requests = 6\n", 2, "[kafka] inflight_requests: '6' is out of range 1..5");
	expect_error("[kafka]\ninflight_requests = 0\n", 2, "out of range 1..5");
	/* A WAIT as long as the reply timeout would drop the link; the line named
	 * is the later of the two keys. */
	expect_error("[redis]\nwait_replicas = 1\nwait_timeout_ms = 1000\n", 3,
		     "[redis] wait_timeout_ms: 1000 is not below [redis] timeout_ms (1000)");
	expect_error("[redis]\nwait_timeout_ms = 20\n\ntimeout_ms = 20\n", 4, "is not below");
	expect_error("[redis]\ntimeout_ms = 40\n", 2, "wait_timeout_ms: 50 is not below");
	expect_error("[server]\nadmin_token = short\n", 2,
		     "[server] admin_token: must be empty (admin endpoints off) or at least 16 characters");
	expect_error("[server]\nadmin_token = sixteen-chars-\x01x\n", 2, "printable ASCII");
	/* A value starting with ';' loads (no space before it), but `-t` would
	 * write it back as a comment (found by fuzz_cfg). */
	expect_error("[kafka]\nbrokers=;\n", 2, "[kafka] brokers: not a broker list (host:port, comma-separated)");
	expect_error("[redis]\nhost = a\tb\n", 2, "[redis] host: not a host name or IP address");
	expect_error("[server]\nlisten = 0.0.0.0#x\n", 2, "[server] listen: not a numeric IP address");
	/* The listener binds without a name lookup: a name stops start-up here. */
	expect_error("[server]\nlisten = localhost\n", 2, "[server] listen: not a numeric IP address");
	expect_error("[server]\nlisten = 999.1.1.1\n", 2, "not a numeric IP address");
	expect_error("[kafka]\ntopic = orders!\n", 2, "[kafka] topic: not a Kafka topic name");
}

static void test_missing_file(void **state)
{
	(void)state;
	struct cfg c;
	char err[512];
	assert_int_equal(cfg_load(&c, "/nonexistent/flashgate.conf", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/flashgate.conf: cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_file_is_the_defaults),
		cmocka_unit_test(test_values_override_defaults),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}
