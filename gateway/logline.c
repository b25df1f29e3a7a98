/* logline: the gateway's log line. See logline.h. */
#include "logline.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/hash.h"

static int min_level = LOG_INFO; /* atomic */
static int as_text;              /* atomic */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int64_t system_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t (*clock_ns)(void) = system_mono_ns;

void logline_set_clock(int64_t (*mono_ns)(void))
{
	clock_ns = mono_ns ? mono_ns : system_mono_ns;
}

void logline_configure(const char *level, const char *format)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(level, level_names[i]) == 0)
			__atomic_store_n(&min_level, i, __ATOMIC_RELAXED);
	__atomic_store_n(&as_text, strcmp(format, "text") == 0, __ATOMIC_RELAXED);
}

/* The lines a thread printed lately, by their fingerprint. */
#define REPEAT_SLOTS 16
#define REPEAT_WINDOW_NS 1000000000LL
static __thread struct {
	uint64_t print;
	int64_t printed_ns;
	unsigned suppressed;
} recent[REPEAT_SLOTS];

/* who and text with their digits left out: "connection lost after 312 ms"
 * and "... 313 ms" are the same line. */
static uint64_t fingerprint(const char *who, const char *text, size_t len)
{
	char buf[256];
	size_t n = 0;
	for (const char *p = who; *p && n < sizeof(buf); p++)
		buf[n++] = *p;
	for (size_t i = 0; i < len && n < sizeof(buf); i++)
		if (text[i] < '0' || text[i] > '9')
			buf[n++] = text[i];
	uint64_t h = hash_bytes(buf, n);
	return h ? h : 1;
}

/* 0: print; otherwise how many lines like it were held back since its
 * last print, in *repeated (print it), or -1: hold it back. */
static int repeat_check(const char *who, const char *text, size_t len, int64_t now_ns, unsigned *repeated)
{
	uint64_t f = fingerprint(who, text, len);
	unsigned slot = (unsigned)(f % REPEAT_SLOTS);
	*repeated = 0;
	if (recent[slot].print == f && now_ns - recent[slot].printed_ns < REPEAT_WINDOW_NS) {
		recent[slot].suppressed++;
		return -1;
	}
	if (recent[slot].print == f)
		*repeated = recent[slot].suppressed;
	recent[slot].print = f;
	recent[slot].printed_ns = now_ns;
	recent[slot].suppressed = 0;
	return 0;
}

void logline_write(enum log_level level, const char *who, const char *text, size_t len)
{
	if ((int)level < __atomic_load_n(&min_level, __ATOMIC_RELAXED))
		return;
	char line[LOGLINE_MAX];
	struct timespec ts;
	struct tm tm;
	unsigned repeated = 0;
	/* Errors repeat (a broker down, every few hundred ms); events do not,
	 * and each is printed. */
	if (level >= LOG_WARN && repeat_check(who, text, len, clock_ns(), &repeated) < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char stamp[32];
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	bool text_form = __atomic_load_n(&as_text, __ATOMIC_RELAXED);
	const char *lv = level_names[level <= LOG_ERROR ? level : LOG_ERROR];
	int head = text_form ? snprintf(line, sizeof(line), "%s flashgate[%s] %s: ", stamp, who, lv)
			     : snprintf(line, sizeof(line), "ts=%s level=%s who=%s msg=\"", stamp, lv, who);
	if (head < 0 || (size_t)head > sizeof(line) - 64)
		return; /* a who no caller passes */
	/* Room for the closing quote, repeated=N and the newline. */
	size_t at = (size_t)head, end = sizeof(line) - 32;
	for (size_t i = 0; i < len && at < end; i++) {
		char c = text[i];
		if (!text_form && (c == '"' || c == '\\')) {
			line[at++] = '\\';
			line[at++] = c;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			line[at++] = ' '; /* one event, one line */
		} else {
			line[at++] = c;
		}
	}
	if (!text_form)
		line[at++] = '"';
	if (repeated)
		at += (size_t)snprintf(line + at, sizeof(line) - at, text_form ? " (%u more like it)" : " repeated=%u",
				       repeated);
	line[at++] = '\n';
	if (write(STDERR_FILENO, line, at) < 0)
		return; /* nowhere left to report it */
}

void logline_printf(enum log_level level, const char *who, const char *fmt, ...)
{
	char text[LOGLINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n > 0)
		logline_write(level, who, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
}
