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
 * reports or verification.
 */
#ifndef LG_RUN_H
#define LG_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/hist.h"
#include "mix.h"
#include "profile.h"
#include "series.h"

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
};

/* "host:port, host:port" for reports. */
void lg_target_text(const struct lg_target *t, char *buf, size_t len);

struct lg_counts {
	uint64_t offered, sent, completed;
	uint64_t late_sends; /* sent more than 1 ms after their intended time */
	uint64_t counts[LG_OUTCOMES];
};

struct lg_stage_result {
	struct lg_counts c;
	struct hist *latency; /* us, from the intended send time */
	struct hist *service; /* us, from the actual send */
	double scheduled;     /* requests the stage's schedule asked for */
};

/* What one kind of sender ([bots]) sent and got. */
struct lg_who_result {
	uint64_t counts[LG_OUTCOMES];
	uint64_t units;       /* units its 202s bought */
	struct hist *latency; /* us, from the intended send time */
};

struct lg_result {
	struct lg_counts c;
	double scheduled;            /* first tries the schedule asked for */
	uint64_t unsent;             /* due, never sent (no connection before the end) */
	uint64_t connect_failures;
	struct hist *send_lag;       /* us, actual send - intended send */
	struct hist *gen_lag;        /* us, intended send - when the generator saw it due */
	double elapsed_s;            /* start of the schedule to the last answer */
	double schedule_s;
	struct hist *latency, *service;
	struct hist *order_latency;  /* first intended send to the final answer, retries included */
	/* Orders (a first try and its retries and double clicks are one order). */
	/* failed: the last try got 503, a timeout or a broken connection */
	uint64_t orders, orders_accepted, orders_refused, orders_failed;
	uint64_t orders_abandoned; /* the client reset the connection before any answer */
	uint64_t accepted_after_retry; /* accepted, but not on the first try */
	uint64_t retries, double_clicks;
	uint64_t key_conflicts;      /* one key answered with two different order ids */
	uint64_t malformed_sent[MAL_KINDS], malformed_ok[MAL_KINDS];
	/* One id per accepted order, learned from its 202 or a 200 duplicate. */
	uint64_t *accepted_ids;
	size_t n_accepted, cap_accepted;
	uint64_t accepted_units;
	struct lg_stage_result stages[PROF_MAX_STAGES];
	unsigned n_stages;
	struct lg_second *seconds;
	size_t n_seconds;
	/* The generator's own lateness (gen_lag p99) over LG_GENERATOR_LAG_US, or
	 * requests never sent with connections to spare: this process, not the
	 * server, was the limit. A request's wait for a busy connection is not
	 * the generator's lateness (it is in send_lag and in the latency). */
	bool generator_limited;
	bool conn_limited;      /* requests waited because every connection was busy */
	uint64_t tokens_signed, sign_ns; /* shoppers' tokens made ([run] sign_key), and the time it took */
	struct lg_who_result who[WHO_N];
	int64_t started_unix_ms;
};

/*
 * Runs the profile against the target; 0, or -errno with err set (cannot
 * resolve, cannot connect, T0 in the past, out of memory).
 */
int lg_run(const struct lg_profile *p, const struct lg_target *t, struct lg_result *r, char *err,
	   size_t err_len) __attribute__((warn_unused_result));
/* Allocates r's histograms for n_stages stages; 0 or -ENOMEM. */
int lg_result_init(struct lg_result *r, unsigned n_stages) __attribute__((warn_unused_result));
void lg_result_free(struct lg_result *r);

/* Appends id to r's accepted ids; 0 or -ENOMEM. */
int lg_result_add_accepted(struct lg_result *r, uint64_t id) __attribute__((warn_unused_result));

#endif
