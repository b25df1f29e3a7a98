# bench-common.sh: sourced by the bench-*.sh scripts. Builds, starts fresh
# services in $FG_RUN_DIR (set by the caller with its own ports), and stops
# the gateway (gw_pid) and the services on exit; a caller with more to stop
# defines bench_cleanup_extra.
# shellcheck shell=bash

gw_pid=

bench_stop_gateway() {
	if [ -n "$gw_pid" ]; then
		kill -TERM "$gw_pid" 2>/dev/null || true
		wait "$gw_pid" 2>/dev/null || true
		gw_pid=
	fi
}

bench_cleanup() {
	bench_stop_gateway
	if declare -F bench_cleanup_extra >/dev/null; then
		bench_cleanup_extra
	fi
	scripts/services.sh down >/dev/null
}

bench_prepare() {
	trap bench_cleanup EXIT
	make -s all
	scripts/services.sh down >/dev/null 2>&1 || true
	rm -rf "$FG_RUN_DIR"
	mkdir -p "$FG_RUN_DIR"
	scripts/services.sh up >/dev/null
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
