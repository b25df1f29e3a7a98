#!/usr/bin/env bash
# Integration tests against a real redis-server and Kafka broker, started
# here on their own ports and run directory (so a demo's services are left
# alone) and always stopped on exit. Arguments name tests to run (default: all):
# the gateway's tests, its Redis Cluster tests, then flashload's, admission's and operations'.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export FG_RUN_DIR=${FG_RUN_DIR:-$here/.run/test}
export FG_REDIS_PORT=${FG_REDIS_PORT:-16479}
export FG_KAFKA_PORT=${FG_KAFKA_PORT:-19192}
export FG_KAFKA_CPORT=${FG_KAFKA_CPORT:-19193}
# A SASL listener beside the plain one, for the client_properties tests.
export FG_KAFKA_SASL_PORT=${FG_KAFKA_SASL_PORT:-$((FG_KAFKA_PORT + 2))}
export FG_KAFKA_SASL_SSL_PORT=${FG_KAFKA_SASL_SSL_PORT:-$((FG_KAFKA_PORT + 3))}
export FG_TOPIC=${FG_TOPIC:-orders-test}
export FG_PARTITIONS=${FG_PARTITIONS:-4}
export FG_GATEWAY_PORT=${FG_GATEWAY_PORT:-18180}

# A fresh broker each run: the topic holds only this run's orders.
"$here/scripts/services.sh" down >/dev/null 2>&1 || true
# Cluster nodes an interrupted run left behind: their pid files are about
# to go, and a half-dead cluster on a test's ports fails the next run.
for dir in "$FG_RUN_DIR"/cluster/*/; do
	[ -f "$dir/redis.pid" ] || continue
	FG_REDIS_CLUSTER_PORT=$(basename "$dir") "$here/scripts/services.sh" cluster-down >/dev/null 2>&1 || true
done
rm -rf "$FG_RUN_DIR"
mkdir -p "$FG_RUN_DIR"
trap '"$here/scripts/services.sh" down >/dev/null' EXIT
"$here/scripts/services.sh" up
status=0
python3 "$here/tests/integration/test_gateway.py" "$@" || status=1
python3 "$here/tests/integration/test_redis_cluster.py" "$@" || status=1
python3 "$here/tests/integration/test_flashload.py" "$@" || status=1
python3 "$here/tests/integration/test_admission.py" "$@" || status=1
python3 "$here/tests/integration/test_operations.py" "$@" || status=1
exit $status
