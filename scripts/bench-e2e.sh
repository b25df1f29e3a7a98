#!/usr/bin/env bash
# bench-e2e.sh: flashgate end to end on this machine, with references
# measured in the same run, so the ratios mean something on a shared,
# noisy machine. Results go to stdout as a Markdown table (paste it into
# BENCHMARKS.md with the date, commit and machine line it prints).
#
# Measured, each with flashload closed loop (--rate max) over the same
# connections, gateway and services:
#   healthz    GET /healthz: the front end alone (no Redis, no Kafka)
#   sold-out   POST for a SKU with no stock: front end + one Redis script
#              (the sold-out cache is off here, so each one goes to Redis)
#   accepted   POST that succeeds: front end + Redis + Kafka (acks=all), closed
#              loop, and open loop: flashload --find-capacity --p99 5ms
#   cluster    sold-out and accepted again, with Redis a cluster of three
#              masters (services.sh cluster-up) instead of one server
#   wide       accepted orders against nginx's static `return 202` (worker
#              processes = cores), both driven by flashload closed loop with
#              BENCH_WIDE_CONNECTIONS (default 2000): the end-to-end issue's
#              "0.5x nginx" comparison, BENCH_WIDE_ROUNDS times (default 3),
#              alternating, and the median ratio; with the CPU time per
#              accepted order of the gateway, Redis and the broker
# and Redis's own capacity for the reserve script (redis-benchmark,
# EVALSHA on the sold-out path: one order per call, pipelined 16 and not,
# and 16 orders per call as the gateway batches a hot SKU).
#
# Environment: BENCH_REQUESTS (per run, default 200000), BENCH_CONNECTIONS
# (default 64), BENCH_WORKERS (gateway workers, default 2).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench FG_REDIS_PORT=16579 FG_KAFKA_PORT=19292 FG_KAFKA_CPORT=19293
export FG_TOPIC=orders-bench FG_PARTITIONS=4
n=${BENCH_REQUESTS:-200000}
c=${BENCH_CONNECTIONS:-64}
workers=${BENCH_WORKERS:-2}
wide=${BENCH_WIDE_CONNECTIONS:-2000}
wide_rounds=${BENCH_WIDE_ROUNDS:-3}
port=18280
ngx_port=18282
ngx_pid=
bench_cleanup_extra() {
	if [ -n "$ngx_pid" ]; then kill -QUIT "$ngx_pid" 2>/dev/null || true; fi
}
. scripts/bench-common.sh
bench_prepare

conf=$FG_RUN_DIR/flashgate.conf
cat >"$conf" <<CONF
[server]
port = $port
workers = $workers
; Room for the wide runs' connections and the orders they keep in flight.
max_connections = $((wide + 64))
max_inflight = $((2 * wide + 1024))
[order]
; Every sold-out request goes to Redis here: this measures the reservation
; path. scripts/bench-frontend.sh measures the cached sold-out path.
soldout_cache_ms = 0
$(bench_services_conf)
CONF
{
	echo "sku,stock,per_user_limit"
	echo "empty1,0,1"
	echo "bulk1,100000000,100000000"
} >"$FG_RUN_DIR/stock.csv"
bench_start_gateway "$conf" "$FG_RUN_DIR/gateway.log" "$port"

# One flashload run; prints "req/s p50 p99" (ms). LOAD_TARGET and
# LOAD_CONNECTIONS override the gateway and $c.
load() { # extra flashload args...
	bin/flashload --sign-key "$FG_SIGN_KEY" --target "${LOAD_TARGET:-127.0.0.1:$port}" --rate max --requests "$n" \
		--connections "${LOAD_CONNECTIONS:-$c}" \
		--quiet --json "$FG_RUN_DIR/run.json" "$@" >/dev/null
	python3 - "$FG_RUN_DIR/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("%.0f %.2f %.2f" % (r["achieved_rps"], r["latency_us"]["p50"] / 1000, r["latency_us"]["p99"] / 1000))
PY
}

# Warm the JVM and the gateway so the first measured run is not the cold one.
load --skus 1 --sku-prefix bulk --users 1000000 --requests 20000 >/dev/null

frontend=$(load --skus 1 --sku-prefix empty --qty 99 --users 1000)   # 400 before Redis
soldout=$(load --skus 1 --sku-prefix empty --users 1000)             # 409 from Redis
accepted=$(load --skus 1 --sku-prefix bulk --users 1000000)          # 202 through Kafka

sha=$(redis-cli -p "$FG_REDIS_PORT" SCRIPT LOAD "$(sed -n '/^const char script_reserve_lua/,/;$/p' gateway/script.c |
	sed '1d;s/^\t"//;s/\\n"$//;s/\\n";$//;s/\\"/"/g;s/\\\\/\\/g')")
# The benchmark must run the real script, not collect NOSCRIPT errors.
one_order=(u1 1 0000000000000001 0 0 '')
# ARGV: idempotency ttl, the SKU's bucket count, then the orders.
check=$(redis-cli -p "$FG_REDIS_PORT" EVALSHA "$sha" 3 'fg:{empty1}' 'fg:{empty1}:users' 'fg:{empty1}:pending' 0 1 "${one_order[@]}")
if [ "$check" != "sold_out" ]; then
	echo "bench: the reserve script extracted from gateway/script.c answers '$check', not sold_out" >&2
	exit 1
fi
rb() { # pipeline orders-per-call
	local orders=() i
	for i in $(seq 1 "$2"); do orders+=("${one_order[@]}"); done
	redis-benchmark -p "$FG_REDIS_PORT" -n "$n" -c "$c" -P "$1" -q \
		EVALSHA "$sha" 3 'fg:{empty1}' 'fg:{empty1}:users' 'fg:{empty1}:pending' 0 1 "${orders[@]}" |
		sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1
}
rb1=$(rb 1 1)
rb16=$(rb 16 1)
rbb=$(rb 1 16)
rbb_orders=$(python3 -c "print('%.0f' % ($rbb * 16))")

# Open loop: the highest rate of accepted orders whose p99 stays within 5 ms.
bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$port" --find-capacity --p99 5ms --step 3s --rate 1000 \
	--connections "$c" --skus 1 --sku-prefix bulk --users 1000000 --json "$FG_RUN_DIR/capacity.json" \
	>"$FG_RUN_DIR/capacity.txt" || true
capacity=$(python3 -c "import json,sys; print('%.0f' % json.load(open(sys.argv[1]))['capacity_rps'])" \
	"$FG_RUN_DIR/capacity.json")

# Wide: accepted orders against nginx's static answer, same client and
# connections, alternating. Where the 2 cores go per accepted order: the
# gateway's CPU (with its librdkafka threads), Redis's and the broker's.
bench_start_nginx "$FG_RUN_DIR/nginx" "$ngx_port" "$(nproc)" '{"order_id":"0000000000000001","status":"accepted"}'
wide_rows=()
wide_ratios=()
redis_pid=$(cat "$FG_RUN_DIR/redis.pid")
kafka_pid=$(cat "$FG_RUN_DIR/kafka.pid")
for round in $(seq 1 "$wide_rounds"); do
	nginx_wide=$(LOAD_TARGET=127.0.0.1:$ngx_port LOAD_CONNECTIONS=$wide load --skus 1 --sku-prefix bulk --users 1000000)
	before="$(bench_cpu_us "$gw_pid") $(bench_cpu_us "$redis_pid") $(bench_cpu_us "$kafka_pid")"
	gw_wide=$(LOAD_CONNECTIONS=$wide load --skus 1 --sku-prefix bulk --users 1000000)
	after="$(bench_cpu_us "$gw_pid") $(bench_cpu_us "$redis_pid") $(bench_cpu_us "$kafka_pid")"
	cpu=$(python3 -c "import sys; b, a = sys.argv[1].split(), sys.argv[2].split()
print(' / '.join('%.1f' % ((int(y) - int(x)) / $n) for x, y in zip(b, a)))" "$before" "$after")
	read -r nw_rps nw_p50 nw_p99 <<<"$nginx_wide"
	read -r gw_rps gw_p50 gw_p99 <<<"$gw_wide"
	wide_rows+=("| nginx \`return 202\`, $wide connections (round $round) | $nw_rps | $nw_p50 | $nw_p99 | 1.00 | |")
	wide_ratios+=("$(bench_ratio "$gw_rps" "$nw_rps")")
	wide_rows+=("| accepted, $wide connections (round $round) | $gw_rps | $gw_p50 | $gw_p99 | ${wide_ratios[-1]} | $cpu |")
done
kill -QUIT "$ngx_pid" 2>/dev/null || true
wait "$ngx_pid" 2>/dev/null || true
ngx_pid=

# The same gateway against a Redis Cluster of three masters: each worker
# holds a link per master and routes each call by its bucket's slot.
bench_stop_gateway
export FG_REDIS_CLUSTER_PORT=17201
scripts/services.sh cluster-up >/dev/null
cconf=$FG_RUN_DIR/cluster.conf
sed "s/^port = $FG_REDIS_PORT\$/port = $FG_REDIS_CLUSTER_PORT/" "$conf" >"$cconf"
bench_start_gateway "$cconf" "$FG_RUN_DIR/gateway-cluster.log" "$port"
load --skus 1 --sku-prefix bulk --users 1000000 --requests 20000 >/dev/null
c_soldout=$(load --skus 1 --sku-prefix empty --users 1000)
c_accepted=$(load --skus 1 --sku-prefix bulk --users 1000000)
bench_stop_gateway

read -r f_rps f_p50 f_p99 <<<"$frontend"
read -r cs_rps cs_p50 cs_p99 <<<"$c_soldout"
read -r ca_rps ca_p50 ca_p99 <<<"$c_accepted"
read -r s_rps s_p50 s_p99 <<<"$soldout"
read -r a_rps a_p50 a_p99 <<<"$accepted"

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) cores;" \
	"$n requests per run, $c connections, $workers gateway workers, flashload on the same machine"
echo
echo "| path | req/s | p50 ms | p99 ms | vs front end |"
echo "|---|---:|---:|---:|---:|"
echo "| front end only (400 before Redis) | $f_rps | $f_p50 | $f_p99 | 1.00 |"
echo "| sold out (409 from the Redis script) | $s_rps | $s_p50 | $s_p99 | $(bench_ratio "$s_rps" "$f_rps") |"
echo "| accepted (202 after Kafka acks=all) | $a_rps | $a_p50 | $a_p99 | $(bench_ratio "$a_rps" "$f_rps") |"
echo "| accepted, open loop: highest rate with p99 <= 5 ms (--find-capacity) | $capacity | | <= 5 | $(bench_ratio "$capacity" "$f_rps") |"
echo "| sold out, Redis Cluster of 3 masters | $cs_rps | $cs_p50 | $cs_p99 | $(bench_ratio "$cs_rps" "$f_rps") |"
echo "| accepted, Redis Cluster of 3 masters | $ca_rps | $ca_p50 | $ca_p99 | $(bench_ratio "$ca_rps" "$f_rps") |"
echo "| redis-benchmark EVALSHA reserve, no pipelining | $rb1 | | | $(bench_ratio "$rb1" "$f_rps") |"
echo "| redis-benchmark EVALSHA reserve, pipeline 16 | $rb16 | | | $(bench_ratio "$rb16" "$f_rps") |"
echo "| redis-benchmark EVALSHA reserve, 16 orders per call ($rbb calls/s) | $rbb_orders | | | $(bench_ratio "$rbb_orders" "$f_rps") |"
echo
echo "| server, path (flashload closed loop) | req/s | p50 ms | p99 ms | vs nginx | CPU us per order: gateway / Redis / broker |"
echo "|---|---:|---:|---:|---:|---|"
printf '%s\n' "${wide_rows[@]}"
echo
echo "Accepted vs nginx at $wide connections by round: ${wide_ratios[*]}; median $(bench_median "${wide_ratios[@]}")"
