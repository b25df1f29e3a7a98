/*
 * order: request-body validation and the Kafka record codec.
 *
 * Both forms are flat JSON objects whose values are strings of identifier
 * characters or non-negative integers, so a small strict scanner suffices:
 * it accepts RFC 8259 whitespace and rejects everything the two forms never
 * contain (escapes, nesting, fractions), each with a reason.
 */
#include "order.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fmt.h"

bool order_valid_ident(const char *s, size_t len)
{
	if (len == 0 || len > ORDER_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  c == '.' || c == '_' || c == ':' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

/* J_ESCAPED: a string with an escape or a control byte, which no value here has */
enum jtype { J_STRING, J_ESCAPED, J_INT, J_OTHER };

struct jmember {
	const char *key;
	size_t key_len;
	enum jtype type;
	const char *str; /* J_STRING: raw bytes between the quotes */
	size_t str_len;
	uint64_t num;    /* J_INT */
	bool num_overflow;
};

struct jcursor {
	const char *p, *end;
	bool first;
};

static void skip_ws(struct jcursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* A string with no escapes; a backslash or control byte makes it invalid. */
static int scan_string(struct jcursor *c, const char **s, size_t *n)
{
	if (c->p >= c->end || *c->p != '"')
		return -EINVAL;
	const char *start = ++c->p;
	while (c->p < c->end && *c->p != '"') {
		if (*c->p == '\\' || (unsigned char)*c->p < 0x20)
			return -EINVAL;
		c->p++;
	}
	if (c->p >= c->end)
		return -EINVAL;
	*s = start;
	*n = (size_t)(c->p - start);
	c->p++;
	return 0;
}

/* Skips any other JSON scalar so its member can be reported by name. */
static void scan_other(struct jcursor *c)
{
	if (c->p < c->end && *c->p == '"') {
		c->p++;
		while (c->p < c->end && *c->p != '"')
			c->p += (*c->p == '\\' && c->p + 1 < c->end) ? 2 : 1;
		if (c->p < c->end)
			c->p++;
		return;
	}
	while (c->p < c->end && *c->p != ',' && *c->p != '}')
		c->p++;
}

/* Returns 1 with a member, 0 at the closing brace, -EINVAL on bad syntax. */
static int next_member(struct jcursor *c, struct jmember *m)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		skip_ws(c);
		return c->p == c->end ? 0 : -EINVAL;
	}
	if (!c->first) {
		if (c->p >= c->end || *c->p != ',')
			return -EINVAL;
		c->p++;
		skip_ws(c);
	}
	c->first = false;
	if (scan_string(c, &m->key, &m->key_len) < 0)
		return -EINVAL;
	skip_ws(c);
	if (c->p >= c->end || *c->p != ':')
		return -EINVAL;
	c->p++;
	skip_ws(c);
	if (c->p >= c->end)
		return -EINVAL;

	const char *value_start = c->p;
	m->num_overflow = false;
	if (*c->p == '"') {
		if (scan_string(c, &m->str, &m->str_len) == 0) {
			m->type = J_STRING;
			return 1;
		}
		c->p = value_start;
		m->type = J_ESCAPED;
		scan_other(c);
		return 1;
	}
	if (*c->p >= '0' && *c->p <= '9') {
		uint64_t v = 0;
		const char *digits = c->p;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
			if (v > (UINT64_MAX - 9) / 10)
				m->num_overflow = true;
			v = v * 10 + (uint64_t)(*c->p - '0');
			c->p++;
		}
		bool leading_zero = *digits == '0' && c->p - digits > 1;
		if (!leading_zero && (c->p == c->end || *c->p == ',' || *c->p == '}' || *c->p == ' ' ||
				      *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
			m->type = J_INT;
			m->num = v;
			return 1;
		}
	}
	c->p = value_start;
	m->type = J_OTHER;
	scan_other(c);
	return 1;
}

static int open_object(struct jcursor *c, const char *json, size_t len)
{
	c->p = json;
	c->end = json + len;
	c->first = true;
	skip_ws(c);
	if (c->p >= c->end || *c->p != '{')
		return -EINVAL;
	c->p++;
	return 0;
}

static bool key_is(const struct jmember *m, const char *lit)
{
	return strlen(lit) == m->key_len && memcmp(m->key, lit, m->key_len) == 0;
}

static int bad(struct order_error *err, const char *field, const char *why)
{
	err->field = field;
	err->why = why;
	return -EINVAL;
}

static int take_ident(const struct jmember *m, char *dst, uint8_t *dst_len,
		      struct order_error *err, const char *field)
{
	static const char charset[] = "must be 1-64 characters of A-Z a-z 0-9 . _ : -";
	if (m->type == J_ESCAPED) /* none of those needs an escape */
		return bad(err, field, charset);
	if (m->type != J_STRING)
		return bad(err, field, "must be a string");
	if (!order_valid_ident(m->str, m->str_len))
		return bad(err, field, charset);
	memcpy(dst, m->str, m->str_len);
	dst[m->str_len] = '\0';
	*dst_len = (uint8_t)m->str_len;
	return 0;
}

int order_parse_request(const char *body, size_t len, uint32_t max_qty, bool user_required,
			struct order_req *out, struct order_error *err)
{
	struct jcursor c;
	struct jmember m;
	bool have_user = false, have_sku = false, have_qty = false;
	int rc;

	if (open_object(&c, body, len) < 0)
		return bad(err, "body", "must be a JSON object");
	while ((rc = next_member(&c, &m)) == 1) {
		if (key_is(&m, "user_id")) {
			if (have_user)
				return bad(err, "user_id", "appears twice");
			have_user = true;
			if (take_ident(&m, out->user_id, &out->user_len, err, "user_id") < 0)
				return -EINVAL;
		} else if (key_is(&m, "sku")) {
			if (have_sku)
				return bad(err, "sku", "appears twice");
			have_sku = true;
			if (take_ident(&m, out->sku, &out->sku_len, err, "sku") < 0)
				return -EINVAL;
		} else if (key_is(&m, "qty")) {
			if (have_qty)
				return bad(err, "qty", "appears twice");
			have_qty = true;
			if (m.type != J_INT || m.num_overflow || m.num < 1 || m.num > max_qty)
				return bad(err, "qty", "must be an integer from 1 to the maximum quantity");
			out->qty = (uint32_t)m.num;
		} else {
			return bad(err, "body", "unknown field (allowed: user_id, sku, qty)");
		}
	}
	if (rc < 0)
		return bad(err, "body", "malformed JSON object");
	if (!have_user && user_required)
		return bad(err, "user_id", "is required");
	if (!have_user) {
		out->user_id[0] = '\0';
		out->user_len = 0;
	}
	if (!have_sku)
		return bad(err, "sku", "is required");
	if (!have_qty)
		return bad(err, "qty", "is required");
	return 0;
}

int order_parse_sku_body(const char *body, size_t len, char sku[ORDER_ID_MAX + 1],
			 struct order_error *err)
{
	struct jcursor c;
	struct jmember m;
	bool have_sku = false;
	uint8_t n8;
	int rc;

	if (open_object(&c, body, len) < 0)
		return bad(err, "body", "must be a JSON object");
	while ((rc = next_member(&c, &m)) == 1) {
		if (!key_is(&m, "sku"))
			return bad(err, "body", "unknown field (allowed: sku)");
		if (have_sku)
			return bad(err, "sku", "appears twice");
		have_sku = true;
		if (take_ident(&m, sku, &n8, err, "sku") < 0)
			return -EINVAL;
	}
	if (rc < 0)
		return bad(err, "body", "malformed JSON object");
	if (!have_sku)
		return bad(err, "sku", "is required");
	return 0;
}

int order_encode_record(char *dst, size_t cap, const struct order_record *r)
{
	/* Built piece by piece: it runs for every accepted order (see fmt.h). */
	static const char p_id[] = "{\"order_id\":\"", p_user[] = "\",\"user_id\":\"",
			  p_sku[] = "\",\"sku\":\"", p_qty[] = "\",\"qty\":",
			  p_at[] = ",\"accepted_at_ms\":", p_node[] = ",\"node_id\":",
			  p_key[] = ",\"idempotency_key\":\"";
	char qty[FMT_U64_MAX], at[FMT_I64_MAX], node[FMT_U64_MAX];
	size_t qty_len = (size_t)(fmt_u64(qty, r->qty) - qty);
	size_t at_len = (size_t)(fmt_i64(at, r->accepted_at_ms) - at);
	size_t node_len = (size_t)(fmt_u64(node, r->node_id) - node);
	size_t user_len = strlen(r->user_id), sku_len = strlen(r->sku);
	size_t key_len = strlen(r->idempotency_key);
	size_t n = sizeof(p_id) - 1 + OID_TEXT_LEN + sizeof(p_user) - 1 + user_len + sizeof(p_sku) - 1 +
		   sku_len + sizeof(p_qty) - 1 + qty_len + sizeof(p_at) - 1 + at_len +
		   sizeof(p_node) - 1 + node_len + (key_len ? sizeof(p_key) - 1 + key_len + 1 : 0) + 1;
	if (n >= cap)
		return -ENOSPC;
	char *p = fmt_put(dst, p_id, sizeof(p_id) - 1);
	oid_format(r->order_id, p);
	p += OID_TEXT_LEN;
	p = fmt_put(p, p_user, sizeof(p_user) - 1);
	p = fmt_put(p, r->user_id, user_len);
	p = fmt_put(p, p_sku, sizeof(p_sku) - 1);
	p = fmt_put(p, r->sku, sku_len);
	p = fmt_put(p, p_qty, sizeof(p_qty) - 1);
	p = fmt_put(p, qty, qty_len);
	p = fmt_put(p, p_at, sizeof(p_at) - 1);
	p = fmt_put(p, at, at_len);
	p = fmt_put(p, p_node, sizeof(p_node) - 1);
	p = fmt_put(p, node, node_len);
	if (key_len) {
		p = fmt_put(p, p_key, sizeof(p_key) - 1);
		p = fmt_put(p, r->idempotency_key, key_len);
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return (int)n;
}

int order_decode_record(const char *json, size_t len, struct order_record *out)
{
	struct jcursor c;
	struct jmember m;
	struct order_error err;
	unsigned seen = 0;
	uint8_t n8;
	int rc;

	if (open_object(&c, json, len) < 0)
		return -EINVAL;
	out->idempotency_key[0] = '\0';
	while ((rc = next_member(&c, &m)) == 1) {
		if (key_is(&m, "order_id") && m.type == J_STRING) {
			if (oid_parse(m.str, m.str_len, &out->order_id) < 0)
				return -EINVAL;
			seen |= 1;
		} else if (key_is(&m, "user_id")) {
			if (take_ident(&m, out->user_id, &n8, &err, "user_id") < 0)
				return -EINVAL;
			seen |= 2;
		} else if (key_is(&m, "sku")) {
			if (take_ident(&m, out->sku, &n8, &err, "sku") < 0)
				return -EINVAL;
			seen |= 4;
		} else if (key_is(&m, "qty") && m.type == J_INT && m.num <= UINT32_MAX) {
			out->qty = (uint32_t)m.num;
			seen |= 8;
		} else if (key_is(&m, "accepted_at_ms") && m.type == J_INT && m.num <= INT64_MAX) {
			out->accepted_at_ms = (int64_t)m.num;
			seen |= 16;
		} else if (key_is(&m, "node_id") && m.type == J_INT && m.num <= OID_MAX_NODE) {
			out->node_id = (unsigned)m.num;
			seen |= 32;
		} else if (key_is(&m, "idempotency_key")) {
			if (take_ident(&m, out->idempotency_key, &n8, &err, "idempotency_key") < 0)
				return -EINVAL;
		}
		/* Unknown members are skipped: newer writers may add fields. */
	}
	return rc == 0 && seen == 63 ? 0 : -EINVAL;
}
