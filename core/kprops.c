/* kprops: an SRE's librdkafka properties for every Kafka client. See kprops.h. */
#include "kprops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set by flashgate itself, each for a reason of its own: a [kafka] key,
 * the delivery guarantee (acks=all, idempotence, its retries and ordering),
 * or the topic scan's consumer (no group, no commits). */
static const char *const own[] = {
	"bootstrap.servers", "metadata.broker.list", "client.id", "acks", "request.required.acks",
	"enable.idempotence", "max.in.flight", "max.in.flight.requests.per.connection", "linger.ms",
	"queue.buffering.max.ms", "batch.num.messages", "compression.codec", "compression.type",
	"message.timeout.ms", "delivery.timeout.ms", "queue.buffering.max.messages", "socket.nagle.disable",
	"retries", "message.send.max.retries", "transactional.id", "group.id", "enable.auto.commit",
	"enable.auto.offset.store", "enable.partition.eof", "auto.offset.reset", NULL,
};

#define KEY_CHARS "abcdefghijklmnopqrstuvwxyz0123456789._-"

struct prop {
	char key[128];
	char value[8192]; /* as long as the file may be: a PEM inline fits */
};

/* One line, without its end: 1 a property (in p), 0 nothing, or -1 with
 * *why. */
static int parse_line(const char *s, size_t len, struct prop *p, const char **why)
{
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
		len--;
	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	if (len == 0 || *s == '#')
		return 0;
	const char *eq = memchr(s, '=', len);
	if (!eq) {
		*why = "expected key=value";
		return -1;
	}
	size_t klen = (size_t)(eq - s), vlen = len - klen - 1;
	const char *v = eq + 1;
	while (klen && (s[klen - 1] == ' ' || s[klen - 1] == '\t'))
		klen--;
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	if (klen == 0 || klen >= sizeof(p->key) || strspn(s, KEY_CHARS) < klen) {
		*why = "not a librdkafka property name (a-z 0-9 . _ -)";
		return -1;
	}
	if (vlen == 0 || vlen >= sizeof(p->value) || memchr(v, '\0', vlen)) {
		*why = vlen ? "value too long" : "empty value";
		return -1;
	}
	memcpy(p->key, s, klen);
	p->key[klen] = '\0';
	memcpy(p->value, v, vlen);
	p->value[vlen] = '\0';
	for (const char *const *o = own; *o; o++) {
		if (strcmp(*o, p->key) == 0) {
			*why = "flashgate sets it itself (a [kafka] key, the delivery guarantee, or the topic scan)";
			return -1;
		}
	}
	return 1;
}

/* Calls fn on each property of text; stops at the first line refused
 * (by parse_line: *why) or by fn (its return). */
static int each(const char *text, int *line, const char **why,
		int (*fn)(const struct prop *p, void *arg), void *arg)
{
	struct prop p;
	*line = 0;
	for (const char *s = text ? text : ""; *s;) {
		const char *end = strchr(s, '\n');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		++*line;
		int rc = parse_line(s, len, &p, why);
		if (rc < 0)
			return -EINVAL;
		if (rc > 0 && fn && (rc = fn(&p, arg)) < 0)
			return rc;
		s += len + (end != NULL);
	}
	return 0;
}

const char *kprops_check(const char *text, int *line)
{
	const char *why = NULL;
	return each(text, line, &why, NULL, NULL) < 0 ? why : NULL;
}

struct getting {
	const char *key;
	char *out;
	size_t cap;
	int found;
};

static int get_one(const struct prop *p, void *arg)
{
	struct getting *g = arg;
	if (strcmp(p->key, g->key) == 0) {
		snprintf(g->out, g->cap, "%s", p->value);
		g->found = 1;
	}
	return 0;
}

int kprops_get(const char *text, const char *key, char *out, size_t cap)
{
	struct getting g = {key, out, cap, 0};
	int line;
	const char *why;
	if (cap)
		*out = '\0';
	return each(text, &line, &why, get_one, &g) < 0 ? 0 : g.found;
}

static bool is_credential(const char *key)
{
	return strcmp(key, "sasl.username") == 0 || strcmp(key, "sasl.password") == 0;
}

struct canon {
	char *p;
	size_t len, cap;
};

/* "key=value\n" of every property but the credentials, in file order. */
static int canon_one(const struct prop *p, void *arg)
{
	struct canon *c = arg;
	if (is_credential(p->key))
		return 0;
	int n = snprintf(c->p + c->len, c->cap - c->len, "%s=%s\n", p->key, p->value);
	if (n < 0 || (size_t)n >= c->cap - c->len)
		return -ENOSPC;
	c->len += (size_t)n;
	return 0;
}

bool kprops_only_credentials_differ(const char *a, const char *b)
{
	size_t cap = (a ? strlen(a) : 0) + (b ? strlen(b) : 0) + 2;
	struct canon ca = {malloc(cap), 0, cap}, cb = {malloc(cap), 0, cap};
	int line;
	const char *why;
	bool same = ca.p && cb.p && each(a, &line, &why, canon_one, &ca) == 0 &&
		    each(b, &line, &why, canon_one, &cb) == 0 && ca.len == cb.len && memcmp(ca.p, cb.p, ca.len) == 0;
	free(ca.p);
	free(cb.p);
	return same;
}

struct applying {
	rd_kafka_conf_t *conf;
	char *reason;
	size_t reason_len;
	char key[128]; /* the property refused, "" if none */
};

static int apply_one(const struct prop *p, void *arg)
{
	struct applying *a = arg;
	if (rd_kafka_conf_set(a->conf, p->key, p->value, a->reason, a->reason_len) != RD_KAFKA_CONF_OK) {
		snprintf(a->key, sizeof(a->key), "%s", p->key);
		return -EINVAL;
	}
	return 0;
}

int kprops_apply(const struct kprops *k, rd_kafka_conf_t *conf, char *err, size_t err_len)
{
	char reason[512];
	if (rd_kafka_conf_set(conf, "bootstrap.servers", k->brokers, reason, sizeof(reason)) != RD_KAFKA_CONF_OK) {
		snprintf(err, err_len, "kafka bootstrap.servers=%s: %s", k->brokers, reason);
		return -EINVAL;
	}
	struct applying a = {.conf = conf, .reason = reason, .reason_len = sizeof(reason)};
	const char *why = NULL;
	int line;
	if (each(k->text, &line, &why, apply_one, &a) < 0) {
		const char *file = k->file ? k->file : "kafka properties";
		if (*a.key)
			snprintf(err, err_len, "%s:%d: %s: %s", file, line, a.key, reason);
		else
			snprintf(err, err_len, "%s:%d: %s", file, line, why);
		return -EINVAL;
	}
	return 0;
}
