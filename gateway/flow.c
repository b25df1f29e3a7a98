/*
 * flow: requests and the order state machine. See flow.h.
 *
 * The pool holds max_inflight + max_connections reqs: every connection can
 * always get one answer queued (a 503 at worst), and max_inflight bounds
 * the orders waiting on Redis and Kafka.
 */
#include "flow.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "admin.h"
#include "admission.h"
#include "auth.h"
#include "../core/netaddr.h"
#include "../core/bucket.h"
#include "../core/fmt.h"
#include "conn.h"
#include "health.h"
#include "kpub.h"
#include "lease.h"
#include "rebal.h"
#include "resv.h"
#include "skucache.h"
#include "worker.h"

/* The shortest a not-started answer is remembered, when this gateway's
 * clock already says the sale has begun but Redis's does not. */
#define NOT_STARTED_MIN_TTL_MS 50

struct flow {
	struct req *reqs;
	struct req *free;
	unsigned size, nfree;
	unsigned orders_inflight;
};

int flow_init(struct worker *w)
{
	struct flow *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->size = w->cfg->max_inflight + w->cfg->max_connections;
	f->reqs = calloc(f->size, sizeof(*f->reqs));
	if (!f->reqs) {
		free(f);
		return -ENOMEM;
	}
	for (unsigned i = f->size; i-- > 0;) {
		f->reqs[i].next = f->free;
		f->reqs[i].pooled = true;
		f->free = &f->reqs[i];
	}
	f->nfree = f->size;
	w->flow = f;
	return 0;
}

void flow_destroy(struct worker *w)
{
	if (!w->flow)
		return;
	for (unsigned i = 0; i < w->flow->size; i++)
		free(w->flow->reqs[i].big);
	free(w->flow->reqs);
	free(w->flow);
	w->flow = NULL;
}

struct req *flow_alloc(struct worker *w, struct conn *conn)
{
	struct flow *f = w->flow;
	struct req *r = f->free;
	if (!r)
		return NULL;
	f->free = r->next;
	f->nfree--;
	r->pooled = false;
	/* Only the bookkeeping is reset; the buffers are overwritten before use. */
	r->next = r->r_next = NULL;
	r->r_listed = false;
	r->conn = conn;
	r->in_conn = true;
	r->answered = r->close_after = r->head_only = r->http10 = r->is_order = r->in_kafka = false;
	r->redis_ops = r->tryagains = 0;
	r->cap = 0;
	r->repair_since_ms = 0;
	r->resp_len = 0;
	r->big_len = r->big_off = 0;
	return r;
}

struct req *flow_alloc_internal(struct worker *w)
{
	struct req *r = flow_alloc(w, NULL);
	if (!r)
		return NULL;
	r->in_conn = false;
	r->answered = true; /* nothing to say, to no one */
	r->idem_len = 0;
	r->idem[0] = '\0';
	return r;
}

/* Back to the pool once nothing holds r. Safe to call again on a req
 * already back: a handler cannot always know whether a callee freed it. */
static void maybe_free(struct worker *w, struct req *r)
{
	if (r->pooled || r->in_conn || r->redis_ops || r->in_kafka || !r->answered)
		return;
	struct flow *f = w->flow;
	r->pooled = true;
	free(r->big);
	r->big = NULL;
	r->conn = NULL;
	r->next = f->free;
	f->free = r;
	f->nfree++;
}

void flow_conn_done(struct worker *w, struct req *r)
{
	r->in_conn = false;
	r->conn = NULL;
	maybe_free(w, r);
}

/* Writes r's status line and headers, and the body when it fits (body
 * NULL: blen bytes that go out separately, from r->big). extra is NULL or
 * whole header lines, each ending in CRLF. The status sent: 500 if the
 * head did not fit. */
static unsigned build_answer(struct worker *w, struct req *r, unsigned status, const char *ctype,
			 const char *extra, const char *body, size_t blen)
{
	char retry[48];
	if (status == 503) {
		snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", w->cfg->retry_after_s);
		extra = retry;
	} else if (!extra) {
		extra = "";
	}
	/* Assembled piece by piece: this runs for every answer, and formatting
	 * with snprintf was the gateway's second-largest user-space cost. */
	static const char ctype_hdr[] = "\r\nContent-Type: ", clen_hdr[] = "\r\nContent-Length: ";
	static const char close_hdr[] = "Connection: close\r\n";
	/* HTTP/1.0 closes after each answer unless the server says otherwise
	 * (RFC 9112 9.3). */
	static const char keep_hdr[] = "Connection: keep-alive\r\n";
	const char *reason = http_status_text(status);
	size_t rlen = strlen(reason), clen = strlen(ctype), elen = strlen(extra);
	size_t need = 13 + rlen + sizeof(ctype_hdr) + clen + sizeof(clen_hdr) + 20 + 2 + elen +
		      sizeof(keep_hdr) + 2 + (body ? blen : 0);
	int n;
	if (need <= sizeof(r->resp)) {
		char *p = r->resp;
		p = fmt_put(p, "HTTP/1.1 ", 9);
		p = fmt_u64(p, status);
		*p++ = ' ';
		p = fmt_put(p, reason, rlen);
		p = fmt_put(p, ctype_hdr, sizeof(ctype_hdr) - 1);
		p = fmt_put(p, ctype, clen);
		p = fmt_put(p, clen_hdr, sizeof(clen_hdr) - 1);
		p = fmt_u64(p, blen);
		p = fmt_put(p, "\r\n", 2);
		p = fmt_put(p, extra, elen);
		if (r->close_after)
			p = fmt_put(p, close_hdr, sizeof(close_hdr) - 1);
		else if (r->http10)
			p = fmt_put(p, keep_hdr, sizeof(keep_hdr) - 1);
		p = fmt_put(p, "\r\n", 2);
		if (body && !r->head_only)
			p = fmt_put(p, body, blen);
		n = (int)(p - r->resp);
	} else {
		/* Bodies are built here from bounded fields; this cannot happen. */
		n = snprintf(r->resp, sizeof(r->resp),
			     "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
			     "Connection: close\r\n\r\n");
		r->close_after = true;
		status = 500;
	}
	r->resp_len = (uint16_t)n;
	return status;
}

/* r's answer is complete: count it and hand it to its connection. */
static void answered(struct worker *w, struct req *r, unsigned status)
{
	r->answered = true;
	if (r->is_order) {
		r->is_order = false;
		w->flow->orders_inflight--;
		access_order(w, r, status);
	}
	if (status == 202) {
		w->stats.accepted++;
		metrics_latency_add(&w->accept_latency, w->now_mono_us - r->admitted_us);
	} else if (status == 503) {
		w->stats.unavailable++;
	} else if (status >= 400 && status != 409) {
		w->stats.rejected++;
	}
	if (r->in_conn && r->conn)
		conn_req_answered(w, r->conn);
	else
		w->stats.answers_orphaned++;
}

/* Sets the final answer of r, once; later calls are ignored. Never frees
 * r: the handler that called it may still hand r to Redis (a confirm, a
 * repair), so the public entry points free it last. */
static void answer_with(struct worker *w, struct req *r, unsigned status, const char *extra,
			const char *body)
{
	if (r->answered)
		return;
	answered(w, r, build_answer(w, r, status, "application/json", extra, body, strlen(body)));
}

void flow_answer_large(struct worker *w, struct req *r, const char *content_type, char *body, size_t len)
{
	if (r->answered) {
		free(body);
		return;
	}
	unsigned status = build_answer(w, r, 200, content_type, NULL, NULL, len);
	if (status != 200 || r->head_only) {
		free(body);
	} else {
		r->big = body;
		r->big_len = (uint32_t)len;
		r->big_off = 0;
	}
	answered(w, r, status);
	maybe_free(w, r);
}

static void answer(struct worker *w, struct req *r, unsigned status, const char *body)
{
	answer_with(w, r, status, NULL, body);
}

static void answer_unavailable(struct worker *w, struct req *r, enum metrics_unavailable why)
{
	char body[96];
	if (r->answered)
		return; /* a release after a failure already answered: counted once */
	w->stats.unavailable_by[why]++;
	snprintf(body, sizeof(body), "{\"status\":\"unavailable\",\"reason\":\"%s\"}",
		 metrics_unavailable_reason(why));
	answer(w, r, 503, body);
}

void flow_reject(struct worker *w, struct req *r, unsigned status, const char *why)
{
	char body[160];
	r->close_after = true;
	snprintf(body, sizeof(body), "{\"status\":\"bad_request\",\"error\":\"%s\"}", why);
	answer(w, r, status, body);
}

static bool path_is(const struct http_request *hr, const char *path)
{
	size_t n = hr->path_len;
	const char *q = memchr(hr->path, '?', n);
	if (q)
		n = (size_t)(q - hr->path);
	return strlen(path) == n && memcmp(hr->path, path, n) == 0;
}

/* Answers a request turned away before any stock was asked for, in the
 * form its status calls for, and counts it by reason. */
static void refuse(struct worker *w, struct req *r, enum metrics_refusal why, uint32_t retry_s)
{
	char body[160], extra[200];
	unsigned status = metrics_refusal_status(why);
	const char *reason = metrics_refusal_reason(why);
	const char *kind = "invalid";
	extra[0] = '\0';
	w->stats.refused[why]++;
	if (status == 401) {
		/* RFC 6750 3: no credentials get the bare challenge, bad ones why. */
		kind = "unauthorized";
		if (why == REF_NO_TOKEN)
			snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer\r\n");
		else
			snprintf(extra, sizeof(extra),
				 "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"%s\"\r\n",
				 reason);
	} else if (status == 403) {
		kind = "forbidden";
	} else if (status == 429) {
		kind = "too_many_requests";
		snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", retry_s ? retry_s : 1);
	}
	snprintf(body, sizeof(body), "{\"status\":\"%s\",\"reason\":\"%s\"}", kind, reason);
	answer_with(w, r, status, extra[0] ? extra : NULL, body);
}

/* The client: the connection's (its peer, or the PROXY header's), or
 * behind a trusted proxy what its X-Forwarded-For says
 * (netaddr_forwarded_client). */
static int client_addr(struct worker *w, struct req *r, const struct http_request *hr, struct netaddr *out)
{
	*out = *conn_client(r->conn);
	if (!hr->forwarded_for || !netaddr_in_list(&w->cfg->trusted_proxy_list, out))
		return 0;
	return netaddr_forwarded_client(&w->cfg->trusted_proxy_list, hr->forwarded_for, hr->forwarded_for_len, out);
}

/* Who may order, and how often, before the body costs anything: the
 * address's and the instance's rates, then the token and its user's rate.
 * REF_NONE, with *claims set when identity is on (else NULL). */
static enum metrics_refusal admit(struct worker *w, struct req *r, const struct http_request *hr,
				  const struct jwt_claims **claims, uint32_t *retry_s)
{
	struct netaddr addr;
	*claims = NULL;
	if (client_addr(w, r, hr, &addr) < 0)
		return REF_BAD_FORWARDED_FOR;
	if ((*retry_s = adm_take_addr(w, &addr)) != 0)
		return REF_ADDR_RATE;
	if ((*retry_s = adm_take_instance(w)) != 0)
		return REF_INSTANCE_RATE;
	if (!w->keys)
		return REF_NONE;
	enum metrics_refusal why = auth_check(w, hr->authorization, hr->authorization_len, claims);
	if (why != REF_NONE)
		return why;
	if ((*retry_s = adm_take_user(w, (*claims)->sub, (*claims)->sub_len)) != 0)
		return REF_USER_RATE;
	return REF_NONE;
}

static void start_order(struct worker *w, struct req *r, const struct http_request *hr,
			const char *body)
{
	struct order_error err;
	char msg[200];
	const struct jwt_claims *claims;
	uint32_t retry_s = 0;
	enum metrics_refusal why = admit(w, r, hr, &claims, &retry_s);
	if (why != REF_NONE) {
		refuse(w, r, why, retry_s);
		return;
	}

	r->idem_len = 0;
	r->idem[0] = '\0';
	if (hr->idempotency_key) {
		if (!order_valid_ident(hr->idempotency_key, hr->idempotency_key_len)) {
			answer(w, r, 400, "{\"status\":\"invalid\",\"field\":\"Idempotency-Key\","
					  "\"error\":\"Idempotency-Key must be 1-64 characters of A-Z a-z 0-9 . _ : -\"}");
			return;
		}
		memcpy(r->idem, hr->idempotency_key, hr->idempotency_key_len);
		r->idem[hr->idempotency_key_len] = '\0';
		r->idem_len = (uint8_t)hr->idempotency_key_len;
	}
	if (order_parse_request(body, hr->content_length, w->cfg->max_qty, !claims, &r->order, &err) < 0) {
		if (strcmp(err.field, "qty") == 0 && strstr(err.why, "integer"))
			snprintf(msg, sizeof(msg),
				 "{\"status\":\"invalid\",\"field\":\"qty\","
				 "\"error\":\"must be an integer from 1 to %u\"}",
				 w->cfg->max_qty);
		else
			snprintf(msg, sizeof(msg), "{\"status\":\"invalid\",\"field\":\"%s\",\"error\":\"%s %s\"}",
				 err.field, err.field, err.why);
		answer(w, r, 400, msg);
		return;
	}
	if (claims) {
		/* The token names the buyer; a body that names another is someone
		 * buying as someone else. */
		if (r->order.user_len &&
		    (r->order.user_len != claims->sub_len || memcmp(r->order.user_id, claims->sub, claims->sub_len) != 0)) {
			refuse(w, r, REF_USER_MISMATCH, 0);
			return;
		}
		memcpy(r->order.user_id, claims->sub, (size_t)claims->sub_len + 1);
		r->order.user_len = claims->sub_len;
		if (!jwt_claims_allow_sku(claims, r->order.sku, r->order.sku_len)) {
			refuse(w, r, REF_SKU_NOT_IN_TOKEN, 0);
			return;
		}
		r->cap = claims->limit;
	} else if ((retry_s = adm_take_user(w, r->order.user_id, r->order.user_len)) != 0) {
		refuse(w, r, REF_USER_RATE, retry_s);
		return;
	}
	/* A keyed request may be the retry of an order that was accepted before
	 * the SKU sold out: only Redis knows, so it skips the cache. */
	int64_t window_ms = 0;
	char body_buf[96];
	switch (r->idem_len ? SKC_NONE : skc_get(w, r->order.sku, r->order.sku_len, &window_ms)) {
	case SKC_SOLD_OUT:
		w->stats.sold_out++;
		answer(w, r, 409, "{\"status\":\"sold_out\"}");
		return;
	case SKC_UNKNOWN:
		answer(w, r, 404, "{\"status\":\"unknown_sku\"}");
		return;
	case SKC_NOT_STARTED:
		snprintf(body_buf, sizeof(body_buf), "{\"status\":\"not_started\",\"starts_at_ms\":%lld}",
			 (long long)window_ms);
		answer(w, r, 425, body_buf);
		return;
	case SKC_ENDED:
		snprintf(body_buf, sizeof(body_buf), "{\"status\":\"ended\",\"ends_at_ms\":%lld}", (long long)window_ms);
		answer(w, r, 403, body_buf);
		return;
	case SKC_NONE:
		break;
	}
	if (flow_orders_inflight(w) >= w->cfg->max_inflight) {
		answer_unavailable(w, r, UNAV_OVERLOADED);
		return;
	}
	if (!lease_allows(w->shared->lease, w->now_mono_ms, oid_gen_next_ms(&w->oids, w->now_ms))) {
		answer_unavailable(w, r, UNAV_NODE_LEASE); /* an id now might be another instance's */
		return;
	}
	r->bucket = (uint8_t)bkt_home(r->order.user_id, r->order.user_len, w->cfg->redis_buckets);
	r->takes = r->empties = 0;
	r->transit = false;
	r->is_order = true;
	w->flow->orders_inflight++;
	r->accepted_at_ms = w->now_ms;
	r->admitted_us = w->now_mono_us;
	r->order_id = oid_next(&w->oids, w->now_ms);
	int rc = resv_reserve(w, r);
	if (rc < 0)
		answer_unavailable(w, r, rc == -ENOTCONN ? UNAV_REDIS : UNAV_OVERLOADED);
}

/* /livez and /readyz for the whole process (health.h); /healthz, as it
 * always was, for the worker that answers: whether it reaches Redis. */
static void answer_health(struct worker *w, struct req *r, const struct http_request *hr)
{
	char body[HEALTH_BODY_MAX];
	bool ok;
	if (path_is(hr, "/healthz")) {
		if (resv_up(w))
			answer(w, r, 200, "{\"status\":\"ok\"}");
		else
			answer_unavailable(w, r, UNAV_REDIS);
		return;
	}
	worker_publish(w); /* this worker's own state as of now */
	if (path_is(hr, "/livez"))
		health_live(w->shared->health, w->now_mono_ms, &ok, body, sizeof(body));
	else
		health_ready(w->shared->health, w->now_mono_ms, &ok, body, sizeof(body));
	answer(w, r, ok ? 200 : 503, body);
}

void flow_handle(struct worker *w, struct req *r, const struct http_request *hr, const char *body)
{
	w->stats.requests++;
	r->close_after = !hr->keep_alive;
	r->http10 = hr->minor_version == 0;
	r->head_only = hr->method == HTTP_METHOD_HEAD;
	if (w->draining) {
		/* Already read, so answer it: the client learns the order was not
		 * taken and where to retry, instead of seeing the connection drop. */
		r->close_after = true;
		answer_unavailable(w, r, UNAV_DRAINING);
		return;
	}
	/* With [admin] port set, orders only on the public listener and the
	 * admin endpoints only on the admin one; health on both. */
	bool on_admin = r->conn && conn_is_admin(r->conn), admin_apart = w->cfg->admin_port != 0;
	if (path_is(hr, "/v1/orders") && !on_admin) {
		if (hr->method != HTTP_METHOD_POST) {
			answer_with(w, r, 405, "Allow: POST\r\n",
				    "{\"status\":\"method_not_allowed\",\"allow\":\"POST\"}");
			return;
		}
		start_order(w, r, hr, body);
	} else if (hr->path_len > 7 && memcmp(hr->path, "/admin/", 7) == 0 && (on_admin || !admin_apart)) {
		admin_handle(w, r, hr, body);
	} else if (path_is(hr, "/healthz") || path_is(hr, "/livez") || path_is(hr, "/readyz")) {
		if (hr->method != HTTP_METHOD_GET && hr->method != HTTP_METHOD_HEAD) {
			answer_with(w, r, 405, "Allow: GET, HEAD\r\n",
				    "{\"status\":\"method_not_allowed\",\"allow\":\"GET, HEAD\"}");
			return;
		}
		answer_health(w, r, hr);
	} else {
		answer(w, r, 404, "{\"status\":\"not_found\"}");
	}
}

void flow_on_reserve_reply(struct worker *w, struct req *r, const struct reserve_result *res)
{
	char body[160];

	switch (res->verdict) {
	case RESERVE_OK: {
		skc_forget(w, r->order.sku, r->order.sku_len);
		struct order_record rec = {
			.order_id = r->order_id,
			.qty = r->order.qty,
			.accepted_at_ms = r->accepted_at_ms,
			.node_id = w->cfg->node_id,
		};
		memcpy(rec.user_id, r->order.user_id, (size_t)r->order.user_len + 1);
		memcpy(rec.sku, r->order.sku, (size_t)r->order.sku_len + 1);
		memcpy(rec.idempotency_key, r->idem, (size_t)r->idem_len + 1);
		r->record_len = order_encode_record(r->record, sizeof(r->record), &rec);
		int rc = r->record_len < 0 ? r->record_len : kpub_produce(w, r);
		if (rc < 0) {
			/* Not handed to Kafka: give the stock back, then answer. */
			resv_release(w, r);
		}
		return;
	}
	case RESERVE_SOLD_OUT:
		w->stats.sold_out++;
		skc_put(w, r->order.sku, r->order.sku_len, SKC_SOLD_OUT, w->cfg->soldout_cache_ms, 0);
		answer(w, r, 409, "{\"status\":\"sold_out\"}");
		break;
	case RESERVE_INSUFFICIENT:
		snprintf(body, sizeof(body), "{\"status\":\"insufficient_stock\",\"available\":%lld}", res->number);
		answer(w, r, 409, body);
		break;
	case RESERVE_LIMIT:
		w->stats.limit_exceeded++;
		snprintf(body, sizeof(body), "{\"status\":\"limit_exceeded\",\"remaining\":%lld}", res->number);
		answer(w, r, 409, body);
		break;
	case RESERVE_DUP:
		/* The key's first request made this order: the same answer again. */
		snprintf(body, sizeof(body), "{\"order_id\":\"%s\",\"status\":\"accepted\"}", res->order_id);
		answer(w, r, 200, body);
		break;
	case RESERVE_MISMATCH:
		/* The IETF Idempotency-Key draft: a key reused for another request. */
		snprintf(body, sizeof(body), "{\"status\":\"idempotency_key_reused\",\"order_id\":\"%s\"}",
			 res->order_id);
		answer(w, r, 422, body);
		break;
	case RESERVE_INFLIGHT:
		snprintf(body, sizeof(body), "{\"status\":\"in_progress\",\"order_id\":\"%s\"}", res->order_id);
		answer(w, r, 409, body);
		break;
	case RESERVE_NOT_STARTED: {
		/* Bots hammer a SKU before its start: remembered like a sold-out
		 * one, but never past the start by this gateway's clock (Redis's
		 * judges it; a clock behind Redis's opens this worker late by at
		 * most soldout_cache_ms), and briefly when the clocks disagree. */
		long long ttl = res->number - w->now_ms;
		if (ttl < NOT_STARTED_MIN_TTL_MS)
			ttl = NOT_STARTED_MIN_TTL_MS;
		if (ttl > (long long)w->cfg->soldout_cache_ms) /* 0: the cache is off */
			ttl = w->cfg->soldout_cache_ms;
		skc_put(w, r->order.sku, r->order.sku_len, SKC_NOT_STARTED, (unsigned)ttl, res->number);
		snprintf(body, sizeof(body), "{\"status\":\"not_started\",\"starts_at_ms\":%lld}", res->number);
		answer(w, r, 425, body);
		break;
	}
	case RESERVE_ENDED:
		/* Ended stays ended, until a stock load gives it another window. */
		skc_put(w, r->order.sku, r->order.sku_len, SKC_ENDED, w->cfg->unknown_cache_ms, res->number);
		snprintf(body, sizeof(body), "{\"status\":\"ended\",\"ends_at_ms\":%lld}", res->number);
		answer(w, r, 403, body);
		break;
	case RESERVE_DRY:
		rebal_on_dry(w, r, (unsigned long)res->number); /* r is rebal's now */
		return;
	case RESERVE_BUCKETS:
		if (!w->buckets_warned) /* once per worker: every order of the SKU hits it */
			worker_warn(w, "SKU %s was loaded with buckets = %lld, this gateway has buckets = %u: "
				       "load it again with this config, or use the same buckets value",
				    r->order.sku, res->number, w->cfg->redis_buckets);
		w->buckets_warned = true;
		answer_unavailable(w, r, UNAV_CONFIG);
		break;
	case RESERVE_UNKNOWN:
		skc_put(w, r->order.sku, r->order.sku_len, SKC_UNKNOWN, w->cfg->unknown_cache_ms, 0);
		answer(w, r, 404, "{\"status\":\"unknown_sku\"}");
		break;
	case RESERVE_BAD:
		worker_warn(w, "redis: unexpected reserve result '%s'", res->text);
		answer_unavailable(w, r, UNAV_REDIS);
		break;
	}
	maybe_free(w, r);
}

void flow_unavailable(struct worker *w, struct req *r, enum metrics_unavailable why)
{
	answer_unavailable(w, r, why);
	maybe_free(w, r);
}

void flow_settled(struct worker *w, struct req *r)
{
	maybe_free(w, r);
}

void flow_on_release_reply(struct worker *w, struct req *r)
{
	/* The stock is back: only now may the client hear that nothing was taken. */
	answer_unavailable(w, r, UNAV_KAFKA);
	maybe_free(w, r);
}

void flow_on_confirm_reply(struct worker *w, struct req *r)
{
	maybe_free(w, r);
}

void flow_answer(struct worker *w, struct req *r, unsigned status, const char *extra, const char *body)
{
	answer_with(w, r, status, extra, body);
	maybe_free(w, r);
}

void flow_on_return_reply(struct worker *w, struct req *r, const char *res, size_t len)
{
	admin_on_return(w, r, res, len); /* answers through flow_answer, which frees */
}

void flow_on_redis_failure(struct worker *w, struct req *r, enum metrics_unavailable reason)
{
	answer_unavailable(w, r, reason);
	maybe_free(w, r);
}

void flow_on_delivery(struct worker *w, struct req *r, int err, const char *why)
{
	r->in_kafka = false;
	if (err == -EINPROGRESS) {
		/* Neither 202 nor a release: the order may exist. The client hears
		 * 503 and the ledger keeps the reservation until reconcile finds
		 * the record in the topic or settles it by its policy. */
		worker_warn(w, "kafka: order %016" PRIx64 " may or may not be written (%s); "
			      "left in the pending ledger for reconcile",
			   r->order_id, why);
		answer_unavailable(w, r, UNAV_KAFKA_UNKNOWN);
		maybe_free(w, r);
		return;
	}
	if (err) {
		worker_warn(w, "kafka: order %016" PRIx64 " not delivered: %s; releasing its stock",
			   r->order_id, why);
		resv_release(w, r);
		return;
	}
	static const char head[] = "{\"order_id\":\"", tail[] = "\",\"status\":\"accepted\"}";
	char body[sizeof(head) + OID_TEXT_LEN + sizeof(tail)];
	oid_format(r->order_id, body + sizeof(head) - 1);
	fmt_put(body, head, sizeof(head) - 1);
	fmt_put(body + sizeof(head) - 1 + OID_TEXT_LEN, tail, sizeof(tail)); /* with its NUL */
	/* The record is durable: drop it from the pending ledger. The confirm
	 * holds r before the answer lets go of it: a client already gone must
	 * not send r back to the pool while the confirm still points at it. */
	resv_confirm(w, r);
	answer(w, r, 202, body);
	maybe_free(w, r);
}

unsigned flow_orders_inflight(const struct worker *w)
{
	return w->flow->orders_inflight;
}

unsigned flow_busy(const struct worker *w)
{
	return w->flow->size - w->flow->nfree;
}

bool flow_has_free(const struct worker *w)
{
	return w->flow->free != NULL;
}
