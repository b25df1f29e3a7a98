# bench-common.sh: sourced by the bench-*.sh scripts. Builds, starts fresh
# services in $FG_RUN_DIR (set by the caller with its own ports), and stops
# the gateway (gw_pid) and the services on exit; a caller with more to stop
# defines bench_cleanup_extra.
# shellcheck shell=bash

gw_pid=
# The gateway verifies the demo key by default ([identity] keys); flashload
# signs every shopper's token with the same secret, as an auth service would.
FG_SIGN_KEY=${FG_SIGN_KEY:-.run/keys/sign/demo.hs256}

bench_stop_gateway() {
	if [ -n "$gw_pid" ]; then
		kill -TERM "$gw_pid" 2>/dev/null || true
		wait "$gw_pid" 2>/dev/null || true
		gw_pid=
	fi
}

bench_cleanup() {
	bench_stop_gateway
	# Whatever it returns, the services below must still be stopped.
	if declare -F bench_cleanup_extra >/dev/null; then
		bench_cleanup_extra || true
	fi
	scripts/services.sh down >/dev/null
}

bench_prepare() {
	trap bench_cleanup EXIT
	make -s all
	scripts/demo-keys.sh .run/keys
	scripts/services.sh down >/dev/null 2>&1 || true
	rm -rf "$FG_RUN_DIR"
	mkdir -p "$FG_RUN_DIR"
	scripts/services.sh up >/dev/null
}

# The [redis] and [kafka] lines of a gateway config that point it at the
# services bench_prepare started; more [kafka] keys may follow them.
bench_services_conf() {
	printf '[redis]\nport = %s\n[kafka]\nbrokers = 127.0.0.1:%s\ntopic = %s\n' \
		"$FG_REDIS_PORT" "$FG_KAFKA_PORT" "$FG_TOPIC"
}

# Loads $FG_RUN_DIR/stock.csv with CONFIG, starts the gateway on it (its
# output appended to LOG; gw_pid for bench_stop_gateway) and waits until
# PORT answers /healthz.
bench_start_gateway() { # config log port
	bin/flashgate -c "$1" stock load --replace "$FG_RUN_DIR/stock.csv" >/dev/null
	bin/flashgate -c "$1" >>"$2" 2>&1 &
	gw_pid=$!
	bench_wait_http "http://127.0.0.1:$3/healthz"
}

# Waits until URL answers (any status), up to 10 s.
bench_wait_http() { # url
	for _ in $(seq 1 100); do
		curl -s -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: $1 did not answer within 10 s" >&2
	return 1
}

# CPU time (user + system) a process, all its threads included, has used so
# far, in microseconds; several pids are summed (nginx's master and workers).
bench_cpu_us() { # pid...
	local pid total=0
	for pid in "$@"; do
		total=$((total + $(awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000000 / hz }' "/proc/$pid/stat")))
	done
	echo "$total"
}

# a / b to two decimals; n/a when either is missing or zero (a run that
# printed no result).
bench_ratio() { # a b
	python3 -c "import sys; a, b = float(sys.argv[1] or 0), float(sys.argv[2] or 0); print('%.2f' % (a / b) if a and b else 'n/a')" "$1" "$2"
}

# The median of the numbers given as arguments.
bench_median() { # number...
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The first line of an A/B run's report (bench-malloc, bench-confirm): the
# date, commit, kernel, cores and the loads bench_ab_rows runs.
bench_ab_header() {
	echo "$(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) cores;" \
		"open loop 8 s over 128 connections at ${rates// //}/s, closed loop $n orders over 2000 connections;" \
		"$rounds rounds"
}

# An A/B run's rows, the settings alternated within each of $rounds rounds:
# START_FN SETTING (re)starts the gateway on a setting; then each of $rates
# open loop for 8 s over 128 connections, and $n orders closed loop over
# 2,000 connections, each measured by MEASURE_FN (it gets flashload's
# arguments and prints the row's remaining cells). The first start also
# warms the broker's JIT. Rows: | round | LABEL_FN SETTING | load | cells |.
bench_ab_rows() { # start_fn label_fn measure_fn setting...
	local start=$1 label=$2 measure=$3 round setting rate first=1
	shift 3
	for round in $(seq 1 "$rounds"); do
		for setting in "$@"; do
			bench_stop_gateway
			"$start" "$setting" || return 1
			if [ "$first" = 1 ]; then
				"$measure" --rate max --requests 30000 --connections 256 >/dev/null
				first=0
			fi
			for rate in $rates; do
				echo "| $round | $("$label" "$setting") | $rate/s open loop | $("$measure" --rate "$rate" --duration 8s --connections 128) |"
			done
			echo "| $round | $("$label" "$setting") | 2000 connections | $("$measure" --rate max --requests "$n" --connections 2000) |"
		done
	done
}

# Starts nginx from Debian answering every request with `return 202 BODY`
# (access log off), its config generated into DIR, not installed
# system-wide; sets ngx_pid and waits until it answers. The callers stop it.
bench_start_nginx() { # dir port worker_processes body [main-context lines]
	local dir=$1 port=$2 procs=$3 body=$4 extra=${5:-}
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<CONF
worker_processes $procs;
$extra
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path $dir/body;
	server {
		listen 127.0.0.1:$port reuseport;
		keepalive_requests 100000000;
		location / {
			default_type application/json;
			return 202 '$body';
		}
	}
}
CONF
	nginx -p "$dir" -c "$dir/nginx.conf" &
	ngx_pid=$!
	bench_wait_http "http://127.0.0.1:$port/"
}

# Runs a command; prints the CPU it and its children used (user + system,
# us) once it has exited, which /proc can no longer give. Its stdout goes
# to the file named by BENCH_CPU_OUT (default /dev/null).
bench_run_cpu_us() { # command args...
	python3 -c '
import os, resource, subprocess, sys
with open(os.environ.get("BENCH_CPU_OUT", "/dev/null"), "w") as out:
    subprocess.run(sys.argv[1:], check=True, stdout=out)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(int((u.ru_utime + u.ru_stime) * 1e6))' "$@"
}
