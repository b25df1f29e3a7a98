#!/usr/bin/env bash
# bench-confirm.sh: what letting confirmations wait for each other saves
# (redis.confirm_delay_ms, default 2). An accepted order costs Redis two
# script calls, its reservation and its confirmation; below the peak a loop
# turn holds one order, so each confirmation was a call of its own. One run
# on this machine, one Redis and one broker (services.sh, own ports), the
# same gateway binary with confirm_delay_ms = 0 (a confirm call at the end
# of every loop turn: the reference, as before the setting) and with the
# default, alternated within each of BENCH_ROUNDS rounds (default 3). Each:
# accepted orders open loop at each of BENCH_RATES (default "5000 10000")
# for 8 s over 128 connections, then closed loop at 2,000 connections
# (BENCH_REQUESTS, default 150000). Per row: Redis script calls per order
# (INFO commandstats), the CPU per order of the gateway (all its threads),
# Redis and the broker, p50 and p99. Prints Markdown for BENCHMARKS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-confirm FG_REDIS_PORT=17279 FG_KAFKA_PORT=19852 FG_KAFKA_CPORT=19853
export FG_TOPIC=orders-bench FG_PARTITIONS=4
rates=${BENCH_RATES:-5000 10000}
n=${BENCH_REQUESTS:-150000}
rounds=${BENCH_ROUNDS:-3}
port=18885
. scripts/bench-common.sh
bench_prepare
redis_pid=$(cat "$FG_RUN_DIR/redis.pid")
kafka_pid=$(cat "$FG_RUN_DIR/kafka.pid")

write_conf() { # confirm_delay_ms
	cat >"$FG_RUN_DIR/flashgate.conf" <<CONF
[server]
port = $port
max_connections = 4096
$(bench_services_conf)
CONF
	# [redis] is the first section bench_services_conf prints.
	sed -i "s/^\[redis\]$/[redis]\nconfirm_delay_ms = $1/" "$FG_RUN_DIR/flashgate.conf"
}
printf 'sku,stock,per_user_limit\nbulk1,1000000000,1000000000\n' >"$FG_RUN_DIR/stock.csv"

script_calls() { redis-cli -p "$FG_REDIS_PORT" info commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p'; }

# One load against the running gateway; prints the row's cells after the
# setting: orders/s, script calls/order, CPU us/order, p50 / p99.
measure() { # flashload args...
	local calls0 g0 r0 k0 calls1 g1 r1 k1
	calls0=$(script_calls)
	g0=$(bench_cpu_us "$gw_pid") r0=$(bench_cpu_us "$redis_pid") k0=$(bench_cpu_us "$kafka_pid")
	bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$port" --users 100000000 --skus 1 --sku-prefix bulk --quiet \
		--json "$FG_RUN_DIR/run.json" "$@" >/dev/null
	g1=$(bench_cpu_us "$gw_pid") r1=$(bench_cpu_us "$redis_pid") k1=$(bench_cpu_us "$kafka_pid")
	calls1=$(script_calls)
	python3 - "$FG_RUN_DIR/run.json" "$((calls1 - calls0))" "$((g1 - g0))" "$((r1 - r0))" "$((k1 - k0))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
calls, gw, redis, broker = (int(a) for a in sys.argv[2:6])
orders = r["counts"].get("202 accepted", 0)
if orders != r["requests"]:
    sys.exit("bench-confirm: %d of %d requests were not accepted" % (r["requests"] - orders, r["requests"]))
print("%.0f | %.2f | %.1f / %.1f / %.1f | %.2f / %.2f" % (r["achieved_rps"], calls / orders,
      gw / orders, redis / orders, broker / orders, r["latency_us"]["p50"] / 1000, r["latency_us"]["p99"] / 1000))
PY
}

start() { # confirm_delay_ms
	write_conf "$1"
	bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$port"
}
label() { if [ "$1" = 0 ]; then echo "0 (reference)"; else echo "$1 (default)"; fi; }

bench_ab_header
echo
echo "| round | confirm_delay_ms | load | orders/s | Redis script calls/order | CPU us/order: gateway / Redis / broker | p50 / p99 ms |"
echo "|---:|---:|---|---:|---:|---|---|"
bench_ab_rows start label measure 0 2
