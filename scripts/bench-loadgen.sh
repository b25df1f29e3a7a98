#!/usr/bin/env bash
# bench-loadgen.sh: flashload measured against wrk and against arithmetic,
# on a trivial endpoint (nginx `return 202`, one worker), one client core
# each, in the same run. Prints Markdown for BENCHMARKS.md:
#   1. maximum rate: wrk -t1 and flashload --threads 1, closed loop, the same
#      connections and length, alternated BENCH_ROUNDS times (median ratio);
#   2. schedule accuracy: flashload open loop at fixed rates; sends per
#      second against the schedule, send lag, and whether it says it was
#      generator-limited;
#   3. coordinated omission: a 1 s SIGSTOP of nginx in the middle of a 10 s
#      run at a fixed rate. For an open-loop measurement the percentiles are
#      known in advance (a share S/T of requests waits uniformly 0..S), so
#      flashload's numbers are checked against them; wrk (closed loop, with
#      its own after-the-fact correction) is shown in the same stall;
#   4. a steady run: wrk paced to a fixed rate by a Lua delay() (wrk2's idea,
#      per connection, millisecond steps), then flashload open loop at the
#      rate wrk achieved; below saturation the two latency distributions
#      should agree (wrk2 itself is not in Debian);
#   5. CPU per request at the same fixed rate: wrk paced as in 4 with one and
#      two threads, then flashload open loop with as many threads at the rate
#      wrk reached, each process's CPU (user + system) from its rusage.
# BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 64), BENCH_ROUNDS
# (default 3). Needs nginx and wrk: `scripts/setup.sh --bench`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh --bench >/dev/null
make -s all
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
rounds=${BENCH_ROUNDS:-3}
run=$here/.run/bench-loadgen
port=18781
rm -rf "$run"
mkdir -p "$run/nginx"
ngx_pid=
cleanup() {
	[ -n "$ngx_pid" ] && { kill -CONT "$ngx_pid" 2>/dev/null || true; kill -QUIT "$ngx_pid" 2>/dev/null || true; }
}
trap cleanup EXIT

# One worker: the server gets one core, the client the other. No master
# process, so the stall test stops the one process that serves.
. scripts/bench-common.sh
bench_start_nginx "$run/nginx" "$port" 1 '{"order_id":"0000000000000001","status":"accepted"}' \
	"master_process off;"
cat >"$run/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"user_id":"u1","sku":"sku1","qty":1}'
wrk.headers["Content-Type"] = "application/json"
LUA

json() { # file expression-over-j
	python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"
}
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "## flashload against wrk and arithmetic ($(date -u +%Y-%m-%d), $(nproc) cores, nginx 1 worker)"
echo
echo "### 1. Maximum rate, closed loop, 1 client thread, $conns connections, ${secs} s, POST"
echo
echo "| round | wrk req/s | flashload req/s | flashload / wrk |"
echo "|---|---|---|---|"
: >"$run/ratios"
for i in $(seq 1 "$rounds"); do
	wrk -t1 -c"$conns" -d"${secs}s" -s "$run/post.lua" "http://127.0.0.1:$port/v1/orders" >"$run/wrk-$i.txt"
	bin/flashload --target "127.0.0.1:$port" --threads 1 --connections "$conns" --duration "${secs}s" \
		--quiet --json "$run/fl-$i.json" >/dev/null
	w=$(wrk_rps "$run/wrk-$i.txt")
	f=$(json "$run/fl-$i.json" 'round(j["achieved_rps"])')
	r=$(awk -v f="$f" -v w="$w" 'BEGIN {printf "%.2f", f / w}')
	echo "$r" >>"$run/ratios"
	echo "| $i | ${w%.*} | $f | $r |"
done
echo
echo "Median flashload / wrk: **$(median <"$run/ratios")**"
echo
echo "### 2. Schedule accuracy, open loop, 1 thread, $conns connections, ${secs} s"
echo
echo "| schedule req/s | sent req/s | sent / schedule | send lag p50 / p99 / max ms | generator's own lag p99 ms | generator-limited |"
echo "|---|---|---|---|---|---|"
for rate in 10000 30000 50000; do
	bin/flashload --target "127.0.0.1:$port" --threads 1 --connections "$conns" --rate "$rate" \
		--duration "${secs}s" --quiet --json "$run/rate-$rate.json" >/dev/null
	sent=$(json "$run/rate-$rate.json" 'j["sent"]')
	sps=$(awk -v s="$sent" -v d="$secs" 'BEGIN {printf "%.0f", s / d}')
	acc=$(awk -v s="$sps" -v r="$rate" 'BEGIN {printf "%.4f", s / r}')
	lag=$(json "$run/rate-$rate.json" '"%.2f / %.2f / %.2f" % (j["send_lag_us"]["p50"]/1000, j["send_lag_us"]["p99"]/1000, j["send_lag_us"]["max"]/1000)')
	gen=$(json "$run/rate-$rate.json" '"%.2f" % (j["generator_lag_us"]["p99"]/1000)')
	gl=$(json "$run/rate-$rate.json" '"yes" if j["generator_limited"] else "no"')
	echo "| $rate | $sps | $acc | $lag | $gen | $gl |"
done
echo
echo "### 3. Coordinated omission: nginx stopped for 1 s at t = 4 s of a 10 s run at 5000 req/s"
echo
stall() { # command...: runs it with nginx stopped from 4.0 s to 5.0 s
	"$@" &
	local pid=$!
	sleep 4
	kill -STOP "$ngx_pid"
	sleep 1
	kill -CONT "$ngx_pid"
	wait "$pid"
}
stall bin/flashload --target "127.0.0.1:$port" --threads 1 --connections 256 --rate 5000 --duration 10s \
	--quiet --json "$run/stall.json" >/dev/null
stall wrk -t1 -c"$conns" -d10s --latency -s "$run/post.lua" "http://127.0.0.1:$port/v1/orders" >"$run/wrk-stall.txt"
# Open loop, stall S = 1 s in T = 10 s: a share S/T = 0.1 of requests waits
# uniformly 0..1 s, so percentile p (above 90) is about (1 - (1 - p) / 0.1) s,
# plus the normal service time; p90 and below are service time.
echo "| | p50 ms | p90 ms | p95 ms | p99 ms | p99.9 ms | max ms |"
echo "|---|---|---|---|---|---|---|"
echo "| expected (open loop, from arithmetic) | ~0.1 | ~0.1 | ~500 | ~900 | ~990 | ~1000 |"
json "$run/stall.json" '"| flashload (latency from intended send) | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f |" % (j["latency_us"]["p50"]/1000, j["latency_us"]["p90"]/1000, j["latency_us"]["p95"]/1000, j["latency_us"]["p99"]/1000, j["latency_us"]["p999"]/1000, j["latency_us"]["max"]/1000)'
json "$run/stall.json" '"| flashload (service time, from actual send) | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f |" % (j["service_us"]["p50"]/1000, j["service_us"]["p90"]/1000, j["service_us"]["p95"]/1000, j["service_us"]["p99"]/1000, j["service_us"]["p999"]/1000, j["service_us"]["max"]/1000)'
awk '/^ +50%/ {p50=$2} /^ +90%/ {p90=$2} /^ +99%/ {p99=$2} /Latency/ && !max {max=$4}
	END {printf "| wrk, closed loop, its own corrected percentiles | %s | %s | n/a | %s | n/a | %s |\n", p50, p90, p99, max}' "$run/wrk-stall.txt"
echo
json "$run/stall.json" '"flashload: %d sent of %d scheduled, unsent %d; requests that waited for a connection during the stall are counted from their intended time." % (j["sent"], j["scheduled"], j["unsent"])'
echo
echo "### 4. Steady fixed rate: wrk paced by delay() against flashload at the same rate, $conns connections, ${secs} s"
echo
cat >"$run/paced.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"user_id":"u1","sku":"sku1","qty":1}'
wrk.headers["Content-Type"] = "application/json"
-- each connection waits 12 ms after an answer: about 64 / 12.2 ms = 5,200 req/s
function delay() return 12 end
LUA
wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$run/paced.lua" "http://127.0.0.1:$port/v1/orders" >"$run/wrk-paced.txt"
paced=$(wrk_rps "$run/wrk-paced.txt")
bin/flashload --target "127.0.0.1:$port" --threads 1 --connections "$conns" --rate "${paced%.*}" \
	--duration "${secs}s" --quiet --json "$run/steady.json" >/dev/null
echo "| | rate req/s | p50 ms | p90 ms | p99 ms |"
echo "|---|---|---|---|---|"
awk -v r="${paced%.*}" '/^ +50%/ {p50=$2} /^ +90%/ {p90=$2} /^ +99%/ {p99=$2}
	END {printf "| wrk, paced (latency from actual send) | %s | %s | %s | %s |\n", r, p50, p90, p99}' "$run/wrk-paced.txt"
json "$run/steady.json" '"| flashload, open loop (latency from intended send) | %.0f | %.3f | %.3f | %.3f |" % (j["achieved_rps"], j["latency_us"]["p50"]/1000, j["latency_us"]["p90"]/1000, j["latency_us"]["p99"]/1000)'
json "$run/steady.json" '"| flashload, service time (from actual send) | %.0f | %.3f | %.3f | %.3f |" % (j["achieved_rps"], j["service_us"]["p50"]/1000, j["service_us"]["p90"]/1000, j["service_us"]["p99"]/1000)'
echo
echo "### 5. CPU per request at the same fixed rate, 256 connections, ${secs} s"
echo
echo "| client | threads | rate req/s | CPU us / request | flashload / wrk |"
echo "|---|---|---|---|---|"
for t in 1 2; do
	wcpu=$(BENCH_CPU_OUT="$run/wrk-cpu-$t.txt" bench_run_cpu_us wrk -t"$t" -c256 -d"${secs}s" -s "$run/paced.lua" \
		"http://127.0.0.1:$port/v1/orders")
	wrate=$(wrk_rps "$run/wrk-cpu-$t.txt")
	wreq=$(awk '/requests in/ {print $1}' "$run/wrk-cpu-$t.txt")
	fcpu=$(bench_run_cpu_us bin/flashload --target "127.0.0.1:$port" --threads "$t" --connections 256 \
		--rate "${wrate%.*}" --duration "${secs}s" --quiet --json "$run/cpu-$t.json")
	freq=$(json "$run/cpu-$t.json" 'j["requests"]')
	frate=$(json "$run/cpu-$t.json" 'round(j["achieved_rps"])')
	wper=$(awk -v c="$wcpu" -v n="$wreq" 'BEGIN {printf "%.2f", c / n}')
	fper=$(awk -v c="$fcpu" -v n="$freq" 'BEGIN {printf "%.2f", c / n}')
	echo "| wrk, paced | $t | ${wrate%.*} | $wper | |"
	echo "| flashload, open loop | $t | $frate | $fper | $(awk -v f="$fper" -v w="$wper" 'BEGIN {printf "%.2f", f / w}') |"
done
