/*
 * autorec: the gateway settling by itself what a crashed gateway left. A
 * thread runs a reconcile pass (reconcile.h) every reconcile.interval_ms,
 * so the units a gateway killed mid-sale had reserved, or had in transit
 * between buckets, come back to the sale without an operator.
 *
 * A pass blocks (the blocking Redis client, a Kafka consumer reading the
 * topic, a producer flushing), which is why it runs on a thread of its own
 * and not in a worker's loop: no request ever waits for it. Passes of all
 * the instances on one Redis are spaced by the lock reconcile takes, so
 * the interval is the whole fleet's, not each instance's.
 *
 * Owns: the thread, when passes run, their counters. Does not own: what a
 * pass does (reconcile) or how the counters are shown (metrics).
 */
#ifndef FG_AUTOREC_H
#define FG_AUTOREC_H

#include <stddef.h>

#include "../core/cfg.h"
#include "metrics.h"

struct autorec;

/*
 * Starts the thread; call it with the process's signals blocked (the thread
 * and the Kafka clients its passes make inherit the mask). cfg is copied;
 * m must outlive it. 0 with *out set (NULL when reconcile.interval_ms is 0), or
 * -errno with err set.
 */
int autorec_start(struct autorec **out, const struct cfg *cfg, struct metrics *m, char *err, size_t err_len)
	__attribute__((warn_unused_result));

/* A reload: passes from the next on use a copy of cfg (its keys that take
 * effect only at start-up, such as the interval, the caller kept). NULL
 * does nothing. */
void autorec_reconfigure(struct autorec *a, const struct cfg *cfg);

/* Stops the thread and frees it; a pass in progress is finished first.
 * NULL does nothing. */
void autorec_stop(struct autorec *a);

#endif
