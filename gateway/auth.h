/*
 * auth: who is buying. The bearer token of an order, verified by core/jwt
 * against the instance's keys, and remembered per worker by the token's
 * bytes: a shopper's repeated requests cost one signature check, and a
 * bot repeating a bad token costs one too.
 *
 * Owns: each worker's cache of checked tokens (fixed size, allocated at
 * start-up: a token's bytes, its verdict, and for a good one its claims,
 * until its exp or the next reload). Does not own: the keys (main loads
 * them at start-up and at each reload, read-only for every worker), JWT
 * rules (core/jwt), or what the claims allow (flow and the reserve script).
 */
#ifndef FG_AUTH_H
#define FG_AUTH_H

#include <stddef.h>

#include "../core/jwt.h"
#include "metrics.h"

struct worker;
struct cfg;

int auth_init(struct worker *w) __attribute__((warn_unused_result));
void auth_destroy(struct worker *w);

/* A reload: checks tokens against keys and cfg's [identity] rules from
 * now on, and forgets every cached verdict (a token of a removed key is
 * refused at once). 0, or -ENOMEM with everything as it was. */
int auth_reconfigure(struct worker *w, const struct cfg *cfg, const struct jwt_keyset *keys)
	__attribute__((warn_unused_result));

/*
 * The buyer an Authorization header's value (hdr[0..len), NULL when the
 * request has none) names: REF_NONE with *claims set (valid until the
 * worker's next auth_check), or the 401 refusal.
 */
enum metrics_refusal auth_check(struct worker *w, const char *hdr, size_t len, const struct jwt_claims **claims);

#endif
