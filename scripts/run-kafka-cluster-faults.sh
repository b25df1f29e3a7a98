#!/usr/bin/env bash
# Fault tests on a three-broker Kafka cluster (tests/faults/test_kafka_cluster.py):
# a real Redis (append-only) and services.sh kafka-cluster-up (brokers
# 1-3, three controllers, the topic at replication factor 3 and
# min.insync.replicas 2) on their own ports, always stopped on exit.
# Arguments name tests to run (default: all).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# The suite runs in a network namespace of its own (as root), so the
# partition scenario's iptables rules go on that loopback, never the
# host's; without one that scenario fails and says why.
if [ "${FG_NETNS:-}" != 1 ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
	exec unshare -n env FG_NETNS=1 "$0" "$@"
fi
if [ "${FG_NETNS:-}" = 1 ]; then
	ip link set lo up
fi
export FG_RUN_DIR=${FG_RUN_DIR:-$here/.run/kafka-cluster-faults}
export FG_REDIS_PORT=${FG_REDIS_PORT:-16779}
export FG_KAFKA_CLUSTER_PORT=${FG_KAFKA_CLUSTER_PORT:-19500}
# The harness's single-broker address: the cluster's first broker.
export FG_KAFKA_PORT=$FG_KAFKA_CLUSTER_PORT
export FG_TOPIC=${FG_TOPIC:-orders-cluster}
export FG_PARTITIONS=${FG_PARTITIONS:-4}
export FG_GATEWAY_PORT=${FG_GATEWAY_PORT:-18480}
export FG_REDIS_AOF=1

"$here/scripts/services.sh" down >/dev/null 2>&1 || true
rm -rf "$FG_RUN_DIR"
mkdir -p "$FG_RUN_DIR"
cleanup() {
	# A test may have left a broker hung; stopped processes ignore SIGTERM.
	for p in "$FG_RUN_DIR"/kcluster/*/kafka.pid "$FG_RUN_DIR"/redis.pid; do
		[ -f "$p" ] && kill -CONT "$(cat "$p")" 2>/dev/null || true
	done
	pkill -f "flashgate -c $FG_RUN_DIR/" 2>/dev/null || true
	"$here/scripts/services.sh" down >/dev/null
}
trap cleanup EXIT
"$here/scripts/services.sh" redis-up
"$here/scripts/services.sh" kafka-cluster-up
python3 "$here/tests/faults/test_kafka_cluster.py" "$@"
