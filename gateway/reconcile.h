/*
 * reconcile: `flashgate reconcile`, which makes Redis and Kafka agree after
 * a gateway crashed between reserving an order and hearing from Kafka.
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
	bool dry_run;        /* report what would be done */
};

/* Prints what it found and did to out. 0 when every old entry was
 * settled, -errno otherwise (with messages on stderr). */
int reconcile_run(const struct cfg *cfg, const struct reconcile_opts *o, FILE *out)
	__attribute__((warn_unused_result));

#endif
