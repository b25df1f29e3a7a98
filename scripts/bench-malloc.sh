#!/usr/bin/env bash
# bench-malloc.sh: what flashgate's jemalloc setting (malloc_conf in
# gateway/main.c: a thread cache for sizes up to 128 KB) saves. librdkafka's
# lz4 codec callocs a 68 KB buffer per produce request; with jemalloc's
# default cache limit (32 KB) each of those callocs is zeroed by
# madvise(MADV_DONTNEED) and refaulted. One run on this machine, one Redis
# and one broker (services.sh, own ports), the same gateway binary started
# with MALLOC_CONF=tcache_max:32768 (jemalloc's default, which the
# environment lets override the built-in) and without (the built-in),
# alternated within each of BENCH_ROUNDS rounds (default 3). Each: accepted
# orders open loop at each of BENCH_RATES (default "5000 10000") for 8 s over
# 128 connections, then closed loop at 2,000 connections (BENCH_REQUESTS,
# default 150000). Per row: the gateway's CPU (all its threads, % of one
# core, and microseconds per order), its minor page faults per order, p50 and
# p99. Prints Markdown for BENCHMARKS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-malloc FG_REDIS_PORT=17079 FG_KAFKA_PORT=19792 FG_KAFKA_CPORT=19793
export FG_TOPIC=orders-bench FG_PARTITIONS=4
rates=${BENCH_RATES:-5000 10000}
n=${BENCH_REQUESTS:-150000}
rounds=${BENCH_ROUNDS:-3}
port=18880
. scripts/bench-common.sh
bench_prepare

cat >"$FG_RUN_DIR/flashgate.conf" <<CONF
[server]
port = $port
max_connections = 4096
$(bench_services_conf)
CONF
printf 'sku,stock,per_user_limit\nbulk1,1000000000,1000000000\n' >"$FG_RUN_DIR/stock.csv"

minflt() { awk '{ print $10 }' "/proc/$1/stat"; }

# One load against the running gateway; prints the row's cells after the
# setting: CPU %, CPU us/order, faults/order, p50 / p99.
measure() { # flashload args...
	local cpu0 flt0 t0 cpu1 flt1 t1
	cpu0=$(bench_cpu_us "$gw_pid") flt0=$(minflt "$gw_pid") t0=$(date +%s%N)
	bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$port" --users 100000000 --skus 1 --sku-prefix bulk --quiet \
		--json "$FG_RUN_DIR/run.json" "$@" >/dev/null
	cpu1=$(bench_cpu_us "$gw_pid") flt1=$(minflt "$gw_pid") t1=$(date +%s%N)
	python3 - "$FG_RUN_DIR/run.json" "$((cpu1 - cpu0))" "$((flt1 - flt0))" "$((t1 - t0))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cpu_us, faults, wall_ns = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
orders = r["counts"].get("202 accepted", 0)
if orders != r["requests"]:
    sys.exit("bench-malloc: %d of %d requests were not accepted" % (r["requests"] - orders, r["requests"]))
print("%.0f | %.0f | %.1f | %.2f | %.2f / %.2f" % (r["achieved_rps"], cpu_us / (wall_ns / 1e3) * 100,
      cpu_us / orders, faults / orders, r["latency_us"]["p50"] / 1000, r["latency_us"]["p99"] / 1000))
PY
}

start() { # the thread cache's limit: 32768 (jemalloc's default) or built-in
	if [ "$1" = built-in ]; then
		bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$port"
	else
		MALLOC_CONF=tcache_max:$1 bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$port"
	fi
}
label() { if [ "$1" = built-in ]; then echo "128 KB (built-in)"; else echo "32 KB (jemalloc default)"; fi; }

bench_ab_header
echo
echo "| round | jemalloc thread cache | load | orders/s | gateway CPU % | CPU us/order | page faults/order | p50 / p99 ms |"
echo "|---:|---|---|---:|---:|---:|---:|---|"
bench_ab_rows start label measure 32768 built-in
