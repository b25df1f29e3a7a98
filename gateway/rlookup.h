/*
 * rlookup: a Redis host given by name, looked up again before each
 * reconnect without blocking the worker's loop. glibc's getaddrinfo_a runs
 * the lookup on a thread of its own and the worker polls it from its tick,
 * so a name that moves to another server (a managed Redis's primary
 * endpoint after a failover) is followed without a restart, while the loop
 * goes on answering.
 *
 * Owns: the lookup in flight, how often one starts, and how long the
 * worker waits for it. Does not own: when to reconnect (rlink).
 */
#ifndef FG_RLOOKUP_H
#define FG_RLOOKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct rlookup;

/* Looks host:port up now (blocking: start-up) into *addr. *out is NULL when
 * host is a numeric address, which never needs another lookup. 0, or
 * -errno with err set ("cannot resolve HOST:PORT: why"). */
int rlookup_new(const char *host, unsigned port, struct sockaddr_storage *addr, socklen_t *addr_len,
		struct rlookup **out, char *err, size_t err_len) __attribute__((warn_unused_result));

/* Before a reconnect: starts a lookup (at most one a second) or looks at
 * the one running. 1 while it runs: ask again on a later tick. 0 when the
 * connect may go to *addr: the lookup's answer, or the address known when
 * it failed or took longer than wait_ms. note is set ("" if nothing to
 * say) to what the worker should log: a new address, or why the known one
 * stays. */
int rlookup_poll(struct rlookup *lk, int64_t now_ms, unsigned wait_ms, struct sockaddr_storage *addr,
		 socklen_t *addr_len, char *note, size_t note_len);

/* Frees lk, first waiting for a lookup in flight to end (NULL: nothing). */
void rlookup_free(struct rlookup *lk);

#endif
