/*
 * fmt: text built piece by piece on the request path, without printf.
 *
 * snprintf's format interpretation was 2-4% of the gateway's CPU on the
 * accepted path (perf, BENCHMARKS.md); what the hot path formats is only
 * copied strings and decimal integers, which these do directly.
 *
 * Owns: copying and decimal formatting into a buffer the caller sized.
 * Does not own: bounds (each call writes at most what it says; the caller
 * checks the room first), NUL termination (the caller adds one if needed).
 */
#ifndef FG_FMT_H
#define FG_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FMT_U64_MAX 20 /* digits of UINT64_MAX */
#define FMT_I64_MAX 20 /* '-' and the 19 digits of INT64_MIN */

/* Copies n bytes of s to p; returns the end. */
static inline char *fmt_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* Writes v in decimal (at most FMT_U64_MAX bytes); returns the end. */
char *fmt_u64(char *p, uint64_t v);

/* Writes v in decimal (at most FMT_I64_MAX bytes); returns the end. */
char *fmt_i64(char *p, int64_t v);

#endif
