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

#define ORDER_WORDS 7

/* One order's seven reserve fields (script.h), in f: without snprintf,
 * since this runs for every reservation. */
static void order_words(struct rcmd_order *f, const struct req *q, unsigned key_index, const char **argv,
			size_t *lens)
{
	oid_format(q->order_id, f->id);
	argv[0] = q->order.user_id, lens[0] = q->order.user_len;
	argv[1] = f->qty, lens[1] = (size_t)(fmt_u64(f->qty, q->order.qty) - f->qty);
	argv[2] = f->id, lens[2] = OID_TEXT_LEN;
	argv[3] = f->ms, lens[3] = (size_t)(fmt_i64(f->ms, q->accepted_at_ms) - f->ms);
	argv[4] = f->key_index, lens[4] = (size_t)(fmt_u64(f->key_index, key_index) - f->key_index);
	argv[5] = q->idem, lens[5] = q->idem_len;
	argv[6] = f->cap, lens[6] = (size_t)(fmt_u64(f->cap, q->cap) - f->cap);
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
	unsigned i = 0, key_no = 0;
	for (const struct req *q = head; q; q = q->b_next, i++) {
		/* KEYS[1..3] are the bucket's; the idem keys follow, in order. */
		order_words(&c->order[i], q, q->idem_len ? 4 + key_no++ : 0, &c->argv[c->argc], &c->lens[c->argc]);
		c->argc += ORDER_WORDS;
	}
}

void rcmd_confirms(struct rcmd *c, const struct script_shas *shas, const struct req *head)
{
	c->argc = 0;
	/* A confirmation a failover loses puts its entry back in the ledger:
	 * the order is in the topic, yet a repeat of its Idempotency-Key hears
	 * 409 in_progress and `stock release` not_settled until reconcile
	 * settles it minutes later. With wait_replicas it waits for the
	 * replicas too, and one whose master dies before its WAIT answers is
	 * replayed to the promoted replica (resv). */
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
	if (kind >= RCMD_TAKE && kind <= RCMD_XCHECK) {
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

void rcmd_combined_start(struct rcmd_combined *m)
{
	m->argc = 0;
	m->reserves = m->confirms = m->batches = 0;
	m->n_keys = m->n_args = m->n_num = 0;
}

static const char *combined_num(struct rcmd_combined *m, uint64_t v, size_t *len)
{
	char *n = m->num[m->n_num++];
	*len = (size_t)(fmt_u64(n, v) - n);
	return n;
}

/* The next key's storage; combined_key_done then adds the len it holds. */
static char *combined_key(struct rcmd_combined *m)
{
	return m->key[m->n_keys];
}

static void combined_key_done(struct rcmd_combined *m, int len)
{
	m->key_argv[m->n_keys] = m->key[m->n_keys];
	m->key_lens[m->n_keys++] = (size_t)len;
}

static void combined_arg(struct rcmd_combined *m, const char *s, size_t len)
{
	m->arg_argv[m->n_args] = s;
	m->arg_lens[m->n_args++] = len;
}

/* Each batch: its keys (as reserve's or confirm's own), and in ARGV its
 * kind, key count and argument count, then its arguments. */
bool rcmd_combined_add(struct rcmd_combined *m, const struct req *head, unsigned n, bool confirms)
{
	if (m->batches == RCMD_COMBINED_BATCHES ||
	    (confirms ? m->confirms + n > RCMD_COMBINED_CONFIRMS : m->reserves + n > RCMD_COMBINED_RESERVES))
		return false;
	char tag[BKT_TAG_MAX];
	bkt_tag(tag, head->order.sku, head->bucket);
	unsigned first_key = m->n_keys;
	size_t len;
	const char *s;
	combined_arg(m, confirms ? "c" : "r", 1);
	if (confirms) {
		combined_key_done(m, snprintf(combined_key(m), KEYS_MAX, KEYS_PENDING_FMT, tag));
		combined_key_done(m, snprintf(combined_key(m), KEYS_MAX, KEYS_ORDERS_FMT, tag));
	} else {
		combined_key_done(m, snprintf(combined_key(m), KEYS_MAX, KEYS_SKU_FMT, tag));
		combined_key_done(m, snprintf(combined_key(m), KEYS_MAX, KEYS_USERS_FMT, tag));
		combined_key_done(m, snprintf(combined_key(m), KEYS_MAX, KEYS_PENDING_FMT, tag));
		for (const struct req *q = head; q; q = q->b_next)
			if (q->idem_len)
				combined_key_done(m, snprintf(combined_key(m), KEYS_MAX, KEYS_IDEM_FMT, tag,
							      (size_t)q->order.user_len, q->order.user_id, q->idem));
	}
	s = combined_num(m, m->n_keys - first_key, &len);
	combined_arg(m, s, len);
	s = combined_num(m, confirms ? n : ORDER_WORDS * n, &len);
	combined_arg(m, s, len);
	unsigned key_no = 0;
	for (const struct req *q = head; q; q = q->b_next) {
		if (confirms) {
			char *id = m->confirm_id[m->confirms++];
			oid_format(q->order_id, id);
			combined_arg(m, id, OID_TEXT_LEN);
			continue;
		}
		/* key_index counts in the batch's own keys, as in reserve. */
		order_words(&m->order[m->reserves++], q, q->idem_len ? 4 + key_no++ : 0, &m->arg_argv[m->n_args],
			    &m->arg_lens[m->n_args]);
		m->n_args += ORDER_WORDS;
	}
	m->batches++;
	return true;
}

void rcmd_combined_finish(struct rcmd_combined *m, const struct script_shas *shas, const struct cfg *cfg)
{
	size_t len;
	const char *s;
	m->argc = 0;
	m->argv[m->argc] = "EVALSHA", m->lens[m->argc++] = 7;
	m->argv[m->argc] = shas->sha[SCRIPT_COMBINED], m->lens[m->argc++] = SCRIPT_SHA_LEN;
	s = combined_num(m, m->n_keys, &len);
	m->argv[m->argc] = s, m->lens[m->argc++] = len;
	memcpy(&m->argv[m->argc], m->key_argv, m->n_keys * sizeof(m->argv[0]));
	memcpy(&m->lens[m->argc], m->key_lens, m->n_keys * sizeof(m->lens[0]));
	m->argc += (int)m->n_keys;
	s = combined_num(m, cfg->idempotency_ttl_s, &len);
	m->argv[m->argc] = s, m->lens[m->argc++] = len;
	s = combined_num(m, cfg->redis_buckets, &len);
	m->argv[m->argc] = s, m->lens[m->argc++] = len;
	s = combined_num(m, m->batches, &len);
	m->argv[m->argc] = s, m->lens[m->argc++] = len;
	memcpy(&m->argv[m->argc], m->arg_argv, m->n_args * sizeof(m->argv[0]));
	memcpy(&m->lens[m->argc], m->arg_lens, m->n_args * sizeof(m->lens[0]));
	m->argc += (int)m->n_args;
}
