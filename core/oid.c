/* oid: time-sortable order ids. See oid.h for the layout and guarantees. */
#include "oid.h"

#include <errno.h>

#define SEQ_BITS 8
#define WORKER_BITS 4
#define NODE_BITS 10
#define TIME_SHIFT (SEQ_BITS + WORKER_BITS + NODE_BITS)

int oid_gen_init(struct oid_gen *g, unsigned node, unsigned worker)
{
	if (node > OID_MAX_NODE || worker > OID_MAX_WORKER)
		return -EINVAL;
	g->last_ms = 0;
	g->seq = 0;
	g->node = (uint16_t)node;
	g->worker = (uint8_t)worker;
	return 0;
}

void oid_gen_start_after(struct oid_gen *g, int64_t after_unix_ms)
{
	if (after_unix_ms <= OID_EPOCH_MS)
		return;
	uint64_t after = (uint64_t)(after_unix_ms - OID_EPOCH_MS);
	if (after >= g->last_ms) {
		g->last_ms = after;
		g->seq = (1u << SEQ_BITS) - 1; /* used up: the next id takes the ms after */
	}
}

int64_t oid_gen_next_ms(const struct oid_gen *g, int64_t now_unix_ms)
{
	int64_t last = (int64_t)g->last_ms + OID_EPOCH_MS;
	return now_unix_ms > last ? now_unix_ms : last + 1;
}

int64_t oid_gen_last_ms(const struct oid_gen *g)
{
	return g->last_ms ? (int64_t)g->last_ms + OID_EPOCH_MS : 0;
}

uint64_t oid_next(struct oid_gen *g, int64_t now_unix_ms)
{
	uint64_t now = now_unix_ms > OID_EPOCH_MS ? (uint64_t)(now_unix_ms - OID_EPOCH_MS) : 0;
	if (now > g->last_ms) {
		g->last_ms = now;
		g->seq = 0;
	} else if (++g->seq >= (1u << SEQ_BITS)) {
		/* Sequence exhausted (or clock stepped back): borrow the next ms. */
		g->last_ms++;
		g->seq = 0;
	}
	return (g->last_ms << TIME_SHIFT) | ((uint64_t)g->node << (SEQ_BITS + WORKER_BITS)) |
	       ((uint64_t)g->worker << SEQ_BITS) | g->seq;
}

void oid_format(uint64_t id, char out[OID_TEXT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = OID_TEXT_LEN - 1; i >= 0; i--) {
		out[i] = hex[id & 0xf];
		id >>= 4;
	}
	out[OID_TEXT_LEN] = '\0';
}

int oid_parse(const char *s, size_t len, uint64_t *id)
{
	uint64_t v = 0;
	if (len != OID_TEXT_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -EINVAL;
		v = v << 4 | d;
	}
	*id = v;
	return 0;
}

unsigned oid_node(uint64_t id)
{
	return (unsigned)(id >> (SEQ_BITS + WORKER_BITS)) & OID_MAX_NODE;
}

int64_t oid_unix_ms(uint64_t id)
{
	return (int64_t)(id >> TIME_SHIFT) + OID_EPOCH_MS;
}
