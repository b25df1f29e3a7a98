#!/usr/bin/env bash
# demo.sh: a local flash sale, end to end. Starts Redis and Kafka
# (scripts/services.sh), loads a catalogue with a few hot, low-stock SKUs,
# starts flashgate, replays the opening of a sale with flashload (a
# warm-up at a fixed rate, then everything the machine can take), verifies
# against Redis and Kafka that nothing was oversold or lost, and stops
# everything it started. `make demo` runs it after setup and build.
#
# Environment: DEMO_RATE (orders/s of the first phase, default 2000),
# DEMO_SECONDS (its length, default 10), DEMO_REQUESTS (orders of the
# second phase, default 100000), DEMO_CONNECTIONS (default 128).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
rate=${DEMO_RATE:-2000}
seconds=${DEMO_SECONDS:-10}
requests=${DEMO_REQUESTS:-100000}
conns=${DEMO_CONNECTIONS:-128}
conf=config/flashgate.conf
run=${FG_RUN_DIR:-$here/.run}
gw_pid=

cleanup() {
	if [ -n "$gw_pid" ] && kill -0 "$gw_pid" 2>/dev/null; then
		kill -TERM "$gw_pid"
		wait "$gw_pid" || true
	fi
	scripts/services.sh down
}
trap cleanup EXIT

scripts/services.sh up
mkdir -p "$run"

# The catalogue: 20 SKUs; by Zipf popularity deal1 is the hottest and has
# the least stock, as in a real opening. The warm-up runs on its own SKUs so
# the sale's verification counts only the sale's orders.
csv="$run/demo-stock.csv"
{
	echo "sku,stock,per_user_limit"
	echo "deal1,500,1"
	echo "deal2,1000,2"
	echo "deal3,2000,2"
	for i in $(seq 4 20); do echo "deal$i,5000,5"; done
	# warm-up SKUs, verified apart from the sale's
	for i in $(seq 1 5); do echo "warm$i,1000000,1000000"; done
} >"$csv"
bin/flashgate -c "$conf" stock load "$csv"

bin/flashgate -c "$conf" >"$run/demo-gateway.log" 2>&1 &
gw_pid=$!
for _ in $(seq 1 100); do
	curl -sf http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break
	kill -0 "$gw_pid" 2>/dev/null || { cat "$run/demo-gateway.log"; exit 1; }
	sleep 0.1
done

echo
echo "== phase 1: $rate orders/s for ${seconds}s (open loop: latency from the intended send time)"
bin/flashload --target 127.0.0.1:18080 --rate "$rate" --duration "${seconds}s" \
	--connections "$conns" --skus 5 --sku-prefix warm --users 50000
echo
echo "== phase 2: $requests orders as fast as $conns connections go, then verify the books"
bin/flashload --target 127.0.0.1:18080 --rate max --requests "$requests" \
	--connections "$conns" --skus 20 --sku-prefix deal --users 50000 \
	--verify --config "$conf" --json "$run/demo-report.json"
echo
for sku in deal1 deal2 deal3 deal4; do bin/flashgate -c "$conf" stock show "$sku"; done
echo "report: $run/demo-report.json, gateway log: $run/demo-gateway.log"
