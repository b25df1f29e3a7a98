/*
 * run: flashload's traffic engine. A profile's schedule is split over
 * threads (each with its own io_uring and share of the connections); every
 * request has an intended send time from the schedule, and latency is
 * measured from it, so a stalled server is charged for every request it
 * delayed (no coordinated omission). Service time (from the actual send)
 * and send lag (actual - intended) are kept too. A due request that waits
 * for a free connection is sent late and its wait counts; one that never
 * got sent is counted as unsent, never dropped silently.
 *
 * Clients behave like shoppers: an order that gets 503, a timeout, a
 * broken connection or 409 in_progress is retried after an exponential
 * backoff with the same Idempotency-Key, up to the profile's limit; a share
 * of orders is double-clicked (sent twice at once, same key); a share of
 * requests is malformed, each checked against the status it must get.
 *
 * Owns: threads, connections, pacing, retries, per-request timing and the
 * outcome counts, per stage and per second. Does not own: the profile,
 * the result's memory (result), reports or verification.
 */
#ifndef LG_RUN_H
#define LG_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"
#include "result.h"

/* A p99 generator lag above this means flashload could not keep its own
 * schedule. */
#define LG_GENERATOR_LAG_US 5000

#define LG_MAX_TARGETS 16

struct lg_endpoint {
	char host[256];
	uint16_t port;
};

/* Where the load goes: one gateway, or several (instances without a load
 * balancer in front), the connections spread evenly over them. */
struct lg_target {
	struct lg_endpoint ep[LG_MAX_TARGETS];
	unsigned n;
	bool live_tty; /* redraw one status line instead of printing lines */
	bool quiet;
	int live_fd;   /* --live-json: each final second as a JSON line; -1: none */
};

/* "host:port, host:port" for reports. */
void lg_target_text(const struct lg_target *t, char *buf, size_t len);

/*
 * Asks a running lg_run to stop: no more sends, answers awaited up to the
 * profile's timeout, then the result of what ran (marked interrupted).
 * Async-signal-safe: for SIGINT and SIGTERM handlers.
 */
void lg_request_stop(void);

/*
 * Runs the profile against the target; 0, or -errno with err set (cannot
 * resolve, cannot connect, T0 in the past, out of memory).
 */
int lg_run(const struct lg_profile *p, const struct lg_target *t, struct lg_result *r, char *err,
	   size_t err_len) __attribute__((warn_unused_result));

#endif
