/* run: the open-loop load engine. See run.h. */
#include "run.h"

#include <errno.h>
#include <liburing.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../core/oid.h"
#include "resp.h"

const char *const lg_outcome_names[LG_OUTCOMES] = {
	"202 accepted", "409 sold out", "409 limit", "404", "4xx other",
	"503", "other", "conn errors", "timeouts",
};

enum { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };
enum { OP_CONNECT = 1, OP_SEND, OP_RECV, OP_TIMER };

#define IN_CAP 8192
#define OUT_CAP 512

struct lconn {
	int fd;
	int state;
	uint32_t gen;
	bool recv_armed, send_armed;
	int64_t intended_ns, sent_ns;
	int64_t retry_at_ns; /* a failed connect waits before the next try */
	size_t out_len, out_off, in_len;
	char out[OUT_CAP];
	char in[IN_CAP];
};

struct engine {
	const struct lg_opts *o;
	struct lg_result *r;
	struct io_uring ring;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	struct lconn *conns;
	unsigned *idle;
	unsigned n_idle;
	double *zipf_cdf;
	uint64_t rng;
	int64_t start_ns, end_ns;
	uint64_t next_index; /* next request of the schedule to become due */
	uint64_t first_unsent;
	uint64_t limit;      /* requests in the schedule */
	bool sending_done;
	struct __kernel_timespec timer_ts;
	bool timer_armed;
	/* live line */
	int64_t last_tick_ns;
	uint64_t tick_sent, tick_done, tick_base_counts[LG_OUTCOMES];
	struct hist *tick_lat;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t rnd(struct engine *e)
{
	/* xorshift64*: fast and good enough to pick users and SKUs */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 0x2545F4914F6CDD1DULL;
}

static unsigned pick_sku(struct engine *e)
{
	double u = (double)(rnd(e) >> 11) / 9007199254740992.0;
	unsigned lo = 0, hi = e->o->skus - 1;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (e->zipf_cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo + 1;
}

static int64_t intended_ns(struct engine *e, uint64_t i)
{
	return e->start_ns + (int64_t)((double)i * 1e9 / e->o->rate);
}

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
	c->fd = socket(e->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->state = C_DOWN;
		return;
	}
	c->gen++;
	c->state = C_CONNECTING;
	c->in_len = 0;
	struct io_uring_sqe *sqe = sqe_get(e);
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&e->addr, e->addr_len);
	io_uring_sqe_set_data64(sqe, ud(OP_CONNECT, i, c->gen));
}

static void conn_reset(struct engine *e, unsigned i)
{
	struct lconn *c = &e->conns[i];
	if (c->fd >= 0) {
		/* Pending ops complete with errors; their generation is stale. */
		shutdown(c->fd, SHUT_RDWR);
		close(c->fd);
	}
	c->fd = -1;
	c->state = C_DOWN;
	c->recv_armed = c->send_armed = false;
	c->gen++;
	if (!e->sending_done || e->o->rate > 0)
		conn_connect(e, i);
}

/* An idle connection keeps a recv armed, so a server that closes it (idle
 * timeout, shutdown) is noticed before a request is sent into it. */
static void arm_recv(struct engine *e, unsigned i)
{
	struct lconn *c = &e->conns[i];
	struct io_uring_sqe *sqe = sqe_get(e);
	io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
	io_uring_sqe_set_data64(sqe, ud(OP_RECV, i, c->gen));
	c->recv_armed = true;
}

static void finish(struct engine *e, unsigned i, enum lg_outcome out, const struct resp *rs)
{
	struct lconn *c = &e->conns[i];
	struct lg_result *r = e->r;
	int64_t now = mono_ns();
	uint64_t lat = (uint64_t)((now - c->intended_ns) / 1000);
	uint64_t svc = (uint64_t)((now - c->sent_ns) / 1000);
	hist_record(r->latency, lat ? lat : 1);
	hist_record(r->service, svc ? svc : 1);
	hist_record(e->tick_lat, lat ? lat : 1);
	r->counts[out]++;
	r->completed++;
	if (out == LG_ACCEPTED && rs) {
		size_t n;
		const char *id = resp_json_str(rs->body, rs->body_len, "order_id", &n);
		uint64_t v;
		if (id && oid_parse(id, n, &v) == 0) {
			if (r->n_accepted == r->cap_accepted) {
				size_t cap = r->cap_accepted ? 2 * r->cap_accepted : 4096;
				uint64_t *grown = realloc(r->accepted_ids, cap * sizeof(*grown));
				if (grown) {
					r->accepted_ids = grown;
					r->cap_accepted = cap;
				}
			}
			if (r->n_accepted < r->cap_accepted)
				r->accepted_ids[r->n_accepted++] = v;
			r->accepted_units += e->o->qty;
		}
	}
}

static enum lg_outcome classify(const struct resp *rs)
{
	switch (rs->status) {
	case 202: return LG_ACCEPTED;
	case 404: return LG_NOT_FOUND;
	case 503: return LG_UNAVAILABLE;
	case 409: {
		size_t n;
		const char *s = resp_json_str(rs->body, rs->body_len, "status", &n);
		if (s && n == 14 && memcmp(s, "limit_exceeded", 14) == 0)
			return LG_LIMIT;
		return LG_SOLD_OUT;
	}
	default:
		return rs->status >= 400 && rs->status < 500 ? LG_BAD_REQUEST : LG_OTHER_STATUS;
	}
}

static void send_request(struct engine *e, unsigned i, int64_t intended)
{
	struct lconn *c = &e->conns[i];
	const struct lg_opts *o = e->o;
	char body[256];
	unsigned user = (unsigned)(rnd(e) % o->users) + 1;
	int blen = snprintf(body, sizeof(body), "{\"user_id\":\"%s%u\",\"sku\":\"%s%u\",\"qty\":%u}",
			    o->user_prefix, user, o->sku_prefix, pick_sku(e), o->qty);
	int n = snprintf(c->out, sizeof(c->out),
			 "POST /v1/orders HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n"
			 "Content-Length: %d\r\n\r\n%s",
			 o->host, o->port, blen, body);
	c->out_len = (size_t)n;
	c->out_off = 0;
	c->in_len = 0;
	c->state = C_BUSY;
	c->intended_ns = intended;
	c->sent_ns = mono_ns();
	int64_t lag = c->sent_ns - intended;
	if (lag > 1000000)
		e->r->late_sends++;
	if (lag > 0 && (uint64_t)(lag / 1000) > e->r->max_lag_us)
		e->r->max_lag_us = (uint64_t)(lag / 1000);
	e->r->sent++;
	struct io_uring_sqe *sqe = sqe_get(e);
	io_uring_prep_send(sqe, c->fd, c->out, c->out_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(OP_SEND, i, c->gen));
	c->send_armed = true;
	if (!c->recv_armed)
		arm_recv(e, i);
}

/* Hands due requests to idle connections, oldest first. */
static void dispatch_due(struct engine *e)
{
	int64_t now = mono_ns();
	if (e->o->rate > 0) {
		while (!e->sending_done && e->next_index < e->limit && intended_ns(e, e->next_index) <= now)
			e->next_index++;
		while (e->first_unsent < e->next_index && e->n_idle > 0) {
			unsigned i = e->idle[--e->n_idle];
			send_request(e, i, intended_ns(e, e->first_unsent++));
		}
		if (e->first_unsent < e->next_index)
			e->r->conn_limited = true; /* due, but every connection is waiting */
		if (e->next_index >= e->limit)
			e->sending_done = true;
	} else {
		while (!e->sending_done && e->n_idle > 0) {
			if (e->limit && e->first_unsent >= e->limit) {
				e->sending_done = true;
				break;
			}
			if (e->end_ns && now >= e->end_ns) {
				e->sending_done = true;
				break;
			}
			unsigned i = e->idle[--e->n_idle];
			e->first_unsent++;
			send_request(e, i, mono_ns());
		}
	}
}

static void remove_idle(struct engine *e, unsigned i)
{
	for (unsigned k = 0; k < e->n_idle; k++) {
		if (e->idle[k] == i) {
			e->idle[k] = e->idle[--e->n_idle];
			return;
		}
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
	case OP_CONNECT:
		if (res < 0) {
			close(c->fd);
			c->fd = -1;
			c->state = C_DOWN;
			c->retry_at_ns = mono_ns() + 100000000LL;
			e->r->connect_failures++;
			return;
		}
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->state = C_IDLE;
		e->idle[e->n_idle++] = i;
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
	case OP_RECV: {
		c->recv_armed = false;
		if (c->state != C_BUSY) {
			/* Closed (or spoken to) while idle: replace the connection. */
			remove_idle(e, i);
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
		if (rc == RESP_INCOMPLETE && c->in_len < IN_CAP) {
			arm_recv(e, i);
			return;
		}
		if (rc < 0) {
			finish(e, i, LG_CONN_ERROR, NULL);
			conn_reset(e, i);
			return;
		}
		finish(e, i, classify(&rs), &rs);
		if (rs.close || c->send_armed) {
			conn_reset(e, i);
		} else {
			c->state = C_IDLE;
			c->in_len = 0;
			e->idle[e->n_idle++] = i;
			arm_recv(e, i);
		}
		return;
	}
	}
}

static void check_timeouts(struct engine *e)
{
	int64_t now = mono_ns();
	int64_t limit = (int64_t)e->o->timeout_ms * 1000000LL;
	for (unsigned i = 0; i < e->o->connections; i++) {
		struct lconn *c = &e->conns[i];
		if (c->state == C_BUSY && now - c->sent_ns > limit) {
			finish(e, i, LG_TIMEOUT, NULL);
			conn_reset(e, i);
		}
	}
	/* Reconnect connections that failed, so the schedule can go on. */
	for (unsigned i = 0; i < e->o->connections; i++)
		if (e->conns[i].state == C_DOWN && !e->sending_done && now >= e->conns[i].retry_at_ns)
			conn_connect(e, i);
}

static void live_line(struct engine *e, bool final)
{
	const struct lg_opts *o = e->o;
	struct lg_result *r = e->r;
	int64_t now = mono_ns();
	double secs = (double)(now - e->last_tick_ns) / 1e9;
	if (!final && secs < 1.0)
		return;
	if (o->quiet) {
		e->last_tick_ns = now;
		return;
	}
	uint64_t offered = (o->rate > 0 ? e->next_index : r->sent) - e->tick_sent;
	uint64_t done = r->completed - e->tick_done;
	uint64_t err = r->counts[LG_CONN_ERROR] + r->counts[LG_TIMEOUT] + r->counts[LG_UNAVAILABLE];
	fprintf(stderr,
		"%s[%6.1fs] offered %7.0f/s achieved %7.0f/s p99 %7.2f ms | accepted %llu sold_out %llu "
		"limit %llu errors %llu%s",
		o->live_tty ? "\r\033[K" : "", (double)(now - e->start_ns) / 1e9,
		(double)offered / secs, (double)done / secs,
		(double)hist_percentile(e->tick_lat, 99.0) / 1000.0,
		(unsigned long long)r->counts[LG_ACCEPTED], (unsigned long long)r->counts[LG_SOLD_OUT],
		(unsigned long long)r->counts[LG_LIMIT], (unsigned long long)err,
		o->live_tty && !final ? "" : "\n");
	e->tick_sent = o->rate > 0 ? e->next_index : r->sent;
	e->tick_done = r->completed;
	hist_reset(e->tick_lat);
	e->last_tick_ns = now;
}

static unsigned busy_count(struct engine *e)
{
	unsigned n = 0;
	for (unsigned i = 0; i < e->o->connections; i++)
		n += e->conns[i].state == C_BUSY;
	return n;
}

static bool any_conn_alive(struct engine *e)
{
	for (unsigned i = 0; i < e->o->connections; i++)
		if (e->conns[i].state != C_DOWN)
			return true;
	return false;
}

static void arm_timer(struct engine *e)
{
	if (e->timer_armed)
		return;
	int64_t wait = 10000000; /* 10 ms: timeouts and the live line */
	if (e->o->rate > 0 && !e->sending_done && e->next_index < e->limit) {
		int64_t due = intended_ns(e, e->next_index) - mono_ns();
		if (due < wait)
			wait = due > 0 ? due : 0;
	}
	e->timer_ts.tv_sec = wait / 1000000000LL;
	e->timer_ts.tv_nsec = wait % 1000000000LL;
	struct io_uring_sqe *sqe = sqe_get(e);
	io_uring_prep_timeout(sqe, &e->timer_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud(OP_TIMER, 0, 0));
	e->timer_armed = true;
}

int lg_run(const struct lg_opts *o, struct lg_result *r, char *err, size_t err_len)
{
	struct engine e = {.o = o, .r = r};
	int rc = 0;
	memset(r, 0, sizeof(*r));
	r->latency = hist_new();
	r->service = hist_new();
	e.tick_lat = hist_new();
	e.conns = calloc(o->connections, sizeof(*e.conns));
	e.idle = calloc(o->connections, sizeof(*e.idle));
	e.zipf_cdf = calloc(o->skus, sizeof(double));
	if (!r->latency || !r->service || !e.tick_lat || !e.conns || !e.idle || !e.zipf_cdf) {
		snprintf(err, err_len, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	double sum = 0;
	for (unsigned k = 0; k < o->skus; k++)
		sum += 1.0 / pow((double)(k + 1), o->zipf);
	double acc = 0;
	for (unsigned k = 0; k < o->skus; k++) {
		acc += 1.0 / pow((double)(k + 1), o->zipf) / sum;
		e.zipf_cdf[k] = acc;
	}
	e.zipf_cdf[o->skus - 1] = 1.0;
	e.rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ULL;

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	char port[8];
	snprintf(port, sizeof(port), "%u", o->port);
	int gai = getaddrinfo(o->host, port, &hints, &ai);
	if (gai != 0) {
		snprintf(err, err_len, "cannot resolve %s: %s", o->host, gai_strerror(gai));
		rc = -EINVAL;
		goto out;
	}
	memcpy(&e.addr, ai->ai_addr, ai->ai_addrlen);
	e.addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);

	rc = io_uring_queue_init(4096, &e.ring, 0);
	if (rc < 0) {
		snprintf(err, err_len, "io_uring_queue_init: %s", strerror(-rc));
		goto out;
	}
	for (unsigned i = 0; i < o->connections; i++) {
		e.conns[i].fd = -1;
		conn_connect(&e, i);
	}
	/* Connect everything before the clock starts. */
	int64_t connect_deadline = mono_ns() + 5000000000LL;
	while (e.n_idle < o->connections && mono_ns() < connect_deadline) {
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait(&e.ring, 1);
		unsigned head, n = 0;
		io_uring_for_each_cqe(&e.ring, head, cqe) {
			on_cqe(&e, cqe);
			n++;
		}
		io_uring_cq_advance(&e.ring, n);
		bool pending = false;
		for (unsigned i = 0; i < o->connections; i++)
			pending |= e.conns[i].state == C_CONNECTING;
		if (!pending)
			break;
	}
	if (e.n_idle == 0) {
		snprintf(err, err_len, "cannot connect to %s:%u", o->host, o->port);
		rc = -ECONNREFUSED;
		io_uring_queue_exit(&e.ring);
		goto out;
	}

	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	r->started_unix_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
	e.start_ns = e.last_tick_ns = mono_ns();
	e.end_ns = o->duration_s > 0 ? e.start_ns + (int64_t)(o->duration_s * 1e9) : 0;
	if (o->rate > 0) {
		uint64_t by_time = o->duration_s > 0 ? (uint64_t)floor(o->duration_s * o->rate) : UINT64_MAX;
		e.limit = o->max_requests && o->max_requests < by_time ? o->max_requests : by_time;
	} else {
		e.limit = o->max_requests;
	}

	int64_t drain_deadline = 0;
	for (;;) {
		dispatch_due(&e);
		live_line(&e, false);
		bool backlog = o->rate > 0 && e.first_unsent < e.next_index;
		/* Late requests are still sent after the schedule ends, but not
		 * to a server that no connection can reach any more. */
		if (e.sending_done && busy_count(&e) == 0 && (!backlog || !any_conn_alive(&e)))
			break;
		if (e.sending_done && !drain_deadline)
			drain_deadline = mono_ns() + (int64_t)o->timeout_ms * 1000000LL + 100000000LL;
		if (drain_deadline && mono_ns() > drain_deadline)
			break;
		arm_timer(&e);
		io_uring_submit_and_wait(&e.ring, 1);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&e.ring, head, cqe) {
			on_cqe(&e, cqe);
			n++;
		}
		io_uring_cq_advance(&e.ring, n);
		check_timeouts(&e);
	}
	int64_t end = mono_ns();
	live_line(&e, true);
	r->scheduled = o->rate > 0 ? e.next_index : r->sent;
	r->unsent = r->scheduled > r->sent ? r->scheduled - r->sent : 0;
	r->elapsed_s = (double)(end - e.start_ns) / 1e9;
	r->schedule_s = o->rate > 0 ? (double)r->scheduled / o->rate : r->elapsed_s;
	/* Late sends with connections to spare mean this process fell behind;
	 * with every connection busy, the server did (or --connections is low). */
	r->generator_limited = o->rate > 0 && !r->conn_limited &&
			       (r->sent < r->scheduled || r->late_sends * 100 > r->sent);
	for (unsigned i = 0; i < o->connections; i++)
		if (e.conns[i].fd >= 0)
			close(e.conns[i].fd);
	io_uring_queue_exit(&e.ring);
out:
	hist_free(e.tick_lat);
	free(e.conns);
	free(e.idle);
	free(e.zipf_cdf);
	return rc;
}

void lg_result_free(struct lg_result *r)
{
	hist_free(r->latency);
	hist_free(r->service);
	free(r->accepted_ids);
	memset(r, 0, sizeof(*r));
}
