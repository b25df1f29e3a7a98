/*
 * report: what a run shows its user afterwards: a text summary per stage
 * and overall, and the same numbers as JSON (per stage, per second, the
 * verification table) for tools and for comparing runs.
 *
 * Owns: those two formats. Does not own: the HTML report (html), the live
 * line (run) or deciding pass and fail (verify).
 */
#ifndef LG_REPORT_H
#define LG_REPORT_H

#include <stdio.h>

#include "profile.h"
#include "run.h"
#include "threshold.h"
#include "verify.h"

/*
 * What a report says about the run besides its numbers: where and how it
 * was made (so reports from several generators can be told apart and
 * merged), and its gate: the thresholds, what they came to, and whether
 * any answer came from an order API at all.
 */
struct report_meta {
	const char *command;        /* the command line as given */
	char host[256];
	char profile_digest[65];    /* SHA-256 of the traffic's definition: one sale, one digest */
	int64_t t0_unix_ms;         /* --t0, 0 without */
	unsigned shard, shards;     /* --shard I/N (1-based); 1/1 without */
	const char *accepted_log;   /* NULL without --accepted-log */
	unsigned generators;        /* reports merged into this one (1 for a run) */
	const struct threshold *thr;
	struct thr_verdict verdicts[THR_MAX];
	unsigned n_thr, thr_missed;
	bool no_api_answer;         /* not one answer the order API gives (all 404, say) */
};

/* The answers that show an order API answered: every outcome but a
 * status outside its contract, a broken connection or a timeout. */
bool report_api_answered(const struct lg_result *r);

/* Judges meta->thr against r into meta's verdicts and the API check. */
void report_gate(struct report_meta *meta, const struct lg_profile *p, const struct lg_result *r);

/* The gate's lines (thresholds PASS/FAIL, the API check); nothing when
 * there is nothing to say. */
void report_gate_text(FILE *out, const struct report_meta *meta);

/* The stage's name as reports show it ("max" for a closed loop). */
const char *report_stage_name(const struct lg_profile *p, unsigned k);

void report_text(FILE *out, const struct lg_profile *p, const struct lg_target *t,
		 const struct lg_result *r);

/* rep may be NULL (no --verify). 0 or -errno, with a message printed.
 * The format is in docs/flashload.md; histograms are carried losslessly
 * (their non-empty HdrHistogram buckets), so `flashload merge` can add
 * reports up. */
int report_json(const char *path, const struct lg_profile *p, const struct lg_target *t,
		const struct lg_result *r, const struct verify_report *rep, const struct report_meta *meta)
	__attribute__((warn_unused_result));

#endif
