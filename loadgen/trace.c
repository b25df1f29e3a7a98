/* trace: recorded sales to replay. See trace.h. */
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../core/hash.h"

const char *const trace_format_names[] = {"csv", "jsonl", "nginx"};

#define NAME_MAX_LEN 64

/* Names to dense numbers in order of first appearance, with how often
 * each was seen. Open addressing; the names live in one growing arena and
 * are found by offset, so growing it moves nothing that is held. */
struct names {
	uint64_t *hash;
	uint32_t *id; /* 0: free slot */
	uint32_t *off, *len; /* per id (1-based) */
	uint64_t *seen;
	size_t cap, n, ids_cap;
	char *arena;
	size_t arena_len, arena_cap;
};

static void names_free(struct names *t)
{
	free(t->hash);
	free(t->id);
	free(t->off);
	free(t->len);
	free(t->seen);
	free(t->arena);
	memset(t, 0, sizeof(*t));
}

static int names_grow(struct names *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024;
	uint64_t *hash = calloc(cap, sizeof(*hash));
	uint32_t *id = calloc(cap, sizeof(*id));
	if (!hash || !id) {
		free(hash);
		free(id);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->id[i])
			continue;
		size_t j = t->hash[i] & (cap - 1);
		while (id[j])
			j = (j + 1) & (cap - 1);
		hash[j] = t->hash[i];
		id[j] = t->id[i];
	}
	free(t->hash);
	free(t->id);
	t->hash = hash;
	t->id = id;
	t->cap = cap;
	return 0;
}

/* The number of name s[0..n), given one if new; 0 when out of memory. */
static uint32_t names_get(struct names *t, const char *s, size_t n)
{
	if ((t->n + 1) * 2 > t->cap && names_grow(t) < 0)
		return 0;
	uint64_t h = hash_bytes(s, n);
	size_t j = h & (t->cap - 1);
	for (; t->id[j]; j = (j + 1) & (t->cap - 1)) {
		uint32_t k = t->id[j];
		if (t->hash[j] == h && t->len[k] == n && memcmp(t->arena + t->off[k], s, n) == 0) {
			t->seen[k]++;
			return k;
		}
	}
	if (t->n + 2 > t->ids_cap) {
		size_t cap = t->ids_cap ? t->ids_cap * 2 : 1024;
		uint32_t *off = realloc(t->off, cap * sizeof(*off));
		if (off)
			t->off = off;
		uint32_t *len = off ? realloc(t->len, cap * sizeof(*len)) : NULL;
		if (len)
			t->len = len;
		uint64_t *seen = len ? realloc(t->seen, cap * sizeof(*seen)) : NULL;
		if (!seen)
			return 0;
		t->seen = seen;
		t->ids_cap = cap;
	}
	if (t->arena_len + n > t->arena_cap) {
		size_t cap = t->arena_cap ? t->arena_cap * 2 : 65536;
		while (cap < t->arena_len + n)
			cap *= 2;
		char *a = realloc(t->arena, cap);
		if (!a)
			return 0;
		t->arena = a;
		t->arena_cap = cap;
	}
	uint32_t k = (uint32_t)++t->n;
	memcpy(t->arena + t->arena_len, s, n);
	t->off[k] = (uint32_t)t->arena_len;
	t->len[k] = (uint32_t)n;
	t->seen[k] = 1;
	t->arena_len += n;
	t->hash[j] = h;
	t->id[j] = k;
	return k;
}

/* One order as read, before renumbering. */
struct raw {
	double at_ms;
	const char *user, *sku, *key;
	size_t user_len, sku_len, key_len;
	unsigned qty;
};

struct loader {
	const char *name;
	char *err;
	size_t err_len;
	int line;
	struct trace *t;
	size_t cap;
	struct names users, skus;
};

static int fail(struct loader *l, const char *why)
{
	snprintf(l->err, l->err_len, "%s:%d: %s", l->name, l->line, why);
	return -EINVAL;
}

static int add(struct loader *l, const struct raw *r)
{
	if (!(r->at_ms >= 0) || isinf(r->at_ms))
		return fail(l, "the offset must be a number of ms >= 0");
	if (r->user_len == 0 || r->user_len > NAME_MAX_LEN)
		return fail(l, "the user must be 1 to 64 characters");
	if (r->sku_len > NAME_MAX_LEN || (r->sku && r->sku_len == 0))
		return fail(l, "the sku must be 1 to 64 characters");
	if (r->qty < 1 || r->qty > 1000000)
		return fail(l, "qty must be 1 to 1000000");
	if (l->t->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4096;
		struct trace_order *o = realloc(l->t->o, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		l->t->o = o;
		l->cap = cap;
	}
	struct trace_order *o = &l->t->o[l->t->n];
	o->at_s = r->at_ms / 1000.0;
	o->user = names_get(&l->users, r->user, r->user_len);
	o->sku = r->sku ? names_get(&l->skus, r->sku, r->sku_len) : 0;
	if (!o->user || (r->sku && !o->sku))
		return -ENOMEM;
	o->qty = r->qty;
	o->key = r->key_len ? hash_bytes(r->key, r->key_len) : 0;
	l->t->n++;
	return 0;
}

static int parse_qty(const char *s, size_t n, unsigned *qty)
{
	char buf[16];
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *end;
	unsigned long v = strtoul(buf, &end, 10);
	if (*end || buf[0] == '-' || v == 0 || v > 1000000)
		return -EINVAL;
	*qty = (unsigned)v;
	return 0;
}

static int csv_line(struct loader *l, const char *s, size_t n)
{
	const char *f[6];
	size_t len[6];
	int nf = 0;
	const char *at = s, *end = s + n;
	while (nf < 6) {
		const char *comma = memchr(at, ',', (size_t)(end - at));
		f[nf] = at;
		len[nf] = (size_t)((comma ? comma : end) - at);
		nf++;
		if (!comma)
			break;
		at = comma + 1;
	}
	if (nf < 4 || nf > 5)
		return fail(l, "expected offset_ms,user,sku,qty[,key]");
	char num[32];
	if (len[0] == 0 || len[0] >= sizeof(num))
		return fail(l, "the offset must be a number of ms >= 0");
	memcpy(num, f[0], len[0]);
	num[len[0]] = '\0';
	char *stop;
	struct raw r = {.at_ms = strtod(num, &stop), .user = f[1], .user_len = len[1], .sku = f[2],
			.sku_len = len[2]};
	if (*stop)
		return fail(l, "the offset must be a number of ms >= 0");
	if (parse_qty(f[3], len[3], &r.qty) < 0)
		return fail(l, "qty must be 1 to 1000000");
	if (nf == 5) {
		r.key = f[4];
		r.key_len = len[4];
	}
	return add(l, &r);
}

static int jsonl_line(struct loader *l, const char *s, size_t n)
{
	json_error_t je;
	json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return fail(l, "not a JSON object (JSON lines: one object a line)");
	int rc;
	json_t *off = json_object_get(j, "offset_ms"), *user = json_object_get(j, "user");
	json_t *sku = json_object_get(j, "sku"), *qty = json_object_get(j, "qty"), *key = json_object_get(j, "key");
	if (!json_is_object(j) || !json_is_number(off) || !json_is_string(user) || !json_is_string(sku) ||
	    (qty && !json_is_integer(qty)) || (key && !json_is_string(key))) {
		rc = fail(l, "expected {\"offset_ms\": N, \"user\": \"..\", \"sku\": \"..\"[, \"qty\": N][, \"key\": \"..\"]}");
		goto out;
	}
	json_int_t q = qty ? json_integer_value(qty) : 1;
	struct raw r = {.at_ms = json_number_value(off), .user = json_string_value(user),
			.user_len = json_string_length(user), .sku = json_string_value(sku),
			.sku_len = json_string_length(sku), .qty = q >= 1 && q <= 1000000 ? (unsigned)q : 0};
	if (key) {
		r.key = json_string_value(key);
		r.key_len = json_string_length(key);
	}
	rc = add(l, &r);
out:
	json_decref(j);
	return rc;
}

/* "11/Nov/2026:00:00:00.123 +0800" to unix ms; -1 when it is not that. */
static double nginx_time_ms(const char *s, size_t n)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char buf[48];
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	int day, year, hh, mm, ss, used = 0;
	char mon[4];
	if (sscanf(buf, "%2d/%3s/%4d:%2d:%2d:%2d%n", &day, mon, &year, &hh, &mm, &ss, &used) != 6)
		return -1;
	const char *m = strstr(months, mon);
	if (!m || strlen(mon) != 3 || (m - months) % 3)
		return -1;
	double frac = 0;
	const char *at = buf + used;
	if (*at == '.') {
		char *end;
		frac = strtod(at, &end);
		at = end;
	}
	int tz;
	if (sscanf(at, " %5d", &tz) != 1 || (at[1] != '+' && at[1] != '-'))
		return -1;
	struct tm tm = {.tm_year = year - 1900, .tm_mon = (int)((m - months) / 3), .tm_mday = day,
			.tm_hour = hh, .tm_min = mm, .tm_sec = ss};
	time_t t = timegm(&tm);
	int tz_abs = tz < 0 ? -tz : tz;
	long tz_s = (long)(tz_abs / 100 * 3600 + tz_abs % 100 * 60) * (tz < 0 ? -1 : 1);
	return ((double)t - (double)tz_s + frac) * 1000.0;
}

/* The value of query parameter name in q[0..n), or NULL. */
static const char *query_param(const char *q, size_t n, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	const char *end = q + n;
	for (const char *p = q; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		if ((size_t)(stop - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
			*len = (size_t)(stop - p - (ptrdiff_t)nl - 1);
			return p + nl + 1;
		}
		p = stop + 1;
	}
	return NULL;
}

static int nginx_line(struct loader *l, const char *s, size_t n)
{
	const char *end = s + n;
	const char *sp1 = memchr(s, ' ', n);
	const char *lb = memchr(s, '[', n), *rb = lb ? memchr(lb, ']', (size_t)(end - lb)) : NULL;
	const char *q1 = rb ? memchr(rb, '"', (size_t)(end - rb)) : NULL;
	const char *q2 = q1 ? memchr(q1 + 1, '"', (size_t)(end - q1 - 1)) : NULL;
	if (!sp1 || !lb || !rb || !q1 || !q2 || sp1 > lb)
		return fail(l, "not the combined log format: ADDR - USER [TIME] \"METHOD PATH PROTO\" ...");
	double at = nginx_time_ms(lb + 1, (size_t)(rb - lb - 1));
	if (at < 0)
		return fail(l, "the time is not [dd/Mon/yyyy:hh:mm:ss[.mmm] +zzzz]");
	const char *req = q1 + 1;
	size_t req_len = (size_t)(q2 - req);
	static const char post[] = "POST /v1/orders";
	if (req_len < sizeof(post) - 1 || memcmp(req, post, sizeof(post) - 1) != 0) {
		l->t->skipped++;
		return 0;
	}
	/* $remote_user, between "ADDR - " and " [". */
	const char *user = sp1 + 3, *user_end = lb - 1;
	if (user_end <= user || sp1[1] != '-' || (user_end - user == 1 && *user == '-')) {
		user = s;
		user_end = sp1;
	}
	struct raw r = {.at_ms = at, .user = user, .user_len = (size_t)(user_end - user), .qty = 1};
	const char *path_end = memchr(req + 5, ' ', req_len - 5);
	const char *qm = memchr(req, '?', (size_t)((path_end ? path_end : q2) - req));
	if (qm) {
		size_t qlen = (size_t)((path_end ? path_end : q2) - qm - 1), vlen;
		const char *v = query_param(qm + 1, qlen, "sku", &vlen);
		if (v) {
			r.sku = v;
			r.sku_len = vlen;
		}
		v = query_param(qm + 1, qlen, "qty", &vlen);
		if (v && parse_qty(v, vlen, &r.qty) < 0)
			return fail(l, "qty must be 1 to 1000000");
	}
	return add(l, &r);
}

static enum trace_format sniff(const char *s, size_t n)
{
	if (n && s[0] == '{')
		return TRACE_JSONL;
	const char *lb = memchr(s, '[', n);
	if (lb && lb + 1 < s + n && memchr(lb, ']', (size_t)(s + n - lb)) && memchr(s, '"', n))
		return TRACE_NGINX;
	return TRACE_CSV;
}

static int by_time(const void *a, const void *b)
{
	const struct trace_order *x = a, *y = b;
	return x->at_s < y->at_s ? -1 : x->at_s > y->at_s;
}

struct sku_count {
	uint64_t seen;
	uint32_t id;
};

static int by_popularity(const void *a, const void *b)
{
	const struct sku_count *x = a, *y = b;
	if (x->seen != y->seen)
		return x->seen > y->seen ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* SKUs renumbered by popularity, the most ordered first (ties: first seen). */
static int rank_skus(struct loader *l)
{
	size_t n = l->skus.n;
	if (n == 0)
		return 0;
	struct sku_count *c = malloc(n * sizeof(*c));
	uint32_t *rank = malloc((n + 1) * sizeof(*rank));
	if (!c || !rank) {
		free(c);
		free(rank);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		c[i] = (struct sku_count){l->skus.seen[i + 1], (uint32_t)(i + 1)};
	qsort(c, n, sizeof(*c), by_popularity);
	for (size_t i = 0; i < n; i++)
		rank[c[i].id] = (uint32_t)(i + 1);
	for (size_t i = 0; i < l->t->n; i++)
		if (l->t->o[i].sku)
			l->t->o[i].sku = rank[l->t->o[i].sku];
	free(c);
	free(rank);
	return 0;
}

int trace_parse(const char *name, const char *text, size_t len, struct trace *t, char *err, size_t err_len)
{
	memset(t, 0, sizeof(*t));
	struct loader l = {.name = name, .err = err, .err_len = err_len, .t = t};
	int rc = 0;
	bool sniffed = false;
	for (const char *at = text, *end = text + len; at < end && rc == 0;) {
		const char *nl = memchr(at, '\n', (size_t)(end - at));
		const char *stop = nl ? nl : end;
		size_t n = (size_t)(stop - at);
		if (n && at[n - 1] == '\r')
			n--;
		l.line++;
		if (n && at[0] != '#') {
			if (!sniffed) {
				t->format = sniff(at, n);
				sniffed = true;
				if (t->format == TRACE_CSV && n >= 6 && memcmp(at, "offset", 6) == 0) {
					at = stop + 1;
					continue;
				}
			}
			if (memchr(at, '\0', n))
				rc = fail(&l, "a NUL byte");
			else if (t->format == TRACE_CSV)
				rc = csv_line(&l, at, n);
			else if (t->format == TRACE_JSONL)
				rc = jsonl_line(&l, at, n);
			else
				rc = nginx_line(&l, at, n);
		}
		at = stop + 1;
	}
	if (rc == 0 && t->n == 0) {
		snprintf(err, err_len, "%s: no orders in the trace", name);
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = rank_skus(&l);
	if (rc == 0) {
		qsort(t->o, t->n, sizeof(*t->o), by_time);
		/* A log's times are wall-clock; its first order is the T0. */
		double first = t->o[0].at_s;
		for (size_t i = 0; t->format == TRACE_NGINX && i < t->n; i++)
			t->o[i].at_s -= first;
		t->duration_s = t->o[t->n - 1].at_s;
		t->users = (unsigned)l.users.n;
		t->skus = (unsigned)l.skus.n;
	}
	if (rc == -ENOMEM)
		snprintf(err, err_len, "%s: out of memory", name);
	names_free(&l.users);
	names_free(&l.skus);
	if (rc < 0)
		trace_free(t);
	return rc;
}

int trace_load(const char *path, struct trace *t, char *err, size_t err_len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int rc = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return rc;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0, got;
	int rc = 0;
	do {
		if (len + 65536 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			char *b = realloc(buf, cap);
			if (!b) {
				rc = -ENOMEM;
				snprintf(err, err_len, "%s: out of memory", path);
				break;
			}
			buf = b;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got > 0);
	if (rc == 0 && ferror(f)) {
		rc = -EIO;
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
	}
	fclose(f);
	if (rc == 0)
		rc = trace_parse(path, buf, len, t, err, err_len);
	free(buf);
	return rc;
}

void trace_free(struct trace *t)
{
	free(t->o);
	memset(t, 0, sizeof(*t));
}

void trace_shard(struct trace *t, unsigned shard, unsigned shards)
{
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->o[i].user % shards == shard - 1)
			t->o[k++] = t->o[i];
	t->n = k;
}
