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
#include "verify.h"

/* The stage's name as reports show it ("max" for a closed loop). */
const char *report_stage_name(const struct lg_profile *p, unsigned k);

void report_text(FILE *out, const struct lg_profile *p, const struct lg_target *t,
		 const struct lg_result *r);

/* rep may be NULL (no --verify). 0 or -errno, with a message printed. */
int report_json(const char *path, const struct lg_profile *p, const struct lg_target *t,
		const struct lg_result *r, const struct verify_report *rep)
	__attribute__((warn_unused_result));

#endif
