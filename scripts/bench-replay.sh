#!/usr/bin/env bash
# bench-replay.sh: what replaying and merging cost at festival scale, on a
# synthetic trace of BENCH_ORDERS orders (default 1,000,000) over
# BENCH_TRACE_SECONDS (default 100) of uniform random arrivals, 200,000
# users and 1,000 SKUs with skewed popularity. Prints Markdown for
# BENCHMARKS.md:
#   1. loading the trace (parse, renumber, sort: `--write-stock`), CPU and
#      wall time, against awk summing one column of the same file;
#   2. replaying it at BENCH_SPEED (default 2) as two --shard generators at
#      once against nginx `return 202` (one worker), against the same two
#      generators on a stage at the same rate: flashload's CPU per request,
#      and the schedule's accuracy against the trace's own timestamps (the
#      generator's lateness: when it noticed an order was due, after its
#      intended time, p50 / p99 / p99.9 / max) and the send lag;
#   3. merging the two shards' reports, against merging the stage run's.
# Needs nginx: `scripts/setup.sh --bench`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh --bench >/dev/null
make -s all
orders=${BENCH_ORDERS:-1000000}
tsecs=${BENCH_TRACE_SECONDS:-100}
speed=${BENCH_SPEED:-2}
run=$here/.run/bench-replay
port=18782
rm -rf "$run"
mkdir -p "$run/nginx"
ngx_pid=
cleanup() { [ -n "$ngx_pid" ] && kill -QUIT "$ngx_pid" 2>/dev/null || true; }
trap cleanup EXIT
. scripts/bench-common.sh
bench_start_nginx "$run/nginx" "$port" 1 '{"order_id":"0000000000000001","status":"accepted"}' \
	"master_process off;"
json() { # file expression-over-j
	python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"
}
wall_ms() { date +%s%3N; }

# Sorted by construction: order i is due in [i, i+1) of equal slots.
awk -v n="$orders" -v secs="$tsecs" 'BEGIN {
	srand(1); slot = secs * 1000.0 / n; print "offset_ms,user,sku,qty,key"
	for (i = 0; i < n; i++)
		printf "%.3f,u%d,s%d,1,k%d\n", (i + rand()) * slot, int(rand() * 200000), int(1000 * rand() ^ 3), i
}' >"$run/trace.csv"
size=$(du -m "$run/trace.csv" | cut -f1)
rate=$(awk -v n="$orders" -v s="$tsecs" -v x="$speed" 'BEGIN {printf "%.0f", n / s * x}')

echo "## Replay and merge at festival scale ($(date -u +%Y-%m-%d), $(nproc) cores, nginx 1 worker)"
echo
echo "A trace of $orders orders over $tsecs s ($size MB of CSV), replayed at ${speed}x: $rate orders/s."
echo
echo "### 1. Loading the trace"
echo
echo "| | CPU ms | wall ms |"
echo "|---|---|---|"
t0=$(wall_ms)
cpu=$(bench_run_cpu_us bin/flashload --replay "$run/trace.csv" --write-stock "$run/stock.csv")
t1=$(wall_ms)
echo "| flashload --replay (parse, renumber users and SKUs, sort) | $((cpu / 1000)) | $((t1 - t0)) |"
t0=$(wall_ms)
cpu=$(bench_run_cpu_us awk -F, '{n += $4} END {print n}' "$run/trace.csv")
t1=$(wall_ms)
echo "| reference: awk summing one column | $((cpu / 1000)) | $((t1 - t0)) |"
echo

# Two generators at once, as two boxes would run: same T0, --shard 1/2, 2/2.
pair() { # name extra-args...
	local name=$1
	shift
	local t0 pids=()
	t0=$(( $(wall_ms) + 3000 ))
	for i in 1 2; do
		BENCH_CPU_OUT=/dev/null bench_run_cpu_us bin/flashload --target "127.0.0.1:$port" --threads 1 \
			--connections 64 --quiet --t0 "$t0" --shard "$i/2" --json "$run/$name-$i.json" \
			--users 200000 --skus 1000 "$@" >"$run/$name-$i.cpu" &
		pids+=($!)
	done
	wait "${pids[@]}" # not nginx, also a job of this shell
}
pair replay --replay "$run/trace.csv" --speed "$speed"
secs=$(awk -v s="$tsecs" -v x="$speed" 'BEGIN {printf "%.3f", s / x}')
pair stage --rate "$rate" --duration "${secs}s"

echo "### 2. Replaying it: two generators at once, one thread each, 64 connections each"
echo
echo "| schedule | generator | requests | CPU us / request | generator's lateness p50 / p99 / p99.9 / max ms | send lag p99 ms | generator-limited |"
echo "|---|---|---|---|---|---|---|"
for name in replay stage; do
	for i in 1 2; do
		f=$run/$name-$i.json
		cpu=$(cat "$run/$name-$i.cpu")
		row=$(json "$f" '"%d | %.2f | %.3f / %.3f / %.3f / %.2f | %.2f | %s" % (j["requests"], '"$cpu"' / max(1, j["requests"]), j["generator_lag_us"]["p50"]/1000, j["generator_lag_us"]["p99"]/1000, j["generator_lag_us"]["p999"]/1000, j["generator_lag_us"]["max"]/1000, j["send_lag_us"]["p99"]/1000, "yes" if j["generator_limited"] else "no")')
		label=$([ "$name" = replay ] && echo "the trace at ${speed}x" || echo "reference: a stage at $rate/s")
		echo "| $label | $i of 2 | $row |"
	done
done
echo
echo "### 3. Merging the two reports"
echo
echo "| reports | requests merged | seconds in each | CPU ms | wall ms |"
echo "|---|---|---|---|---|"
for name in replay stage; do
	t0=$(wall_ms)
	cpu=$(bench_run_cpu_us bin/flashload merge "$run/$name-1.json" "$run/$name-2.json" --json "$run/$name-merged.json")
	t1=$(wall_ms)
	n=$(json "$run/$name-merged.json" 'j["requests"]')
	ns=$(json "$run/$name-1.json" 'len(j["seconds"])')
	echo "| $name | $n | $ns | $((cpu / 1000)) | $((t1 - t0)) |"
done
