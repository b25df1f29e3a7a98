/* mix: request bytes and answer outcomes. See mix.h. */
#include "mix.h"

#include <stdio.h>
#include <string.h>

#include "../core/fmt.h"

const char *const lg_outcome_names[LG_OUTCOMES] = {
	"202 accepted", "200 duplicate", "409 sold out", "409 limit", "409 in progress", "404",
	"425/403 window", "4xx other", "503", "other", "conn errors", "timeouts",
	"abandoned", "malformed ok", "malformed wrong", "401", "403", "429",
};

void mix_host_init(struct mix_host *h, const char *host, unsigned port)
{
	int n = snprintf(h->text, sizeof(h->text), "%s:%u", host, port);
	h->len = n > 0 && (size_t)n < sizeof(h->text) ? (size_t)n : 0;
}

#define PUTS(p, lit) fmt_put(p, lit, sizeof(lit) - 1)

static char *put_cstr(char *p, const char *s)
{
	return fmt_put(p, s, strlen(s));
}

static size_t order_body(char *dst, const struct lg_profile *p, const struct mix_order *o)
{
	char *b = dst;
	b = PUTS(b, "{\"user_id\":\"");
	b = put_cstr(b, p->user_prefix);
	b = fmt_u64(b, o->user);
	b = PUTS(b, "\",\"sku\":\"");
	b = put_cstr(b, p->sku_prefix);
	b = fmt_u64(b, o->sku);
	b = PUTS(b, "\",\"qty\":");
	b = fmt_u64(b, o->qty);
	b = PUTS(b, "}");
	return (size_t)(b - dst);
}

static char *head(char *d, const char *method_path, const struct mix_host *h, struct mix_auth auth)
{
	d = put_cstr(d, method_path);
	d = PUTS(d, " HTTP/1.1\r\nHost: ");
	d = fmt_put(d, h->text, h->len);
	d = PUTS(d, "\r\n");
	if (auth.tok) {
		d = PUTS(d, "Authorization: Bearer ");
		d = fmt_put(d, auth.tok, auth.len);
		d = PUTS(d, "\r\n");
	}
	if (auth.xff) {
		d = PUTS(d, "X-Forwarded-For: ");
		d = put_cstr(d, auth.xff);
		d = PUTS(d, "\r\n");
	}
	return d;
}

size_t mix_order_request(char *dst, const struct mix_host *h, const struct lg_profile *p,
			 const struct mix_order *o, struct mix_auth auth)
{
	char body[200];
	struct mix_order named = *o;
	if (auth.body_user)
		named.user = auth.body_user; /* an impostor's body */
	size_t blen = order_body(body, p, &named);
	char *d = head(dst, "POST /v1/orders", h, auth);
	d = PUTS(d, "Content-Type: application/json\r\n");
	if (o->key[0]) {
		d = PUTS(d, "Idempotency-Key: ");
		d = put_cstr(d, o->key);
		d = PUTS(d, "\r\n");
	}
	d = PUTS(d, "Content-Length: ");
	d = fmt_u64(d, blen);
	d = PUTS(d, "\r\n\r\n");
	d = fmt_put(d, body, blen);
	return (size_t)(d - dst);
}

size_t mix_malformed_request(char *dst, const struct mix_host *h, const struct lg_profile *p,
			     enum prof_malformed kind, unsigned user, struct mix_auth auth)
{
	char body[200];
	struct mix_order o = {.user = user, .sku = 1, .qty = 1};
	size_t blen = order_body(body, p, &o);
	const char *key = NULL, *path = "POST /v1/orders", *length = NULL;
	switch (kind) {
	case MAL_BAD_JSON:
		blen /= 2; /* cut mid-object */
		break;
	case MAL_MISSING_FIELD: {
		char *b = body;
		b = PUTS(b, "{\"user_id\":\"");
		b = put_cstr(b, p->user_prefix);
		b = fmt_u64(b, user);
		b = PUTS(b, "\",\"qty\":1}");
		blen = (size_t)(b - body);
		break;
	}
	case MAL_BAD_QTY:
		o.qty = 0;
		blen = order_body(body, p, &o);
		break;
	case MAL_BAD_KEY:
		key = "not/a/valid/key";
		break;
	case MAL_WRONG_METHOD:
		path = "GET /v1/orders";
		blen = 0;
		break;
	case MAL_UNKNOWN_PATH:
		path = "POST /v1/order";
		break;
	case MAL_OVERSIZED:
		length = "10000000"; /* the head alone: the gateway must refuse before the body */
		blen = 0;
		break;
	case MAL_BAD_LENGTH:
		length = "12x";
		blen = 0;
		break;
	case MAL_KINDS:
		break;
	}
	char *d = head(dst, path, h, auth);
	if (key) {
		d = PUTS(d, "Idempotency-Key: ");
		d = put_cstr(d, key);
		d = PUTS(d, "\r\n");
	}
	if (kind != MAL_WRONG_METHOD) {
		d = PUTS(d, "Content-Type: application/json\r\nContent-Length: ");
		if (length)
			d = put_cstr(d, length);
		else
			d = fmt_u64(d, blen);
		d = PUTS(d, "\r\n");
	}
	d = PUTS(d, "\r\n");
	d = fmt_put(d, body, blen);
	return (size_t)(d - dst);
}

static bool body_status_is(const struct resp *rs, const char *word)
{
	size_t n;
	const char *s = resp_json_str(rs->body, rs->body_len, "status", &n);
	return s && n == strlen(word) && memcmp(s, word, n) == 0;
}

enum lg_outcome mix_classify(const struct resp *rs)
{
	switch (rs->status) {
	case 202: return LG_ACCEPTED;
	case 200: return LG_DUPLICATE;
	case 404: return LG_NOT_FOUND;
	case 503: return LG_UNAVAILABLE;
	case 425: return LG_WINDOW;
	case 401: return LG_UNAUTHORIZED;
	case 403: return body_status_is(rs, "ended") ? LG_WINDOW : LG_FORBIDDEN;
	case 429: return LG_THROTTLED;
	case 409:
		if (body_status_is(rs, "limit_exceeded"))
			return LG_LIMIT;
		if (body_status_is(rs, "in_progress"))
			return LG_IN_PROGRESS;
		return LG_SOLD_OUT;
	default:
		return rs->status >= 400 && rs->status < 500 ? LG_BAD_REQUEST : LG_OTHER_STATUS;
	}
}
