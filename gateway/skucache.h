/*
 * skucache: a worker's short memory of SKUs that need no trip to Redis:
 * sold out (stock 0), unknown, or outside its sale window (not started,
 * with the start it was given; ended). At a sale's opening most requests are for
 * a few hot SKUs that sell out in seconds; from then on this answers them
 * from the worker's own memory.
 *
 * Entries expire (order.soldout_cache_ms, order.unknown_cache_ms), which is
 * how a restock (`flashgate stock add`), a new `stock load`, or stock given
 * back by a failed order becomes visible on every worker of every gateway
 * instance: within one expiry, with no invalidation channel to lose. An
 * expired entry costs one reservation call, which refreshes it; the other
 * requests meanwhile keep getting the remembered answer.
 *
 * Owns: a fixed-size open-addressing table allocated at start-up; no
 * allocation afterwards. When the table is crowded, the entry closest to
 * expiry gives way.
 */
#ifndef FG_SKUCACHE_H
#define FG_SKUCACHE_H

#include <stddef.h>
#include <stdint.h>

struct worker;

enum skc_state { SKC_NONE = 0, SKC_SOLD_OUT, SKC_UNKNOWN, SKC_NOT_STARTED, SKC_ENDED };

int skc_init(struct worker *w) __attribute__((warn_unused_result));
void skc_destroy(struct worker *w);

/* What is remembered about sku, if it has not expired, and the value put
 * with it (the window's start or end). */
enum skc_state skc_get(struct worker *w, const char *sku, size_t len, int64_t *value);
/* Forgets sku: Redis said it has stock again. */
void skc_forget(struct worker *w, const char *sku, size_t len);
/* Each tick: counts another slice of the table. */
void skc_tick(struct worker *w);
/* The SKUs this worker knows as sold out, as of its last whole count
 * (a few ticks old: the table's size over 4,096 slots a tick). */
unsigned skc_sold_out(const struct worker *w);

/* Remembers sku's state (and a value to answer with) for ttl_ms (0: not at all). */
void skc_put(struct worker *w, const char *sku, size_t len, enum skc_state state, unsigned ttl_ms, int64_t value);

#endif
