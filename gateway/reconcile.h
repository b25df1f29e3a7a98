/*
 * reconcile: a reconcile pass (`flashgate reconcile`, and each gateway's
 * own passes, autorec.h), which makes Redis and Kafka agree after a
 * gateway crashed between reserving an order and hearing from Kafka.
 *
 * The pending ledger (fg:{sku}:pending) is the outbox: every reservation is
 * in it until its gateway confirms the Kafka write. Reconcile looks only at
 * entries older than min_age_ms (by default twice the delivery timeout, so a
 * live gateway has long settled its own), and reads the topic from just
 * before the oldest of them:
 *   - in the topic: the order exists; the entry is confirmed (removed);
 *   - not in the topic, policy "complete" (default): the entry is claimed,
 *     the order published now (acks=all, idempotent) and then confirmed;
 *   - not in the topic, policy "release": the stock and the user's count are
 *     given back, as for an order that failed.
 * Running it again finds nothing left to do (idempotent), and it is safe
 * while gateways serve: it never touches young entries, and claimed entries
 * are out of reach of a gateway's late release.
 *
 * One pass at a time, across every gateway and every `flashgate reconcile`
 * on the same Redis: a pass runs under the lock fg:reconcile:lock. Two
 * passes at once would each publish the same unsettled order (complete).
 * The lock is a lease the pass renews as it goes: if its holder dies
 * mid-pass it expires within the lease, and a holder that stalled past
 * its lease stops claiming when it finds the lock gone. A gateway's
 * pass (autorec) leaves it "resting" for its interval afterwards (or 20
 * times its own length, when that is longer), so N gateway instances make
 * one pass per interval between them; the command line does not wait for
 * a resting lock, only for a running pass.
 *
 * Owns: one pass and the lock. Does not own: when passes run (autorec in
 * a gateway, the operator or cron for the command).
 */
#ifndef FG_RECONCILE_H
#define FG_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/cfg.h"

struct reconcile_opts {
	bool release;        /* policy release instead of complete */
	int64_t min_age_ms;  /* < 0: 2 x kafka.message_timeout_ms */
	bool dry_run;        /* report what would be done (takes no lock) */
	bool quiet;          /* print nothing when nothing old was found */
	const char *owner;   /* who holds the lock, for whoever waits on it */
	uint32_t lock_wait_ms;  /* how long to wait for a running pass */
	uint32_t lock_rest_ms;  /* keep others' passes off at least this long after (0: none) */
	const bool *stop;       /* when it turns true, a topic scan under way gives up */
};

/* Names a lock holder for whoever waits on it: "ROLE@HOST/PID". */
void reconcile_owner(char *out, size_t len, const char *role);

/* What one pass did. */
struct reconcile_tally {
	uint64_t confirmed; /* already in the topic: entry settled */
	uint64_t published; /* complete: written to the topic now */
	uint64_t released;  /* release: stock and user count given back */
	uint64_t transfers, transfer_units; /* bucket transfers finished */
};

/* Prints what it found and did to out, and adds it to *tally (may be
 * NULL). 0 when every old entry was settled, -EBUSY when another pass
 * held the lock for longer than lock_wait_ms (nothing done), -errno
 * otherwise (with messages on stderr). */
int reconcile_run(const struct cfg *cfg, const struct reconcile_opts *o, FILE *out,
		  struct reconcile_tally *tally) __attribute__((warn_unused_result));

#endif
