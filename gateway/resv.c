/*
 * resv: the Redis pipeline of one worker. See resv.h.
 *
 * Commands are formatted here rather than with redisFormatCommandArgv,
 * which allocates a string per command; RESP is a few lines, and writing it
 * into a preallocated buffer keeps the request path allocation-free.
 * Two output buffers alternate: one is being sent while the turn fills the
 * other, so a send in flight never sees its bytes move.
 */
#include "resv.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/bucket.h"
#include "../core/keys.h"
#include "flow.h"
#include "rebal.h"
#include "worker.h"

enum cmd_kind {
	CMD_NONE = 0, CMD_RESERVE, CMD_RELEASE, CMD_CONFIRM, CMD_LOAD, CMD_RUN_ID, CMD_CLIENT_ID, CMD_KILL,
	CMD_RETURN, CMD_TAKE, CMD_GIVE, CMD_XDONE
};

/* The server's run id: client ids restart after a restart, so a dead
 * connection's id means something only on the server that gave it. */
static const char run_id_lua[] = "return redis.call('INFO', 'server'):match('run_id:(%x+)')";
/* HANDSHAKE: connected, CLIENT ID not answered yet. Only the connection's
 * own commands and replays go out then; reserves wait for UP, so every
 * connection that ever carried a reserve has a known id. */
enum state { R_DOWN, R_CONNECTING, R_HANDSHAKE, R_UP, R_CLOSING };
#define MAX_DEAD 8

/* Room per order in the output buffer: a batch of n orders takes less than
 * n single commands would (the scripts themselves go in LOAD). */
#define CMD_MAX 1024
#define IN_CAP 65536
/* Open SKU groups per turn (a power of two); more SKUs than this in one
 * turn flush the groups early. */
#define GROUPS 64

/* One reply, written by the reader callbacks below: a scalar, or a batch's
 * array of short strings. One slot, reused per reply, holds it: hiredis's
 * default callbacks would malloc a redisReply per reply and element. */
struct relem {
	int type;
	size_t len;
	char str[48]; /* the longest result is "not_started:" + 13 digits */
};

struct rslot {
	int type;
	long long integer;
	size_t len;
	char str[128];
	unsigned n_elems;
	struct relem elem[RESV_BATCH_MAX];
};

/* This turn's reservations for one SKU, chained through req->b_next. The
 * group keeps its SKU for the whole turn, even after a full batch went out,
 * so one SKU's orders always queue in one place, in arrival order. */
struct group {
	char sku[ORDER_ID_MAX + 1];
	uint8_t sku_len; /* 0: free this turn */
	uint8_t bucket;
	struct req *head, *tail;
	unsigned n;
};

struct pending {
	struct req *req;
	long long client_id; /* CMD_KILL: whom */
	uint8_t kind;
	int64_t queued_ms;
};

struct resv {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char where[CFG_HOST_MAX + 8];
	enum state state;
	int fd;
	unsigned ops; /* connect, recv and send in flight */
	bool down_logged;
	int64_t next_attempt_ms;
	struct __kernel_timespec connect_timeout;
	struct script_shas shas;

	char *out[2];
	size_t out_len[2], out_cap;
	unsigned fill;    /* buffer this turn appends to */
	bool sending;     /* the other buffer is in flight */
	size_t send_off;  /* bytes of it already sent */

	char *in;
	redisReader *reader;
	struct rslot slot;

	struct pending *fifo;
	unsigned head, count, cap;
	struct req *replay_head, *replay_tail;
	unsigned replays;
	bool load_queued;
	/* Redis's id for this connection, and those of dropped connections not
	 * yet known to be gone: a dropped connection's unread commands could
	 * still run after its replacement's replays, so every new connection
	 * kills them first (CLIENT KILL ID), before anything else it sends. */
	long long client_id;
	long long dead[MAX_DEAD];
	unsigned n_dead;
	char run_id[48], dead_run_id[48];
	bool fenced; /* the dead connections are killed (queued): replays may go */

	struct group groups[GROUPS];
	unsigned used[GROUPS]; /* indices of the groups opened this turn */
	unsigned n_used;
	unsigned batched;      /* reservations waiting in groups */
};

static bool connected(const struct resv *r)
{
	return r->state == R_UP || r->state == R_HANDSHAKE;
}

/* An element of a top-level array: a batch's result for one order. */
static void put_elem(struct rslot *slot, const redisReadTask *t, const char *str, size_t len)
{
	if (t->parent->parent || t->idx < 0 || t->idx >= RESV_BATCH_MAX)
		return; /* nothing here answers with nested or longer arrays */
	struct relem *e = &slot->elem[t->idx];
	e->type = t->type;
	e->len = len < sizeof(e->str) - 1 ? len : sizeof(e->str) - 1;
	memcpy(e->str, str, e->len);
	e->str[e->len] = '\0';
	if ((unsigned)t->idx + 1 > slot->n_elems)
		slot->n_elems = (unsigned)t->idx + 1;
}

static void *slot_string(const redisReadTask *t, char *str, size_t len)
{
	struct rslot *slot = t->privdata;
	if (t->parent) {
		put_elem(slot, t, str, len);
		return slot;
	}
	slot->type = t->type;
	slot->len = len < sizeof(slot->str) - 1 ? len : sizeof(slot->str) - 1;
	memcpy(slot->str, str, slot->len);
	slot->str[slot->len] = '\0';
	return slot;
}

static void *slot_array(const redisReadTask *t, int elements)
{
	(void)elements;
	struct rslot *slot = t->privdata;
	if (!t->parent) {
		slot->type = REDIS_REPLY_ARRAY;
		slot->len = 0;
		slot->str[0] = '\0';
		slot->n_elems = 0;
	}
	return slot;
}

static void *slot_integer(const redisReadTask *t, long long value)
{
	struct rslot *slot = t->privdata;
	if (!t->parent) {
		slot->type = REDIS_REPLY_INTEGER;
		slot->integer = value;
		slot->len = 0;
		slot->str[0] = '\0';
	} else {
		put_elem(slot, t, "", 0);
	}
	return slot;
}

static void *slot_nil(const redisReadTask *t)
{
	struct rslot *slot = t->privdata;
	if (!t->parent) {
		slot->type = REDIS_REPLY_NIL;
		slot->len = 0;
		slot->str[0] = '\0';
	} else {
		put_elem(slot, t, "", 0);
	}
	return slot;
}

static void slot_free(void *obj)
{
	(void)obj; /* the slot belongs to struct resv */
}

static redisReplyObjectFunctions slot_functions = {
	slot_string, slot_array, slot_integer, slot_nil, slot_free,
};

static bool is_transfer(uint8_t kind)
{
	return kind >= CMD_TAKE && kind <= CMD_XDONE;
}

static enum resv_xstep xstep(uint8_t kind)
{
	return (enum resv_xstep)(kind - CMD_TAKE);
}

static const char *kind_name(uint8_t kind)
{
	switch (kind) {
	case CMD_RESERVE: return "reserve";
	case CMD_RELEASE: return "release";
	case CMD_CONFIRM: return "confirm";
	case CMD_LOAD: return "script load";
	case CMD_RUN_ID: return "run id";
	case CMD_CLIENT_ID: return "client id";
	case CMD_KILL: return "client kill";
	case CMD_RETURN: return "return";
	case CMD_TAKE: return "transfer take";
	case CMD_GIVE: return "transfer give";
	case CMD_XDONE: return "transfer done";
	default: return "?";
	}
}

int resv_init(struct worker *w, const struct script_shas *shas)
{
	const struct cfg *cfg = w->cfg;
	struct resv *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	w->resv = r;
	r->fd = -1;
	r->shas = *shas;
	snprintf(r->where, sizeof(r->where), "%s:%u", cfg->redis_host, cfg->redis_port);

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	char port[8];
	snprintf(port, sizeof(port), "%u", cfg->redis_port);
	int gai = getaddrinfo(cfg->redis_host, port, &hints, &ai);
	if (gai != 0) {
		snprintf(w->err, sizeof(w->err), "redis: cannot resolve %s: %s", r->where,
			 gai_strerror(gai));
		return -EINVAL;
	}
	memcpy(&r->addr, ai->ai_addr, ai->ai_addrlen);
	r->addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);

	r->connect_timeout.tv_sec = cfg->redis_timeout_ms / 1000;
	r->connect_timeout.tv_nsec = (long long)(cfg->redis_timeout_ms % 1000) * 1000000;
	/* Every request may have one command queued, plus the script loads;
	 * with buckets, a rebalancing order two (a transfer's give and its
	 * renewed reservation). */
	r->cap = (cfg->redis_buckets > 1 ? 2 : 1) * cfg->max_inflight + cfg->max_connections + 16;
	size_t scripts = 0;
	for (unsigned i = 0; i < SCRIPT_N; i++)
		scripts += strlen(script_src[i]) + 64;
	r->out_cap = (size_t)r->cap * CMD_MAX + 2 * scripts;
	r->out[0] = malloc(r->out_cap);
	r->out[1] = malloc(r->out_cap);
	r->in = malloc(IN_CAP);
	r->fifo = calloc(r->cap, sizeof(*r->fifo));
	if (!r->out[0] || !r->out[1] || !r->in || !r->fifo)
		return -ENOMEM;
	return 0;
}

void resv_destroy(struct worker *w)
{
	struct resv *r = w->resv;
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	if (r->reader)
		redisReaderFree(r->reader);
	free(r->out[0]);
	free(r->out[1]);
	free(r->in);
	free(r->fifo);
	free(r);
	w->resv = NULL;
}

bool resv_up(const struct worker *w)
{
	return w->resv->state == R_UP;
}

unsigned resv_pending(const struct worker *w)
{
	return w->resv->count + w->resv->replays + w->resv->batched;
}

/* Appends one RESP command and its pending entry. -ENOBUFS when full. */
static int put_cmd(struct worker *w, uint8_t kind, struct req *req, int argc, const char **argv,
		   const size_t *lens)
{
	struct resv *r = w->resv;
	size_t need = 16;
	for (int i = 0; i < argc; i++)
		need += lens[i] + 24;
	if (r->count == r->cap || r->out_cap - r->out_len[r->fill] < need)
		return -ENOBUFS;
	char *p = r->out[r->fill] + r->out_len[r->fill];
	p += sprintf(p, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		p += sprintf(p, "$%zu\r\n", lens[i]);
		memcpy(p, argv[i], lens[i]);
		p += lens[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	r->out_len[r->fill] = (size_t)(p - r->out[r->fill]);
	struct pending *pe = &r->fifo[(r->head + r->count++) % r->cap];
	pe->req = req;
	pe->client_id = 0;
	pe->kind = kind;
	pe->queued_ms = w->now_mono_ms;
	return 0;
}

/* One step of a transfer of units from bucket req->donor to req->bucket
 * (see script.h: take, give, then HDEL of the donor's entry). The
 * transfer's id is the order's id and its take count: unique, because an
 * order takes at most once per count. */
static int put_transfer(struct worker *w, uint8_t kind, struct req *req, const char *oid)
{
	struct resv *r = w->resv;
	char donor[BKT_TAG_MAX], home[BKT_TAG_MAX], xid[OID_TEXT_LEN + 8];
	char k1[KEYS_MAX], k2[KEYS_MAX], a[4][24];
	const char *argv[10];
	int argc = 0;

	bkt_tag(donor, req->order.sku, req->donor);
	bkt_tag(home, req->order.sku, req->bucket);
	snprintf(xid, sizeof(xid), "%s:%u", oid, req->takes);
	switch (kind) {
	case CMD_TAKE:
		snprintf(k1, sizeof(k1), KEYS_SKU_FMT, donor);
		snprintf(k2, sizeof(k2), KEYS_XFER_FMT, donor);
		snprintf(a[0], sizeof(a[0]), "%u", req->bucket);
		snprintf(a[1], sizeof(a[1]), "%" PRIu32,
			 req->order.qty > req->home_avail ? req->order.qty - req->home_avail : 1);
		snprintf(a[2], sizeof(a[2]), "%u", w->cfg->redis_buckets);
		snprintf(a[3], sizeof(a[3]), "%" PRId64, w->now_ms);
		argv[argc++] = "EVALSHA";
		argv[argc++] = r->shas.sha[SCRIPT_TAKE];
		argv[argc++] = "2";
		argv[argc++] = k1;
		argv[argc++] = k2;
		argv[argc++] = xid;
		argv[argc++] = a[0];
		argv[argc++] = a[1];
		argv[argc++] = a[2];
		argv[argc++] = a[3];
		break;
	case CMD_GIVE:
		snprintf(k1, sizeof(k1), KEYS_SKU_FMT, home);
		snprintf(k2, sizeof(k2), KEYS_XIN_FMT, home, xid);
		snprintf(a[0], sizeof(a[0]), "%" PRIu32, req->moved);
		snprintf(a[1], sizeof(a[1]), "%u", KEYS_XIN_TTL_S);
		argv[argc++] = "EVALSHA";
		argv[argc++] = r->shas.sha[SCRIPT_GIVE];
		argv[argc++] = "2";
		argv[argc++] = k1;
		argv[argc++] = k2;
		argv[argc++] = a[0];
		argv[argc++] = a[1];
		break;
	default: /* CMD_XDONE */
		snprintf(k1, sizeof(k1), KEYS_XFER_FMT, donor);
		argv[argc++] = "HDEL";
		argv[argc++] = k1;
		argv[argc++] = xid;
		break;
	}
	size_t lens[10];
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	return put_cmd(w, kind, req, argc, argv, lens);
}

/* The release script, or the confirm script (pending -> settled), for one order. */
static int put_script(struct worker *w, uint8_t kind, struct req *req)
{
	struct resv *r = w->resv;
	char sku[BKT_TAG_MAX];
	char k1[KEYS_MAX], k2[KEYS_MAX], k3[KEYS_MAX], k4[KEYS_MAX];
	char id[OID_TEXT_LEN + 1];
	const char *argv[9];
	size_t lens[9];
	int argc = 0;
	bool idem = req->idem_len > 0;

	bkt_tag(sku, req->order.sku, req->bucket);
	oid_format(req->order_id, id);
	if (is_transfer(kind))
		return put_transfer(w, kind, req, id);
	snprintf(k3, sizeof(k3), KEYS_PENDING_FMT, sku);
	if (kind == CMD_RETURN) {
		char k5[KEYS_MAX];
		snprintf(k1, sizeof(k1), KEYS_SKU_FMT, sku);
		snprintf(k2, sizeof(k2), KEYS_USERS_FMT, sku);
		snprintf(k4, sizeof(k4), KEYS_ORDERS_FMT, sku);
		snprintf(k5, sizeof(k5), KEYS_RETURNED_FMT, sku);
		const char *ret_argv[9] = {"EVALSHA", r->shas.sha[SCRIPT_RETURN], "5", k1, k2, k4, k5, k3, id};
		for (int i = 0; i < 9; i++)
			lens[i] = strlen(ret_argv[i]);
		return put_cmd(w, kind, req, 9, ret_argv, lens);
	}
	if (kind == CMD_CONFIRM) {
		snprintf(k4, sizeof(k4), KEYS_ORDERS_FMT, sku);
		argv[argc++] = "EVALSHA";
		argv[argc++] = r->shas.sha[SCRIPT_CONFIRM];
		argv[argc++] = "2";
		argv[argc++] = k3;
		argv[argc++] = k4;
		argv[argc++] = id;
	} else {
		snprintf(k1, sizeof(k1), KEYS_SKU_FMT, sku);
		snprintf(k2, sizeof(k2), KEYS_USERS_FMT, sku);
		argv[argc++] = "EVALSHA";
		argv[argc++] = r->shas.sha[SCRIPT_RELEASE];
		argv[argc++] = idem ? "4" : "3";
		argv[argc++] = k1;
		argv[argc++] = k2;
		argv[argc++] = k3;
		if (idem) {
			snprintf(k4, sizeof(k4), KEYS_IDEM_FMT, sku, req->order.user_id, req->idem);
			argv[argc++] = k4;
		}
		argv[argc++] = id;
	}
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	return put_cmd(w, kind, req, argc, argv, lens);
}

/* One reserve script call for a chain of orders of one SKU (see script.h):
 * KEYS are the SKU's three keys and each keyed order's idem key; ARGV the
 * ttl, the bucket count and six fields per order. */
static int put_batch(struct worker *w, struct req *head)
{
	struct resv *r = w->resv;
	enum { FIXED = 7, PER_ORDER = 6 };
	const char *argv[FIXED + RESV_BATCH_MAX * (1 + PER_ORDER) + 1];
	size_t lens[sizeof(argv) / sizeof(argv[0])];
	char k1[KEYS_MAX], k2[KEYS_MAX], k3[KEYS_MAX], nkeys[8], ttl[16], buckets[8];
	char idem_keys[RESV_BATCH_MAX][KEYS_MAX];
	struct {
		char qty[16], ms[24], id[OID_TEXT_LEN + 1], key_index[8];
	} f[RESV_BATCH_MAX];
	char sku[BKT_TAG_MAX];
	unsigned n = 0, keyed = 0;

	bkt_tag(sku, head->order.sku, head->bucket);

	snprintf(k1, sizeof(k1), KEYS_SKU_FMT, sku);
	snprintf(k2, sizeof(k2), KEYS_USERS_FMT, sku);
	snprintf(k3, sizeof(k3), KEYS_PENDING_FMT, sku);
	snprintf(ttl, sizeof(ttl), "%u", w->cfg->idempotency_ttl_s);
	snprintf(buckets, sizeof(buckets), "%u", w->cfg->redis_buckets);
	for (struct req *q = head; q; q = q->b_next, n++) {
		if (q->idem_len)
			snprintf(idem_keys[keyed++], KEYS_MAX, KEYS_IDEM_FMT, sku, q->order.user_id, q->idem);
	}
	int argc = 0;
	argv[argc++] = "EVALSHA";
	argv[argc++] = r->shas.sha[SCRIPT_RESERVE];
	snprintf(nkeys, sizeof(nkeys), "%u", 3 + keyed);
	argv[argc++] = nkeys;
	argv[argc++] = k1;
	argv[argc++] = k2;
	argv[argc++] = k3;
	for (unsigned k = 0; k < keyed; k++)
		argv[argc++] = idem_keys[k];
	argv[argc++] = ttl;
	argv[argc++] = buckets;
	unsigned i = 0, key_no = 0;
	for (struct req *q = head; q; q = q->b_next, i++) {
		snprintf(f[i].qty, sizeof(f[i].qty), "%" PRIu32, q->order.qty);
		snprintf(f[i].ms, sizeof(f[i].ms), "%" PRId64, q->accepted_at_ms);
		oid_format(q->order_id, f[i].id);
		/* KEYS[1..3] are the SKU's; the idem keys follow, in order. */
		snprintf(f[i].key_index, sizeof(f[i].key_index), "%u", q->idem_len ? 4 + key_no++ : 0);
		argv[argc++] = q->order.user_id;
		argv[argc++] = f[i].qty;
		argv[argc++] = f[i].id;
		argv[argc++] = f[i].ms;
		argv[argc++] = f[i].key_index;
		argv[argc++] = q->idem;
	}
	for (int k = 0; k < argc; k++)
		lens[k] = strlen(argv[k]);
	return put_cmd(w, CMD_RESERVE, head, argc, argv, lens);
}

static void queue_loads(struct worker *w)
{
	struct resv *r = w->resv;
	if (r->load_queued)
		return;
	for (unsigned i = 0; i < SCRIPT_N; i++) {
		const char *argv[3] = {"SCRIPT", "LOAD", script_src[i]};
		size_t lens[3] = {6, 4, strlen(script_src[i])};
		if (put_cmd(w, CMD_LOAD, NULL, 3, argv, lens) < 0)
			return;
	}
	r->load_queued = true;
}

static void add_replay(struct worker *w, struct req *req, uint8_t kind)
{
	struct resv *r = w->resv;
	req->replay = kind;
	req->r_next = NULL;
	if (r->replay_tail)
		r->replay_tail->r_next = req;
	else
		r->replay_head = req;
	r->replay_tail = req;
	r->replays++;
}

static void drain_replays(struct worker *w)
{
	struct resv *r = w->resv;
	while (connected(r) && r->fenced && r->replay_head) {
		struct req *req = r->replay_head;
		if (put_script(w, req->replay, req) < 0)
			return;
		r->replay_head = req->r_next;
		if (!r->replay_head)
			r->replay_tail = NULL;
		r->replays--;
	}
}

static uint32_t group_hash(const struct req *q)
{
	uint32_t h = 2166136261u ^ q->bucket;
	for (unsigned i = 0; i < q->order.sku_len; i++)
		h = (h ^ (unsigned char)q->order.sku[i]) * 16777619u;
	return h;
}

/* Answers every order of a chain that will get no reply. sent: the
 * script may have run, so its reservations are released once Redis is
 * back (a no-op for those it did not make). */
static void fail_chain(struct worker *w, struct req *head, bool sent)
{
	for (struct req *q = head, *next; q; q = next) {
		next = q->b_next; /* q may go back to the pool below */
		q->b_next = NULL;
		if (sent) {
			add_replay(w, q, CMD_RELEASE); /* the reserve's op becomes the release's */
		} else {
			q->redis_ops--;
		}
		flow_on_redis_failure(w, q);
	}
}

static void emit_group(struct worker *w, struct group *g)
{
	struct resv *r = w->resv;
	struct req *head = g->head;
	unsigned n = g->n;
	r->batched -= n;
	g->head = g->tail = NULL;
	g->n = 0;
	if (put_batch(w, head) < 0) {
		fail_chain(w, head, false);
		return;
	}
	w->stats.reserve_calls++;
	w->stats.reserve_orders += n;
}

/* Sends every open group: the end of a turn, or no room for another SKU. */
static void flush_groups(struct worker *w)
{
	struct resv *r = w->resv;
	for (unsigned i = 0; i < r->n_used; i++) {
		struct group *g = &r->groups[r->used[i]];
		if (g->n)
			emit_group(w, g);
		g->sku_len = 0;
	}
	r->n_used = 0;
}

/* The open group of q's SKU bucket, or a new one. */
static struct group *group_for(struct worker *w, const struct req *q)
{
	struct resv *r = w->resv;
	const struct order_req *o = &q->order;
	if (r->n_used == GROUPS) /* every group is taken: send them, start afresh */
		flush_groups(w);
	for (unsigned i = group_hash(q) & (GROUPS - 1);; i = (i + 1) & (GROUPS - 1)) {
		struct group *g = &r->groups[i];
		if (g->sku_len == 0) {
			memcpy(g->sku, o->sku, o->sku_len);
			g->sku_len = o->sku_len;
			g->bucket = q->bucket;
			r->used[r->n_used++] = i;
			return g;
		}
		if (g->sku_len == o->sku_len && g->bucket == q->bucket &&
		    memcmp(g->sku, o->sku, o->sku_len) == 0)
			return g;
	}
}

int resv_reserve(struct worker *w, struct req *req)
{
	struct resv *r = w->resv;
	if (r->state != R_UP)
		return -ENOTCONN;
	/* Counted as if each went alone, so a flush always has room. */
	if (r->count + r->batched + 1 >= r->cap)
		return -ENOBUFS;
	struct group *g = group_for(w, req);
	req->b_next = NULL;
	if (g->n == 0)
		g->head = req;
	else
		g->tail->b_next = req;
	g->tail = req;
	g->n++;
	r->batched++;
	req->redis_ops++;
	if (g->n == RESV_BATCH_MAX)
		emit_group(w, g);
	return 0;
}

int resv_return(struct worker *w, struct req *req)
{
	if (w->resv->state != R_UP)
		return -ENOTCONN;
	int rc = put_script(w, CMD_RETURN, req);
	if (rc == 0)
		req->redis_ops++;
	return rc;
}

int resv_transfer(struct worker *w, struct req *req, enum resv_xstep step)
{
	static const uint8_t kinds[] = {CMD_TAKE, CMD_GIVE, CMD_XDONE};
	if (w->resv->state != R_UP)
		return -ENOTCONN;
	int rc = put_script(w, kinds[step], req);
	if (rc == 0)
		req->redis_ops++;
	return rc;
}

/* Release and confirm are never refused: what cannot go now goes later. */
static void queue_or_replay(struct worker *w, struct req *req, uint8_t kind)
{
	req->redis_ops++;
	if (connected(w->resv) && w->resv->fenced && !w->resv->replay_head && put_script(w, kind, req) == 0)
		return;
	add_replay(w, req, kind);
	if (kind == CMD_RELEASE)
		flow_on_redis_failure(w, req); /* answer now; the stock follows */
}

void resv_release(struct worker *w, struct req *req)
{
	queue_or_replay(w, req, CMD_RELEASE);
}

void resv_confirm(struct worker *w, struct req *req)
{
	queue_or_replay(w, req, CMD_CONFIRM);
}

static void begin_close(struct worker *w, const char *why)
{
	struct resv *r = w->resv;
	if (!connected(r))
		return;
	unsigned lost = r->count;
	worker_log(w, "redis %s: connection lost: %s; %u commands failed, reconnecting", r->where,
		   why, lost);
	r->state = R_CLOSING;
	r->down_logged = true;
	r->fenced = false;
	if (r->client_id > 0) {
		if (r->n_dead == 0)
			memcpy(r->dead_run_id, r->run_id, sizeof(r->run_id));
		if (r->n_dead < MAX_DEAD)
			r->dead[r->n_dead++] = r->client_id;
		else
			worker_log(w, "redis: more than %d dropped connections not yet killed; "
				      "a late reserve from connection %lld may need reconcile",
				   MAX_DEAD, r->client_id);
	}
	r->client_id = 0;
	/* A reserve whose reply was lost may have run: release it when Redis is
	 * back (a no-op if it never ran). Answer every affected client now. */
	while (r->count) {
		struct pending pe = r->fifo[r->head];
		r->head = (r->head + 1) % r->cap;
		r->count--;
		if (!pe.req)
			continue; /* the connection's own commands */
		if (pe.kind == CMD_RESERVE) {
			fail_chain(w, pe.req, true);
			continue;
		}
		if (pe.kind == CMD_RETURN) { /* the admin retries; nothing to replay */
			pe.req->redis_ops--;
			flow_on_redis_failure(w, pe.req);
			continue;
		}
		if (is_transfer(pe.kind)) { /* left in the donor's ledger for reconcile */
			pe.req->redis_ops--;
			rebal_on_reply(w, pe.req, xstep(pe.kind), NULL, 0, 0);
			continue;
		}
		add_replay(w, pe.req, pe.kind == CMD_CONFIRM ? CMD_CONFIRM : CMD_RELEASE);
		if (pe.kind != CMD_CONFIRM)
			flow_on_redis_failure(w, pe.req);
	}
	/* Grouped this turn, never sent: nothing to release. */
	for (unsigned i = 0; i < r->n_used; i++) {
		struct group *g = &r->groups[r->used[i]];
		if (g->n) {
			r->batched -= g->n;
			fail_chain(w, g->head, false);
		}
		g->head = g->tail = NULL;
		g->n = 0;
		g->sku_len = 0;
	}
	r->n_used = 0;
	r->head = 0;
	r->out_len[0] = r->out_len[1] = 0;
	r->load_queued = false;
	if (shutdown(r->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
		worker_log(w, "redis: shutdown: %s", strerror(errno));
}

/* Finishes a close once no operation refers to the socket. */
static void maybe_closed(struct worker *w)
{
	struct resv *r = w->resv;
	if (r->ops > 0 || r->state != R_CLOSING)
		return;
	close(r->fd);
	r->fd = -1;
	r->sending = false;
	r->send_off = 0;
	r->state = R_DOWN;
	r->next_attempt_ms = w->now_mono_ms + w->cfg->redis_reconnect_ms;
}

static void start_connect(struct worker *w)
{
	struct resv *r = w->resv;
	r->fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		worker_log(w, "redis: socket: %s", strerror(errno));
		r->next_attempt_ms = w->now_mono_ms + w->cfg->redis_reconnect_ms;
		return;
	}
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_connect(sqe, r->fd, (struct sockaddr *)&r->addr, r->addr_len);
	io_uring_sqe_set_data64(sqe, ud_make(OP_REDIS_CONNECT, 0, 0));
	sqe->flags |= IOSQE_IO_LINK;
	sqe = worker_sqe(w);
	io_uring_prep_link_timeout(sqe, &r->connect_timeout, 0);
	io_uring_sqe_set_data64(sqe, 0); /* its completion is not needed */
	r->ops++;
	r->state = R_CONNECTING;
}

static void arm_recv(struct worker *w)
{
	struct resv *r = w->resv;
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_recv(sqe, r->fd, r->in, IN_CAP, 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_REDIS_RECV, 0, 0));
	r->ops++;
}

void resv_on_connect(struct worker *w, int res)
{
	struct resv *r = w->resv;
	r->ops--;
	if (res < 0) {
		if (!r->down_logged)
			worker_log(w, "redis %s: cannot connect: %s; retrying every %u ms", r->where,
				   strerror(-res == ECANCELED ? ETIMEDOUT : -res),
				   w->cfg->redis_reconnect_ms);
		r->down_logged = true;
		r->state = R_CLOSING;
		maybe_closed(w);
		return;
	}
	int one = 1;
	if (setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		worker_log(w, "redis: TCP_NODELAY: %s", strerror(errno));
	if (r->reader)
		redisReaderFree(r->reader);
	r->reader = redisReaderCreateWithFunctions(&slot_functions);
	if (r->reader) {
		redisReaderSetPrivdata(r->reader, &r->slot);
		/* Keep the read buffer between replies instead of freeing it. */
		r->reader->maxbuf = 0;
	}
	if (!r->reader) {
		worker_log(w, "redis: out of memory for the reply reader");
		r->state = R_HANDSHAKE;
		begin_close(w, "out of memory");
		return;
	}
	if (r->down_logged)
		worker_log(w, "redis %s: connected", r->where);
	r->down_logged = false;
	r->state = R_HANDSHAKE;
	r->fill = 0;
	r->out_len[0] = r->out_len[1] = 0;
	arm_recv(w);
	const char *id_argv[2] = {"CLIENT", "ID"};
	size_t id_lens[2] = {6, 2};
	const char *run_argv[3] = {"EVAL", run_id_lua, "0"};
	size_t run_lens[3] = {4, strlen(run_id_lua), 1};
	r->fenced = false;
	int rc = put_cmd(w, CMD_RUN_ID, NULL, 3, run_argv, run_lens);
	if (rc == 0)
		rc = put_cmd(w, CMD_CLIENT_ID, NULL, 2, id_argv, id_lens);
	if (rc < 0) {
		begin_close(w, "pipeline full at connect");
		maybe_closed(w);
		return;
	}
	/* Redis may have restarted or failed over without the scripts. */
	queue_loads(w);
	/* Replays wait for the run id: see fence(). */
}

/* Kills the dropped connections of this same server before anything is
 * replayed: a release must not run ahead of a reserve a dead connection
 * still had in Redis's input buffer. After a restart none can exist. */
static void fence(struct worker *w, const char *run_id)
{
	struct resv *r = w->resv;
	snprintf(r->run_id, sizeof(r->run_id), "%s", run_id);
	if (strcmp(r->run_id, r->dead_run_id) != 0)
		r->n_dead = 0;
	for (unsigned i = 0; i < r->n_dead; i++) {
		char id[24];
		const char *kill_argv[4] = {"CLIENT", "KILL", "ID", id};
		size_t kill_lens[4] = {6, 4, 2, 0};
		kill_lens[3] = (size_t)snprintf(id, sizeof(id), "%lld", r->dead[i]);
		if (put_cmd(w, CMD_KILL, NULL, 4, kill_argv, kill_lens) < 0) {
			begin_close(w, "pipeline full while fencing");
			return;
		}
		r->fifo[(r->head + r->count - 1) % r->cap].client_id = r->dead[i];
	}
	r->fenced = true;
	drain_replays(w);
}

/* Errors after which a release or confirm should simply be tried again. */
static bool transient(const char *err)
{
	static const char *const words[] = {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
					    "READONLY", "CLUSTERDOWN", NULL};
	for (const char *const *wd = words; *wd; wd++)
		if (strncmp(err, *wd, strlen(*wd)) == 0)
			return true;
	return false;
}

/* A batch's answer: one result per order, in the order sent. */
static void on_reserve_reply(struct worker *w, struct req *head, const struct rslot *reply)
{
	if (reply->type == REDIS_REPLY_ERROR) {
		/* The orders before the failing one may be written: release all. */
		worker_log(w, "redis: reserve failed: %s", reply->str);
		fail_chain(w, head, true);
		return;
	}
	unsigned i = 0;
	for (struct req *q = head, *next; q; q = next, i++) {
		next = q->b_next; /* q may go back to the pool in flow */
		q->b_next = NULL;
		q->redis_ops--;
		const struct relem *e = reply->type == REDIS_REPLY_ARRAY && i < reply->n_elems ? &reply->elem[i] : NULL;
		if (e && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS))
			flow_on_reserve_reply(w, q, e->str, e->len);
		else
			flow_on_reserve_reply(w, q, "", 0); /* logged there; answered 503 */
	}
}

static void on_reply(struct worker *w, struct rslot *reply)
{
	struct resv *r = w->resv;
	if (r->count == 0) {
		begin_close(w, "reply with no command waiting for it");
		return;
	}
	struct pending pe = r->fifo[r->head];
	r->head = (r->head + 1) % r->cap;
	r->count--;

	if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
	    pe.kind != CMD_LOAD && pe.kind != CMD_RUN_ID && pe.kind != CMD_CLIENT_ID && pe.kind != CMD_KILL) {
		/* Scripts were flushed: load them again, then retry this command. */
		r->load_queued = false;
		queue_loads(w);
		if ((pe.kind == CMD_RESERVE ? put_batch(w, pe.req) : put_script(w, pe.kind, pe.req)) == 0)
			return;
		reply->type = REDIS_REPLY_ERROR; /* fall through as a failure */
	}
	if (pe.kind == CMD_LOAD) {
		r->load_queued = false;
		if (reply->type == REDIS_REPLY_ERROR)
			worker_log(w, "redis: SCRIPT LOAD failed: %s", reply->str);
		return;
	}
	if (pe.kind == CMD_RUN_ID) {
		if (reply->type != REDIS_REPLY_STRING || reply->len == 0) {
			begin_close(w, reply->type == REDIS_REPLY_ERROR ? reply->str : "no run id");
			return;
		}
		fence(w, reply->str);
		return;
	}
	if (pe.kind == CMD_CLIENT_ID) {
		if (reply->type != REDIS_REPLY_INTEGER) {
			begin_close(w, "CLIENT ID failed");
			return;
		}
		r->client_id = reply->integer;
		r->state = R_UP; /* reserves may go out now */
		return;
	}
	if (pe.kind == CMD_KILL) {
		/* Killed, or "No such client": either way it runs nothing more. */
		if (reply->type != REDIS_REPLY_ERROR || strstr(reply->str, "No such client")) {
			for (unsigned i = 0; i < r->n_dead; i++) {
				if (r->dead[i] == pe.client_id) {
					r->dead[i] = r->dead[--r->n_dead];
					break;
				}
			}
		} else {
			worker_log(w, "redis: CLIENT KILL ID %lld: %s", pe.client_id, reply->str);
		}
		return;
	}
	if (is_transfer(pe.kind)) {
		pe.req->redis_ops--;
		if (reply->type == REDIS_REPLY_ERROR) {
			worker_log(w, "redis: %s failed: %s", kind_name(pe.kind), reply->str);
			rebal_on_reply(w, pe.req, xstep(pe.kind), NULL, 0, 0);
		} else {
			rebal_on_reply(w, pe.req, xstep(pe.kind), reply->str, reply->len,
				       reply->type == REDIS_REPLY_INTEGER ? reply->integer : LLONG_MIN);
		}
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR && pe.kind != CMD_RESERVE && pe.kind != CMD_RETURN &&
	    transient(reply->str)) {
		/* Still owed: try again (it is idempotent), never drop it; and
		 * back off through a reconnect rather than spin on the error. */
		add_replay(w, pe.req, pe.kind);
		begin_close(w, reply->str);
		return;
	}
	if (pe.kind == CMD_RESERVE) {
		on_reserve_reply(w, pe.req, reply);
		return;
	}
	pe.req->redis_ops--;
	if (reply->type == REDIS_REPLY_ERROR) {
		worker_log(w, "redis: %s failed: %s", kind_name(pe.kind), reply->str);
		if (pe.kind == CMD_CONFIRM)
			flow_on_confirm_reply(w, pe.req); /* the ledger entry waits for reconcile */
		else
			flow_on_redis_failure(w, pe.req);
		return;
	}
	switch (pe.kind) {
	case CMD_RELEASE:
		flow_on_release_reply(w, pe.req);
		break;
	case CMD_CONFIRM:
		flow_on_confirm_reply(w, pe.req);
		break;
	case CMD_RETURN:
		if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
			flow_on_return_reply(w, pe.req, reply->str, reply->len);
		else
			flow_on_redis_failure(w, pe.req);
		break;
	}
}

void resv_on_recv(struct worker *w, int res)
{
	struct resv *r = w->resv;
	r->ops--;
	if (!connected(r)) {
		maybe_closed(w);
		return;
	}
	if (res <= 0) {
		begin_close(w, res == 0 ? "closed by the server" : strerror(-res));
		maybe_closed(w);
		return;
	}
	if (redisReaderFeed(r->reader, r->in, (size_t)res) != REDIS_OK) {
		begin_close(w, "reply reader failed");
		maybe_closed(w);
		return;
	}
	for (;;) {
		void *reply = NULL;
		if (redisReaderGetReply(r->reader, &reply) != REDIS_OK) {
			begin_close(w, r->reader->errstr[0] ? r->reader->errstr : "protocol error");
			break;
		}
		if (!reply)
			break;
		on_reply(w, reply);
		if (!connected(r))
			break;
	}
	if (connected(r)) {
		drain_replays(w);
		arm_recv(w);
	}
	maybe_closed(w);
}

static void arm_send(struct worker *w)
{
	struct resv *r = w->resv;
	unsigned idx = r->fill ^ 1;
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_send(sqe, r->fd, r->out[idx] + r->send_off, r->out_len[idx] - r->send_off,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(OP_REDIS_SEND, 0, 0));
	r->ops++;
}

void resv_on_send(struct worker *w, int res)
{
	struct resv *r = w->resv;
	r->ops--;
	if (!connected(r)) {
		maybe_closed(w);
		return;
	}
	if (res < 0) {
		begin_close(w, strerror(-res));
		maybe_closed(w);
		return;
	}
	unsigned idx = r->fill ^ 1;
	r->send_off += (size_t)res;
	if (r->send_off < r->out_len[idx]) {
		arm_send(w); /* short send: the rest, before anything newer */
		return;
	}
	r->out_len[idx] = 0;
	r->send_off = 0;
	r->sending = false;
}

void resv_before_wait(struct worker *w)
{
	struct resv *r = w->resv;
	if (r->n_used)
		flush_groups(w);
	if (!connected(r) || r->sending || r->out_len[r->fill] == 0)
		return;
	r->fill ^= 1; /* the filled buffer goes out; the turn fills the other */
	r->sending = true;
	r->send_off = 0;
	arm_send(w);
}

void resv_tick(struct worker *w)
{
	struct resv *r = w->resv;
	if (r->state == R_DOWN && w->now_mono_ms >= r->next_attempt_ms)
		start_connect(w);
	if (connected(r) && r->count > 0 &&
	    w->now_mono_ms - r->fifo[r->head].queued_ms > (int64_t)w->cfg->redis_timeout_ms) {
		char why[64];
		snprintf(why, sizeof(why), "no reply within %u ms", w->cfg->redis_timeout_ms);
		begin_close(w, why);
		maybe_closed(w);
	}
}
