/*
 * logline: the gateway's log, one line per event, each written with one
 * write(2) so that the lines of different threads stay whole. As logfmt
 * by default,
 *   ts=2026-11-30T23:43:11.409Z level=warn who=w0 msg="redis ...: connection lost"
 * or as text ([log] format = text),
 *   2026-11-30T23:43:11.409Z flashgate[w0] warn: redis ...: connection lost
 * Lines below [log] level are dropped. A warning or error that repeats
 * (the same who and text, digits aside) within a second of its last print
 * is counted, not printed; its next print carries repeated=N (text: "(N
 * more like it)").
 *
 * Owns: the format, the level filter, the repeat counts (per thread) and
 * the write. Does not own: what is logged.
 */
#ifndef FG_LOGLINE_H
#define FG_LOGLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest line; longer text is cut (the workers' closing line of
 * counters is the longest there is). */
#define LOGLINE_MAX 1280

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* From [log] level and format, at start-up and each reload; any thread
 * may be logging meanwhile (the settings are atomics). level is "debug",
 * "info", "warn" or "error"; format "logfmt" or "text". */
void logline_configure(const char *level, const char *format);

/* Logs len bytes of text (no newline) as one line from who ("w0",
 * "reconcile", "main") at level. */
void logline_write(enum log_level level, const char *who, const char *text, size_t len);

/* The monotonic clock the repeat counts go by (ns); NULL: the system's.
 * For tests. */
void logline_set_clock(int64_t (*mono_ns)(void));

/* The same, formatted. */
void logline_printf(enum log_level level, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
