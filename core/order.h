/*
 * order: the order's two wire forms, with no I/O.
 *   - the request body a client POSTs: {"user_id":"...","sku":"...","qty":N}
 *   - the record flashgate writes to Kafka:
 *     {"order_id":"...","user_id":"...","sku":"...","qty":N,
 *      "accepted_at_ms":N,"node_id":N[,"idempotency_key":"..."]}
 *     (the key when the client sent one: it lets a checker prove that no
 *     key produced two orders)
 *
 * Owns: strict validation of the request (which field is wrong and why) and
 * encoding/decoding of the record. Does not own: ids (oid), stock rules
 * (the Redis script), or HTTP.
 *
 * Identifiers (user_id, sku, Idempotency-Key) are 1..64 bytes of
 * [A-Za-z0-9._:-]: safe in Redis keys, Kafka keys, JSON and logs without
 * escaping, and free of Redis Cluster hash-tag braces.
 */
#ifndef FG_ORDER_H
#define FG_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oid.h"

#define ORDER_ID_MAX 64

struct order_req {
	char user_id[ORDER_ID_MAX + 1];
	char sku[ORDER_ID_MAX + 1];
	uint8_t user_len;
	uint8_t sku_len;
	uint32_t qty;
};

/* Why a body was refused: the field ("body" for the whole) and a reason. */
struct order_error {
	const char *field;
	const char *why;
};

struct order_record {
	uint64_t order_id;
	char user_id[ORDER_ID_MAX + 1];
	char sku[ORDER_ID_MAX + 1];
	uint32_t qty;
	int64_t accepted_at_ms;
	unsigned node_id;
	char idempotency_key[ORDER_ID_MAX + 1]; /* "" when none */
};

/* true when s[0..len) is a valid identifier (see above). */
bool order_valid_ident(const char *s, size_t len);

/*
 * Parses and validates a request body. Unknown or repeated fields, a
 * missing field (user_id only when user_required: a signed token may name
 * the buyer instead; then user_len is 0), a non-integer or out-of-range qty
 * (1..max_qty) are errors. Returns 0, or -EINVAL with *err naming the field.
 */
int order_parse_request(const char *body, size_t len, uint32_t max_qty, bool user_required,
			struct order_req *out, struct order_error *err) __attribute__((warn_unused_result));

/*
 * Parses an admin body naming one SKU: {"sku":"..."} and nothing else.
 * Returns 0 with sku filled (NUL-terminated), or -EINVAL with *err set.
 */
int order_parse_sku_body(const char *body, size_t len, char sku[ORDER_ID_MAX + 1],
			 struct order_error *err) __attribute__((warn_unused_result));

/*
 * Writes the Kafka record for r into dst (NUL-terminated). Returns its
 * length, or -ENOSPC when cap is too small (ORDER_RECORD_MAX always fits).
 */
#define ORDER_RECORD_MAX 384
int order_encode_record(char *dst, size_t cap, const struct order_record *r)
	__attribute__((warn_unused_result));

/* Parses a record written by order_encode_record; returns 0 or -EINVAL. */
int order_decode_record(const char *json, size_t len, struct order_record *out)
	__attribute__((warn_unused_result));

#endif
