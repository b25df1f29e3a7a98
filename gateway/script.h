/*
 * script: the Lua scripts that own the stock invariants in Redis.
 *
 * reserve  KEYS: fg:{sku} fg:{sku}:users fg:{sku}:pending
 *          ARGV: user_id qty order_id accepted_at_ms
 *          -> "ok" | "sold_out" | "insufficient:<available>" |
 *             "limit:<remaining for this user>" | "unknown"
 * release  KEYS: the same   ARGV: order_id   -> 1 released | 0 nothing to do
 * claim    KEYS: fg:{sku}:pending   ARGV: order_id
 *          -> 1 claimed | 2 already claimed | 0 no such entry
 *
 * Every check runs before the first write, because an error inside a Lua
 * script does not undo the writes before it. reserve is idempotent per
 * order id and records the reservation in the pending ledger; release acts
 * only on a ledger entry and removes it, so it can be replayed safely after
 * a lost reply. `flashgate reconcile` claims an abandoned entry (prefixing
 * its value with "C ") before publishing it; release leaves a claimed entry
 * alone, so a late release can never undo an order reconcile has written.
 * Loaded with SCRIPT LOAD and called with EVALSHA (a reply of
 * NOSCRIPT makes the caller load them again).
 */
#ifndef FG_SCRIPT_H
#define FG_SCRIPT_H

#define SCRIPT_SHA_LEN 40

extern const char script_reserve_lua[];
extern const char script_release_lua[];
extern const char script_claim_lua[];

struct script_shas {
	char reserve[SCRIPT_SHA_LEN + 1];
	char release[SCRIPT_SHA_LEN + 1];
};

#endif
