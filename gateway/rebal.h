/*
 * rebal: leftover rebalancing between the buckets of a sharded SKU
 * (`[redis] buckets = K`, core/bucket.h).
 *
 * An order is always reserved in its user's home bucket, where the user's
 * count lives. When that bucket lacks the units ("dry"), units move to it
 * from the other buckets, one donor at a time, and the order is reserved
 * again at home:
 *
 *   take (donor: stock -n, ledger entry) -> give (home: stock +n, once)
 *     -> reserve again at home, in the same write as the give
 *     -> HDEL the donor's entry
 *
 * From the give on, the transfer travels on a req of its own (from the
 * same pool, owing no client an answer), so the order's req and the
 * transfer's never wait on Redis for each other, and each is in at most
 * one replay at a time.
 *
 * A take moves at least what the order lacks and half of the donor's
 * stock, so one transfer serves the orders behind it too. A SKU is
 * answered sold out only when a full round of the other K - 1 buckets
 * found each of them empty with nothing on its way; units in transit, or
 * a search that keeps losing the moved units to other orders, get 503 and
 * Retry-After instead, so a sold-out answer (and the worker's sold-out
 * cache) never hides units that can still be sold.
 *
 * A failure between take and give leaves the units in the donor's ledger.
 * When a take's answer is lost (its connection dropped, or its WAIT came
 * short), the order hears 503 and the worker finishes the transfer itself
 * once the donor's master answers again (the promoted replica, after a
 * failover): it checks the donor's ledger for the take, and if it ran,
 * gives the units (idempotently) and removes the entry; a failed give or
 * done is retried the same way. After REBAL_REPAIR_MAX_MS, or if the
 * gateway stops first, `flashgate reconcile` finishes what is left.
 *
 * Owns: the order's search state (in struct req). Does not own: the
 * commands (resv) or the final answer's wording (flow).
 */
#ifndef FG_REBAL_H
#define FG_REBAL_H

#include <stddef.h>

#include "metrics.h"
#include "resv.h"

struct worker;
struct req;

/* The home bucket answered "dry:<available>" for r. */
void rebal_on_dry(struct worker *w, struct req *r, unsigned long available);
/* A transfer step's reply: res NULL when it failed or was lost; integer is
 * LLONG_MIN unless the reply was an integer. */
void rebal_on_reply(struct worker *w, struct req *r, enum resv_xstep step, const char *res, size_t len,
		    long long integer);
/* A transfer step that may have run without its answer reaching r:
 * reason is the 503's if the order is still unanswered ("redis" for a
 * lost connection, "replication" for a WAIT that came short). */
void rebal_on_lost(struct worker *w, struct req *r, enum resv_xstep step, enum metrics_unavailable reason);

#define REBAL_REPAIR_MAX_MS 60000

#endif
