/* rcmd: the words of each Redis command. See rcmd.h. */
#include "rcmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void word(struct rcmd *c, const char *s)
{
	c->argv[c->argc] = s;
	c->lens[c->argc++] = strlen(s);
}

static void word_n(struct rcmd *c, const char *s, size_t n)
{
	c->argv[c->argc] = s;
	c->lens[c->argc++] = n;
}

/* KEYS are the bucket's three keys and each keyed order's idem key; ARGV
 * the ttl, the bucket count and seven fields per order (script.h). */
void rcmd_reserve(struct rcmd *c, const struct script_shas *shas, const struct cfg *cfg, const struct req *head)
{
	unsigned keyed = 0;
	c->argc = 0;
	/* A reservation lost in a failover after its order was accepted would
	 * sell its units twice: with wait_replicas, it counts once replicated. */
	c->replicated = true;
	bkt_tag(c->tag, head->order.sku, head->bucket);
	snprintf(c->key[0], KEYS_MAX, KEYS_SKU_FMT, c->tag);
	snprintf(c->key[1], KEYS_MAX, KEYS_USERS_FMT, c->tag);
	snprintf(c->key[2], KEYS_MAX, KEYS_PENDING_FMT, c->tag);
	for (const struct req *q = head; q; q = q->b_next)
		if (q->idem_len)
			snprintf(c->idem_key[keyed++], KEYS_MAX, KEYS_IDEM_FMT, c->tag, (size_t)q->order.user_len,
				 q->order.user_id, q->idem);
	snprintf(c->num[0], sizeof(c->num[0]), "%u", 3 + keyed);
	snprintf(c->num[1], sizeof(c->num[1]), "%u", cfg->idempotency_ttl_s);
	snprintf(c->num[2], sizeof(c->num[2]), "%u", cfg->redis_buckets);
	word(c, "EVALSHA");
	word(c, shas->sha[SCRIPT_RESERVE]);
	word(c, c->num[0]);
	for (int k = 0; k < 3; k++)
		word(c, c->key[k]);
	for (unsigned k = 0; k < keyed; k++)
		word(c, c->idem_key[k]);
	word(c, c->num[1]);
	word(c, c->num[2]);
	/* Per order without snprintf: this runs for every reservation. */
	unsigned i = 0, key_no = 0;
	for (const struct req *q = head; q; q = q->b_next, i++) {
		struct rcmd_order *f = &c->order[i];
		oid_format(q->order_id, f->id);
		word_n(c, q->order.user_id, q->order.user_len);
		word_n(c, f->qty, (size_t)(fmt_u64(f->qty, q->order.qty) - f->qty));
		word_n(c, f->id, OID_TEXT_LEN);
		word_n(c, f->ms, (size_t)(fmt_i64(f->ms, q->accepted_at_ms) - f->ms));
		/* KEYS[1..3] are the bucket's; the idem keys follow, in order. */
		word_n(c, f->key_index,
		       (size_t)(fmt_u64(f->key_index, q->idem_len ? 4 + key_no++ : 0) - f->key_index));
		word_n(c, q->idem, q->idem_len);
		word_n(c, f->cap, (size_t)(fmt_u64(f->cap, q->cap) - f->cap));
	}
}

void rcmd_confirms(struct rcmd *c, const struct script_shas *shas, const struct req *head)
{
	c->argc = 0;
	/* A confirmation a failover loses puts its entry back in the ledger:
	 * the order is in the topic, yet a repeat of its Idempotency-Key hears
	 * 409 in_progress and `stock release` not_settled until reconcile
	 * settles it, 2 x kafka.message_timeout_ms later at the soonest.
	 * With wait_replicas it waits for the replicas too, and one whose
	 * master dies before its WAIT answers is replayed to the promoted
	 * replica (resv). */
	c->replicated = true;
	bkt_tag(c->tag, head->order.sku, head->bucket);
	snprintf(c->key[0], KEYS_MAX, KEYS_PENDING_FMT, c->tag);
	snprintf(c->key[1], KEYS_MAX, KEYS_ORDERS_FMT, c->tag);
	word(c, "EVALSHA");
	word(c, shas->sha[SCRIPT_CONFIRM]);
	word(c, "2");
	word(c, c->key[0]);
	word(c, c->key[1]);
	unsigned i = 0;
	for (const struct req *q = head; q && i < RESV_BATCH_MAX; q = q->b_next, i++) {
		oid_format(q->order_id, c->order[i].id);
		word_n(c, c->order[i].id, OID_TEXT_LEN);
	}
}

/* One step of a transfer of units from bucket req->donor to req->bucket
 * (script.h: take, give, then HDEL of the donor's entry). The transfer's
 * id is the order's id and its take count: unique, because an order takes
 * at most once per count. */
static void transfer_step(struct rcmd *c, const struct script_shas *shas, const struct cfg *cfg, uint8_t kind,
			  const struct req *req, int64_t now_ms)
{
	char home[BKT_TAG_MAX];
	bkt_tag(home, req->order.sku, req->bucket);
	bkt_tag(c->tag, req->order.sku, req->donor);
	snprintf(c->xid, sizeof(c->xid), "%s:%u", c->id, req->takes);
	/* A take lost in a failover while its give stands would count the
	 * units twice. A give lost after its answer came back would lose them:
	 * the done that follows clears the donor's entry they are found by. A
	 * check's WAIT covers the take it found. So these wait for the
	 * replicas; a lost done only leaves an entry to clear. */
	c->replicated = kind == RCMD_TAKE || kind == RCMD_GIVE || kind == RCMD_XCHECK;
	switch (kind) {
	case RCMD_TAKE:
		snprintf(c->key[0], KEYS_MAX, KEYS_SKU_FMT, c->tag);
		snprintf(c->key[1], KEYS_MAX, KEYS_XFER_FMT, c->tag);
		snprintf(c->num[0], sizeof(c->num[0]), "%u", req->bucket);
		snprintf(c->num[1], sizeof(c->num[1]), "%" PRIu32,
			 req->order.qty > req->home_avail ? req->order.qty - req->home_avail : 1);
		snprintf(c->num[2], sizeof(c->num[2]), "%u", cfg->redis_buckets);
		snprintf(c->num[3], sizeof(c->num[3]), "%" PRId64, now_ms);
		word(c, "EVALSHA");
		word(c, shas->sha[SCRIPT_TAKE]);
		word(c, "2");
		word(c, c->key[0]);
		word(c, c->key[1]);
		word(c, c->xid);
		for (int k = 0; k < 4; k++)
			word(c, c->num[k]);
		break;
	case RCMD_GIVE:
		memcpy(c->tag, home, sizeof(home));
		snprintf(c->key[0], KEYS_MAX, KEYS_SKU_FMT, home);
		snprintf(c->key[1], KEYS_MAX, KEYS_XIN_FMT, home, c->xid);
		snprintf(c->num[0], sizeof(c->num[0]), "%" PRIu32, req->moved);
		snprintf(c->num[1], sizeof(c->num[1]), "%u", KEYS_XIN_TTL_S);
		word(c, "EVALSHA");
		word(c, shas->sha[SCRIPT_GIVE]);
		word(c, "2");
		word(c, c->key[0]);
		word(c, c->key[1]);
		word(c, c->num[0]);
		word(c, c->num[1]);
		break;
	case RCMD_XCHECK:
		snprintf(c->key[0], KEYS_MAX, KEYS_XFER_FMT, c->tag);
		word(c, "EVALSHA");
		word(c, shas->sha[SCRIPT_XCHECK]);
		word(c, "1");
		word(c, c->key[0]);
		word(c, c->xid);
		break;
	default: /* RCMD_XDONE */
		snprintf(c->key[0], KEYS_MAX, KEYS_XFER_FMT, c->tag);
		word(c, "HDEL");
		word(c, c->key[0]);
		word(c, c->xid);
		break;
	}
}

void rcmd_single(struct rcmd *c, const struct script_shas *shas, const struct cfg *cfg, uint8_t kind,
		 const struct req *req, int64_t now_ms)
{
	c->argc = 0;
	oid_format(req->order_id, c->id);
	if (kind == RCMD_TAKE || kind == RCMD_GIVE || kind == RCMD_XDONE || kind == RCMD_XCHECK) {
		transfer_step(c, shas, cfg, kind, req, now_ms);
		return;
	}
	bkt_tag(c->tag, req->order.sku, req->bucket);
	snprintf(c->key[0], KEYS_MAX, KEYS_SKU_FMT, c->tag);
	snprintf(c->key[1], KEYS_MAX, KEYS_USERS_FMT, c->tag);
	snprintf(c->key[2], KEYS_MAX, KEYS_PENDING_FMT, c->tag);
	switch (kind) {
	case RCMD_RETURN:
		snprintf(c->key[3], KEYS_MAX, KEYS_ORDERS_FMT, c->tag);
		snprintf(c->key[4], KEYS_MAX, KEYS_RETURNED_FMT, c->tag);
		/* A return lost in a failover leaves its units sold: the admin
		 * hears 503 and releases again (a no-op if it had landed). */
		c->replicated = true;
		word(c, "EVALSHA");
		word(c, shas->sha[SCRIPT_RETURN]);
		word(c, "5");
		word(c, c->key[0]);
		word(c, c->key[1]);
		word(c, c->key[3]);
		word(c, c->key[4]);
		word(c, c->key[2]);
		word(c, c->id);
		break;
	case RCMD_CONFIRM:
		snprintf(c->key[3], KEYS_MAX, KEYS_ORDERS_FMT, c->tag);
		c->replicated = true; /* as rcmd_confirms */
		word(c, "EVALSHA");
		word(c, shas->sha[SCRIPT_CONFIRM]);
		word(c, "2");
		word(c, c->key[2]);
		word(c, c->key[3]);
		word(c, c->id);
		break;
	default: /* RCMD_RELEASE */
		/* A lost release leaves a ledger entry a replay or reconcile settles. */
		c->replicated = false;
		word(c, "EVALSHA");
		word(c, shas->sha[SCRIPT_RELEASE]);
		word(c, req->idem_len ? "4" : "3");
		word(c, c->key[0]);
		word(c, c->key[1]);
		word(c, c->key[2]);
		if (req->idem_len) {
			snprintf(c->key[3], KEYS_MAX, KEYS_IDEM_FMT, c->tag, (size_t)req->order.user_len,
				 req->order.user_id, req->idem);
			word(c, c->key[3]);
		}
		word(c, c->id);
		break;
	}
}
