/*
 * script: the Lua scripts that own the stock invariants in Redis.
 *
 * Every script works on one SKU bucket (core/bucket.h); {sku} below is the
 * bucket's tag.
 * reserve  a batch of orders for one SKU bucket, in the order given
 *          KEYS: fg:{sku} fg:{sku}:users fg:{sku}:pending [fg:{sku}:idem:N:USER:KEY ...]
 *          ARGV: ttl_s, buckets (K), then per order: user_id qty order_id
 *                accepted_at_ms key_index key cap (key_index: that order's
 *                idem key in KEYS, 0 for none; cap: the buyer's token's
 *                fg_limit, a lower per-user limit than the SKU's, 0 for none)
 *          -> an array, one result per order:
 *             "ok" | "sold_out" | "insufficient:<available>" |
 *             "limit:<remaining for this user>" | "unknown" |
 *             "dup:<order_id>" (the key already made that order) |
 *             "inflight:<order_id>" (the key's order is not settled yet) |
 *             "mismatch:<order_id>" (the key made that order for another
 *             qty: a different request under a reused key) |
 *             "not_started:<starts_ms>" | "ended:<ends_ms>" (the SKU's sale window,
 *             judged by Redis's clock, so gateways with skewed clocks agree) |
 *             "dry:<available>" (K > 1: this bucket lacks the units; the
 *             user's limit allows them) | "buckets:<K>" (the SKU was loaded
 *             with another bucket count than the caller's)
 *          A single order is a batch of one. Each result is decoded once,
 *          where the reply is read, by script_decode_reserve (below).
 * release  KEYS: the same three [and the idem key]   ARGV: order_id
 *          -> 1 released | 0 nothing to do; releasing an order frees its key
 * confirm  KEYS: fg:{sku}:pending fg:{sku}:orders   ARGV: order_id [order_id ...]
 *          -> how many moved (Kafka has the orders: each entry moves from the
 *          pending ledger to the settled orders, without any claim mark; an
 *          id with no entry is skipped). The gateway confirms a turn's
 *          orders of one bucket in one call.
 * return   KEYS: fg:{sku} fg:{sku}:users fg:{sku}:orders fg:{sku}:returned
 *                fg:{sku}:pending   ARGV: order_id
 *          -> "returned:<qty>:<user>" (qty first: a user id may hold ':') | "already" (returned before: nothing
 *          changes) | "pending" (not settled yet: reconcile's business) | "unknown"
 *          The order service cancelled a settled order: its units and the
 *          user's count go back, exactly once.
 * claim    KEYS: fg:{sku}:pending   ARGV: order_id
 *          -> 1 claimed | 2 already claimed | 0 no such entry
 * take     the first half of a transfer between two buckets of a SKU
 *          KEYS: fg:{donor} fg:{donor}:xfer
 *          ARGV: transfer_id to_bucket units_wanted buckets (K) now_ms
 *          -> "taken:<n>" (n units left the donor and are recorded in its
 *          xfer ledger) | "empty" | "transit" (empty, but units it gave
 *          away are on their way to another bucket: not sold out yet) |
 *          "unknown" | "buckets:<K>"
 * give     the second half, on the receiving bucket
 *          KEYS: fg:{to} fg:{to}:xin:TRANSFER_ID   ARGV: n mark_ttl_s
 *          -> 1 given | 0 given before (a replay) | -1 no such bucket
 *          Then the caller removes the donor's xfer entry (HDEL). The
 *          arrival mark outlives any entry reconcile will still give
 *          (KEYS_XIN_TTL_S), so a transfer is never given twice.
 * xcheck   whether a take whose answer a failure took ran: KEYS:
 *          fg:{donor}:xfer   ARGV: transfer_id
 *          -> the donor's entry "to_bucket units ms", or nil (it never ran,
 *          or the transfer is finished). The entry is written back as it
 *          is, so that a WAIT after the call also covers the take's writes:
 *          units are given only once the take would survive a failover.
 *
 * Every check runs before the first write, because an error inside a Lua
 * script does not undo the writes before it: reserve judges the whole
 * batch, then writes what it took. The caller still releases every order
 * of a batch that answered with an error (release is a no-op for an order
 * that has no ledger entry). reserve is idempotent per
 * order id and records the reservation in the pending ledger; release acts
 * only on a ledger entry and removes it, so it can be replayed safely after
 * a lost reply. `flashgate reconcile` claims an abandoned entry (prefixing
 * its value with "C ") before publishing it; release leaves a claimed entry
 * alone, so a late release can never undo an order reconcile has written.
 * Loaded with SCRIPT LOAD and called with EVALSHA (a reply of
 * NOSCRIPT makes the caller load them again).
 *
 * A Redis that has reached maxmemory (noeviction) refuses reserve and take
 * with OOM before their first write, so nothing is taken. The scripts that
 * settle what a reservation made (release, confirm, return, claim, give,
 * xcheck) start with SCRIPT_ALLOW_OOM and still run: they remove or move
 * entries and add none worth counting, and a release refused there would
 * leave stock taken behind a 503 that says none is (and reconcile's
 * complete policy would later publish the order its client was told had
 * failed).
 */
#ifndef FG_SCRIPT_H
#define FG_SCRIPT_H

#include <stddef.h>

#define SCRIPT_SHA_LEN 40

/* Script flags (the "#!lua" line) need Redis 7.0: stock_connect refuses
 * an older server at start-up rather than at the first release. */
#define SCRIPT_ALLOW_OOM "#!lua flags=allow-oom\n"
#define SCRIPT_REDIS_MAJOR 7

extern const char script_reserve_lua[];
extern const char script_release_lua[];
extern const char script_claim_lua[];
extern const char script_confirm_lua[];
extern const char script_return_lua[];
extern const char script_take_lua[];
extern const char script_give_lua[];
extern const char script_xcheck_lua[];

/* The scripts the gateway calls by SHA (claim is reconcile's alone). */
enum script_id {
	SCRIPT_RESERVE, SCRIPT_RELEASE, SCRIPT_CONFIRM, SCRIPT_RETURN, SCRIPT_TAKE, SCRIPT_GIVE,
	SCRIPT_XCHECK, SCRIPT_N
};
extern const char *const script_src[SCRIPT_N];

struct script_shas {
	char sha[SCRIPT_N][SCRIPT_SHA_LEN + 1];
};

/* One order's result of the reserve script (above), decoded once where
 * the reply is read: what it says and its number or order id. */
enum reserve_verdict {
	RESERVE_OK,
	RESERVE_SOLD_OUT,
	RESERVE_INSUFFICIENT, /* number: units available */
	RESERVE_LIMIT,        /* number: what the user may still buy */
	RESERVE_DUP,          /* order_id: the key's order, settled */
	RESERVE_INFLIGHT,     /* order_id: the key's order, not settled yet */
	RESERVE_MISMATCH,     /* order_id: the key made that order for another qty */
	RESERVE_NOT_STARTED,  /* number: the sale's start, Unix ms */
	RESERVE_ENDED,        /* number: its end */
	RESERVE_DRY,          /* number: units this bucket has (buckets > 1) */
	RESERVE_BUCKETS,      /* number: the SKU's bucket count, not the gateway's */
	RESERVE_UNKNOWN,
	RESERVE_BAD,          /* none of these: text holds what came */
};

struct reserve_result {
	enum reserve_verdict verdict;
	long long number;
	char order_id[17];
	char text[65]; /* RESERVE_BAD: the reply, cut, for the log */
};

/* Decodes one result string (s[0..len)) of the reserve script. */
void script_decode_reserve(const char *s, size_t len, struct reserve_result *out);

#endif
