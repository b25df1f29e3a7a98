/* record: a past sale's topic as a trace. See record.h. */
#include "record.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../core/order.h"
#include "../core/tscan.h"

struct rec {
	int64_t at_ms;
	uint64_t user, key; /* anonymised; key 0: none */
	uint32_t qty;
	char sku[ORDER_ID_MAX + 1];
};

struct recording {
	const struct record_opts *o;
	struct rec *v;
	size_t n, cap;
	uint64_t skipped;
};

/* The first 8 bytes of HMAC-SHA256(key, tag || s); never 0. */
static uint64_t anon(const struct record_opts *o, char tag, const char *s)
{
	unsigned char msg[ORDER_ID_MAX + 2], md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	size_t n = strlen(s);
	msg[0] = (unsigned char)tag;
	memcpy(msg + 1, s, n);
	if (!HMAC(EVP_sha256(), o->anon_key, (int)o->anon_key_len, msg, n + 1, md, &md_len) || md_len < 8)
		return 0;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | md[i];
	return v ? v : 1;
}

static int on_record(void *arg, const char *payload, size_t len)
{
	struct recording *rc = arg;
	const struct record_opts *o = rc->o;
	struct order_record r;
	if (order_decode_record(payload, len, &r) < 0 || r.accepted_at_ms < o->since_ms ||
	    (o->until_ms && r.accepted_at_ms >= o->until_ms) ||
	    strncmp(r.sku, o->sku_prefix, strlen(o->sku_prefix)) != 0) {
		rc->skipped++;
		return 0;
	}
	if (rc->n == rc->cap) {
		size_t cap = rc->cap ? rc->cap * 2 : 65536;
		struct rec *v = realloc(rc->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rc->v = v;
		rc->cap = cap;
	}
	struct rec *d = &rc->v[rc->n];
	d->at_ms = r.accepted_at_ms;
	d->user = anon(o, 'u', r.user_id);
	d->key = r.idempotency_key[0] ? anon(o, 'k', r.idempotency_key) : 0;
	if (!d->user || (r.idempotency_key[0] && !d->key))
		return -EIO;
	d->qty = r.qty;
	memcpy(d->sku, r.sku, sizeof(d->sku));
	rc->n++;
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	return x->at_ms < y->at_ms ? -1 : x->at_ms > y->at_ms;
}

long long record_run(const struct record_opts *o, char *err, size_t err_len)
{
	struct recording rc = {.o = o};
	long long n = tscan_read(&o->kafka, o->topic, o->since_ms, 300, NULL, on_record, &rc, err, err_len);
	FILE *f = NULL;
	if (n < 0)
		goto out;
	if (rc.n == 0) {
		snprintf(err, err_len, "%s: no orders%s%s in the window (%lld records read)", o->topic,
			 o->sku_prefix[0] ? " of SKUs " : "", o->sku_prefix, n);
		n = -ENOENT;
		goto out;
	}
	qsort(rc.v, rc.n, sizeof(*rc.v), by_time);
	if (!(f = fopen(o->out, "w"))) {
		n = -errno;
		snprintf(err, err_len, "%s: %s", o->out, strerror(errno));
		goto out;
	}
	fprintf(f, "# flashload record: %zu orders of topic %s from %" PRId64 " (unix ms); users and keys "
		   "anonymised (HMAC-SHA256)\noffset_ms,user,sku,qty,key\n",
		rc.n, o->topic, rc.v[0].at_ms);
	for (size_t i = 0; i < rc.n; i++) {
		const struct rec *r = &rc.v[i];
		fprintf(f, "%" PRId64 ",a%016" PRIx64 ",%s,%u", r->at_ms - rc.v[0].at_ms, r->user, r->sku, r->qty);
		if (r->key)
			fprintf(f, ",k%016" PRIx64, r->key);
		fputc('\n', f);
	}
	if (fclose(f) != 0) {
		f = NULL;
		n = -EIO;
		snprintf(err, err_len, "%s: %s", o->out, strerror(errno));
		goto out;
	}
	f = NULL;
	n = (long long)rc.n;
out:
	if (f)
		fclose(f);
	free(rc.v);
	return n;
}
