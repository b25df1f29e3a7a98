/* script: the reservation scripts; see script.h for their contracts. */
#include "script.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* One call reserves a whole batch of orders for one SKU bucket, each
 * judged in turn exactly as if it came alone (later orders see earlier
 * ones' stock, per-user counts and keys). Redis's own work is per batch, not
 * per order: the bucket, the orders' ledger entries and their users' counts
 * are read with one HMGET each, the orders are judged in Lua, and what they
 * took is written at the end with one command per key (plus one SET per
 * Idempotency-Key). Writing last also makes a batch all or nothing: a
 * failed first write leaves no order half made. The window is read once, by
 * Redis's clock. A bucketed SKU checks the user's limit before the stock: a
 * dry bucket should fetch units only for an order that may have them.
 * In the script, pending: order id -> in the ledger (before or by this
 * batch); bought: user -> count so far; made: idem key -> order id, this
 * batch. */
const char script_reserve_lua[] =
	"local ttl, nb = ARGV[1], tonumber(ARGV[2])\n"
	"local n = (#ARGV - 2) / 7\n"
	"local out = {}\n"
	"local s = redis.call('HMGET', KEYS[1], 'stock', 'limit', 'starts', 'ends', 'buckets')\n"
	"if not s[1] then\n"
	"  for i = 1, n do out[i] = 'unknown' end\n"
	"  return out\n"
	"end\n"
	"if tonumber(s[5] or '1') ~= nb then\n"
	"  for i = 1, n do out[i] = 'buckets:' .. (s[5] or '1') end\n"
	"  return out\n"
	"end\n"
	"local window\n"
	"local starts, ends = tonumber(s[3] or '0'), tonumber(s[4] or '0')\n"
	"if starts > 0 or ends > 0 then\n"
	"  local t = redis.call('TIME')\n"
	"  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"  if starts > 0 and now < starts then window = 'not_started:' .. starts\n"
	"  elseif ends > 0 and now >= ends then window = 'ended:' .. ends end\n"
	"end\n"
	"local avail, limit = tonumber(s[1]), tonumber(s[2])\n"
	"local oids, users = {}, {}\n"
	"for i = 1, n do\n"
	"  local b = 2 + (i - 1) * 7\n"
	"  users[i], oids[i] = ARGV[b + 1], ARGV[b + 3]\n"
	"end\n"
	"local held = redis.call('HMGET', KEYS[3], unpack(oids))\n"
	"local had = redis.call('HMGET', KEYS[2], unpack(users))\n"
	"local pending, bought, made = {}, {}, {}\n"
	"for i = 1, n do\n"
	"  if held[i] then pending[oids[i]] = true end\n"
	"  if not bought[users[i]] then bought[users[i]] = tonumber(had[i] or '0') end\n"
	"end\n"
	"local taken, entries, buyers, listed, keys = 0, {}, {}, {}, {}\n"
	"for i = 1, n do\n"
	"  local b = 2 + (i - 1) * 7\n"
	"  local user, qty, oid, ms = ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3], ARGV[b + 4]\n"
	"  local ki, key, cap = tonumber(ARGV[b + 5]), ARGV[b + 6], tonumber(ARGV[b + 7])\n"
	"  local lim = limit\n"
	"  if cap > 0 and cap < lim then lim = cap end\n"
	"  local r\n"
	"  if ki > 0 then\n"
	"    local prev = made[KEYS[ki]] or redis.call('GET', KEYS[ki])\n"
	"    if prev then\n"
	"      local pid, pqty = string.match(prev, '^(%S+) ?(%d*)$')\n"
	"      if pqty ~= '' and tonumber(pqty) ~= qty then r = 'mismatch:' .. pid\n"
	"      elseif pending[pid] or redis.call('HEXISTS', KEYS[3], pid) == 1 then r = 'inflight:' .. pid\n"
	"      else r = 'dup:' .. pid end\n"
	"    end\n"
	"  end\n"
	"  if not r and pending[oid] then r = 'ok' end\n"
	"  if not r and window then r = window end\n"
	"  if not r and nb == 1 and avail <= 0 then r = 'sold_out' end\n"
	"  if not r and nb == 1 and avail < qty then r = 'insufficient:' .. avail end\n"
	"  if not r and bought[user] + qty > lim then r = 'limit:' .. math.max(lim - bought[user], 0) end\n"
	"  if not r and avail < qty then r = 'dry:' .. avail end\n"
	"  if not r then\n"
	"    avail, taken = avail - qty, taken + qty\n"
	"    if not listed[user] then\n"
	"      listed[user] = true\n"
	"      buyers[#buyers + 1] = user\n"
	"    end\n"
	"    bought[user] = bought[user] + qty\n"
	"    local entry = user .. ' ' .. qty .. ' ' .. ms\n"
	"    if ki > 0 then\n"
	"      made[KEYS[ki]] = oid .. ' ' .. qty\n"
	"      keys[#keys + 1] = KEYS[ki]\n"
	"      keys[#keys + 1] = made[KEYS[ki]]\n"
	"      entry = entry .. ' ' .. key\n"
	"    end\n"
	"    entries[#entries + 1] = oid\n"
	"    entries[#entries + 1] = entry\n"
	"    pending[oid] = true\n"
	"    r = 'ok'\n"
	"  end\n"
	"  out[i] = r\n"
	"end\n"
	"if taken > 0 then\n"
	"  redis.call('HSET', KEYS[3], unpack(entries))\n"
	"  local counts = {}\n"
	"  for _, user in ipairs(buyers) do\n"
	"    counts[#counts + 1] = user\n"
	"    counts[#counts + 1] = bought[user]\n"
	"  end\n"
	"  redis.call('HSET', KEYS[2], unpack(counts))\n"
	"  redis.call('HINCRBY', KEYS[1], 'stock', -taken)\n"
	"  redis.call('HINCRBY', KEYS[1], 'sold', taken)\n"
	"  for j = 1, #keys, 2 do redis.call('SET', keys[j], keys[j + 1], 'EX', ttl) end\n"
	"end\n"
	"return out\n";

/* Gives the units of ledger entry e ("user qty ...") back to the SKU
 * (KEYS[1]) and its user's count (KEYS[2]); shared by release and return. */
#define GIVE_BACK_LUA \
	"local user, qty = string.match(e, '^(%S+) (%d+)')\n" \
	"qty = tonumber(qty)\n" \
	"redis.call('HINCRBY', KEYS[1], 'stock', qty)\n" \
	"redis.call('HINCRBY', KEYS[1], 'sold', -qty)\n" \
	"if redis.call('HINCRBY', KEYS[2], user, -qty) <= 0 then\n" \
	"  redis.call('HDEL', KEYS[2], user)\n" \
	"end\n"

const char script_release_lua[] =
	SCRIPT_ALLOW_OOM
	"local e = redis.call('HGET', KEYS[3], ARGV[1])\n"
	"if not e or string.sub(e, 1, 2) == 'C ' then return 0 end\n"
	GIVE_BACK_LUA
	"redis.call('HDEL', KEYS[3], ARGV[1])\n"
	"if KEYS[4] then redis.call('DEL', KEYS[4]) end\n"
	"return 1\n";

const char script_claim_lua[] =
	SCRIPT_ALLOW_OOM
	"local e = redis.call('HGET', KEYS[1], ARGV[1])\n"
	"if not e then return 0 end\n"
	"if string.sub(e, 1, 2) == 'C ' then return 2 end\n"
	"redis.call('HSET', KEYS[1], ARGV[1], 'C ' .. e)\n"
	"return 1\n";

/* A batch's entries move with three commands, whatever its size. */
const char script_confirm_lua[] =
	SCRIPT_ALLOW_OOM
	"local es = redis.call('HMGET', KEYS[1], unpack(ARGV))\n"
	"local ids, moved, seen = {}, {}, {}\n"
	"for i = 1, #ARGV do\n"
	"  local id, e = ARGV[i], es[i]\n"
	"  if e and not seen[id] then\n"
	"    seen[id] = true\n"
	"    if string.sub(e, 1, 2) == 'C ' then e = string.sub(e, 3) end\n"
	"    ids[#ids + 1] = id\n"
	"    moved[#moved + 1] = id\n"
	"    moved[#moved + 1] = e\n"
	"  end\n"
	"end\n"
	"if #ids > 0 then\n"
	"  redis.call('HDEL', KEYS[1], unpack(ids))\n"
	"  redis.call('HSET', KEYS[2], unpack(moved))\n"
	"end\n"
	"return #ids\n";

const char script_return_lua[] =
	SCRIPT_ALLOW_OOM
	"if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then return 'already' end\n"
	"local e = redis.call('HGET', KEYS[3], ARGV[1])\n"
	"if not e then\n"
	"  if redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then return 'pending' end\n"
	"  return 'unknown'\n"
	"end\n"
	GIVE_BACK_LUA
	"redis.call('HDEL', KEYS[3], ARGV[1])\n"
	"redis.call('HSET', KEYS[4], ARGV[1], e)\n"
	"return 'returned:' .. qty .. ':' .. user\n";

/* The donor half of a transfer: at least what the order needs, and half of
 * what the donor has, so one transfer serves the orders that follow too. */
const char script_take_lua[] =
	"local s = redis.call('HMGET', KEYS[1], 'stock', 'buckets')\n"
	"if not s[1] then return 'unknown' end\n"
	"if tonumber(s[2] or '1') ~= tonumber(ARGV[4]) then return 'buckets:' .. (s[2] or '1') end\n"
	"local avail = tonumber(s[1])\n"
	"if avail <= 0 then\n"
	"  if redis.call('HLEN', KEYS[2]) > 0 then return 'transit' end\n"
	"  return 'empty'\n"
	"end\n"
	"local n = math.max(tonumber(ARGV[3]), math.ceil(avail / 2))\n"
	"if n > avail then n = avail end\n"
	"redis.call('HINCRBY', KEYS[1], 'stock', -n)\n"
	"redis.call('HINCRBY', KEYS[1], 'moved_out', n)\n"
	"redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. n .. ' ' .. ARGV[5])\n"
	"return 'taken:' .. n\n";

const char script_give_lua[] =
	SCRIPT_ALLOW_OOM
	"if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
	"if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end\n"
	"redis.call('HINCRBY', KEYS[1], 'stock', ARGV[1])\n"
	"redis.call('HINCRBY', KEYS[1], 'moved_in', ARGV[1])\n"
	"return 1\n";

const char script_xcheck_lua[] =
	SCRIPT_ALLOW_OOM
	"local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
	"if not v then return false end\n"
	"redis.call('HSET', KEYS[1], ARGV[1], v)\n"
	"return v\n";

const char *const script_src[SCRIPT_N] = {
	[SCRIPT_RESERVE] = script_reserve_lua, [SCRIPT_RELEASE] = script_release_lua,
	[SCRIPT_CONFIRM] = script_confirm_lua, [SCRIPT_RETURN] = script_return_lua,
	[SCRIPT_TAKE] = script_take_lua,       [SCRIPT_GIVE] = script_give_lua,
	[SCRIPT_XCHECK] = script_xcheck_lua,
};

/* A number after a word's colon: digits only (the script writes them). */
static bool decode_number(const char *s, size_t len, long long *out)
{
	if (len == 0 || len > 19)
		return false;
	long long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

void script_decode_reserve(const char *s, size_t len, struct reserve_result *out)
{
	static const struct {
		const char *word;
		enum reserve_verdict verdict;
		enum { BARE, NUMBER, ORDER_ID } arg;
	} words[] = {
		{"ok", RESERVE_OK, BARE},
		{"sold_out", RESERVE_SOLD_OUT, BARE},
		{"unknown", RESERVE_UNKNOWN, BARE},
		{"insufficient", RESERVE_INSUFFICIENT, NUMBER},
		{"limit", RESERVE_LIMIT, NUMBER},
		{"not_started", RESERVE_NOT_STARTED, NUMBER},
		{"ended", RESERVE_ENDED, NUMBER},
		{"dry", RESERVE_DRY, NUMBER},
		{"buckets", RESERVE_BUCKETS, NUMBER},
		{"dup", RESERVE_DUP, ORDER_ID},
		{"inflight", RESERVE_INFLIGHT, ORDER_ID},
		{"mismatch", RESERVE_MISMATCH, ORDER_ID},
	};
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t wl = strlen(words[i].word);
		if (len < wl || memcmp(s, words[i].word, wl) != 0)
			continue;
		if (words[i].arg == BARE) {
			if (len != wl)
				continue;
		} else if (len <= wl + 1 || s[wl] != ':') {
			continue;
		} else if (words[i].arg == NUMBER) {
			if (!decode_number(s + wl + 1, len - wl - 1, &out->number))
				continue;
		} else if (len - wl - 1 != sizeof(out->order_id) - 1) {
			continue;
		} else {
			memcpy(out->order_id, s + wl + 1, sizeof(out->order_id) - 1);
		}
		out->verdict = words[i].verdict;
		return;
	}
	out->verdict = RESERVE_BAD;
	snprintf(out->text, sizeof(out->text), "%.*s", (int)(len < 64 ? len : 64), s);
}
