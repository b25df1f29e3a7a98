/*
 * tokens: the bearer token each simulated shopper sends, as a platform's
 * auth service would issue it: {"sub":USER,"iat":..,"exp":..} signed with
 * the run's key (core/jwt), made the first time the shopper orders and
 * remembered, so a shopper signs once as a real one logs in once.
 *
 * Owns: one engine thread's cache of tokens (fixed size, allocated at
 * start: a shopper whose slot was taken by another signs again) and the
 * count and time of the signing, which the report shows. Does not own: the
 * key (run loads it once for every thread), or the request (mix).
 */
#ifndef LG_TOKENS_H
#define LG_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/jwt.h"

#define TOKENS_TOKEN_MAX 512

struct tokens {
	const struct jwt_key *key;
	struct jwt_ctx *cx; /* this thread's, for the key */
	const char *user_prefix;
	int64_t iat_s, exp_s;
	struct tokens_slot *v;
	unsigned mask;
	uint64_t signed_n, sign_ns; /* tokens made, and the time that took */
};

/* For users numbered 1..users; tokens issued at the top of the current
 * hour and valid for ttl_s more than the hour (ttl_s < 0: expired that
 * long before it). 0 or -ENOMEM. */
int tokens_init(struct tokens *t, const struct jwt_key *key, const char *user_prefix, unsigned users,
		int64_t ttl_s) __attribute__((warn_unused_result));
void tokens_free(struct tokens *t);

/* user's token (its length in *len), valid until the next call; NULL when
 * signing failed. */
const char *tokens_get(struct tokens *t, unsigned user, size_t *len);

#endif
