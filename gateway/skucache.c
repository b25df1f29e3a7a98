/* skucache: expiring per-worker memory of sold-out and unknown SKUs. See skucache.h. */
#include "skucache.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/order.h"
#include "worker.h"

#define PROBE 8
/* How long the others wait for a re-check before asking themselves (a
 * reply lost with a Redis connection must not pin the old answer). */
#define RECHECK_MS 1000

struct entry {
	int64_t expires_ms; /* 0: empty */
	int64_t recheck_until_ms; /* one request is re-checking it with Redis */
	int64_t value;
	uint8_t state;
	uint8_t len;
	char sku[ORDER_ID_MAX];
};

struct skucache {
	struct entry *slots;
	size_t mask;
	/* The count of sold-out entries, taken a slice of the table per tick:
	 * the one being counted, and the last whole count. */
	size_t sweep_at;
	unsigned sweeping, sold_out;
};

/* Slots a tick counts: the default table (8,192 slots) in two ticks. */
#define SWEEP_SLOTS 4096

static uint64_t hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

int skc_init(struct worker *w)
{
	struct skucache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	size_t n = 16;
	while (n < 2 * (size_t)w->cfg->sku_cache_entries)
		n *= 2;
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return -ENOMEM;
	}
	c->mask = n - 1;
	w->skucache = c;
	return 0;
}

void skc_destroy(struct worker *w)
{
	if (!w->skucache)
		return;
	free(w->skucache->slots);
	free(w->skucache);
	w->skucache = NULL;
}

void skc_forget(struct worker *w, const char *sku, size_t len)
{
	struct skucache *c = w->skucache;
	size_t i = (size_t)hash(sku, len) & c->mask;
	for (int p = 0; p < PROBE; p++, i = (i + 1) & c->mask) {
		struct entry *e = &c->slots[i];
		if (e->expires_ms && e->len == len && memcmp(e->sku, sku, len) == 0) {
			e->expires_ms = e->recheck_until_ms = 0;
			return;
		}
	}
}

enum skc_state skc_get(struct worker *w, const char *sku, size_t len, int64_t *value)
{
	struct skucache *c = w->skucache;
	size_t i = (size_t)hash(sku, len) & c->mask;
	for (int p = 0; p < PROBE; p++, i = (i + 1) & c->mask) {
		struct entry *e = &c->slots[i];
		if (!e->expires_ms || e->len != len || memcmp(e->sku, sku, len) != 0)
			continue;
		if (e->expires_ms > w->now_mono_ms || e->recheck_until_ms > w->now_mono_ms) {
			*value = e->value;
			return (enum skc_state)e->state;
		}
		/* Expired: this request asks Redis; the others keep the answer
		 * until it comes back, so an expiry costs one call, not a burst. */
		e->recheck_until_ms = w->now_mono_ms + RECHECK_MS;
		return SKC_NONE;
	}
	return SKC_NONE;
}

void skc_tick(struct worker *w)
{
	struct skucache *c = w->skucache;
	for (unsigned i = 0; i < SWEEP_SLOTS; i++) {
		const struct entry *e = &c->slots[c->sweep_at];
		c->sweeping += e->state == SKC_SOLD_OUT && e->expires_ms > w->now_mono_ms;
		if (++c->sweep_at > c->mask) {
			c->sweep_at = 0;
			c->sold_out = c->sweeping;
			c->sweeping = 0;
		}
	}
}

unsigned skc_sold_out(const struct worker *w)
{
	return w->skucache->sold_out;
}

void skc_put(struct worker *w, const char *sku, size_t len, enum skc_state state, unsigned ttl_ms, int64_t value)
{
	struct skucache *c = w->skucache;
	if (ttl_ms == 0 || len > ORDER_ID_MAX)
		return;
	size_t i = (size_t)hash(sku, len) & c->mask;
	struct entry *victim = NULL;
	for (int p = 0; p < PROBE; p++, i = (i + 1) & c->mask) {
		struct entry *e = &c->slots[i];
		if (e->len == len && memcmp(e->sku, sku, len) == 0) {
			victim = e; /* refresh in place */
			break;
		}
		if (!victim || e->expires_ms < victim->expires_ms)
			victim = e; /* empty (0) or expiring first */
	}
	victim->expires_ms = w->now_mono_ms + ttl_ms;
	victim->recheck_until_ms = 0;
	victim->state = (uint8_t)state;
	victim->value = value;
	victim->len = (uint8_t)len;
	memcpy(victim->sku, sku, len);
}
