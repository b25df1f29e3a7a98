#!/usr/bin/env bash
# services.sh up|down|status|cluster-up|cluster-down|kafka-cluster-*: the real Redis and
# Apache Kafka (KRaft, single node) that flashgate's demo and tests run
# against, on loopback, on ports that are not the services' defaults. `up`
# returns only when each service answers (Redis: PING; Kafka: a metadata
# request listing the orders topic). `down` stops exactly the processes `up`
# (or `cluster-up`) started, by their pid files. `cluster-up` starts a
# Redis Cluster of three masters on FG_REDIS_CLUSTER_PORT and the two ports
# after it (with FG_REDIS_CLUSTER_REPLICAS=1 also a replica each, on the
# three ports after those), made with `redis-cli --cluster create`, and
# returns once every node says cluster_state:ok and every replica is linked
# to its master.
#
# Environment (defaults in brackets):
#   FG_RUN_DIR         state, logs and pid files          [.run]
#   FG_REDIS_PORT      redis-server port                  [16379]
#   FG_KAFKA_PORT      Kafka client listener              [19092]
#   FG_KAFKA_CPORT     Kafka controller listener          [19093]
#   FG_TOPIC           orders topic                       [orders]
#   FG_PARTITIONS      partitions of the orders topic     [4]
#   FG_KAFKA_HEAP      broker JVM heap                    [512m]
#   FG_KAFKA_JVM_OPTS  more broker JVM options, split on spaces, e.g.
#                      -Xlog:gc:file=gc.log to see its pauses [none]
#   FG_KAFKA_PROPS     more broker properties, ';'-separated, appended to
#                      server.properties (later lines win), e.g.
#                      'num.io.threads=2;num.network.threads=1'  [none]
#   FG_KAFKA_SASL_PORT a second client listener, SASL_PLAINTEXT, taking
#                      PLAIN and SCRAM-SHA-512 for the user flashgate with
#                      the password FG_KAFKA_SASL_PASSWORD, to test clients
#                      that authenticate ([kafka] client_properties) [none]
#   FG_KAFKA_SASL_PASSWORD                         [flashgate-sasl-secret]
#   FG_KAFKA_SASL_SSL_PORT the same users over TLS (SASL_SSL), with a test
#                      CA and broker certificate made by openssl in
#                      kafka/tls (clients trust kafka/tls/ca.pem)   [none]
#   FG_KAFKA_REQUEST_LOG 1: the broker logs every request it completes with
#                      its time split (queue, local, remote, response
#                      queue, send) to kafka/requests.log, to tell the
#                      broker's share of an acknowledgement's latency [0]
#   FG_REDIS_CLUSTER_PORT  the first cluster node's port  [17001]
#   FG_REDIS_CLUSTER_REPLICAS  1: cluster-up starts six nodes, a replica for
#                      each master, for failover tests       [0]
#   FG_REDIS_CLUSTER_NODE_TIMEOUT  ms before a silent node is failed and
#                      its replica takes over (cluster-node-timeout) [5000]
#   FG_REDIS_AOF       1: append-only file, fsync always  [0: no persistence]
#                      (fault tests restart Redis and need its data back)
#   FG_KAFKA_CLUSTER_PORT  kafka-cluster-up: the first broker's client port;
#                      the other two take the next two, the controllers
#                      the 9th to 11th after it, the brokers' replication
#                      listeners the 30th to 32nd after it    [19500]
#   FG_KAFKA_CLUSTER_HEAP  each cluster broker's JVM heap    [384m]
#
# kafka-cluster-up|kafka-cluster-down|kafka-cluster-status: the orders
# topic on a KRaft cluster of three brokers (node ids 1-3) and a quorum
# of three dedicated controllers (node ids 100-102, one may die),
# replication factor 3 and min.insync.replicas 2, as platforms run it.
# Dedicated controllers, not combined nodes: a test that stops two brokers
# to shrink the in-sync set must not take the quorum with them (it is the
# controller that shrinks the set). kafka-cluster-controller prints the
# active controller's id; kafka-cluster-balance moves leadership back to
# the preferred replicas. kafka-cluster-up starts
# whichever node is not running (so it also brings back one a test
# killed) and returns once every partition has its three replicas in
# sync; kafka-cluster-status prints each node and each partition's leader
# and in-sync replicas.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
run=${FG_RUN_DIR:-$here/.run}
# Absolute, because redis-server changes into its --dir before writing files.
mkdir -p "$run"
run=$(cd "$run" && pwd)
redis_port=${FG_REDIS_PORT:-16379}
cluster_port=${FG_REDIS_CLUSTER_PORT:-17001}
cluster_node_timeout=${FG_REDIS_CLUSTER_NODE_TIMEOUT:-5000}
kafka_port=${FG_KAFKA_PORT:-19092}
kafka_cport=${FG_KAFKA_CPORT:-19093}
topic=${FG_TOPIC:-orders}
partitions=${FG_PARTITIONS:-4}
heap=${FG_KAFKA_HEAP:-512m}
sasl_port=${FG_KAFKA_SASL_PORT:-}
sasl_password=${FG_KAFKA_SASL_PASSWORD:-flashgate-sasl-secret}
sasl_ssl_port=${FG_KAFKA_SASL_SSL_PORT:-}
kafka_libs="$here/.deps/kafka/libs"

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

running() { # pid
	local state
	kill -0 "$1" 2>/dev/null || return 1
	# A killed service whose parent has gone waits for init to reap it, and
	# until then still answers kill -0: a zombie is not running.
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ "$state" != Z ]
}

alive() { # pidfile
	[ -f "$1" ] && running "$(cat "$1")"
}

ms_now() { date +%s%3N; }

wait_for() { # what timeout_s command...
	local what=$1 timeout=$2 deadline
	shift 2
	deadline=$(($(date +%s) + timeout))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

redis_up() {
	local pidf="$run/redis.pid"
	if alive "$pidf"; then
		say "redis already running (pid $(cat "$pidf"), port $redis_port)"
		return 0
	fi
	mkdir -p "$run/redis"
	local aof=(--appendonly no)
	[ "${FG_REDIS_AOF:-0}" = 1 ] && aof=(--appendonly yes --appendfsync always)
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' "${aof[@]}" \
		--dir "$run/redis" --pidfile "$pidf" --daemonize yes \
		--logfile "$run/redis.log" ||
		die "redis-server failed to start; see $run/redis.log"
	wait_for redis 10 redis-cli -p "$redis_port" ping ||
		die "redis did not answer PING on 127.0.0.1:$redis_port within 10 s; see $run/redis.log"
	say "redis up on 127.0.0.1:$redis_port"
}

cluster_replicas=${FG_REDIS_CLUSTER_REPLICAS:-0}
case $cluster_replicas in 0 | 1) ;; *) die "FG_REDIS_CLUSTER_REPLICAS must be 0 or 1, not $cluster_replicas" ;; esac
case $cluster_node_timeout in '' | *[!0-9]*) die "FG_REDIS_CLUSTER_NODE_TIMEOUT must be milliseconds, not '$cluster_node_timeout'" ;; esac
cluster_ports() { seq "$cluster_port" $((cluster_port + 3 * (cluster_replicas + 1) - 1)) | tr '\n' ' '; }

# A node that is a master, or a replica whose link to its master is up.
node_synced() { # port
	local info
	info=$(redis-cli -p "$1" info replication 2>/dev/null | tr -d '\r')
	grep -q '^role:master' <<<"$info" || grep -q '^master_link_status:up' <<<"$info"
}

cluster_ok() { # port
	redis-cli -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

cluster_up() {
	local port nodes=() fresh=0
	for port in $(cluster_ports); do
		local dir="$run/cluster/$port" pidf="$run/cluster/$port/redis.pid"
		nodes+=("127.0.0.1:$port")
		if alive "$pidf"; then
			say "cluster node $port already running (pid $(cat "$pidf"))"
			continue
		fi
		mkdir -p "$dir"
		redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
			--cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
			--cluster-node-timeout "$cluster_node_timeout" --dir "$dir" --pidfile "$pidf" --daemonize yes \
			--logfile "$dir/redis.log" ||
			die "redis-server (cluster node $port) failed to start; see $dir/redis.log"
		wait_for redis 10 redis-cli -p "$port" ping ||
			die "cluster node $port did not answer PING within 10 s; see $dir/redis.log"
		fresh=1
	done
	if ! cluster_ok "$cluster_port"; then
		[ "$fresh" = 1 ] || die "cluster nodes run but the cluster is not ok; try $0 down first"
		redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$cluster_replicas" --cluster-yes \
			>"$run/cluster/create.log" 2>&1 ||
			die "redis-cli --cluster create failed; see $run/cluster/create.log"
	fi
	for port in $(cluster_ports); do
		wait_for cluster 20 cluster_ok "$port" ||
			die "cluster node $port did not reach cluster_state:ok within 20 s"
		wait_for replica 20 node_synced "$port" ||
			die "cluster node $port is a replica whose link to its master is not up after 20 s"
	done
	local replicas="no replicas"
	[ "$cluster_replicas" = 1 ] && replicas="a replica each"
	say "redis cluster up on 127.0.0.1:$(cluster_ports | sed 's/ $//' | tr ' ' ',') (3 masters, $replicas)"
}

# The nodes of the cluster on FG_REDIS_CLUSTER_PORT, replicas included
# whatever FG_REDIS_CLUSTER_REPLICAS says now: none may outlive a down.
cluster_down() {
	local port
	for port in $(seq "$cluster_port" $((cluster_port + 5))); do
		[ -f "$run/cluster/$port/redis.pid" ] || continue
		stop_pidfile "cluster node $port" "$run/cluster/$port/redis.pid"
		rm -f "$run/cluster/$port/nodes.conf"
	done
}

# A test CA and a broker certificate it signed (for 127.0.0.1 and
# localhost), made once per run directory: the SASL_SSL listener's.
kafka_tls() { # dir
	local tls=$1
	[ -f "$tls/broker.pem" ] && return 0
	mkdir -p "$tls"
	{
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=flashgate test CA" \
			-keyout "$tls/ca.key" -out "$tls/ca.pem" &&
			openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
				-keyout "$tls/broker.key" -out "$tls/broker.csr" &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext" &&
			openssl x509 -req -days 3650 -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
				-CAcreateserial -extfile "$tls/san.ext" -out "$tls/broker.crt"
	} >"$tls/openssl.log" 2>&1 || die "making the test TLS certificates failed; see $tls/openssl.log"
	cat "$tls/broker.key" "$tls/broker.crt" >"$tls/broker.pem"
}

# A broker's log4j.properties in DIR: warnings, and Kafka's own INFO
# lines, to DIR/server.log (-Dkafka.logs.dir).
kafka_log4j() { # dir
	cat >"$1/log4j.properties" <<'L4J'
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
L4J
}

kafka_config() {
	local dir="$run/kafka"
	mkdir -p "$dir/data"
	cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_cport
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_cport
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=$partitions
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted broker cannot register (DUPLICATE_BROKER_REGISTRATION)
# until the controller expires its previous session: keep that short here.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
PROPS
	if [ -n "$sasl_port$sasl_ssl_port" ]; then
		# Later lines win: the listeners again, with the SASL ones added.
		local listeners="PLAINTEXT://127.0.0.1:$kafka_port" name
		local map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
		[ -z "$sasl_port" ] || listeners+=",SASL_PLAINTEXT://127.0.0.1:$sasl_port"
		[ -z "$sasl_port" ] || map+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
		[ -z "$sasl_ssl_port" ] || listeners+=",SASL_SSL://127.0.0.1:$sasl_ssl_port"
		[ -z "$sasl_ssl_port" ] || map+=",SASL_SSL:SASL_SSL"
		cat >>"$dir/server.properties" <<PROPS
listeners=$listeners,CONTROLLER://127.0.0.1:$kafka_cport
advertised.listeners=$listeners
listener.security.protocol.map=$map
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
PROPS
		for name in sasl_plaintext sasl_ssl; do
			cat >>"$dir/server.properties" <<PROPS
listener.name.$name.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_flashgate="$sasl_password";
listener.name.$name.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
PROPS
		done
		if [ -n "$sasl_ssl_port" ]; then
			kafka_tls "$dir/tls"
			cat >>"$dir/server.properties" <<PROPS
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/broker.pem
PROPS
		fi
	fi
	if [ -n "${FG_KAFKA_PROPS:-}" ]; then
		tr ';' '\n' <<<"$FG_KAFKA_PROPS" >>"$dir/server.properties"
	fi
	kafka_log4j "$dir"
	if [ "${FG_KAFKA_REQUEST_LOG:-0}" = 1 ]; then
		cat >>"$dir/log4j.properties" <<'L4J'
log4j.appender.requests=org.apache.log4j.FileAppender
log4j.appender.requests.File=${kafka.logs.dir}/requests.log
log4j.appender.requests.layout=org.apache.log4j.PatternLayout
log4j.appender.requests.layout.ConversionPattern=[%d] %m%n
log4j.logger.kafka.request.logger=DEBUG, requests
log4j.additivity.kafka.request.logger=false
L4J
	fi
}

# Kafka's CLASS with ARGS on a JVM of HEAP whose logs go to DIR (its
# log4j.properties there). exec, so that a backgrounded call's $! is the
# JVM itself and `down` signals the broker, not a shell that would leave
# it running.
kafka_jvm() { # dir heap class args...
	local dir=$1 h=$2
	shift 2
	exec java -Xms"$h" -Xmx"$h" -XX:+UseG1GC -Xss512k ${FG_KAFKA_JVM_OPTS:-} \
		-Dkafka.logs.dir="$dir" -Dlog4j.configuration="file:$dir/log4j.properties" \
		-cp "$kafka_libs/*" "$@"
}

kafka_java() { kafka_jvm "$run/kafka" "$heap" "$@"; }

topic_ready() {
	kcat -b "127.0.0.1:$kafka_port" -L -t "$topic" -m 3 2>/dev/null |
		grep -q "topic \"$topic\" with $partitions partitions"
}

kafka_up() {
	local pidf="$run/kafka.pid" started
	[ -d "$kafka_libs" ] || die "no Kafka broker in $kafka_libs: run scripts/setup.sh first"
	if alive "$pidf"; then
		say "kafka already running (pid $(cat "$pidf"), port $kafka_port)"
	else
		started=$(ms_now)
		kafka_config
		if [ ! -f "$run/kafka/data/meta.properties" ]; then
			(kafka_java kafka.tools.StorageTool format -t "$(kafka_java kafka.tools.StorageTool random-uuid)" \
				-c "$run/kafka/server.properties" --ignore-formatted) >"$run/kafka/format.log" 2>&1 ||
				die "formatting Kafka storage failed; see $run/kafka/format.log"
		fi
		(kafka_java kafka.Kafka "$run/kafka/server.properties") >"$run/kafka/stdout.log" 2>&1 &
		echo $! >"$pidf"
		if ! wait_for kafka 90 kcat -b "127.0.0.1:$kafka_port" -L -m 2; then
			kafka_down
			die "Kafka did not answer a metadata request on 127.0.0.1:$kafka_port within 90 s; see $run/kafka/server.log"
		fi
		say "kafka up on 127.0.0.1:$kafka_port in $(($(ms_now) - started)) ms (heap $heap)"
	fi
	# A restarted broker may still be registering: a topic it already had
	# comes back by itself, and creating it meanwhile would time out.
	if ! topic_ready && [ -d "$run/kafka/data/$topic-0" ]; then
		wait_for topic 60 topic_ready ||
			die "topic $topic did not come back within 60 s of the broker's restart; see $run/kafka/server.log"
	fi
	if ! topic_ready; then
		(kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$kafka_port" \
			--create --if-not-exists --topic "$topic" --partitions "$partitions" \
			--replication-factor 1) >"$run/kafka/topic.log" 2>&1 ||
			die "creating topic $topic failed; see $run/kafka/topic.log"
		wait_for topic 30 topic_ready ||
			die "topic $topic has no $partitions partitions in the metadata after 30 s"
		say "topic $topic created with $partitions partitions"
	fi
	if [ -n "$sasl_port$sasl_ssl_port" ]; then
		# SCRAM credentials live in the cluster's metadata; setting them
		# again (every up: a restarted broker keeps them) changes nothing.
		(kafka_java kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$kafka_port" --alter \
			--add-config "SCRAM-SHA-512=[iterations=4096,password=$sasl_password]" \
			--entity-type users --entity-name flashgate) >"$run/kafka/scram.log" 2>&1 ||
			die "adding the SCRAM user flashgate failed; see $run/kafka/scram.log"
		say "kafka SASL (PLAIN, SCRAM-SHA-512) for user flashgate on 127.0.0.1:${sasl_port:--}, over TLS on 127.0.0.1:${sasl_ssl_port:--}"
	fi
}

stop_pidfile() { # name pidfile
	local name=$1 pidf=$2 pid i
	if ! alive "$pidf"; then
		rm -f "$pidf"
		return 0
	fi
	pid=$(cat "$pidf")
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 150); do
		running "$pid" || break
		sleep 0.1
	done
	if running "$pid"; then
		say "$name (pid $pid) ignored SIGTERM for 15 s; killing"
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidf"
	say "$name stopped"
}

kcluster_port=${FG_KAFKA_CLUSTER_PORT:-19500}
kcluster_heap=${FG_KAFKA_CLUSTER_HEAP:-384m}
kcluster_cport=$((kcluster_port + 9))
kcluster_controllers="100 101 102"
# Node 100 listens on kcluster_cport, 101 and 102 on the two after it.
kcluster_voters="100@127.0.0.1:$kcluster_cport,101@127.0.0.1:$((kcluster_cport + 1)),102@127.0.0.1:$((kcluster_cport + 2))"
kcluster_dir="$run/kcluster"
kcluster_bootstrap() { echo "127.0.0.1:$kcluster_port,127.0.0.1:$((kcluster_port + 1)),127.0.0.1:$((kcluster_port + 2))"; }

# A cluster node's server.properties and log4j.properties in its dir.
kcluster_config() { # node (1-3, or 100-102 for a controller)
	local node=$1 dir="$kcluster_dir/$1"
	mkdir -p "$dir/data"
	if [ "$node" -ge 100 ]; then
		cat >"$dir/server.properties" <<PROPS
process.roles=controller
node.id=$node
controller.quorum.voters=$kcluster_voters
listeners=CONTROLLER://127.0.0.1:$((kcluster_cport + node - 100))
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT
log.dirs=$dir/data
# The controller fences a broker whose heartbeats stopped after this long
# (default 9 s), and only then moves its partitions' leadership.
broker.session.timeout.ms=3000
PROPS
	else
		local port=$((kcluster_port + node - 1))
		cat >"$dir/server.properties" <<PROPS
process.roles=broker
node.id=$node
controller.quorum.voters=$kcluster_voters
controller.listener.names=CONTROLLER
# Clients on PLAINTEXT, replication between brokers on INTERNAL (30
# ports up), so a test can cut clients off one broker while it still
# replicates and the controller still hears it, as a partition between
# an application and one broker does.
listeners=PLAINTEXT://127.0.0.1:$port,INTERNAL://127.0.0.1:$((port + 30))
advertised.listeners=PLAINTEXT://127.0.0.1:$port,INTERNAL://127.0.0.1:$((port + 30))
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
log.dirs=$dir/data
num.partitions=$partitions
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
# A follower that stops fetching leaves the in-sync set after 3 s, not 30.
replica.lag.time.max.ms=3000
PROPS
	fi
	if [ -n "${FG_KAFKA_PROPS:-}" ] && [ "$node" -lt 100 ]; then
		tr ';' '\n' <<<"$FG_KAFKA_PROPS" >>"$dir/server.properties"
	fi
	kafka_log4j "$dir"
}

kcluster_java() { # node heap class args...
	local node=$1
	shift
	kafka_jvm "$kcluster_dir/$node" "$@"
}

# The brokers' metadata lists the topic (kcat says "with 0 partitions"
# of one they do not know).
kcluster_has_topic() {
	kcat -b "$(kcluster_bootstrap)" -L -t "$topic" -m 3 2>/dev/null |
		grep -q "topic \"$topic\" with $partitions partitions"
}

# Every partition of the topic led, with its three replicas in sync.
kcluster_synced() {
	local meta
	meta=$(kcat -b "$(kcluster_bootstrap)" -L -t "$topic" -m 3 2>/dev/null) || return 1
	grep -q "topic \"$topic\" with $partitions partitions" <<<"$meta" || return 1
	[ "$(grep -cE 'partition [0-9]+, leader [1-3], replicas: [1-3],[1-3],[1-3], isrs: [1-3],[1-3],[1-3]$' <<<"$meta")" = "$partitions" ]
}

kcluster_up() {
	local node started id pids=()
	[ -d "$kafka_libs" ] || die "no Kafka broker in $kafka_libs: run scripts/setup.sh first"
	started=$(ms_now)
	mkdir -p "$kcluster_dir"
	if [ ! -f "$kcluster_dir/cluster.id" ]; then
		(kcluster_java 100 64m kafka.tools.StorageTool random-uuid) >"$kcluster_dir/cluster.id" 2>/dev/null ||
			die "kafka-storage random-uuid failed"
	fi
	id=$(cat "$kcluster_dir/cluster.id")
	for node in $kcluster_controllers 1 2 3; do
		local pidf="$kcluster_dir/$node/kafka.pid" heap_n=$kcluster_heap
		[ "$node" -ge 100 ] && heap_n=256m
		if alive "$pidf"; then
			continue
		fi
		kcluster_config "$node"
		if [ ! -f "$kcluster_dir/$node/data/meta.properties" ]; then
			(kcluster_java "$node" 128m kafka.tools.StorageTool format -t "$id" \
				-c "$kcluster_dir/$node/server.properties" --ignore-formatted) >"$kcluster_dir/$node/format.log" 2>&1 ||
				die "formatting node $node's storage failed; see $kcluster_dir/$node/format.log"
		fi
		(kcluster_java "$node" "$heap_n" kafka.Kafka "$kcluster_dir/$node/server.properties") \
			>"$kcluster_dir/$node/stdout.log" 2>&1 &
		echo $! >"$pidf"
		pids+=("$node")
	done
	for node in 1 2 3; do
		wait_for kafka 120 kcat -b "127.0.0.1:$((kcluster_port + node - 1))" -L -m 2 ||
			die "cluster broker $node did not answer a metadata request within 120 s; see $kcluster_dir/$node/server.log"
	done
	# A topic the brokers already had comes back by itself once they have
	# registered; creating it meanwhile would time out.
	if ! kcluster_has_topic && ls -d "$kcluster_dir"/[123]/data/"$topic"-* >/dev/null 2>&1; then
		wait_for topic 60 kcluster_has_topic || true
	fi
	if ! kcluster_has_topic; then
		(kcluster_java 1 128m org.apache.kafka.tools.TopicCommand --bootstrap-server "$(kcluster_bootstrap)" \
			--create --if-not-exists --topic "$topic" --partitions "$partitions" --replication-factor 3 \
			--config min.insync.replicas=2) >"$kcluster_dir/topic.log" 2>&1 ||
			die "creating topic $topic on the cluster failed; see $kcluster_dir/topic.log"
	fi
	wait_for sync 120 kcluster_synced ||
		die "the cluster's topic $topic has not every replica in sync after 120 s; see $0 kafka-cluster-status"
	say "kafka cluster up on $(kcluster_bootstrap) (brokers 1-3, controllers 100-102 on 127.0.0.1:$kcluster_cport-$((kcluster_cport + 2)); started ${pids[*]:-none}) in $(($(ms_now) - started)) ms; topic $topic: $partitions partitions, 3 replicas, min.insync.replicas 2"
}

kcluster_down() {
	local node
	for node in 1 2 3 $kcluster_controllers; do
		[ -f "$kcluster_dir/$node/kafka.pid" ] || continue
		stop_pidfile "kafka cluster node $node" "$kcluster_dir/$node/kafka.pid"
	done
}

kcluster_status() {
	local node rc=0
	for node in $kcluster_controllers 1 2 3; do
		if alive "$kcluster_dir/$node/kafka.pid"; then
			say "kafka cluster node $node: running (pid $(cat "$kcluster_dir/$node/kafka.pid"))"
		else
			say "kafka cluster node $node: down"
			rc=1
		fi
	done
	kcat -b "$(kcluster_bootstrap)" -L -t "$topic" -m 3 2>/dev/null | grep -E 'broker|partition' || rc=1
	say "kafka cluster active controller: $(kcluster_controller || echo unknown)"
	return $rc
}

# The quorum's leader: the active controller's node id.
kcluster_controller() {
	(kcluster_java 1 64m org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$(kcluster_bootstrap)" \
		describe --status) 2>/dev/null | awk -F: '$1 == "LeaderId" {gsub(/ /, "", $2); print $2; found = 1}
		END {exit !found}'
}

# Leadership back on each partition's preferred replica, spread over the
# brokers, as the controller's own rebalancing would do minutes later.
kcluster_balance() {
	(kcluster_java 1 64m org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$(kcluster_bootstrap)" \
		--election-type PREFERRED --all-topic-partitions) >"$kcluster_dir/balance.log" 2>&1 ||
		grep -q "None of the provided partitions\|Valid replica already elected" "$kcluster_dir/balance.log" ||
		die "preferred leader election failed; see $kcluster_dir/balance.log"
	say "kafka cluster: leadership on the preferred replicas"
}

kafka_down() { stop_pidfile kafka "$run/kafka.pid"; }
redis_down() { stop_pidfile redis "$run/redis.pid"; }

status() {
	local rc=0
	if alive "$run/redis.pid" && redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
		say "redis: up (pid $(cat "$run/redis.pid"), 127.0.0.1:$redis_port)"
	else
		say "redis: down"
		rc=1
	fi
	if alive "$run/kafka.pid" && kcat -b "127.0.0.1:$kafka_port" -L -m 2 >/dev/null 2>&1; then
		say "kafka: up (pid $(cat "$run/kafka.pid"), 127.0.0.1:$kafka_port)"
	else
		say "kafka: down"
		rc=1
	fi
	return $rc
}

case "${1:-}" in
up)
	mkdir -p "$run"
	redis_up
	kafka_up
	;;
down)
	kafka_down
	redis_down
	cluster_down
	kcluster_down
	;;
redis-up) redis_up ;;
kafka-cluster-up) kcluster_up ;;
kafka-cluster-controller) kcluster_controller ;;
kafka-cluster-balance) kcluster_balance ;;
kafka-cluster-down) kcluster_down ;;
kafka-cluster-status) kcluster_status ;;
cluster-up)
	mkdir -p "$run"
	cluster_up
	;;
cluster-down) cluster_down ;;
status) status ;;
kafka-user)
	# kafka-user NAME PASSWORD: a SCRAM-SHA-512 user of the SASL listeners;
	# kafka-user NAME --delete takes it away (credential rotation tests).
	[ $# -eq 3 ] || die "usage: $0 kafka-user NAME PASSWORD|--delete"
	if [ "$3" = --delete ]; then
		(kafka_java kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$kafka_port" --alter \
			--delete-config SCRAM-SHA-512 --entity-type users --entity-name "$2") >"$run/kafka/scram.log" 2>&1 ||
			die "deleting the SCRAM user $2 failed; see $run/kafka/scram.log"
		say "kafka SCRAM user $2 deleted"
	else
		(kafka_java kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$kafka_port" --alter \
			--add-config "SCRAM-SHA-512=[iterations=4096,password=$3]" \
			--entity-type users --entity-name "$2") >"$run/kafka/scram.log" 2>&1 ||
			die "adding the SCRAM user $2 failed; see $run/kafka/scram.log"
		say "kafka SCRAM user $2 set"
	fi
	;;
*)
	echo "usage: $0 up|down|status|redis-up|cluster-up|cluster-down|kafka-cluster-up|kafka-cluster-down|kafka-cluster-status|kafka-cluster-controller|kafka-cluster-balance|kafka-user NAME PASSWORD|--delete" >&2
	exit 2
	;;
esac
