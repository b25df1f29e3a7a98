/*
 * run: flashload's traffic engine: an open-loop schedule of orders sent
 * over keep-alive connections through one io_uring.
 *
 * Each request has an intended send time from the schedule (start + i /
 * rate). Latency is measured from that intended time, so a stalled server
 * is charged for every request it delayed (no coordinated omission);
 * service time (from the actual send) and send lag (actual - intended) are
 * kept too. A request that waits for a free connection is never dropped: it
 * is sent late and its wait counts. With --rate max the loop is closed
 * (each connection sends again as soon as it has its answer) and latency
 * equals service time.
 *
 * Owns: connections, pacing, per-request timing and outcome counts, and
 * the list of order ids answered 202. Does not own: reporting or
 * verification.
 */
#ifndef LG_RUN_H
#define LG_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/hist.h"

struct lg_opts {
	char host[256];
	uint16_t port;
	double rate;         /* requests/s; 0 = as fast as the connections go */
	double duration_s;   /* schedule length; 0 = until max_requests */
	uint64_t max_requests; /* 0 = no limit */
	unsigned connections;
	unsigned skus, users, qty;
	const char *sku_prefix, *user_prefix;
	double zipf;
	unsigned timeout_ms;
	uint64_t seed;
	bool live_tty; /* redraw one status line instead of printing lines */
	bool quiet;
};

enum lg_outcome {
	LG_ACCEPTED,     /* 202 */
	LG_SOLD_OUT,     /* 409 sold_out or insufficient_stock */
	LG_LIMIT,        /* 409 limit_exceeded */
	LG_NOT_FOUND,    /* 404 */
	LG_BAD_REQUEST,  /* other 4xx */
	LG_UNAVAILABLE,  /* 503 */
	LG_OTHER_STATUS, /* anything else */
	LG_CONN_ERROR,   /* connect/send/recv failed, or a malformed answer */
	LG_TIMEOUT,      /* no answer within timeout_ms */
	LG_OUTCOMES
};

extern const char *const lg_outcome_names[LG_OUTCOMES];

struct lg_result {
	uint64_t scheduled, sent, completed;
	uint64_t unsent;           /* due by the schedule, never sent (no connection) */
	uint64_t connect_failures; /* connection attempts refused or failed */
	uint64_t counts[LG_OUTCOMES];
	uint64_t late_sends;   /* sent more than 1 ms after their intended time */
	uint64_t max_lag_us;
	double elapsed_s;      /* first intended send to last answer */
	double schedule_s;     /* length of the send schedule */
	struct hist *latency;  /* us, from intended send time */
	struct hist *service;  /* us, from actual send time */
	uint64_t *accepted_ids;
	size_t n_accepted, cap_accepted;
	uint64_t accepted_units;
	bool generator_limited; /* late with idle connections: this process was the limit */
	bool conn_limited;      /* requests waited because every connection was busy */
	int64_t started_unix_ms;
};

/* Runs the load; 0, or -errno with err set (e.g. cannot resolve). */
int lg_run(const struct lg_opts *o, struct lg_result *r, char *err, size_t err_len)
	__attribute__((warn_unused_result));
void lg_result_free(struct lg_result *r);

#endif
