/*
 * cfg: the key table and its INI loader, and the two files keys name (the
 * Redis password, the Kafka client properties). Adding a key means one
 * line in keys[] and one field in struct cfg; the documented defaults file
 * (config/flashgate.conf) is checked against this table by the unit tests.
 */
#include "cfg.h"
#include "kprops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ini.h>
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum key_type { KEY_U32, KEY_STRING, KEY_WORD, KEY_SECRET, KEY_ADDR };

/* When a changed value takes effect: at the next SIGHUP, or only when the
 * process starts (it sized a table, opened a socket or made a client). */
enum key_apply { LIVE, RESTART };

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	enum key_apply apply;
	size_t offset;
	size_t size;              /* KEY_STRING/KEY_WORD/KEY_ADDR: buffer size */
	uint32_t min, max;        /* KEY_U32 range */
	const char *def;
	const char *const *words; /* KEY_WORD: allowed values */
	const char *chars;        /* KEY_STRING: the characters allowed */
	const char *chars_why;    /* ... and the refusal that names them */
};

static const char *const compression_words[] = {"none", "lz4", "zstd", "snappy", "gzip", NULL};
static const char *const policy_words[] = {"complete", "release", NULL};
static const char *const identity_words[] = {"jwt", "off", NULL};
static const char *const onoff_words[] = {"off", "on", NULL};
static const char *const auto_words[] = {"auto", NULL};
static const char *const level_words[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_words[] = {"logfmt", "text", NULL};

#define U32(how, sec, nm, field, lo, hi, dflt) \
	{sec, nm, KEY_U32, how, offsetof(struct cfg, field), 0, lo, hi, dflt, NULL, NULL, NULL}
#define STR(how, sec, nm, field, dflt, allowed, why) \
	{sec, nm, KEY_STRING, how, offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field), 0, 0, dflt, NULL, allowed, why}

/* A numeric IP address: what the listener binds. */
#define ADDR(how, sec, nm, field, dflt) \
	{sec, nm, KEY_ADDR, how, offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field), 0, 0, dflt, NULL, NULL, NULL}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
/* Names, IPv4 and IPv6 addresses (with a %zone). */
#define HOST_CHARS ALNUM ".-_:%"
/* librdkafka's bootstrap.servers: host:port, comma-separated, each maybe
 * with a PLAINTEXT:// prefix or an [IPv6] address. */
#define BROKERS_CHARS HOST_CHARS ",[]/ "
/* Kafka's own rule for topic names (its 249-character limit is
 * CFG_TOPIC_MAX's). */
#define TOPIC_CHARS ALNUM "._-"
/* Redis ACL user names as flashgate accepts them. */
#define USER_CHARS ALNUM "._-@"
/* A path without spaces, ';' or '#' (a comment in this file). */
#define PATH_CHARS ALNUM "/._-+@:,=~%"
#define PATH_WHY "not a file path (letters, digits and / . _ - + @ : , = ~ %)"
/* An issuer or audience: a URL or a name, without ';' or '#'. */
#define CLAIM_CHARS ALNUM ":/._-~%?=&+@!$*()'"
/* Addresses and CIDR ranges, comma-separated (checked whole by cfg_load). */
#define PROXIES_CHARS "0123456789abcdefABCDEF.:/, "
#define SECRET(how, sec, nm, field) \
	{sec, nm, KEY_SECRET, how, offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field), 0, 0, "", NULL, NULL, NULL}
#define WORD(how, sec, nm, field, dflt, list) \
	{sec, nm, KEY_WORD, how, offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field), 0, 0, dflt, list, NULL, NULL}

static const struct key keys[] = {
	ADDR(RESTART, "server", "listen", listen, "127.0.0.1"),
	U32(RESTART, "server", "port", port, 1, 65535, "18080"),
	U32(RESTART, "server", "workers", workers, 0, 16, "0"),
	U32(RESTART, "server", "max_connections", max_connections, 1, 1000000, "4096"),
	U32(RESTART, "server", "max_inflight", max_inflight, 1, 1000000, "8192"),
	U32(RESTART, "server", "max_pipeline", max_pipeline, 1, 1024, "32"),
	U32(RESTART, "server", "max_head_bytes", max_head_bytes, 256, 65536, "8192"),
	U32(LIVE, "server", "max_headers", max_headers, 4, 1000, "64"),
	U32(RESTART, "server", "max_body_bytes", max_body_bytes, 64, 65536, "4096"),
	U32(LIVE, "server", "retry_after_s", retry_after_s, 1, 3600, "1"),
	U32(LIVE, "server", "drain_timeout_ms", drain_timeout_ms, 0, 600000, "10000"),
	U32(LIVE, "server", "request_timeout_ms", request_timeout_ms, 100, 600000, "10000"),
	U32(LIVE, "server", "idle_timeout_ms", idle_timeout_ms, 100, 3600000, "60000"),
	U32(LIVE, "server", "send_timeout_ms", send_timeout_ms, 100, 3600000, "10000"),
	U32(RESTART, "server", "recv_buffers", recv_buffers, 16, 32768, "1024"),
	U32(RESTART, "server", "recv_buffer_bytes", recv_buffer_bytes, 512, 65536, "4096"),
	SECRET(LIVE, "server", "admin_token", admin_token),
	/* A number, or auto (CFG_NODE_AUTO): a free id from the lease table. */
	{"order", "node_id", KEY_U32, RESTART, offsetof(struct cfg, node_id), 0, 0, 1023, "0", auto_words, NULL, NULL},
	U32(RESTART, "order", "node_lease_ms", node_lease_ms, 1000, 600000, "10000"),
	U32(LIVE, "order", "max_qty", max_qty, 1, 1000000, "10"),
	U32(LIVE, "order", "soldout_cache_ms", soldout_cache_ms, 0, 1000, "500"),
	U32(LIVE, "order", "unknown_cache_ms", unknown_cache_ms, 0, 60000, "1000"),
	U32(RESTART, "order", "sku_cache_entries", sku_cache_entries, 16, 10000000, "4096"),
	U32(LIVE, "order", "idempotency_ttl_s", idempotency_ttl_s, 1, 2592000, "86400"),
	STR(RESTART, "redis", "host", redis_host, "127.0.0.1", HOST_CHARS, "not a host name or IP address"),
	U32(RESTART, "redis", "port", redis_port, 1, 65535, "16379"),
	U32(LIVE, "redis", "timeout_ms", redis_timeout_ms, 10, 600000, "1000"),
	U32(LIVE, "redis", "reconnect_ms", redis_reconnect_ms, 10, 60000, "200"),
	U32(RESTART, "redis", "buckets", redis_buckets, 1, 64, "1"),
	U32(RESTART, "redis", "wait_replicas", redis_wait_replicas, 0, 16, "0"),
	U32(LIVE, "redis", "wait_timeout_ms", redis_wait_timeout_ms, 1, 600000, "50"),
	U32(LIVE, "redis", "confirm_delay_ms", redis_confirm_delay_ms, 0, 1000, "2"),
	STR(LIVE, "redis", "user", redis_user, "", USER_CHARS,
	    "not a user name flashgate accepts (letters, digits, '.', '_', '-', '@')"),
	STR(LIVE, "redis", "password_file", redis_password_file, "", PATH_CHARS,
	    PATH_WHY),
	STR(RESTART, "kafka", "brokers", kafka_brokers, "127.0.0.1:19092", BROKERS_CHARS,
	       "not a broker list (host:port, comma-separated)"),
	STR(RESTART, "kafka", "topic", kafka_topic, "orders", TOPIC_CHARS,
	       "not a Kafka topic name (letters, digits, '.', '_' and '-')"),
	U32(RESTART, "kafka", "linger_ms", kafka_linger_ms, 0, 10000, "0"),
	/* 5 is the most the idempotent producer allows. */
	U32(RESTART, "kafka", "inflight_requests", kafka_inflight_requests, 1, 5, "1"),
	U32(RESTART, "kafka", "batch_messages", kafka_batch_messages, 1, 1000000, "10000"),
	WORD(RESTART, "kafka", "compression", kafka_compression, "lz4", compression_words),
	U32(RESTART, "kafka", "message_timeout_ms", kafka_message_timeout_ms, 100, 3600000, "5000"),
	U32(RESTART, "kafka", "queue_messages", kafka_queue_messages, 1, 10000000, "100000"),
	STR(RESTART, "kafka", "client_properties", kafka_client_properties, "", PATH_CHARS,
	    PATH_WHY),
	U32(RESTART, "reconcile", "interval_ms", reconcile_interval_ms, 0, 86400000, "10000"),
	WORD(RESTART, "reconcile", "policy", reconcile_policy, "complete", policy_words),
	WORD(RESTART, "identity", "mode", identity_mode, "jwt", identity_words),
	STR(LIVE, "identity", "keys", identity_keys, ".run/keys/verify", PATH_CHARS,
	    "not a directory path (letters, digits and / . _ - + @ : , = ~ %)"),
	STR(LIVE, "identity", "issuer", identity_issuer, "", CLAIM_CHARS, "not an issuer (a URL or a name, no spaces)"),
	STR(LIVE, "identity", "audience", identity_audience, "", CLAIM_CHARS, "not an audience (a URL or a name, no spaces)"),
	U32(LIVE, "identity", "clock_skew_s", identity_clock_skew_s, 0, 3600, "30"),
	U32(RESTART, "identity", "cache_entries", identity_cache_entries, 16, 1048576, "16384"),
	U32(LIVE, "admission", "user_rate", user_rate, 0, 1000000, "20"),
	U32(LIVE, "admission", "user_burst", user_burst, 1, 1000000, "40"),
	U32(LIVE, "admission", "addr_rate", addr_rate, 0, 10000000, "0"),
	U32(LIVE, "admission", "addr_burst", addr_burst, 1, 10000000, "200"),
	U32(LIVE, "admission", "addr_max_connections", addr_max_connections, 0, 1000000, "0"),
	U32(LIVE, "admission", "instance_rate", instance_rate, 0, 100000000, "0"),
	U32(LIVE, "admission", "instance_burst", instance_burst, 1, 100000000, "1000"),
	U32(RESTART, "admission", "table_entries", admission_table_entries, 64, 16777216, "65536"),
	STR(LIVE, "admission", "trusted_proxies", trusted_proxies, "", PROXIES_CHARS,
	    "not a list of IP addresses or CIDR ranges"),
	WORD(RESTART, "admission", "proxy_protocol", proxy_protocol, "off", onoff_words),
	ADDR(RESTART, "admin", "listen", admin_listen, "127.0.0.1"),
	U32(RESTART, "admin", "port", admin_port, 0, 65535, "0"),
	STR(LIVE, "admin", "token_file", admin_token_file, "", PATH_CHARS,
	    PATH_WHY),
	WORD(LIVE, "log", "level", log_level, "info", level_words),
	WORD(LIVE, "log", "format", log_format, "logfmt", format_words),
	STR(LIVE, "log", "file", log_file, "", PATH_CHARS, PATH_WHY),
	U32(LIVE, "log", "access_every", log_access_every, 0, 1000000, "0"),
	STR(RESTART, "log", "access_key_file", log_access_key_file, "", PATH_CHARS,
	    PATH_WHY),
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && strcmp(s + n - t, tail) == 0;
}

/* The units a number of key k may carry, by the key's name: durations for
 * *_ms and *_s, sizes for *_bytes; each unit in the key's own unit. */
struct unit {
	const char *name;
	unsigned long long scale;
};
static const struct unit ms_units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0}};
static const struct unit s_units[] = {{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {NULL, 0}};
static const struct unit byte_units[] = {{"B", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}, {NULL, 0}};

static const struct unit *units_of(const struct key *k)
{
	return ends_with(k->name, "_ms") ? ms_units : ends_with(k->name, "_s") ? s_units
	       : ends_with(k->name, "_bytes") ? byte_units : NULL;
}

/* "250ms", "10s", "64KiB" or a plain number (the key's own unit) into *n;
 * NULL, or why not. */
static const char *parse_number(const struct key *k, const char *v, unsigned long long *n)
{
	char *end;
	if (*v < '0' || *v > '9')
		return k->words ? "not a non-negative integer nor auto" : "not a non-negative integer";
	errno = 0;
	*n = strtoull(v, &end, 10);
	if (errno == ERANGE)
		return "out of range";
	if (*end == '\0')
		return NULL;
	const struct unit *u = units_of(k);
	if (!u)
		return "not a non-negative integer";
	for (; u->name; u++) {
		if (strcmp(end, u->name) != 0)
			continue;
		if (*n > ULLONG_MAX / u->scale)
			return "out of range";
		*n *= u->scale;
		return NULL;
	}
	return units_of(k) == ms_units ? "not a duration (a number of ms, or with ms, s, m or h)"
	       : units_of(k) == s_units ? "not a duration (a number of seconds, or with s, m, h or d)"
				       : "not a size (a number of bytes, or with B, KiB or MiB)";
}

/* Returns NULL on success, or why the value is refused. */
static const char *set_value(struct cfg *c, const struct key *k, const char *v)
{
	char *field = (char *)c + k->offset;
	switch (k->type) {
	case KEY_U32: {
		if (k->words && strcasecmp(v, k->words[0]) == 0) {
			uint32_t u = CFG_NODE_AUTO;
			memcpy(field, &u, sizeof(u));
			return NULL;
		}
		unsigned long long n;
		const char *why = parse_number(k, v, &n);
		if (why)
			return why;
		if (n < k->min || n > k->max)
			return "out of range";
		uint32_t u = (uint32_t)n;
		memcpy(field, &u, sizeof(u));
		return NULL;
	}
	case KEY_WORD: {
		for (const char *const *w = k->words; *w; w++) {
			if (strcasecmp(*w, v) == 0) {
				strcpy(field, *w);
				return NULL;
			}
		}
		return "not one of the allowed values";
	}
	case KEY_SECRET:
		/* Empty: the admin endpoints are off. Otherwise long enough that it
		 * cannot be guessed, and free of what an HTTP header cannot carry. */
		if (*v && strlen(v) < 16)
			return "must be empty (admin endpoints off) or at least 16 characters";
		if (strlen(v) >= k->size)
			return "too long";
		for (const char *ch = v; *ch; ch++)
			if (*ch <= ' ' || *ch > '~')
				return "must be printable ASCII without spaces";
		strcpy(field, v);
		return NULL;
	case KEY_ADDR: {
		/* Checked here so `listen = localhost` stops start-up at its line,
		 * not later in a worker with the resolver's words. */
		struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE}, *ai;
		if (strlen(v) >= k->size)
			return "too long";
		if (getaddrinfo(v, NULL, &hints, &ai) != 0)
			return "not a numeric IP address (such as 127.0.0.1, 0.0.0.0 or ::)";
		freeaddrinfo(ai);
		strcpy(field, v);
		return NULL;
	}
	case KEY_STRING:
		if (*v == '\0') {
			if (*k->def) /* only a key whose default is empty may be */
				return "empty";
			*field = '\0';
			return NULL;
		}
		if (strlen(v) >= k->size)
			return "too long";
		/* Each key's own characters, which also keeps out ';' and '#':
		 * they start a comment in this file, and a value holding one
		 * would not survive `-t`'s copy. */
		if (v[strspn(v, k->chars)] != '\0')
			return k->chars_why;
		strcpy(field, v);
		return NULL;
	}
	return "unknown key type";
}

void cfg_defaults(struct cfg *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++) {
		const char *why = set_value(c, &keys[i], keys[i].def);
		if (why) { /* a broken table is a programming error: fail loudly */
			fprintf(stderr, "cfg: default of [%s] %s: %s\n", keys[i].section, keys[i].name, why);
			abort();
		}
	}
}

_Static_assert(NKEYS <= CFG_KEYS_MAX, "struct cfg_sources has a slot per key");

struct load_ctx {
	struct cfg *cfg;
	const char *path;
	struct cfg_lines lines;
	int line[NKEYS]; /* where each key was set in the file; 0: not set */
	struct cfg_sources *src;
	/* Every refusal, one "where: why" line each, for err. */
	char errs[2048];
	size_t errs_len;
	unsigned n_errs;
};

/* One more refusal: "where: [section] key: why (value 'v')". */
static void refuse(struct load_ctx *ctx, const char *where, const struct key *k, const char *section,
		   const char *name, const char *why, const char *value)
{
	char line[512];
	if (k && strcmp(why, "out of range") == 0) {
		const struct unit *u = units_of(k);
		snprintf(line, sizeof(line), "%s: [%s] %s: '%s' is out of range %u..%u%s%s", where, section, name, value,
			 k->min, k->max, u ? " " : "", u ? u->name : "");
	} else {
		snprintf(line, sizeof(line), "%s: [%s] %s: %s (value '%s')", where, section, name, why, value);
	}
	size_t room = sizeof(ctx->errs) - ctx->errs_len;
	int n = snprintf(ctx->errs + ctx->errs_len, room, "%s%s", ctx->n_errs ? "\n" : "", line);
	if (n > 0)
		ctx->errs_len += (size_t)n < room ? (size_t)n : room - 1;
	ctx->n_errs++;
}

char *cfg_read_line(char *str, int num, void *stream)
{
	struct cfg_lines *l = stream;
	char *s = fgets(str, num, l->file);
	if (s) {
		l->line++;
		l->headers += s[strspn(s, " \t")] == '[';
	}
	return s;
}

/* The index of [section] name in keys[], or -1. */
static int find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	const char *why = "unknown key";
	int i = find_key(section, name);

	if (i >= 0) {
		why = ctx->line[i] ? "set twice" : set_value(ctx->cfg, &keys[i], value);
		ctx->line[i] = ctx->lines.line;
		if (ctx->src) {
			ctx->src->from[i] = CFG_FROM_FILE;
			ctx->src->line[i] = ctx->lines.line;
		}
	}
	if (!why)
		return 1;
	char where[CFG_PATH_MAX + 16];
	snprintf(where, sizeof(where), "%s:%d", ctx->path, ctx->lines.line);
	if (!ctx->lines.why_line)
		ctx->lines.why_line = ctx->lines.line;
	refuse(ctx, where, i >= 0 ? &keys[i] : NULL, section, name, why, value);
	return 0; /* libinih goes on: every bad line is reported at once */
}

/* FLASHGATE_<SECTION>_<KEY>, upper case: which key an environment
 * variable names, or -1. */
static int env_key(const char *var, size_t len)
{
	for (size_t i = 0; i < NKEYS; i++) {
		char want[96];
		int n = snprintf(want, sizeof(want), "FLASHGATE_%s_%s", keys[i].section, keys[i].name);
		if (n <= 0 || (size_t)n != len)
			continue;
		for (char *c = want; *c; c++)
			*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
		if (memcmp(want, var, len) == 0)
			return (int)i;
	}
	return -1;
}

/* One override over the file, from the environment or --set. */
static void override(struct load_ctx *ctx, int i, const char *where, const char *value, enum cfg_from from)
{
	const char *why = set_value(ctx->cfg, &keys[i], value);
	if (why) {
		refuse(ctx, where, &keys[i], keys[i].section, keys[i].name, why, value);
		return;
	}
	if (ctx->src) {
		ctx->src->from[i] = (uint8_t)from;
		ctx->src->line[i] = 0;
	}
}

static void apply_overrides(struct load_ctx *ctx, const struct cfg_overrides *ov)
{
	char where[160];
	for (char *const *e = ov->environ; e && *e; e++) {
		if (strncmp(*e, "FLASHGATE_", 10) != 0)
			continue;
		const char *eq = strchr(*e, '=');
		size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
		int i = env_key(*e, len);
		snprintf(where, sizeof(where), "environment %.*s", (int)len, *e);
		if (i < 0) {
			/* A typo must not pass for a setting nobody applied. */
			size_t room = sizeof(ctx->errs) - ctx->errs_len;
			int n = snprintf(ctx->errs + ctx->errs_len, room, "%s%s: no such key (FLASHGATE_SECTION_KEY, "
					 "such as FLASHGATE_SERVER_PORT)", ctx->n_errs ? "\n" : "", where);
			if (n > 0)
				ctx->errs_len += (size_t)n < room ? (size_t)n : room - 1;
			ctx->n_errs++;
			continue;
		}
		override(ctx, i, where, eq ? eq + 1 : "", CFG_FROM_ENV);
	}
	for (unsigned j = 0; j < ov->n_sets; j++) {
		const char *set = ov->sets[j], *dot = strchr(set, '.'), *eq = strchr(set, '=');
		char section[32], name[64];
		snprintf(where, sizeof(where), "--set %s", set);
		int i = -1;
		if (dot && eq && dot < eq && (size_t)(dot - set) < sizeof(section) && (size_t)(eq - dot - 1) < sizeof(name)) {
			snprintf(section, sizeof(section), "%.*s", (int)(dot - set), set);
			snprintf(name, sizeof(name), "%.*s", (int)(eq - dot - 1), dot + 1);
			i = find_key(section, name);
		}
		if (i < 0) {
			size_t room = sizeof(ctx->errs) - ctx->errs_len;
			int n = snprintf(ctx->errs + ctx->errs_len, room, "%s%s: %s", ctx->n_errs ? "\n" : "", where,
					 dot && eq && dot < eq ? "no such key" : "not section.key=value");
			if (n > 0)
				ctx->errs_len += (size_t)n < room ? (size_t)n : room - 1;
			ctx->n_errs++;
			continue;
		}
		override(ctx, i, where, eq + 1, CFG_FROM_SET);
	}
}

int cfg_parse_file(const char *path, struct cfg_lines *lines, ini_handler handler, void *user,
		   char *err, size_t err_len)
{
	lines->file = fopen(path, "r");
	if (!lines->file) {
		int rc = -errno;
		snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
		return rc;
	}
	int rc = ini_parse_stream(cfg_read_line, lines, handler, user);
	fclose(lines->file);
	lines->file = NULL;
	if (rc == 0)
		return 0;
	if (rc < 0) {
		snprintf(err, err_len, "%s: cannot read (out of memory)", path);
		return -ENOMEM;
	}
	if (lines->why_line == rc)
		snprintf(err, err_len, "%s:%d: %s", path, rc, lines->why);
	else
		snprintf(err, err_len, "%s:%d: syntax error: expected 'key = value' or '[section]'", path, rc);
	return -EINVAL;
}

static int key_line(const struct load_ctx *ctx, const char *section, const char *name)
{
	int i = find_key(section, name);
	return i >= 0 ? ctx->line[i] : 0;
}

/* Rules between keys, checked once the file is read; the line named is
 * the later of the two, the one that broke the rule. */
static int check_pairs(const struct load_ctx *ctx, const char *path, char *err, size_t err_len)
{
	struct cfg *c = ctx->cfg;
	const char *why;
	if (netaddr_parse_list(c->trusted_proxies, &c->trusted_proxy_list, &why) < 0) {
		snprintf(err, err_len, "%s:%d: [admission] trusted_proxies: %s (value '%s')", path,
			 key_line(ctx, "admission", "trusted_proxies"), why, c->trusted_proxies);
		return -EINVAL;
	}

	if (c->redis_wait_timeout_ms >= c->redis_timeout_ms) {
		int a = key_line(ctx, "redis", "wait_timeout_ms"), b = key_line(ctx, "redis", "timeout_ms");
		snprintf(err, err_len,
			 "%s:%d: [redis] wait_timeout_ms: %u is not below [redis] timeout_ms (%u): a WAIT "
			 "would outlast the reply timeout and drop the connection",
			 path, a > b ? a : b, c->redis_wait_timeout_ms, c->redis_timeout_ms);
		return -EINVAL;
	}
	return 0;
}

/* Reads the file [section] name names into buf (cap bytes, NUL included;
 * *n the bytes read, at most cap - 1: a longer file is cut, which the
 * caller judges). A regular file only: a FIFO or a device could block
 * start-up, or feed it forever. 0, or -errno with "PATH:LINE: [section]
 * name: ..." in err. */
static int read_key_file(const struct load_ctx *ctx, const char *path, const char *section, const char *name,
			 const char *file, char *buf, size_t cap, size_t *n, char *err, size_t err_len)
{
	int line = key_line(ctx, section, name);
	struct stat st;
	ssize_t got = -1;
	int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			close(fd);
			snprintf(err, err_len, "%s:%d: [%s] %s: %s: not a regular file", path, line, section, name, file);
			return -EINVAL;
		}
		got = read(fd, buf, cap - 1);
	}
	int rc = got < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (rc < 0) {
		snprintf(err, err_len, "%s:%d: [%s] %s: cannot read %s: %s", path, line, section, name, file,
			 strerror(-rc));
		return rc;
	}
	buf[got] = '\0';
	*n = (size_t)got;
	return 0;
}

/* The first line of [redis] password_file. */
static int read_password(const struct load_ctx *ctx, const char *path, char *err, size_t err_len)
{
	struct cfg *c = ctx->cfg;
	char buf[CFG_PASSWORD_MAX + 2];
	const char *why = NULL;
	size_t n;

	if (!*c->redis_password_file) {
		if (*c->redis_user) {
			snprintf(err, err_len, "%s:%d: [redis] user: set without [redis] password_file", path,
				 key_line(ctx, "redis", "user"));
			return -EINVAL;
		}
		return 0;
	}
	int rc = read_key_file(ctx, path, "redis", "password_file", c->redis_password_file, buf, sizeof(buf), &n,
			       err, err_len);
	if (rc == 0) {
		size_t len = strcspn(buf, "\r\n"); /* also stops at a NUL */
		if (len < n && buf[len] == '\0')
			why = "its first line holds a NUL byte";
		else if (len == 0)
			why = "its first line is empty";
		else if (len >= CFG_PASSWORD_MAX)
			why = "its first line is longer than 512 bytes";
		else
			memcpy(c->redis_password, buf, len);
	}
	if (why) {
		rc = -EINVAL;
		snprintf(err, err_len, "%s:%d: [redis] password_file: %s: %s", path,
			 key_line(ctx, "redis", "password_file"), c->redis_password_file, why);
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* [admin] token_file: its first line is the admin token, held to the
 * rules of [server] admin_token. */
static int read_admin_token(const struct load_ctx *ctx, const char *path, char *err, size_t err_len)
{
	struct cfg *c = ctx->cfg;
	char buf[CFG_TOKEN_MAX + 2];
	const char *why = NULL;
	size_t n;
	if (!*c->admin_token_file)
		return 0;
	int line = key_line(ctx, "admin", "token_file");
	if (*c->admin_token) {
		snprintf(err, err_len, "%s:%d: [admin] token_file: set with [server] admin_token: keep one", path, line);
		return -EINVAL;
	}
	int rc = read_key_file(ctx, path, "admin", "token_file", c->admin_token_file, buf, sizeof(buf), &n, err,
			       err_len);
	if (rc == 0) {
		size_t len = strcspn(buf, "\r\n"); /* also stops at a NUL */
		if (len < n && buf[len] == '\0') {
			why = "its first line holds a NUL byte";
		} else if (len == 0) {
			why = "its first line is empty";
		} else {
			buf[len] = '\0';
			/* too short, too long or not printable: the key's own words */
			why = set_value(c, &keys[find_key("server", "admin_token")], buf);
		}
	}
	if (why) {
		rc = -EINVAL;
		snprintf(err, err_len, "%s:%d: [admin] token_file: %s: %s", path, line, c->admin_token_file, why);
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* [kafka] client_properties, whole; its lines checked (kprops.h). */
static int read_kafka_properties(const struct load_ctx *ctx, const char *path, char *err, size_t err_len)
{
	struct cfg *c = ctx->cfg;
	const char *file = c->kafka_client_properties;
	int line = key_line(ctx, "kafka", "client_properties"), at;
	const char *why = NULL;
	size_t n;
	if (!*file)
		return 0;
	int rc = read_key_file(ctx, path, "kafka", "client_properties", file, c->kafka_properties,
			       sizeof(c->kafka_properties), &n, err, err_len);
	if (rc < 0)
		return rc;
	if (n == sizeof(c->kafka_properties) - 1)
		why = "longer than 8 KB";
	else if (strlen(c->kafka_properties) != n)
		why = "it holds a NUL byte";
	else if ((why = kprops_check(c->kafka_properties, &at)) != NULL) {
		snprintf(err, err_len, "%s:%d: [kafka] client_properties: %s:%d: %s", path, line, file, at, why);
		return -EINVAL;
	}
	if (why) {
		snprintf(err, err_len, "%s:%d: [kafka] client_properties: %s: %s", path, line, file, why);
		return -EINVAL;
	}
	return 0;
}

int cfg_load(struct cfg *c, const char *path, char *err, size_t err_len)
{
	return cfg_load_over(c, path, NULL, NULL, err, err_len);
}

int cfg_load_over(struct cfg *c, const char *path, const struct cfg_overrides *ov, struct cfg_sources *src,
		  char *err, size_t err_len)
{
	/* On the heap: the error lines make it large for a thread's stack. */
	struct load_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		snprintf(err, err_len, "%s: out of memory", path);
		return -ENOMEM;
	}
	ctx->cfg = c;
	ctx->path = path;
	ctx->src = src;
	if (src)
		memset(src, 0, sizeof(*src));
	cfg_defaults(c);
	int rc = cfg_parse_file(path, &ctx->lines, on_key, ctx, err, err_len);
	if (rc < 0 && ctx->lines.why_line == 0 && !ctx->n_errs)
		goto out; /* cannot open, or a syntax error before any bad key */
	if (rc < 0 && !strstr(err, "syntax error"))
		*err = '\0'; /* the handler's refusals say it all, below */
	if (ov)
		apply_overrides(ctx, ov);
	if (ctx->n_errs) {
		/* A syntax error (libinih reports the first only) goes after the keys'. */
		char syntax[600] = "";
		if (rc < 0 && *err)
			snprintf(syntax, sizeof(syntax), "\n%s", err);
		snprintf(err, err_len, "%s%s", ctx->errs, syntax);
		rc = -EINVAL;
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = check_pairs(ctx, path, err, err_len);
	if (rc == 0)
		rc = read_password(ctx, path, err, err_len);
	if (rc == 0)
		rc = read_admin_token(ctx, path, err, err_len);
	if (rc == 0)
		rc = read_kafka_properties(ctx, path, err, err_len);
out:
	free(ctx);
	return rc;
}


static void format_value(const struct key *k, const struct cfg *c, char *out, size_t cap)
{
	const char *field = (const char *)c + k->offset;
	if (k->type == KEY_U32) {
		uint32_t u;
		memcpy(&u, field, sizeof(u));
		if (k->words && u == CFG_NODE_AUTO)
			snprintf(out, cap, "%s", k->words[0]);
		else
			snprintf(out, cap, "%u", u);
	} else if (k->type == KEY_SECRET) {
		snprintf(out, cap, "%s", *field ? "(set)" : "(not set)");
	} else {
		snprintf(out, cap, "%s", field);
	}
}

unsigned cfg_merge_live(struct cfg *next, const struct cfg *running, cfg_changed_fn *changed, void *arg)
{
	unsigned kept = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		size_t size = k->type == KEY_U32 ? sizeof(uint32_t) : k->size;
		char *to = (char *)next + k->offset;
		const char *from = (const char *)running + k->offset;
		if (k->type == KEY_U32 ? memcmp(to, from, size) == 0 : strcmp(to, from) == 0)
			continue;
		char was[CFG_BROKERS_MAX], now[CFG_BROKERS_MAX];
		format_value(k, running, was, sizeof(was));
		format_value(k, next, now, sizeof(now));
		changed(arg, k->section, k->name, was, now, k->apply == LIVE);
		if (k->apply == RESTART) {
			memcpy(to, from, size);
			kept++;
		}
	}
	/* librdkafka takes a client's properties when it is made, but for the
	 * SASL username and password: a file that changes only those (a
	 * password rotated) is live, any other change waits for a restart. */
	if (strcmp(next->kafka_properties, running->kafka_properties) != 0) {
		bool live = kprops_only_credentials_differ(next->kafka_properties, running->kafka_properties);
		changed(arg, "kafka", live ? "client_properties sasl.username/sasl.password" : "client_properties",
			live ? "(set)" : "(the file as read at start-up)", live ? "(set)" : "(the file as it is now)", live);
		if (!live) {
			memcpy(next->kafka_properties, running->kafka_properties, sizeof(next->kafka_properties));
			kept++;
		}
	}
	return kept;
}

static void source_text(const struct cfg_sources *src, size_t i, const struct key *k, const char *path, char *out,
			size_t cap)
{
	switch (src->from[i]) {
	case CFG_FROM_FILE: snprintf(out, cap, "from %s:%d", path, src->line[i]); break;
	case CFG_FROM_ENV: {
		char var[96];
		snprintf(var, sizeof(var), "FLASHGATE_%s_%s", k->section, k->name);
		for (char *ch = var; *ch; ch++)
			*ch = (char)(*ch >= 'a' && *ch <= 'z' ? *ch - 32 : *ch);
		snprintf(out, cap, "from environment %s", var);
		break;
	}
	case CFG_FROM_SET: snprintf(out, cap, "from --set %s.%s", k->section, k->name); break;
	default: snprintf(out, cap, "default"); break;
	}
}

void cfg_dump_sources(const struct cfg *c, const struct cfg_sources *src, const char *path, FILE *out)
{
	const char *section = "";
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const char *field = (const char *)c + k->offset;
		char from[CFG_PATH_MAX + 64] = "";
		if (src)
			source_text(src, i, k, path, from, sizeof(from));
		if (strcmp(section, k->section) != 0) {
			fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
			section = k->section;
		}
		if (k->type == KEY_U32) {
			char value[16];
			format_value(k, c, value, sizeof(value));
			fprintf(out, "%s = %s%s%s\n", k->name, value, *from ? "  ; " : "", from);
		} else if (k->type == KEY_SECRET && *field) {
			fprintf(out, "; %s is set (not shown)%s%s\n", k->name, *from ? ", " : "", from);
		} else if (*field) {
			fprintf(out, "%s = %s%s%s\n", k->name, field, *from ? "  ; " : "", from);
		} else {
			/* An empty value cannot carry an inline comment: libinih
			 * would read the comment as the value. */
			if (*from)
				fprintf(out, "; %s: %s\n", k->name, from);
			fprintf(out, "%s =\n", k->name);
		}
	}
}

void cfg_dump(const struct cfg *c, FILE *out)
{
	cfg_dump_sources(c, NULL, NULL, out);
}
