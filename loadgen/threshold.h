/*
 * threshold: the pass/fail conditions a release pipeline puts on a run
 * (--threshold), parsed once from the command line and judged against
 * the result. The grammar, whitespace ignored:
 *
 *   [stage:NAME:] METRIC OP VALUE
 *   METRIC  p50 p90 p99 p99.9 (any pN) max mean   latency from the intended
 *                                                 send; VALUE in us, ms or s
 *           errors            503, timeouts, broken connections, 404, other
 *                             4xx and 5xx, malformed answered wrongly
 *           status:CODE       answers with that status (200 202 401 403 404
 *                             409 425 429 503), or status:timeout, status:conn
 *           accepted          orders accepted (202, or a duplicate's 200)
 *           answered          requests answered (any outcome)
 *           rps               answers per second
 *   OP      < <= > >=
 *   VALUE   a number; for errors and status a share with % ("0.1%") or a
 *           count without
 *
 * e.g. "p99<50ms", "stage:peak:p99<20ms", "errors<0.1%", "accepted>=50000",
 * "status:503<1%".
 *
 * Owns: the grammar and the judging. Does not own: the run, reports or the
 * exit code (main decides from what thr_judge says).
 */
#ifndef LG_THRESHOLD_H
#define LG_THRESHOLD_H

#include <stdbool.h>
#include <stddef.h>

#include "profile.h"
#include "run.h"

#define THR_MAX 32
#define THR_TEXT_MAX 96

enum thr_metric {
	THR_PERCENTILE,
	THR_MAX_LATENCY,
	THR_MEAN,
	THR_ERRORS,
	THR_STATUS,
	THR_ACCEPTED,
	THR_ANSWERED,
	THR_RPS,
};

enum thr_op { THR_LT, THR_LE, THR_GT, THR_GE };

struct threshold {
	char text[THR_TEXT_MAX]; /* as given, for reports */
	char stage[PROF_NAME_MAX]; /* "" for the whole run */
	enum thr_metric metric;
	double percentile;       /* THR_PERCENTILE */
	bool outcomes[LG_OUTCOMES]; /* THR_STATUS, THR_ERRORS: what counts */
	enum thr_op op;
	double value;            /* latency in us; a share in 0..1 when share */
	bool share;
};

/* What one threshold came to, for the reports. */
struct thr_verdict {
	bool ok;
	double observed;         /* in the threshold's units: us, a share, a count */
	char detail[160];        /* "p99 = 12.3 ms (limit < 50 ms)" */
};

/* Parses expr into t; 0, or -EINVAL with why in err. */
int thr_parse(const char *expr, struct threshold *t, char *err, size_t err_len)
	__attribute__((warn_unused_result));

/* Judges t against r; 0, or -ENOENT with err set when t names a stage the
 * profile does not have. */
int thr_judge(const struct threshold *t, const struct lg_profile *p, const struct lg_result *r,
	      struct thr_verdict *v, char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
