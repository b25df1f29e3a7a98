/*
 * verify: after a run, proves from Redis and the Kafka topic that the
 * sale's books balance, printing one PASS/FAIL line per invariant:
 *   - no SKU oversold: stock >= 0 and sold + stock == initial
 *   - no user over the SKU's per-user limit, and the users' units add up
 *   - no order id twice in the topic
 *   - every 202 the generator saw is in the topic (none lost)
 *   - orders in the topic == 202s seen (none accepted silently)
 *   - units in the topic == stock consumed in Redis, per SKU
 *   - no reservation left pending in the ledger
 *   - no Idempotency-Key produced two orders: in the topic (records carry
 *     the key), and in the answers (one key, one order id)
 *   - every malformed request got the status it must get
 * The topic is read from the time the SKUs were loaded (offsets for that
 * time) up to the high watermark, and only records of loaded SKUs accepted
 * after their load count: earlier sales in the same topic are ignored.
 *
 * Owns: reading Redis (hiredis, blocking) and the topic (librdkafka
 * consumer, assigned partitions, no group) and the checks.
 */
#ifndef LG_VERIFY_H
#define LG_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/cfg.h"

struct verify_opts {
	char redis_host[256];
	unsigned redis_port;
	/* AUTH, from flashgate's config (--config): "" for none. */
	char redis_user[CFG_USER_MAX];
	char redis_password[CFG_PASSWORD_MAX];
	char kafka_brokers[512];
	/* [kafka] client_properties, from flashgate's config (--config). */
	char kafka_properties[CFG_KAFKA_PROPS_MAX];
	char kafka_properties_file[CFG_PATH_MAX];
	char topic[250];
	/* 202s the generator saw: ids, and how many units they were for. */
	const uint64_t *accepted_ids;
	size_t n_accepted;
	uint64_t accepted_units;
	/* Only SKUs with this prefix are checked (the ones the run used). */
	const char *sku_prefix;
	/* After `flashgate reconcile --policy complete`: orders a crashed
	 * gateway never answered may be in the topic without a 202. */
	bool reconciled;
	/* Other generators sell in the same sale (--shard, --expect-others):
	 * the topic holds orders this one never saw. */
	bool others;
	/* What the clients saw (absent with --verify-only). */
	bool have_client;
	uint64_t key_conflicts;
	/* Orders whose client reset the connection before an answer: each may
	 * be in the topic without a 202 ([mix] abandon_share). */
	uint64_t abandoned;
	uint64_t malformed_sent, malformed_ok;
};

#define VERIFY_MAX_CHECKS 12

struct verify_check {
	bool ok;
	char what[64];
	char detail[320];
};

struct verify_report {
	struct verify_check checks[VERIFY_MAX_CHECKS];
	int n, fails;
};

/* Runs the checks into rep and prints them to out; returns the number of
 * FAILs, or -errno when Redis or Kafka could not be read (message printed). */
int verify_run(const struct verify_opts *o, struct verify_report *rep, FILE *out)
	__attribute__((warn_unused_result));

#endif
