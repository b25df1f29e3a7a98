/* Unit tests for loadgen/profile.c: loading, refusing bad lines with file
 * and line, T0 forms, and the shipped profiles. */
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

#include "../../loadgen/profile.h"

static char path[64];

static const char *write_tmp(const char *text)
{
	snprintf(path, sizeof(path), "/tmp/fl-profile-%d.ini", (int)getpid());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void test_loads_stages_classes_and_mix(void **state)
{
	(void)state;
	struct lg_profile p;
	char err[512];
	prof_defaults(&p);
	const char *f = write_tmp("[run]\nconnections = 32\nthreads = 2\narrival = poisson\n"
				  "t0 = 2026-11-11T00:00:00.250Z\n"
				  "[stage a]\nduration = 2s\nrate = 10\n[stage b]\nduration = 1m\nfrom = 10\nto = 90\n"
				  "[catalogue]\nsku_prefix = x-\n[class hot]\ncount = 3\nstock = 7\nper_user_limit = 1\n"
				  "[class rest]\ncount = 5\nper_user_limit = 4\n"
				  "[retries]\nmax = 3\nbackoff = 20ms\n"
				  "[mix]\nduplicate_share = 0.5\nmalformed_share = 0.1\nmalformed_kinds = bad_json, oversized\n"
				  "abandon_share = 0.25\nabandon_after = 40ms\n");
	assert_int_equal(prof_load(&p, f, err, sizeof(err)), 0);
	assert_int_equal(prof_check(&p, err, sizeof(err)), 0);
	assert_int_equal(p.connections, 32);
	assert_int_equal(p.threads, 2);
	assert_int_equal(p.arrival, PROF_POISSON);
	assert_int_equal(p.t0_unix_ms, 1794355200250LL);
	assert_int_equal(p.n_stages, 2);
	assert_string_equal(p.stages[1].name, "b");
	assert_float_equal(p.stages[1].duration_s, 60, 1e-9);
	assert_float_equal(p.stages[1].to_rate, 90, 1e-9);
	assert_float_equal(prof_duration_s(&p), 62, 1e-9);
	assert_int_equal(p.skus, 8);
	assert_string_equal(prof_class_of(&p, 3)->name, "hot");
	assert_string_equal(prof_class_of(&p, 4)->name, "rest");
	assert_int_equal(p.retries, 3);
	assert_int_equal(p.backoff_ms, 20);
	assert_true(p.malformed_kinds[MAL_BAD_JSON] && p.malformed_kinds[MAL_OVERSIZED]);
	assert_false(p.malformed_kinds[MAL_BAD_QTY]);
	assert_float_equal(p.abandon_share, 0.25, 1e-12);
	assert_int_equal(p.abandon_after_ms, 40);
	unlink(f);
}

/* Each bad line is refused with the file, its line, the key and why. */
static void test_bad_lines_name_file_and_line(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"[stage a]\nrate = 5\nduration = 5q\n", ":3: [stage a] duration: not a duration"},
		{"[run]\nconections = 3\n", ":2: [run] conections: unknown key"},
		{"[run]\nthreads = 0\n", ":2: [run] threads: out of range"},
		{"[mix]\nduplicate_share = 1.5\n", ":2: [mix] duplicate_share: out of range"},
		{"[mix]\nabandon_share = -0.1\n", ":2: [mix] abandon_share:"},
		{"[mix]\nabandon_after = 0ms\n", ":2: [mix] abandon_after: out of range"},
		{"[mix]\nmalformed_kinds = bad_json, nonsense\n", ":2: [mix] malformed_kinds: unknown kind"},
		{"[stage a]\nrate = 1\nduration = 1s\n[stage a]\nrate = 2\n", ":5: [stage a] rate: stage defined twice"},
		{"[users]\ncount = 5\ncount = 6\n", ":3: [users] count: set twice"},
		{"[nosuch]\nkey = 1\n", ":2: [nosuch] key: unknown key"},
		{"[run]\nt0 = 2026-11-11 00:00\n", ":2: [run] t0: not a time"},
		{"[run\n", ":1: syntax error"},
		{"[stage a]\nduration = 1s\n", ": [stage a]: rate or from is missing"},
		{"[class c]\nstock = 5\n", ": [class c]: count and per_user_limit are required"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lg_profile p;
		char err[512] = "";
		prof_defaults(&p);
		const char *f = write_tmp(cases[i].text);
		assert_int_equal(prof_load(&p, f, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].want) || strncmp(err, f, strlen(f)) != 0)
			fail_msg("case %zu: got '%s', want '%s' after the path", i, err, cases[i].want);
		unlink(f);
	}
}

static void test_t0_forms(void **state)
{
	(void)state;
	int64_t t;
	assert_int_equal(prof_parse_t0("+30s", 1000, &t), 0);
	assert_int_equal(t, 31000);
	assert_int_equal(prof_parse_t0("1794355200000", 0, &t), 0);
	assert_int_equal(t, 1794355200000LL);
	assert_int_equal(prof_parse_t0("2026-11-11T00:00:00Z", 0, &t), 0);
	assert_int_equal(t, 1794355200000LL);
	assert_int_equal(prof_parse_t0("2026-11-11T00:00:00", 0, &t), -EINVAL);   /* no zone */
	assert_int_equal(prof_parse_t0("2026-11-11T00:00:00.5Z", 0, &t), -EINVAL); /* ms are 3 digits */
	assert_int_equal(prof_parse_t0("-5", 0, &t), -EINVAL);
}

/* The documented profiles load and pass the whole-profile checks. */
static void test_shipped_profiles_load(void **state)
{
	(void)state;
	const char *files[] = {"config/profiles/double11.ini", "config/profiles/soak.ini",
			       "config/profiles/restock.ini", "config/profiles/bots.ini"};
	for (size_t i = 0; i < 4; i++) {
		struct lg_profile p;
		char err[512] = "";
		prof_defaults(&p);
		if (prof_load(&p, files[i], err, sizeof(err)) < 0 || prof_check(&p, err, sizeof(err)) < 0)
			fail_msg("%s: %s", files[i], err);
		assert_true(p.n_stages >= 2);
		assert_true(p.n_classes >= 1);
	}
}

static void test_bots(void **state)
{
	(void)state;
	struct lg_profile p;
	char err[512] = "";
	prof_defaults(&p);
	assert_int_equal(prof_load(&p, write_tmp("[bots]\nno_token = 0.1\nsybil = 0.2\nsilent_connections = 50\n"
						 "forwarded_for = yes\n[run]\nsign_key = /k/demo.hs256\n"),
				   err, sizeof(err)),
			 0);
	assert_int_equal(prof_check(&p, err, sizeof(err)), 0);
	assert_true(p.bot_share[WHO_NO_TOKEN] == 0.1 && p.bot_share[WHO_SYBIL] == 0.2);
	assert_true(p.bot_share[WHO_HAMMER] == 0);
	assert_int_equal(p.silent_connections, 50);
	assert_true(p.forwarded_for);
	assert_string_equal(p.sign_key, "/k/demo.hs256");
	prof_defaults(&p);
	assert_int_equal(prof_load(&p, write_tmp("[bots]\nforged = 0.6\nexpired = 0.6\n"), err, sizeof(err)), 0);
	assert_int_equal(prof_check(&p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 1"));
	unlink(path);
}

static void test_write_stock(void **state)
{
	(void)state;
	struct lg_profile p;
	char err[256], line[128];
	prof_defaults(&p);
	p.n_classes = 2;
	p.classes[0] = (struct prof_class){"hot", 1, 5, 1};
	p.classes[1] = (struct prof_class){"rest", 2, 100, 3};
	p.skus = 3;
	snprintf(path, sizeof(path), "/tmp/fl-stock-%d.csv", (int)getpid());
	assert_int_equal(prof_write_stock(&p, path, err, sizeof(err)), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	const char *want[] = {"sku,stock,per_user_limit\n", "sku1,5,1\n", "sku2,100,3\n", "sku3,100,3\n"};
	for (int i = 0; i < 4; i++) {
		assert_non_null(fgets(line, sizeof(line), f));
		assert_string_equal(line, want[i]);
	}
	assert_null(fgets(line, sizeof(line), f));
	fclose(f);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loads_stages_classes_and_mix),
		cmocka_unit_test(test_bad_lines_name_file_and_line),
		cmocka_unit_test(test_t0_forms),
		cmocka_unit_test(test_shipped_profiles_load),
		cmocka_unit_test(test_bots),
		cmocka_unit_test(test_write_stock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
