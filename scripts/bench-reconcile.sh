#!/usr/bin/env bash
# bench-reconcile.sh: what the gateway's own reconcile passes ([reconcile]
# interval_ms) cost. One Redis and one broker (services.sh, own ports) and a
# catalogue of BENCH_SKUS SKUs (default 1000, the demo's size).
#  1. One pass with nothing to settle, the work every pass does during a
#     sale (`flashgate reconcile`, 5 times; process start included), with the
#     catalogue loaded with buckets = 1 and 16: wall time, Redis calls and
#     Redis CPU per pass.
#  2. A sale over the same catalogue (buckets = 16): accepted orders open
#     loop at BENCH_RATE/s (default 5000) for 15 s, with the gateway's
#     passes off and every 1000 ms (ten times the default rate, so that a
#     cost shows), alternated for BENCH_ROUNDS rounds (default 2): p50, p99,
#     Redis CPU per order, and the passes the gateway ran.
# Prints Markdown for BENCHMARKS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-reconcile FG_REDIS_PORT=16389 FG_KAFKA_PORT=19982 FG_KAFKA_CPORT=19983
export FG_TOPIC=orders-bench FG_PARTITIONS=4
skus=${BENCH_SKUS:-1000}
rate=${BENCH_RATE:-5000}
rounds=${BENCH_ROUNDS:-2}
port=18890
. scripts/bench-common.sh
bench_prepare

{
	echo "sku,stock,per_user_limit"
	for i in $(seq 1 "$skus"); do echo "rc$i,100000000,100000000"; done
} >"$FG_RUN_DIR/stock.csv"

conf() { # buckets interval_ms
	cat >"$FG_RUN_DIR/gw.conf" <<CONF
[server]
port = $port
admin_token = bench-reconcile-token-0001
[redis]
port = $FG_REDIS_PORT
buckets = $1
[kafka]
brokers = 127.0.0.1:$FG_KAFKA_PORT
topic = $FG_TOPIC
[reconcile]
interval_ms = $2
CONF
}

redis_cpu_us() {
	redis-cli -p "$FG_REDIS_PORT" INFO cpu |
		awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { printf "%d", t * 1000000 }'
}

redis_calls() {
	redis-cli -p "$FG_REDIS_PORT" INFO commandstats |
		awk -F'[=,:]' '/^cmdstat_/ { n += $3 } END { print n + 0 }'
}

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) cores; $skus SKUs"
echo
echo "| buckets | wall ms per pass | Redis calls per pass | Redis CPU us per pass |"
echo "|---:|---:|---:|---:|"
for k in 1 16; do
	conf "$k" 0
	redis-cli -p "$FG_REDIS_PORT" FLUSHALL >/dev/null
	bin/flashgate -c "$FG_RUN_DIR/gw.conf" stock load --replace "$FG_RUN_DIR/stock.csv" >/dev/null
	redis-cli -p "$FG_REDIS_PORT" CONFIG RESETSTAT >/dev/null
	c0=$(redis_cpu_us) t0=$(date +%s%N)
	for _ in 1 2 3 4 5; do bin/flashgate -c "$FG_RUN_DIR/gw.conf" reconcile >/dev/null; done
	t1=$(date +%s%N) c1=$(redis_cpu_us)
	# The calls of the five passes, less the CONFIG RESETSTAT and INFO that framed them.
	echo "| $k | $(((t1 - t0) / 5000000)) | $((($(redis_calls) - 2) / 5)) | $(((c1 - c0) / 5)) |"
done

measure() { # prints: p50 / p99 | Redis us per order | passes
	local c0 c1
	c0=$(redis_cpu_us)
	bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$port" --rate "$rate" --duration 15s --connections 128 \
		--skus "$skus" --sku-prefix rc --users 10000000 --quiet --json "$FG_RUN_DIR/run.json" >/dev/null
	c1=$(redis_cpu_us)
	local passes
	passes=$(curl -s -H "Authorization: Bearer bench-reconcile-token-0001" "http://127.0.0.1:$port/admin/v1/metrics" |
		awk '$1 == "flashgate_reconcile_passes_total" { print $2 }')
	python3 - "$FG_RUN_DIR/run.json" "$((c1 - c0))" "$passes" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
orders = r["counts"].get("202 accepted", 0)
if orders != r["requests"]:
    sys.exit("bench-reconcile: %d of %d requests were not accepted" % (r["requests"] - orders, r["requests"]))
print("%.0f | %.2f / %.2f | %.1f | %s" % (r["achieved_rps"], r["latency_us"]["p50"] / 1000,
      r["latency_us"]["p99"] / 1000, int(sys.argv[2]) / orders, sys.argv[3]))
PY
}

echo
echo "Accepted orders open loop at $rate/s for 15 s over 128 connections, buckets = 16:"
echo
echo "| round | passes | orders/s | p50 / p99 ms | Redis CPU us per order | passes run |"
echo "|---:|---|---:|---|---:|---:|"
redis-cli -p "$FG_REDIS_PORT" FLUSHALL >/dev/null
first=1
for round in $(seq 1 "$rounds"); do
	for interval in 0 1000; do
		bench_stop_gateway
		conf 16 "$interval"
		bench_start_gateway "$FG_RUN_DIR/gw.conf" "$FG_RUN_DIR/gateway.log" "$port"
		if [ "$first" = 1 ]; then # warm the broker's JIT
			measure >/dev/null
			first=0
		fi
		label=$([ "$interval" = 0 ] && echo "off" || echo "every $interval ms")
		echo "| $round | $label | $(measure) |"
	done
done
