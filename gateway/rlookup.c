/* rlookup: a Redis host name looked up again without blocking. See rlookup.h. */
#include "rlookup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A server that is down is retried every redis.reconnect_ms; its name
 * need not be asked about that often. */
#define LOOKUP_EVERY_MS 1000

struct rlookup {
	char host[64];
	char service[8];
	struct addrinfo hints;
	struct gaicb cb;
	bool running;
	int64_t started_ms; /* 0: none yet (the start-up lookup was just made) */
};

static void addr_text(const struct sockaddr_storage *a, char *out, size_t len)
{
	const void *ip = a->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr
						   : (const void *)&((const struct sockaddr_in *)a)->sin_addr;
	if (!inet_ntop(a->ss_family, ip, out, (socklen_t)len))
		snprintf(out, len, "?");
}

int rlookup_new(const char *host, unsigned port, struct sockaddr_storage *addr, socklen_t *addr_len,
		struct rlookup **out, char *err, size_t err_len)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	char service[8];
	*out = NULL;
	snprintf(service, sizeof(service), "%u", port);
	int gai = getaddrinfo(host, service, &hints, &ai);
	if (gai != 0) {
		snprintf(err, err_len, "cannot resolve %s:%u: %s", host, port, gai_strerror(gai));
		return -EINVAL;
	}
	memcpy(addr, ai->ai_addr, ai->ai_addrlen);
	*addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);

	/* A numeric address: nothing to look up again. */
	struct addrinfo numeric = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
	if (getaddrinfo(host, service, &numeric, &ai) == 0) {
		freeaddrinfo(ai);
		return 0;
	}
	struct rlookup *lk = calloc(1, sizeof(*lk));
	if (!lk) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	snprintf(lk->host, sizeof(lk->host), "%s", host);
	memcpy(lk->service, service, sizeof(lk->service));
	lk->hints = hints;
	*out = lk;
	return 0;
}

int rlookup_poll(struct rlookup *lk, int64_t now_ms, unsigned wait_ms, struct sockaddr_storage *addr,
		 socklen_t *addr_len, char *note, size_t note_len)
{
	char was[INET6_ADDRSTRLEN], now[INET6_ADDRSTRLEN];
	*note = '\0';
	if (!lk->running) {
		if (lk->started_ms && now_ms - lk->started_ms < LOOKUP_EVERY_MS)
			return 0;
		if (!lk->started_ms) { /* the first connect follows the start-up lookup */
			lk->started_ms = now_ms;
			return 0;
		}
		memset(&lk->cb, 0, sizeof(lk->cb));
		lk->cb.ar_name = lk->host;
		lk->cb.ar_service = lk->service;
		lk->cb.ar_request = &lk->hints;
		struct gaicb *list[1] = {&lk->cb};
		int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
		lk->started_ms = now_ms;
		if (rc != 0) {
			snprintf(note, note_len, "cannot look %s up: %s; connecting to the address known", lk->host,
				 gai_strerror(rc));
			return 0;
		}
		lk->running = true;
	}
	int rc = gai_error(&lk->cb);
	if (rc == EAI_INPROGRESS) {
		if (now_ms - lk->started_ms < (int64_t)wait_ms)
			return 1;
		/* Still running: its answer is taken before the next reconnect. */
		snprintf(note, note_len, "looking %s up takes over %u ms; connecting to the address known", lk->host,
			 wait_ms);
		return 0;
	}
	lk->running = false;
	if (rc != 0) {
		snprintf(note, note_len, "cannot look %s up: %s; connecting to the address known", lk->host,
			 gai_strerror(rc));
		return 0;
	}
	struct addrinfo *ai = lk->cb.ar_result;
	if (ai && ai->ai_addrlen <= sizeof(*addr) &&
	    (ai->ai_addrlen != *addr_len || memcmp(ai->ai_addr, addr, ai->ai_addrlen) != 0)) {
		addr_text(addr, was, sizeof(was));
		memcpy(addr, ai->ai_addr, ai->ai_addrlen);
		*addr_len = ai->ai_addrlen;
		addr_text(addr, now, sizeof(now));
		snprintf(note, note_len, "%s now resolves to %s (was %s)", lk->host, now, was);
	}
	freeaddrinfo(lk->cb.ar_result);
	lk->cb.ar_result = NULL;
	return 0;
}

void rlookup_free(struct rlookup *lk)
{
	if (!lk)
		return;
	if (lk->running && gai_cancel(&lk->cb) != EAI_CANCELED) {
		const struct gaicb *list[1] = {&lk->cb};
		while (gai_error(&lk->cb) == EAI_INPROGRESS)
			gai_suspend(list, 1, NULL);
	}
	if (lk->running && gai_error(&lk->cb) == 0)
		freeaddrinfo(lk->cb.ar_result);
	free(lk);
}
