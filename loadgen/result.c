/* result: a run's counts and histograms. See result.h. */
#include "result.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int lg_result_add_accepted(struct lg_result *r, uint64_t id, uint32_t qty)
{
	if (r->n_accepted == r->cap_accepted) {
		size_t cap = r->cap_accepted ? 2 * r->cap_accepted : 4096;
		uint64_t *ids = realloc(r->accepted_ids, cap * sizeof(*ids));
		if (ids)
			r->accepted_ids = ids;
		uint32_t *qtys = ids ? realloc(r->accepted_qty, cap * sizeof(*qtys)) : NULL;
		if (!qtys)
			return -ENOMEM;
		r->accepted_qty = qtys;
		r->cap_accepted = cap;
	}
	r->accepted_qty[r->n_accepted] = qty;
	r->accepted_ids[r->n_accepted++] = id;
	return 0;
}

int lg_result_init(struct lg_result *r, unsigned n_stages)
{
	memset(r, 0, sizeof(*r));
	r->latency = hist_new();
	r->service = hist_new();
	r->order_latency = hist_new();
	r->send_lag = hist_new();
	r->gen_lag = hist_new();
	if (!r->latency || !r->service || !r->order_latency || !r->send_lag || !r->gen_lag)
		return -ENOMEM;
	for (int k = 0; k < WHO_N; k++)
		if (!(r->who[k].latency = hist_new()))
			return -ENOMEM;
	r->n_stages = n_stages;
	for (unsigned k = 0; k < n_stages; k++) {
		r->stages[k].latency = hist_new();
		r->stages[k].service = hist_new();
		if (!r->stages[k].latency || !r->stages[k].service)
			return -ENOMEM;
	}
	return 0;
}

static void counts_add(struct lg_counts *d, const struct lg_counts *s)
{
	d->offered += s->offered;
	d->sent += s->sent;
	d->completed += s->completed;
	d->late_sends += s->late_sends;
	for (int k = 0; k < LG_OUTCOMES; k++)
		d->counts[k] += s->counts[k];
}

int lg_result_merge(struct lg_result *d, const struct lg_result *s)
{
	counts_add(&d->c, &s->c);
	d->unsent += s->unsent;
	d->connect_failures += s->connect_failures;
	hist_merge(d->send_lag, s->send_lag);
	hist_merge(d->gen_lag, s->gen_lag);
	hist_merge(d->latency, s->latency);
	hist_merge(d->service, s->service);
	hist_merge(d->order_latency, s->order_latency);
	for (int k = 0; k < WHO_N; k++) {
		for (int o = 0; o < LG_OUTCOMES; o++)
			d->who[k].counts[o] += s->who[k].counts[o];
		d->who[k].units += s->who[k].units;
		hist_merge(d->who[k].latency, s->who[k].latency);
	}
	d->orders += s->orders;
	d->orders_accepted += s->orders_accepted;
	d->orders_refused += s->orders_refused;
	d->orders_failed += s->orders_failed;
	d->orders_abandoned += s->orders_abandoned;
	d->retries += s->retries;
	d->accepted_after_retry += s->accepted_after_retry;
	d->double_clicks += s->double_clicks;
	d->key_conflicts += s->key_conflicts;
	for (int k = 0; k < MAL_KINDS; k++) {
		d->malformed_sent[k] += s->malformed_sent[k];
		d->malformed_ok[k] += s->malformed_ok[k];
	}
	for (size_t i = 0; i < s->n_accepted; i++)
		if (lg_result_add_accepted(d, s->accepted_ids[i], s->accepted_qty[i]) < 0)
			return -ENOMEM;
	d->accepted_units += s->accepted_units;
	for (unsigned k = 0; k < d->n_stages; k++) {
		counts_add(&d->stages[k].c, &s->stages[k].c);
		hist_merge(d->stages[k].latency, s->stages[k].latency);
		hist_merge(d->stages[k].service, s->stages[k].service);
	}
	d->conn_limited |= s->conn_limited;
	return 0;
}

void lg_result_free(struct lg_result *r)
{
	hist_free(r->latency);
	hist_free(r->service);
	hist_free(r->order_latency);
	hist_free(r->send_lag);
	hist_free(r->gen_lag);
	for (int k = 0; k < WHO_N; k++)
		hist_free(r->who[k].latency);
	for (unsigned k = 0; k < r->n_stages; k++) {
		hist_free(r->stages[k].latency);
		hist_free(r->stages[k].service);
	}
	free(r->accepted_ids);
	free(r->accepted_qty);
	ser_seconds_free(r->seconds, r->n_seconds);
	memset(r, 0, sizeof(*r));
}

