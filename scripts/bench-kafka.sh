#!/usr/bin/env bash
# bench-kafka.sh: the Kafka side of flashgate, measured in one run on one
# broker (scripts/services.sh, own ports):
#   1. raw producer reference: kcat producing N order-sized records with the
#      gateway's producer settings (acks=all, idempotence, lz4, the row's
#      linger and requests in flight),
#      records/s including the final flush;
#   2. the gateway's accepted orders/s (each one a Redis reservation and a
#      Kafka record acknowledged before the answer), closed loop;
#   3. what waiting for the delivery report costs a request: open-loop p50
#      and p99 of accepted orders against sold-out orders (same HTTP and
#      Redis work, no Kafka) at the same fixed rate;
#   4. a sweep of linger.ms and requests in flight (max.in.flight) for (1) to
#      (3), from which the config defaults were chosen. (Compression was
#      swept the same way before: lz4 and none were within the noise here,
#      and lz4 writes a quarter of the bytes; BENCHMARKS.md.)
# Prints Markdown for BENCHMARKS.md. BENCH_REQUESTS (default 100000),
# BENCH_RATE (open-loop rate, default 2000), BENCH_CONNECTIONS (default 128).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-kafka FG_REDIS_PORT=16779 FG_KAFKA_PORT=19492 FG_KAFKA_CPORT=19493
export FG_TOPIC=orders-bench FG_PARTITIONS=4
n=${BENCH_REQUESTS:-100000}
rate=${BENCH_RATE:-2000}
c=${BENCH_CONNECTIONS:-128}
port=18480
. scripts/bench-common.sh
bench_prepare
brokers=127.0.0.1:$FG_KAFKA_PORT

start_gateway() { # linger inflight
	bench_stop_gateway
	cat >"$FG_RUN_DIR/flashgate.conf" <<CONF
[server]
port = $port
[redis]
port = $FG_REDIS_PORT
[kafka]
brokers = $brokers
topic = $FG_TOPIC
linger_ms = $1
inflight_requests = $2
compression = lz4
CONF
	{
		echo "sku,stock,per_user_limit"
		echo "none1,0,1"
		echo "bulk1,1000000000,1000000000"
	} >"$FG_RUN_DIR/stock.csv"
	bin/flashgate -c "$FG_RUN_DIR/flashgate.conf" stock load "$FG_RUN_DIR/stock.csv" >/dev/null
	bin/flashgate -c "$FG_RUN_DIR/flashgate.conf" >>"$FG_RUN_DIR/gateway.log" 2>&1 &
	gw_pid=$!
	bench_wait_http "http://127.0.0.1:$port/healthz" || exit 1
}

load() { # args... -> "rps p50 p99"
	bin/flashload --target "127.0.0.1:$port" --connections "$c" --users 100000000 --quiet \
		--json "$FG_RUN_DIR/run.json" "$@" >/dev/null
	python3 - "$FG_RUN_DIR/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("%.0f %.2f %.2f" % (r["achieved_rps"], r["latency_us"]["p50"] / 1000, r["latency_us"]["p99"] / 1000))
PY
}

raw_producer() { # linger inflight -> records/s
	python3 - "$n" >"$FG_RUN_DIR/records.txt" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print('{"order_id":"%016x","user_id":"u%d","sku":"bulk1","qty":1,"accepted_at_ms":1795398596767,"node_id":0}' % (i, i))
PY
	local t0 t1
	t0=$(date +%s%N)
	kcat -P -b "$brokers" -t "$FG_TOPIC" -X acks=all -X enable.idempotence=true \
		-X linger.ms="$1" -X max.in.flight="$2" -X compression.codec=lz4 -X batch.num.messages=10000 \
		-l "$FG_RUN_DIR/records.txt"
	t1=$(date +%s%N)
	python3 -c "print('%.0f' % ($n / (($t1 - $t0) / 1e9)))"
}

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) cores;" \
	"$n records or orders per throughput run, $c connections, open loop at $rate/s"
echo
echo "| linger.ms | in flight | raw producer (kcat) rec/s | gateway accepted orders/s | vs raw | accepted p50 / p99 ms at $rate/s | sold-out p50 / p99 ms at $rate/s | report wait adds p50 / p99 ms |"
echo "|---:|---:|---:|---:|---:|---|---|---|"
first=1
for row in "0 1" "0 5" "1 1" "1 5" "5 5"; do
	read -r linger inflight <<<"$row"
	start_gateway "$linger" "$inflight"
	if [ "$first" = 1 ]; then # warm the broker's JIT and the gateway
		load --rate max --requests 20000 --skus 1 --sku-prefix bulk >/dev/null
		first=0
	fi
	raw=$(raw_producer "$linger" "$inflight")
	read -r a_rps _ _ <<<"$(load --rate max --requests "$n" --skus 1 --sku-prefix bulk)"
	read -r _ a50 a99 <<<"$(load --rate "$rate" --duration 10s --skus 1 --sku-prefix bulk)"
	read -r _ s50 s99 <<<"$(load --rate "$rate" --duration 10s --skus 1 --sku-prefix none)"
	python3 - "$linger" "$inflight" "$raw" "$a_rps" "$a50" "$a99" "$s50" "$s99" <<'PY'
import sys
l, inflight, raw, a, a50, a99, s50, s99 = sys.argv[1:]
raw, a, a50, a99, s50, s99 = map(float, (raw, a, a50, a99, s50, s99))
print("| %s | %s | %.0f | %.0f | %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f |"
      % (l, inflight, raw, a, a / raw, a50, a99, s50, s99, a50 - s50, a99 - s99))
PY
done
