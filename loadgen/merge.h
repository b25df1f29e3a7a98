/*
 * merge: `flashload merge`: several generators' JSON reports of one sale
 * read back and added up into one result, as if one generator had made
 * the whole load: counts added, histograms merged from their buckets (so
 * percentiles are of all the requests, never averages of percentiles),
 * per-second series aligned on the wall clock. Reports of different sales
 * (profile digest or T0 differ), the same shard twice or the same report
 * twice are refused unless forced.
 *
 * Owns: reading reports (jansson) and checking they belong together. Does
 * not own: writing the merged reports (report, html) or the command line.
 */
#ifndef LG_MERGE_H
#define LG_MERGE_H

#include <stdbool.h>
#include <stddef.h>

#include "profile.h"
#include "report.h"
#include "result.h"
#include "run.h"

#define MERGE_MAX_REPORTS 256

/* The merged sale: a profile with the stages' rates added up (what the
 * generators offered together), the targets they all used, the result. */
struct merged {
	struct lg_profile p;
	struct lg_target t;
	struct lg_result r;
	char profile_digest[65];
	int64_t t0_unix_ms;
	unsigned generators;
};

/*
 * Reads the n reports into m. force: merge reports of different sales
 * anyway. 0; -EINVAL with why in err (a file that is not a flashload
 * report, reports that do not belong together); -errno when a file cannot
 * be read; -ENOMEM.
 */
int merge_reports(const char *const *paths, size_t n, bool force, struct merged *m, char *err,
		  size_t err_len) __attribute__((warn_unused_result));
void merge_free(struct merged *m);

#endif
