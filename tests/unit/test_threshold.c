/* Unit tests for loadgen/threshold.c: the --threshold grammar and judging. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../loadgen/threshold.h"

static void test_parses_the_documented_forms(void **state)
{
	(void)state;
	struct threshold t;
	char err[160];
	assert_int_equal(thr_parse("p99<50ms", &t, err, sizeof(err)), 0);
	assert_int_equal(t.metric, THR_PERCENTILE);
	assert_true(t.percentile == 99 && t.value == 50000 && t.op == THR_LT && !t.stage[0]);
	assert_int_equal(thr_parse(" stage:peak:p99.9 <= 2 s", &t, err, sizeof(err)), 0);
	assert_string_equal(t.stage, "peak");
	assert_true(t.percentile == 99.9 && t.value == 2e6 && t.op == THR_LE);
	assert_string_equal(t.text, "stage:peak:p99.9<=2s");
	assert_int_equal(thr_parse("errors<0.1%", &t, err, sizeof(err)), 0);
	assert_true(t.share && t.value == 0.001 && t.outcomes[LG_TIMEOUT] && !t.outcomes[LG_SOLD_OUT]);
	assert_int_equal(thr_parse("accepted>=50000", &t, err, sizeof(err)), 0);
	assert_true(t.metric == THR_ACCEPTED && t.op == THR_GE && t.value == 50000);
	assert_int_equal(thr_parse("status:409>0", &t, err, sizeof(err)), 0);
	assert_true(!t.share && t.outcomes[LG_SOLD_OUT] && t.outcomes[LG_LIMIT] && !t.outcomes[LG_ACCEPTED]);
	assert_int_equal(thr_parse("max<=800us", &t, err, sizeof(err)), 0);
	assert_true(t.metric == THR_MAX_LATENCY && t.value == 800);
}

static void test_refuses_what_it_cannot_judge(void **state)
{
	(void)state;
	struct threshold t;
	char err[160];
	const char *bad[] = {
		"p99<50", "p99=5ms", "p0<5ms", "p101<5ms", "pxx<5ms", "latency<5ms", "errors<5ms",
		"errors<101%", "status:418<1%", "accepted>=5%", "stage:peak", "stage::p99<5ms",
		"<5ms", "p99<", "p99<-1ms", "rps>1k",
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		err[0] = '\0';
		assert_int_equal(thr_parse(bad[k], &t, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
}

struct fixture {
	struct lg_profile p;
	struct lg_result r;
};

static void judge_fixture(struct fixture *f)
{
	prof_defaults(&f->p);
	f->p.n_stages = 2;
	strcpy(f->p.stages[0].name, "warm");
	strcpy(f->p.stages[1].name, "peak");
	f->p.stages[0].duration_s = f->p.stages[1].duration_s = 10;
	assert_int_equal(lg_result_init(&f->r, 2), 0);
	/* warm: 1000 answers at 1 ms, 10 of them 503; peak: 1000 at 30 ms */
	for (int i = 0; i < 1000; i++) {
		hist_record(f->r.latency, 1000);
		hist_record(f->r.stages[0].latency, 1000);
		hist_record(f->r.latency, 30000);
		hist_record(f->r.stages[1].latency, 30000);
	}
	f->r.stages[0].c.counts[LG_ACCEPTED] = 990;
	f->r.stages[0].c.counts[LG_UNAVAILABLE] = 10;
	f->r.stages[1].c.counts[LG_SOLD_OUT] = 1000;
	f->r.c.counts[LG_ACCEPTED] = 990;
	f->r.c.counts[LG_UNAVAILABLE] = 10;
	f->r.c.counts[LG_SOLD_OUT] = 1000;
	f->r.orders_accepted = 990;
	f->r.elapsed_s = 20;
}

static bool judged(struct fixture *f, const char *expr)
{
	struct threshold t;
	struct thr_verdict v;
	char err[160];
	assert_int_equal(thr_parse(expr, &t, err, sizeof(err)), 0);
	assert_int_equal(thr_judge(&t, &f->p, &f->r, &v, err, sizeof(err)), 0);
	assert_true(v.detail[0] != '\0');
	return v.ok;
}

static void test_judges_the_run_and_its_stages(void **state)
{
	(void)state;
	struct fixture f;
	judge_fixture(&f);
	assert_true(judged(&f, "p50<=1ms"));
	assert_false(judged(&f, "p99<20ms"));
	assert_true(judged(&f, "stage:warm:p99<2ms"));
	assert_false(judged(&f, "stage:peak:p99<20ms"));
	assert_true(judged(&f, "errors<1%"));          /* 10 of 2000: 0.5% */
	assert_false(judged(&f, "errors<0.5%"));
	assert_false(judged(&f, "stage:warm:errors<1%")); /* 10 of 1000: 1% */
	assert_true(judged(&f, "stage:peak:errors<=0"));
	assert_true(judged(&f, "status:503<=10"));
	assert_false(judged(&f, "status:503<10"));
	assert_true(judged(&f, "accepted>=990"));
	assert_false(judged(&f, "accepted>990"));
	assert_false(judged(&f, "stage:peak:accepted>0"));
	assert_true(judged(&f, "rps>=100"));            /* 2000 answers in 20 s */
	assert_false(judged(&f, "stage:peak:rps>100")); /* 1000 in 10 s */

	struct threshold t;
	struct thr_verdict v;
	char err[160];
	assert_int_equal(thr_parse("stage:opening:p99<5ms", &t, err, sizeof(err)), 0);
	assert_int_equal(thr_judge(&t, &f.p, &f.r, &v, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "opening"));
	lg_result_free(&f.r);
}

/* A latency bound over a run that answered nothing must not pass. */
static void test_latency_bound_over_nothing_fails(void **state)
{
	(void)state;
	struct fixture f;
	judge_fixture(&f);
	hist_reset(f.r.latency);
	assert_false(judged(&f, "p99<1s"));
	assert_false(judged(&f, "max<1s"));
	lg_result_free(&f.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parses_the_documented_forms),
		cmocka_unit_test(test_refuses_what_it_cannot_judge),
		cmocka_unit_test(test_judges_the_run_and_its_stages),
		cmocka_unit_test(test_latency_bound_over_nothing_fails),
	};
	return cmocka_run_group_tests_name("threshold", tests, NULL, NULL);
}
