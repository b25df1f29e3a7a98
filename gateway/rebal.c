/* rebal: moving units to a dry bucket. See rebal.h. */
#include "rebal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "worker.h"

/* Two rounds of the other buckets: the second catches units that moved
 * while the first was under way. */
static unsigned max_takes(const struct worker *w)
{
	return 2 * (w->cfg->redis_buckets - 1);
}

/* Every other bucket was empty, with nothing in transit, in the round
 * that just ended: the home bucket's answer is the SKU's. */
static void conclude(struct worker *w, struct req *r)
{
	struct reserve_result res = {.verdict = r->home_avail == 0 ? RESERVE_SOLD_OUT : RESERVE_INSUFFICIENT,
				     .number = r->home_avail};
	flow_on_reserve_reply(w, r, &res);
}

static void next_donor(struct worker *w, struct req *r)
{
	unsigned k = w->cfg->redis_buckets;
	if (k <= 1 || (r->empties >= k - 1 && !r->transit)) {
		conclude(w, r);
		return;
	}
	if (r->takes >= max_takes(w)) {
		/* Units exist but kept moving away: the client tries again. */
		w->stats.rebal_gave_up++;
		flow_unavailable(w, r, UNAV_REBALANCING);
		return;
	}
	if (r->empties >= k - 1) { /* a clean round is still owed: start one */
		r->empties = 0;
		r->transit = false;
	}
	r->takes++;
	/* The other buckets in turn, starting after home. */
	r->donor = (uint8_t)((r->bucket + 1 + (r->takes - 1) % (k - 1)) % k);
	int rc = resv_transfer(w, r, RESV_TAKE);
	if (rc < 0)
		flow_unavailable(w, r, rc == -ENOTCONN ? UNAV_REDIS : UNAV_OVERLOADED);
}

void rebal_on_dry(struct worker *w, struct req *r, unsigned long available)
{
	r->home_avail = (uint32_t)available;
	next_donor(w, r);
}

static void retry_later(struct worker *w, struct req *r, enum resv_xstep step);

/* A req of its own for the rest of the transfer r's take made: the order
 * goes on to reserve at home (and may be answered, freed, or start another
 * transfer) while the give and the removal of the donor's entry finish,
 * or are retried, on the carrier. A req is in one Redis replay at a time:
 * had the order's req carried both, a connection lost with the give and
 * the reservation behind it in flight queued it twice, and the worker
 * spun on a replay list that looped on itself. NULL: the pool is empty. */
static struct req *transfer_carrier(struct worker *w, const struct req *r)
{
	struct req *t = flow_alloc_internal(w);
	if (!t)
		return NULL;
	t->order_id = r->order_id;
	t->order = r->order;
	t->bucket = r->bucket;
	t->donor = r->donor;
	t->takes = r->takes;
	t->moved = r->moved;
	return t;
}

static void on_take(struct worker *w, struct req *r, const char *res, size_t len)
{
	if (len > 6 && memcmp(res, "taken:", 6) == 0) {
		r->moved = (uint32_t)strtoul(res + 6, NULL, 10);
		r->empties = 0;
		r->transit = false;
		w->stats.transfers++;
		w->stats.units_moved += r->moved;
		struct req *t = transfer_carrier(w, r);
		if (!t) {
			/* The order's req carries the units home; the order, with
			 * nothing to carry it further, hears 503 and its retry buys
			 * them there. */
			if (resv_transfer(w, r, RESV_GIVE) < 0)
				retry_later(w, r, RESV_GIVE);
			flow_unavailable(w, r, UNAV_OVERLOADED);
			return;
		}
		/* Give and the renewed reservation go in one write, in that
		 * order, on the home bucket's connection. */
		int rc = resv_transfer(w, t, RESV_GIVE);
		if (rc < 0)
			retry_later(w, t, RESV_GIVE); /* the units are the donor's no more */
		else
			rc = resv_reserve(w, r);
		if (rc < 0)
			flow_unavailable(w, r, rc == -ENOTCONN ? UNAV_REDIS : UNAV_OVERLOADED);
		return;
	}
	if (len == 5 && memcmp(res, "empty", 5) == 0) {
		r->empties++;
	} else if (len == 7 && memcmp(res, "transit", 7) == 0) {
		r->empties++;
		r->transit = true;
	} else {
		/* "unknown" or "buckets:K": the SKU changed under the sale. */
		worker_warn(w, "redis: transfer take for SKU %s: unexpected '%.*s'", r->order.sku,
			   (int)(len > 64 ? 64 : len), res);
		flow_unavailable(w, r, UNAV_REDIS);
		return;
	}
	next_donor(w, r);
}

/* A step to send again once its master answers; past REBAL_REPAIR_MAX_MS
 * since the first failure, the transfer is left to reconcile. */
static void retry_later(struct worker *w, struct req *r, enum resv_xstep step)
{
	if (!r->repair_since_ms)
		r->repair_since_ms = w->now_mono_ms;
	if (w->now_mono_ms - r->repair_since_ms <= REBAL_REPAIR_MAX_MS) {
		resv_transfer_later(w, r, step);
		return;
	}
	w->stats.transfers_left++;
	worker_warn(w, "redis: transfer %" PRIu64 ":%u of SKU %s from bucket %u still open after %d s; "
		      "left for flashgate reconcile",
		   r->order_id, r->takes, r->order.sku, r->donor, REBAL_REPAIR_MAX_MS / 1000);
	flow_settled(w, r);
}

/* The check's answer: the donor's entry "to_bucket units ms" if the take
 * ran (the units go on to their bucket), nothing if it did not. */
static void on_check(struct worker *w, struct req *r, const char *res, size_t len)
{
	unsigned to;
	unsigned long n;
	if (len == 0) {
		flow_settled(w, r); /* nothing left the donor */
		return;
	}
	if (sscanf(res, "%u %lu", &to, &n) != 2 || to != r->bucket || n == 0 || n > UINT32_MAX) {
		worker_warn(w, "redis: transfer %" PRIu64 ":%u of SKU %s: unexpected entry '%.*s'; left for "
			      "flashgate reconcile", r->order_id, r->takes, r->order.sku, (int)(len > 64 ? 64 : len), res);
		flow_settled(w, r);
		return;
	}
	r->moved = (uint32_t)n;
	if (resv_transfer(w, r, RESV_GIVE) < 0)
		retry_later(w, r, RESV_GIVE);
}

void rebal_on_lost(struct worker *w, struct req *r, enum resv_xstep step, enum metrics_unavailable reason)
{
	if (step != RESV_TAKE) {
		retry_later(w, r, step); /* each step but the take is idempotent */
		return;
	}
	/* Units may have left the donor: find out before anything else, and
	 * meanwhile the order hears 503 (its search is over). */
	r->repair_since_ms = w->now_mono_ms;
	resv_transfer_later(w, r, RESV_XCHECK);
	flow_unavailable(w, r, reason);
}

void rebal_on_reply(struct worker *w, struct req *r, enum resv_xstep step, const char *res, size_t len,
		    long long integer)
{
	switch (step) {
	case RESV_TAKE:
		if (!res) {
			flow_unavailable(w, r, UNAV_REDIS); /* it did not run */
			return;
		}
		on_take(w, r, res, len);
		return;
	case RESV_XCHECK:
		if (!res) {
			retry_later(w, r, step);
			return;
		}
		on_check(w, r, res, len);
		return;
	case RESV_GIVE:
		if (!res) {
			retry_later(w, r, step);
			return;
		}
		/* 1 given, 0 given before: either way the entry may go. -1: the
		 * SKU was reloaded meanwhile, and the load reset both buckets. */
		if (integer < -1 || integer > 1)
			break; /* not give's answer: the entry stays for reconcile */
		if (integer == -1)
			worker_warn(w, "redis: SKU %s was reloaded during a transfer; %" PRIu32
				      " units went with the old stock", r->order.sku, r->moved);
		if (resv_transfer(w, r, RESV_XDONE) < 0)
			retry_later(w, r, RESV_XDONE);
		return;
	case RESV_XDONE:
		if (!res) {
			retry_later(w, r, step);
			return;
		}
		if (r->repair_since_ms) {
			w->stats.transfers_repaired++;
			w->stats.units_repaired += r->moved;
		}
		break;
	}
	flow_settled(w, r);
}
