/*
 * resv: the Redis side of a worker's orders. See resv.h.
 *
 * Every command addresses one SKU bucket, whose keys share a hash slot;
 * the command goes to the link (gateway/rlink.h) of the server that owns
 * the slot: the only one on a single server, the slot's master on a Redis
 * Cluster. A MOVED answer (the command did not run) updates the slot map
 * and sends the command again to the new owner; an ASK answer (the slot is
 * being migrated and the key is already on the target) sends it once to
 * the target after ASKING.
 */
#include "resv.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/bucket.h"
#include "../core/fmt.h"
#include "../core/keys.h"
#include "flow.h"
#include "rcmd.h"
#include "rebal.h"
#include "rlink.h"
#include "worker.h"

/* Room per order in a link's output buffer: a batch of n orders takes less
 * than n single commands would (the scripts themselves go in LOAD). */
#define CMD_ROOM 1024
/* Open SKU groups per turn (a power of two); more SKUs than this in one
 * turn flush the groups early. */
#define GROUPS 64
/* Links a worker may open: the masters of the cluster, and the new owners
 * MOVED answers name. */
#define LINKS_MAX RCL_MAP_NODES

/* This turn's reservations for one SKU bucket, chained through
 * req->b_next. The group keeps its SKU for the whole turn, even after a
 * full batch went out, so one bucket's orders always queue in one place,
 * in arrival order. */
struct group {
	char sku[ORDER_ID_MAX + 1];
	uint8_t sku_len; /* 0: free this turn */
	uint8_t bucket;
	struct req *head, *tail;
	unsigned n;
};

/* Open groups of one command kind: a turn's reservations (RCMD_RESERVE),
 * or the confirmations of up to redis.confirm_delay_ms (RCMD_CONFIRMS). */
struct groupset {
	uint8_t kind;
	struct group g[GROUPS];
	unsigned used[GROUPS]; /* indices of the groups opened since the last flush */
	unsigned n_used;
	unsigned waiting; /* orders in the groups */
};

struct resv {
	struct script_shas shas;
	unsigned cap;   /* commands a link may have waiting */
	size_t out_cap; /* bytes a link may queue per turn */
	struct rlink *links[LINKS_MAX];
	unsigned n_links;
	bool cluster;
	uint8_t slot[RCL_SLOTS]; /* slot -> link; unused on one server */

	/* Releases, confirmations and transfer steps owed while their link
	 * was down, in the order they were owed; each goes once the link that
	 * owns its key now is fenced. */
	struct req *replay_head, *replay_tail;
	unsigned replays;
	/* One slot's owner being asked of another master (probe_slots). */
	bool probe_out;
	unsigned probe_slot;

	/* Reserves and takes that met TRYAGAIN, or whose master (met through
	 * MOVED) was still being connected to, sent again on the next tick. */
	struct req *later_head, *later_tail;
	bool moved_to[LINKS_MAX]; /* the link was opened to follow MOVED or ASK */

	struct groupset reserves, confirms;
	unsigned batched; /* reservations and confirmations waiting in groups */
	/* When the oldest waiting confirmation must go (monotonic us). */
	int64_t confirms_due_us;

	/* Failed reserve and transfer calls: while a cluster is down each
	 * fails the same way, so one line a second says it with a count. */
	int64_t fail_logged_ms;
	unsigned fails_unlogged;
};

static bool is_transfer(uint8_t kind)
{
	return kind == RCMD_TAKE || kind == RCMD_GIVE || kind == RCMD_XDONE || kind == RCMD_XCHECK;
}

/* The bucket whose keys a command for req addresses: a transfer's take,
 * check and done touch the donor's ledger, everything else the home bucket. */
static unsigned key_bucket(const struct req *req, uint8_t kind)
{
	return kind == RCMD_TAKE || kind == RCMD_XDONE || kind == RCMD_XCHECK ? req->donor : req->bucket;
}

/* A transfer command's step, and a step's command: spelt out, so neither
 * enum's order depends on the other's. */
static enum resv_xstep xstep(uint8_t kind)
{
	switch (kind) {
	case RCMD_TAKE: return RESV_TAKE;
	case RCMD_GIVE: return RESV_GIVE;
	case RCMD_XDONE: return RESV_XDONE;
	default: return RESV_XCHECK; /* RCMD_XCHECK: callers pass transfer kinds only */
	}
}

static uint8_t xstep_kind(enum resv_xstep step)
{
	switch (step) {
	case RESV_TAKE: return RCMD_TAKE;
	case RESV_GIVE: return RCMD_GIVE;
	case RESV_XDONE: return RCMD_XDONE;
	case RESV_XCHECK: return RCMD_XCHECK;
	}
	return RCMD_XCHECK;
}

static const char *kind_name(uint8_t kind)
{
	switch (kind) {
	case RCMD_RESERVE: return "reserve";
	case RCMD_RELEASE: return "release";
	case RCMD_CONFIRM: return "confirm";
	case RCMD_CONFIRMS: return "confirm batch";
	case RCMD_RETURN: return "return";
	case RCMD_TAKE: return "transfer take";
	case RCMD_GIVE: return "transfer give";
	case RCMD_XDONE: return "transfer done";
	case RCMD_XCHECK: return "transfer check";
	default: return "?";
	}
}

static int add_link(struct worker *w, const char *host, unsigned port)
{
	struct resv *r = w->resv;
	if (r->n_links == LINKS_MAX) {
		snprintf(w->err, sizeof(w->err), "redis: more than %d servers", LINKS_MAX);
		return -ENOSPC;
	}
	int rc = rlink_new(w, r->n_links, host, port, r->cap, r->out_cap, &r->links[r->n_links]);
	if (rc < 0) {
		rlink_free(r->links[r->n_links]);
		r->links[r->n_links] = NULL;
		return rc;
	}
	return (int)r->n_links++;
}

int resv_init(struct worker *w, const struct script_shas *shas, const struct rcl_map *map)
{
	const struct cfg *cfg = w->cfg;
	struct resv *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	w->resv = r;
	r->shas = *shas;
	/* Every request may have one command queued, plus the script loads;
	 * with buckets, a rebalancing order two (a transfer's give and its
	 * renewed reservation). */
	r->cap = (cfg->redis_buckets > 1 ? 2 : 1) * cfg->max_inflight + cfg->max_connections + 16;
	if (cfg->redis_wait_replicas > 0) /* each reserve and take has its WAIT */
		r->cap *= 2;
	size_t scripts = 0;
	for (unsigned i = 0; i < SCRIPT_N; i++)
		scripts += strlen(script_src[i]) + 64;
	r->out_cap = (size_t)r->cap * CMD_ROOM + 2 * scripts;
	r->reserves.kind = RCMD_RESERVE;
	r->confirms.kind = RCMD_CONFIRMS;
	r->cluster = map->cluster;
	memcpy(r->slot, map->slot, sizeof(r->slot));
	for (unsigned i = 0; i < map->n; i++) {
		int rc = add_link(w, map->node[i].host, map->node[i].port);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void resv_destroy(struct worker *w)
{
	struct resv *r = w->resv;
	if (!r)
		return;
	for (unsigned i = 0; i < r->n_links; i++)
		rlink_free(r->links[i]);
	free(r);
	w->resv = NULL;
}

bool resv_up(const struct worker *w)
{
	const struct resv *r = w->resv;
	for (unsigned i = 0; i < r->n_links; i++)
		if (!rlink_up(r->links[i]))
			return false;
	return r->n_links > 0;
}

unsigned resv_pending(const struct worker *w)
{
	const struct resv *r = w->resv;
	unsigned n = r->replays + r->batched;
	for (unsigned i = 0; i < r->n_links; i++)
		n += rlink_waiting(r->links[i]);
	return n;
}

/* The link of the server owning bucket tag's slot. */
static struct rlink *route(struct worker *w, const char *tag)
{
	struct resv *r = w->resv;
	if (!r->cluster)
		return r->links[0];
	return r->links[r->slot[rcl_slot(tag, strlen(tag))]];
}

/* A master met through MOVED or ASK whose link has never been up: a
 * failover or a migration to a node this worker had no link to. Its
 * reserves and takes wait for the link; a known server that went down
 * answers 503 at once, as before. */
static bool new_master(const struct resv *r, const struct rlink *l)
{
	return r->moved_to[rlink_index(l)] && !rlink_ever_up(l);
}

/* The link for a reserve or take to bucket tag: the owner's; or, on a
 * cluster whose owner's link is down (not a new master still connecting),
 * the first other master that is up. The slot map changes only through
 * MOVED and probe_slots, and a master that died answers
 * nothing: after a failover it is another master's MOVED that names the
 * promoted replica (before it, MOVED names the dead master again, and the
 * orders hear 503 as they would have). */
static struct rlink *route_live(struct worker *w, const char *tag)
{
	struct resv *r = w->resv;
	struct rlink *owner = route(w, tag);
	if (!r->cluster || rlink_up(owner) || new_master(r, owner))
		return owner;
	for (unsigned i = 0; i < r->n_links; i++)
		if (rlink_up(r->links[i]))
			return r->links[i];
	return owner;
}

static int send_cmd(struct worker *w, struct rlink *to, uint8_t kind, struct req *req, struct rcmd *c)
{
	/* While the replicas are short a WAIT would come short too, and only
	 * one goes out at a time: a confirmation goes without one rather than
	 * hold its req behind it (a short WAIT would not stop it either). */
	bool confirm = kind == RCMD_CONFIRM || kind == RCMD_CONFIRMS;
	if (c->replicated && !(confirm && rlink_replicas_short(to)))
		return rlink_put_replicated(w, to, kind, req, c->argc, c->argv, c->lens);
	return rlink_put(w, to, kind, req, c->argc, c->argv, c->lens);
}

/* A reserve, or the take that starts a transfer, goes to a master that is
 * up even when its own is down: that one's MOVED names the slot's owner
 * (route_live). Everything else waits for its own master. */
static struct rlink *route_kind(struct worker *w, uint8_t kind, const char *tag)
{
	return kind == RCMD_RESERVE || kind == RCMD_TAKE ? route_live(w, tag) : route(w, tag);
}

/* One command of one order: release, confirm, return or a transfer step. */
static int put_script(struct worker *w, struct rlink *to, uint8_t kind, struct req *req)
{
	struct rcmd c;
	rcmd_single(&c, &w->resv->shas, w->cfg, kind, req, w->now_ms);
	return send_cmd(w, to ? to : route_kind(w, kind, c.tag), kind, req, &c);
}

/* One reserve script call for a chain of orders of one SKU bucket. */
static int put_batch(struct worker *w, struct rlink *to, struct req *head)
{
	struct rcmd c;
	rcmd_reserve(&c, &w->resv->shas, w->cfg, head);
	return send_cmd(w, to ? to : route_kind(w, RCMD_RESERVE, c.tag), RCMD_RESERVE, head, &c);
}

/* One confirm script call for a chain of orders of one SKU bucket. */
static int put_confirms(struct worker *w, struct rlink *to, struct req *head)
{
	struct rcmd c;
	rcmd_confirms(&c, &w->resv->shas, head);
	return send_cmd(w, to ? to : route(w, c.tag), RCMD_CONFIRMS, head, &c);
}

/* Appends req to a list linked through r_next; false if req is in one
 * already. A req has one Redis command owed at a time by design (a
 * transfer's give and clean-up have a req of their own); linking one
 * twice would make a list loop on itself and its worker spin. */
static bool r_append(struct req **head, struct req **tail, struct req *req)
{
	if (req->r_listed)
		return false;
	req->r_listed = true;
	req->r_next = NULL;
	if (*tail)
		(*tail)->r_next = req;
	else
		*head = req;
	*tail = req;
	return true;
}

static void add_replay(struct worker *w, struct req *req, uint8_t kind)
{
	struct resv *r = w->resv;
	if (req->r_listed) {
		/* A bug, not a state: say so, and drop this one command (its
		 * entry waits for reconcile) rather than loop for ever. */
		worker_warn(w, "redis: order %016" PRIx64 " already waits for a %s; its %s is not replayed "
			      "(left for flashgate reconcile)",
			   req->order_id, kind_name(req->replay), kind_name(kind));
		req->redis_ops--;
		return;
	}
	req->replay = kind;
	r_append(&r->replay_head, &r->replay_tail, req);
	r->replays++;
}

/* Sends the replays whose key's link is fenced; the others keep waiting,
 * in order. */
static void drain_replays(struct worker *w)
{
	struct resv *r = w->resv;
	struct req **link = &r->replay_head, *last = NULL;
	while (*link) {
		struct req *req = *link;
		char tag[BKT_TAG_MAX];
		bkt_tag(tag, req->order.sku, key_bucket(req, req->replay));
		struct rlink *to = route(w, tag);
		if (rlink_fenced(to) && put_script(w, to, req->replay, req) == 0) {
			*link = req->r_next;
			req->r_listed = false;
			r->replays--;
			continue;
		}
		last = req;
		link = &req->r_next;
	}
	r->replay_tail = last;
}

/* A reserve batch or a take that did not run and may run a moment later:
 * it met TRYAGAIN (its slot is being migrated and its keys are split
 * between two masters for the moment that takes), or its master was just
 * met and is still being connected to. It goes again on the next tick, to
 * wherever its slot is then, up to RESV_TRYAGAIN_MAX times before its
 * orders hear 503. The req's r_next and replay fields hold it in this
 * list: a reserve or take in flight is never in the replay list. */
static bool try_later(struct worker *w, uint8_t kind, struct req *req)
{
	struct resv *r = w->resv;
	if ((kind != RCMD_RESERVE && kind != RCMD_TAKE) || req->tryagains >= RESV_TRYAGAIN_MAX ||
	    req->r_listed)
		return false;
	req->tryagains++;
	req->replay = kind;
	return r_append(&r->later_head, &r->later_tail, req);
}

/* A reserve or take that cannot go because its master's link is not
 * connected waits for it on the later list if that master is new. */
static bool wait_for_new_link(struct worker *w, struct rlink *to, uint8_t kind, struct req *req)
{
	if (!new_master(w->resv, to) || !try_later(w, kind, req))
		return false;
	w->stats.link_waits++;
	return true;
}

static uint32_t group_hash(const struct req *q)
{
	uint32_t h = 2166136261u ^ q->bucket;
	for (unsigned i = 0; i < q->order.sku_len; i++)
		h = (h ^ (unsigned char)q->order.sku[i]) * 16777619u;
	return h;
}

/* Answers every order of a chain that will get no reply, 503 with
 * reason. sent: the script may have run, so its reservations are released
 * once Redis is back (a no-op for those it did not make). */
static void fail_chain(struct worker *w, struct req *head, bool sent, enum metrics_unavailable reason)
{
	for (struct req *q = head, *next; q; q = next) {
		next = q->b_next; /* q may go back to the pool below */
		q->b_next = NULL;
		if (sent) {
			add_replay(w, q, RCMD_RELEASE); /* the reserve's op becomes the release's */
		} else {
			q->redis_ops--;
		}
		flow_on_redis_failure(w, q, reason);
	}
}

/* Answers a reserve chain that could not be sent (rc from put_batch):
 * it never ran, so nothing to release. */
static void fail_unsent(struct worker *w, struct req *head, int rc)
{
	if (rc == -EAGAIN) { /* rlink: replicas short, a WAIT is out */
		w->stats.replication_short++;
		fail_chain(w, head, false, UNAV_REPLICATION);
		return;
	}
	fail_chain(w, head, false, UNAV_REDIS);
}

/* Each order of a confirm chain waits for its own replay (one
 * confirmation each); their Redis operations carry over. */
static void replay_confirms(struct worker *w, struct req *head)
{
	for (struct req *q = head, *next; q; q = next) {
		next = q->b_next;
		q->b_next = NULL;
		add_replay(w, q, RCMD_CONFIRM);
	}
}

static void emit_group(struct worker *w, struct groupset *set, struct group *g)
{
	struct resv *r = w->resv;
	struct req *head = g->head;
	unsigned n = g->n;
	r->batched -= n;
	set->waiting -= n;
	g->head = g->tail = NULL;
	g->n = 0;
	if (set->kind == RCMD_CONFIRMS) {
		if (put_confirms(w, NULL, head) < 0) {
			replay_confirms(w, head);
			return;
		}
		w->stats.confirm_calls++;
		w->stats.confirm_orders += n;
		return;
	}
	int rc = put_batch(w, NULL, head);
	if (rc < 0) {
		char tag[BKT_TAG_MAX];
		bkt_tag(tag, head->order.sku, head->bucket);
		if (rc != -ENOTCONN || !wait_for_new_link(w, route(w, tag), RCMD_RESERVE, head))
			fail_unsent(w, head, rc);
		return;
	}
	w->stats.reserve_calls++;
	w->stats.reserve_orders += n;
}

/* Sends every open group of a set: the end of a turn, or no room for
 * another SKU bucket. */
static void flush_groups(struct worker *w, struct groupset *set)
{
	for (unsigned i = 0; i < set->n_used; i++) {
		struct group *g = &set->g[set->used[i]];
		if (g->n)
			emit_group(w, set, g);
		g->sku_len = 0;
	}
	set->n_used = 0;
}

/* Adds q to the open group of its SKU bucket in set (a new group if none);
 * a full group goes out at once. */
static void group_add(struct worker *w, struct groupset *set, struct req *q)
{
	const struct order_req *o = &q->order;
	struct group *g = NULL;
	if (set->n_used == GROUPS) /* every group is taken: send them, start afresh */
		flush_groups(w, set);
	for (unsigned i = group_hash(q) & (GROUPS - 1); !g; i = (i + 1) & (GROUPS - 1)) {
		struct group *c = &set->g[i];
		if (c->sku_len == 0) {
			memcpy(c->sku, o->sku, o->sku_len);
			c->sku_len = o->sku_len;
			c->bucket = q->bucket;
			set->used[set->n_used++] = i;
			g = c;
		} else if (c->sku_len == o->sku_len && c->bucket == q->bucket &&
			   memcmp(c->sku, o->sku, o->sku_len) == 0) {
			g = c;
		}
	}
	q->b_next = NULL;
	if (g->n == 0)
		g->head = q;
	else
		g->tail->b_next = q;
	g->tail = q;
	g->n++;
	set->waiting++;
	w->resv->batched++;
	q->redis_ops++;
	if (g->n == RESV_BATCH_MAX)
		emit_group(w, set, g);
}

int resv_reserve(struct worker *w, struct req *req)
{
	struct resv *r = w->resv;
	char tag[BKT_TAG_MAX];
	bkt_tag(tag, req->order.sku, req->bucket);
	struct rlink *to = route_live(w, tag);
	/* A master just met through MOVED is connecting: its orders wait for
	 * it (emit_group) rather than hear 503. */
	if (!rlink_up(to) && !new_master(r, to))
		return -ENOTCONN;
	/* Counted as if each went alone, so a flush always has room. */
	if (rlink_waiting(to) + r->batched + 1 >= r->cap)
		return -ENOBUFS;
	group_add(w, &r->reserves, req);
	return 0;
}

static int put_now(struct worker *w, uint8_t kind, struct req *req)
{
	int rc = put_script(w, NULL, kind, req);
	if (rc == 0)
		req->redis_ops++;
	return rc;
}

int resv_return(struct worker *w, struct req *req)
{
	return put_now(w, RCMD_RETURN, req);
}

int resv_transfer(struct worker *w, struct req *req, enum resv_xstep step)
{
	return put_now(w, xstep_kind(step), req);
}

void resv_transfer_later(struct worker *w, struct req *req, enum resv_xstep step)
{
	req->redis_ops++;
	add_replay(w, req, xstep_kind(step));
}

/* Release and confirm are never refused: what cannot go now goes later. */
static void queue_or_replay(struct worker *w, struct req *req, uint8_t kind)
{
	char tag[BKT_TAG_MAX];
	bkt_tag(tag, req->order.sku, req->bucket);
	struct rlink *to = route(w, tag);
	req->redis_ops++;
	if (rlink_fenced(to) && !w->resv->replay_head && put_script(w, to, kind, req) == 0)
		return;
	add_replay(w, req, kind);
	if (kind == RCMD_RELEASE)
		flow_on_redis_failure(w, req, UNAV_REDIS); /* answer now; the stock follows */
}

void resv_release(struct worker *w, struct req *req)
{
	queue_or_replay(w, req, RCMD_RELEASE);
}

/* Confirmations for one bucket go as one call, like its reservations.
 * The client was answered on Kafka's word, so they also wait up to
 * redis.confirm_delay_ms for more: below the peak a loop turn holds one
 * order, and each would otherwise be a script call of its own, half of
 * Redis's calls. Not an order with an Idempotency-Key: until its entry
 * leaves the ledger a repeat of the key hears 409 in_progress, and its
 * client, having heard 202, must get the order back. It takes the waiting
 * ones along this turn. */
void resv_confirm(struct worker *w, struct req *req)
{
	struct resv *r = w->resv;
	char tag[BKT_TAG_MAX];
	bkt_tag(tag, req->order.sku, req->bucket);
	if (!rlink_fenced(route(w, tag)) || r->replay_head) {
		queue_or_replay(w, req, RCMD_CONFIRM);
		return;
	}
	if (r->confirms.waiting == 0)
		r->confirms_due_us = w->now_mono_us + (int64_t)w->cfg->redis_confirm_delay_ms * 1000;
	/* A waiting confirmation holds its req: a quarter of the pool at most,
	 * or new orders would find it empty. */
	if (req->idem_len || r->confirms.waiting >= w->cfg->max_inflight / 4)
		r->confirms_due_us = w->now_mono_us;
	group_add(w, &r->confirms, req);
}

void resv_link_lost(struct worker *w, struct rlink *l, uint8_t kind, struct req *req)
{
	(void)l;
	switch (kind) {
	case RCMD_PROBE: /* asked again next tick */
		w->resv->probe_out = false;
		return;
	case RCMD_RESERVE:
		/* A reserve whose reply was lost may have run: release it when
		 * Redis is back (a no-op if it never ran). */
		fail_chain(w, req, true, UNAV_REDIS);
		return;
	case RCMD_RETURN: /* the admin retries; nothing to replay */
		req->redis_ops--;
		flow_on_redis_failure(w, req, UNAV_REDIS);
		return;
	case RCMD_TAKE:
	case RCMD_GIVE:
	case RCMD_XDONE:
	case RCMD_XCHECK:
		req->redis_ops--;
		rebal_on_lost(w, req, xstep(kind), UNAV_REDIS);
		return;
	case RCMD_CONFIRM:
		add_replay(w, req, RCMD_CONFIRM);
		return;
	case RCMD_CONFIRMS:
		replay_confirms(w, req);
		return;
	default: /* RCMD_RELEASE */
		add_replay(w, req, RCMD_RELEASE);
		flow_on_redis_failure(w, req, UNAV_REDIS);
		return;
	}
}

void resv_link_ready(struct worker *w, struct rlink *l)
{
	(void)l;
	if (w->resv->replay_head)
		drain_replays(w);
}

/* rlink's answer for a replicated command whose WAIT came short. */
static bool unreplicated_reply(const struct rslot *reply)
{
	return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOREPLICAS", 10) == 0;
}

/* Errors after which a release or confirm should simply be tried again. */
static bool transient(const char *err)
{
	static const char *const words[] = {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "CLUSTERDOWN", NULL};
	for (const char *const *wd = words; *wd; wd++)
		if (strncmp(err, *wd, strlen(*wd)) == 0)
			return true;
	return false;
}

static void log_call_failure(struct worker *w, uint8_t kind, const char *err)
{
	struct resv *r = w->resv;
	if (w->now_mono_ms - r->fail_logged_ms < 1000) {
		r->fails_unlogged++;
		return;
	}
	if (r->fails_unlogged)
		worker_warn(w, "redis: %s failed: %s (%u more failed calls since the last such line)", kind_name(kind),
			   err, r->fails_unlogged);
	else
		worker_warn(w, "redis: %s failed: %s", kind_name(kind), err);
	r->fail_logged_ms = w->now_mono_ms;
	r->fails_unlogged = 0;
}

/* A batch's answer: one result per order, in the order sent. */
static void on_reserve_reply(struct worker *w, struct req *head, const struct rslot *reply)
{
	if (reply->type == REDIS_REPLY_ERROR) {
		/* The orders before the failing one may be written: release all.
		 * Too few replicas is logged by the link, once. */
		bool unreplicated = unreplicated_reply(reply);
		if (!unreplicated)
			log_call_failure(w, RCMD_RESERVE, reply->str);
		fail_chain(w, head, true, unreplicated ? UNAV_REPLICATION : UNAV_REDIS);
		return;
	}
	unsigned i = 0;
	for (struct req *q = head, *next; q; q = next, i++) {
		next = q->b_next; /* q may go back to the pool in flow */
		q->b_next = NULL;
		q->redis_ops--;
		const struct relem *e = reply->type == REDIS_REPLY_ARRAY && i < reply->n_elems ? &reply->elem[i] : NULL;
		struct reserve_result res;
		if (e && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS))
			script_decode_reserve(e->str, e->len, &res);
		else
			script_decode_reserve("", 0, &res); /* RESERVE_BAD: logged there, answered 503 */
		flow_on_reserve_reply(w, q, &res);
	}
}

/* The same command again, on link to. */
static int resend(struct worker *w, struct rlink *to, uint8_t kind, struct req *req)
{
	switch (kind) {
	case RCMD_RESERVE: return put_batch(w, to, req);
	case RCMD_CONFIRMS: return put_confirms(w, to, req);
	default: return put_script(w, to, kind, req);
	}
}

/* A confirm batch's answer: each order's entry moved (or, after an
 * error, waits for reconcile). */
static void on_confirms_reply(struct worker *w, struct rlink *l, struct req *head, const struct rslot *reply)
{
	if (reply->type == REDIS_REPLY_ERROR) {
		bool again = strncmp(reply->str, "TRYAGAIN", 8) == 0;
		if (again || transient(reply->str)) {
			replay_confirms(w, head);
			if (!again)
				rlink_close(w, l, reply->str);
			return;
		}
		/* NOREPLICAS: it ran on the master; the link logged the WAIT. */
		if (!unreplicated_reply(reply))
			log_call_failure(w, RCMD_CONFIRMS, reply->str);
	}
	for (struct req *q = head, *next; q; q = next) {
		next = q->b_next; /* q may go back to the pool in flow */
		q->b_next = NULL;
		q->redis_ops--;
		flow_on_confirm_reply(w, q);
	}
}

/* The link a MOVED or ASK answer names (opened if new: it connects on the
 * next tick); a MOVED also gives it the slot. The link's index, or -errno. */
static int follow(struct worker *w, struct rlink *from, const char *msg)
{
	struct resv *r = w->resv;
	unsigned slot, port;
	char host[64];
	if (!r->cluster || sscanf(msg, "%*s %u %63[^:]:%u", &slot, host, &port) != 3 || slot >= RCL_SLOTS) {
		worker_warn(w, "redis %s: unexpected redirection '%.80s'", rlink_where(from), msg);
		return -EPROTO;
	}
	int idx = -1;
	for (unsigned i = 0; i < r->n_links && idx < 0; i++)
		if (rlink_is(r->links[i], host, port))
			idx = (int)i;
	if (idx < 0) {
		worker_log(w, "redis: slot %u is served by %s:%u now; connecting to it", slot, host, port);
		if ((idx = add_link(w, host, port)) < 0) {
			worker_warn(w, "redis: %s", w->err);
			return idx;
		}
		r->moved_to[idx] = true;
	}
	if (strncmp(msg, "MOVED ", 6) == 0)
		r->slot[slot] = (uint8_t)idx;
	return idx;
}

/* Sends a command again after MOVED or ASK: to the link the answer
 * names (opened if new); after ASK, preceded by ASKING. The command did not
 * run where it went. -ENOTCONN when that link is not up yet. */
static int redirect(struct worker *w, struct rlink *from, uint8_t kind, struct req *req, const char *msg)
{
	struct resv *r = w->resv;
	bool ask = strncmp(msg, "ASK ", 4) == 0;
	int idx = follow(w, from, msg);
	if (idx < 0)
		return idx;
	w->stats.redirects++;
	struct rlink *to = r->links[idx];
	int rc = 0;
	if (ask) {
		const char *argv[1] = {"ASKING"};
		size_t lens[1] = {6};
		rc = rlink_put(w, to, RLINK_ASKING, NULL, 1, argv, lens);
	}
	if (rc == 0)
		rc = resend(w, to, kind, req);
	/* A master just met is connected to on the next tick: wait for it. */
	if (rc == -ENOTCONN && wait_for_new_link(w, to, kind, req))
		return 0;
	return rc;
}

static bool is_redirect(const struct rslot *reply)
{
	return reply->type == REDIS_REPLY_ERROR &&
	       (strncmp(reply->str, "MOVED ", 6) == 0 || strncmp(reply->str, "ASK ", 4) == 0);
}

/* Replays wait for the link that owns their key, and a master that died
 * never comes back to say it lost its slots. Reserves learn the new owner
 * from another master's MOVED (route_live); a bucket that sells nothing
 * more would keep its confirmations and releases waiting until shutdown.
 * So, once a tick while a replay's master is down, another master that is
 * up is asked about one key of its bucket (EXISTS, which runs nothing):
 * its MOVED names the dead master until the failover, then the promoted
 * replica, which the replays follow once its link is up. One probe per
 * worker at a time, for the first such replay. */
static void probe_slots(struct worker *w)
{
	struct resv *r = w->resv;
	if (!r->cluster || r->probe_out)
		return;
	for (struct req *q = r->replay_head; q; q = q->r_next) {
		char tag[BKT_TAG_MAX];
		bkt_tag(tag, q->order.sku, key_bucket(q, q->replay));
		struct rlink *owner = route(w, tag);
		if (rlink_up(owner) || new_master(r, owner))
			continue; /* it replays, or is being connected to, on its own */
		struct rlink *live = route_live(w, tag);
		if (live == owner)
			return; /* no master up to ask */
		char key[BKT_TAG_MAX + 8];
		int len = snprintf(key, sizeof(key), KEYS_SKU_FMT, tag);
		const char *argv[2] = {"EXISTS", key};
		size_t lens[2] = {6, (size_t)len};
		if (rlink_put(w, live, RCMD_PROBE, NULL, 2, argv, lens) == 0) {
			r->probe_out = true;
			r->probe_slot = rcl_slot(tag, strlen(tag));
		}
		return;
	}
}

static void on_probe_reply(struct worker *w, struct rlink *l, const struct rslot *reply)
{
	struct resv *r = w->resv;
	r->probe_out = false;
	unsigned before = r->slot[r->probe_slot];
	if (reply->type == REDIS_REPLY_INTEGER)
		r->slot[r->probe_slot] = (uint8_t)rlink_index(l); /* the master asked has it now */
	else if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "MOVED ", 6) == 0 &&
		 follow(w, l, reply->str) < 0)
		return; /* logged there; asked again next tick */
	if (r->slot[r->probe_slot] == before)
		return; /* still the dead master's: asked again next tick */
	w->stats.slots_probed++;
	drain_replays(w); /* to a link already up; a new one drains when it is */
}

static void send_later(struct worker *w)
{
	struct resv *r = w->resv;
	struct req *q = r->later_head;
	r->later_head = r->later_tail = NULL;
	for (struct req *next; q; q = next) {
		next = q->r_next;
		q->r_next = NULL;
		q->r_listed = false;
		uint8_t kind = q->replay;
		q->replay = 0;
		int rc = resend(w, NULL, kind, q);
		/* Its link not connected yet (a new master's still opening, or
		 * one that dropped): another tick, within the same bound. */
		if (rc == 0 || (rc == -ENOTCONN && try_later(w, kind, q)))
			continue;
		if (kind == RCMD_RESERVE) {
			fail_unsent(w, q, rc);
		} else {
			q->redis_ops--;
			rebal_on_reply(w, q, xstep(kind), NULL, 0, 0);
		}
	}
}

void resv_link_reply(struct worker *w, struct rlink *l, uint8_t kind, struct req *req, struct rslot *reply)
{
	if (kind == RCMD_PROBE) {
		on_probe_reply(w, l, reply);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "TRYAGAIN", 8) == 0 &&
	    try_later(w, kind, req)) {
		w->stats.tryagains++;
		return;
	}
	if (is_redirect(reply)) {
		int rc = redirect(w, l, kind, req, reply->str);
		if (rc == 0)
			return;
		if (kind == RCMD_RESERVE) {
			fail_unsent(w, req, rc);
			return;
		}
		if (kind == RCMD_RELEASE || kind == RCMD_CONFIRM) {
			req->redis_ops--;
			queue_or_replay(w, req, kind);
			return;
		}
		if (kind == RCMD_CONFIRMS) {
			replay_confirms(w, req);
			return;
		}
	} else if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
		/* Scripts were flushed: load them again, then retry this command. */
		rlink_reload_scripts(w, l);
		if (resend(w, l, kind, req) == 0)
			return;
	}
	if (kind == RCMD_CONFIRMS) {
		on_confirms_reply(w, l, req, reply);
		return;
	}
	if (is_transfer(kind)) {
		req->redis_ops--;
		if (unreplicated_reply(reply)) {
			rebal_on_lost(w, req, xstep(kind), UNAV_REPLICATION); /* it ran; the link logged it */
		} else if (reply->type == REDIS_REPLY_ERROR) {
			log_call_failure(w, kind, reply->str);
			rebal_on_reply(w, req, xstep(kind), NULL, 0, 0);
		} else {
			rebal_on_reply(w, req, xstep(kind), reply->str, reply->len,
				       reply->type == REDIS_REPLY_INTEGER ? reply->integer : LLONG_MIN);
		}
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR && (kind == RCMD_RELEASE || kind == RCMD_CONFIRM) &&
	    strncmp(reply->str, "TRYAGAIN", 8) == 0) {
		/* Its slot is being migrated and its keys are split between the
		 * two masters for a moment: it goes again with the next replays. */
		add_replay(w, req, kind);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR && kind != RCMD_RESERVE && kind != RCMD_RETURN &&
	    transient(reply->str)) {
		/* Still owed: try again (it is idempotent), never drop it; and
		 * back off through a reconnect rather than spin on the error. */
		add_replay(w, req, kind);
		rlink_close(w, l, reply->str);
		return;
	}
	if (kind == RCMD_RESERVE) {
		on_reserve_reply(w, req, reply);
		return;
	}
	req->redis_ops--;
	if (reply->type == REDIS_REPLY_ERROR && kind == RCMD_CONFIRM && unreplicated_reply(reply)) {
		flow_on_confirm_reply(w, req); /* as on_confirms_reply */
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		if (unreplicated_reply(reply)) { /* a return; the link logged it */
			flow_on_redis_failure(w, req, UNAV_REPLICATION);
			return;
		}
		log_call_failure(w, kind, reply->str);
		if (kind == RCMD_CONFIRM)
			flow_on_confirm_reply(w, req); /* the ledger entry waits for reconcile */
		else if (kind == RCMD_RELEASE)
			/* Refused (a Redis that cannot persist: MISCONF): the
			 * reservation stays in the ledger and reconcile settles it
			 * by its policy, so its client may not hear that nothing
			 * was taken. (An order a reserve error failed was told
			 * already.) */
			flow_on_redis_failure(w, req, UNAV_KAFKA_UNKNOWN);
		else
			flow_on_redis_failure(w, req, UNAV_REDIS);
		return;
	}
	switch (kind) {
	case RCMD_RELEASE:
		flow_on_release_reply(w, req);
		break;
	case RCMD_CONFIRM:
		flow_on_confirm_reply(w, req);
		break;
	case RCMD_RETURN:
		if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
			flow_on_return_reply(w, req, reply->str, reply->len);
		else
			flow_on_redis_failure(w, req, UNAV_REDIS);
		break;
	}
}

static struct rlink *link_at(struct worker *w, unsigned index)
{
	return index < w->resv->n_links ? w->resv->links[index] : NULL;
}

void resv_on_connect(struct worker *w, unsigned link, int res)
{
	struct rlink *l = link_at(w, link);
	if (l)
		rlink_on_connect(w, l, res);
}

void resv_on_recv(struct worker *w, unsigned link, int res)
{
	struct rlink *l = link_at(w, link);
	if (l)
		rlink_on_recv(w, l, res);
}

void resv_on_send(struct worker *w, unsigned link, int res)
{
	struct rlink *l = link_at(w, link);
	if (l)
		rlink_on_send(w, l, res);
}

void resv_before_wait(struct worker *w)
{
	struct resv *r = w->resv;
	if (r->reserves.n_used)
		flush_groups(w, &r->reserves);
	/* Draining, confirmations go at once: they are all that is left. */
	if (r->confirms.n_used &&
	    (r->confirms.waiting == 0 || w->draining || w->now_mono_us >= r->confirms_due_us))
		flush_groups(w, &r->confirms);
	for (unsigned i = 0; i < r->n_links; i++)
		rlink_before_wait(w, r->links[i]);
}

int64_t resv_wait_us(const struct worker *w)
{
	const struct resv *r = w->resv;
	if (r->confirms.waiting == 0)
		return -1;
	int64_t left = r->confirms_due_us - w->now_mono_us;
	return left > 0 ? left : 0;
}

void resv_tick(struct worker *w)
{
	struct resv *r = w->resv;
	if (r->later_head)
		send_later(w);
	if (r->replay_head) {
		/* Replays added while their link stayed up (a retried transfer
		 * step, a TRYAGAIN) would otherwise wait for a reconnect. */
		drain_replays(w);
		probe_slots(w);
	}
	for (unsigned i = 0; i < r->n_links; i++)
		rlink_tick(w, r->links[i]);
}

_Static_assert(RESV_BATCH_MAX <= RLINK_ELEMS_MAX, "a batch's reply must fit the reply slot");
