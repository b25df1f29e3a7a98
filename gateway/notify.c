/* notify: the sd_notify protocol, by hand. See notify.h. */
#include "notify.h"
#include "logline.h"

#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void send_state(const char *state)
{
	static bool warned;
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
		if (!warned)
			logline_printf(LOG_WARN, "main", "NOTIFY_SOCKET %s: not a socket path; not notifying", path);
		warned = true;
		return;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* an abstract socket */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ssize_t n = -1;
	if (fd >= 0) {
		n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
		int e = errno;
		close(fd);
		errno = e;
	}
	if (n < 0 && !warned) {
		logline_printf(LOG_WARN, "main", "NOTIFY_SOCKET %s: %s; not notifying", path, strerror(errno));
		warned = true;
	}
}

void notify_ready(void)
{
	send_state("READY=1");
}

void notify_reloading(void)
{
	/* systemd 253's Type=notify-reload wants the monotonic time with it;
	 * older managers ignore the field. */
	struct timespec ts;
	char msg[64];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	send_state(msg);
}

void notify_stopping(void)
{
	send_state("STOPPING=1");
}

void notify_status(const char *status)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	send_state(msg);
}
