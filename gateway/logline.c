/* logline: the gateway's log line. See logline.h. */
#include "logline.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void logline_write(const char *who, const char *text, size_t len)
{
	char line[LOGLINE_MAX];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int head = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ flashgate[%s] ",
			    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			    ts.tv_nsec / 1000000, who);
	if (head < 0 || (size_t)head > sizeof(line) - 2)
		return; /* a who no caller passes */
	size_t room = sizeof(line) - (size_t)head - 1;
	size_t body = len < room ? len : room;
	memcpy(line + head, text, body);
	line[(size_t)head + body] = '\n';
	if (write(STDERR_FILENO, line, (size_t)head + body + 1) < 0)
		return; /* nowhere left to report it */
}
