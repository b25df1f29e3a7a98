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
	char res[40];
	int n = r->home_avail == 0 ? snprintf(res, sizeof(res), "sold_out")
				   : snprintf(res, sizeof(res), "insufficient:%" PRIu32, r->home_avail);
	flow_on_reserve_reply(w, r, res, (size_t)n);
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
		flow_unavailable(w, r, "rebalancing");
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
		flow_unavailable(w, r, rc == -ENOTCONN ? "redis" : "overloaded");
}

void rebal_on_dry(struct worker *w, struct req *r, unsigned long available)
{
	r->home_avail = (uint32_t)available;
	next_donor(w, r);
}

static void on_take(struct worker *w, struct req *r, const char *res, size_t len)
{
	if (len > 6 && memcmp(res, "taken:", 6) == 0) {
		r->moved = (uint32_t)strtoul(res + 6, NULL, 10);
		r->empties = 0;
		r->transit = false;
		w->stats.transfers++;
		w->stats.units_moved += r->moved;
		/* Give and the renewed reservation go in one write, in that
		 * order, on the home bucket's connection. */
		int rc = resv_transfer(w, r, RESV_GIVE);
		if (rc == 0)
			rc = resv_reserve(w, r);
		if (rc < 0)
			flow_unavailable(w, r, rc == -ENOTCONN ? "redis" : "overloaded");
		return;
	}
	if (len == 5 && memcmp(res, "empty", 5) == 0) {
		r->empties++;
	} else if (len == 7 && memcmp(res, "transit", 7) == 0) {
		r->empties++;
		r->transit = true;
	} else {
		/* "unknown" or "buckets:K": the SKU changed under the sale. */
		worker_log(w, "redis: transfer take for SKU %s: unexpected '%.*s'", r->order.sku,
			   (int)(len > 64 ? 64 : len), res);
		flow_unavailable(w, r, "redis");
		return;
	}
	next_donor(w, r);
}

void rebal_on_reply(struct worker *w, struct req *r, enum resv_xstep step, const char *res, size_t len,
		    long long integer)
{
	switch (step) {
	case RESV_TAKE:
		if (!res) {
			flow_unavailable(w, r, "redis");
			return;
		}
		on_take(w, r, res, len);
		return;
	case RESV_GIVE:
		/* 1 given, 0 given before: either way the entry may go. -1: the
		 * SKU was reloaded meanwhile, and the load reset both buckets. */
		if (res && integer >= -1 && integer <= 1) {
			if (integer == -1)
				worker_log(w, "redis: SKU %s was reloaded during a transfer; %" PRIu32
					      " units went with the old stock", r->order.sku, r->moved);
			if (resv_transfer(w, r, RESV_XDONE) == 0)
				return;
		}
		break; /* the donor's entry stays; reconcile finishes it */
	case RESV_XDONE:
		break;
	}
	flow_settled(w, r);
}
