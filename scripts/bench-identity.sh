#!/usr/bin/env bash
# bench-identity.sh: what knowing who is buying costs the gateway. Prints
# Markdown for BENCHMARKS.md ("Identity"):
#   1. a token's cost to sign and to verify, per algorithm, without the
#      gateway's cache (build/bench/jwt_cost: a shopper's first request);
#   2. the gateway's CPU per answer at a fixed open-loop rate with identity
#      off, on with HS256 tokens and on with EdDSA tokens, alternated within
#      each round, on the sold-out path (answered from the worker's sold-out
#      cache: the cheapest answer, so the one identity weighs most on) and
#      the accepted path (Redis and Kafka too). A 2 s warm-up with the same
#      shoppers comes first, so every shopper's token has been verified on
#      each worker and the measurement is of the cache: what a sale's
#      repeat clicks cost. What a first order costs is row 1's verify.
# CPU from /proc for the gateway alone; flashload and the services share
# the 2 cores, so read the ratios, not the absolute numbers.
#
# Environment: BENCH_ROUNDS (default 3), BENCH_RATE (orders/s, default 4000),
# BENCH_SECONDS (per measurement, default 8), BENCH_USERS (default 2000:
# 2 orders/s each at 4,000/s, under [admission] user_rate's 20).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-identity FG_REDIS_PORT=16679 FG_KAFKA_PORT=19392 FG_KAFKA_CPORT=19393
export FG_TOPIC=orders-bench-identity FG_PARTITIONS=4
rounds=${BENCH_ROUNDS:-3}
rate=${BENCH_RATE:-4000}
secs=${BENCH_SECONDS:-8}
users=${BENCH_USERS:-2000}
port=18380
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
bench_prepare
make -s build/bench/jwt_cost

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) cores"
echo
echo "Token cost, 20,000 of each, one thread:"
echo
build/bench/jwt_cost 20000
echo

keys=$FG_RUN_DIR/keys
mkdir -p "$keys" "$FG_RUN_DIR/sign"
openssl rand -out "$keys/hs.hs256" 32
openssl genpkey -algorithm ed25519 -out "$FG_RUN_DIR/sign/ed.pem" 2>/dev/null
openssl pkey -in "$FG_RUN_DIR/sign/ed.pem" -pubout -out "$keys/ed.pem" 2>/dev/null
printf 'sku,stock,per_user_limit\nso1,0,1\nac1,1000000000,1000000\n' >"$FG_RUN_DIR/stock.csv"

start() { # off | jwt
	local conf=$FG_RUN_DIR/flashgate-$1.conf
	{
		printf '[server]\nport = %s\nworkers = 2\n' "$port"
		printf '[identity]\nmode = %s\nkeys = %s\n' "$1" "$keys"
		bench_services_conf
	} >"$conf"
	bench_start_gateway "$conf" "$FG_RUN_DIR/gateway.log" "$port"
}

# One measurement: prints "answers/s | p50 ms | p99 ms | gateway us/answer".
measure() { # sku-prefix sign-key-or-empty
	local sign=() before after json=$FG_RUN_DIR/run.json
	[ -n "$2" ] && sign=(--sign-key "$2")
	bin/flashload "${sign[@]}" --target "127.0.0.1:$port" --rate "$rate" --duration 2s \
		--connections 128 --skus 1 --sku-prefix "$1" --users "$users" --quiet >/dev/null
	before=$(bench_cpu_us "$gw_pid")
	bin/flashload "${sign[@]}" --target "127.0.0.1:$port" --rate "$rate" --duration "${secs}s" \
		--connections 128 --skus 1 --sku-prefix "$1" --users "$users" --quiet --json "$json" >/dev/null
	after=$(bench_cpu_us "$gw_pid")
	python3 - "$json" "$before" "$after" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
n = j["requests"]
print("%.0f | %.2f | %.2f | %.1f" % (j["achieved_rps"], j["latency_us"]["p50"] / 1000,
                                     j["latency_us"]["p99"] / 1000, (int(sys.argv[3]) - int(sys.argv[2])) / n))
PY
}

echo "Gateway CPU per answer at $rate orders/s open loop, ${secs} s, 128 connections, $users shoppers:"
echo
echo "| round | path | identity | answers/s | p50 ms | p99 ms | gateway us/answer |"
echo "|---|---|---|---:|---:|---:|---:|"
for round in $(seq 1 "$rounds"); do
	for mode in off jwt; do
		bench_stop_gateway
		start "$mode"
		for path in so ac; do
			label=$([ "$path" = so ] && echo sold-out || echo accepted)
			if [ "$mode" = off ]; then
				echo "| $round | $label | off | $(measure "$path" "") |"
			else
				echo "| $round | $label | HS256 | $(measure "$path" "$keys/hs.hs256") |"
				echo "| $round | $label | EdDSA | $(measure "$path" "$FG_RUN_DIR/sign/ed.pem") |"
			fi
		done
	done
done
