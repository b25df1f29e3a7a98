/*
 * result: what a run produced, as counts and histograms: overall, per
 * stage, per second and per kind of sender, with the ids of the accepted
 * orders. Engine threads fill one each; run merges them, and `flashload
 * merge` adds up the results of several generators the same way.
 *
 * Owns: the result's memory and adding one result into another. Does not
 * own: how the numbers are made (run, engine) or shown (report, html).
 */
#ifndef LG_RESULT_H
#define LG_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/hist.h"
#include "mix.h"
#include "profile.h"
#include "series.h"

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
	uint32_t *accepted_qty; /* each one's units */
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
	bool interrupted; /* stopped by lg_request_stop before the schedule's end */
};

/* Allocates r's histograms for n_stages stages; 0 or -ENOMEM. */
int lg_result_init(struct lg_result *r, unsigned n_stages) __attribute__((warn_unused_result));
void lg_result_free(struct lg_result *r);

/* Appends id (an order for qty units) to r's accepted; 0 or -ENOMEM. */
int lg_result_add_accepted(struct lg_result *r, uint64_t id, uint32_t qty) __attribute__((warn_unused_result));

/* Adds s's counts, histograms and accepted ids into d (same stages); the
 * per-second series is not merged here. 0 or -ENOMEM. */
int lg_result_merge(struct lg_result *d, const struct lg_result *s) __attribute__((warn_unused_result));

#endif
