/* admission: token buckets and connection counts. See admission.h. */
#include "admission.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/hash.h"
#include "worker.h"

#define KEY_MAX 64

/* Milli-tokens: a rate in tokens per second adds `rate` of them per ms. */
struct bucket {
	uint64_t hash; /* 0: free */
	int64_t last_ms;
	int64_t milli;
	uint8_t key_len;
	char key[KEY_MAX];
};

struct table {
	struct bucket *v;
	uint64_t mask;
	uint32_t rate, burst;
};

/* Wrong admin tokens an address may send: five at once, then one a
 * second, so guessing a 16-character token is hopeless. */
#define ADMIN_FAIL_RATE 1
#define ADMIN_FAIL_BURST 5
#define ADMIN_FAIL_ENTRIES 1024

struct adm {
	struct table users, addrs;
	struct table admin_fails;
	struct bucket instance;
	uint32_t instance_rate, instance_burst;
};

struct adm_conns {
	uint32_t *count;
	uint64_t mask;
};

static unsigned pow2_at_least(unsigned n)
{
	unsigned p = 64;
	while (p < n)
		p *= 2;
	return p;
}

struct adm_conns *adm_conns_new(unsigned entries)
{
	struct adm_conns *ac = calloc(1, sizeof(*ac));
	unsigned n = pow2_at_least(entries);
	if (!ac)
		return NULL;
	ac->count = calloc(n, sizeof(*ac->count));
	if (!ac->count) {
		free(ac);
		return NULL;
	}
	ac->mask = n - 1;
	return ac;
}

void adm_conns_free(struct adm_conns *ac)
{
	if (!ac)
		return;
	free(ac->count);
	free(ac);
}

bool adm_conns_open(struct adm_conns *ac, const struct netaddr *a, uint32_t max)
{
	uint32_t *c = &ac->count[hash_bytes(a->b, sizeof(a->b)) & ac->mask];
	uint32_t n = __atomic_load_n(c, __ATOMIC_RELAXED);
	do {
		if (max && n >= max)
			return false;
	} while (!__atomic_compare_exchange_n(c, &n, n + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return true;
}

void adm_conns_close(struct adm_conns *ac, const struct netaddr *a)
{
	__atomic_fetch_sub(&ac->count[hash_bytes(a->b, sizeof(a->b)) & ac->mask], 1, __ATOMIC_RELAXED);
}

/* Allocated even for a rate of 0 (no limit), which a reload may change:
 * the pages are touched only as keys arrive. */
static int table_init(struct table *t, unsigned entries, uint32_t rate, uint32_t burst)
{
	t->rate = rate;
	t->burst = burst;
	unsigned n = pow2_at_least(entries);
	t->v = calloc(n, sizeof(*t->v));
	if (!t->v)
		return -ENOMEM;
	t->mask = n - 1;
	return 0;
}

/* The instance's rate, split evenly between its workers. */
static void set_instance(struct worker *w, struct adm *a, const struct cfg *cfg)
{
	unsigned nw = w->shared->workers ? w->shared->workers : 1;
	bool was_limited = a->instance_rate != 0;
	a->instance_rate = 0;
	if (!cfg->instance_rate)
		return;
	a->instance_rate = cfg->instance_rate / nw ? cfg->instance_rate / nw : 1;
	a->instance_burst = cfg->instance_burst / nw ? cfg->instance_burst / nw : 1;
	if (!was_limited) {
		a->instance.milli = (int64_t)a->instance_burst * 1000;
		a->instance.last_ms = w->now_mono_ms;
	}
}

int adm_init(struct worker *w)
{
	const struct cfg *cfg = w->cfg;
	struct adm *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	w->adm = a;
	if (table_init(&a->users, cfg->admission_table_entries, cfg->user_rate, cfg->user_burst) < 0 ||
	    table_init(&a->addrs, cfg->admission_table_entries, cfg->addr_rate, cfg->addr_burst) < 0 ||
	    table_init(&a->admin_fails, ADMIN_FAIL_ENTRIES, ADMIN_FAIL_RATE, ADMIN_FAIL_BURST) < 0)
		return -ENOMEM;
	set_instance(w, a, cfg);
	return 0;
}

void adm_reconfigure(struct worker *w)
{
	const struct cfg *cfg = w->cfg;
	struct adm *a = w->adm;
	/* A bucket keeps what it holds; a smaller burst caps it at its next take. */
	a->users.rate = cfg->user_rate;
	a->users.burst = cfg->user_burst;
	a->addrs.rate = cfg->addr_rate;
	a->addrs.burst = cfg->addr_burst;
	set_instance(w, a, cfg);
}

void adm_destroy(struct worker *w)
{
	struct adm *a = w->adm;
	if (!a)
		return;
	free(a->users.v);
	free(a->addrs.v);
	free(a->admin_fails.v);
	free(a);
	w->adm = NULL;
}

/* The tokens time has added since the bucket was last seen; then 0 when
 * one is there, or the seconds until one will be (at least 1). */
static uint32_t refill(struct bucket *b, uint32_t rate, uint32_t burst, int64_t now)
{
	int64_t cap = (int64_t)burst * 1000;
	if (now > b->last_ms) {
		b->milli += (now - b->last_ms) * (int64_t)rate;
		if (b->milli > cap)
			b->milli = cap;
		b->last_ms = now;
	}
	if (b->milli >= 1000)
		return 0;
	int64_t wait_ms = (1000 - b->milli + rate - 1) / rate;
	return (uint32_t)((wait_ms + 999) / 1000);
}

static uint32_t take(struct bucket *b, uint32_t rate, uint32_t burst, int64_t now)
{
	uint32_t wait_s = refill(b, rate, burst, now);
	if (wait_s == 0)
		b->milli -= 1000;
	return wait_s;
}

/* The key's bucket: found, or a slot taken over for it (full). */
static struct bucket *lookup(struct table *t, const void *key, size_t n, int64_t now)
{
	uint64_t h = hash_bytes(key, n);
	struct bucket *b0 = &t->v[h & t->mask], *b1 = &t->v[(h ^ 1) & t->mask];
	if (b0->hash == h && b0->key_len == n && memcmp(b0->key, key, n) == 0)
		return b0;
	if (b1->hash == h && b1->key_len == n && memcmp(b1->key, key, n) == 0)
		return b1;
	struct bucket *b = !b0->hash ? b0 : !b1->hash ? b1 : b0->last_ms <= b1->last_ms ? b0 : b1;
	b->hash = h;
	b->key_len = (uint8_t)n;
	memcpy(b->key, key, n);
	b->milli = (int64_t)t->burst * 1000;
	b->last_ms = now;
	return b;
}

static uint32_t take_key(struct worker *w, struct table *t, const void *key, size_t n)
{
	if (!t->rate)
		return 0;
	if (n > KEY_MAX)
		n = KEY_MAX; /* identifiers are at most 64 bytes: cannot happen */
	return take(lookup(t, key, n, w->now_mono_ms), t->rate, t->burst, w->now_mono_ms);
}

uint32_t adm_take_user(struct worker *w, const char *user, size_t len)
{
	return take_key(w, &w->adm->users, user, len);
}

uint32_t adm_take_addr(struct worker *w, const struct netaddr *a)
{
	return take_key(w, &w->adm->addrs, a->b, sizeof(a->b));
}

uint32_t adm_admin_wait(struct worker *w, const struct netaddr *a)
{
	struct table *t = &w->adm->admin_fails;
	/* Refilled, nothing taken: a right token costs none. */
	return refill(lookup(t, a->b, sizeof(a->b), w->now_mono_ms), t->rate, t->burst, w->now_mono_ms);
}

void adm_admin_failed(struct worker *w, const struct netaddr *a)
{
	struct table *t = &w->adm->admin_fails;
	(void)take(lookup(t, a->b, sizeof(a->b), w->now_mono_ms), t->rate, t->burst, w->now_mono_ms);
}

uint32_t adm_take_instance(struct worker *w)
{
	struct adm *a = w->adm;
	if (!a->instance_rate)
		return 0;
	return take(&a->instance, a->instance_rate, a->instance_burst, w->now_mono_ms);
}
