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
	static char text[65536];
	size_t n = fread(text, 1, sizeof(text) - 1, shipped_file);
	text[n] = '\0';
	/* All of it: a key past a cut-off buffer would look undocumented. */
	assert_true(feof(shipped_file));
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

/* A file a key names (password_file, client_properties); its path in side_path. */
static char side_path[64];
static void write_side_file(const void *bytes, size_t len)
{
	strcpy(side_path, "/tmp/flashgate-test-pw-XXXXXX");
	int fd = mkstemp(side_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	close(fd);
}

/* The password is the file's first line, line end and all after it
 * dropped; the dump names the file, never the password. A bad file is
 * refused at the password_file line, naming the file and why. */
static void test_redis_password_file(void **state)
{
	(void)state;
	static struct cfg c;
	char text[256], err[512], dump[8192];

	write_side_file("s3cr3t pass\r\nsecond line\n", 25);
	snprintf(text, sizeof(text), "[redis]\nuser = flash-gate\npassword_file = %s\n", side_path);
	write_file(text);
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.redis_password, "s3cr3t pass");
	assert_string_equal(c.redis_user, "flash-gate");
	FILE *f = fmemopen(dump, sizeof(dump), "w");
	cfg_dump(&c, f);
	fclose(f);
	assert_non_null(strstr(dump, side_path));
	assert_null(strstr(dump, "s3cr3t"));
	unlink(path);
	unlink(side_path);

	cfg_defaults(&c);
	assert_string_equal(c.redis_password, ""); /* no file: no AUTH */

	/* A password alone (Redis's requirepass, the default user). */
	write_side_file("p", 1);
	snprintf(text, sizeof(text), "[redis]\npassword_file = %s\n", side_path);
	write_file(text);
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.redis_password, "p");
	assert_string_equal(c.redis_user, "");
	unlink(path);

	const struct {
		const char *bytes;
		size_t len;
		const char *why;
	} bad[] = {
		{"", 0, "its first line is empty"},
		{"\nsecret\n", 8, "its first line is empty"},
		{"se\0cret\n", 8, "its first line holds a NUL byte"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unlink(side_path);
		write_side_file(bad[i].bytes, bad[i].len);
		snprintf(text, sizeof(text), "[redis]\nport = 1\n\npassword_file = %s\n", side_path);
		expect_error(text, 4, bad[i].why);
	}
	unlink(side_path);
	char *long_line = malloc(600);
	assert_non_null(long_line);
	memset(long_line, 'x', 600);
	write_side_file(long_line, 600);
	free(long_line);
	snprintf(text, sizeof(text), "[redis]\npassword_file = %s\n", side_path);
	expect_error(text, 2, "its first line is longer than 512 bytes");
	unlink(side_path);

	write_file("[redis]\npassword_file = /nonexistent/pw\n");
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, ":2: [redis] password_file: cannot read /nonexistent/pw: No such file"));
	unlink(path);
	/* A FIFO (or a device) could block start-up: refused without reading. */
	expect_error("[redis]\npassword_file = /dev/zero\n", 2, "/dev/zero: not a regular file");
	expect_error("[redis]\nuser = fg\n", 2, "[redis] user: set without [redis] password_file");
	expect_error("[redis]\nuser = f g\n", 2, "[redis] user: not a user name");
	expect_error("[redis]\npassword_file = /a b\n", 2, "[redis] password_file: not a file path");
}

/* [kafka] client_properties: the file's text is kept whole for the Kafka
 * clients (never dumped); a bad line is refused naming both files' lines. */
static void test_kafka_client_properties(void **state)
{
	(void)state;
	static struct cfg c;
	char text[256], err[512], dump[16384], want[256];
	const char *props = "# sasl\nsecurity.protocol=SASL_SSL\nsasl.password=hunter2\n";

	write_side_file(props, strlen(props));
	snprintf(text, sizeof(text), "[kafka]\nclient_properties = %s\n", side_path);
	write_file(text);
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.kafka_properties, props);
	FILE *f = fmemopen(dump, sizeof(dump), "w");
	cfg_dump(&c, f);
	fclose(f);
	assert_non_null(strstr(dump, side_path));
	assert_null(strstr(dump, "hunter2"));
	unlink(path);
	unlink(side_path);

	write_side_file("security.protocol=SSL\nacks=0\n", 28);
	snprintf(text, sizeof(text), "[kafka]\ntopic = t\nclient_properties = %s\n", side_path);
	snprintf(want, sizeof(want), "[kafka] client_properties: %s:2: flashgate sets it itself", side_path);
	expect_error(text, 3, want);
	unlink(side_path);

	write_side_file("a=1\0b=2\n", 8);
	snprintf(text, sizeof(text), "[kafka]\nclient_properties = %s\n", side_path);
	expect_error(text, 2, "it holds a NUL byte");
	unlink(side_path);

	char *big = malloc(9000);
	assert_non_null(big);
	for (size_t i = 0; i < 9000; i++)
		big[i] = i % 30 == 29 ? '\n' : '#';
	write_side_file(big, 9000);
	free(big);
	snprintf(text, sizeof(text), "[kafka]\nclient_properties = %s\n", side_path);
	expect_error(text, 2, "longer than 8 KB");
	unlink(side_path);
}

struct changes {
	char text[1024];
	unsigned n;
};

static void record_change(void *arg, const char *section, const char *name, const char *running,
			  const char *file, bool live)
{
	struct changes *c = arg;
	size_t at = strlen(c->text);
	snprintf(c->text + at, sizeof(c->text) - at, "[%s] %s %s->%s %s\n", section, name, running, file,
		 live ? "live" : "restart");
	c->n++;
}

/* A reload takes the live keys, keeps the rest and names every change. */
static void test_merge_live(void **state)
{
	(void)state;
	struct cfg running, next;
	char err[512];
	write_file("[server]\nport = 9000\nadmin_token = 0123456789abcdef\n[admission]\nuser_rate = 20\n");
	assert_int_equal(cfg_load(&running, path, err, sizeof(err)), 0);
	unlink(path);
	write_file("[server]\nport = 9001\nadmin_token = fedcba9876543210\nidle_timeout_ms = 5000\n"
		   "[admission]\nuser_rate = 3\n[kafka]\ntopic = other\n");
	assert_int_equal(cfg_load(&next, path, err, sizeof(err)), 0);
	unlink(path);
	struct changes c = {.n = 0};
	assert_int_equal(cfg_merge_live(&next, &running, record_change, &c), 2);
	assert_string_equal(c.text, "[server] port 9000->9001 restart\n"
				    "[server] idle_timeout_ms 60000->5000 live\n"
				    "[server] admin_token (set)->(set) live\n"
				    "[kafka] topic orders->other restart\n"
				    "[admission] user_rate 20->3 live\n");
	assert_int_equal(next.port, 9000);
	assert_string_equal(next.kafka_topic, "orders");
	assert_int_equal(next.idle_timeout_ms, 5000);
	assert_int_equal(next.user_rate, 3);
	assert_string_equal(next.admin_token, "fedcba9876543210");
	/* Merged again, nothing is left to change. */
	c = (struct changes){.n = 0};
	assert_int_equal(cfg_merge_live(&next, &next, record_change, &c), 0);
	assert_int_equal(c.n, 0);
}

/* Durations and sizes with units; a unit finer than the key's is refused. */
static void test_units(void **state)
{
	(void)state;
	struct cfg c;
	char err[2048];
	write_file("[server]\nidle_timeout_ms = 2m\nrequest_timeout_ms = 250ms\nsend_timeout_ms = 10s\n"
		   "retry_after_s = 1m\nmax_body_bytes = 8KiB\nmax_head_bytes = 512B\n[order]\n"
		   "idempotency_ttl_s = 2d\n[redis]\ntimeout_ms = 3000\n");
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(c.idle_timeout_ms, 120000);
	assert_int_equal(c.request_timeout_ms, 250);
	assert_int_equal(c.send_timeout_ms, 10000);
	assert_int_equal(c.retry_after_s, 60);
	assert_int_equal(c.max_body_bytes, 8192);
	assert_int_equal(c.max_head_bytes, 512);
	assert_int_equal(c.idempotency_ttl_s, 172800);
	assert_int_equal(c.redis_timeout_ms, 3000);
	expect_error("[order]\nidempotency_ttl_s = 1500ms\n", 2, "not a duration (a number of seconds");
	expect_error("[server]\nidle_timeout_ms = 2 m\n", 2, "not a duration");
	expect_error("[server]\nmax_body_bytes = 1MiB\n", 2, "out of range 64..65536 B");
	expect_error("[server]\nworkers = 2s\n", 2, "not a non-negative integer");
	expect_error("[server]\nidle_timeout_ms = 99999999999h\n", 2, "out of range");
}

/* Every bad line at once, then the environment and --set over the file,
 * and where each value came from. */
static void test_overrides_and_sources(void **state)
{
	(void)state;
	struct cfg c;
	struct cfg_sources src;
	char err[2048];
	write_file("[server]\nport = 0\nworkers = x\n[nosuch]\nk = 1\n");
	assert_int_equal(cfg_load(&c, path, err, sizeof(err)), -EINVAL);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s:2: [server] port: '0' is out of range 1..65535\n"
		 "%s:3: [server] workers: not a non-negative integer (value 'x')\n"
		 "%s:5: [nosuch] k: unknown key (value '1')",
		 path, path, path);
	assert_string_equal(err, want);
	unlink(path);

	write_file("[server]\nport = 9000\nworkers = 2\n");
	char *env[] = {"PATH=/bin", "FLASHGATE_SERVER_WORKERS=4", "FLASHGATE_ADMISSION_USER_RATE=7", NULL};
	const char *sets[] = {"server.workers=5", "order.node_id=auto"};
	struct cfg_overrides ov = {.environ = env, .sets = sets, .n_sets = 2};
	assert_int_equal(cfg_load_over(&c, path, &ov, &src, err, sizeof(err)), 0);
	assert_int_equal(c.port, 9000);
	assert_int_equal(c.workers, 5); /* --set over the environment over the file */
	assert_int_equal(c.user_rate, 7);
	assert_int_equal(c.node_id, CFG_NODE_AUTO);
	char dump[16384];
	FILE *f = fmemopen(dump, sizeof(dump), "w");
	cfg_dump_sources(&c, &src, path, f);
	fclose(f);
	snprintf(want, sizeof(want), "port = 9000  ; from %s:2\n", path);
	assert_non_null(strstr(dump, want));
	assert_non_null(strstr(dump, "workers = 5  ; from --set server.workers\n"));
	assert_non_null(strstr(dump, "user_rate = 7  ; from environment FLASHGATE_ADMISSION_USER_RATE\n"));
	assert_non_null(strstr(dump, "node_id = auto  ; from --set order.node_id\n"));
	assert_non_null(strstr(dump, "max_qty = 10  ; default\n"));

	char *typo[] = {"FLASHGATE_SERVER_WORKRES=4", NULL};
	const char *bad_sets[] = {"server.port=70000", "serverport=1", "server.nope=1"};
	struct cfg_overrides bad = {.environ = typo, .sets = bad_sets, .n_sets = 3};
	assert_int_equal(cfg_load_over(&c, path, &bad, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "environment FLASHGATE_SERVER_WORKRES: no such key (FLASHGATE_SECTION_KEY, such as "
				 "FLASHGATE_SERVER_PORT)\n"
				 "--set server.port=70000: [server] port: '70000' is out of range 1..65535\n"
				 "--set serverport=1: not section.key=value\n"
				 "--set server.nope=1: no such key");
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_file_is_the_defaults),
		cmocka_unit_test(test_values_override_defaults),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_redis_password_file),
		cmocka_unit_test(test_kafka_client_properties),
		cmocka_unit_test(test_merge_live),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_overrides_and_sources),
	};
	return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}
