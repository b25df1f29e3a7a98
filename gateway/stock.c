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

#define STOCK_MAX 1000000000000ull
#define LIMIT_MAX 1000000000ull

struct row {
	char sku[ORDER_ID_MAX + 1];
	unsigned long long stock, limit;
	unsigned long long starts, ends; /* sale window, Unix ms; 0: open */
};

static const char header3[] = "sku,stock,per_user_limit";
static const char header5[] = "sku,stock,per_user_limit,starts_at_ms,ends_at_ms";

static struct rcl *connect_redis(const struct cfg *cfg)
{
	char err[300];
	struct rcl *c = rcl_open(cfg->redis_host, cfg->redis_port, cfg->redis_timeout_ms, err, sizeof(err));
	if (!c)
		fprintf(stderr, "flashgate: %s\n", err);
	return c;
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

static int parse_u64(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (*end != '\0' || errno == ERANGE || *out > max)
		return -EINVAL;
	return 0;
}

/* Reads and validates the whole file before anything is written. */
static int read_csv(const char *path, struct row **rows_out, size_t *n_out)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int rc = -errno;
		fprintf(stderr, "flashgate: %s: %s\n", path, strerror(errno));
		return rc;
	}
	char line[512];
	size_t n = 0, cap = 0;
	struct row *rows = NULL;
	int lineno = 0, rc = 0;
	bool header = false;
	int ncols = 0;

	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			fprintf(stderr, "flashgate: %s:%d: line too long\n", path, lineno);
			rc = -EINVAL;
			break;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (!header) {
			ncols = strcmp(line, header3) == 0 ? 3 : strcmp(line, header5) == 0 ? 5 : 0;
			if (!ncols) {
				fprintf(stderr, "flashgate: %s:%d: expected the header '%s' or '%s'\n", path,
					lineno, header3, header5);
				rc = -EINVAL;
				break;
			}
			header = true;
			continue;
		}
		char *col[5];
		int got = 0;
		for (char *p = line; got < 5;) {
			col[got++] = p;
			p = strchr(p, ',');
			if (!p)
				break;
			*p++ = '\0';
		}
		if (got != ncols || (got == 5 && strchr(col[4], ','))) {
			fprintf(stderr, "flashgate: %s:%d: expected %d columns: %s\n", path, lineno, ncols,
				ncols == 3 ? header3 : header5);
			rc = -EINVAL;
			break;
		}
		struct row r = {0};
		if (ncols == 5) {
			/* Empty means no bound on that side. */
			if ((*col[3] && parse_u64(col[3], (unsigned long long)INT64_MAX, &r.starts) < 0) ||
			    (*col[4] && parse_u64(col[4], (unsigned long long)INT64_MAX, &r.ends) < 0) ||
			    (r.starts && r.ends && r.ends <= r.starts)) {
				fprintf(stderr, "flashgate: %s:%d: starts_at_ms and ends_at_ms must be Unix "
						"milliseconds, empty for no bound, with the end after the start\n",
					path, lineno);
				rc = -EINVAL;
				break;
			}
		}
		if (!order_valid_ident(line, strlen(line))) {
			fprintf(stderr, "flashgate: %s:%d: sku '%s' must be 1-64 characters of A-Z a-z 0-9 . _ : -\n",
				path, lineno, line);
			rc = -EINVAL;
			break;
		}
		if (parse_u64(col[1], STOCK_MAX, &r.stock) < 0) {
			fprintf(stderr, "flashgate: %s:%d: stock '%s' must be an integer 0..%llu\n", path,
				lineno, col[1], STOCK_MAX);
			rc = -EINVAL;
			break;
		}
		if (parse_u64(col[2], LIMIT_MAX, &r.limit) < 0 || r.limit == 0) {
			fprintf(stderr, "flashgate: %s:%d: per_user_limit '%s' must be an integer 1..%llu\n",
				path, lineno, col[2], LIMIT_MAX);
			rc = -EINVAL;
			break;
		}
		strcpy(r.sku, line);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(rows[i].sku, r.sku) == 0) {
				fprintf(stderr, "flashgate: %s:%d: sku '%s' appears twice\n", path, lineno, r.sku);
				rc = -EINVAL;
				goto out;
			}
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			struct row *grown = realloc(rows, cap * sizeof(*rows));
			if (!grown) {
				rc = -ENOMEM;
				fprintf(stderr, "flashgate: %s: out of memory\n", path);
				goto out;
			}
			rows = grown;
		}
		rows[n++] = r;
	}
	if (rc == 0 && ferror(f)) {
		fprintf(stderr, "flashgate: %s: read error\n", path);
		rc = -EIO;
	}
	if (rc == 0 && !header) {
		fprintf(stderr, "flashgate: %s: empty (expected the header '%s')\n", path, header3);
		rc = -EINVAL;
	}
out:
	fclose(f);
	if (rc < 0) {
		free(rows);
		return rc;
	}
	*rows_out = rows;
	*n_out = n;
	return 0;
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

int stock_load(const struct cfg *cfg, const char *csv_path)
{
	struct row *rows = NULL;
	size_t n = 0;
	int rc = read_csv(csv_path, &rows, &n);
	if (rc < 0)
		return rc;
	struct rcl *c = connect_redis(cfg);
	if (!c) {
		free(rows);
		return -ECONNREFUSED;
	}
	bool multi = !rcl_is_cluster(c);
	unsigned *old_k = NULL;
	redisReply *reply = checked(c, rcl_command(c, NULL, "TIME"), "TIME");
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
		rc = -EIO;
		goto out;
	}
	long long now_ms = strtoll(reply->element[0]->str, NULL, 10) * 1000 +
			   strtoll(reply->element[1]->str, NULL, 10) / 1000;
	freeReplyObject(reply);

	/* The bucket counts of a previous load, so its extra buckets go too. */
	unsigned k = cfg->redis_buckets;
	old_k = calloc(n ? n : 1, sizeof(*old_k));
	if (!old_k) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char key[KEYS_MAX];
		snprintf(key, sizeof(key), KEYS_SKU_FMT, rows[i].sku);
		redisReply *rr = checked(c, rcl_command(c, key, "HGET %s buckets", key), "stock load");
		if (!rr) {
			rc = -EIO;
			goto out;
		}
		int was = rr->type == REDIS_REPLY_STRING ? atoi(rr->str) : 1;
		old_k[i] = was >= 1 && was <= BKT_MAX ? (unsigned)was : BKT_MAX;
		freeReplyObject(rr);
	}

	/* On one server all SKUs go in one transaction, so readers never see
	 * half a file. A cluster cannot run a transaction across slots: there
	 * each bucket is written atomically, one after the other. */
	if (multi) {
		if (!(reply = checked(c, rcl_command(c, NULL, "MULTI"), "MULTI"))) {
			rc = -EIO;
			goto out;
		}
		freeReplyObject(reply);
	}
	unsigned long long total = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned span = old_k[i] > k ? old_k[i] : k;
		for (unsigned b = 0; b < span && rc == 0; b++) {
			char tag[BKT_TAG_MAX], key[6][KEYS_MAX], share[24] = "";
			bkt_tag(tag, rows[i].sku, b);
			snprintf(key[0], KEYS_MAX, KEYS_SKU_FMT, tag);
			snprintf(key[1], KEYS_MAX, KEYS_USERS_FMT, tag);
			snprintf(key[2], KEYS_MAX, KEYS_PENDING_FMT, tag);
			snprintf(key[3], KEYS_MAX, KEYS_ORDERS_FMT, tag);
			snprintf(key[4], KEYS_MAX, KEYS_RETURNED_FMT, tag);
			snprintf(key[5], KEYS_MAX, KEYS_XFER_FMT, tag);
			if (b < k)
				snprintf(share, sizeof(share), "%llu", bkt_share(rows[i].stock, k, b));
			reply = checked(c, rcl_command(c, key[0], "EVAL %s 6 %s %s %s %s %s %s %s %llu %lld %llu %llu %u",
						       load_bucket_lua, key[0], key[1], key[2], key[3], key[4], key[5],
						       share, rows[i].limit, now_ms, rows[i].starts, rows[i].ends, k),
					"stock load");
			rc = reply ? 0 : -EIO;
			freeReplyObject(reply);
			if (rc == 0 && !multi)
				rc = replicated(c, cfg, key[0], "stock load");
		}
		if (rc == 0) {
			reply = checked(c, rcl_command(c, KEYS_SKU_SET, "SADD %s %s", KEYS_SKU_SET, rows[i].sku),
					"stock load");
			rc = reply ? 0 : -EIO;
			freeReplyObject(reply);
			if (rc == 0 && !multi)
				rc = replicated(c, cfg, KEYS_SKU_SET, "stock load");
		}
		total += rows[i].stock;
	}
	if (multi) {
		/* After a failure, DISCARD: nothing of the file is written. */
		reply = checked(c, rcl_command(c, NULL, rc == 0 ? "EXEC" : "DISCARD"), "stock load");
		if (rc == 0 && (!reply || reply->type != REDIS_REPLY_ARRAY))
			rc = -EIO;
		for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
			if (reply->element[i]->type == REDIS_REPLY_ERROR) {
				fprintf(stderr, "flashgate: redis stock load failed: %s\n", reply->element[i]->str);
				rc = -EIO;
				break;
			}
		}
		freeReplyObject(reply);
		if (rc == 0)
			rc = replicated(c, cfg, NULL, "stock load");
	}
	if (rc == 0)
		printf("loaded %zu SKUs (%llu units, %u bucket%s each) into redis %s:%u%s\n", n, total, k,
		       k == 1 ? "" : "s", cfg->redis_host, cfg->redis_port, multi ? "" : " (cluster)");
out:
	free(old_k);
	rcl_close(c);
	free(rows);
	return rc;
}

int stock_show(const struct cfg *cfg, const char *sku, FILE *out)
{
	if (!order_valid_ident(sku, strlen(sku))) {
		fprintf(stderr, "flashgate: sku '%s' must be 1-64 characters of A-Z a-z 0-9 . _ : -\n", sku);
		return -EINVAL;
	}
	struct rcl *c = connect_redis(cfg);
	if (!c)
		return -ECONNREFUSED;
	int k = sku_buckets(c, sku);
	int rc = k < 0 ? k : 0;
	long long stock = 0, sold = 0, pending = 0, transit = 0;
	char limit[24] = "?", lines[BKT_MAX][160];
	for (int b = 0; b < k; b++) {
		char tag[BKT_TAG_MAX], key[3][KEYS_MAX];
		bkt_tag(tag, sku, (unsigned)b);
		snprintf(key[0], KEYS_MAX, KEYS_SKU_FMT, tag);
		snprintf(key[1], KEYS_MAX, KEYS_PENDING_FMT, tag);
		snprintf(key[2], KEYS_MAX, KEYS_XFER_FMT, tag);
		redisReply *v[3] = {
			rcl_command(c, key[0], "HMGET %s stock limit sold", key[0]),
			rcl_command(c, key[1], "HLEN %s", key[1]),
			rcl_command(c, key[2], "HVALS %s", key[2]),
		};
		if (!v[0] || !v[1] || !v[2]) {
			fprintf(stderr, "flashgate: redis stock show: %s\n", rcl_error(c));
			for (int j = 0; j < 3; j++)
				freeReplyObject(v[j]);
			rc = -EIO;
			goto out;
		}
		redisReply *h = v[0];
		if (h->type != REDIS_REPLY_ARRAY || h->elements != 3 || h->element[0]->type != REDIS_REPLY_STRING ||
		    v[1]->type != REDIS_REPLY_INTEGER || v[2]->type != REDIS_REPLY_ARRAY) {
			fprintf(stderr, "flashgate: SKU '%s': bucket %d of %d is missing or damaged; load it again\n",
				sku, b, k);
			rc = -EIO;
		} else {
			long long b_stock = atoll(h->element[0]->str);
			long long b_sold = h->element[2]->type == REDIS_REPLY_STRING ? atoll(h->element[2]->str) : 0;
			long long b_transit = 0;
			/* entries "to_bucket units ms" */
			for (size_t j = 0; j < v[2]->elements; j++) {
				const char *sp = strchr(v[2]->element[j]->str, ' ');
				b_transit += sp ? atoll(sp + 1) : 0;
			}
			if (h->element[1]->type == REDIS_REPLY_STRING)
				snprintf(limit, sizeof(limit), "%s", h->element[1]->str);
			stock += b_stock;
			sold += b_sold;
			pending += v[1]->integer;
			transit += b_transit;
			snprintf(lines[b], sizeof(lines[b]), "  bucket %d: stock=%lld sold=%lld pending=%lld in_transit=%lld\n",
				 b, b_stock, b_sold, v[1]->integer, b_transit);
		}
		for (int j = 0; j < 3; j++)
			freeReplyObject(v[j]);
	}
	if (rc == 0) {
		fprintf(out, "sku=%s stock=%lld per_user_limit=%s sold=%lld pending=%lld", sku, stock, limit, sold,
			pending);
		if (k > 1) {
			fprintf(out, " buckets=%d in_transit=%lld\n", k, transit);
			for (int b = 0; b < k; b++)
				fputs(lines[b], out);
		} else {
			fputc('\n', out);
		}
	}
out:
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
	if (parse_u64(units, STOCK_MAX, &n) < 0 || n < min) {
		fprintf(stderr, "flashgate: units '%s' must be an integer %llu..%llu\n", units, min, STOCK_MAX);
		return -EINVAL;
	}
	struct rcl *c = connect_redis(cfg);
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
	return rc < 0 ? rc : stock_show(cfg, sku, out);
}

int stock_add(const struct cfg *cfg, const char *sku, const char *units, FILE *out)
{
	static const char add_lua[] =
		"if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
		"redis.call('HINCRBY', KEYS[1], 'initial', ARGV[1])\n"
		"return redis.call('HINCRBY', KEYS[1], 'stock', ARGV[1])\n";
	return adjust_stock(cfg, sku, units, 1, add_lua, "stock add", out);
}

int stock_set(const struct cfg *cfg, const char *sku, const char *units, FILE *out)
{
	/* Units already reserved stay sold (and pending ones settle as usual);
	 * only what is left to sell changes, so initial follows sold. */
	static const char set_lua[] =
		"if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
		"local h = redis.call('HMGET', KEYS[1], 'sold', 'moved_in', 'moved_out')\n"
		"local sold, min, mout = tonumber(h[1] or '0'), tonumber(h[2] or '0'), tonumber(h[3] or '0')\n"
		"redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'initial', sold + tonumber(ARGV[1]) - min + mout)\n"
		"return tonumber(ARGV[1])\n";
	return adjust_stock(cfg, sku, units, 0, set_lua, "stock set", out);
}

/* 1 when bucket tag's ledgers (settled, returned or pending) hold order
 * id, 0 when not, -EIO. */
static int in_bucket(struct rcl *c, const char *tag, const char *id)
{
	char keys[3][KEYS_MAX];
	snprintf(keys[0], KEYS_MAX, KEYS_ORDERS_FMT, tag);
	snprintf(keys[1], KEYS_MAX, KEYS_RETURNED_FMT, tag);
	snprintf(keys[2], KEYS_MAX, KEYS_PENDING_FMT, tag);
	for (int i = 0; i < 3; i++) {
		const char *key = keys[i];
		redisReply *r = checked(c, rcl_command(c, key, "HEXISTS %s %s", key, id), "HEXISTS");
		if (!r)
			return -EIO;
		bool found = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
		freeReplyObject(r);
		if (found)
			return 1;
	}
	return 0;
}

/* The SKU bucket whose ledgers hold order id (an order lives in its
 * user's home bucket, which only the order knows): the buckets of sku, or
 * of every loaded SKU when sku is "", are asked, pipelined. 1 found (tag
 * and sku filled), 0 not found, -errno. */
static int find_order(struct rcl *c, const char *id, char *sku, char *tag)
{
	redisReply *members = NULL;
	size_t n = 1;
	if (!sku[0]) {
		members = checked(c, rcl_command(c, KEYS_SKU_SET, "SMEMBERS %s", KEYS_SKU_SET), "SMEMBERS");
		if (!members)
			return -EIO;
		n = members->elements;
	}
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *s = members ? members->element[i]->str : sku;
		int k = sku_buckets(c, s);
		if (k < 0) {
			rc = k;
			break;
		}
		for (int b = 0; b < k && rc == 0; b++) {
			char t[BKT_TAG_MAX];
			bkt_tag(t, s, (unsigned)b);
			rc = in_bucket(c, t, id);
			if (rc == 1) {
				snprintf(tag, BKT_TAG_MAX, "%s", t);
				if (s != sku)
					snprintf(sku, ORDER_ID_MAX + 1, "%s", s);
			}
		}
	}
	if (members)
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
	struct rcl *c = connect_redis(cfg);
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
	} else if (strncmp(r->str, "returned:", 9) == 0) {
		fprintf(out, "order %s returned: %s\n", order_id, r->str + 9);
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
	return rc < 0 ? rc : stock_show(cfg, sku, out);
}

int stock_load_scripts(const struct cfg *cfg, struct script_shas *shas, struct rcl_map *map)
{
	struct rcl *c = connect_redis(cfg);
	if (!c)
		return -ECONNREFUSED;
	int rc = rcl_map(c, map);
	if (rc < 0)
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
