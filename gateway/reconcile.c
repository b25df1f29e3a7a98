/* reconcile: settle abandoned reservations against the topic. See reconcile.h. */
#include "reconcile.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/bucket.h"
#include "../core/keys.h"
#include "../core/kprops.h"
#include "../core/oid.h"
#include "../core/rcl.h"
#include "../core/order.h"
#include "../core/tscan.h"
#include "script.h"
#include "stock.h"

/* Records can carry timestamps out of order across producers: read from a
 * minute before the oldest entry so none is missed. */
#define SCAN_SLACK_MS 60000

enum outcome { PENDING, IN_TOPIC, PUBLISHED, RELEASED, FAILED };

struct entry {
	struct order_record rec;
	char tag[BKT_TAG_MAX];       /* the SKU bucket whose ledger holds it */
	char idem[ORDER_ID_MAX + 1]; /* the Idempotency-Key that made it, or "" */
	bool claimed;
	enum outcome outcome;
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "user qty ms" or "C user qty ms" */
static int parse_ledger(const char *sku, const char *tag, const char *id, const char *value,
			struct entry *e)
{
	char user[ORDER_ID_MAX + 2], idem[ORDER_ID_MAX + 2] = "";
	unsigned long long qty;
	long long ms;
	memset(e, 0, sizeof(*e));
	if (strncmp(value, "C ", 2) == 0) {
		e->claimed = true;
		value += 2;
	}
	int fields = sscanf(value, "%65s %llu %lld %65s", user, &qty, &ms, idem);
	if (fields < 3 || !order_valid_ident(user, strlen(user)) || qty == 0 || qty > UINT32_MAX ||
	    (fields == 4 && !order_valid_ident(idem, strlen(idem))) ||
	    oid_parse(id, strlen(id), &e->rec.order_id) < 0)
		return -EINVAL;
	strcpy(e->idem, idem);
	strcpy(e->rec.idempotency_key, idem);
	strcpy(e->rec.user_id, user);
	strcpy(e->rec.sku, sku);
	strcpy(e->tag, tag);
	e->rec.qty = (uint32_t)qty;
	e->rec.accepted_at_ms = ms;
	e->rec.node_id = oid_node(e->rec.order_id);
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = ((const struct entry *)a)->rec.order_id, y = ((const struct entry *)b)->rec.order_id;
	return x < y ? -1 : x > y;
}

/* The bucket count sku was loaded with (1 for a SKU loaded before
 * buckets existed) from r, its HGET's reply (NULL: none came), or -EIO. */
static int buckets_of(struct rcl *c, const char *sku, const redisReply *r)
{
	int k = -EIO;
	if (r && (r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_STRING)) {
		k = r->type == REDIS_REPLY_NIL ? 1 : atoi(r->str);
		if (k < 1 || k > BKT_MAX)
			k = -EIO;
	}
	if (k < 0)
		fprintf(stderr, "flashgate: reconcile: the bucket count of SKU %s: %s\n", sku,
			!r ? rcl_error(c) : r->type == REDIS_REPLY_ERROR ? r->str : "unreadable");
	return k;
}

/* One bucket's ledger, read whole: its pending orders or its outgoing
 * transfers. tag is the bucket's, k the SKU's bucket count. */
typedef int (*bucket_fn)(struct rcl *c, const char *sku, const char *tag, int k, const char *key,
			 const redisReply *h, void *arg);

/* SKUs whose buckets one pipeline reads: the walk's memory stays small
 * whatever the catalogue's size. */
#define WALK_SKUS 64

/* each_bucket for m SKUs: their bucket counts in one pipeline, then their
 * buckets' ledgers in another. */
static int walk_skus(struct rcl *c, bool xfer, redisReply *const *sku, size_t m, bucket_fn fn, void *arg)
{
	struct rcl_cmd count[WALK_SKUS];
	char key[WALK_SKUS][KEYS_MAX];
	int k[WALK_SKUS];
	size_t total = 0;
	for (size_t i = 0; i < m; i++) {
		snprintf(key[i], KEYS_MAX, KEYS_SKU_FMT, sku[i]->str);
		count[i] = rcl_cmd_key("HGET", key[i], "buckets");
	}
	int rc = rcl_pipeline(c, count, m);
	if (rc < 0)
		fprintf(stderr, "flashgate: reconcile: reading bucket counts: %s\n", rcl_error(c));
	for (size_t i = 0; i < m; i++) {
		if (rc >= 0 && (k[i] = buckets_of(c, sku[i]->str, count[i].reply)) < 0)
			rc = k[i];
		total += rc >= 0 ? (size_t)k[i] : 0;
		freeReplyObject(count[i].reply);
	}
	if (rc < 0)
		return rc;

	struct ledger {
		char tag[BKT_TAG_MAX], key[KEYS_MAX];
		unsigned sku;
	} *lg = calloc(total ? total : 1, sizeof(*lg));
	struct rcl_cmd *read = calloc(total ? total : 1, sizeof(*read));
	if (!lg || !read) {
		free(lg);
		free(read);
		return -ENOMEM;
	}
	size_t j = 0;
	for (size_t i = 0; i < m; i++) {
		for (int b = 0; b < k[i]; b++, j++) {
			bkt_tag(lg[j].tag, sku[i]->str, (unsigned)b);
			snprintf(lg[j].key, KEYS_MAX, xfer ? KEYS_XFER_FMT : KEYS_PENDING_FMT, lg[j].tag);
			lg[j].sku = (unsigned)i;
			read[j] = rcl_cmd_key("HGETALL", lg[j].key, NULL);
		}
	}
	if ((rc = rcl_pipeline(c, read, total)) < 0)
		fprintf(stderr, "flashgate: reconcile: reading ledgers: %s\n", rcl_error(c));
	for (j = 0; j < total; j++) {
		const redisReply *h = read[j].reply;
		if (rc >= 0 && (!h || h->type != REDIS_REPLY_ARRAY)) {
			fprintf(stderr, "flashgate: reconcile: HGETALL %s: %s\n", lg[j].key,
				!h ? rcl_error(c) : h->type == REDIS_REPLY_ERROR ? h->str : "unexpected reply");
			rc = -EIO;
		}
		if (rc >= 0)
			rc = fn(c, sku[lg[j].sku]->str, lg[j].tag, k[lg[j].sku], lg[j].key, h, arg);
		freeReplyObject(read[j].reply);
	}
	free(lg);
	free(read);
	return rc;
}

/* Calls fn for every bucket of every loaded SKU with that bucket's
 * pending ledger (xfer false) or transfer ledger (xfer true); stops at the
 * first failure. */
static int each_bucket(struct rcl *c, bool xfer, bucket_fn fn, void *arg)
{
	redisReply *skus = rcl_command(c, KEYS_SKU_SET, "SMEMBERS %s", KEYS_SKU_SET);
	if (!skus || skus->type != REDIS_REPLY_ARRAY) {
		fprintf(stderr, "flashgate: reconcile: SMEMBERS %s: %s\n", KEYS_SKU_SET,
			skus && skus->type == REDIS_REPLY_ERROR ? skus->str : rcl_error(c));
		freeReplyObject(skus);
		return -EIO;
	}
	int rc = 0;
	for (size_t first = 0; first < skus->elements && rc >= 0; first += WALK_SKUS)
		rc = walk_skus(c, xfer, skus->element + first,
			       skus->elements - first < WALK_SKUS ? skus->elements - first : WALK_SKUS, fn, arg);
	freeReplyObject(skus);
	return rc < 0 ? rc : 0;
}

struct ledger_walk {
	int64_t older_than;
	struct entries *es;
	size_t *total;
};

/* Keeps the old entries of one bucket's pending ledger. */
static int read_bucket_ledger(struct rcl *c, const char *sku, const char *tag, int k, const char *key,
			      const redisReply *h, void *arg)
{
	(void)c;
	(void)k;
	struct ledger_walk *lw = arg;
	struct entries *es = lw->es;
	for (size_t j = 0; j + 1 < h->elements; j += 2) {
		struct entry e;
		(*lw->total)++;
		if (parse_ledger(sku, tag, h->element[j]->str, h->element[j + 1]->str, &e) < 0) {
			fprintf(stderr, "flashgate: reconcile: %s %s: malformed entry '%s', left alone\n", key,
				h->element[j]->str, h->element[j + 1]->str);
			continue;
		}
		if (e.rec.accepted_at_ms > lw->older_than)
			continue; /* young: its gateway is still on it */
		if (es->n == es->cap) {
			size_t cap = es->cap ? 2 * es->cap : 256;
			struct entry *grown = realloc(es->v, cap * sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			es->v = grown;
			es->cap = cap;
		}
		es->v[es->n++] = e;
	}
	return 0;
}

static int read_ledger(struct rcl *c, int64_t older_than, struct entries *es, size_t *total)
{
	struct ledger_walk lw = {.older_than = older_than, .es = es, .total = total};
	return each_bucket(c, false, read_bucket_ledger, &lw);
}

static int on_record(void *arg, const char *payload, size_t len)
{
	struct entries *es = arg;
	struct order_record rec;
	if (order_decode_record(payload, len, &rec) < 0)
		return 0; /* not ours to judge */
	struct entry key = {.rec.order_id = rec.order_id};
	struct entry *e = bsearch(&key, es->v, es->n, sizeof(*es->v), cmp_id);
	if (e)
		e->outcome = IN_TOPIC;
	return 0;
}

static int redis_int(struct rcl *c, redisReply *r, const char *what, long long *out)
{
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		fprintf(stderr, "flashgate: reconcile: %s: %s\n", what,
			!r ? rcl_error(c) : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		freeReplyObject(r);
		return -EIO;
	}
	*out = r->integer;
	freeReplyObject(r);
	return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	struct entry *e = m->_private;
	e->outcome = m->err ? FAILED : PUBLISHED;
	if (m->err) {
		char id[OID_TEXT_LEN + 1];
		oid_format(e->rec.order_id, id);
		fprintf(stderr, "flashgate: reconcile: publishing %s: %s\n", id, rd_kafka_err2str(m->err));
	}
}

/* The brokers, and how to reach them. */
static struct kprops reconcile_kafka(const struct cfg *cfg)
{
	return (struct kprops){cfg->kafka_brokers, cfg->kafka_properties, cfg->kafka_client_properties};
}

static rd_kafka_t *new_producer(const struct cfg *cfg)
{
	char err[512], num[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	snprintf(num, sizeof(num), "%u", cfg->kafka_message_timeout_ms);
	const struct kprops kp = reconcile_kafka(cfg);
	if (kprops_apply(&kp, conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "flashgate: reconcile: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	const char *kv[][2] = {
		{"client.id", "flashgate-reconcile"},
		{"acks", "all"}, {"enable.idempotence", "true"}, {"message.timeout.ms", num},
	};
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
			fprintf(stderr, "flashgate: reconcile: kafka %s: %s\n", kv[i][0], err);
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "flashgate: reconcile: kafka producer: %s\n", err);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/* The lock (fg:reconcile:lock) is a lease: the pass renews it between
 * steps and while the topic scan waits, so a holder that died lets go
 * within the lease, not after the longest pass a live one could make. The
 * lease outlasts the longest wait between two renewals, one Redis command
 * (redis.timeout_ms) or a second of librdkafka, with room to spare. */
#define LEASE_RENEW_MS 1000

static int64_t lease_ms(const struct cfg *cfg)
{
	return 15000 + 2 * (int64_t)cfg->redis_timeout_ms;
}

struct lease {
	struct rcl *c; /* NULL: no lock held (a dry run) */
	const struct cfg *cfg;
	const char *owner;
	int64_t renewed_ms;
	bool lost;
};

static const char lock_renew_lua[] =
	SCRIPT_ALLOW_OOM
	"if redis.call('GET', KEYS[1]) ~= 'run ' .. ARGV[1] then return 0 end\n"
	"return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n";

/* 0 while the lock is ours (renewed when LEASE_RENEW_MS have passed),
 * -ENOLCK once it is not (it expired: this holder stalled past its lease,
 * and another pass may run), -EIO when Redis did not answer. */
static int lease_renew(struct lease *l)
{
	if (!l->c)
		return 0;
	if (l->lost)
		return -ENOLCK;
	int64_t now = now_ms();
	if (now - l->renewed_ms < LEASE_RENEW_MS)
		return 0;
	long long ours;
	if (redis_int(l->c,
		      rcl_command(l->c, KEYS_RECONCILE_LOCK, "EVAL %s 1 %s %s %lld", lock_renew_lua,
				  KEYS_RECONCILE_LOCK, l->owner, (long long)lease_ms(l->cfg)),
		      "renewing " KEYS_RECONCILE_LOCK, &ours) < 0)
		return -EIO;
	l->renewed_ms = now;
	if (!ours) {
		l->lost = true;
		fprintf(stderr, "flashgate: reconcile: %s expired under this pass (stalled past its lease "
				"of %lld ms): it stops\n",
			KEYS_RECONCILE_LOCK, (long long)lease_ms(l->cfg));
		return -ENOLCK;
	}
	return 0;
}

static int lease_tick(void *arg)
{
	return lease_renew(arg);
}

/* Takes the lock unless a pass runs, or rests and ARGV[3] is 0: 1 when
 * taken, else the holder's value. The lock scripts run on a Redis at
 * maxmemory (a key of a few bytes): a pass is what settles the ledger
 * there, whose scripts run too (script.h). */
static const char lock_take_lua[] =
	SCRIPT_ALLOW_OOM
	"local v = redis.call('GET', KEYS[1])\n"
	"if v and (ARGV[3] == '0' or string.sub(v, 1, 5) ~= 'rest ') then return v end\n"
	"redis.call('SET', KEYS[1], 'run ' .. ARGV[1], 'PX', ARGV[2])\n"
	"return 1\n";

/* Lets go of the lock if still ours: deleted (ARGV[2] 0) or resting for
 * ARGV[2] ms. */
static const char lock_leave_lua[] =
	SCRIPT_ALLOW_OOM
	"if redis.call('GET', KEYS[1]) ~= 'run ' .. ARGV[1] then return 0 end\n"
	"if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end\n"
	"redis.call('SET', KEYS[1], 'rest ' .. ARGV[1], 'PX', ARGV[2])\n"
	"return 1\n";

/* 0 with the lock taken, -EBUSY after lock_wait_ms, -EIO. */
static int lock_take(struct rcl *c, const struct cfg *cfg, const struct reconcile_opts *o, FILE *out)
{
	int64_t give_up = now_ms() + o->lock_wait_ms;
	bool told = false;
	for (;;) {
		redisReply *r = rcl_command(c, KEYS_RECONCILE_LOCK, "EVAL %s 1 %s %s %lld %d", lock_take_lua,
					    KEYS_RECONCILE_LOCK, o->owner, (long long)lease_ms(cfg),
					    o->lock_rest_ms == 0);
		if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
			freeReplyObject(r);
			return 0;
		}
		if (!r || r->type != REDIS_REPLY_STRING) {
			fprintf(stderr, "flashgate: reconcile: taking %s: %s\n", KEYS_RECONCILE_LOCK,
				!r ? rcl_error(c) : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
			freeReplyObject(r);
			return -EIO;
		}
		if (now_ms() >= give_up) {
			if (!o->quiet)
				fprintf(stderr, "flashgate: reconcile: another pass holds %s (%s); try again later\n",
					KEYS_RECONCILE_LOCK, r->str);
			freeReplyObject(r);
			return -EBUSY;
		}
		if (!told && !o->quiet)
			fprintf(out, "reconcile: waiting for another pass (%s) to finish\n", r->str);
		told = true;
		freeReplyObject(r);
		usleep(100 * 1000);
	}
}

/* A gateway's pass keeps the others off for its interval, or for
 * REST_PER_PASS times its own length when that is longer (up to
 * REST_MAX_MS): on a catalogue so large that a pass takes more than a
 * twentieth of the interval, passes space out instead of taking that much
 * of Redis's time. */
#define REST_PER_PASS 20
#define REST_MAX_MS (10 * 60 * 1000)

static uint32_t rest_after(const struct reconcile_opts *o, int64_t took_ms, FILE *out)
{
	int64_t rest = took_ms * REST_PER_PASS;
	if (o->lock_rest_ms == 0 || rest <= (int64_t)o->lock_rest_ms)
		return o->lock_rest_ms;
	if (rest > REST_MAX_MS)
		rest = o->lock_rest_ms > REST_MAX_MS ? o->lock_rest_ms : REST_MAX_MS;
	fprintf(out, "reconcile: the pass took %lld ms: the next one in %lld ms, not %u (a pass takes at most "
		     "1/%d of the time)\n",
		(long long)took_ms, (long long)rest, o->lock_rest_ms, REST_PER_PASS);
	return (uint32_t)rest;
}

static void lock_leave(struct rcl *c, const struct reconcile_opts *o, uint32_t rest_ms)
{
	redisReply *r = rcl_command(c, KEYS_RECONCILE_LOCK, "EVAL %s 1 %s %s %u", lock_leave_lua,
				    KEYS_RECONCILE_LOCK, o->owner, rest_ms);
	/* Not fatal: the lock expires by itself, only later. */
	if (!r || r->type != REDIS_REPLY_INTEGER)
		fprintf(stderr, "flashgate: reconcile: letting go of %s: %s (it expires by itself)\n",
			KEYS_RECONCILE_LOCK,
			!r ? rcl_error(c) : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	freeReplyObject(r);
}

/* Claims, publishes and confirms the entries missing from the topic. Stops
 * claiming when the lease is lost, but what it produced it still flushes:
 * those records are out and must be acknowledged or failed. */
static int complete(struct rcl *c, const struct cfg *cfg, struct entries *es, int64_t timeout_ms,
		    struct lease *ls)
{
	rd_kafka_t *rk = new_producer(cfg);
	if (!rk)
		return -EINVAL;
	int rc = 0;
	char records[ORDER_RECORD_MAX];
	for (size_t i = 0; i < es->n; i++) {
		struct entry *e = &es->v[i];
		if (e->outcome != PENDING)
			continue;
		if ((rc = lease_renew(ls)) < 0)
			break;
		char key[KEYS_MAX], id[OID_TEXT_LEN + 1];
		long long claimed;
		snprintf(key, sizeof(key), KEYS_PENDING_FMT, e->tag);
		oid_format(e->rec.order_id, id);
		if (redis_int(c, rcl_command(c, key, "EVAL %s 1 %s %s", script_claim_lua, key, id), "claim",
			      &claimed) < 0) {
			rc = -EIO;
			break;
		}
		if (claimed == 0) {
			e->outcome = IN_TOPIC; /* settled meanwhile by its gateway */
			continue;
		}
		int n = order_encode_record(records, sizeof(records), &e->rec);
		rd_kafka_resp_err_t err = n < 0 ? RD_KAFKA_RESP_ERR__BAD_MSG
			: rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(cfg->kafka_topic),
					    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					    RD_KAFKA_V_KEY(e->rec.user_id, strlen(e->rec.user_id)),
					    RD_KAFKA_V_VALUE(records, (size_t)n),
					    RD_KAFKA_V_TIMESTAMP(e->rec.accepted_at_ms), RD_KAFKA_V_OPAQUE(e),
					    RD_KAFKA_V_END);
		if (err) {
			fprintf(stderr, "flashgate: reconcile: producing %s: %s\n", id, rd_kafka_err2str(err));
			e->outcome = FAILED;
			rc = -EIO;
		}
	}
	/* A second at a time, renewing the lease between. */
	int64_t flush_by = now_ms() + timeout_ms;
	while (rd_kafka_flush(rk, LEASE_RENEW_MS) != RD_KAFKA_RESP_ERR_NO_ERROR && now_ms() < flush_by)
		if (lease_renew(ls) == -EIO)
			break; /* Redis is gone too: the records time out by themselves */
	if (rd_kafka_outq_len(rk) > 0) {
		fprintf(stderr, "flashgate: reconcile: %d records not acknowledged in time\n",
			rd_kafka_outq_len(rk));
		rc = -ETIMEDOUT;
	}
	rd_kafka_destroy(rk);
	return rc;
}

struct xfer_walk {
	int64_t older_than, oldest_giveable;
	bool dry_run;
	size_t found, young, finished, too_old;
	unsigned long long units;
};

/* Gives the units of each old transfer in one donor's ledger ("to_bucket
 * units ms") to its bucket (give is idempotent through the arrival mark)
 * and removes the entry: what a crash between the two halves of a
 * transfer left. */
static int finish_bucket_transfers(struct rcl *c, const char *sku, const char *tag, int k, const char *xfer,
				   const redisReply *h, void *arg)
{
	(void)tag;
	struct xfer_walk *xw = arg;
	for (size_t j = 0; j + 1 < h->elements; j += 2) {
		const char *xid = h->element[j]->str;
		unsigned to;
		unsigned long long n;
		long long ms;
		xw->found++;
		if (sscanf(h->element[j + 1]->str, "%u %llu %lld", &to, &n, &ms) != 3 || to >= (unsigned)k) {
			fprintf(stderr, "flashgate: reconcile: %s %s: malformed transfer '%s', left alone\n", xfer, xid,
				h->element[j + 1]->str);
			continue;
		}
		char to_tag[BKT_TAG_MAX];
		bkt_tag(to_tag, sku, to);
		if (ms > xw->older_than) {
			xw->young++;
			continue;
		}
		if (ms < xw->oldest_giveable) {
			/* Its arrival mark may have expired: giving could count it twice. */
			fprintf(stderr, "flashgate: reconcile: %s %s: %llu units in transit for more than "
					"%d days; check " KEYS_SKU_FMT " by hand\n",
				xfer, xid, n, KEYS_XFER_GIVE_MAX_S / 86400, to_tag);
			xw->too_old++;
			continue;
		}
		if (!xw->dry_run) {
			char k1[KEYS_MAX], k2[KEYS_MAX];
			long long given, gone;
			snprintf(k1, sizeof(k1), KEYS_SKU_FMT, to_tag);
			snprintf(k2, sizeof(k2), KEYS_XIN_FMT, to_tag, xid);
			if (redis_int(c, rcl_command(c, k1, "EVAL %s 2 %s %s %llu %d", script_give_lua, k1, k2, n,
						      KEYS_XIN_TTL_S), "transfer give", &given) < 0 ||
			    redis_int(c, rcl_command(c, xfer, "HDEL %s %s", xfer, xid), "transfer done", &gone) < 0)
				return -EIO;
			n = given == 1 ? n : 0;
		}
		xw->finished++;
		xw->units += n;
	}
	return 0;
}

static int finish_transfers(struct rcl *c, int64_t older_than, const struct reconcile_opts *o, FILE *out,
			    struct reconcile_tally *tally)
{
	bool dry_run = o->dry_run;
	struct xfer_walk xw = {
		.older_than = older_than,
		.oldest_giveable = now_ms() - (int64_t)KEYS_XFER_GIVE_MAX_S * 1000,
		.dry_run = dry_run,
	};
	int rc = each_bucket(c, true, finish_bucket_transfers, &xw);
	if (!dry_run) {
		tally->transfers += xw.finished;
		tally->transfer_units += xw.units;
	}
	/* Young transfers are a sale at work: quiet passes say nothing of them. */
	if (xw.found && (!o->quiet || xw.finished || xw.too_old))
		fprintf(out, "reconcile: %zu transfers between buckets in flight, %zu young; %zu %s (%llu units "
			     "given), %zu too old to give safely\n",
			xw.found, xw.young, xw.finished, dry_run ? "to finish" : "finished", xw.units, xw.too_old);
	if (rc == 0 && xw.too_old)
		rc = -EAGAIN;
	return rc;
}

void reconcile_owner(char *out, size_t len, const char *role)
{
	char host[64];
	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(out, len, "%s@%s/%ld", role, host, (long)getpid());
}

int reconcile_run(const struct cfg *cfg, const struct reconcile_opts *o, FILE *out,
		  struct reconcile_tally *tally)
{
	struct entries es = {0};
	struct reconcile_tally scratch = {0};
	size_t total = 0;
	int rc = 0;
	int xfer_rc = 0;
	bool locked = false;
	int64_t started_ms = 0; /* once locked: how long the pass took */
	struct lease ls = {.cfg = cfg, .owner = o->owner};
	int64_t min_age = o->min_age_ms >= 0 ? o->min_age_ms : 2 * (int64_t)cfg->kafka_message_timeout_ms;
	int64_t older_than;

	if (!tally)
		tally = &scratch;
	char err[512];
	struct rcl *c = stock_connect(cfg);
	if (!c)
		return -ECONNREFUSED;
	if (!o->dry_run) {
		if ((rc = lock_take(c, cfg, o, out)) < 0)
			goto out;
		locked = true;
	}
	started_ms = now_ms();
	ls.c = locked ? c : NULL;
	ls.renewed_ms = now_ms();
	/* After the lock: a wait must not make young entries look old. */
	older_than = now_ms() - min_age;
	/* Transfers first: a transfer left in flight is stock no order can
	 * take; -EAGAIN (some too old to give) still lets the ledger run. */
	if ((xfer_rc = finish_transfers(c, older_than, o, out, tally)) < 0 && xfer_rc != -EAGAIN) {
		rc = xfer_rc;
		goto out;
	}
	if ((rc = lease_renew(&ls)) < 0 || (rc = read_ledger(c, older_than, &es, &total)) < 0 ||
	    (rc = lease_renew(&ls)) < 0)
		goto out;
	if (!o->quiet || es.n)
		fprintf(out, "reconcile: %zu pending reservations, %zu older than %lld ms\n", total, es.n,
			(long long)min_age);
	if (es.n == 0)
		goto out;

	qsort(es.v, es.n, sizeof(*es.v), cmp_id);
	int64_t since = INT64_MAX;
	for (size_t i = 0; i < es.n; i++)
		if (es.v[i].rec.accepted_at_ms < since)
			since = es.v[i].rec.accepted_at_ms;
	struct tscan_ctl scan = {.stop = o->stop, .tick = lease_tick, .arg = &ls};
	const struct kprops kp = reconcile_kafka(cfg);
	long long scanned = tscan_read(&kp, cfg->kafka_topic, since - SCAN_SLACK_MS, 120, &scan,
				       on_record, &es, err, sizeof(err));
	if (scanned < 0) {
		fprintf(stderr, "flashgate: reconcile: %s\n", err);
		rc = (int)scanned;
		goto out;
	}
	fprintf(out, "reconcile: read %lld records of %s from %lld ms\n", scanned, cfg->kafka_topic,
		(long long)(since - SCAN_SLACK_MS));
	if (o->dry_run) {
		size_t in_topic = 0;
		for (size_t i = 0; i < es.n; i++)
			in_topic += es.v[i].outcome == IN_TOPIC;
		fprintf(out, "reconcile: dry run: %zu to confirm, %zu to %s\n", in_topic, es.n - in_topic,
			o->release ? "release" : "publish");
		goto out;
	}

	/* Release, unless a complete already claimed the entry: then finish it. */
	if (o->release) {
		for (size_t i = 0; i < es.n && rc == 0; i++) {
			struct entry *e = &es.v[i];
			if (e->outcome != PENDING || e->claimed)
				continue;
			if ((rc = lease_renew(&ls)) < 0)
				break;
			char k1[KEYS_MAX], k2[KEYS_MAX], k3[KEYS_MAX], k4[KEYS_MAX], id[OID_TEXT_LEN + 1];
			long long released = 0;
			snprintf(k1, sizeof(k1), KEYS_SKU_FMT, e->tag);
			snprintf(k2, sizeof(k2), KEYS_USERS_FMT, e->tag);
			snprintf(k3, sizeof(k3), KEYS_PENDING_FMT, e->tag);
			snprintf(k4, sizeof(k4), KEYS_IDEM_FMT, e->tag, strlen(e->rec.user_id), e->rec.user_id, e->idem);
			oid_format(e->rec.order_id, id);
			/* Releasing frees the order's Idempotency-Key: a retry may order anew. */
			redisReply *rr = e->idem[0]
				? rcl_command(c, k1, "EVAL %s 4 %s %s %s %s %s", script_release_lua, k1, k2, k3, k4, id)
				: rcl_command(c, k1, "EVAL %s 3 %s %s %s %s", script_release_lua, k1, k2, k3, id);
			rc = redis_int(c, rr, "release", &released);
			/* 0: its gateway settled it meanwhile; nothing was ours to give back. */
			if (rc == 0)
				e->outcome = released ? RELEASED : IN_TOPIC;
		}
	}
	if (rc == 0)
		rc = complete(c, cfg, &es, 2 * (int64_t)cfg->kafka_message_timeout_ms, &ls);

	size_t confirmed = 0, published = 0, released = 0, failed = 0;
	for (size_t i = 0; i < es.n; i++) {
		struct entry *e = &es.v[i];
		if (e->outcome == IN_TOPIC || e->outcome == PUBLISHED) {
			char pending[KEYS_MAX], orders[KEYS_MAX], id[OID_TEXT_LEN + 1];
			long long gone;
			snprintf(pending, sizeof(pending), KEYS_PENDING_FMT, e->tag);
			snprintf(orders, sizeof(orders), KEYS_ORDERS_FMT, e->tag);
			oid_format(e->rec.order_id, id);
			/* Confirming is idempotent: a lost lease does not stop it
			 * (-ENOLCK goes on); a long list keeps it renewed. */
			if (lease_renew(&ls) == -EIO ||
			    redis_int(c, rcl_command(c, pending, "EVAL %s 2 %s %s %s", script_confirm_lua, pending, orders, id),
				      "confirm", &gone) < 0) {
				rc = -EIO;
				failed++;
				continue;
			}
		}
		confirmed += e->outcome == IN_TOPIC;
		published += e->outcome == PUBLISHED;
		released += e->outcome == RELEASED;
		failed += e->outcome == FAILED || e->outcome == PENDING;
	}
	fprintf(out, "reconcile: %zu already in the topic (confirmed), %zu published, %zu released, "
		     "%zu left for the next run\n",
		confirmed, published, released, failed);
	tally->confirmed += confirmed;
	tally->published += published;
	tally->released += released;
	if (failed && rc == 0)
		rc = -EAGAIN;
out:
	if (rc == 0 && xfer_rc < 0)
		rc = xfer_rc;
	if (locked)
		lock_leave(c, o, rest_after(o, now_ms() - started_ms, out));
	free(es.v);
	rcl_close(c);
	return rc;
}
