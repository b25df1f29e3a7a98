/* script: the reservation scripts; see script.h for their contracts. */
#include "script.h"

const char script_reserve_lua[] =
	"if KEYS[4] then\n"
	"  local prev = redis.call('GET', KEYS[4])\n"
	"  if prev then\n"
	"    if redis.call('HEXISTS', KEYS[3], prev) == 1 then return 'inflight:' .. prev end\n"
	"    return 'dup:' .. prev\n"
	"  end\n"
	"end\n"
	"if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return 'ok' end\n"
	"local s = redis.call('HMGET', KEYS[1], 'stock', 'limit')\n"
	"if not s[1] then return 'unknown' end\n"
	"local avail = tonumber(s[1])\n"
	"local limit = tonumber(s[2])\n"
	"local qty = tonumber(ARGV[2])\n"
	"if avail <= 0 then return 'sold_out' end\n"
	"if avail < qty then return 'insufficient:' .. avail end\n"
	"local bought = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')\n"
	"if bought + qty > limit then return 'limit:' .. (limit - bought) end\n"
	"redis.call('HINCRBY', KEYS[1], 'stock', -qty)\n"
	"redis.call('HINCRBY', KEYS[1], 'sold', qty)\n"
	"redis.call('HINCRBY', KEYS[2], ARGV[1], qty)\n"
	"local entry = ARGV[1] .. ' ' .. qty .. ' ' .. ARGV[4]\n"
	"if KEYS[4] then\n"
	"  redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[6])\n"
	"  entry = entry .. ' ' .. ARGV[5]\n"
	"end\n"
	"redis.call('HSET', KEYS[3], ARGV[3], entry)\n"
	"return 'ok'\n";

const char script_release_lua[] =
	"local e = redis.call('HGET', KEYS[3], ARGV[1])\n"
	"if not e or string.sub(e, 1, 2) == 'C ' then return 0 end\n"
	"local user, qty = string.match(e, '^(%S+) (%d+)')\n"
	"qty = tonumber(qty)\n"
	"redis.call('HINCRBY', KEYS[1], 'stock', qty)\n"
	"redis.call('HINCRBY', KEYS[1], 'sold', -qty)\n"
	"if redis.call('HINCRBY', KEYS[2], user, -qty) <= 0 then\n"
	"  redis.call('HDEL', KEYS[2], user)\n"
	"end\n"
	"redis.call('HDEL', KEYS[3], ARGV[1])\n"
	"if KEYS[4] then redis.call('DEL', KEYS[4]) end\n"
	"return 1\n";

const char script_claim_lua[] =
	"local e = redis.call('HGET', KEYS[1], ARGV[1])\n"
	"if not e then return 0 end\n"
	"if string.sub(e, 1, 2) == 'C ' then return 2 end\n"
	"redis.call('HSET', KEYS[1], ARGV[1], 'C ' .. e)\n"
	"return 1\n";
