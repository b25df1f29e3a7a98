/*
 * html: the self-contained HTML report of a run: inline SVG charts of
 * scheduled, offered and achieved rate, latency percentiles and the status
 * mix per second, the per-stage table and the verification table. No
 * scripts, no fonts or styles from the network: it opens from a file on a
 * machine with no connection, and can be attached to a ticket as is.
 *
 * Owns: the page and its charts. Does not own: the numbers (run, verify).
 */
#ifndef LG_HTML_H
#define LG_HTML_H

#include "profile.h"
#include "report.h"
#include "run.h"
#include "verify.h"

/* rep may be NULL (no --verify). 0 or -errno, with a message printed. */
int html_write(const char *path, const struct lg_profile *p, const struct lg_target *t,
	       const struct lg_result *r, const struct verify_report *rep, const struct report_meta *meta)
	__attribute__((warn_unused_result));

#endif
