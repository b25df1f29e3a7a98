/*
 * oid: order ids, unique across worker threads and gateway instances, and
 * sorting by time both as integers and as their 16-hex-digit text.
 *
 * Layout of the 64 bits, high to low:
 *   42 bits  milliseconds since 2025-01-01T00:00:00Z (lasts until 2164)
 *   10 bits  node id (gateway instance, 0..1023, from the config)
 *    4 bits  worker index (0..15)
 *    8 bits  sequence within the millisecond
 * When a worker issues more than 256 ids in one millisecond, or the clock
 * steps back, the generator runs its own millisecond ahead of the clock
 * rather than repeat an id, and falls back in step once the clock passes it.
 *
 * Owns: the generator state of one worker and the text form. Does not own:
 * reading the clock (the caller passes the time, so tests control it).
 */
#ifndef FG_OID_H
#define FG_OID_H

#include <stddef.h>
#include <stdint.h>

#define OID_EPOCH_MS 1735689600000LL
#define OID_MAX_NODE 1023u
#define OID_MAX_WORKER 15u
#define OID_TEXT_LEN 16

struct oid_gen {
	uint64_t last_ms; /* since OID_EPOCH_MS */
	uint32_t seq;
	uint16_t node;
	uint8_t worker;
};

/* Returns 0, or -EINVAL when node or worker is out of range. */
int oid_gen_init(struct oid_gen *g, unsigned node, unsigned worker)
	__attribute__((warn_unused_result));

/* From now on every id is later than any id of time after_unix_ms (a
 * previous holder's bound: gateway/lease.h). */
void oid_gen_start_after(struct oid_gen *g, int64_t after_unix_ms);
/* The Unix ms of the id oid_next would give at now_unix_ms (at most one
 * more when that millisecond's sequence is used up). */
int64_t oid_gen_next_ms(const struct oid_gen *g, int64_t now_unix_ms);
/* The Unix ms of the last id given, or 0 for none. */
int64_t oid_gen_last_ms(const struct oid_gen *g);

/* The next id, given the wall clock in Unix milliseconds. */
uint64_t oid_next(struct oid_gen *g, int64_t now_unix_ms);

/* Writes exactly OID_TEXT_LEN lower-case hex digits and a NUL into out. */
void oid_format(uint64_t id, char out[OID_TEXT_LEN + 1]);

/* Parses the text form; returns 0 or -EINVAL. */
int oid_parse(const char *s, size_t len, uint64_t *id) __attribute__((warn_unused_result));

/* The Unix milliseconds an id was issued at, and the node that issued it. */
int64_t oid_unix_ms(uint64_t id);
unsigned oid_node(uint64_t id);

#endif
