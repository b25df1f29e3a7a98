#!/usr/bin/env bash
# Fault tests (tests/faults) against a real Redis (append-only, so a
# restart keeps its data) and Kafka broker on their own ports, always
# stopped on exit. Arguments name tests to run (default: all).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export FG_RUN_DIR=${FG_RUN_DIR:-$here/.run/faults}
export FG_REDIS_PORT=${FG_REDIS_PORT:-16679}
export FG_KAFKA_PORT=${FG_KAFKA_PORT:-19392}
export FG_KAFKA_CPORT=${FG_KAFKA_CPORT:-19393}
export FG_TOPIC=${FG_TOPIC:-orders-faults}
export FG_PARTITIONS=${FG_PARTITIONS:-4}
export FG_GATEWAY_PORT=${FG_GATEWAY_PORT:-18380}
export FG_REDIS_AOF=1

"$here/scripts/services.sh" down >/dev/null 2>&1 || true
rm -rf "$FG_RUN_DIR"
mkdir -p "$FG_RUN_DIR"
cleanup() {
	# A test may have left a service paused; stopped processes ignore SIGTERM.
	for p in "$FG_RUN_DIR"/redis.pid "$FG_RUN_DIR"/kafka.pid; do
		[ -f "$p" ] && kill -CONT "$(cat "$p")" 2>/dev/null || true
	done
	pkill -f "flashgate -c $FG_RUN_DIR/" 2>/dev/null || true
	"$here/scripts/services.sh" down >/dev/null
}
trap cleanup EXIT
"$here/scripts/services.sh" up
python3 "$here/tests/faults/test_faults.py" "$@"
