/*
 * record: `flashload record`: a past sale's orders, read back from its
 * Kafka topic, written as a trace --replay takes (the CSV of trace.h):
 * each order's offset from the first (its accepted_at_ms: when the
 * gateway took it, within milliseconds of when it came), user, SKU,
 * quantity and Idempotency-Key. Users and keys are anonymised with a keyed
 * hash (HMAC-SHA256 under --anon-key, or a random key made for the one
 * recording), so the trace keeps who came back and which tries were one
 * order without naming anyone; SKUs keep their names.
 *
 * Owns: the scan's selection (time window, SKU prefix), the anonymising
 * and the file. Does not own: reading the topic (core/tscan) or the
 * record's format (core/order).
 */
#ifndef LG_RECORD_H
#define LG_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/kprops.h"

struct record_opts {
	struct kprops kafka;
	const char *topic;
	int64_t since_ms, until_ms; /* accepted_at_ms window; until 0: no end */
	const char *sku_prefix;     /* "" for every SKU */
	unsigned char anon_key[64];
	size_t anon_key_len;
	const char *out;
};

/* Writes the trace; the number of orders in it, or -errno with err set. */
long long record_run(const struct record_opts *o, char *err, size_t err_len)
	__attribute__((warn_unused_result));

#endif
