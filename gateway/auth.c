/* auth: bearer tokens, checked once per worker. See auth.h. */
#include "auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/hash.h"
#include "worker.h"

/* Longer tokens are checked every time: a token with many claims is rare,
 * and the slots stay small (a typical token is 160-400 bytes). */
#define CACHED_TOKEN_MAX 512
/* How long a refusal that time cannot cure is remembered; one that it can
 * (not yet valid) is not cached. */
#define REFUSAL_TTL_S 60

struct entry {
	uint64_t hash; /* 0: free */
	uint32_t epoch; /* the auth's epoch when checked: from another, free */
	int64_t until_s; /* remembered until then (wall clock) */
	int64_t used_ms; /* last asked for: of a slot's two, the older one gives way */
	enum metrics_refusal verdict;
	uint16_t len;
	struct jwt_claims claims;
	char tok[CACHED_TOKEN_MAX];
};

struct auth {
	struct entry *v;
	uint64_t mask;
	struct jwt_policy policy;
	const struct jwt_keyset *keys;
	struct jwt_ctx *cx; /* this worker's prepared contexts for the keys */
	uint32_t epoch;     /* one more per reload: verdicts from before it are void */
	struct jwt_claims scratch; /* an uncached token's claims */
};

static void set_policy(struct auth *a, const struct cfg *cfg)
{
	a->policy.issuer = cfg->identity_issuer;
	a->policy.audience = cfg->identity_audience;
	a->policy.skew_s = cfg->identity_clock_skew_s;
}

int auth_init(struct worker *w)
{
	const struct cfg *cfg = w->cfg;
	struct auth *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	w->auth = a;
	if (strcmp(cfg->identity_mode, "jwt") != 0)
		return 0;
	unsigned n = 16;
	while (n < cfg->identity_cache_entries)
		n *= 2;
	a->v = calloc(n, sizeof(*a->v)); /* touched only as tokens arrive */
	a->keys = w->keys;
	a->cx = jwt_ctx_new(a->keys->keys, a->keys->n);
	if (!a->v || !a->cx)
		return -ENOMEM;
	a->mask = n - 1;
	set_policy(a, cfg);
	return 0;
}

int auth_reconfigure(struct worker *w, const struct cfg *cfg, const struct jwt_keyset *keys)
{
	struct auth *a = w->auth;
	if (!a->v)
		return 0; /* identity is off, and stays off until a restart */
	struct jwt_ctx *cx = jwt_ctx_new(keys->keys, keys->n);
	if (!cx)
		return -ENOMEM;
	jwt_ctx_free(a->cx);
	a->cx = cx;
	a->keys = keys;
	set_policy(a, cfg);
	/* A key removed, an issuer changed: every cached verdict is retried
	 * once, which costs a signature check per active token, not a stall. */
	a->epoch++;
	return 0;
}

void auth_destroy(struct worker *w)
{
	if (!w->auth)
		return;
	jwt_ctx_free(w->auth->cx);
	free(w->auth->v);
	free(w->auth);
	w->auth = NULL;
}

static enum metrics_refusal refusal_of(enum jwt_result r)
{
	switch (r) {
	case JWT_OK: return REF_NONE;
	case JWT_MALFORMED: return REF_TOKEN_MALFORMED;
	case JWT_UNKNOWN_KID: return REF_TOKEN_UNKNOWN_KID;
	case JWT_WRONG_ALG: return REF_TOKEN_WRONG_ALG;
	case JWT_BAD_SIGNATURE: return REF_TOKEN_BAD_SIGNATURE;
	case JWT_EXPIRED: return REF_TOKEN_EXPIRED;
	case JWT_NOT_YET_VALID: return REF_TOKEN_NOT_YET_VALID;
	case JWT_NO_EXPIRY: return REF_TOKEN_NO_EXPIRY;
	case JWT_BAD_SUBJECT: return REF_TOKEN_BAD_SUBJECT;
	case JWT_BAD_ISSUER: return REF_TOKEN_BAD_ISSUER;
	case JWT_BAD_AUDIENCE: return REF_TOKEN_BAD_AUDIENCE;
	case JWT_RESULT_N: break;
	}
	return REF_TOKEN_MALFORMED;
}

/* Two slots a token may live in: the one holding it, else the one to take
 * (empty, or the longer unused). Two ways instead of one: at half full, a
 * direct-mapped table put 39% of the tokens in a slot another token also
 * wanted, and each of those checked its signature again and again. */
static struct entry *lookup(struct auth *a, uint64_t h, const char *tok, size_t n)
{
	struct entry *e0 = &a->v[h & a->mask], *e1 = &a->v[(h ^ 1) & a->mask];
	if (e0->epoch != a->epoch)
		e0->hash = 0;
	if (e1->epoch != a->epoch)
		e1->hash = 0;
	if (e0->hash == h && e0->len == n && memcmp(e0->tok, tok, n) == 0)
		return e0;
	if (e1->hash == h && e1->len == n && memcmp(e1->tok, tok, n) == 0)
		return e1;
	struct entry *e = !e0->hash ? e0 : !e1->hash ? e1 : e0->used_ms <= e1->used_ms ? e0 : e1;
	e->hash = 0; /* not this token's (yet) */
	return e;
}

enum metrics_refusal auth_check(struct worker *w, const char *hdr, size_t len, const struct jwt_claims **claims)
{
	struct auth *a = w->auth;
	int64_t now_s = w->now_ms / 1000;
	/* RFC 6750 2.1: "Bearer" (any case), one space, the token. */
	if (!hdr)
		return REF_NO_TOKEN;
	if (len < 7 || strncasecmp(hdr, "Bearer ", 7) != 0)
		return REF_TOKEN_MALFORMED;
	const char *tok = hdr + 7;
	size_t n = len - 7;

	uint64_t h = n <= CACHED_TOKEN_MAX ? hash_bytes(tok, n) : 0;
	struct entry *e = h ? lookup(a, h, tok, n) : NULL;
	if (e && e->hash == h) {
		e->used_ms = w->now_mono_ms;
		w->stats.token_cache_hits++;
		if (e->verdict == REF_NONE && now_s >= e->claims.exp + a->policy.skew_s)
			e->verdict = REF_TOKEN_EXPIRED; /* it was good until now */
		if (now_s < e->until_s || e->verdict == REF_TOKEN_EXPIRED) {
			*claims = &e->claims;
			return e->verdict;
		}
	}
	w->stats.token_verifications++;
	struct jwt_claims *c = e ? &e->claims : &a->scratch;
	enum jwt_result r = jwt_verify(a->keys, a->cx, tok, n, &a->policy, now_s, c);
	enum metrics_refusal verdict = refusal_of(r);
	if (e && r != JWT_NOT_YET_VALID) {
		e->hash = h;
		e->epoch = a->epoch;
		e->used_ms = w->now_mono_ms;
		e->len = (uint16_t)n;
		memcpy(e->tok, tok, n);
		e->verdict = verdict;
		/* A good token is good until its exp; the exp check above ends it. */
		e->until_s = r == JWT_OK ? INT64_MAX : now_s + REFUSAL_TTL_S;
	} else if (e) {
		e->hash = 0;
	}
	*claims = c;
	return verdict;
}
