/*
 * access: a sampled access log of orders: one line for one order in every
 * [log] access_every (0: none), with the buyer as a keyed hash, never in
 * clear:
 *   ts=... level=info who=w0 msg="access" status=202 sku=d11-1 qty=1
 *     user=6f1c0b9e2a7d4c11 client=203.0.113.9 us=812
 * The hash is HMAC-SHA256 of the user id under the key of [log]
 * access_key_file (its first line; the same file on every instance makes
 * one user's lines match across the fleet), or under a key drawn at start
 * (lines match within one run only); the first 8 bytes, in hex.
 *
 * Owns: each worker's count and prepared HMAC context. Does not own: the
 * line's writing (logline) or what an order is (flow).
 */
#ifndef FG_ACCESS_H
#define FG_ACCESS_H

#include <stddef.h>
#include <stdint.h>

struct worker;
struct req;

/* The key the instance hashes user ids with. */
#define ACCESS_KEY_MAX 64
struct access_key {
	unsigned char bytes[ACCESS_KEY_MAX];
	size_t len;
};

/* Main, before the workers: the key of file (its first line, at least 16
 * bytes), or a random one when file is "". 0, or -errno with err set. */
int access_key_load(struct access_key *key, const char *file, char *err, size_t err_len)
	__attribute__((warn_unused_result));

int access_init(struct worker *w) __attribute__((warn_unused_result));
void access_destroy(struct worker *w);

/* An admitted order got its answer: maybe its line. */
void access_order(struct worker *w, const struct req *r, unsigned status);

#endif
