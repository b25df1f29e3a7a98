#!/usr/bin/env bash
# bench-stockload.sh: how long `flashgate stock load` takes for a catalogue,
# against the same writes sent by `redis-cli --pipe` (Redis's own mass
# insertion: raw commands, no checks, no transactions) in the same run, and
# what a load does to other Redis clients meanwhile. One Redis (services.sh,
# own ports); catalogues of BENCH_SIZES SKUs (default "10000 100000") with
# buckets = 1, and of the first size with buckets = 16; BENCH_MILLION=1 adds
# a million SKUs. Each file is loaded twice: into an empty Redis, then again
# (a reload reads every SKU's old bucket count and clears its keys).
# The reference sends, per bucket, the DEL of its six keys and its HSET,
# and per SKU a SADD: what the load script does, as plain commands.
# Redis's latency to other clients is sampled with `redis-cli --latency`
# (1 s samples, whole milliseconds) throughout each load.
# Prints Markdown for BENCHMARKS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export FG_RUN_DIR=$here/.run/bench-stockload FG_REDIS_PORT=17389 FG_KAFKA_PORT=19962 FG_KAFKA_CPORT=19963
export FG_TOPIC=orders-bench FG_PARTITIONS=1
sizes=${BENCH_SIZES:-10000 100000}
. scripts/bench-common.sh
bench_prepare

lat_pid=
bench_cleanup_extra() {
	[ -z "$lat_pid" ] || kill "$lat_pid" 2>/dev/null || true
}

conf() { # buckets
	printf '[redis]\nport = %s\nbuckets = %s\n' "$FG_REDIS_PORT" "$1" >"$FG_RUN_DIR/load.conf"
}

catalogue() { # skus
	awk -v n="$1" 'BEGIN { print "sku,stock,per_user_limit"; for (i = 1; i <= n; i++) printf "sl%d,%d,3\n", i, 100 + i % 900 }' \
		>"$FG_RUN_DIR/stock.csv"
}

# The reference's commands for the same catalogue, in Redis's protocol.
reference() { # skus buckets
	python3 - "$1" "$2" "$FG_RUN_DIR/ref.resp" <<'PY'
import sys
n, k, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def cmd(*words):
    out = ["*%d\r\n" % len(words)]
    for w in words:
        w = str(w)
        out.append("$%d\r\n%s\r\n" % (len(w.encode()), w))
    return "".join(out)
with open(path, "w") as f:
    for i in range(1, n + 1):
        sku, stock = "sl%d" % i, 100 + i % 900
        for b in range(k):
            tag = sku if b == 0 else "%s#%d" % (sku, b)
            keys = ["fg:{%s}" % tag] + ["fg:{%s}:%s" % (tag, s) for s in ("users", "pending", "orders", "returned", "xfer")]
            share = stock // k + (1 if b < stock % k else 0)
            f.write(cmd("DEL", *keys))
            f.write(cmd("HSET", keys[0], "stock", share, "limit", 3, "sold", 0, "initial", share,
                        "loaded_at_ms", 1, "starts", 0, "ends", 0, "buckets", k, "moved_in", 0, "moved_out", 0))
        f.write(cmd("SADD", "fg:skus", sku))
PY
}

now_ms() { date +%s%3N; }

# Samples Redis's latency to another client until stopped; the largest
# sample's max goes to $FG_RUN_DIR/lat.max.
latency_start() {
	: >"$FG_RUN_DIR/lat.txt"
	(while :; do redis-cli -p "$FG_REDIS_PORT" --latency --raw -i 1 >>"$FG_RUN_DIR/lat.txt" 2>/dev/null || break; done) &
	lat_pid=$!
}
latency_stop() {
	kill "$lat_pid" 2>/dev/null || true
	wait "$lat_pid" 2>/dev/null || true
	lat_pid=
	awk 'NF == 4 && $2 > m { m = $2 } END { print m + 0 }' "$FG_RUN_DIR/lat.txt"
}

# ms for `flashgate stock load`, and the worst latency meanwhile.
timed_load() {
	latency_start
	sleep 1.2 # one whole sample before, so each load is inside samples
	local t0 t1
	t0=$(now_ms)
	bin/flashgate -c "$FG_RUN_DIR/load.conf" stock load --replace "$FG_RUN_DIR/stock.csv" >/dev/null
	t1=$(now_ms)
	sleep 1.2
	echo "$((t1 - t0)) $(latency_stop)"
}

timed_reference() {
	local t0 t1
	t0=$(now_ms)
	redis-cli -p "$FG_REDIS_PORT" --pipe <"$FG_RUN_DIR/ref.resp" >/dev/null
	t1=$(now_ms)
	echo "$((t1 - t0))"
}

runs=""
for n in $sizes; do runs="$runs $n:1"; done
runs="$runs ${sizes%% *}:16"
[ "${BENCH_MILLION:-0}" = 1 ] && runs="$runs 1000000:1"

echo "$(date -u +%F) commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+work tree'), $(uname -r), $(nproc) cores"
echo
echo "| SKUs | buckets | stock load, first (s) | worst latency to others (ms) | reload (s) | worst latency (ms) | redis-cli --pipe (s) | load vs --pipe |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for run in $runs; do
	n=${run%:*} k=${run#*:}
	redis-cli -p "$FG_REDIS_PORT" flushall >/dev/null
	conf "$k"
	catalogue "$n"
	read -r first first_lat < <(timed_load)
	read -r again again_lat < <(timed_load)
	reference "$n" "$k"
	redis-cli -p "$FG_REDIS_PORT" flushall >/dev/null
	ref=$(timed_reference)
	printf '| %s | %s | %.2f | %s | %.2f | %s | %.2f | %s |\n' "$n" "$k" \
		"$(bench_ratio "$first" 1000)" "$first_lat" "$(bench_ratio "$again" 1000)" "$again_lat" \
		"$(bench_ratio "$ref" 1000)" "$(bench_ratio "$first" "$ref")"
done
