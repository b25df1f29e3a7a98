/* verify: the books-balance check after a run. See verify.h. */
#include "verify.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/bucket.h"
#include "../core/keys.h"
#include "../core/rcl.h"
#include "../core/order.h"
#include "../core/tscan.h"

struct sku {
	char name[ORDER_ID_MAX + 1];
	long long stock, limit, sold, initial, loaded_at_ms; /* summed over its buckets */
	long long users_units, users_over, pending;
	long long buckets, min_bucket_stock;
	long long moved;    /* units taken from a bucket and not given to another */
	long long xfers;    /* transfer entries still in a donor's ledger */
	long long topic_units, topic_orders;
};

/* An open-addressing set of order ids (0 is never a valid id). */
struct idset {
	uint64_t *slots;
	size_t cap, n;
};

static int idset_init(struct idset *s, size_t expect)
{
	s->cap = 1024;
	while (s->cap < expect * 2)
		s->cap *= 2;
	s->n = 0;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	return s->slots ? 0 : -ENOMEM;
}

/* 1 inserted, 0 already there, -ENOMEM. */
static int idset_add(struct idset *s, uint64_t id)
{
	if (s->n * 2 >= s->cap) {
		struct idset bigger;
		if (idset_init(&bigger, s->cap) < 0)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i])
				idset_add(&bigger, s->slots[i]);
		free(s->slots);
		*s = bigger;
	}
	size_t i = (size_t)(id * 0x9E3779B97F4A7C15ULL) & (s->cap - 1);
	while (s->slots[i]) {
		if (s->slots[i] == id)
			return 0;
		i = (i + 1) & (s->cap - 1);
	}
	s->slots[i] = id;
	s->n++;
	return 1;
}

static bool idset_has(const struct idset *s, uint64_t id)
{
	size_t i = (size_t)(id * 0x9E3779B97F4A7C15ULL) & (s->cap - 1);
	while (s->slots[i]) {
		if (s->slots[i] == id)
			return true;
		i = (i + 1) & (s->cap - 1);
	}
	return false;
}

static int cmp_sku(const void *a, const void *b)
{
	return strcmp(((const struct sku *)a)->name, ((const struct sku *)b)->name);
}

static long long num(const redisReply *r)
{
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r->type == REDIS_REPLY_STRING)
		return strtoll(r->str, NULL, 10);
	return 0;
}

/* Buckets read per round of pipelines: the client's memory stays small
 * whatever the catalogue's size. */
#define READ_BUCKETS 512
/* How long the ledgers get to settle, all of them together. */
#define SETTLE_MS 2000

static const char *const bucket_fields[] = {"stock",        "limit",   "sold",     "initial",
					    "loaded_at_ms", "buckets", "moved_in", "moved_out"};
#define NFIELDS (sizeof(bucket_fields) / sizeof(bucket_fields[0]))

/* One bucket of a SKU (core/bucket.h) being read. */
struct bucket {
	struct sku *sku;
	char key[4][KEYS_MAX]; /* its pending ledger, its transfers, its hash, its users */
	const char *hmget[2 + NFIELDS];
	size_t hmget_len[2 + NFIELDS];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* rcl_pipeline, with every reply there and none an error (reported). */
static int pipeline(struct rcl *c, struct rcl_cmd *cmd, size_t n)
{
	if (rcl_pipeline(c, cmd, n) < 0) {
		fprintf(stderr, "flashload: verify: %s\n", rcl_error(c));
		return -EIO;
	}
	for (size_t i = 0; i < n; i++) {
		if (cmd[i].reply->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "flashload: verify: redis %s: %s\n", cmd[i].key, cmd[i].reply->str);
			return -EIO;
		}
	}
	return 0;
}

static void free_replies(struct rcl_cmd *cmd, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		freeReplyObject(cmd[i].reply);
		cmd[i].reply = NULL;
	}
}

/* Confirmations, releases and transfers' last steps follow the answers by
 * a moment (longer after a failover, when releases wait for the new
 * master): the buckets' ledgers get until settle_at to empty. */
static int wait_settled(struct rcl *c, const struct bucket *bk, size_t nb, struct rcl_cmd *cmd,
			int64_t settle_at)
{
	for (;;) {
		for (size_t i = 0; i < nb; i++) {
			cmd[2 * i] = rcl_cmd_key("HLEN", bk[i].key[0], NULL);
			cmd[2 * i + 1] = rcl_cmd_key("HLEN", bk[i].key[1], NULL);
		}
		int rc = pipeline(c, cmd, 2 * nb);
		bool settled = true;
		for (size_t i = 0; rc == 0 && i < 2 * nb; i++)
			settled = settled && num(cmd[i].reply) == 0;
		free_replies(cmd, 2 * nb);
		if (rc < 0 || settled || mono_ms() >= settle_at)
			return rc;
		usleep(100000);
	}
}

/* Adds one bucket's counts to its SKU's totals. */
static void add_bucket(struct sku *s, const redisReply *pending, const redisReply *xfers, const redisReply *h,
		       const redisReply *users)
{
	long long stock = num(h->element[0]);
	s->stock += stock;
	if (stock < s->min_bucket_stock)
		s->min_bucket_stock = stock;
	s->limit = num(h->element[1]);
	s->sold += num(h->element[2]);
	s->initial += num(h->element[3]);
	if (!s->loaded_at_ms)
		s->loaded_at_ms = num(h->element[4]);
	s->moved += num(h->element[7]) - num(h->element[6]);
	for (size_t j = 1; j < users->elements; j += 2) {
		long long units = num(users->element[j]);
		s->users_units += units;
		s->users_over += units > s->limit;
	}
	s->pending += num(pending);
	s->xfers += num(xfers);
}

/* Reads nb buckets once their ledgers settled: the ledgers' sizes and
 * the counts in one pipeline, so that they are of the same moment. */
static int read_buckets(struct rcl *c, struct bucket *bk, size_t nb, struct rcl_cmd *cmd, int64_t settle_at)
{
	int rc = wait_settled(c, bk, nb, cmd, settle_at);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < nb; i++) {
		struct bucket *b = &bk[i];
		cmd[4 * i] = rcl_cmd_key("HLEN", b->key[0], NULL);
		cmd[4 * i + 1] = rcl_cmd_key("HLEN", b->key[1], NULL);
		b->hmget[0] = "HMGET";
		b->hmget[1] = b->key[2];
		memcpy(&b->hmget[2], bucket_fields, sizeof(bucket_fields));
		for (size_t j = 0; j < 2 + NFIELDS; j++)
			b->hmget_len[j] = strlen(b->hmget[j]);
		cmd[4 * i + 2] = (struct rcl_cmd){.key = b->key[2], .argc = 2 + NFIELDS, .many = b->hmget,
						  .many_len = b->hmget_len};
		cmd[4 * i + 3] = rcl_cmd_key("HGETALL", b->key[3], NULL);
	}
	rc = pipeline(c, cmd, 4 * nb);
	for (size_t i = 0; rc == 0 && i < nb; i++) {
		const redisReply *h = cmd[4 * i + 2].reply, *u = cmd[4 * i + 3].reply;
		if (h->type != REDIS_REPLY_ARRAY || h->elements != NFIELDS || u->type != REDIS_REPLY_ARRAY) {
			fprintf(stderr, "flashload: verify: redis %s: unexpected reply\n", bk[i].key[2]);
			rc = -EIO;
			break;
		}
		add_bucket(bk[i].sku, cmd[4 * i].reply, cmd[4 * i + 1].reply, h, u);
	}
	free_replies(cmd, 4 * nb);
	return rc;
}

/* Each SKU's bucket count, from its bucket 0: pipelines of READ_BUCKETS. */
static int read_bucket_counts(struct rcl *c, struct sku *skus, size_t n, struct bucket *bk, struct rcl_cmd *cmd)
{
	for (size_t at = 0; at < n; at += READ_BUCKETS) {
		size_t m = n - at < READ_BUCKETS ? n - at : READ_BUCKETS;
		for (size_t i = 0; i < m; i++) {
			snprintf(bk[i].key[2], KEYS_MAX, KEYS_SKU_FMT, skus[at + i].name);
			cmd[i] = rcl_cmd_key("HGET", bk[i].key[2], "buckets");
		}
		int rc = pipeline(c, cmd, m);
		for (size_t i = 0; rc == 0 && i < m; i++) {
			long long k = cmd[i].reply->type == REDIS_REPLY_STRING ? num(cmd[i].reply) : 1;
			skus[at + i].buckets = k >= 1 && k <= BKT_MAX ? k : 1;
		}
		free_replies(cmd, m);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Every bucket of the n SKUs, READ_BUCKETS at a time. */
static int read_all_buckets(struct rcl *c, struct sku *skus, size_t n)
{
	struct bucket *bk = calloc(READ_BUCKETS, sizeof(*bk));
	struct rcl_cmd *cmd = calloc(4 * READ_BUCKETS, sizeof(*cmd));
	int rc = bk && cmd ? 0 : -ENOMEM;
	int64_t settle_at = mono_ms() + SETTLE_MS;
	if (rc == 0)
		rc = read_bucket_counts(c, skus, n, bk, cmd);
	size_t nb = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		for (long long b = 0; b < skus[i].buckets && rc == 0; b++) {
			char tag[BKT_TAG_MAX];
			bkt_tag(tag, skus[i].name, (unsigned)b);
			bk[nb].sku = &skus[i];
			snprintf(bk[nb].key[0], KEYS_MAX, KEYS_PENDING_FMT, tag);
			snprintf(bk[nb].key[1], KEYS_MAX, KEYS_XFER_FMT, tag);
			snprintf(bk[nb].key[2], KEYS_MAX, KEYS_SKU_FMT, tag);
			snprintf(bk[nb].key[3], KEYS_MAX, KEYS_USERS_FMT, tag);
			if (++nb == READ_BUCKETS) {
				rc = read_buckets(c, bk, nb, cmd, settle_at);
				nb = 0;
			}
		}
	}
	if (rc == 0 && nb)
		rc = read_buckets(c, bk, nb, cmd, settle_at);
	free(bk);
	free(cmd);
	return rc;
}

static int read_redis(const struct verify_opts *o, struct sku **out, size_t *n_out)
{
	char err[300];
	struct rcl *c = rcl_open(o->redis_host, o->redis_port, 5000, o->redis_user, o->redis_password, err,
				 sizeof(err));
	struct sku *skus = NULL;
	size_t n = 0;
	int rc = 0;
	if (!c) {
		fprintf(stderr, "flashload: verify: %s\n", err);
		return -ECONNREFUSED;
	}
	redisReply *members = rcl_command(c, KEYS_SKU_SET, "SMEMBERS %s", KEYS_SKU_SET);
	if (!members || members->type != REDIS_REPLY_ARRAY) {
		/* NOAUTH here: a Redis with a password reached without --config. */
		fprintf(stderr, "flashload: verify: redis SMEMBERS %s: %s\n", KEYS_SKU_SET,
			!members ? rcl_error(c) : members->type == REDIS_REPLY_ERROR ? members->str : "unexpected reply");
		rc = -EIO;
		goto out;
	}
	skus = calloc(members->elements + 1, sizeof(*skus));
	if (!skus) {
		rc = -ENOMEM;
		goto out;
	}
	size_t plen = strlen(o->sku_prefix);
	for (size_t i = 0; i < members->elements; i++) {
		const char *name = members->element[i]->str;
		if (strncmp(name, o->sku_prefix, plen) != 0 || strlen(name) > ORDER_ID_MAX)
			continue;
		struct sku *s = &skus[n++];
		strcpy(s->name, name);
		s->min_bucket_stock = LLONG_MAX;
	}
	if ((rc = read_all_buckets(c, skus, n)) < 0)
		goto out;
	qsort(skus, n, sizeof(*skus), cmp_sku);
out:
	freeReplyObject(members);
	rcl_close(c);
	if (rc < 0) {
		free(skus);
		return rc;
	}
	*out = skus;
	*n_out = n;
	return 0;
}

struct topic_stats {
	uint64_t records, in_scope, duplicates, undecodable;
	uint64_t keyed, key_reused;
	struct idset ids;
	struct idset keys; /* 64-bit hashes of (user, sku, Idempotency-Key) */
};

/* FNV-1a over user, sku and key: a collision among a run's keys is about
 * n^2 / 2^65, far below one for any run flashload can make. */
static uint64_t key_hash(const struct order_record *r)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const char *parts[3] = {r->user_id, r->sku, r->idempotency_key};
	for (int k = 0; k < 3; k++) {
		for (const char *c = parts[k]; *c; c++)
			h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
		h = (h ^ 0xff) * 0x100000001b3ULL;
	}
	return h ? h : 1;
}

struct scan_ctx {
	struct sku *skus;
	size_t n;
	struct topic_stats *t;
};

static int on_record(void *arg, const char *payload, size_t len)
{
	struct scan_ctx *sc = arg;
	struct topic_stats *t = sc->t;
	struct order_record rec;
	t->records++;
	if (order_decode_record(payload, len, &rec) < 0) {
		t->undecodable++;
		return 0;
	}
	struct sku key;
	strcpy(key.name, rec.sku);
	struct sku *s = bsearch(&key, sc->skus, sc->n, sizeof(*sc->skus), cmp_sku);
	if (!s || rec.accepted_at_ms < s->loaded_at_ms)
		return 0; /* another sale's record */
	t->in_scope++;
	int added = idset_add(&t->ids, rec.order_id);
	if (added < 0)
		return added;
	if (added == 0) {
		t->duplicates++;
		return 0;
	}
	s->topic_units += rec.qty;
	s->topic_orders++;
	if (rec.idempotency_key[0]) {
		t->keyed++;
		added = idset_add(&t->keys, key_hash(&rec));
		if (added < 0)
			return added;
		t->key_reused += added == 0;
	}
	return 0;
}

static int read_topic(const struct verify_opts *o, struct sku *skus, size_t n, struct topic_stats *t)
{
	long long since = n ? INT64_MAX : 0;
	for (size_t i = 0; i < n; i++)
		if (skus[i].loaded_at_ms < since)
			since = skus[i].loaded_at_ms;
	struct scan_ctx sc = {skus, n, t};
	char err[512];
	const struct kprops kp = {o->kafka_brokers, o->kafka_properties, o->kafka_properties_file};
	long long rc = tscan_read(&kp, o->topic, since, 60, NULL, on_record, &sc, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "flashload: verify: %s\n", err);
		return (int)rc;
	}
	return 0;
}

static int check(struct verify_report *report, FILE *out, bool ok, const char *what, const char *detail)
{
	fprintf(out, "%s  %s%s%s\n", ok ? "PASS" : "FAIL", what, detail[0] ? ": " : "", detail);
	if (report->n < VERIFY_MAX_CHECKS) {
		struct verify_check *c = &report->checks[report->n++];
		c->ok = ok;
		snprintf(c->what, sizeof(c->what), "%s", what);
		snprintf(c->detail, sizeof(c->detail), "%s", detail);
	}
	report->fails += !ok;
	return ok ? 0 : 1;
}

int verify_run(const struct verify_opts *o, struct verify_report *rep, FILE *out)
{
	struct sku *skus = NULL;
	size_t n = 0;
	struct topic_stats t = {0};
	char d[256];
	int fails = 0;

	int rc = read_redis(o, &skus, &n);
	if (rc < 0)
		return rc;
	memset(rep, 0, sizeof(*rep));
	if (idset_init(&t.ids, o->n_accepted + 1024) < 0 || idset_init(&t.keys, o->n_accepted + 1024) < 0) {
		free(t.ids.slots);
		free(skus);
		return -ENOMEM;
	}
	rc = read_topic(o, skus, n, &t);
	if (rc < 0)
		goto out;

	long long oversold = 0, unbalanced = 0, over_limit = 0, users_mismatch = 0, pending = 0;
	long long sold = 0, topic_units = 0, initial = 0, stranded = 0, xfers = 0;
	const char *bad_sku = NULL;
	for (size_t i = 0; i < n; i++) {
		struct sku *s = &skus[i];
		/* Units in transit between buckets are neither stock nor sold. */
		if (s->min_bucket_stock < 0 || s->sold > s->initial || s->stock + s->sold + s->moved != s->initial) {
			oversold++;
			bad_sku = s->name;
		}
		if (s->topic_units != s->sold)
			unbalanced++;
		over_limit += s->users_over;
		users_mismatch += s->users_units != s->sold;
		pending += s->pending;
		stranded += s->moved;
		xfers += s->xfers;
		sold += s->sold;
		topic_units += s->topic_units;
		initial += s->initial;
	}
	uint64_t lost = 0;
	for (size_t i = 0; i < o->n_accepted; i++)
		lost += !idset_has(&t.ids, o->accepted_ids[i]);

	fprintf(out, "verify: %zu SKUs (prefix '%s', %lld units loaded), topic %s: %llu records read, "
		     "%llu of this sale\n",
		n, o->sku_prefix, initial, o->topic, (unsigned long long)t.records,
		(unsigned long long)t.in_scope);
	snprintf(d, sizeof(d), "%lld SKUs with stock < 0 or sold + stock + in transit != initial%s%s", oversold,
		 bad_sku ? ", e.g. " : "", bad_sku ? bad_sku : "");
	fails += check(rep, out, n > 0 && oversold == 0, "no SKU oversold", n ? d : "no SKUs found");
	snprintf(d, sizeof(d), "%lld users over their limit, %lld SKUs whose users' units != sold",
		 over_limit, users_mismatch);
	fails += check(rep, out, over_limit == 0 && users_mismatch == 0, "no user over the per-user limit", d);
	snprintf(d, sizeof(d), "%llu duplicates, %llu undecodable records",
		 (unsigned long long)t.duplicates, (unsigned long long)t.undecodable);
	fails += check(rep, out, t.duplicates == 0 && t.undecodable == 0, "no order id twice in the topic", d);
	snprintf(d, sizeof(d), "%llu of %zu accepted orders missing from the topic",
		 (unsigned long long)lost, o->n_accepted);
	fails += check(rep, out, lost == 0, "every 202 is in the topic", d);
	if (o->others) {
		snprintf(d, sizeof(d), "%zu orders in the topic, %zu answered 202 to this generator (the others' "
				       "orders are in the topic too)", t.ids.n, o->n_accepted);
		fails += check(rep, out, t.ids.n >= o->n_accepted, "orders in the topic >= 202s seen", d);
		snprintf(d, sizeof(d), "%lld units in the topic, %lld sold in Redis, %llu units answered 202 here, "
				       "%lld SKUs differ",
			 topic_units, sold, (unsigned long long)o->accepted_units, unbalanced);
		fails += check(rep, out, unbalanced == 0 && topic_units == sold &&
					    (unsigned long long)sold >= o->accepted_units,
			       "stock consumed == units in the topic >= units accepted", d);
	} else if (o->reconciled) {
		snprintf(d, sizeof(d), "%zu orders in the topic, %zu answered 202, %zu without a 202 (the gateway crashed before answering, or reconcile published them)",
			 t.ids.n, o->n_accepted, t.ids.n - (o->n_accepted - lost));
		fails += check(rep, out, t.ids.n >= o->n_accepted, "orders in the topic >= 202s seen", d);
		snprintf(d, sizeof(d), "%lld units in the topic, %lld sold in Redis, %lld SKUs differ",
			 topic_units, sold, unbalanced);
		fails += check(rep, out, unbalanced == 0 && topic_units == sold,
			       "stock consumed == units in the topic", d);
	} else if (o->abandoned) {
		/* An order its client abandoned may have been accepted all the
		 * same: in the topic, sold, never seen. At most one per abandon. */
		size_t unseen = t.ids.n - (o->n_accepted - lost);
		snprintf(d, sizeof(d), "%zu orders in the topic, %zu answered 202, %zu without a 202 (of %llu "
				       "abandoned by their clients)",
			 t.ids.n, o->n_accepted, unseen, (unsigned long long)o->abandoned);
		fails += check(rep, out, t.ids.n >= o->n_accepted && unseen <= o->abandoned,
			       "orders in the topic == 202s seen + some abandoned", d);
		snprintf(d, sizeof(d), "%lld units in the topic, %lld sold in Redis, %llu units answered 202, "
				       "%lld SKUs differ",
			 topic_units, sold, (unsigned long long)o->accepted_units, unbalanced);
		fails += check(rep, out, unbalanced == 0 && topic_units == sold &&
					    (unsigned long long)sold >= o->accepted_units,
			       "stock consumed == units in the topic >= units accepted", d);
	} else {
		snprintf(d, sizeof(d), "%zu orders in the topic, %zu answered 202", t.ids.n, o->n_accepted);
		fails += check(rep, out, t.ids.n == o->n_accepted, "orders in the topic == 202s seen", d);
		snprintf(d, sizeof(d), "%lld units in the topic, %lld sold in Redis, %llu units answered 202, "
				       "%lld SKUs differ",
			 topic_units, sold, (unsigned long long)o->accepted_units, unbalanced);
		fails += check(rep, out, unbalanced == 0 && topic_units == sold &&
					    (unsigned long long)sold == o->accepted_units,
			       "stock consumed == units in the topic == units accepted", d);
	}
	snprintf(d, sizeof(d), "%lld reservations still pending", pending);
	fails += check(rep, out, pending == 0, "pending ledger empty", d);
	snprintf(d, sizeof(d), "%lld units taken from a bucket and not given to another, %lld transfers "
			       "in the donors' ledgers", stranded, xfers);
	fails += check(rep, out, stranded == 0 && xfers == 0, "no units stranded between buckets", d);
	if (o->have_client)
		snprintf(d, sizeof(d), "%llu of %llu keyed orders in the topic reuse a key; %llu keys "
				       "answered with two order ids",
			 (unsigned long long)t.key_reused, (unsigned long long)t.keyed,
			 (unsigned long long)o->key_conflicts);
	else
		snprintf(d, sizeof(d), "%llu of %llu keyed orders in the topic reuse a key",
			 (unsigned long long)t.key_reused, (unsigned long long)t.keyed);
	fails += check(rep, out, t.key_reused == 0 && o->key_conflicts == 0,
		       "each Idempotency-Key made at most one order", d);
	if (o->have_client) {
		snprintf(d, sizeof(d), "%llu of %llu got the status their kind must get",
			 (unsigned long long)o->malformed_ok, (unsigned long long)o->malformed_sent);
		fails += check(rep, out, o->malformed_ok == o->malformed_sent,
			       "every malformed request refused as it must be", d);
	}
	fprintf(out, "verify: %s (%d of %d checks failed)\n", fails ? "FAIL" : "PASS", fails, rep->n);
	rc = fails;
out:
	free(t.ids.slots);
	free(t.keys.slots);
	free(skus);
	return rc;
}
