/* version: the release and the git commit both programs were built from,
 * for --version, the start-up line and the metrics page (build_info). */
#ifndef FG_VERSION_H
#define FG_VERSION_H

#define FLASHGATE_VERSION "0.1.0"

/* The commit (12 hex digits, "-dirty" when the tree had changes, or
 * "unknown" outside a git checkout): written by the Makefile into
 * build/commit.c, rebuilt only when it changes. */
extern const char flashgate_commit[];

#endif
