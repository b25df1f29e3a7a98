#!/usr/bin/env bash
# bench-cost.sh: what one accepted order costs at rates below the peak,
# where most of a sale's hours are spent. A gateway that batches well at
# the peak can still pay a wake-up, a Redis call and a Produce request per
# order at 2,000/s; this shows the curve. One gateway (the default two
# workers), one Redis and one broker on this machine (services.sh, own
# ports); accepted orders over 200 SKUs, uniform, with stock that never
# runs out: open loop at each of BENCH_RATES (default "1000 2000 4000 8000
# 16000") for BENCH_SECONDS (default 10) over 256 connections, closed loop
# (BENCH_REQUESTS, default 200000, 256 connections: the peak), then open
# loop at half the peak's rate (where the p99 <= 5 ms target applies).
# References in the same run: the sold-out path (answered from the
# gateway's cache, no Redis, no Kafka: the front end's floor) at 2,000/s;
# the gateway with [kafka] linger_ms = 1 (a batch waits 1 ms for more
# records), at 2,000/s and closed loop; nginx from Debian answering
# `return 202` (one worker) at 2,000/s and closed loop. Per row:
# answers/s; CPU microseconds per answer of the gateway (all threads),
# Redis, the broker and flashload; Redis round trips
# (flashgate_redis_sends_total) and script calls per order; Kafka Produce
# requests and bytes per order; context switches per answer of the
# gateway's threads; p50 / p99 / p99.9. Prints Markdown for BENCHMARKS.md.
# nginx comes from `scripts/setup.sh --bench`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-cost FG_REDIS_PORT=17379 FG_KAFKA_PORT=19952 FG_KAFKA_CPORT=19953
export FG_TOPIC=orders-bench FG_PARTITIONS=4
rates=${BENCH_RATES:-1000 2000 4000 8000 16000}
seconds=${BENCH_SECONDS:-10}
n=${BENCH_REQUESTS:-200000}
port=18985
ngx_port=18986
token=bench-cost-admin-token
ngx_pid=
bench_cleanup_extra() {
	if [ -n "$ngx_pid" ]; then
		kill -TERM "$ngx_pid" 2>/dev/null || true
		wait "$ngx_pid" 2>/dev/null || true
	fi
}
. scripts/bench-common.sh
bench_prepare
redis_pid=$(cat "$FG_RUN_DIR/redis.pid")
kafka_pid=$(cat "$FG_RUN_DIR/kafka.pid")

# The gateway's config; extra lines go at its end (a [section] first).
write_conf() { # extra lines...
	cat >"$FG_RUN_DIR/flashgate.conf" <<CONF
[server]
port = $port
max_connections = 4096
admin_token = $token
$(bench_services_conf)
CONF
	printf '%s\n' "$@" >>"$FG_RUN_DIR/flashgate.conf"
}
write_conf
{
	echo "sku,stock,per_user_limit"
	for i in $(seq 1 200); do echo "bulk$i,1000000000,1000000000"; done
	echo "gone1,0,1"
} >"$FG_RUN_DIR/stock.csv"

# Context switches (voluntary and not) of every thread of a process so far.
ctx_switches() { # pid
	cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'
}
script_calls() { redis-cli -p "$FG_REDIS_PORT" info commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p'; }
# The gateway's counters this run reads, as "name value" lines.
gateway_counters() {
	curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/admin/v1/metrics" |
		grep -E '^flashgate_(redis_sends|kafka_produce_requests|kafka_sent_bytes)_total ' || true
}
# A counter's value in such lines; 0 when absent (nginx has none).
counter() { awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' <<<"$2"; }

# One load; prints the row's cells after its label. TARGET is gateway or
# nginx; WANT the answer every request must get ("202 accepted", "409
# sold out").
measure() { # target want flashload args...
	local target=$1 want=$2 pids tport m0 m1 c0 c1 x0 x1 s0 s1 cpu0 cpu1 r0 r1 k0 k1 load
	shift 2
	if [ "$target" = nginx ]; then
		pids="$ngx_pid $(pgrep -P "$ngx_pid" | tr '\n' ' ')" tport=$ngx_port
	else
		pids=$gw_pid tport=$port
	fi
	m0=$(gateway_counters) s0=$(script_calls)
	x0=0
	for p in $pids; do x0=$((x0 + $(ctx_switches "$p"))); done
	# shellcheck disable=SC2086 # pids is a list
	cpu0=$(bench_cpu_us $pids) r0=$(bench_cpu_us "$redis_pid") k0=$(bench_cpu_us "$kafka_pid")
	load=$(bench_run_cpu_us bin/flashload --sign-key "$FG_SIGN_KEY" --target "127.0.0.1:$tport" --users 100000000 --quiet \
		--json "$FG_RUN_DIR/run.json" "$@")
	# shellcheck disable=SC2086
	cpu1=$(bench_cpu_us $pids) r1=$(bench_cpu_us "$redis_pid") k1=$(bench_cpu_us "$kafka_pid")
	x1=0
	for p in $pids; do x1=$((x1 + $(ctx_switches "$p"))); done
	# The broker's delivery reports trail the last answer by a round trip;
	# librdkafka's statistics arrive once a second, the page once a tick.
	sleep 1.5
	m1=$(gateway_counters) s1=$(script_calls)
	python3 - "$FG_RUN_DIR/run.json" "$want" "$((cpu1 - cpu0))" "$((r1 - r0))" "$((k1 - k0))" "$load" "$((x1 - x0))" \
		"$(($(counter flashgate_redis_sends_total "$m1") - $(counter flashgate_redis_sends_total "$m0")))" \
		"$((s1 - s0))" \
		"$(($(counter flashgate_kafka_produce_requests_total "$m1") - $(counter flashgate_kafka_produce_requests_total "$m0")))" \
		"$(($(counter flashgate_kafka_sent_bytes_total "$m1") - $(counter flashgate_kafka_sent_bytes_total "$m0")))" \
		"$target" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
want = sys.argv[2]
cpu, redis, broker, load, ctx, sends, calls, produces, sent = (int(a) for a in sys.argv[3:12])
gateway = sys.argv[12] == "gateway"
answers = r["counts"].get(want, 0)
if answers != r["requests"] or not answers:
    sys.exit("bench-cost: %d of %d requests were not answered %s: %s" % (r["requests"] - answers, r["requests"], want, r["counts"]))
orders = answers if want.startswith("202") and gateway else 0
per = lambda v: "%.2f" % (v / orders) if orders else "-"
lat = r["latency_us"]
print("%.0f | %.1f | %s | %s | %.1f | %s | %s | %s / %s | %s | %.2f / %.2f / %.2f" % (
    r["achieved_rps"], cpu / answers,
    "%.1f" % (redis / answers) if gateway else "-", "%.1f" % (broker / answers) if gateway else "-",
    load / answers, per(sends), per(calls), per(produces), "%.0f" % (sent / orders) if orders else "-",
    "%.2f" % (ctx / answers), lat["p50"] / 1000, lat["p99"] / 1000, lat["p999"] / 1000))
PY
}

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) cores;" \
	"open loop ${seconds} s each over 256 connections, closed loop $n orders over 256 connections"
echo
echo "| target | load | answers/s | CPU us/answer | Redis us/answer | broker us/answer | flashload us/answer | Redis round trips/order | Redis script calls/order | Kafka Produce requests / bytes per order | context switches/answer | p50 / p99 / p99.9 ms |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$port"
# Warms the broker's JIT and the gateway's pools before the first row.
measure gateway "202 accepted" --skus 200 --sku-prefix bulk --zipf 0 --rate max --requests 30000 --connections 256 >/dev/null
for rate in $rates; do
	echo "| flashgate | $rate/s | $(measure gateway "202 accepted" --skus 200 --sku-prefix bulk --zipf 0 \
		--rate "$rate" --duration "${seconds}s" --connections 256) |"
done
peak=$(measure gateway "202 accepted" --skus 200 --sku-prefix bulk --zipf 0 --rate max --requests "$n" \
	--connections 256)
echo "| flashgate | closed loop | $peak |"
# Half the capacity just measured: where the p99 target (5 ms) applies.
half=$((${peak%% *} / 2))
echo "| flashgate | $half/s (half the closed loop) | $(measure gateway "202 accepted" --skus 200 --sku-prefix bulk \
	--zipf 0 --rate "$half" --duration "${seconds}s" --connections 256) |"
echo "| flashgate, sold out (reference) | 2000/s | $(measure gateway "409 sold out" --skus 1 --sku-prefix gone \
	--rate 2000 --duration "${seconds}s" --connections 256) |"
# The same gateway with a 1 ms linger: what it would buy.
bench_stop_gateway
write_conf "[kafka]" "linger_ms = 1"
bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$port"
measure gateway "202 accepted" --skus 200 --sku-prefix bulk --zipf 0 --rate max --requests 30000 \
	--connections 256 >/dev/null
echo "| flashgate, linger_ms = 1 (reference) | 2000/s | $(measure gateway "202 accepted" --skus 200 \
	--sku-prefix bulk --zipf 0 --rate 2000 --duration "${seconds}s" --connections 256) |"
echo "| flashgate, linger_ms = 1 (reference) | closed loop | $(measure gateway "202 accepted" --skus 200 \
	--sku-prefix bulk --zipf 0 --rate max --requests "$n" --connections 256) |"
bench_stop_gateway
bench_start_nginx "$FG_RUN_DIR/nginx" "$ngx_port" 1 '{"order_id":"0"}'
echo "| nginx return 202 (reference) | 2000/s | $(measure nginx "202 accepted" --skus 1 --sku-prefix gone \
	--rate 2000 --duration "${seconds}s" --connections 256) |"
echo "| nginx return 202 (reference) | closed loop | $(measure nginx "202 accepted" --skus 1 --sku-prefix gone \
	--rate max --requests "$n" --connections 256) |"
