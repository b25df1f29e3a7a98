#!/usr/bin/env bash
# bench-kafka-cluster.sh: what replication costs an order. The same
# gateway against one broker (replication factor 1, the tests' default)
# and against services.sh's three-broker cluster (replication factor 3,
# min.insync.replicas 2: acks=all waits for a follower too), both up in
# one run on this machine, alternated in BENCH_ROUNDS rounds (default 2):
# closed loop (BENCH_REQUESTS, default 100000, 256 connections) and open
# loop at BENCH_RATE (default 2000) for 10 s; accepted orders over 200
# SKUs. Per row: answers/s, p50 / p99 / p99.9, and CPU microseconds per
# answer of the gateway and of the brokers (the cluster: its three
# brokers and its controller). Prints Markdown for BENCHMARKS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-kafka-cluster FG_REDIS_PORT=17479 FG_KAFKA_PORT=19962 FG_KAFKA_CPORT=19963
export FG_KAFKA_CLUSTER_PORT=19600 FG_TOPIC=orders-bench FG_PARTITIONS=4
rounds=${BENCH_ROUNDS:-2}
n=${BENCH_REQUESTS:-100000}
rate=${BENCH_RATE:-2000}
port=18995
. scripts/bench-common.sh
bench_prepare
scripts/services.sh kafka-cluster-up >/dev/null
cluster=127.0.0.1:19600,127.0.0.1:19601,127.0.0.1:19602
{
	echo "sku,stock,per_user_limit"
	for i in $(seq 1 200); do echo "bulk$i,1000000000,1000000000"; done
} >"$FG_RUN_DIR/stock.csv"

broker_pids() { # single|cluster
	if [ "$1" = single ]; then
		cat "$FG_RUN_DIR/kafka.pid"
	else
		cat "$FG_RUN_DIR"/kcluster/{1,2,3,100}/kafka.pid | tr '\n' ' '
	fi
}

start_on() { # single|cluster
	local brokers=127.0.0.1:$FG_KAFKA_PORT
	[ "$1" = cluster ] && brokers=$cluster
	bench_stop_gateway
	cat >"$FG_RUN_DIR/flashgate.conf" <<CONF
[server]
port = $port
max_connections = 4096
[redis]
port = $FG_REDIS_PORT
[kafka]
brokers = $brokers
topic = $FG_TOPIC
CONF
	bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$port"
	bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$port" --users 100000000 --quiet --skus 200 \
		--sku-prefix bulk --zipf 0 --rate max --requests 20000 --connections 256 >/dev/null
}

# One load against the running gateway: the row's cells.
row() { # single|cluster flashload args...
	local kind=$1 g0 g1 b0 b1
	shift
	# shellcheck disable=SC2046 # a list of pids
	g0=$(bench_cpu_us "$gw_pid") b0=$(bench_cpu_us $(broker_pids "$kind"))
	bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$port" --users 100000000 --quiet --skus 200 \
		--sku-prefix bulk --zipf 0 --connections 256 --json "$FG_RUN_DIR/run.json" "$@" >/dev/null
	# shellcheck disable=SC2046
	g1=$(bench_cpu_us "$gw_pid") b1=$(bench_cpu_us $(broker_pids "$kind"))
	python3 - "$FG_RUN_DIR/run.json" "$((g1 - g0))" "$((b1 - b0))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["counts"].get("202 accepted", 0)
if ok != r["requests"]:
    sys.exit("bench-kafka-cluster: %d of %d not accepted: %s" % (r["requests"] - ok, r["requests"], r["counts"]))
lat = r["latency_us"]
print("%.0f | %.2f / %.2f / %.2f | %.1f | %.1f" % (r["achieved_rps"], lat["p50"] / 1000, lat["p99"] / 1000,
      lat["p999"] / 1000, int(sys.argv[2]) / ok, int(sys.argv[3]) / ok))
PY
}

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) cores; $rounds rounds," \
	"closed loop $n orders and open loop $rate/s for 10 s, 256 connections, 200 SKUs"
echo
echo "| round | Kafka | load | answers/s | p50 / p99 / p99.9 ms | gateway us/answer | brokers us/answer |"
echo "|---|---|---|---:|---|---:|---:|"
for r in $(seq 1 "$rounds"); do
	for kind in single cluster; do
		label="one broker, replication 1"
		[ "$kind" = cluster ] && label="three brokers, replication 3, min.insync 2"
		start_on "$kind"
		echo "| $r | $label | closed loop | $(row "$kind" --rate max --requests "$n") |"
		echo "| $r | $label | $rate/s | $(row "$kind" --rate "$rate" --duration 10s) |"
	done
done
bench_stop_gateway
