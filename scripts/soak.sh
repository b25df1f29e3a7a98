#!/usr/bin/env bash
# soak.sh: a long steady sale against flashgate, for what only time shows:
# memory that grows, queues that fill, a ledger that does not empty. By
# default config/profiles/soak.ini (a 30 s ramp, then 10 minutes at 1000
# orders/s over 200 SKUs that never sell out, retries, double clicks,
# malformed requests and shoppers who give up and reset the connection),
# on services of its own ports, so the tests' and the demo's are left alone.
#
# Every SOAK_SAMPLE_S seconds (default 10) it writes one row to
# $run/soak-samples.csv: the gateway's RSS and, from its metrics page, the
# open connections, orders in flight, Redis commands pending, records
# librdkafka holds and the 202s so far. At the end flashload verifies the
# books, and the soak fails (exit 1) if that fails or if the gateway's RSS
# at the end is more than SOAK_RSS_GROWTH_PCT percent (default 20) above its
# RSS one minute into the steady load (by then every pool, buffer and
# connection is as large as the load makes it).
#
# `make soak`. Environment: SOAK_PROFILE, SOAK_SCALE (multiplies the rates),
# SOAK_SAMPLE_S, SOAK_RSS_GROWTH_PCT; FG_RUN_DIR and the FG_*_PORT variables
# of scripts/services.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
profile=${SOAK_PROFILE:-config/profiles/soak.ini}
scale=${SOAK_SCALE:-1}
sample_s=${SOAK_SAMPLE_S:-10}
growth_pct=${SOAK_RSS_GROWTH_PCT:-20}
export FG_RUN_DIR=${FG_RUN_DIR:-$here/.run/soak}
export FG_REDIS_PORT=${FG_REDIS_PORT:-16599}
export FG_KAFKA_PORT=${FG_KAFKA_PORT:-19312}
export FG_KAFKA_CPORT=${FG_KAFKA_CPORT:-19313}
export FG_TOPIC=${FG_TOPIC:-orders-soak}
gw_port=${FG_GATEWAY_PORT:-18490}
run=$FG_RUN_DIR
gw_pid=
load_pid=

cleanup() {
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
	if [ -n "$gw_pid" ] && kill -0 "$gw_pid" 2>/dev/null; then
		kill -TERM "$gw_pid"
		wait "$gw_pid" || true
	fi
	scripts/services.sh down
}

scripts/services.sh down >/dev/null 2>&1 || true
rm -rf "$run"
mkdir -p "$run"
trap cleanup EXIT
scripts/services.sh up

token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
conf=$run/flashgate.conf
cat >"$conf" <<CONF
[server]
port = $gw_port
admin_token = $token
[redis]
port = $FG_REDIS_PORT
[kafka]
brokers = 127.0.0.1:$FG_KAFKA_PORT
topic = $FG_TOPIC
CONF

bin/flashload --profile "$profile" --write-stock "$run/stock.csv"
bin/flashgate -c "$conf" stock load --replace "$run/stock.csv"
bin/flashgate -c "$conf" >"$run/gateway.log" 2>&1 &
gw_pid=$!
for _ in $(seq 1 100); do
	curl -sf "http://127.0.0.1:$gw_port/healthz" >/dev/null 2>&1 && break
	kill -0 "$gw_pid" 2>/dev/null || { cat "$run/gateway.log"; exit 1; }
	sleep 0.1
done

# The ramp's length, from the profile: RSS is compared from a minute after it.
ramp_s=$(awk -F'= *' '/^\[stage /{s=$0} s ~ /ramp/ && /^duration/ {print $2; exit}' "$profile")
ramp_s=${ramp_s%s}
case $ramp_s in '' | *[!0-9]*) ramp_s=0 ;; esac
baseline_at=$((ramp_s + 60))

echo "== soak: $profile (rates x $scale) against 127.0.0.1:$gw_port; samples every ${sample_s}s in $run/soak-samples.csv"
bin/flashload --target "127.0.0.1:$gw_port" --profile "$profile" --scale "$scale" --quiet \
	--sign-key .run/keys/sign/demo.hs256 \
	--verify --config "$conf" --json "$run/soak-report.json" --html "$run/soak-report.html" \
	>"$run/flashload.out" 2>&1 &
load_pid=$!

metric() { awk -v m="$1" '$1 == m {print $2}' "$run/metrics.txt"; }
echo "elapsed_s,rss_kb,connections,orders_in_flight,redis_pending,kafka_outstanding,accepted" >"$run/soak-samples.csv"
start=$(date +%s)
baseline_kb=
while kill -0 "$load_pid" 2>/dev/null; do
	sleep "$sample_s"
	elapsed=$(($(date +%s) - start))
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$gw_pid/status")
	curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$gw_port/admin/v1/metrics" \
		>"$run/metrics.txt" || : >"$run/metrics.txt"
	echo "$elapsed,$rss,$(metric flashgate_connections),$(metric flashgate_orders_in_flight),$(metric flashgate_redis_pending),$(metric flashgate_kafka_outstanding),$(metric flashgate_orders_accepted_total)" \
		>>"$run/soak-samples.csv"
	if [ -z "$baseline_kb" ] && [ "$elapsed" -ge "$baseline_at" ]; then
		baseline_kb=$rss
	fi
done
load_rc=0
wait "$load_pid" || load_rc=$?
load_pid=
end_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$gw_pid/status")
max_kb=$(awk -F, 'NR > 1 && $2 > m {m = $2} END {print m}' "$run/soak-samples.csv")

sed -n '/^stage /,/^overall/p; /^status:/p; /^orders:/p; /^PASS\|^FAIL\|^verify:/p' "$run/flashload.out"
echo "gateway RSS: ${baseline_kb:-?} kB a minute into the steady load (at ${baseline_at}s), ${end_kb} kB at the end, ${max_kb} kB at most"
fail=0
if [ "$load_rc" -ne 0 ]; then
	echo "soak: FAIL: flashload exited $load_rc (see $run/flashload.out)"
	fail=1
fi
if [ -z "$baseline_kb" ]; then
	echo "soak: the run was shorter than ${baseline_at}s: no RSS growth check"
elif [ "$end_kb" -gt $((baseline_kb * (100 + growth_pct) / 100)) ]; then
	echo "soak: FAIL: the gateway's RSS grew more than ${growth_pct}% (${baseline_kb} -> ${end_kb} kB)"
	fail=1
fi
[ "$fail" -eq 0 ] && echo "soak: PASS"
exit "$fail"
