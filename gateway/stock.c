/* stock: stock administration and script loading. See stock.h. */
#include "stock.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../core/bucket.h"
#include "../core/keys.h"
#include "../core/oid.h"
#include "../core/rcl.h"
#include "../core/order.h"
#include "../core/stockcsv.h"

/* The value of field ("name:") in an INFO reply, up to its line's end
 * (*len), or NULL. */
static const char *info_field(const redisReply *r, const char *field, size_t *len)
{
	const char *v = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, field) : NULL;
	if (!v)
		return NULL;
	v += strlen(field);
	*len = strcspn(v, "\r\n");
	return v;
}

/* INFO section from the node the client opened with, or NULL (reported). */
static redisReply *info(struct rcl *c, const struct cfg *cfg, const char *section)
{
	redisReply *r = rcl_command(c, NULL, "INFO %s", section);
	if (!r || r->type != REDIS_REPLY_STRING) {
		fprintf(stderr, "flashgate: redis %s:%u INFO %s: %s\n", cfg->redis_host, cfg->redis_port, section,
			!r ? rcl_error(c) : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

struct rcl *stock_connect(const struct cfg *cfg)
{
	char err[300];
	struct rcl *c = rcl_open(cfg->redis_host, cfg->redis_port, cfg->redis_timeout_ms, cfg->redis_user,
				 cfg->redis_password, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "flashgate: %s\n", err);
		return NULL;
	}
	size_t len = 0;
	redisReply *r = info(c, cfg, "server");
	const char *v = info_field(r, "redis_version:", &len);
	bool recent = v && atoi(v) >= SCRIPT_REDIS_MAJOR;
	if (r && !v)
		fprintf(stderr, "flashgate: redis %s:%u INFO server: no redis_version\n", cfg->redis_host,
			cfg->redis_port);
	else if (v && !recent)
		fprintf(stderr, "flashgate: redis %s:%u runs Redis %.*s: flashgate needs %d.0 or later "
				"(its scripts declare flags)\n",
			cfg->redis_host, cfg->redis_port, (int)len, v, SCRIPT_REDIS_MAJOR);
	freeReplyObject(r);
	if (!recent) {
		rcl_close(c);
		return NULL;
	}
	return c;
}

/* 0 unless Redis would evict keys when full: then it would forget stock,
 * per-user counts, ledgers or a transfer's arrival mark (TTL'd, so even
 * the volatile-* policies take it) and sell again what it forgot. Full
 * with noeviction is safe: writes are refused (script.h). */
static int check_eviction(struct rcl *c, const struct cfg *cfg)
{
	size_t max_len, policy_len;
	redisReply *r = info(c, cfg, "memory");
	const char *max = info_field(r, "maxmemory:", &max_len);
	const char *policy = info_field(r, "maxmemory_policy:", &policy_len);
	int rc = r ? 0 : -EIO;
	if (r && (!max || !policy)) {
		fprintf(stderr, "flashgate: redis %s:%u INFO memory: no maxmemory or maxmemory_policy\n",
			cfg->redis_host, cfg->redis_port);
		rc = -EPROTO;
	} else if (r && strtoull(max, NULL, 10) > 0 &&
		   (policy_len != strlen("noeviction") || strncmp(policy, "noeviction", policy_len) != 0)) {
		fprintf(stderr, "flashgate: redis %s:%u evicts keys when full (maxmemory %.*s, maxmemory-policy "
				"%.*s): it would forget stock, per-user counts and ledgers and sell again what it "
				"forgot; set maxmemory-policy noeviction (or maxmemory 0)\n",
			cfg->redis_host, cfg->redis_port, (int)max_len, max, (int)policy_len, policy);
		rc = -EINVAL;
	}
	freeReplyObject(r);
	return rc;
}

/* A reply that is an error or missing, reported; NULL means failure. */
static redisReply *checked(struct rcl *c, redisReply *reply, const char *what)
{
	if (!reply) {
		fprintf(stderr, "flashgate: redis %s: %s\n", what, rcl_error(c));
		return NULL;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "flashgate: redis %s: %s\n", what, reply->str);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
}

/* With [redis] wait_replicas = N, an admin write is done only once N
 * replicas have it (WAIT on the connection that wrote key): a failover
 * right after could lose it otherwise, and a lost `stock set` that lowered
 * the stock would let the SKU oversell. Short: reported, -EAGAIN (the
 * master has it). */
static int replicated(struct rcl *c, const struct cfg *cfg, const char *key, const char *what)
{
	if (cfg->redis_wait_replicas == 0)
		return 0;
	redisReply *r = checked(c, rcl_command(c, key, "WAIT %u %u", cfg->redis_wait_replicas,
						 cfg->redis_wait_timeout_ms), "WAIT");
	if (!r)
		return -EIO;
	long long got = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	freeReplyObject(r);
	if (got >= (long long)cfg->redis_wait_replicas)
		return 0;
	fprintf(stderr,
		"flashgate: %s: written on the master, but %lld of the %u replicas [redis] wait_replicas "
		"asks for acknowledged it within %u ms; a failover now could undo it: check with "
		"`flashgate stock show` once the replicas are back\n",
		what, got, cfg->redis_wait_replicas, cfg->redis_wait_timeout_ms);
	return -EAGAIN;
}

/* The bucket count sku was loaded with: >= 1, -ENOENT when it is not
 * loaded (reported), -EIO. */
static int sku_buckets(struct rcl *c, const char *sku)
{
	char key[KEYS_MAX];
	snprintf(key, sizeof(key), KEYS_SKU_FMT, sku);
	redisReply *r = checked(c, rcl_command(c, key, "HMGET %s stock buckets", key), "HMGET");
	if (!r)
		return -EIO;
	int k = -ENOENT;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING) {
		k = r->element[1]->type == REDIS_REPLY_STRING ? atoi(r->element[1]->str) : 1;
		if (k < 1 || k > BKT_MAX) {
			fprintf(stderr, "flashgate: %s: bad bucket count '%s'\n", key, r->element[1]->str);
			k = -EIO;
		}
	} else {
		fprintf(stderr, "flashgate: unknown SKU '%s' (load it with `stock load` first)\n", sku);
	}
	freeReplyObject(r);
	return k;
}

/* One bucket's keys cleared and, unless ARGV[1] is empty (a bucket of an
 * earlier load with more buckets), its hash written: atomic per bucket. */
static const char load_bucket_lua[] =
	"redis.call('DEL', unpack(KEYS))\n"
	"if ARGV[1] == '' then return 0 end\n"
	"redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'limit', ARGV[2], 'sold', 0, 'initial', ARGV[1],\n"
	"  'loaded_at_ms', ARGV[3], 'starts', ARGV[4], 'ends', ARGV[5], 'buckets', ARGV[6],\n"
	"  'moved_in', 0, 'moved_out', 0)\n"
	"return 1\n";

/* Commands per round trip of a load, and so per transaction on one
 * server: Redis is held for a few milliseconds at a time (a gateway's
 * calls wait behind a transaction), and the client's memory stays the
 * same whatever the file's size. */
#define LOAD_BATCH 256
#define LOAD_WORDS 15 /* EVAL script 6 keys[6] argv[6] */
_Static_assert(BKT_MAX + 3 <= LOAD_BATCH, "a SKU's buckets, a SADD, MULTI and EXEC fit a batch");

/* One bucket's load command and the words it is made of. */
struct bucket_load {
	char key[6][KEYS_MAX];
	char num[6][24];
	const char *argv[LOAD_WORDS];
	size_t len[LOAD_WORDS];
};

struct load {
	struct rcl *c;
	const struct cfg *cfg;
	const struct stock_row *rows;
	size_t n;
	size_t loaded;  /* rows written so far */
	bool writing;   /* the writes began */
	unsigned *old_k;
	struct held *held; /* per row: what Redis holds for it now */
	unsigned flags;    /* STOCK_REPLACE, STOCK_DRY_RUN */
	long long now_ms;
	bool multi;     /* one server: each batch is a transaction */
	char sha[48];   /* load_bucket_lua's */
	struct bucket_load *bl;
	struct rcl_cmd *cmd;
	const char **words; /* SADD's */
	size_t *word_len;
	struct rcl_map *map; /* a cluster: where WAIT goes */
	char wait_key[RCL_MAP_NODES][KEYS_MAX];
};

/* A pipelined command's reply: an error or a missing one is reported,
 * as is one other than status when status is given. */
static int reply_ok(struct rcl *c, const redisReply *r, const char *what, const char *status)
{
	if (!r) {
		fprintf(stderr, "flashgate: redis %s: %s\n", what, rcl_error(c));
		return -EIO;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "flashgate: redis %s: %s\n", what, r->str);
		return -EIO;
	}
	if (status && (r->type != REDIS_REPLY_STATUS || strcmp(r->str, status) != 0)) {
		fprintf(stderr, "flashgate: redis %s: unexpected reply in a transaction\n", what);
		return -EIO;
	}
	return 0;
}

/* The bucket count each of m SKUs was loaded with, in one pipeline: 1 for
 * a SKU not loaded, BKT_MAX for an unreadable count (so that every key it
 * may have is covered). 0, or -errno (reported). */
static int loaded_bucket_counts(struct rcl *c, const char *const *skus, size_t m, unsigned *k, const char *what)
{
	struct rcl_cmd *cmd = calloc(m ? m : 1, sizeof(*cmd));
	char (*key)[KEYS_MAX] = calloc(m ? m : 1, sizeof(*key));
	int rc = cmd && key ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < m; i++) {
		snprintf(key[i], KEYS_MAX, KEYS_SKU_FMT, skus[i]);
		cmd[i] = rcl_cmd_key("HGET", key[i], "buckets");
	}
	if (rc == 0)
		rc = rcl_pipeline(c, cmd, m);
	for (size_t i = 0; i < m && cmd; i++) {
		const redisReply *r = cmd[i].reply;
		if (rc >= 0 && (rc = reply_ok(c, r, what, NULL)) == 0) {
			int was = r->type == REDIS_REPLY_STRING ? atoi(r->str) : 1;
			k[i] = was >= 1 && was <= BKT_MAX ? (unsigned)was : BKT_MAX;
		}
		freeReplyObject(cmd[i].reply);
	}
	if (rc == -ENOMEM)
		fprintf(stderr, "flashgate: %s: out of memory\n", what);
	free(cmd);
	free(key);
	return rc;
}

static int exec_ok(struct rcl *c, const redisReply *r)
{
	int rc = reply_ok(c, r, "stock load", NULL);
	if (rc == 0 && r->type != REDIS_REPLY_ARRAY) {
		fprintf(stderr, "flashgate: redis stock load: the transaction did not run\n");
		rc = -EIO;
	}
	for (size_t i = 0; rc == 0 && i < r->elements; i++)
		rc = reply_ok(c, r->element[i], "stock load", NULL);
	return rc;
}

/* Runs the batch's m commands in one round trip and checks every reply;
 * outside a transaction, remembers a written key per master for WAIT. */
static int run_batch(struct load *ld, size_t m, size_t rows)
{
	int prc = ld->multi ? rcl_pipeline_tx(ld->c, ld->cmd, m) : rcl_pipeline(ld->c, ld->cmd, m), rc = 0;
	for (size_t i = 0; i < m; i++) {
		const redisReply *r = ld->cmd[i].reply;
		if (rc == 0 && ld->multi)
			rc = i == 0 ? reply_ok(ld->c, r, "stock load", "OK")
			: i + 1 < m ? reply_ok(ld->c, r, "stock load", "QUEUED") : exec_ok(ld->c, r);
		else if (rc == 0)
			rc = reply_ok(ld->c, r, "stock load", NULL);
		if (rc == 0 && !ld->multi) {
			const char *key = ld->cmd[i].key;
			snprintf(ld->wait_key[ld->map->slot[rcl_slot(key, strlen(key))]], KEYS_MAX, "%s", key);
		}
		freeReplyObject(ld->cmd[i].reply);
		ld->cmd[i].reply = NULL;
	}
	if (rc == 0 && prc < 0)
		rc = prc;
	if (rc == 0)
		ld->loaded += rows;
	return rc;
}

/* The bucket count each SKU was loaded with before, so that a load with
 * fewer buckets clears the extra ones. */
static int read_old_counts(struct load *ld)
{
	for (size_t at = 0; at < ld->n; at += LOAD_BATCH) {
		size_t m = ld->n - at < LOAD_BATCH ? ld->n - at : LOAD_BATCH;
		for (size_t i = 0; i < m; i++)
			ld->words[i] = ld->rows[at + i].sku;
		int rc = loaded_bucket_counts(ld->c, ld->words, m, &ld->old_k[at], "stock load");
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Bucket b of row: its keys cleared and, unless the new load has fewer
 * buckets, its share written. A transaction's first call carries the
 * script itself, so the EVALSHAs after it cannot meet NOSCRIPT. */
static void bucket_cmd(struct load *ld, struct bucket_load *bl, struct rcl_cmd *cmd,
		       const struct stock_row *row, unsigned b, bool with_source)
{
	unsigned k = ld->cfg->redis_buckets;
	char tag[BKT_TAG_MAX];
	bkt_tag(tag, row->sku, b);
	snprintf(bl->key[0], KEYS_MAX, KEYS_SKU_FMT, tag);
	snprintf(bl->key[1], KEYS_MAX, KEYS_USERS_FMT, tag);
	snprintf(bl->key[2], KEYS_MAX, KEYS_PENDING_FMT, tag);
	snprintf(bl->key[3], KEYS_MAX, KEYS_ORDERS_FMT, tag);
	snprintf(bl->key[4], KEYS_MAX, KEYS_RETURNED_FMT, tag);
	snprintf(bl->key[5], KEYS_MAX, KEYS_XFER_FMT, tag);
	bl->num[0][0] = '\0';
	if (b < k)
		snprintf(bl->num[0], sizeof(bl->num[0]), "%llu", bkt_share(row->stock, k, b));
	snprintf(bl->num[1], sizeof(bl->num[1]), "%llu", row->limit);
	snprintf(bl->num[2], sizeof(bl->num[2]), "%lld", ld->now_ms);
	snprintf(bl->num[3], sizeof(bl->num[3]), "%llu", row->starts);
	snprintf(bl->num[4], sizeof(bl->num[4]), "%llu", row->ends);
	snprintf(bl->num[5], sizeof(bl->num[5]), "%u", k);
	bool source = with_source || !ld->multi;
	bl->argv[0] = source ? "EVAL" : "EVALSHA";
	bl->argv[1] = source ? load_bucket_lua : ld->sha;
	bl->argv[2] = "6";
	for (int i = 0; i < 6; i++) {
		bl->argv[3 + i] = bl->key[i];
		bl->argv[9 + i] = bl->num[i];
	}
	for (int i = 0; i < LOAD_WORDS; i++)
		bl->len[i] = strlen(bl->argv[i]);
	*cmd = (struct rcl_cmd){.key = bl->key[0], .argc = LOAD_WORDS, .many = bl->argv, .many_len = bl->len};
}

static unsigned span_of(const struct load *ld, size_t row)
{
	unsigned k = ld->cfg->redis_buckets;
	return ld->old_k[row] > k ? ld->old_k[row] : k;
}

/* The rows from ld->loaded on, a batch at a time: whole SKUs (all their
 * buckets and their place in the catalogue set), in a transaction on one
 * server, so no SKU is ever seen half loaded. */
static int write_rows(struct load *ld)
{
	ld->writing = true;
	while (ld->loaded < ld->n) {
		size_t m = 0, first = ld->loaded, end = first;
		if (ld->multi)
			ld->cmd[m++] = (struct rcl_cmd){.argc = 1, .argv = {"MULTI"}, .len = {5}};
		/* Room for the SADD and the EXEC; a SKU has at most BKT_MAX buckets. */
		while (end < ld->n && m + span_of(ld, end) + 2 <= LOAD_BATCH) {
			for (unsigned b = 0; b < span_of(ld, end); b++, m++)
				bucket_cmd(ld, &ld->bl[m], &ld->cmd[m], &ld->rows[end], b, m == 1);
			ld->words[2 + end - first] = ld->rows[end].sku;
			end++;
		}
		ld->words[0] = "SADD";
		ld->words[1] = KEYS_SKU_SET;
		for (size_t j = 0; j < end - first + 2; j++)
			ld->word_len[j] = strlen(ld->words[j]);
		ld->cmd[m++] = (struct rcl_cmd){.key = KEYS_SKU_SET, .argc = (int)(end - first + 2),
						.many = ld->words, .many_len = ld->word_len};
		if (ld->multi)
			ld->cmd[m++] = (struct rcl_cmd){.argc = 1, .argv = {"EXEC"}, .len = {4}};
		int rc = run_batch(ld, m, end - first);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* What a SKU of the file holds in Redis now, summed over its buckets. */
struct held {
	bool loaded;
	long long stock, sold, pending;
};

/* ld->held for every row, a batch of pipelined reads at a time: a bucket's
 * stock and sold, and its pending ledger's length. */
static int read_held(struct load *ld)
{
	struct rcl_cmd *cmd = calloc(LOAD_BATCH, sizeof(*cmd));
	char (*key)[KEYS_MAX] = calloc(LOAD_BATCH, sizeof(*key));
	size_t (*row_of) = calloc(LOAD_BATCH, sizeof(*row_of));
	int rc = cmd && key && row_of ? 0 : -ENOMEM;
	for (size_t at = 0; rc == 0 && at < ld->n;) {
		size_t m = 0;
		for (; at < ld->n && m + 2 * ld->old_k[at] <= LOAD_BATCH; at++) {
			for (unsigned b = 0; b < ld->old_k[at]; b++) {
				char tag[BKT_TAG_MAX];
				bkt_tag(tag, ld->rows[at].sku, b);
				snprintf(key[m], KEYS_MAX, KEYS_SKU_FMT, tag);
				cmd[m] = (struct rcl_cmd){.key = key[m], .argc = 4, .argv = {"HMGET", key[m], "stock", "sold"}};
				row_of[m++] = at;
				snprintf(key[m], KEYS_MAX, KEYS_PENDING_FMT, tag);
				cmd[m] = rcl_cmd_key("HLEN", key[m], NULL);
				row_of[m++] = at;
			}
		}
		for (size_t i = 0; i < m; i++)
			for (int w = 0; w < cmd[i].argc; w++)
				cmd[i].len[w] = strlen(cmd[i].argv[w]);
		rc = rcl_pipeline(ld->c, cmd, m);
		for (size_t i = 0; i < m; i++) {
			const redisReply *r = cmd[i].reply;
			struct held *h = &ld->held[row_of[i]];
			if (rc >= 0 && (rc = reply_ok(ld->c, r, "stock load", NULL)) == 0) {
				if (r->type == REDIS_REPLY_INTEGER) {
					h->pending += r->integer;
				} else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
					   r->element[0]->type == REDIS_REPLY_STRING) {
					h->loaded = true;
					h->stock += atoll(r->element[0]->str);
					if (r->element[1]->type == REDIS_REPLY_STRING)
						h->sold += atoll(r->element[1]->str);
				}
			}
			freeReplyObject(cmd[i].reply);
			cmd[i].reply = NULL;
		}
	}
	if (rc == -ENOMEM)
		fprintf(stderr, "flashgate: stock load: out of memory\n");
	free(cmd);
	free(key);
	free(row_of);
	return rc;
}

/* Loading a SKU again resets its counts: its sold units, and every user's
 * count toward the limit (a buyer who had reached hers could buy again).
 * Without --replace that is refused for a SKU that has sold or holds
 * reservations; --dry-run says, SKU by SKU, what a load would do. */
static int judge_replacements(struct load *ld)
{
	size_t fresh = 0, reloaded = 0, resets = 0;
	for (size_t i = 0; i < ld->n; i++) {
		const struct held *h = &ld->held[i];
		const struct stock_row *row = &ld->rows[i];
		bool reset = h->sold > 0 || h->pending > 0;
		fresh += !h->loaded;
		reloaded += h->loaded && !reset;
		resets += reset;
		if (!(ld->flags & STOCK_DRY_RUN))
			continue;
		if (!h->loaded)
			printf("%s: new: stock %llu, per_user_limit %llu\n", row->sku, row->stock, row->limit);
		else if (!reset)
			printf("%s: loaded again, nothing sold yet: stock %lld -> %llu, per_user_limit -> %llu\n",
			       row->sku, h->stock, row->stock, row->limit);
		else
			printf("%s: REPLACES a SKU with sales: stock %lld -> %llu, sold %lld -> 0, %lld pending "
			       "reservations dropped, every user's count reset\n",
			       row->sku, h->stock, row->stock, h->sold, h->pending);
	}
	if (ld->flags & STOCK_DRY_RUN) {
		printf("dry run: %zu SKUs: %zu new, %zu loaded again, %zu with sales%s; nothing written\n", ld->n,
		       fresh, reloaded, resets, resets ? " (--replace needed)" : "");
		return 0;
	}
	if (!resets || (ld->flags & STOCK_REPLACE))
		return 0;
	fprintf(stderr, "flashgate: stock load refused: %zu SKU%s of the file already sold units or hold "
			"reservations, and loading %s again resets %s counts (a buyer who reached her limit could "
			"buy again):",
		resets, resets == 1 ? "" : "s", resets == 1 ? "it" : "them", resets == 1 ? "its" : "their");
	for (size_t i = 0, shown = 0; i < ld->n && shown < 5; i++) {
		const struct held *h = &ld->held[i];
		if (h->sold > 0 || h->pending > 0) {
			fprintf(stderr, "%s %s (sold %lld, pending %lld, line %u)", shown ? "," : "", ld->rows[i].sku,
				h->sold, h->pending, ld->rows[i].line);
			shown++;
		}
	}
	fprintf(stderr, "%s. Nothing was written. `stock add`/`stock set` change what is left to sell; "
			"--dry-run shows what a load would do; --replace loads anyway.\n",
		resets > 5 ? ", ..." : "");
	return -EEXIST;
}

static int write_file(struct load *ld)
{
	redisReply *reply = checked(ld->c, rcl_command(ld->c, NULL, "TIME"), "TIME");
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
		freeReplyObject(reply);
		return -EIO;
	}
	ld->now_ms = strtoll(reply->element[0]->str, NULL, 10) * 1000 +
		     strtoll(reply->element[1]->str, NULL, 10) / 1000;
	freeReplyObject(reply);
	int rc = read_old_counts(ld);
	if (rc < 0 || (rc = read_held(ld)) < 0 || (rc = judge_replacements(ld)) < 0)
		return rc;
	if (ld->flags & STOCK_DRY_RUN)
		return 0;
	if (ld->multi) {
		reply = checked(ld->c, rcl_command(ld->c, NULL, "SCRIPT LOAD %s", load_bucket_lua), "SCRIPT LOAD");
		if (!reply || reply->type != REDIS_REPLY_STRING || reply->len >= sizeof(ld->sha)) {
			freeReplyObject(reply);
			return -EIO;
		}
		memcpy(ld->sha, reply->str, reply->len + 1);
		freeReplyObject(reply);
		rc = write_rows(ld);
		/* WAIT on the connection that wrote covers all it wrote. */
		return rc < 0 ? rc : replicated(ld->c, ld->cfg, NULL, "stock load");
	}
	/* A cluster cannot run a transaction across slots: there each bucket
	 * is written atomically, and WAIT goes to every master written to. */
	if ((rc = rcl_map(ld->c, ld->map)) < 0) {
		fprintf(stderr, "flashgate: %s\n", rcl_error(ld->c));
		return rc;
	}
	rc = write_rows(ld);
	for (unsigned node = 0; node < RCL_MAP_NODES && rc == 0; node++)
		if (ld->wait_key[node][0])
			rc = replicated(ld->c, ld->cfg, ld->wait_key[node], "stock load");
	return rc;
}

int stock_load(const struct cfg *cfg, const char *csv_path, unsigned flags)
{
	struct stockcsv *csv = stockcsv_new();
	FILE *f = csv ? fopen(csv_path, "r") : NULL;
	if (!f) {
		int rc = csv ? -errno : -ENOMEM;
		fprintf(stderr, "flashgate: %s: %s\n", csv_path, strerror(-rc));
		stockcsv_free(csv);
		return rc;
	}
	int rc = stockcsv_read(csv, f);
	fclose(f);
	if (rc < 0) {
		unsigned line;
		const char *why = stockcsv_error(csv, &line);
		if (line)
			fprintf(stderr, "flashgate: %s:%u: %s\n", csv_path, line, why);
		else
			fprintf(stderr, "flashgate: %s: %s\n", csv_path, why);
		stockcsv_free(csv);
		return rc;
	}
	struct load ld = {.cfg = cfg, .flags = flags};
	ld.rows = stockcsv_rows(csv, &ld.n);
	ld.old_k = calloc(ld.n ? ld.n : 1, sizeof(*ld.old_k));
	ld.held = calloc(ld.n ? ld.n : 1, sizeof(*ld.held));
	ld.bl = malloc(LOAD_BATCH * sizeof(*ld.bl));
	ld.cmd = calloc(LOAD_BATCH, sizeof(*ld.cmd));
	ld.words = malloc((LOAD_BATCH + 2) * sizeof(*ld.words));
	ld.word_len = malloc((LOAD_BATCH + 2) * sizeof(*ld.word_len));
	ld.map = malloc(sizeof(*ld.map));
	if (!ld.old_k || !ld.held || !ld.bl || !ld.cmd || !ld.words || !ld.word_len || !ld.map) {
		fprintf(stderr, "flashgate: %s: out of memory\n", csv_path);
		rc = -ENOMEM;
		goto out;
	}
	if (!(ld.c = stock_connect(cfg))) {
		rc = -ECONNREFUSED;
		goto out;
	}
	ld.multi = !rcl_is_cluster(ld.c);
	rc = write_file(&ld);
	unsigned k = cfg->redis_buckets;
	if (rc == 0 && !(flags & STOCK_DRY_RUN)) {
		unsigned long long total = 0;
		for (size_t i = 0; i < ld.n; i++)
			total += ld.rows[i].stock;
		printf("loaded %zu SKUs (%llu units, %u bucket%s each) into redis %s:%u%s\n", ld.n, total, k,
		       k == 1 ? "" : "s", cfg->redis_host, cfg->redis_port, ld.multi ? "" : " (cluster)");
	} else if (ld.writing && ld.loaded < ld.n) {
		/* Each SKU is loaded whole or not at all, a file of more than
		 * one batch is not: say where it stopped. The batch in flight
		 * when Redis failed may have been applied or not. */
		fprintf(stderr, "flashgate: stock load stopped at line %u: the %zu SKUs before it are loaded, "
				"the batch from it on may or may not be, the rest are not; load the file again\n",
			ld.rows[ld.loaded].line, ld.loaded);
	}
out:
	rcl_close(ld.c);
	free(ld.old_k);
	free(ld.held);
	free(ld.bl);
	free(ld.cmd);
	free(ld.words);
	free(ld.word_len);
	free(ld.map);
	stockcsv_free(csv);
	return rc;
}

/* One loaded SKU as `stock show` and `stock list` print it. */
struct sku_state {
	int buckets;
	long long stock, sold, pending, transit;
	char limit[24];
	struct {
		long long stock, sold, pending, transit;
	} bucket[BKT_MAX];
};

/* Reads sku's buckets into *st: 0, -ENOENT (not loaded, said) or -EIO (said). */
static int read_sku(struct rcl *c, const char *sku, struct sku_state *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->limit, sizeof(st->limit), "?");
	int k = sku_buckets(c, sku);
	if (k < 0)
		return k;
	st->buckets = k;
	for (int b = 0; b < k; b++) {
		char tag[BKT_TAG_MAX], key[3][KEYS_MAX];
		int rc = 0;
		bkt_tag(tag, sku, (unsigned)b);
		snprintf(key[0], KEYS_MAX, KEYS_SKU_FMT, tag);
		snprintf(key[1], KEYS_MAX, KEYS_PENDING_FMT, tag);
		snprintf(key[2], KEYS_MAX, KEYS_XFER_FMT, tag);
		redisReply *v[3] = {
			rcl_command(c, key[0], "HMGET %s stock limit sold", key[0]),
			rcl_command(c, key[1], "HLEN %s", key[1]),
			rcl_command(c, key[2], "HVALS %s", key[2]),
		};
		redisReply *h = v[0];
		if (!v[0] || !v[1] || !v[2]) {
			fprintf(stderr, "flashgate: redis stock show: %s\n", rcl_error(c));
			rc = -EIO;
		} else if (h->type != REDIS_REPLY_ARRAY || h->elements != 3 || h->element[0]->type != REDIS_REPLY_STRING ||
			   v[1]->type != REDIS_REPLY_INTEGER || v[2]->type != REDIS_REPLY_ARRAY) {
			fprintf(stderr, "flashgate: SKU '%s': bucket %d of %d is missing or damaged; load it again\n",
				sku, b, k);
			rc = -EIO;
		} else {
			long long transit = 0;
			/* entries "to_bucket units ms" */
			for (size_t j = 0; j < v[2]->elements; j++) {
				const char *sp = strchr(v[2]->element[j]->str, ' ');
				transit += sp ? atoll(sp + 1) : 0;
			}
			if (h->element[1]->type == REDIS_REPLY_STRING)
				snprintf(st->limit, sizeof(st->limit), "%s", h->element[1]->str);
			st->bucket[b].stock = atoll(h->element[0]->str);
			st->bucket[b].sold = h->element[2]->type == REDIS_REPLY_STRING ? atoll(h->element[2]->str) : 0;
			st->bucket[b].pending = v[1]->integer;
			st->bucket[b].transit = transit;
			st->stock += st->bucket[b].stock;
			st->sold += st->bucket[b].sold;
			st->pending += st->bucket[b].pending;
			st->transit += transit;
		}
		for (int j = 0; j < 3; j++)
			freeReplyObject(v[j]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void print_sku(const char *sku, const struct sku_state *st, bool json, FILE *out)
{
	if (json) {
		fprintf(out, "{\"sku\":\"%s\",\"stock\":%lld,\"per_user_limit\":%s,\"sold\":%lld,\"pending\":%lld,"
			     "\"buckets\":%d,\"in_transit\":%lld}",
			sku, st->stock, strcmp(st->limit, "?") ? st->limit : "null", st->sold, st->pending, st->buckets,
			st->transit);
		return;
	}
	fprintf(out, "sku=%s stock=%lld per_user_limit=%s sold=%lld pending=%lld", sku, st->stock, st->limit,
		st->sold, st->pending);
	if (st->buckets <= 1) {
		fputc('\n', out);
		return;
	}
	fprintf(out, " buckets=%d in_transit=%lld\n", st->buckets, st->transit);
	for (int b = 0; b < st->buckets; b++)
		fprintf(out, "  bucket %d: stock=%lld sold=%lld pending=%lld in_transit=%lld\n", b, st->bucket[b].stock,
			st->bucket[b].sold, st->bucket[b].pending, st->bucket[b].transit);
}

int stock_show(const struct cfg *cfg, const char *sku, bool json, FILE *out)
{
	if (!order_valid_ident(sku, strlen(sku))) {
		fprintf(stderr, "flashgate: sku '%s' must be 1-64 characters of A-Z a-z 0-9 . _ : -\n", sku);
		return -EINVAL;
	}
	struct rcl *c = stock_connect(cfg);
	if (!c)
		return -ECONNREFUSED;
	struct sku_state st;
	int rc = read_sku(c, sku, &st);
	if (rc == 0) {
		print_sku(sku, &st, json, out);
		if (json)
			fputc('\n', out);
	}
	rcl_close(c);
	return rc;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int stock_list(const struct cfg *cfg, const char *prefix, bool json, FILE *out)
{
	struct rcl *c = stock_connect(cfg);
	if (!c)
		return -ECONNREFUSED;
	int rc = 0;
	redisReply *all = checked(c, rcl_command(c, KEYS_SKU_SET, "SMEMBERS %s", KEYS_SKU_SET), "SMEMBERS");
	const char **names = all && all->type == REDIS_REPLY_ARRAY ? calloc(all->elements + 1, sizeof(*names)) : NULL;
	if (!names) {
		rc = all ? -ENOMEM : -EIO;
		goto out;
	}
	size_t n = 0, plen = prefix ? strlen(prefix) : 0;
	for (size_t i = 0; i < all->elements; i++)
		if (all->element[i]->type == REDIS_REPLY_STRING && strncmp(all->element[i]->str, prefix ? prefix : "", plen) == 0)
			names[n++] = all->element[i]->str;
	qsort(names, n, sizeof(*names), by_name);
	if (json)
		fputc('[', out);
	struct sku_state st;
	size_t shown = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if ((rc = read_sku(c, names[i], &st)) == -ENOENT) {
			rc = 0; /* in the catalogue set, its keys gone: a half-done load, said above */
			continue;
		}
		if (rc == 0 && json && shown)
			fputc(',', out);
		if (rc == 0) {
			print_sku(names[i], &st, json, out);
			shown++;
		}
	}
	if (json)
		fputs("]\n", out);
	else if (rc == 0)
		fprintf(out, "%zu SKU%s%s%s\n", shown, shown == 1 ? "" : "s", prefix ? " starting with " : "",
			prefix ? prefix : "");
out:
	free(names);
	freeReplyObject(all);
	rcl_close(c);
	return rc;
}

/* Runs an admin script on each bucket of one loaded SKU with the bucket's
 * share of a unit count; both scripts keep sold + stock == initial +
 * moved_in - moved_out per bucket. Units a transfer is carrying when this
 * runs arrive afterwards, on top. */
static int adjust_stock(const struct cfg *cfg, const char *sku, const char *units, unsigned long long min,
			const char *lua, const char *what, FILE *out)
{
	unsigned long long n;
	if (!order_valid_ident(sku, strlen(sku))) {
		fprintf(stderr, "flashgate: sku '%s' must be 1-64 characters of A-Z a-z 0-9 . _ : -\n", sku);
		return -EINVAL;
	}
	if (stockcsv_u64(units, STOCKCSV_STOCK_MAX, &n) < 0 || n < min) {
		fprintf(stderr, "flashgate: units '%s' must be an integer %llu..%llu\n", units, min,
			STOCKCSV_STOCK_MAX);
		return -EINVAL;
	}
	struct rcl *c = stock_connect(cfg);
	if (!c)
		return -ECONNREFUSED;
	int k = sku_buckets(c, sku);
	int rc = k < 0 ? k : 0;
	for (int b = 0; b < k && rc == 0; b++) {
		char tag[BKT_TAG_MAX], key[KEYS_MAX];
		bkt_tag(tag, sku, (unsigned)b);
		snprintf(key, sizeof(key), KEYS_SKU_FMT, tag);
		redisReply *r = checked(c, rcl_command(c, key, "EVAL %s 1 %s %llu", lua, key,
							 bkt_share(n, (unsigned)k, (unsigned)b)), what);
		if (!r) {
			rc = -EIO;
		} else if (r->type != REDIS_REPLY_INTEGER) {
			fprintf(stderr, "flashgate: redis %s: unexpected reply\n", what);
			rc = -EIO;
		} else if (r->integer < 0) {
			fprintf(stderr, "flashgate: SKU '%s': bucket %d is missing; load it again\n", sku, b);
			rc = -ENOENT;
		}
		if (r)
			freeReplyObject(r);
		if (rc == 0)
			rc = replicated(c, cfg, key, what);
	}
	rcl_close(c);
	return rc < 0 ? rc : stock_show(cfg, sku, false, out);
}

int stock_add(const struct cfg *cfg, const char *sku, const char *units, FILE *out)
{
	static const char add_lua[] =
		SCRIPT_ALLOW_OOM
		"if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
		"redis.call('HINCRBY', KEYS[1], 'initial', ARGV[1])\n"
		"return redis.call('HINCRBY', KEYS[1], 'stock', ARGV[1])\n";
	return adjust_stock(cfg, sku, units, 1, add_lua, "stock add", out);
}

int stock_set(const struct cfg *cfg, const char *sku, const char *units, FILE *out)
{
	/* Units already reserved stay sold (and pending ones settle as usual);
	 * only what is left to sell changes, so initial follows sold. Like
	 * add, it runs on a Redis at maxmemory: it changes fields that exist,
	 * and stopping or restocking a SKU must work there too. */
	static const char set_lua[] =
		SCRIPT_ALLOW_OOM
		"if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
		"local h = redis.call('HMGET', KEYS[1], 'sold', 'moved_in', 'moved_out')\n"
		"local sold, min, mout = tonumber(h[1] or '0'), tonumber(h[2] or '0'), tonumber(h[3] or '0')\n"
		"redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'initial', sold + tonumber(ARGV[1]) - min + mout)\n"
		"return tonumber(ARGV[1])\n";
	return adjust_stock(cfg, sku, units, 0, set_lua, "stock set", out);
}

/* SKUs searched per round of pipelines for an order given without its SKU. */
#define FIND_SKUS 256

/* Whether one of the skus' buckets holds order id in a ledger (settled,
 * returned or pending): their bucket counts in one pipeline, then an
 * HEXISTS per ledger in another. 1 found (tag and sku filled), 0 not,
 * -errno (reported). */
static int find_in(struct rcl *c, const char *const *skus, size_t m, const char *id, char *sku, char *tag)
{
	struct ledger_probe {
		char key[KEYS_MAX];
		char tag[BKT_TAG_MAX];
		size_t sku;
	} *probe = NULL;
	struct rcl_cmd *cmd = NULL;
	unsigned *k = calloc(m, sizeof(*k));
	int rc = k ? loaded_bucket_counts(c, skus, m, k, "stock release") : -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; rc == 0 && i < m; i++)
		n += 3 * (size_t)k[i];
	cmd = rc == 0 ? calloc(n, sizeof(*cmd)) : NULL;
	probe = rc == 0 ? calloc(n, sizeof(*probe)) : NULL;
	if (rc == 0 && (!cmd || !probe))
		rc = -ENOMEM;
	size_t j = 0;
	for (size_t i = 0; rc == 0 && i < m; i++) {
		for (unsigned b = 0; b < k[i]; b++) {
			char t[BKT_TAG_MAX];
			bkt_tag(t, skus[i], b);
			snprintf(probe[j].key, KEYS_MAX, KEYS_ORDERS_FMT, t);
			snprintf(probe[j + 1].key, KEYS_MAX, KEYS_RETURNED_FMT, t);
			snprintf(probe[j + 2].key, KEYS_MAX, KEYS_PENDING_FMT, t);
			for (int l = 0; l < 3; l++, j++) {
				memcpy(probe[j].tag, t, sizeof(t));
				probe[j].sku = i;
				cmd[j] = rcl_cmd_key("HEXISTS", probe[j].key, id);
			}
		}
	}
	if (rc == 0 && rcl_pipeline(c, cmd, n) < 0) {
		fprintf(stderr, "flashgate: redis: %s\n", rcl_error(c));
		rc = -EIO;
	}
	for (j = 0; j < n && cmd; j++) {
		const redisReply *r = cmd[j].reply;
		if (rc == 0 && r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "flashgate: redis HEXISTS %s: %s\n", probe[j].key, r->str);
			rc = -EIO;
		} else if (rc == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
			snprintf(tag, BKT_TAG_MAX, "%s", probe[j].tag);
			if (skus[probe[j].sku] != sku)
				snprintf(sku, ORDER_ID_MAX + 1, "%s", skus[probe[j].sku]);
			rc = 1;
		}
		freeReplyObject(cmd[j].reply);
	}
	free(cmd);
	free(probe);
	free(k);
	return rc;
}

/* The SKU bucket whose ledgers hold order id (an order lives in its
 * user's home bucket, which only the order knows): the buckets of sku, or
 * of every loaded SKU when sku is "", FIND_SKUS SKUs per round. 1 found
 * (tag and sku filled), 0 not found, -errno. */
static int find_order(struct rcl *c, const char *id, char *sku, char *tag)
{
	if (sku[0]) {
		int k = sku_buckets(c, sku); /* says so when it is not loaded */
		if (k < 0)
			return k;
		const char *one = sku;
		return find_in(c, &one, 1, id, sku, tag);
	}
	redisReply *members = checked(c, rcl_command(c, KEYS_SKU_SET, "SMEMBERS %s", KEYS_SKU_SET), "SMEMBERS");
	if (!members)
		return -EIO;
	const char **names = calloc(members->elements + 1, sizeof(*names));
	int rc = names ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < members->elements; i++)
		names[i] = members->element[i]->str;
	for (size_t at = 0; rc == 0 && at < members->elements; at += FIND_SKUS)
		rc = find_in(c, names + at, members->elements - at < FIND_SKUS ? members->elements - at : FIND_SKUS,
			     id, sku, tag);
	free(names);
	freeReplyObject(members);
	return rc;
}

int stock_release(const struct cfg *cfg, const char *order_id, const char *sku_arg, FILE *out)
{
	uint64_t oid;
	char sku[ORDER_ID_MAX + 1] = "", tag[BKT_TAG_MAX];
	if (oid_parse(order_id, strlen(order_id), &oid) < 0) {
		fprintf(stderr, "flashgate: order id '%s' must be %d hex digits, as in the 202 answer\n",
			order_id, OID_TEXT_LEN);
		return -EINVAL;
	}
	if (sku_arg && !order_valid_ident(sku_arg, strlen(sku_arg))) {
		fprintf(stderr, "flashgate: sku '%s' must be 1-64 characters of A-Z a-z 0-9 . _ : -\n", sku_arg);
		return -EINVAL;
	}
	struct rcl *c = stock_connect(cfg);
	if (!c)
		return -ECONNREFUSED;
	redisReply *r = NULL;
	if (sku_arg)
		snprintf(sku, sizeof(sku), "%s", sku_arg);
	int rc = find_order(c, order_id, sku, tag);
	if (rc <= 0) {
		if (rc == 0) {
			if (sku_arg)
				fprintf(stderr, "flashgate: order %s is not an order of SKU '%s'\n", order_id, sku);
			else
				fprintf(stderr, "flashgate: order %s is in no SKU's ledgers\n", order_id);
			rc = -ENOENT;
		}
		goto out;
	}
	char k[5][KEYS_MAX];
	snprintf(k[0], KEYS_MAX, KEYS_SKU_FMT, tag);
	snprintf(k[1], KEYS_MAX, KEYS_USERS_FMT, tag);
	snprintf(k[2], KEYS_MAX, KEYS_ORDERS_FMT, tag);
	snprintf(k[3], KEYS_MAX, KEYS_RETURNED_FMT, tag);
	snprintf(k[4], KEYS_MAX, KEYS_PENDING_FMT, tag);
	r = checked(c, rcl_command(c, k[0], "EVAL %s 5 %s %s %s %s %s %s", script_return_lua, k[0], k[1], k[2],
				     k[3], k[4], order_id), "stock release");
	if (!r) {
		rc = -EIO;
	} else if (r->type != REDIS_REPLY_STRING) {
		fprintf(stderr, "flashgate: redis stock release: unexpected reply\n");
		rc = -EIO;
	} else if (strncmp(r->str, "returned:", 9) == 0 && strchr(r->str + 9, ':')) {
		/* "returned:QTY:USER", printed as USER:QTY as it always was */
		const char *user = strchr(r->str + 9, ':') + 1;
		fprintf(out, "order %s returned: %s:%.*s\n", order_id, user, (int)(user - 1 - (r->str + 9)),
			r->str + 9);
		rc = replicated(c, cfg, k[0], "stock release");
	} else if (strcmp(r->str, "already") == 0) {
		fprintf(out, "order %s was returned before: nothing changed\n", order_id);
		rc = 0;
	} else if (strcmp(r->str, "pending") == 0) {
		fprintf(stderr, "flashgate: order %s of %s is not settled yet (still in the pending ledger): "
				"its gateway, or `flashgate reconcile`, settles it first\n", order_id, sku);
		rc = -EBUSY;
	} else {
		fprintf(stderr, "flashgate: order %s is not an order of SKU '%s'\n", order_id, sku);
		rc = -ENOENT;
	}
out:
	if (r)
		freeReplyObject(r);
	rcl_close(c);
	return rc < 0 ? rc : stock_show(cfg, sku, false, out);
}

int stock_load_scripts(const struct cfg *cfg, struct script_shas *shas, struct rcl_map *map)
{
	struct rcl *c = stock_connect(cfg);
	if (!c)
		return -ECONNREFUSED;
	int rc = check_eviction(c, cfg);
	if (rc == 0 && (rc = rcl_map(c, map)) < 0)
		fprintf(stderr, "flashgate: %s\n", rcl_error(c));
	for (int i = 0; i < SCRIPT_N && rc == 0; i++) {
		redisReply *r = checked(c, rcl_command_all(c, "SCRIPT LOAD %s", script_src[i]), "SCRIPT LOAD");
		if (!r) {
			rc = -EIO;
		} else if (r->type != REDIS_REPLY_STRING || r->len != SCRIPT_SHA_LEN) {
			fprintf(stderr, "flashgate: redis SCRIPT LOAD: unexpected reply\n");
			rc = -EIO;
		} else {
			memcpy(shas->sha[i], r->str, SCRIPT_SHA_LEN + 1);
		}
		if (r)
			freeReplyObject(r);
	}
	rcl_close(c);
	return rc;
}
