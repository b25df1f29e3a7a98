/* Unit tests for gateway/logline.c: the logfmt and text forms, levels,
 * escaping, and the count of repeated warnings. The lines go to stderr,
 * which each test points at a file of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../gateway/logline.h"

static char out[8192];

/* Runs the lines fn logs with stderr in a file; their text into out. */
static void capture(void (*fn)(void))
{
	FILE *f = tmpfile();
	assert_non_null(f);
	int saved = dup(STDERR_FILENO);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
}

static void some_lines(void)
{
	logline_configure("info", "logfmt");
	logline_write(LOG_DEBUG, "w0", "not shown", 9);
	logline_printf(LOG_INFO, "w1", "redis %s: connected", "127.0.0.1:6379");
	logline_printf(LOG_WARN, "main", "a \"quoted\" word\\and a\nnewline");
	logline_configure("warn", "text");
	logline_printf(LOG_INFO, "w0", "dropped at warn");
	logline_printf(LOG_ERROR, "lease", "node %u: LEASE LOST", 3u);
}

static void test_forms_levels_escapes(void **state)
{
	(void)state;
	capture(some_lines);
	const char *l1 = strstr(out, " level=info who=w1 msg=\"redis 127.0.0.1:6379: connected\"\n");
	assert_non_null(l1);
	assert_memory_equal(out, "ts=20", 5);
	assert_non_null(strstr(out, " level=warn who=main msg=\"a \\\"quoted\\\" word\\\\and a newline\"\n"));
	assert_null(strstr(out, "not shown"));
	assert_null(strstr(out, "dropped at warn"));
	assert_non_null(strstr(out, "Z flashgate[lease] error: node 3: LEASE LOST\n"));
}

static int64_t fake_ns;
static int64_t fake_clock(void)
{
	return fake_ns;
}

static void repeats(void)
{
	logline_set_clock(fake_clock);
	fake_ns = 5000000000LL;
	logline_configure("info", "logfmt");
	for (int i = 0; i < 5; i++)
		logline_printf(LOG_WARN, "w0", "redis 127.0.0.1:%d: connection lost", 6379 + i);
	for (int i = 0; i < 3; i++)
		logline_printf(LOG_INFO, "main", "reloaded f (reload %d)", i);
	fake_ns += 999000000; /* still within the second */
	logline_printf(LOG_WARN, "w0", "redis 127.0.0.1:6999: connection lost");
	fake_ns += 2000000; /* past it: the next one prints, with the count */
	logline_printf(LOG_WARN, "w0", "redis 127.0.0.1:7000: connection lost");
	logline_set_clock(NULL);
}

static void test_repeated_warnings_are_counted(void **state)
{
	(void)state;
	capture(repeats);
	int lost = 0, reloads = 0;
	for (const char *p = out; (p = strstr(p, "connection lost")); p++)
		lost++;
	for (const char *p = out; (p = strstr(p, "reloaded f (reload")); p++)
		reloads++;
	assert_int_equal(lost, 2);    /* the first, and the one after the window */
	assert_int_equal(reloads, 3); /* events are never held back */
	assert_non_null(strstr(out, "msg=\"redis 127.0.0.1:7000: connection lost\" repeated=5\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms_levels_escapes),
		cmocka_unit_test(test_repeated_warnings_are_counted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
