#!/usr/bin/env bash
# demo.sh: a local flash sale, end to end. Starts Redis and Kafka
# (scripts/services.sh), loads the catalogue of the Double 11 profile
# (config/profiles/double11.ini: three doorbusters with 300 units each, 17
# hot SKUs, 980 regular ones), starts flashgate, replays the opening of the
# sale with flashload (shoppers hovering, the gates opening, the peak, the
# decay; retries with Idempotency-Keys, double clicks, malformed requests),
# verifies against Redis and Kafka that nothing was oversold or lost,
# writes a JSON and an HTML report, and stops everything it started.
# `make demo` runs it after setup and build.
#
# Environment: DEMO_PROFILE (default config/profiles/double11.ini),
# DEMO_SCALE (multiplies the profile's rates, default 1), and the ports
# services.sh takes (FG_REDIS_PORT, FG_KAFKA_PORT, FG_TOPIC) with
# FG_GATEWAY_PORT for the gateway's.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
profile=${DEMO_PROFILE:-config/profiles/double11.ini}
scale=${DEMO_SCALE:-1}
run=${FG_RUN_DIR:-$here/.run}
conf=$run/demo.conf
gw_port=${FG_GATEWAY_PORT:-18080}
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
# The shipped config with the ports services.sh used: -t prints it whole,
# as a file that loads, each key with where its value came from.
bin/flashgate -c config/flashgate.conf --set "server.port=$gw_port" --set "redis.port=${FG_REDIS_PORT:-16379}" \
	--set "kafka.brokers=127.0.0.1:${FG_KAFKA_PORT:-19092}" --set "kafka.topic=${FG_TOPIC:-orders}" -t >"$conf"

# The profile's catalogue, as flashgate's stock file.
bin/flashload --profile "$profile" --write-stock "$run/demo-stock.csv"
bin/flashgate -c "$conf" stock load --replace "$run/demo-stock.csv"

bin/flashgate -c "$conf" >"$run/demo-gateway.log" 2>&1 &
gw_pid=$!
for _ in $(seq 1 100); do
	curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null 2>&1 && break
	kill -0 "$gw_pid" 2>/dev/null || { cat "$run/demo-gateway.log"; exit 1; }
	sleep 0.1
done

echo
echo "== the sale: $profile (rates x $scale), open loop, then verify the books"
# Each shopper's token signed with the demo key, as the shop's auth service
# would (the config's [identity] keys holds the same HS256 secret).
bin/flashload --target "127.0.0.1:$gw_port" --profile "$profile" --scale "$scale" --sign-key .run/keys/sign/demo.hs256 \
	--verify --config "$conf" --json "$run/demo-report.json" --html "$run/demo-report.html"
echo
prefix=$(sed -n 's/^sku_prefix *= *//p' "$profile")
for i in 1 2 3 4; do bin/flashgate -c "$conf" stock show "$prefix$i"; done
echo "reports: $run/demo-report.html, $run/demo-report.json; gateway log: $run/demo-gateway.log"
