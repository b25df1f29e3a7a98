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
#   4. linger.ms and requests in flight (max.in.flight) compared for (1) to
#      (3), from which the config defaults were chosen: the settings
#      alternate within each of BENCH_ROUNDS rounds (default 3), because
#      one run per setting drifts more here than the settings differ.
#      (Compression was swept the same way before: lz4 and none were within
#      the noise here, and lz4 writes a quarter of the bytes; BENCHMARKS.md.)
#   5. where an acknowledgement's time goes, with the default settings: the
#      broker restarted with its request log (FG_KAFKA_REQUEST_LOG=1), the
#      same open-loop run, and the percentiles of the broker's own time per
#      produce request (waiting in its request queue, its work, waiting in
#      its response queue, sending) against the client's accepted p50/p99.
# Prints Markdown for BENCHMARKS.md. BENCH_REQUESTS (default 100000),
# BENCH_RATE (open-loop rate, default 2000), BENCH_CONNECTIONS (default 128),
# BENCH_ROUNDS (default 3), BENCH_SETTINGS (linger,in-flight pairs,
# default "1,5 0,1 0,5").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-kafka FG_REDIS_PORT=16779 FG_KAFKA_PORT=19492 FG_KAFKA_CPORT=19493
export FG_TOPIC=orders-bench FG_PARTITIONS=4
n=${BENCH_REQUESTS:-100000}
rate=${BENCH_RATE:-2000}
c=${BENCH_CONNECTIONS:-128}
rounds=${BENCH_ROUNDS:-3}
settings=${BENCH_SETTINGS:-1,5 0,1 0,5}
port=18480
. scripts/bench-common.sh
bench_prepare
brokers=127.0.0.1:$FG_KAFKA_PORT

start_gateway() { # linger inflight
	bench_stop_gateway
	cat >"$FG_RUN_DIR/flashgate.conf" <<CONF
[server]
port = $port
$(bench_services_conf)
linger_ms = $1
inflight_requests = $2
compression = lz4
CONF
	{
		echo "sku,stock,per_user_limit"
		echo "none1,0,1"
		echo "bulk1,1000000000,1000000000"
	} >"$FG_RUN_DIR/stock.csv"
	bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$port" || exit 1
}

load() { # args... -> "rps p50 p99"
	bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$port" --connections "$c" --users 100000000 --quiet \
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
	"$n records or orders per throughput run, $c connections, open loop at $rate/s, $rounds rounds"
echo
echo "| round | linger.ms | in flight | raw producer (kcat) rec/s | gateway accepted orders/s | vs raw | accepted p50 / p99 ms at $rate/s | sold-out p50 / p99 ms at $rate/s | report wait adds p50 / p99 ms |"
echo "|---:|---:|---:|---:|---:|---:|---|---|---|"
first=1
for round in $(seq 1 "$rounds"); do
	for setting in $settings; do
		linger=${setting%,*}
		inflight=${setting#*,}
		start_gateway "$linger" "$inflight"
		if [ "$first" = 1 ]; then # warm the broker's JIT and the gateway
			load --rate max --requests 20000 --skus 1 --sku-prefix bulk >/dev/null
			first=0
		fi
		raw=$(raw_producer "$linger" "$inflight")
		read -r a_rps _ _ <<<"$(load --rate max --requests "$n" --skus 1 --sku-prefix bulk)"
		read -r _ a50 a99 <<<"$(load --rate "$rate" --duration 10s --skus 1 --sku-prefix bulk)"
		read -r _ s50 s99 <<<"$(load --rate "$rate" --duration 10s --skus 1 --sku-prefix none)"
		python3 - "$round" "$linger" "$inflight" "$raw" "$a_rps" "$a50" "$a99" "$s50" "$s99" <<'PY'
import sys
rnd, l, inflight, raw, a, a50, a99, s50, s99 = sys.argv[1:]
raw, a, a50, a99, s50, s99 = map(float, (raw, a, a50, a99, s50, s99))
print("| %s | %s | %s | %.0f | %.0f | %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f |"
      % (rnd, l, inflight, raw, a, a / raw, a50, a99, s50, s99, a50 - s50, a99 - s99))
PY
	done
done

# 5: the broker's share, with the defaults (the config file's values).
bench_stop_gateway
scripts/services.sh down >/dev/null
FG_KAFKA_REQUEST_LOG=1 scripts/services.sh up >/dev/null
defaults=$(bin/flashgate -c config/flashgate.conf -t | awk -F' = ' '$1 == "linger_ms" { l = $2 } $1 == "inflight_requests" { f = $2 } END { print l, f }')
read -r def_linger def_inflight <<<"$defaults"
start_gateway "$def_linger" "$def_inflight"
load --rate "$rate" --duration 5s --skus 1 --sku-prefix bulk >/dev/null # the JIT, again
: >"$FG_RUN_DIR/kafka/requests.log"
read -r _ a50 a99 <<<"$(load --rate "$rate" --duration 10s --skus 1 --sku-prefix bulk)"
echo
echo "Where an acknowledgement's time goes at $rate/s (linger.ms $def_linger, $def_inflight in flight; the broker's request log):"
echo
python3 - "$FG_RUN_DIR/kafka/requests.log" "$a50" "$a99" "$rate" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    if '"requestApiKeyName":"PRODUCE"' in line:
        rows.append(json.loads(line[line.index("{"):]))
if not rows:
    sys.exit("bench: no produce request in the broker's request log " + sys.argv[1])
def pct(key, p):
    v = sorted(r[key] for r in rows)
    return v[min(len(v) - 1, int(len(v) * p))]
parts = sum(len(t["partitionData"]) for r in rows for t in r["request"]["topicData"])
print("| | p50 ms | p99 ms |")
print("|---|---:|---:|")
print("| client: accepted order (flashload; the log slows the broker) | %s | %s |" % (sys.argv[2], sys.argv[3]))
for key, what in (("totalTimeMs", "broker: a produce request, in all"),
                  ("requestQueueTimeMs", "broker: waiting in its request queue"),
                  ("localTimeMs", "broker: appending to the log"),
                  ("responseQueueTimeMs", "broker: waiting in its response queue"),
                  ("sendTimeMs", "broker: sending the response")):
    print("| %s | %.2f | %.2f |" % (what, pct(key, 0.5), pct(key, 0.99)))
print()
print("%d produce requests (%.0f/s) for %d orders/s, %.2f partitions per request"
      % (len(rows), len(rows) / 10.0, int(sys.argv[4]), parts / len(rows)))
PY
