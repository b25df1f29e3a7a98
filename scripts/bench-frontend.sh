#!/usr/bin/env bash
# bench-frontend.sh: flashgate's front end against nginx, in one run, with
# wrk at the same connections, threads and duration for each:
#   flashgate sold out   POST /v1/orders for a SKU with no stock: after the
#                        first, answered from the worker's memory (no Redis)
#   flashgate healthz    GET /healthz
#   nginx static         `return 202 '{"status":"sold_out"}'`, worker_processes
#                        = cores, access_log off (config generated here)
# then the same three pipelined 16 deep (a wrk script). Prints Markdown.
# The unpipelined three run BENCH_ROUNDS times (default 3), alternating, and
# the sold-out ratio's median is printed: one run against one run drifts by
# a fifth on this shared machine. Each row has the server's CPU time per
# request (flashgate's process, nginx's master and workers) and wrk's: on 2
# shared cores the client's cost bounds what a faster server can show.
# BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 64), BENCH_THREADS
# (wrk threads, default 1: the machine has 2 cores for server and client),
# BENCH_WORKERS (flashgate's workers) and BENCH_NGINX_WORKERS (nginx's
# worker_processes), both the cores by default.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh --bench >/dev/null
export FG_RUN_DIR=$here/.run/bench-frontend FG_REDIS_PORT=16879 FG_KAFKA_PORT=19592 FG_KAFKA_CPORT=19593
export FG_TOPIC=orders-bench
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-1}
rounds=${BENCH_ROUNDS:-3}
cores=$(nproc)
workers=${BENCH_WORKERS:-$cores}
ngx_workers=${BENCH_NGINX_WORKERS:-$cores}
gw_port=18580
ngx_port=18581
ngx_pid=
bench_cleanup_extra() {
	if [ -n "$ngx_pid" ]; then kill -QUIT "$ngx_pid" 2>/dev/null || true; fi
}
. scripts/bench-common.sh
bench_prepare
mkdir -p "$FG_RUN_DIR/nginx"

cat >"$FG_RUN_DIR/flashgate.conf" <<CONF
[server]
port = $gw_port
workers = $workers
$(bench_services_conf)
CONF
printf 'sku,stock,per_user_limit\nhot1,0,1\n' >"$FG_RUN_DIR/stock.csv"
bench_start_gateway "$FG_RUN_DIR/flashgate.conf" "$FG_RUN_DIR/gateway.log" "$gw_port"
bench_start_nginx "$FG_RUN_DIR/nginx" "$ngx_port" "$ngx_workers" '{"status":"sold_out"}'

body='{"user_id":"u1","sku":"hot1","qty":1}'
cat >"$FG_RUN_DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
cat >"$FG_RUN_DIR/pipeline.lua" <<LUA
local method, body = "GET", nil
init = function(args)
	if args[1] == "post" then
		method, body = "POST", '$body'
	end
	local r = {}
	for i = 1, 16 do
		r[i] = wrk.format(method, nil, body and {["Content-Type"] = "application/json"} or nil, body)
	end
	req = table.concat(r)
end
request = function()
	return req
end
LUA

# One wrk run against the server whose pids are in $srv_pids. Prints
# "req/s p50_ms p99_ms non2xx/total server_cpu_us/req wrk_cpu_us/req"; wrk's
# report stays in $FG_RUN_DIR/wrk-NAME.txt (a name, not a counter: each run
# is called in a $(...) subshell, where a counter would not advance).
run_wrk() { # name url [script [script args...]]
	local out="$FG_RUN_DIR/wrk-$1.txt" url=$2 script=() before after
	shift 2
	[ $# -gt 0 ] && { script=(-s "$1"); shift; }
	# shellcheck disable=SC2086 # a list of pids
	before=$(bench_cpu_us $srv_pids)
	/usr/bin/time -f '%U %S' -o "$out.cpu" \
		wrk -t "$threads" -c "$conns" -d "${secs}s" --latency "${script[@]}" "$url" ${1:+-- "$@"} >"$out" 2>&1 ||
		echo "bench: wrk exited $? for $url; its output: $out" >&2
	# shellcheck disable=SC2086
	after=$(bench_cpu_us $srv_pids)
	python3 - "$out" "$before" "$after" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, u = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
try:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", t).group(1))
    wrk_s = sum(float(x) for x in open(sys.argv[1] + ".cpu").read().split()[-2:])
except (AttributeError, KeyError, ValueError, OSError):
    sys.stderr.write("bench: cannot read wrk's report %s:\n%s\n" % (sys.argv[1], t))
    print("0 0 0 0/0 0 0")
    sys.exit(0)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
srv_us = (int(sys.argv[3]) - int(sys.argv[2])) / total
# wrk sometimes prints "99% 0.00us" for a pipelined run (its histogram, not
# the server): a p99 below the p50 is no measurement.
p99 = "%.2f" % p99 if p99 >= p50 else "n/a"
print("%.0f %.2f %s %s/%d %.1f %.1f" % (rps, p50, p99, non2xx.group(1) if non2xx else "0", total,
                                        srv_us, wrk_s * 1e6 / total))
PY
}
row() { # label "rps p50 p99 non2xx srv_us wrk_us" reference_rps
	local rps p50 p99 non2xx srv wrk_cpu
	read -r rps p50 p99 non2xx srv wrk_cpu <<<"$2"
	echo "| $1 | $rps | $p50 | $p99 | $(bench_ratio "$rps" "$3") | $srv | $wrk_cpu |"
}

wrk -t 1 -c 8 -d 2s -s "$FG_RUN_DIR/post.lua" "http://127.0.0.1:$gw_port/v1/orders" >/dev/null # warm up
gw_pids=$gw_pid
ngx_pids="$ngx_pid $(pgrep -P "$ngx_pid" | tr '\n' ' ')"

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $cores cores; wrk -t$threads -c$conns -d${secs}s" \
	"on the same machine; flashgate $workers workers, nginx $ngx_workers worker processes; $rounds rounds, alternating"
echo
echo "| server, path | req/s | p50 ms | p99 ms | vs nginx | server CPU us/req | wrk CPU us/req |"
echo "|---|---:|---:|---:|---:|---:|---:|"
ratios=()
for round in $(seq 1 "$rounds"); do
	srv_pids=$ngx_pids
	n=$(run_wrk "nginx-$round" "http://127.0.0.1:$ngx_port/")
	srv_pids=$gw_pids
	s=$(run_wrk "soldout-$round" "http://127.0.0.1:$gw_port/v1/orders" "$FG_RUN_DIR/post.lua")
	h=$(run_wrk "healthz-$round" "http://127.0.0.1:$gw_port/healthz")
	n_rps=${n%% *}
	row "nginx, return 202 (round $round)" "$n" "$n_rps"
	row "flashgate, sold out (POST, 409) (round $round)" "$s" "$n_rps"
	row "flashgate, GET /healthz (round $round)" "$h" "$n_rps"
	ratios+=("$(bench_ratio "${s%% *}" "$n_rps")")
	[ "$round" = 1 ] && s_non2xx=$(cut -d' ' -f4 <<<"$s")
done
srv_pids=$ngx_pids
np=$(run_wrk nginx-p16 "http://127.0.0.1:$ngx_port/" "$FG_RUN_DIR/pipeline.lua" post)
srv_pids=$gw_pids
sp=$(run_wrk soldout-p16 "http://127.0.0.1:$gw_port/v1/orders" "$FG_RUN_DIR/pipeline.lua" post)
hp=$(run_wrk healthz-p16 "http://127.0.0.1:$gw_port/healthz" "$FG_RUN_DIR/pipeline.lua")
row "nginx, return 202, pipelined 16" "$np" "${np%% *}"
row "flashgate, sold out, pipelined 16" "$sp" "${np%% *}"
row "flashgate, GET /healthz, pipelined 16" "$hp" "${np%% *}"
evals=$(redis-cli -p "$FG_REDIS_PORT" INFO commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p')
echo
echo "Sold out vs nginx by round: ${ratios[*]}; median $(bench_median "${ratios[@]}")"
echo "Redis reservation calls during all the sold-out runs: ${evals:-0}; non-2xx answers (all 409) / requests in the first: $s_non2xx"
