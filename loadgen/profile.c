/*
 * profile: the traffic profile and its INI loader. Fixed sections are one
 * key table; [stage NAME] and [class NAME] repeat, and a key there sets the
 * stage or class the section opened. See profile.h.
 */
#include "profile.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/cfg.h"
#include "../core/order.h"

const char *const prof_malformed_names[MAL_KINDS] = {
	"bad_json", "missing_field", "bad_qty", "bad_key",
	"wrong_method", "unknown_path", "oversized", "bad_length",
};
const char *const prof_who_names[WHO_N] = {"shopper", "no_token", "forged", "expired",
					   "impostor", "hammer", "sybil"};

const unsigned prof_malformed_status[MAL_KINDS] = {400, 400, 400, 400, 405, 404, 413, 400};

void prof_defaults(struct lg_profile *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->source, sizeof(p->source), "command line");
	p->connections = 64;
	p->threads = 1;
	p->timeout_ms = 10000;
	p->arrival = PROF_UNIFORM;
	p->n_stages = 1;
	p->stages[0] = (struct prof_stage){"steady", 10, 1000, 1000};
	snprintf(p->sku_prefix, sizeof(p->sku_prefix), "sku");
	p->zipf = 0.99;
	p->n_classes = 1;
	p->classes[0] = (struct prof_class){"all", 10, 1000, 5};
	p->skus = 10;
	p->users = 10000;
	snprintf(p->user_prefix, sizeof(p->user_prefix), "u");
	p->qty = 1;
	p->backoff_ms = 50;
	p->backoff_max_ms = 2000;
	p->abandon_after_ms = 10;
	for (int k = 0; k < MAL_KINDS; k++)
		p->malformed_kinds[k] = true;
}

int prof_parse_duration(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	if (*end == '\0' || strcmp(end, "s") == 0)
		*out = v;
	else if (strcmp(end, "ms") == 0)
		*out = v / 1000.0;
	else if (strcmp(end, "m") == 0)
		*out = v * 60.0;
	else if (strcmp(end, "h") == 0)
		*out = v * 3600.0;
	else
		return -EINVAL;
	return 0;
}

int prof_parse_t0(const char *s, int64_t now_unix_ms, int64_t *out)
{
	if (*s == '+') {
		double d;
		if (prof_parse_duration(s + 1, &d) < 0)
			return -EINVAL;
		*out = now_unix_ms + (int64_t)(d * 1000);
		return 0;
	}
	char *end;
	if (strchr(s, 'T') == NULL) {
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (end == s || *end || errno || v <= 0)
			return -EINVAL;
		*out = v;
		return 0;
	}
	struct tm tm = {0};
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -EINVAL;
	long ms = 0;
	if (*end == '.') {
		char *frac = end + 1;
		ms = strtol(frac, &end, 10);
		if (end - frac != 3)
			return -EINVAL;
	}
	if (strcmp(end, "Z") != 0)
		return -EINVAL; /* UTC only: several machines must agree on the instant */
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*out = (int64_t)t * 1000 + ms;
	return 0;
}

enum vtype { V_U32, V_U64, V_SHARE, V_ZIPF, V_DURATION_MS, V_PREFIX, V_PATH, V_ARRIVAL, V_BOOL, V_KINDS, V_T0 };

struct key {
	const char *section;
	const char *name;
	enum vtype type;
	size_t offset;
	unsigned long long min, max;
};

#define K(sec, nm, t, field, lo, hi) {sec, nm, t, offsetof(struct lg_profile, field), lo, hi}
static const struct key keys[] = {
	K("run", "connections", V_U32, connections, 1, 100000),
	K("run", "threads", V_U32, threads, 1, 64),
	K("run", "timeout", V_DURATION_MS, timeout_ms, 1, 3600000),
	K("run", "arrival", V_ARRIVAL, arrival, 0, 0),
	K("run", "t0", V_T0, t0_unix_ms, 0, 0),
	K("run", "seed", V_U64, seed, 0, UINT64_MAX),
	K("run", "max_requests", V_U64, max_requests, 0, UINT64_MAX),
	K("run", "sign_key", V_PATH, sign_key, 0, 0),
	K("catalogue", "sku_prefix", V_PREFIX, sku_prefix, 0, 0),
	K("catalogue", "zipf", V_ZIPF, zipf, 0, 0),
	K("users", "count", V_U32, users, 1, 1000000000),
	K("users", "prefix", V_PREFIX, user_prefix, 0, 0),
	K("users", "qty", V_U32, qty, 1, 1000000),
	K("retries", "max", V_U32, retries, 0, 100),
	K("retries", "backoff", V_DURATION_MS, backoff_ms, 1, 600000),
	K("retries", "backoff_max", V_DURATION_MS, backoff_max_ms, 1, 3600000),
	K("mix", "idempotency_keys", V_BOOL, idempotency_keys, 0, 0),
	K("mix", "duplicate_share", V_SHARE, duplicate_share, 0, 0),
	K("mix", "malformed_share", V_SHARE, malformed_share, 0, 0),
	K("mix", "malformed_kinds", V_KINDS, malformed_kinds, 0, 0),
	K("mix", "abandon_share", V_SHARE, abandon_share, 0, 0),
	K("mix", "abandon_after", V_DURATION_MS, abandon_after_ms, 1, 3600000),
	K("bots", "no_token", V_SHARE, bot_share[WHO_NO_TOKEN], 0, 0),
	K("bots", "forged", V_SHARE, bot_share[WHO_FORGED], 0, 0),
	K("bots", "expired", V_SHARE, bot_share[WHO_EXPIRED], 0, 0),
	K("bots", "impostor", V_SHARE, bot_share[WHO_IMPOSTOR], 0, 0),
	K("bots", "hammer", V_SHARE, bot_share[WHO_HAMMER], 0, 0),
	K("bots", "sybil", V_SHARE, bot_share[WHO_SYBIL], 0, 0),
	K("bots", "silent_connections", V_U32, silent_connections, 0, 100000),
	K("bots", "forwarded_for", V_BOOL, forwarded_for, 0, 0),
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *parse_u64(const char *v, unsigned long long min, unsigned long long max,
			     unsigned long long *out)
{
	char *end;
	if (*v < '0' || *v > '9')
		return "not a non-negative integer";
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end)
		return "not a non-negative integer";
	if (errno == ERANGE || n < min || n > max)
		return "out of range";
	*out = n;
	return NULL;
}

static const char *parse_double(const char *v, double min, double max, double *out)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v || *end || !isfinite(d))
		return "not a number";
	if (d < min || d > max)
		return "out of range";
	*out = d;
	return NULL;
}

static const char *parse_kinds(const char *v, bool *kinds)
{
	bool seen[MAL_KINDS] = {false};
	char buf[256];
	if (strlen(v) >= sizeof(buf))
		return "too long";
	strcpy(buf, v);
	if (strcmp(buf, "all") == 0) {
		for (int k = 0; k < MAL_KINDS; k++)
			kinds[k] = true;
		return NULL;
	}
	char *save = NULL;
	int n = 0;
	for (char *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
		int k;
		for (k = 0; k < MAL_KINDS && strcmp(w, prof_malformed_names[k]) != 0; k++)
			;
		if (k == MAL_KINDS)
			return "unknown kind (bad_json missing_field bad_qty bad_key wrong_method "
			       "unknown_path oversized bad_length, or all)";
		seen[k] = true;
		n++;
	}
	if (!n)
		return "empty";
	memcpy(kinds, seen, sizeof(seen));
	return NULL;
}

static const char *set_key(struct lg_profile *p, const struct key *k, const char *v)
{
	char *field = (char *)p + k->offset;
	unsigned long long n;
	const char *why;
	switch (k->type) {
	case V_U32:
		if ((why = parse_u64(v, k->min, k->max, &n)))
			return why;
		*(unsigned *)field = (unsigned)n;
		return NULL;
	case V_U64:
		if ((why = parse_u64(v, k->min, k->max, &n)))
			return why;
		*(uint64_t *)field = n;
		return NULL;
	case V_DURATION_MS: {
		double d;
		if (prof_parse_duration(v, &d) < 0)
			return "not a duration (10s, 500ms, 2m)";
		if (d * 1000 < (double)k->min || d * 1000 > (double)k->max)
			return "out of range";
		*(unsigned *)field = (unsigned)llround(d * 1000);
		return NULL;
	}
	case V_SHARE:
		return parse_double(v, 0, 1, (double *)field);
	case V_ZIPF:
		return parse_double(v, 0, 10, (double *)field);
	case V_PREFIX:
		if (!*v || strlen(v) + 10 > ORDER_ID_MAX || strlen(v) >= PROF_PREFIX_MAX ||
		    !order_valid_ident(v, strlen(v)))
			return "must be 1-39 characters of A-Z a-z 0-9 . _ : -";
		strcpy(field, v);
		return NULL;
	case V_PATH:
		if (strlen(v) >= PROF_PATH_MAX)
			return "must be a path of at most 511 bytes";
		strcpy(field, v);
		return NULL;
	case V_ARRIVAL:
		if (strcmp(v, "uniform") == 0)
			*(enum prof_arrival *)field = PROF_UNIFORM;
		else if (strcmp(v, "poisson") == 0)
			*(enum prof_arrival *)field = PROF_POISSON;
		else
			return "must be uniform or poisson";
		return NULL;
	case V_BOOL:
		if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
			*(bool *)field = true;
		else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
			*(bool *)field = false;
		else
			return "must be yes or no";
		return NULL;
	case V_KINDS:
		return parse_kinds(v, (bool *)field);
	case V_T0: {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (prof_parse_t0(v, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
				  (int64_t *)field) < 0)
			return "not a time (unix ms, +30s, or 2026-11-11T00:00:00Z)";
		return NULL;
	}
	}
	return "unknown key type";
}

struct load_ctx {
	struct lg_profile *p;
	struct cfg_lines lines; /* counts headers too: a repeated [stage a] is a second stage */
	char section[64];
	unsigned headers_seen; /* lines.headers when the last key was handled */
	bool stages_reset, classes_reset;
	bool seen[NKEYS];
};

/* A new [stage NAME] or [class NAME] section: append an entry. */
static const char *open_named(struct load_ctx *ctx, const char *section)
{
	struct lg_profile *p = ctx->p;
	bool stage = strncmp(section, "stage ", 6) == 0;
	const char *name = section + 6; /* "stage " and "class " */
	if (!*name || strlen(name) >= PROF_NAME_MAX || strchr(name, ' '))
		return "section name must be one word of up to 31 characters";
	if (stage) {
		if (!ctx->stages_reset) {
			p->n_stages = 0;
			ctx->stages_reset = true;
		}
		for (unsigned i = 0; i < p->n_stages; i++)
			if (strcmp(p->stages[i].name, name) == 0)
				return "stage defined twice";
		if (p->n_stages == PROF_MAX_STAGES)
			return "too many stages (32 at most)";
		struct prof_stage *s = &p->stages[p->n_stages++];
		memset(s, 0, sizeof(*s));
		s->duration_s = -1;
		s->from_rate = s->to_rate = -1;
		strcpy(s->name, name);
	} else {
		if (!ctx->classes_reset) {
			p->n_classes = 0;
			ctx->classes_reset = true;
		}
		for (unsigned i = 0; i < p->n_classes; i++)
			if (strcmp(p->classes[i].name, name) == 0)
				return "class defined twice";
		if (p->n_classes == PROF_MAX_CLASSES)
			return "too many classes (16 at most)";
		struct prof_class *c = &p->classes[p->n_classes++];
		memset(c, 0, sizeof(*c));
		strcpy(c->name, name);
	}
	return NULL;
}

static const char *set_stage_key(struct prof_stage *s, const char *name, const char *v)
{
	double d;
	const char *why;
	if (strcmp(name, "duration") == 0) {
		if (prof_parse_duration(v, &d) < 0)
			return "not a duration (10s, 500ms, 2m)";
		s->duration_s = d;
		return NULL;
	}
	if (strcmp(name, "rate") == 0 || strcmp(name, "from") == 0 || strcmp(name, "to") == 0) {
		if ((why = parse_double(v, 0, 10e6, &d)))
			return why;
		if (name[0] != 't')
			s->from_rate = d;
		if (name[0] != 'f')
			s->to_rate = d;
		return NULL;
	}
	return "unknown key (duration, rate, from, to)";
}

static const char *set_class_key(struct prof_class *c, const char *name, const char *v)
{
	unsigned long long n;
	const char *why;
	if (strcmp(name, "count") == 0) {
		if ((why = parse_u64(v, 1, 10000000, &n)))
			return why;
		c->count = (unsigned)n;
	} else if (strcmp(name, "stock") == 0) {
		if ((why = parse_u64(v, 0, 1000000000000ULL, &n)))
			return why;
		c->stock = n;
	} else if (strcmp(name, "per_user_limit") == 0) {
		if ((why = parse_u64(v, 1, 1000000000, &n)))
			return why;
		c->limit = (unsigned)n;
	} else {
		return "unknown key (count, stock, per_user_limit)";
	}
	return NULL;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	struct lg_profile *p = ctx->p;
	const char *why = NULL;
	bool named = strncmp(section, "stage ", 6) == 0 || strncmp(section, "class ", 6) == 0;

	if (named && (strcmp(section, ctx->section) != 0 || ctx->lines.headers != ctx->headers_seen))
		why = open_named(ctx, section);
	ctx->headers_seen = ctx->lines.headers;
	snprintf(ctx->section, sizeof(ctx->section), "%s", section);
	if (why)
		goto bad;
	if (strncmp(section, "stage ", 6) == 0) {
		why = set_stage_key(&p->stages[p->n_stages - 1], name, value);
	} else if (strncmp(section, "class ", 6) == 0) {
		why = set_class_key(&p->classes[p->n_classes - 1], name, value);
	} else {
		why = "unknown key";
		for (size_t i = 0; i < NKEYS; i++) {
			if (strcmp(keys[i].section, section) != 0 || strcmp(keys[i].name, name) != 0)
				continue;
			why = ctx->seen[i] ? "set twice" : set_key(p, &keys[i], value);
			ctx->seen[i] = true;
			break;
		}
	}
	if (!why)
		return 1;
bad:
	if (!ctx->lines.why_line) {
		ctx->lines.why_line = ctx->lines.line;
		snprintf(ctx->lines.why, sizeof(ctx->lines.why), "[%s] %s: %s (value '%s')", section, name, why, value);
	}
	return 0;
}

static void sum_skus(struct lg_profile *p)
{
	unsigned long long n = 0;
	for (unsigned i = 0; i < p->n_classes; i++)
		n += p->classes[i].count;
	p->skus = n > 10000000 ? 10000000 : (unsigned)n;
}

int prof_load(struct lg_profile *p, const char *path, char *err, size_t err_len)
{
	struct load_ctx ctx = {.p = p};

	snprintf(p->source, sizeof(p->source), "%s", path);
	int rc = cfg_parse_file(path, &ctx.lines, on_key, &ctx, err, err_len);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < p->n_stages; i++) {
		const struct prof_stage *s = &p->stages[i];
		const char *miss = s->duration_s < 0 ? "duration" : s->from_rate < 0 ? "rate or from" :
				   s->to_rate < 0 ? "rate or to" : NULL;
		if (miss) {
			snprintf(err, err_len, "%s: [stage %s]: %s is missing", path, s->name, miss);
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < p->n_classes; i++) {
		if (!p->classes[i].count || !p->classes[i].limit) {
			snprintf(err, err_len, "%s: [class %s]: count and per_user_limit are required", path,
				 p->classes[i].name);
			return -EINVAL;
		}
	}
	sum_skus(p);
	return 0;
}

int prof_check(const struct lg_profile *p, char *err, size_t err_len)
{
	if (!p->closed_loop) {
		if (p->n_stages == 0 || prof_duration_s(p) <= 0) {
			snprintf(err, err_len, "%s: the stages last 0 s: nothing to send", p->source);
			return -EINVAL;
		}
		bool any = false;
		for (unsigned i = 0; i < p->n_stages; i++)
			any |= p->stages[i].duration_s > 0 && (p->stages[i].from_rate > 0 || p->stages[i].to_rate > 0);
		if (!any) {
			snprintf(err, err_len, "%s: every stage has rate 0: nothing to send", p->source);
			return -EINVAL;
		}
	}
	if (p->skus == 0) {
		snprintf(err, err_len, "%s: the catalogue has no SKUs", p->source);
		return -EINVAL;
	}
	if (p->backoff_max_ms < p->backoff_ms) {
		snprintf(err, err_len, "%s: [retries] backoff_max is below backoff", p->source);
		return -EINVAL;
	}
	if (p->connections < p->threads) {
		snprintf(err, err_len, "%s: fewer connections (%u) than threads (%u)", p->source,
			 p->connections, p->threads);
		return -EINVAL;
	}
	if (p->malformed_share > 0) {
		bool any = false;
		for (int k = 0; k < MAL_KINDS; k++)
			any |= p->malformed_kinds[k];
		if (!any) {
			snprintf(err, err_len, "%s: [mix] malformed_share > 0 with no malformed_kinds", p->source);
			return -EINVAL;
		}
	}
	double bots = 0;
	for (int k = WHO_SHOPPER + 1; k < WHO_N; k++)
		bots += p->bot_share[k];
	if (bots > 1.0) {
		snprintf(err, err_len, "%s: [bots] the shares add up to more than 1 (%.3f)", p->source, bots);
		return -EINVAL;
	}
	return 0;
}

bool prof_has_bots(const struct lg_profile *p)
{
	for (int k = WHO_SHOPPER + 1; k < WHO_N; k++)
		if (p->bot_share[k] > 0)
			return true;
	return false;
}

double prof_duration_s(const struct lg_profile *p)
{
	double d = 0;
	for (unsigned i = 0; i < p->n_stages; i++)
		d += p->stages[i].duration_s;
	return d;
}

const struct prof_class *prof_class_of(const struct lg_profile *p, unsigned sku)
{
	unsigned first = 1;
	for (unsigned i = 0; i < p->n_classes; i++) {
		if (sku < first + p->classes[i].count)
			return &p->classes[i];
		first += p->classes[i].count;
	}
	return &p->classes[p->n_classes - 1];
}

int prof_write_stock(const struct lg_profile *p, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		int rc = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return rc;
	}
	fprintf(f, "sku,stock,per_user_limit\n");
	for (unsigned sku = 1; sku <= p->skus; sku++) {
		const struct prof_class *c = prof_class_of(p, sku);
		fprintf(f, "%s%u,%llu,%u\n", p->sku_prefix, sku, c->stock, c->limit);
	}
	if (fclose(f) != 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -EIO;
	}
	return 0;
}
