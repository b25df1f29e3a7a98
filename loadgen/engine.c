/* engine: one load thread: arrivals, connections, answers, retries. See engine.h. */
#include "engine.h"
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/oid.h"
#include "resp.h"

enum { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };
enum { OP_CONNECT = 1, OP_SEND, OP_RECV, OP_TIMER, OP_ABANDON };

#define LATE_NS 1000000

static uint64_t rnd(struct engine *e)
{
	/* xorshift64*: fast and good enough to pick users and SKUs */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 0x2545F4914F6CDD1DULL;
}

static double rnd_unit(struct engine *e)
{
	return (double)(rnd(e) >> 11) / 9007199254740992.0;
}

static unsigned pick_sku(struct engine *e)
{
	double u = rnd_unit(e);
	unsigned lo = 0, hi = e->p->skus - 1;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (e->sh->zipf_cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo + 1;
}

static unsigned stage_of(struct engine *e, int64_t at_ns)
{
	if (e->p->closed_loop)
		return 0;
	return sched_stage_at(&e->sh->sc, (double)(at_ns - e->sh->start_ns) / 1e9);
}

/* --- counting */

static void count_offered(struct engine *e, const struct job *j)
{
	e->r.c.offered++;
	e->r.stages[stage_of(e, j->intended_ns)].c.offered++;
	e->tick.offered++;
}

static void fail(struct engine *e, int rc)
{
	if (!e->rc)
		e->rc = rc;
}

static void resolve(struct engine *e, struct order_slot *s, enum lg_outcome o, int64_t now)
{
	s->resolved = true;
	s->resolved_as = (uint8_t)o;
	uint64_t us = (uint64_t)((now - s->first_intended_ns) / 1000);
	hist_record(e->r.order_latency, us ? us : 1);
	if (o == LG_ACCEPTED) {
		e->r.orders_accepted++;
		e->r.accepted_after_retry += s->attempts > 1;
		e->r.accepted_units += s->o.qty;
		if (lg_result_add_accepted(&e->r, s->order_id, s->o.qty) < 0)
			fail(e, -ENOMEM);
	} else if (mix_retryable(o)) {
		e->r.orders_failed++;
	} else if (o == LG_ABANDONED) {
		e->r.orders_abandoned++;
	} else {
		e->r.orders_refused++;
	}
}

/* A double click's copy was refused (a 429, say) before the other copy's
 * 202 arrived: the order exists, and the books must say so. */
static void accepted_after_all(struct engine *e, struct order_slot *s)
{
	enum lg_outcome was = (enum lg_outcome)s->resolved_as;
	if (mix_retryable(was))
		e->r.orders_failed--;
	else if (was == LG_ABANDONED)
		e->r.orders_abandoned--;
	else
		e->r.orders_refused--;
	s->resolved_as = LG_ACCEPTED;
	e->r.orders_accepted++;
	e->r.accepted_units += s->o.qty;
	if (lg_result_add_accepted(&e->r, s->order_id, s->o.qty) < 0)
		fail(e, -ENOMEM);
}

/* --- arrivals */

static void make_key(struct engine *e, char *key)
{
	/* "fl" TAG "-" THREAD "-" SEQ: unique per run, so a rerun with the same
	 * seed is not answered from the previous run's keys. */
	snprintf(key, MIX_KEY_MAX, "fl%s-%u-%llu", e->sh->run_tag, e->tid,
		 (unsigned long long)e->key_seq++);
}

/* The bots' accounts, numbered past the shoppers': one hammering account,
 * and SYBIL_ACCOUNTS behind one address. */
#define SYBIL_ACCOUNTS 1000
#define HAMMER_USER(p) ((p)->users + 1)
#define SYBIL_USER(p, r) ((p)->users + 2 + (unsigned)((r) % SYBIL_ACCOUNTS))
/* The address every sybil's orders come from (a documentation range). */
#define SYBIL_ADDR "198.51.100.66"

static enum prof_who pick_who(struct engine *e)
{
	const struct lg_profile *p = e->p;
	if (!e->bots)
		return WHO_SHOPPER;
	double u = rnd_unit(e), acc = 0;
	for (int k = WHO_SHOPPER + 1; k < WHO_N; k++) {
		acc += p->bot_share[k];
		if (u < acc)
			return (enum prof_who)k;
	}
	return WHO_SHOPPER;
}

static void new_arrival(struct engine *e, int64_t intended)
{
	const struct lg_profile *p = e->p;
	struct job j = {.slot = JOBS_NO_SLOT, .malformed = -1, .intended_ns = intended};
	e->arrivals++;
	if (p->malformed_share > 0 && rnd_unit(e) < p->malformed_share) {
		int k;
		do {
			k = (int)(rnd(e) % MAL_KINDS);
		} while (!p->malformed_kinds[k]);
		j.malformed = (int8_t)k;
		count_offered(e, &j);
		if (jobs_push(&e->jobs, j) < 0)
			fail(e, -ENOMEM);
		return;
	}
	if (jobs_slot_new(&e->jobs, &j.slot) < 0) {
		fail(e, -ENOMEM);
		return;
	}
	struct order_slot *s = jobs_slot(&e->jobs, j.slot);
	s->o.who = (uint8_t)pick_who(e);
	s->o.user = s->o.who == WHO_HAMMER ? HAMMER_USER(p)
		    : s->o.who == WHO_SYBIL ? SYBIL_USER(p, rnd(e))
					    : (unsigned)(rnd(e) % p->users) + 1;
	s->o.sku = pick_sku(e);
	s->o.qty = p->qty;
	s->o.key[0] = '\0';
	const struct trace_order *rec = p->trace ? &p->trace->o[e->trace_next] : NULL;
	if (rec && s->o.who == WHO_SHOPPER) {
		s->o.user = rec->user;
		s->o.sku = rec->sku ? rec->sku : s->o.sku;
		s->o.qty = rec->qty;
	}
	if (rec && rec->key)
		/* The recorded key, made this run's: a recorded retry or double
		 * click comes again with its first try's key. */
		snprintf(s->o.key, MIX_KEY_MAX, "fl%s-r%016llx", e->sh->run_tag, (unsigned long long)rec->key);
	else if (p->idempotency_keys)
		make_key(e, s->o.key);
	s->first_intended_ns = intended;
	s->order_id = 0;
	s->attempts = 1;
	s->outstanding = 1;
	s->resolved = false;
	e->r.orders++;
	count_offered(e, &j);
	if (jobs_push(&e->jobs, j) < 0)
		fail(e, -ENOMEM);
	if (p->duplicate_share > 0 && rnd_unit(e) < p->duplicate_share) {
		/* A double click: the same order again at once, on another connection. */
		s->outstanding++;
		e->r.double_clicks++;
		count_offered(e, &j);
		if (jobs_push(&e->jobs, j) < 0)
			fail(e, -ENOMEM);
	}
}

/* Moves the schedule's next arrival position forward (see sched.h). */
static void next_arrival(struct engine *e)
{
	const struct lg_profile *p = e->p;
	if (e->max_arrivals && e->arrivals >= e->max_arrivals) {
		e->arrivals_done = true;
		return;
	}
	if (p->trace) {
		size_t i = (size_t)e->arrivals * e->nthreads + e->tid;
		if (i >= p->trace->n) {
			e->arrivals_done = true;
			return;
		}
		e->trace_next = i;
		e->next_arrival_ns = e->sh->start_ns + (int64_t)(p->trace->o[i].at_s / p->replay_speed * 1e9);
		return;
	}
	if (p->arrival == PROF_POISSON) {
		double u = rnd_unit(e);
		e->arrival_n += -log(1.0 - u) * e->nthreads;
	} else {
		e->arrival_n = (double)(e->arrivals * e->nthreads + e->tid);
	}
	double t = sched_time_of(&e->sh->sc, e->arrival_n);
	if (t < 0) {
		e->arrivals_done = true;
		return;
	}
	e->next_arrival_ns = e->sh->start_ns + (int64_t)(t * 1e9);
}

static void make_arrivals(struct engine *e, int64_t now)
{
	if (e->p->closed_loop) {
		while (!e->arrivals_done && jobs_queued(&e->jobs) < e->n_idle) {
			if ((e->max_arrivals && e->arrivals >= e->max_arrivals) ||
			    (e->closed_end_ns && now >= e->closed_end_ns)) {
				e->arrivals_done = true;
				break;
			}
			new_arrival(e, now);
		}
		return;
	}
	while (!e->arrivals_done && e->next_arrival_ns <= now) {
		uint64_t late_us = (uint64_t)(now - e->next_arrival_ns) / 1000;
		hist_record(e->r.gen_lag, late_us ? late_us : 1);
		new_arrival(e, e->next_arrival_ns);
		next_arrival(e);
	}
}

/* --- connections */

static struct io_uring_sqe *sqe_get(struct engine *e)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&e->ring)))
		io_uring_submit(&e->ring);
	return sqe;
}

static uint64_t ud(int op, unsigned idx, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint64_t)idx << 8 | (uint64_t)op;
}

static void conn_connect(struct engine *e, unsigned i)
{
	struct lconn *c = &e->conns[i];
	c->fd = socket(e->sh->addr[c->ep].ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->state = C_DOWN;
		c->retry_at_ns = mono_ns() + 100000000LL;
		return;
	}
	c->gen++;
	c->state = C_CONNECTING;
	c->in_len = 0;
	struct io_uring_sqe *sqe = sqe_get(e);
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&e->sh->addr[c->ep], e->sh->addr_len[c->ep]);
	io_uring_sqe_set_data64(sqe, ud(OP_CONNECT, i, c->gen));
}

static void idle_push(struct engine *e, unsigned i)
{
	e->idle[(e->idle_head + e->n_idle++) % e->n_conns] = i;
}

static unsigned idle_pop(struct engine *e)
{
	unsigned i = e->idle[e->idle_head];
	e->idle_head = (e->idle_head + 1) % e->n_conns;
	e->n_idle--;
	return i;
}

/* A connection closed while idle leaves the ring; the rest keep their order. */
static void remove_idle(struct engine *e, unsigned i)
{
	for (unsigned k = 0; k < e->n_idle; k++) {
		if (e->idle[(e->idle_head + k) % e->n_conns] != i)
			continue;
		for (; k + 1 < e->n_idle; k++)
			e->idle[(e->idle_head + k) % e->n_conns] = e->idle[(e->idle_head + k + 1) % e->n_conns];
		e->n_idle--;
		return;
	}
}

/* Replaces connection i. abort: reset it (RST) as a shopper's app that
 * gives up does, instead of closing it (FIN), which a server may still
 * answer into. */
static void conn_replace(struct engine *e, unsigned i, bool abort)
{
	struct lconn *c = &e->conns[i];
	if (c->state == C_IDLE)
		remove_idle(e, i);
	if (c->state == C_BUSY)
		e->n_busy--;
	if (c->fd >= 0) {
		/* Pending ops complete with errors; their generation is stale.
		 * The socket goes (and a reset with it) once the ring lets go of
		 * it: SHUT_RD ends the armed recv without sending anything. */
		struct linger now = {.l_onoff = 1, .l_linger = 0};
		if (abort && setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &now, sizeof(now)) < 0)
			abort = false; /* a plain close, then */
		shutdown(c->fd, abort ? SHUT_RD : SHUT_RDWR);
		close(c->fd);
	}
	c->fd = -1;
	c->state = C_DOWN;
	c->recv_armed = c->send_armed = false;
	c->gen++;
	conn_connect(e, i);
}

static void conn_reset(struct engine *e, unsigned i)
{
	conn_replace(e, i, false);
}

/* An idle connection keeps a recv armed, so a server that closes it (idle
 * timeout, shutdown) is noticed before a request is sent into it. */
static void arm_recv(struct engine *e, unsigned i)
{
	struct lconn *c = &e->conns[i];
	struct io_uring_sqe *sqe = sqe_get(e);
	io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, ENGINE_IN_CAP - c->in_len, 0);
	io_uring_sqe_set_data64(sqe, ud(OP_RECV, i, c->gen));
	c->recv_armed = true;
}

/* Who the request says it is from (a run whose tokens cannot be made stops
 * at its first: every order would be refused): the shopper's token, or a
 * bot's; and with [bots] forwarded_for, its address. */
static struct mix_auth shopper_auth(struct engine *e, unsigned user, enum prof_who who)
{
	struct mix_auth a = {0};
	if (e->p->forwarded_for) {
		if (who == WHO_SYBIL) {
			a.xff = SYBIL_ADDR;
		} else {
			/* Each account its own address, in the IPv6 documentation range. */
			snprintf(e->xff, sizeof(e->xff), "2001:db8::%x:%x", user >> 16, user & 0xffff);
			a.xff = e->xff;
		}
	}
	if (!e->sh->sign_key || who == WHO_NO_TOKEN)
		return a;
	struct tokens *t = who == WHO_FORGED ? &e->forged : who == WHO_EXPIRED ? &e->expired : &e->tokens;
	if (who == WHO_IMPOSTOR)
		a.body_user = user % e->p->users + 1; /* someone else, by the body */
	a.tok = tokens_get(t, user, &a.len);
	if (!a.tok)
		fail(e, -EIO);
	return a;
}

static void send_job(struct engine *e, unsigned i, struct job j, int64_t now)
{
	struct lconn *c = &e->conns[i];
	const struct lg_profile *p = e->p;
	if (j.slot == JOBS_NO_SLOT) {
		unsigned user = (unsigned)(rnd(e) % p->users) + 1;
		c->out_len = mix_malformed_request(c->out, &e->sh->host[c->ep], p, (enum prof_malformed)j.malformed,
						   user, shopper_auth(e, user, WHO_SHOPPER));
		e->r.malformed_sent[j.malformed]++;
	} else {
		const struct mix_order *o = &jobs_slot(&e->jobs, j.slot)->o;
		c->out_len = mix_order_request(c->out, &e->sh->host[c->ep], p, o,
					       shopper_auth(e, o->user, (enum prof_who)o->who));
	}
	c->out_off = 0;
	c->in_len = 0;
	c->state = C_BUSY;
	e->n_busy++;
	c->job = j;
	c->sent_ns = now;
	c->abandon_at_ns = 0;
	if (j.slot != JOBS_NO_SLOT && p->abandon_share > 0 && rnd_unit(e) < p->abandon_share) {
		/* A timer of its own: the 5 ms scan would only ever catch the
		 * orders slower than that. */
		int64_t after = 1 + (int64_t)(rnd(e) % ((uint64_t)p->abandon_after_ms * 1000000ULL));
		c->abandon_at_ns = now + after;
		c->abandon_ts.tv_sec = after / 1000000000LL;
		c->abandon_ts.tv_nsec = after % 1000000000LL;
		struct io_uring_sqe *tsqe = sqe_get(e);
		io_uring_prep_timeout(tsqe, &c->abandon_ts, 0, 0);
		io_uring_sqe_set_data64(tsqe, ud(OP_ABANDON, i, c->gen));
	}
	int64_t lag = now - j.intended_ns;
	struct lg_counts *st = &e->r.stages[stage_of(e, j.intended_ns)].c;
	if (lag > LATE_NS) {
		e->r.c.late_sends++;
		st->late_sends++;
	}
	uint64_t lag_us = lag > 0 ? (uint64_t)(lag / 1000) : 0;
	hist_record(e->r.send_lag, lag_us ? lag_us : 1);
	e->r.c.sent++;
	st->sent++;
	e->tick.sent++;
	struct io_uring_sqe *sqe = sqe_get(e);
	io_uring_prep_send(sqe, c->fd, c->out, c->out_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(OP_SEND, i, c->gen));
	c->send_armed = true;
	if (!c->recv_armed)
		arm_recv(e, i);
}

/* Hands due jobs, oldest first, to the connections idle longest. */
static void dispatch(struct engine *e, int64_t now)
{
	if (jobs_release_due(&e->jobs, now) < 0)
		fail(e, -ENOMEM);
	while (jobs_queued(&e->jobs) && e->n_idle) {
		unsigned i = idle_pop(e);
		send_job(e, i, jobs_pop(&e->jobs), now);
	}
	if (jobs_queued(&e->jobs))
		e->r.conn_limited = true; /* due, but every connection is waiting */
}

static uint64_t backoff_ns(struct engine *e, unsigned attempt)
{
	/* Exponential with equal jitter, so retries after one outage spread out. */
	uint64_t ms = e->p->backoff_ms;
	for (unsigned k = 1; k < attempt && ms < e->p->backoff_max_ms; k++)
		ms *= 2;
	if (ms > e->p->backoff_max_ms)
		ms = e->p->backoff_max_ms;
	uint64_t ns = ms * 1000000ULL;
	return ns / 2 + rnd(e) % (ns / 2 + 1);
}

static void settle_order(struct engine *e, const struct job *j, enum lg_outcome out,
			 const struct resp *rs, int64_t now)
{
	struct order_slot *s = jobs_slot(&e->jobs, j->slot);
	s->outstanding--;
	if (out == LG_ACCEPTED || out == LG_DUPLICATE) {
		size_t n;
		const char *id = rs ? resp_json_str(rs->body, rs->body_len, "order_id", &n) : NULL;
		uint64_t v;
		if (id && oid_parse(id, n, &v) == 0) {
			if (s->order_id && s->order_id != v)
				e->r.key_conflicts++;
			else
				s->order_id = v;
			if (!s->resolved)
				resolve(e, s, LG_ACCEPTED, now);
			else if (s->resolved_as != LG_ACCEPTED)
				accepted_after_all(e, s);
		} else if (!s->resolved) {
			resolve(e, s, LG_OTHER_STATUS, now);
		}
	} else if (out == LG_ABANDONED) {
		/* A double click's other copy may still bring the answer. */
		if (!s->resolved && s->outstanding == 0)
			resolve(e, s, out, now);
	} else if (mix_retryable(out)) {
		if (!s->resolved && s->outstanding == 0) {
			if (s->attempts <= e->p->retries) {
				s->attempts++;
				s->outstanding++;
				e->r.retries++;
				struct job retry = *j;
				retry.intended_ns = now + (int64_t)backoff_ns(e, s->attempts - 1);
				count_offered(e, &retry);
				if (jobs_defer(&e->jobs, retry) < 0)
					fail(e, -ENOMEM);
			} else {
				resolve(e, s, out, now);
			}
		}
	} else if (!s->resolved) {
		resolve(e, s, out, now);
	}
	if (s->resolved && s->outstanding == 0)
		jobs_slot_free(&e->jobs, j->slot);
}

static void finish(struct engine *e, unsigned i, enum lg_outcome out, const struct resp *rs)
{
	struct lconn *c = &e->conns[i];
	struct job j = c->job;
	int64_t now = mono_ns();
	uint64_t lat = (uint64_t)((now - j.intended_ns) / 1000);
	uint64_t svc = (uint64_t)((now - c->sent_ns) / 1000);
	lat = lat ? lat : 1;
	svc = svc ? svc : 1;
	struct lg_stage_result *st = &e->r.stages[stage_of(e, j.intended_ns)];
	if (out != LG_ABANDONED) { /* the client's choice, not the server's latency */
		hist_record(e->r.latency, lat);
		hist_record(e->r.service, svc);
		hist_record(st->latency, lat);
		hist_record(st->service, svc);
		hist_record(e->tick_lat, lat);
	}
	if (j.slot == JOBS_NO_SLOT && (rs || out == LG_TIMEOUT || out == LG_CONN_ERROR)) {
		/* A connection the gateway closes after a malformed request is its
		 * right; only a status tells whether it judged the request right. */
		out = rs ? mix_classify_malformed(rs, (enum prof_malformed)j.malformed) : LG_MALFORMED_WRONG;
		if (out == LG_MALFORMED_OK)
			e->r.malformed_ok[j.malformed]++;
	}
	e->r.c.counts[out]++;
	e->r.c.completed++;
	if (j.slot != JOBS_NO_SLOT) {
		const struct mix_order *o = &jobs_slot(&e->jobs, j.slot)->o;
		struct lg_who_result *wr = &e->r.who[o->who];
		wr->counts[out]++;
		if (out == LG_ACCEPTED)
			wr->units += o->qty;
		if (out != LG_ABANDONED)
			hist_record(wr->latency, lat);
	}
	st->c.counts[out]++;
	st->c.completed++;
	e->tick.counts[out]++;
	e->tick.completed++;
	if (j.slot != JOBS_NO_SLOT)
		settle_order(e, &j, out, rs, now);
}

static void on_recv(struct engine *e, unsigned i, int res)
{
	struct lconn *c = &e->conns[i];
	c->recv_armed = false;
	if (c->state != C_BUSY) {
		/* Closed (or spoken to) while idle: replace the connection. */
		conn_reset(e, i);
		return;
	}
	if (res <= 0) {
		finish(e, i, LG_CONN_ERROR, NULL);
		conn_reset(e, i);
		return;
	}
	c->in_len += (size_t)res;
	struct resp rs;
	int rc;
	/* Skip interim 1xx answers. */
	while ((rc = resp_parse(c->in, c->in_len, &rs)) > 0 && rs.status < 200) {
		memmove(c->in, c->in + rs.total_len, c->in_len - rs.total_len);
		c->in_len -= rs.total_len;
	}
	if (rc == RESP_INCOMPLETE && c->in_len < ENGINE_IN_CAP) {
		arm_recv(e, i);
		return;
	}
	if (rc < 0) {
		finish(e, i, LG_CONN_ERROR, NULL);
		conn_reset(e, i);
		return;
	}
	finish(e, i, c->job.slot == JOBS_NO_SLOT ? LG_MALFORMED_OK : mix_classify(&rs), &rs);
	if (rs.close || c->send_armed || rs.total_len != c->in_len) {
		conn_reset(e, i);
	} else {
		c->state = C_IDLE;
		e->n_busy--;
		c->in_len = 0;
		idle_push(e, i);
		arm_recv(e, i);
	}
}

static void on_cqe(struct engine *e, struct io_uring_cqe *cqe)
{
	uint64_t d = io_uring_cqe_get_data64(cqe);
	int op = (int)(d & 0xff);
	unsigned i = (unsigned)(d >> 8) & 0xffffff;
	uint32_t gen = (uint32_t)(d >> 32);
	int res = cqe->res;
	if (op == OP_TIMER) {
		e->timer_armed = false;
		return;
	}
	if (op == 0)
		return;
	struct lconn *c = &e->conns[i];
	if (c->gen != gen)
		return;
	switch (op) {
	case OP_ABANDON:
		/* Its request may have been answered since (the next one then
		 * has a deadline of its own, or none). */
		if (c->state == C_BUSY && c->abandon_at_ns && mono_ns() >= c->abandon_at_ns) {
			finish(e, i, LG_ABANDONED, NULL);
			conn_replace(e, i, true);
		}
		return;
	case OP_CONNECT:
		if (res < 0) {
			close(c->fd);
			c->fd = -1;
			c->state = C_DOWN;
			c->retry_at_ns = mono_ns() + 100000000LL;
			e->r.connect_failures++;
			return;
		}
		int one = 1;
		if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
			conn_reset(e, i);
			return;
		}
		c->state = C_IDLE;
		idle_push(e, i);
		arm_recv(e, i);
		return;
	case OP_SEND:
		c->send_armed = false;
		if (res < 0) {
			finish(e, i, LG_CONN_ERROR, NULL);
			conn_reset(e, i);
			return;
		}
		c->out_off += (size_t)res;
		if (c->out_off < c->out_len) {
			struct io_uring_sqe *sqe = sqe_get(e);
			io_uring_prep_send(sqe, c->fd, c->out + c->out_off, c->out_len - c->out_off,
					   MSG_NOSIGNAL);
			io_uring_sqe_set_data64(sqe, ud(OP_SEND, i, c->gen));
			c->send_armed = true;
		}
		return;
	case OP_RECV:
		on_recv(e, i, res);
		return;
	}
}

static void check_timeouts(struct engine *e, int64_t now)
{
	if (now < e->next_timeout_scan_ns)
		return;
	e->next_timeout_scan_ns = now + 5000000; /* 5 ms: timeouts are coarse */
	int64_t limit = (int64_t)e->p->timeout_ms * 1000000LL;
	for (unsigned i = 0; i < e->n_conns; i++) {
		struct lconn *c = &e->conns[i];
		if (c->state == C_BUSY && now - c->sent_ns > limit) {
			finish(e, i, LG_TIMEOUT, NULL);
			conn_reset(e, i);
		} else if (c->state == C_DOWN && now >= c->retry_at_ns) {
			conn_connect(e, i); /* so the schedule can go on */
		}
	}
}

static bool any_conn_alive(struct engine *e)
{
	for (unsigned i = 0; i < e->n_conns; i++)
		if (e->conns[i].state == C_IDLE || e->conns[i].state == C_BUSY)
			return true;
	return false;
}

static void arm_timer(struct engine *e, int64_t now)
{
	if (e->timer_armed)
		return;
	int64_t wait = 5000000; /* 5 ms: timeouts and the per-second hand-off */
	if (!e->p->closed_loop && !e->arrivals_done && e->next_arrival_ns - now < wait)
		wait = e->next_arrival_ns - now;
	if (jobs_deferred(&e->jobs) && jobs_next_deferred_ns(&e->jobs) - now < wait)
		wait = jobs_next_deferred_ns(&e->jobs) - now;
	if (wait < 0)
		wait = 0;
	e->timer_ts.tv_sec = wait / 1000000000LL;
	e->timer_ts.tv_nsec = wait % 1000000000LL;
	struct io_uring_sqe *sqe = sqe_get(e);
	io_uring_prep_timeout(sqe, &e->timer_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud(OP_TIMER, 0, 0));
	e->timer_armed = true;
}

static void publish(struct engine *e, int64_t now)
{
	if (now < e->sh->start_ns)
		return;
	size_t sec = (size_t)((now - e->sh->start_ns) / 1000000000LL);
	while (e->cur_sec < sec) {
		if (ser_publish(e->sh->series, e->tid, e->cur_sec, &e->tick, e->tick_lat) < 0)
			fail(e, -ENOMEM);
		memset(&e->tick, 0, sizeof(e->tick));
		hist_reset(e->tick_lat);
		e->cur_sec++;
	}
}

static void reap(struct engine *e)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&e->ring, head, cqe) {
		on_cqe(e, cqe);
		n++;
	}
	io_uring_cq_advance(&e->ring, n);
}

static void connect_all(struct engine *e)
{
	for (unsigned i = 0; i < e->n_conns; i++)
		conn_connect(e, i);
	int64_t deadline = mono_ns() + 5000000000LL;
	while (e->n_idle < e->n_conns && mono_ns() < deadline) {
		bool pending = false;
		for (unsigned i = 0; i < e->n_conns; i++)
			pending |= e->conns[i].state == C_CONNECTING;
		if (!pending)
			break;
		io_uring_submit_and_wait(&e->ring, 1);
		reap(e);
	}
}

static void run_loop(struct engine *e)
{
	const struct lg_profile *p = e->p;
	int64_t drain_deadline = 0;
	if (p->closed_loop)
		e->closed_end_ns = p->closed_duration_s > 0 ?
			e->sh->start_ns + (int64_t)(p->closed_duration_s * 1e9) : 0;
	else
		next_arrival(e);
	/* In slices, so an interrupt while waiting for T0 is seen. */
	while (mono_ns() < e->sh->start_ns && !atomic_load(&e->sh->stop)) {
		int64_t at = e->sh->start_ns;
		if (at - mono_ns() > 100000000LL)
			at = mono_ns() + 100000000LL;
		struct timespec until = {.tv_sec = at / 1000000000LL, .tv_nsec = at % 1000000000LL};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
	}
	bool stopping = false;
	for (;;) {
		int64_t now = mono_ns();
		publish(e, now);
		if (!stopping && atomic_load_explicit(&e->sh->stop, memory_order_relaxed)) {
			/* What was sent gets its answer (or its timeout); nothing
			 * more goes out, retries included: those count as unsent. */
			stopping = e->arrivals_done = true;
			drain_deadline = now + (int64_t)p->timeout_ms * 1000000LL + 100000000LL;
		}
		if (!stopping) {
			make_arrivals(e, now);
			dispatch(e, now);
		}
		if (e->rc)
			break;
		if (stopping && e->n_busy == 0)
			break;
		if (e->arrivals_done) {
			bool pending = jobs_queued(&e->jobs) || jobs_deferred(&e->jobs);
			if (e->n_busy == 0 && (!pending || !any_conn_alive(e)))
				break;
			if (!drain_deadline) {
				/* Answers due, and retries the clients would still make. */
				int64_t per_try = (int64_t)(p->timeout_ms + p->backoff_max_ms) * 1000000LL;
				drain_deadline = now + per_try * (p->retries + 1) + 100000000LL;
			}
			if (now > drain_deadline)
				break;
		}
		arm_timer(e, now);
		io_uring_submit_and_wait(&e->ring, 1);
		reap(e);
		check_timeouts(e, mono_ns());
	}
	/* Whatever is still queued was due and never sent. */
	e->r.unsent += jobs_queued(&e->jobs) + jobs_deferred(&e->jobs);
	publish(e, mono_ns() + 1000000000LL);
}

/* [bots] silent_connections: connections that never send a byte, as a
 * flood that tries to hold every slot of the gateway; opened before the
 * shoppers' own, held to the end. One the gateway closes stays closed. */
static void open_silent(struct engine *e)
{
	for (unsigned i = 0; i < e->n_silent; i++) {
		unsigned ep = (i * e->nthreads + e->tid) % e->sh->t->n;
		int fd = socket(e->sh->addr[ep].ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (const struct sockaddr *)&e->sh->addr[ep], e->sh->addr_len[ep]) < 0) {
			close(fd);
			fd = -1;
		}
		e->silent[i] = fd;
	}
}

void *engine_thread(void *arg)
{
	struct engine *e = arg;
	struct shared *sh = e->sh;
	/* Made here: a single-issuer ring belongs to the thread that creates it. */
	struct io_uring_params params = {
		.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE,
		.cq_entries = 2 * e->n_conns + 4096,
	};
	int rc = io_uring_queue_init_params(4096, &e->ring, &params);
	if (rc == -EINVAL) /* kernels before 6.1: the same ring without the hints */
		rc = io_uring_queue_init(4096, &e->ring, 0);
	if (rc < 0)
		fail(e, rc);
	else
		e->ring_ok = true;
	if (e->ring_ok) {
		open_silent(e);
		connect_all(e);
	}
	pthread_mutex_lock(&sh->mu);
	sh->n_connected++;
	sh->connected_total += e->n_idle;
	pthread_cond_broadcast(&sh->cond);
	while (!sh->go)
		pthread_cond_wait(&sh->cond, &sh->mu);
	bool abort = sh->abort;
	pthread_mutex_unlock(&sh->mu);
	if (!abort && e->ring_ok)
		run_loop(e);
	ser_thread_done(sh->series, e->tid);
	atomic_fetch_add(&sh->finished, 1);
	return NULL;
}

int engine_init(struct engine *e, struct shared *sh, unsigned tid, unsigned nthreads)
{
	const struct lg_profile *p = sh->p;
	memset(e, 0, sizeof(*e));
	e->sh = sh;
	e->p = p;
	e->tid = tid;
	e->nthreads = nthreads;
	jobs_init(&e->jobs);
	e->n_conns = p->connections / nthreads + (tid < p->connections % nthreads);
	e->rng = (p->seed ? p->seed : 0x9E3779B97F4A7C15ULL) + 0x1000193ULL * (tid + 1);
	if (p->max_requests)
		e->max_arrivals = p->max_requests / nthreads + (tid < p->max_requests % nthreads);
	e->conns = calloc(e->n_conns, sizeof(*e->conns));
	e->idle = calloc(e->n_conns, sizeof(*e->idle));
	e->tick_lat = hist_new();
	int rc = lg_result_init(&e->r, p->closed_loop ? 1 : p->n_stages);
	if (rc < 0 || !e->conns || !e->idle || !e->tick_lat)
		return -ENOMEM;
	/* Valid for a day: longer than any rehearsal, short enough to be a token. */
	if (sh->sign_key && tokens_init(&e->tokens, sh->sign_key, p->user_prefix, p->users, 86400) < 0)
		return -ENOMEM;
	e->bots = prof_has_bots(p);
	/* The bots' tokens: signed by a key the gateway does not know (under
	 * the run's kid), and real ones that expired an hour ago. */
	if (e->bots && (tokens_init(&e->forged, &sh->forged_key, p->user_prefix, p->users, 86400) < 0 ||
			tokens_init(&e->expired, sh->sign_key, p->user_prefix, p->users, -3600) < 0))
		return -ENOMEM;
	e->n_silent = p->silent_connections / nthreads + (tid < p->silent_connections % nthreads);
	if (e->n_silent && !(e->silent = calloc(e->n_silent, sizeof(*e->silent))))
		return -ENOMEM;
	for (unsigned i = 0; i < e->n_silent; i++)
		e->silent[i] = -1;
	for (unsigned i = 0; i < e->n_conns; i++) {
		e->conns[i].fd = -1;
		/* Interleaved over threads and endpoints: every endpoint gets an
		 * even share of the connections and of each thread's schedule. */
		e->conns[i].ep = (uint8_t)((i * nthreads + tid) % sh->t->n);
	}
	return 0;
}

void engine_free(struct engine *e)
{
	if (e->conns)
		for (unsigned i = 0; i < e->n_conns; i++)
			if (e->conns[i].fd >= 0)
				close(e->conns[i].fd);
	if (e->ring_ok)
		io_uring_queue_exit(&e->ring);
	tokens_free(&e->tokens);
	tokens_free(&e->forged);
	tokens_free(&e->expired);
	for (unsigned i = 0; i < e->n_silent; i++)
		if (e->silent[i] >= 0)
			close(e->silent[i]);
	free(e->silent);
	lg_result_free(&e->r);
	hist_free(e->tick_lat);
	free(e->conns);
	free(e->idle);
	jobs_free(&e->jobs);
}

