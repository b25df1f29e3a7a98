#!/usr/bin/env bash
# bench-replicas.sh: what [redis] wait_replicas = 1 costs. One run on this
# machine: a Redis Cluster of three masters with a replica each
# (services.sh cluster-up, own ports) and one broker; the same gateway
# config with wait_replicas = 0 (a reservation counts once its master has
# it) and = 1 (once a replica has it too: a WAIT after every reserve call),
# alternated within each of BENCH_ROUNDS rounds (default 3), because one run
# per setting drifts more here than settings differ. Each: accepted orders
# closed loop (BENCH_REQUESTS, default 100000, over BENCH_CONNECTIONS,
# default 64), and open loop at BENCH_RATE (default 1000/s) for 10 s: p50
# and p99. Prints Markdown for BENCHMARKS.md, with the medians' ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-replicas FG_REDIS_PORT=16979 FG_KAFKA_PORT=19692 FG_KAFKA_CPORT=19693
export FG_TOPIC=orders-bench FG_PARTITIONS=4
export FG_REDIS_CLUSTER_PORT=17301 FG_REDIS_CLUSTER_REPLICAS=1
n=${BENCH_REQUESTS:-100000}
c=${BENCH_CONNECTIONS:-64}
rate=${BENCH_RATE:-1000}
rounds=${BENCH_ROUNDS:-3}
port=18780
. scripts/bench-common.sh
bench_cleanup_extra() { scripts/services.sh cluster-down >/dev/null; }
bench_prepare
scripts/services.sh cluster-up >/dev/null

start_gateway() { # wait_replicas
	bench_stop_gateway
	cat >"$FG_RUN_DIR/flashgate.conf" <<CONF
[server]
port = $port
[redis]
port = $FG_REDIS_CLUSTER_PORT
wait_replicas = $1
[kafka]
brokers = 127.0.0.1:$FG_KAFKA_PORT
topic = $FG_TOPIC
CONF
	printf 'sku,stock,per_user_limit\nbulk1,1000000000,1000000000\n' >"$FG_RUN_DIR/stock.csv"
	bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$port" || exit 1
}

load() { # args... -> "rps p50 p99 non-202"
	bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$port" --connections "$c" --users 100000000 --skus 1 \
		--sku-prefix bulk --quiet --json "$FG_RUN_DIR/run.json" "$@" >/dev/null
	python3 - "$FG_RUN_DIR/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["counts"]
print("%.0f %.2f %.2f %d" % (r["achieved_rps"], r["latency_us"]["p50"] / 1000, r["latency_us"]["p99"] / 1000,
                             sum(v for k, v in s.items() if k != "202 accepted")))
PY
}

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) cores;" \
	"Redis Cluster of 3 masters with a replica each; $n orders closed loop over $c connections," \
	"open loop at $rate/s for 10 s; $rounds rounds"
echo
echo "| round | wait_replicas | accepted orders/s | p50 / p99 ms | p50 / p99 ms at $rate/s | not 202 |"
echo "|---:|---:|---:|---|---|---:|"
declare -A rps p99
for round in $(seq 1 "$rounds"); do
	for wait in 0 1; do
		start_gateway "$wait"
		load --rate max --requests 20000 >/dev/null # warm up
		read -r r_rps r50 r99 r_bad <<<"$(load --rate max --requests "$n")"
		read -r _ o50 o99 o_bad <<<"$(load --rate "$rate" --duration 10s)"
		rps[$wait]+="$r_rps "
		p99[$wait]+="$o99 "
		echo "| $round | $wait | $r_rps | $r50 / $r99 | $o50 / $o99 | $((r_bad + o_bad)) |"
	done
done
bench_stop_gateway
# shellcheck disable=SC2086 # the lists are numbers split on purpose
rps0=$(bench_median ${rps[0]}) rps1=$(bench_median ${rps[1]}) p0=$(bench_median ${p99[0]}) p1=$(bench_median ${p99[1]})
echo
echo "Medians: accepted orders/s $rps1 with wait_replicas = 1 against $rps0 without" \
	"($(bench_ratio "$rps1" "$rps0")x); open-loop p99 $p1 ms against $p0 ms."
