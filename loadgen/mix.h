/*
 * mix: the bytes flashload sends and what each answer means. An order is a
 * POST /v1/orders with a JSON body and, when the profile asks for it, an
 * Idempotency-Key; a malformed request is one of the profile's kinds, each
 * with the status the gateway must answer.
 *
 * Owns: building requests without a formatter on the hot path, and mapping
 * an answer (or its absence) to an outcome. Does not own: sockets, timing
 * or what the engine does with an outcome (retry, count).
 */
#ifndef LG_MIX_H
#define LG_MIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"
#include "resp.h"

enum lg_outcome {
	LG_ACCEPTED,     /* 202 */
	LG_DUPLICATE,    /* 200: a repeated Idempotency-Key, the first order's id */
	LG_SOLD_OUT,     /* 409 sold_out or insufficient_stock */
	LG_LIMIT,        /* 409 limit_exceeded */
	LG_IN_PROGRESS,  /* 409 in_progress: the key's first request is in flight */
	LG_NOT_FOUND,    /* 404 */
	LG_WINDOW,       /* 425 not_started, 403 ended */
	LG_BAD_REQUEST,  /* another 4xx to a well-formed order */
	LG_UNAVAILABLE,  /* 503 */
	LG_OTHER_STATUS, /* anything else */
	LG_CONN_ERROR,   /* connect/send/recv failed, or a malformed answer */
	LG_TIMEOUT,      /* no answer within the timeout */
	LG_ABANDONED,    /* the client reset the connection before the answer ([mix] abandon_share) */
	LG_MALFORMED_OK, /* a malformed request got the status it must get */
	LG_MALFORMED_WRONG,
	LG_UNAUTHORIZED, /* 401: no token or a bad one */
	LG_FORBIDDEN,    /* 403 but a sale's end: the token may not buy this */
	LG_THROTTLED,    /* 429: over a rate or the connection cap */
	LG_OUTCOMES
};

extern const char *const lg_outcome_names[LG_OUTCOMES];

/* A client retries these with the same Idempotency-Key. */
static inline bool mix_retryable(enum lg_outcome o)
{
	return o == LG_UNAVAILABLE || o == LG_TIMEOUT || o == LG_CONN_ERROR || o == LG_IN_PROGRESS;
}

/* Room for a request with a bearer token (tokens.h). */
#define MIX_REQ_MAX 1024
#define MIX_KEY_MAX 48

struct mix_order {
	unsigned user, sku, qty;
	uint8_t who; /* enum prof_who */
	char key[MIX_KEY_MAX]; /* "" for no Idempotency-Key */
};

/* The Host header value ("host:port"), fixed for the run. */
struct mix_host {
	char text[280];
	size_t len;
};

void mix_host_init(struct mix_host *h, const char *host, unsigned port);

/* Who the request says it is from: a bearer token (tok NULL: none), the
 * user its body names (0: the order's own), and the address a load
 * balancer would put in X-Forwarded-For (xff NULL: none). */
struct mix_auth {
	const char *tok;
	size_t len;
	unsigned body_user;
	const char *xff;
};

/* Writes the request for o into dst (MIX_REQ_MAX bytes); returns its length. */
size_t mix_order_request(char *dst, const struct mix_host *h, const struct lg_profile *p,
			 const struct mix_order *o, struct mix_auth auth);

/* Writes a malformed request of the given kind (with the shopper's token:
 * it must be refused for what is malformed, not for who sent it); returns
 * its length. */
size_t mix_malformed_request(char *dst, const struct mix_host *h, const struct lg_profile *p,
			     enum prof_malformed kind, unsigned user, struct mix_auth auth);

/* The outcome of an answer to an order. */
enum lg_outcome mix_classify(const struct resp *rs);

/* The outcome of an answer to a malformed request of that kind. */
static inline enum lg_outcome mix_classify_malformed(const struct resp *rs, enum prof_malformed kind)
{
	return rs->status == prof_malformed_status[kind] ? LG_MALFORMED_OK : LG_MALFORMED_WRONG;
}

#endif
