#!/usr/bin/env bash
# setup.sh: installs everything flashgate's build, tests and demo need on a fresh
# Debian 12 machine, and assembles a real Apache Kafka broker (KRaft, single node)
# from Maven Central jars into .deps/kafka. Idempotent: a second run checks and
# returns in about a second.
#
# Needs root for apt-get (CI and the dev machines run as root). Set
# FLASHGATE_SKIP_APT=1 to skip the package step where packages are managed
# elsewhere.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
deps="$here/.deps"
kafka_version=${KAFKA_VERSION:-3.9.0}

packages=(
	build-essential pkg-config
	liburing-dev libhiredis-dev librdkafka-dev libjemalloc-dev libinih-dev libcmocka-dev
	# libcrypto: JWT signatures (HS256, EdDSA, ES256) in core/jwt
	libssl-dev
	# jansson: `flashload merge` reads other generators' JSON reports
	libjansson-dev
	redis-server redis-tools kcat
	default-jdk-headless maven
	python3 curl
	# the test CA and certificate of the broker's TLS listener
	openssl
	# renders flashload's HTML report in the integration tests
	chromium
	# `make install`'s checks: systemd-analyze verify on the unit, groff on the man pages
	systemd groff-base
	# promtool: the metrics page, the alerting rules (config/prometheus) in the tests
	prometheus
	# the Kafka cluster suite's network partition: a rule on the loopback of
	# the suite's own network namespace, never the host's
	iptables
)

missing_packages() {
	local p
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			printf '%s\n' "$p"
	done
}

install_packages() {
	local missing
	missing=$(missing_packages)
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: missing Debian packages and not root: $missing" >&2
		echo "setup: run as root, or: sudo apt-get install $missing" >&2
		return 1
	fi
	echo "setup: installing:" $missing
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	# Debian starts redis-server as a system service on install; flashgate's
	# tests run their own on other ports, so the one this step just
	# installed only wastes memory. One the host had before is left alone.
	if command -v systemctl >/dev/null 2>&1; then
		if grep -qx redis-server <<<"$missing"; then
			systemctl disable --now redis-server >/dev/null 2>&1 || true
		fi
		if grep -qx prometheus <<<"$missing"; then
			systemctl disable --now prometheus >/dev/null 2>&1 || true
		fi
		if grep -qx nginx-light <<<"$missing"; then
			systemctl disable --now nginx >/dev/null 2>&1 || true
		fi
	fi
}

assemble_kafka() {
	local dir="$deps/kafka"
	# Bump when the pom below changes, so an old assembly is redone.
	local stamp="$dir/.complete-$kafka_version-2"
	if [ -f "$stamp" ]; then
		return 0
	fi
	echo "setup: assembling Apache Kafka $kafka_version from Maven Central into $dir"
	mkdir -p "$dir"
	rm -rf "$dir/libs"
	cat >"$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>flashgate</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$kafka_version</version>
    </dependency>
    <dependency>
      <!-- the admin CLI (TopicCommand) moved out of the broker jar in 3.x -->
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$kafka_version</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>1.2.25</version>
    </dependency>
  </dependencies>
</project>
POM
	(cd "$dir" && mvn -B -q -Dstyle.color=never -f pom.xml \
		org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
		-DoutputDirectory=libs -DincludeScope=runtime)
	ls "$dir"/libs/kafka_2.13-"$kafka_version".jar >/dev/null
	touch "$stamp"
}

# --fuzz: also clang and its sanitizer runtimes (libclang-rt-dev, not pulled in
# by clang on Debian 12), for the libFuzzer targets (`make fuzz`).
# --bench: also nginx and wrk, the references of scripts/bench-frontend.sh.
for arg in "$@"; do
	case "$arg" in
	--fuzz) packages+=(clang libclang-rt-dev) ;;
	--bench) packages+=(nginx-light wrk) ;;
	*) echo "setup: unknown option $arg (known: --fuzz --bench)" >&2; exit 2 ;;
	esac
done

install_packages
assemble_kafka
"$here/scripts/demo-keys.sh" "$here/.run/keys"
echo "setup: ok"
