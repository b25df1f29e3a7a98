/* tokens: shoppers' bearer tokens. See tokens.h. */
#include "tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* A thread remembers at most this many shoppers' tokens (about 34 MB). */
#define TOKENS_SLOTS_MAX 65536

struct tokens_slot {
	unsigned user; /* 0: empty */
	uint16_t len;
	char tok[TOKENS_TOKEN_MAX];
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int tokens_init(struct tokens *t, const struct jwt_key *key, const char *user_prefix, unsigned users,
		int64_t ttl_s)
{
	unsigned n = 16;
	while (n < users && n < TOKENS_SLOTS_MAX)
		n *= 2;
	*t = (struct tokens){.key = key, .user_prefix = user_prefix, .mask = n - 1};
	/* Issued at the top of the hour, as at a login before the sale: two
	 * runs within the hour send the same tokens, so a warm-up run leaves
	 * the gateway's caches as a sale's repeat clicks find them. */
	t->iat_s = (int64_t)time(NULL) / 3600 * 3600;
	t->exp_s = t->iat_s + ttl_s + (ttl_s > 0 ? 3600 : 0);
	t->v = calloc(n, sizeof(*t->v));
	t->cx = jwt_ctx_new(key, 1);
	return t->v && t->cx ? 0 : -ENOMEM;
}

void tokens_free(struct tokens *t)
{
	free(t->v);
	t->v = NULL;
	jwt_ctx_free(t->cx);
	t->cx = NULL;
}

const char *tokens_get(struct tokens *t, unsigned user, size_t *len)
{
	struct tokens_slot *s = &t->v[user & t->mask];
	if (s->user != user) {
		char claims[160];
		int64_t t0 = now_ns();
		snprintf(claims, sizeof(claims), "{\"sub\":\"%s%u\",\"iat\":%lld,\"exp\":%lld}", t->user_prefix, user,
			 (long long)t->iat_s, (long long)t->exp_s);
		int n = jwt_sign(t->key, t->cx, claims, s->tok, sizeof(s->tok));
		t->sign_ns += (uint64_t)(now_ns() - t0);
		if (n < 0) {
			s->user = 0;
			return NULL;
		}
		t->signed_n++;
		s->user = user;
		s->len = (uint16_t)n;
	}
	*len = s->len;
	return s->tok;
}
