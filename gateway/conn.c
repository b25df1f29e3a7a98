/*
 * conn: connections, framing and in-order answers. See conn.h.
 *
 * Each connection owns two buffers carved from one per-worker allocation:
 * input (max_head_bytes + max_body_bytes: one whole request always fits)
 * and output (max_pipeline answers, so a full pipeline always fits). At most
 * one send is in flight per connection; it covers out[out_sent, out_len)
 * and new answers are appended behind it, so bytes leave in request order.
 *
 * Reading is one multishot recv per connection, filled from the worker's
 * provided-buffer ring: the kernel picks a buffer only when bytes arrive.
 * Each completion's buffer joins the connection's list of unread buffers,
 * which is copied into the input buffer as parsing makes room, and the
 * buffer goes back to the ring. A connection holding PB_MAX unread buffers
 * cancels its recv until it catches up. When the ring runs dry (ENOBUFS
 * ends the multishot), the connection reads once with a plain recv into its
 * input buffer, then goes back to multishot: no byte is dropped.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/http.h"
#include "../core/proxyproto.h"
#include "admission.h"
#include "flow.h"
#include "worker.h"

/* How long a connection closed after an error keeps reading (and
 * discarding) so the client receives the answer instead of a reset. */
#define LINGER_MS 2000
/* New connections that may wait, accepted, for the slot of an idle one
 * being closed for them (a worker at max_connections). */
#define ACCEPT_WAIT_MAX 64
/* Unread provided buffers one connection may hold before its recv pauses. */
#define PB_MAX 4
#define BGID 1

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

struct conn {
	int fd;
	uint32_t index, gen;
	bool in_use;
	bool recv_armed, send_armed;
	bool closing;     /* socket shut down; waiting for ops to finish */
	bool read_eof;    /* client half-closed */
	bool stop_input;  /* after a rejected or Connection: close request */
	bool lingering;   /* our side shut down; discarding input */
	bool stalled;     /* waiting for a free request slot */
	bool on_stalled;  /* on the stalled list */
	bool on_linger;   /* on the linger list */
	bool dirty;       /* on the before-wait list */
	bool sent_continue;
	bool multishot;   /* the armed recv is the multishot one */
	bool starved;     /* the ring ran dry: next read is a plain recv */
	bool cancel_sent;
	bool addr_counted; /* counted in the instance's per-address table */
	bool want_proxy;   /* a PROXY protocol header must come first */
	bool evicted;      /* closed to make room; its slot is awaited */
	bool admin;        /* accepted on the admin listener ([admin] port) */
	struct netaddr peer;
	struct netaddr client; /* the PROXY header's source, else the peer */
	int32_t pb_head, pb_tail; /* unread provided buffers, oldest first */
	uint16_t pb_n;
	int64_t linger_until_ms;
	int64_t idle_since_ms;    /* nothing buffered, queued or unsent since */
	int64_t partial_since_ms; /* an incomplete request started arriving */
	int64_t send_armed_ms;    /* when the send in flight was armed */
	struct req *q_head, *q_tail;
	unsigned q_len;
	/* in[in_off, in_len) is unparsed. A plain recv in flight writes at the
	 * in_len it was armed with, so nothing moves until it completes. */
	uint32_t in_off, in_len;
	uint32_t out_sent, out_len;
	char *in, *out;
	struct conn *next; /* free list or dirty list (never both) */
	struct conn *next_stalled;
	struct conn *next_linger;
};

struct conns {
	struct conn *all;
	char *bufs;
	uint32_t in_cap, out_cap;
	/* the provided-buffer ring and, per buffer id, its place in a list */
	struct io_uring_buf_ring *br;
	char *pbufs;
	uint32_t pb_size, pb_entries;
	int pb_mask;
	bool br_registered;
	int32_t *pb_next;
	uint32_t *pb_len, *pb_off;
	unsigned n, open;
	struct conn *free, *dirty, *stalled, *linger;
	/* Connections turned away or evicted, for a log line a second. */
	int64_t refused_logged_ms;
	uint64_t refused_unlogged, evicted_unlogged;
	/* Accepted connections waiting for an evicted one's slot, oldest first. */
	int wait_fd[ACCEPT_WAIT_MAX];
	struct netaddr wait_peer[ACCEPT_WAIT_MAX];
	bool wait_admin[ACCEPT_WAIT_MAX];
	unsigned nwait, evicting;
};

int conns_init(struct worker *w)
{
	const struct cfg *cfg = w->cfg;
	struct conns *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->n = cfg->max_connections;
	cs->in_cap = cfg->max_head_bytes + cfg->max_body_bytes;
	cs->out_cap = cfg->max_pipeline * FLOW_RESP_MAX + (uint32_t)sizeof(continue_100);
	cs->all = calloc(cs->n, sizeof(*cs->all));
	/* One allocation for every buffer; pages are touched only when used. */
	cs->bufs = malloc((size_t)cs->n * (cs->in_cap + cs->out_cap));
	if (!cs->all || !cs->bufs) {
		free(cs->all);
		free(cs->bufs);
		free(cs);
		return -ENOMEM;
	}
	for (unsigned i = cs->n; i-- > 0;) {
		struct conn *c = &cs->all[i];
		c->index = i;
		c->fd = -1;
		c->in = cs->bufs + (size_t)i * (cs->in_cap + cs->out_cap);
		c->out = c->in + cs->in_cap;
		c->next = cs->free;
		cs->free = c;
	}
	w->conns = cs;
	return 0;
}

void conns_destroy(struct worker *w)
{
	struct conns *cs = w->conns;
	if (!cs)
		return;
	for (unsigned i = 0; i < cs->n; i++)
		if (cs->all[i].in_use && cs->all[i].fd >= 0)
			close(cs->all[i].fd);
	for (unsigned i = 0; i < cs->nwait; i++)
		close(cs->wait_fd[i]);
	if (cs->br_registered && w->ring_ready)
		io_uring_unregister_buf_ring(&w->ring, BGID);
	free(cs->br);
	free(cs->pbufs);
	free(cs->pb_next);
	free(cs->pb_len);
	free(cs->pb_off);
	free(cs->all);
	free(cs->bufs);
	free(cs);
	w->conns = NULL;
}

int conns_start(struct worker *w)
{
	struct conns *cs = w->conns;
	uint32_t entries = 16;
	while (entries < w->cfg->recv_buffers)
		entries *= 2;
	cs->pb_entries = entries;
	cs->pb_mask = io_uring_buf_ring_mask(entries);
	cs->pb_size = w->cfg->recv_buffer_bytes;
	void *ring_mem = NULL;
	/* The ring must be page-aligned; liburing 2.3 has no setup helper. */
	if (posix_memalign(&ring_mem, 4096, entries * sizeof(struct io_uring_buf)) != 0)
		return -ENOMEM;
	cs->br = ring_mem;
	cs->pbufs = malloc((size_t)entries * cs->pb_size);
	cs->pb_next = calloc(entries, sizeof(*cs->pb_next));
	cs->pb_len = calloc(entries, sizeof(*cs->pb_len));
	cs->pb_off = calloc(entries, sizeof(*cs->pb_off));
	if (!cs->pbufs || !cs->pb_next || !cs->pb_len || !cs->pb_off)
		return -ENOMEM;
	struct io_uring_buf_reg reg = {
		.ring_addr = (unsigned long)(uintptr_t)cs->br,
		.ring_entries = entries,
		.bgid = BGID,
	};
	int rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (rc < 0)
		return rc;
	cs->br_registered = true;
	io_uring_buf_ring_init(cs->br);
	for (uint32_t bid = 0; bid < entries; bid++)
		io_uring_buf_ring_add(cs->br, cs->pbufs + (size_t)bid * cs->pb_size, cs->pb_size,
				      (unsigned short)bid, cs->pb_mask, (int)bid);
	io_uring_buf_ring_advance(cs->br, (int)entries);
	return 0;
}

static void pb_recycle(struct conns *cs, uint32_t bid)
{
	io_uring_buf_ring_add(cs->br, cs->pbufs + (size_t)bid * cs->pb_size, cs->pb_size,
			      (unsigned short)bid, cs->pb_mask, 0);
	io_uring_buf_ring_advance(cs->br, 1);
}

static void pb_drop_all(struct conns *cs, struct conn *c)
{
	while (c->pb_head >= 0) {
		uint32_t bid = (uint32_t)c->pb_head;
		c->pb_head = cs->pb_next[bid];
		pb_recycle(cs, bid);
	}
	c->pb_tail = -1;
	c->pb_n = 0;
}

static void pb_append(struct conns *cs, struct conn *c, uint32_t bid, uint32_t len)
{
	cs->pb_len[bid] = len;
	cs->pb_off[bid] = 0;
	cs->pb_next[bid] = -1;
	if (c->pb_tail >= 0)
		cs->pb_next[c->pb_tail] = (int32_t)bid;
	else
		c->pb_head = (int32_t)bid;
	c->pb_tail = (int32_t)bid;
	c->pb_n++;
}

/* Copies unread provided buffers into the input buffer, oldest first, as
 * far as it has room; emptied buffers go back to the ring. */
static void absorb(struct conns *cs, struct conn *c)
{
	while (c->pb_head >= 0 && c->in_len < cs->in_cap) {
		uint32_t bid = (uint32_t)c->pb_head;
		uint32_t avail = cs->pb_len[bid] - cs->pb_off[bid];
		uint32_t n = cs->in_cap - c->in_len < avail ? cs->in_cap - c->in_len : avail;
		memcpy(c->in + c->in_len, cs->pbufs + (size_t)bid * cs->pb_size + cs->pb_off[bid], n);
		c->in_len += n;
		cs->pb_off[bid] += n;
		if (cs->pb_off[bid] == cs->pb_len[bid]) {
			c->pb_head = cs->pb_next[bid];
			if (c->pb_head < 0)
				c->pb_tail = -1;
			c->pb_n--;
			pb_recycle(cs, bid);
		}
	}
}

unsigned conns_open(const struct worker *w)
{
	return w->conns->open;
}

bool conn_is_admin(const struct conn *c)
{
	return c->admin;
}

const struct netaddr *conn_client(const struct conn *c)
{
	return &c->client;
}

static void mark_dirty(struct worker *w, struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->next = w->conns->dirty;
	w->conns->dirty = c;
}

/* Returns c to the pool once no operation refers to it. */
static void maybe_release(struct worker *w, struct conn *c)
{
	if (!c->in_use || !c->closing || c->recv_armed || c->send_armed || c->dirty || c->on_stalled ||
	    c->on_linger)
		return;
	struct conns *cs = w->conns;
	if (close(c->fd) < 0)
		worker_warn(w, "conn: close(fd %d): %s", c->fd, strerror(errno));
	if (c->addr_counted)
		adm_conns_close(w->shared->conns, &c->peer);
	c->addr_counted = false;
	if (c->evicted)
		cs->evicting--;
	c->evicted = false;
	c->fd = -1;
	c->in_use = false;
	c->gen++;
	c->next = cs->free;
	cs->free = c;
	cs->open--;
}

static void conn_close(struct worker *w, struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	/* Answers still pending are dropped: the orders go on without us. */
	for (struct req *r = c->q_head, *next; r; r = next) {
		next = r->next;
		flow_conn_done(w, r);
	}
	c->q_head = c->q_tail = NULL;
	c->q_len = 0;
	pb_drop_all(w->conns, c);
	/* Wakes any recv or send in flight so its completion arrives. */
	if (shutdown(c->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
		worker_warn(w, "conn: shutdown(fd %d): %s", c->fd, strerror(errno));
	maybe_release(w, c);
}

/* An idle keep-alive connection: nothing read, queued or unsent. A client
 * that connected and never spoke is idle since its accept. */
static bool is_idle(const struct conn *c)
{
	return c->in_use && !c->closing && !c->lingering && c->q_len == 0 && c->in_len == c->in_off &&
	       c->pb_head < 0 && !c->send_armed && c->out_len == c->out_sent && c->idle_since_ms;
}

/* Closes the longest-idle connection, as nginx does when it runs out, so
 * that a worker full of silent or parked connections still takes new
 * clients. Its slot is free once its recv completes (a loop turn). */
static bool evict_idle(struct worker *w)
{
	struct conns *cs = w->conns;
	struct conn *oldest = NULL;
	for (unsigned i = 0; i < cs->n; i++) {
		struct conn *c = &cs->all[i];
		if (is_idle(c) && (!oldest || c->idle_since_ms < oldest->idle_since_ms))
			oldest = c;
	}
	if (!oldest)
		return false;
	w->stats.conns_evicted++;
	cs->evicted_unlogged++;
	oldest->evicted = true;
	cs->evicting++;
	conn_close(w, oldest);
	return true;
}

static void log_refusals(struct worker *w)
{
	struct conns *cs = w->conns;
	if (!(cs->refused_unlogged || cs->evicted_unlogged) || w->now_mono_ms - cs->refused_logged_ms < 1000)
		return;
	worker_warn(w, "connections: %llu turned away (max_connections %u per worker, addr_max_connections %u per "
		      "address), %llu idle ones closed to make room, since the last such line",
		   (unsigned long long)cs->refused_unlogged, w->cfg->max_connections, w->cfg->addr_max_connections,
		   (unsigned long long)cs->evicted_unlogged);
	cs->refused_unlogged = cs->evicted_unlogged = 0;
	cs->refused_logged_ms = w->now_mono_ms;
}

/* Answers a connection turned away at accept and closes it: a client told
 * why, not a silent close. What it already sent is read and dropped first,
 * so that the close does not reset the answer away. */
static void turn_away(struct worker *w, int fd, enum metrics_refusal why)
{
	char msg[320], body[96];
	unsigned status = metrics_refusal_status(why);
	int bl = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"reason\":\"%s\"}",
			  status == 429 ? "too_many_requests" : "unavailable", metrics_refusal_reason(why));
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
			 "Retry-After: %u\r\nConnection: close\r\n\r\n%s",
			 status, http_status_text(status), bl, w->cfg->retry_after_s, body);
	w->stats.refused[why]++;
	w->conns->refused_unlogged++;
	/* A fresh socket's send buffer is empty: this never blocks nor comes short. */
	if (send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
		shutdown(fd, SHUT_WR);
	char sink[4096];
	for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
	log_refusals(w);
}

/* Gives an accepted socket a free slot: the per-address cap, then the
 * connection's state. */
static void adopt(struct worker *w, int res, const struct netaddr *peer_addr, bool admin)
{
	struct conns *cs = w->conns;
	struct conn *c = cs->free;
	struct netaddr peer = *peer_addr;
	bool exempt = netaddr_in_list(&w->cfg->trusted_proxy_list, &peer);
	if (!exempt && !adm_conns_open(w->shared->conns, &peer, w->cfg->addr_max_connections)) {
		turn_away(w, res, REF_ADDR_CONNECTIONS);
		return;
	}
	c->addr_counted = !exempt;
	c->peer = c->client = peer;
	/* Only a trusted balancer may say whose a connection is. */
	c->want_proxy = exempt && !admin && strcmp(w->cfg->proxy_protocol, "on") == 0;
	c->evicted = false;
	c->admin = admin;
	log_refusals(w);
	cs->free = c->next;
	cs->open++;
	int one = 1;
	if (setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		worker_warn(w, "conn: TCP_NODELAY: %s", strerror(errno));
	c->fd = res;
	c->in_use = true;
	c->recv_armed = c->send_armed = c->closing = c->read_eof = false;
	c->stop_input = c->lingering = c->stalled = c->dirty = c->sent_continue = false;
	c->on_stalled = c->on_linger = false;
	c->multishot = c->starved = c->cancel_sent = false;
	c->pb_head = c->pb_tail = -1;
	c->pb_n = 0;
	c->q_head = c->q_tail = NULL;
	c->q_len = 0;
	c->in_off = c->in_len = c->out_sent = c->out_len = 0;
	c->next = c->next_stalled = c->next_linger = NULL;
	c->idle_since_ms = w->now_mono_ms;
	c->partial_since_ms = 0;
	mark_dirty(w, c);
}

void conn_on_accept(struct worker *w, int res, bool admin)
{
	struct conns *cs = w->conns;
	if (res < 0) {
		if (res != -ECANCELED)
			worker_warn(w, "accept: %s", strerror(-res));
		return;
	}
	if (w->draining) {
		close(res);
		return;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct netaddr peer;
	if (getpeername(res, (struct sockaddr *)&ss, &sl) < 0) {
		close(res); /* gone already */
		return;
	}
	netaddr_from_sockaddr((const struct sockaddr *)&ss, &peer);
	/* Keep a few slots free: the evicted connection's slot returns a turn later. */
	if (cs->n - cs->open <= 1 + cs->n / 64)
		evict_idle(w);
	unsigned nfree = cs->n - cs->open;
	if (nfree > cs->nwait && !cs->nwait) {
		adopt(w, res, &peer, admin);
		return;
	}
	/* Behind others that wait, or full: wait, accepted, for a slot that is
	 * free or an eviction frees, if there is one for it (or one can be
	 * made), else say no. */
	if (cs->nwait < ACCEPT_WAIT_MAX && (nfree + cs->evicting > cs->nwait || evict_idle(w))) {
		cs->wait_fd[cs->nwait] = res;
		cs->wait_admin[cs->nwait] = admin;
		cs->wait_peer[cs->nwait++] = peer;
		return;
	}
	turn_away(w, res, REF_WORKER_FULL);
}

static struct conn *lookup(struct worker *w, uint32_t index, uint32_t gen)
{
	struct conns *cs = w->conns;
	if (index >= cs->n)
		return NULL;
	struct conn *c = &cs->all[index];
	return c->in_use && c->gen == gen ? c : NULL;
}

/* Room for `need` more bytes of output (at most out_cap): moves what is
 * still unsent to the front when that makes room. False: wait for the
 * send in flight, or for one to be armed. */
static bool make_room(struct conns *cs, struct conn *c, uint32_t need)
{
	if (cs->out_cap - c->out_len >= need)
		return true;
	if (c->send_armed || c->out_sent == 0)
		return false;
	memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
	c->out_len -= c->out_sent;
	c->out_sent = 0;
	return cs->out_cap - c->out_len >= need;
}

/* Moves answers from the head of the queue into the output buffer; a
 * large body (r->big) goes in pieces, each as the buffer drains. */
static void pump(struct worker *w, struct conn *c)
{
	struct conns *cs = w->conns;
	while (c->q_head && c->q_head->answered) {
		struct req *r = c->q_head;
		if (r->resp_len) {
			if (!make_room(cs, c, r->resp_len))
				return;
			memcpy(c->out + c->out_len, r->resp, r->resp_len);
			c->out_len += r->resp_len;
			r->resp_len = 0;
		}
		while (r->big_off < r->big_len) {
			if (!make_room(cs, c, 1))
				return;
			uint32_t n = r->big_len - r->big_off;
			if (n > cs->out_cap - c->out_len)
				n = cs->out_cap - c->out_len;
			memcpy(c->out + c->out_len, r->big + r->big_off, n);
			c->out_len += n;
			r->big_off += n;
		}
		if (r->close_after)
			c->stop_input = true;
		c->q_head = r->next;
		if (!c->q_head)
			c->q_tail = NULL;
		c->q_len--;
		flow_conn_done(w, r);
	}
}

void conn_req_answered(struct worker *w, struct conn *c)
{
	if (c->q_head && c->q_head->answered)
		mark_dirty(w, c);
}

static void enqueue(struct conn *c, struct req *r)
{
	r->next = NULL;
	if (c->q_tail)
		c->q_tail->next = r;
	else
		c->q_head = r;
	c->q_tail = r;
	c->q_len++;
}

/* Parses and dispatches every complete request in the input buffer, as far
 * as the pipeline limit and the request pool allow. */
static bool plain_recv_in_flight(const struct conn *c)
{
	return c->recv_armed && !c->multishot;
}

static uint32_t unparsed(const struct conn *c)
{
	return c->in_len - c->in_off;
}

/* Moves unparsed input to the front, unless a recv is writing into it. */
static void compact(struct conn *c)
{
	if (c->in_off == 0 || plain_recv_in_flight(c))
		return;
	memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
	c->in_len -= c->in_off;
	c->in_off = 0;
}

/* Stops reading c and answers status in turn, after what is already
 * queued (with no request free, the close alone says it). */
static void refuse_input(struct worker *w, struct conn *c, unsigned status, const char *why)
{
	struct req *r = flow_alloc(w, c);
	c->stop_input = true;
	if (r) {
		enqueue(c, r);
		flow_reject(w, r, status, why);
	}
}

/* A trusted balancer's PROXY header, before the first request: 1 when it
 * is in (or none was due), 0 when more bytes are needed, -1 when it was
 * refused (answered 400; the connection closes). */
static int take_proxy_header(struct worker *w, struct conn *c)
{
	struct proxyproto pp;
	if (!c->want_proxy)
		return 1;
	int rc = proxyproto_parse(c->in + c->in_off, unparsed(c), &pp);
	if (rc == PROXYPROTO_INCOMPLETE)
		return 0;
	if (rc < 0) {
		c->want_proxy = false;
		refuse_input(w, c, 400, "expected a PROXY protocol header from this load balancer");
		return -1;
	}
	c->want_proxy = false;
	if (pp.has_client)
		c->client = pp.client;
	c->in_off += (uint32_t)rc;
	return 1;
}

static void process_input(struct worker *w, struct conn *c)
{
	struct conns *cs = w->conns;
	if (take_proxy_header(w, c) <= 0) {
		if (unparsed(c) > 0 && !c->partial_since_ms)
			c->partial_since_ms = w->now_mono_ms; /* a header that never ends times out */
		return;
	}
	uint32_t pos = c->in_off;

	while (!c->stop_input && c->q_len < w->cfg->max_pipeline &&
	       pos < c->in_len) {
		struct http_request hr;
		int rc = http_parse_request(c->in + pos, c->in_len - pos, &w->limits, &hr);
		if (rc == HTTP_INCOMPLETE)
			break;
		if (rc >= 0 && c->in_len - pos < hr.head_len + hr.content_length) {
			/* Head complete, body not: ask for it if the client waits. */
			if (hr.expect_continue && !c->sent_continue && c->q_len == 0 &&
			    cs->out_cap - c->out_len >= sizeof(continue_100) - 1) {
				memcpy(c->out + c->out_len, continue_100, sizeof(continue_100) - 1);
				c->out_len += (uint32_t)sizeof(continue_100) - 1;
				c->sent_continue = true;
				mark_dirty(w, c);
			}
			break;
		}
		struct req *r = flow_alloc(w, c);
		if (!r) {
			c->stalled = true; /* the before-wait hook lists it */
			break;
		}
		enqueue(c, r);
		if (rc < 0) {
			c->stop_input = true;
			pos = c->in_len;
			flow_reject(w, r, hr.error_status, hr.error_reason);
			break;
		}
		c->sent_continue = false;
		if (!hr.keep_alive)
			c->stop_input = true;
		flow_handle(w, r, &hr, c->in + pos + hr.head_len);
		pos += (uint32_t)(hr.head_len + hr.content_length);
	}
	if (pos > c->in_off) {
		c->in_off = pos;
		c->partial_since_ms = 0;
	}
	compact(c);
	/* The clock for a slow request starts at its first byte. */
	if (unparsed(c) > 0 && !c->partial_since_ms)
		c->partial_since_ms = w->now_mono_ms;
}

static void arm_recv(struct worker *w, struct conn *c)
{
	struct conns *cs = w->conns;
	struct io_uring_sqe *sqe = worker_sqe(w);
	if (c->lingering || c->starved) {
		/* A plain recv into the input buffer; a lingering connection
		 * reads into the start and throws it away. */
		uint32_t off = c->lingering ? 0 : c->in_len;
		io_uring_prep_recv(sqe, c->fd, c->in + off, cs->in_cap - off, 0);
		c->multishot = false;
	} else {
		io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BGID;
		c->multishot = true;
	}
	io_uring_sqe_set_data64(sqe, ud_make(OP_RECV, c->index, c->gen));
	c->recv_armed = true;
}

static void cancel_recv(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_cancel64(sqe, ud_make(OP_RECV, c->index, c->gen), 0);
	io_uring_sqe_set_data64(sqe, 0);
	c->cancel_sent = true;
	w->stats.recv_paused++;
}

static void arm_send(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_send(sqe, c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(OP_SEND, c->index, c->gen));
	c->send_armed = true;
	c->send_armed_ms = w->now_mono_ms;
}

static void start_linger(struct worker *w, struct conn *c)
{
	if (shutdown(c->fd, SHUT_WR) < 0) {
		conn_close(w, c);
		return;
	}
	c->lingering = true;
	c->in_off = c->in_len = 0;
	pb_drop_all(w->conns, c);
	c->linger_until_ms = w->now_mono_ms + LINGER_MS;
	if (!c->on_linger) {
		c->on_linger = true;
		c->next_linger = w->conns->linger;
		w->conns->linger = c;
	}
}

/* Brings one connection up to date: answers out, input in, ops armed. */
static void service(struct worker *w, struct conn *c)
{
	struct conns *cs = w->conns;
	if (c->closing)
		return;
	if (!c->lingering) {
		pump(w, c);
		compact(c);
		/* Parsing makes room, room takes more of the unread buffers. */
		for (int round = 0; round < 64; round++) {
			absorb(cs, c);
			uint32_t before = c->in_len;
			process_input(w, c);
			if (c->pb_head < 0 || c->in_len == before)
				break;
		}
		pump(w, c);
	}
	bool out_pending = c->out_len > c->out_sent;
	if (out_pending && !c->send_armed)
		arm_send(w, c);
	if (c->lingering) {
		if (c->read_eof || c->linger_until_ms <= w->now_mono_ms) {
			conn_close(w, c);
			return;
		}
	} else if (c->q_len == 0 && !out_pending && !c->send_armed) {
		if (unparsed(c) == 0 && !c->idle_since_ms)
			c->idle_since_ms = w->now_mono_ms;
		if (c->stop_input && !c->read_eof && unparsed(c) > 0) {
			start_linger(w, c);
		} else if (c->stop_input || c->read_eof || w->draining) {
			conn_close(w, c);
			return;
		}
	}
	bool want_input = c->lingering ||
			  (!c->stop_input && !w->draining && !c->stalled &&
			   c->q_len < w->cfg->max_pipeline && c->in_len < cs->in_cap);
	/* A plain recv may only start once the older unread buffers are in. */
	bool can_plain = c->pb_head < 0;
	if (want_input && !c->read_eof && !c->recv_armed && c->pb_n < PB_MAX &&
	    (!(c->starved || c->lingering) || can_plain))
		arm_recv(w, c);
	else if (c->recv_armed && c->multishot && !c->cancel_sent &&
		 (c->pb_n >= PB_MAX || c->lingering))
		cancel_recv(w, c); /* holding enough: let the ring serve others */
}

void conn_on_recv(struct worker *w, uint32_t index, uint32_t gen, int res, uint32_t flags)
{
	struct conns *cs = w->conns;
	int bid = (flags & IORING_CQE_F_BUFFER) ? (int)(flags >> IORING_CQE_BUFFER_SHIFT) : -1;
	struct conn *c = lookup(w, index, gen);
	if (!c || c->closing || (c->lingering && bid >= 0)) {
		if (bid >= 0)
			pb_recycle(cs, (uint32_t)bid); /* nobody will read it */
	}
	if (!c)
		return;
	if (!(flags & IORING_CQE_F_MORE)) {
		c->recv_armed = false;
		c->cancel_sent = false;
	}
	if (c->closing) {
		maybe_release(w, c);
		return;
	}
	if (res == -ENOBUFS) {
		c->starved = true; /* the ring is dry: one plain recv next */
		w->stats.recv_starved++;
	} else if (res == -ECANCELED) {
		/* paused by cancel_recv; service re-arms when it catches up */
	} else if (res == 0) {
		c->read_eof = true;
	} else if (res < 0) {
		conn_close(w, c);
		return;
	} else if (bid >= 0) {
		if (!c->lingering) {
			pb_append(cs, c, (uint32_t)bid, (uint32_t)res);
			c->idle_since_ms = 0;
		}
	} else {
		c->starved = false; /* a plain recv: the bytes are in place */
		if (!c->lingering) {
			c->in_len += (uint32_t)res;
			c->idle_since_ms = 0;
		}
	}
	mark_dirty(w, c);
}

void conn_on_send(struct worker *w, uint32_t index, uint32_t gen, int res)
{
	struct conn *c = lookup(w, index, gen);
	if (!c)
		return;
	c->send_armed = false;
	if (c->closing) {
		maybe_release(w, c);
		return;
	}
	if (res < 0) {
		conn_close(w, c);
		return;
	}
	c->out_sent += (uint32_t)res; /* a short send is resent from here */
	if (c->out_sent == c->out_len)
		c->out_sent = c->out_len = 0;
	mark_dirty(w, c);
}

void conns_before_wait(struct worker *w)
{
	struct conns *cs = w->conns;

	/* Connections that waited for an evicted one's slot, in order. */
	unsigned taken = 0;
	while (taken < cs->nwait && cs->free) {
		adopt(w, cs->wait_fd[taken], &cs->wait_peer[taken], cs->wait_admin[taken]);
		taken++;
	}
	if (taken) {
		memmove(cs->wait_fd, cs->wait_fd + taken, (cs->nwait - taken) * sizeof(cs->wait_fd[0]));
		memmove(cs->wait_admin, cs->wait_admin + taken, (cs->nwait - taken) * sizeof(cs->wait_admin[0]));
		memmove(cs->wait_peer, cs->wait_peer + taken, (cs->nwait - taken) * sizeof(cs->wait_peer[0]));
		cs->nwait -= taken;
	}

	/* Stalled connections go first once requests are free again. */
	while (cs->stalled && flow_has_free(w)) {
		struct conn *c = cs->stalled;
		cs->stalled = c->next_stalled;
		c->on_stalled = false;
		c->stalled = false;
		if (c->closing)
			maybe_release(w, c);
		else
			mark_dirty(w, c);
	}
	while (cs->dirty) {
		struct conn *c = cs->dirty;
		cs->dirty = c->next;
		c->dirty = false;
		c->next = NULL;
		service(w, c);
		if (c->stalled && !c->on_stalled && !c->closing) {
			c->on_stalled = true;
			c->next_stalled = cs->stalled;
			cs->stalled = c;
		}
		maybe_release(w, c);
	}
	/* Lingering connections that time out. */
	for (struct conn **pp = &cs->linger; *pp;) {
		struct conn *c = *pp;
		if (c->closing || c->linger_until_ms <= w->now_mono_ms) {
			*pp = c->next_linger;
			c->on_linger = false;
			conn_close(w, c);
			maybe_release(w, c);
		} else {
			pp = &c->next_linger;
		}
	}
}

void conns_tick(struct worker *w)
{
	struct conns *cs = w->conns;
	int64_t now = w->now_mono_ms;
	for (unsigned i = 0; i < cs->n; i++) {
		struct conn *c = &cs->all[i];
		if (!c->in_use || c->closing || c->lingering)
			continue;
		if (c->partial_since_ms && unparsed(c) > 0 && !c->stop_input && !c->stalled &&
		    now - c->partial_since_ms > (int64_t)w->cfg->request_timeout_ms) {
			/* Answer in turn, after what is already queued, then close. */
			c->partial_since_ms = 0;
			refuse_input(w, c, 408, "request not complete in time");
			mark_dirty(w, c);
		} else if (c->idle_since_ms && unparsed(c) == 0 && c->pb_head < 0 && c->q_len == 0 &&
			   now - c->idle_since_ms > (int64_t)w->cfg->idle_timeout_ms) {
			conn_close(w, c);
			maybe_release(w, c);
		} else if (c->send_armed && now - c->send_armed_ms > (int64_t)w->cfg->send_timeout_ms) {
			/* A send waits only while the socket's buffer is full: the
			 * client stopped reading (a slow-read attack, or a dead app
			 * behind a live TCP stack). Its orders go on without it. */
			w->stats.send_timeouts++;
			conn_close(w, c);
		}
	}
}

void conns_drain(struct worker *w)
{
	struct conns *cs = w->conns;
	for (unsigned i = 0; i < cs->n; i++)
		if (cs->all[i].in_use && !cs->all[i].closing)
			mark_dirty(w, &cs->all[i]);
}
