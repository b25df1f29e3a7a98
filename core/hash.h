/*
 * hash: a fast 64-bit hash of a short byte string (tokens, user ids,
 * addresses), eight bytes at a time, for picking a table slot. Not a
 * cryptographic hash: every table that uses it compares the key itself
 * before trusting a match, so a collision costs a slot, never a wrong
 * answer. Never 0, so 0 can mark a free slot.
 */
#ifndef FG_HASH_H
#define FG_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t hash_bytes(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	uint64_t v = 0;
	memcpy(&v, p + i, n - i);
	h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 32;
	return h | 1;
}

#endif
