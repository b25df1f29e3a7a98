#!/usr/bin/env bash
# bench-frontend.sh: flashgate's front end against nginx, in one run, with
# wrk at the same connections, threads and duration for each:
#   flashgate sold out   POST /v1/orders for a SKU with no stock: after the
#                        first, answered from the worker's memory (no Redis)
#   flashgate healthz    GET /healthz
#   nginx static         `return 202 '{"status":"sold_out"}'`, worker_processes
#                        = cores, access_log off (config generated here)
# then the same three pipelined 16 deep (a wrk script). Prints Markdown.
# BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 64), BENCH_THREADS
# (wrk threads, default 1: the machine has 2 cores for server and client).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh --bench >/dev/null
export FG_RUN_DIR=$here/.run/bench-frontend FG_REDIS_PORT=16879 FG_KAFKA_PORT=19592 FG_KAFKA_CPORT=19593
export FG_TOPIC=orders-bench
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-1}
cores=$(nproc)
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
workers = $cores
[redis]
port = $FG_REDIS_PORT
[kafka]
brokers = 127.0.0.1:$FG_KAFKA_PORT
topic = $FG_TOPIC
CONF
printf 'sku,stock,per_user_limit\nhot1,0,1\n' >"$FG_RUN_DIR/stock.csv"
bin/flashgate -c "$FG_RUN_DIR/flashgate.conf" stock load "$FG_RUN_DIR/stock.csv" >/dev/null
bin/flashgate -c "$FG_RUN_DIR/flashgate.conf" >"$FG_RUN_DIR/gateway.log" 2>&1 &
gw_pid=$!

bench_start_nginx "$FG_RUN_DIR/nginx" "$ngx_port" "$cores" '{"status":"sold_out"}'
bench_wait_http "http://127.0.0.1:$gw_port/healthz"

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

# wrk's report -> "req/s p50_ms p99_ms"
wrk_runs=0
run_wrk() { # url [script [script args...]]
	local url=$1 script=()
	shift
	[ $# -gt 0 ] && { script=(-s "$1"); shift; }
	wrk_runs=$((wrk_runs + 1))
	local out="$FG_RUN_DIR/wrk-$wrk_runs.txt"
	wrk -t "$threads" -c "$conns" -d "${secs}s" --latency "${script[@]}" "$url" ${1:+-- "$@"} >"$out" 2>&1 ||
		echo "bench: wrk exited $? for $url; its output: $out" >&2
	python3 - "$out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
if not re.search(r"Requests/sec:", t):
    sys.stderr.write("bench: no result in %s:\n%s\n" % (sys.argv[1], t))
    print("0 0 0 0/0")
    sys.exit(0)
def ms(v):
    n, u = float(re.match(r"([\d.]+)", v).group(1)), re.sub(r"[\d.]", "", v)
    return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"99%\s+(\S+)", t).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
total = re.search(r"(\d+) requests in", t).group(1)
print("%.0f %.2f %.2f %s/%s" % (rps, p50, p99, non2xx.group(1) if non2xx else "0", total))
PY
}

wrk -t 1 -c 8 -d 2s -s "$FG_RUN_DIR/post.lua" "http://127.0.0.1:$gw_port/v1/orders" >/dev/null # warm up
read -r s_rps s50 s99 s_non2xx <<<"$(run_wrk "http://127.0.0.1:$gw_port/v1/orders" "$FG_RUN_DIR/post.lua")"
read -r h_rps h50 h99 _ <<<"$(run_wrk "http://127.0.0.1:$gw_port/healthz")"
read -r n_rps n50 n99 _ <<<"$(run_wrk "http://127.0.0.1:$ngx_port/")"
read -r sp_rps sp50 sp99 _ <<<"$(run_wrk "http://127.0.0.1:$gw_port/v1/orders" "$FG_RUN_DIR/pipeline.lua" post)"
read -r hp_rps hp50 hp99 _ <<<"$(run_wrk "http://127.0.0.1:$gw_port/healthz" "$FG_RUN_DIR/pipeline.lua")"
read -r np_rps np50 np99 _ <<<"$(run_wrk "http://127.0.0.1:$ngx_port/" "$FG_RUN_DIR/pipeline.lua" post)"
evals=$(redis-cli -p "$FG_REDIS_PORT" INFO commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p')
r() { python3 -c "print('%.2f' % ($1 / $2))"; }

echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $cores cores; wrk -t$threads -c$conns -d${secs}s" \
	"on the same machine; flashgate $cores workers, nginx $cores worker processes"
echo
echo "| server, path | req/s | p50 ms | p99 ms | vs nginx |"
echo "|---|---:|---:|---:|---:|"
echo "| flashgate, sold out (POST, 409) | $s_rps | $s50 | $s99 | $(r "$s_rps" "$n_rps") |"
echo "| flashgate, GET /healthz | $h_rps | $h50 | $h99 | $(r "$h_rps" "$n_rps") |"
echo "| nginx, return 202 | $n_rps | $n50 | $n99 | 1.00 |"
echo "| flashgate, sold out, pipelined 16 | $sp_rps | $sp50 | $sp99 | $(r "$sp_rps" "$np_rps") |"
echo "| flashgate, GET /healthz, pipelined 16 | $hp_rps | $hp50 | $hp99 | $(r "$hp_rps" "$np_rps") |"
echo "| nginx, return 202, pipelined 16 | $np_rps | $np50 | $np99 | 1.00 |"
echo
echo "Redis reservation calls during all the sold-out runs: ${evals:-0}; non-2xx answers (all 409) / requests in the first: $s_non2xx"
