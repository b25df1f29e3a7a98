/*
 * logline: the gateway's log line, "2026-11-30T23:43:11.409Z flashgate[WHO]
 * text", written with one write(2) so that the lines of different threads
 * (the workers, the reconcile thread) stay whole.
 *
 * Owns: the line's format and its write. Does not own: what is logged.
 */
#ifndef FG_LOGLINE_H
#define FG_LOGLINE_H

#include <stddef.h>

/* The longest line; longer text is cut (the workers' closing line of
 * counters is the longest there is). */
#define LOGLINE_MAX 1024

/* Logs len bytes of text (no newline) as one line from who ("w0",
 * "reconcile"). */
void logline_write(const char *who, const char *text, size_t len);

#endif
