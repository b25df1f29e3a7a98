/*
 * rlink: one Redis connection through the worker's ring. See rlink.h.
 *
 * Commands are formatted here rather than with redisFormatCommandArgv,
 * which allocates a string per command; RESP is a few lines, and writing it
 * into a preallocated buffer keeps the request path allocation-free.
 * Two output buffers alternate: one is being sent while the turn fills the
 * other, so a send in flight never sees its bytes move.
 */
#include "rlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/fmt.h"
#include "rlookup.h"
#include "script.h"
#include "worker.h"

/* The server's run id: client ids restart after a restart, so a dead
 * connection's id means something only on the server that gave it. */
static const char run_id_lua[] = "return redis.call('INFO', 'server'):match('run_id:(%x+)')";
/* HANDSHAKE: connected, CLIENT ID not answered yet. Only the connection's
 * own commands and replays go out then; reserves wait for UP, so every
 * connection that ever carried a reserve has a known id. */
enum state { R_DOWN, R_CONNECTING, R_HANDSHAKE, R_UP, R_CLOSING };
#define MAX_DEAD 8
#define IN_CAP 65536

struct pending {
	struct req *req;
	long long client_id; /* RLINK_KILL: whom */
	uint8_t kind;
	bool replicated; /* its reply waits for the WAIT queued after it */
	int64_t queued_ms;
	int64_t queued_us; /* the same, for the round-trip histogram */
};

struct rlink {
	unsigned index;
	char host[64];
	unsigned port;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	struct rlookup *lookup; /* NULL: a numeric address */
	char where[80];
	enum state state;
	int fd;
	unsigned ops; /* connect, recv and send in flight */
	bool down_logged;
	int64_t next_attempt_ms;
	struct __kernel_timespec connect_timeout;

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
	bool ever_up; /* has carried reserves at least once */

	/* A replicated command's reply, held until its WAIT answers. */
	struct rslot held;
	struct pending held_pe;
	bool holding;
	unsigned waits_out; /* WAITs without a reply */
	int64_t last_reply_ms;
	/* The last WAIT came short: a WAIT holds the connection for its whole
	 * timeout then, and the commands behind it wait too, so one replicated
	 * command at a time goes out to find out when the replicas are back. */
	bool replicas_short;
};

static bool connected(const struct rlink *l)
{
	return l->state == R_UP || l->state == R_HANDSHAKE;
}

/* An element of a top-level array: a batch's result for one order. */
static void put_elem(struct rslot *slot, const redisReadTask *t, const char *str, size_t len)
{
	if (t->parent->parent || t->idx < 0 || t->idx >= RLINK_ELEMS_MAX)
		return; /* nothing here answers with nested or longer arrays */
	struct relem *e = &slot->elem[t->idx];
	e->type = t->type;
	e->len = len < sizeof(e->str) - 1 ? len : sizeof(e->str) - 1;
	memcpy(e->str, str, e->len);
	e->str[e->len] = '\0';
	if ((unsigned)t->idx + 1 > slot->n_elems)
		slot->n_elems = (unsigned)t->idx + 1;
}

/* hiredis's default callbacks would malloc a redisReply per reply and
 * element; these write into the link's one slot instead. */
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
	(void)obj; /* the slot belongs to struct rlink */
}

static redisReplyObjectFunctions slot_functions = {
	slot_string, slot_array, slot_integer, slot_nil, slot_free,
};

int rlink_new(struct worker *w, unsigned index, const char *host, unsigned port, unsigned cap,
	      size_t out_cap, struct rlink **out)
{
	struct rlink *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	*out = l;
	l->index = index;
	l->fd = -1;
	l->cap = cap;
	l->out_cap = out_cap;
	snprintf(l->host, sizeof(l->host), "%s", host);
	l->port = port;
	snprintf(l->where, sizeof(l->where), "%s:%u", host, port);

	/* Cluster nodes name themselves by address, which needs no lookup;
	 * the configured host may be a name, looked up again before each
	 * reconnect (rlookup.h). */
	char why[160];
	int rc = rlookup_new(host, port, &l->addr, &l->addr_len, &l->lookup, why, sizeof(why));
	if (rc < 0) {
		snprintf(w->err, sizeof(w->err), "redis: %s", why);
		return rc;
	}

	l->out[0] = malloc(out_cap);
	l->out[1] = malloc(out_cap);
	l->in = malloc(IN_CAP);
	l->fifo = calloc(cap, sizeof(*l->fifo));
	if (!l->out[0] || !l->out[1] || !l->in || !l->fifo)
		return -ENOMEM;
	return 0;
}

void rlink_free(struct rlink *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->reader)
		redisReaderFree(l->reader);
	rlookup_free(l->lookup);
	free(l->out[0]);
	free(l->out[1]);
	free(l->in);
	free(l->fifo);
	free(l);
}

bool rlink_up(const struct rlink *l)
{
	return l->state == R_UP;
}

bool rlink_fenced(const struct rlink *l)
{
	return connected(l) && l->fenced;
}

unsigned rlink_waiting(const struct rlink *l)
{
	return l->count;
}

bool rlink_ever_up(const struct rlink *l)
{
	return l->ever_up;
}

bool rlink_replicas_short(const struct rlink *l)
{
	return l->replicas_short;
}

unsigned rlink_index(const struct rlink *l)
{
	return l->index;
}

const char *rlink_where(const struct rlink *l)
{
	return l->where;
}

bool rlink_is(const struct rlink *l, const char *host, unsigned port)
{
	return l->port == port && strcmp(l->host, host) == 0;
}

/* Output bytes a command may take, at most. */
static size_t resp_bound(int argc, const size_t *lens)
{
	size_t need = 16;
	for (int i = 0; i < argc; i++)
		need += lens[i] + 24;
	return need;
}

static bool room(const struct rlink *l, unsigned cmds, size_t bytes)
{
	return l->cap - l->count >= cmds && l->out_cap - l->out_len[l->fill] >= bytes;
}

static int put(struct worker *w, struct rlink *l, uint8_t kind, struct req *req, int argc, const char **argv,
	       const size_t *lens)
{
	if (!room(l, 1, resp_bound(argc, lens)))
		return -ENOBUFS;
	/* RESP by hand, no printf: a batch of orders has 6 arguments each. */
	char *p = l->out[l->fill] + l->out_len[l->fill];
	*p++ = '*';
	p = fmt_put(fmt_u64(p, (uint64_t)argc), "\r\n", 2);
	for (int i = 0; i < argc; i++) {
		*p++ = '$';
		p = fmt_put(fmt_u64(p, lens[i]), "\r\n", 2);
		p = fmt_put(fmt_put(p, argv[i], lens[i]), "\r\n", 2);
	}
	l->out_len[l->fill] = (size_t)(p - l->out[l->fill]);
	struct pending *pe = &l->fifo[(l->head + l->count++) % l->cap];
	pe->req = req;
	pe->client_id = 0;
	pe->kind = kind;
	pe->replicated = false;
	pe->queued_ms = w->now_mono_ms;
	pe->queued_us = w->now_mono_us;
	return 0;
}

int rlink_put(struct worker *w, struct rlink *l, uint8_t kind, struct req *req, int argc, const char **argv,
	      const size_t *lens)
{
	if (!connected(l))
		return -ENOTCONN;
	return put(w, l, kind, req, argc, argv, lens);
}

int rlink_put_replicated(struct worker *w, struct rlink *l, uint8_t kind, struct req *req, int argc,
			 const char **argv, const size_t *lens)
{
	const struct cfg *cfg = w->cfg;
	if (cfg->redis_wait_replicas == 0)
		return rlink_put(w, l, kind, req, argc, argv, lens);
	if (!connected(l))
		return -ENOTCONN;
	if (l->replicas_short && l->waits_out > 0)
		return -EAGAIN;
	char replicas[FMT_U64_MAX], timeout[FMT_U64_MAX];
	const char *wait_argv[3] = {"WAIT", replicas, timeout};
	size_t wait_lens[3] = {4, (size_t)(fmt_u64(replicas, cfg->redis_wait_replicas) - replicas),
			       (size_t)(fmt_u64(timeout, cfg->redis_wait_timeout_ms) - timeout)};
	/* Both or neither: a WAIT missing after its command would hold the
	 * command's reply forever. */
	if (!room(l, 2, resp_bound(argc, lens) + resp_bound(3, wait_lens)))
		return -ENOBUFS;
	int rc = put(w, l, kind, req, argc, argv, lens);
	if (rc == 0) {
		l->fifo[(l->head + l->count - 1) % l->cap].replicated = true;
		rc = put(w, l, RLINK_WAIT, NULL, 3, wait_argv, wait_lens);
	}
	if (rc == 0)
		l->waits_out++;
	return rc;
}

static void queue_loads(struct worker *w, struct rlink *l)
{
	if (l->load_queued)
		return;
	for (unsigned i = 0; i < SCRIPT_N; i++) {
		const char *argv[3] = {"SCRIPT", "LOAD", script_src[i]};
		size_t lens[3] = {6, 4, strlen(script_src[i])};
		if (put(w, l, RLINK_LOAD, NULL, 3, argv, lens) < 0)
			return;
	}
	l->load_queued = true;
}

void rlink_reload_scripts(struct worker *w, struct rlink *l)
{
	l->load_queued = false;
	queue_loads(w, l);
}

void rlink_close(struct worker *w, struct rlink *l, const char *why)
{
	if (!connected(l))
		return;
	worker_warn(w, "redis %s: connection lost: %s; %u commands failed, reconnecting", l->where, why,
		   l->count + l->holding);
	l->state = R_CLOSING;
	l->down_logged = true;
	l->fenced = false;
	if (l->client_id > 0) {
		if (l->n_dead == 0)
			memcpy(l->dead_run_id, l->run_id, sizeof(l->run_id));
		if (l->n_dead < MAX_DEAD)
			l->dead[l->n_dead++] = l->client_id;
		else
			worker_warn(w, "redis %s: more than %d dropped connections not yet killed; "
				      "a late reserve from connection %lld may need reconcile",
				   l->where, MAX_DEAD, l->client_id);
	}
	l->client_id = 0;
	l->waits_out = 0;
	if (l->holding) {
		/* Ran, but its replication is unknown: lost like the rest. */
		l->holding = false;
		resv_link_lost(w, l, l->held_pe.kind, l->held_pe.req);
	}
	while (l->count) {
		struct pending pe = l->fifo[l->head];
		l->head = (l->head + 1) % l->cap;
		l->count--;
		if (pe.req)
			resv_link_lost(w, l, pe.kind, pe.req);
	}
	l->head = 0;
	l->out_len[0] = l->out_len[1] = 0;
	l->load_queued = false;
	if (shutdown(l->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
		worker_warn(w, "redis %s: shutdown: %s", l->where, strerror(errno));
}

/* Finishes a close once no operation refers to the socket. */
static void maybe_closed(struct worker *w, struct rlink *l)
{
	if (l->ops > 0 || l->state != R_CLOSING)
		return;
	close(l->fd);
	l->fd = -1;
	l->sending = false;
	l->send_off = 0;
	l->state = R_DOWN;
	l->next_attempt_ms = w->now_mono_ms + w->cfg->redis_reconnect_ms;
}

static void start_connect(struct worker *w, struct rlink *l)
{
	l->fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		worker_warn(w, "redis %s: socket: %s", l->where, strerror(errno));
		l->next_attempt_ms = w->now_mono_ms + w->cfg->redis_reconnect_ms;
		return;
	}
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_connect(sqe, l->fd, (struct sockaddr *)&l->addr, l->addr_len);
	io_uring_sqe_set_data64(sqe, ud_make(OP_REDIS_CONNECT, l->index, 0));
	sqe->flags |= IOSQE_IO_LINK;
	/* Read at each attempt: [redis] timeout_ms changes on SIGHUP. */
	l->connect_timeout.tv_sec = w->cfg->redis_timeout_ms / 1000;
	l->connect_timeout.tv_nsec = (long long)(w->cfg->redis_timeout_ms % 1000) * 1000000;
	sqe = worker_sqe(w);
	io_uring_prep_link_timeout(sqe, &l->connect_timeout, 0);
	io_uring_sqe_set_data64(sqe, 0); /* its completion is not needed */
	l->ops++;
	l->state = R_CONNECTING;
}

static void arm_recv(struct worker *w, struct rlink *l)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_recv(sqe, l->fd, l->in, IN_CAP, 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_REDIS_RECV, l->index, 0));
	l->ops++;
}

void rlink_on_connect(struct worker *w, struct rlink *l, int res)
{
	l->ops--;
	if (res < 0) {
		if (!l->down_logged)
			worker_warn(w, "redis %s: cannot connect: %s; retrying every %u ms", l->where,
				   strerror(-res == ECANCELED ? ETIMEDOUT : -res), w->cfg->redis_reconnect_ms);
		l->down_logged = true;
		l->state = R_CLOSING;
		maybe_closed(w, l);
		return;
	}
	int one = 1;
	if (setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		worker_warn(w, "redis %s: TCP_NODELAY: %s", l->where, strerror(errno));
	if (l->reader)
		redisReaderFree(l->reader);
	l->reader = redisReaderCreateWithFunctions(&slot_functions);
	if (l->reader) {
		redisReaderSetPrivdata(l->reader, &l->slot);
		/* Keep the read buffer between replies instead of freeing it. */
		l->reader->maxbuf = 0;
	}
	if (!l->reader) {
		worker_warn(w, "redis %s: out of memory for the reply reader", l->where);
		l->state = R_HANDSHAKE;
		rlink_close(w, l, "out of memory");
		return;
	}
	if (l->down_logged)
		worker_log(w, "redis %s: connected", l->where);
	l->down_logged = false;
	l->state = R_HANDSHAKE;
	l->fill = 0;
	l->out_len[0] = l->out_len[1] = 0;
	arm_recv(w, l);
	const char *id_argv[2] = {"CLIENT", "ID"};
	size_t id_lens[2] = {6, 2};
	const char *run_argv[3] = {"EVAL", run_id_lua, "0"};
	size_t run_lens[3] = {4, strlen(run_id_lua), 1};
	l->fenced = false;
	int rc = 0;
	const struct cfg *cfg = w->cfg;
	if (*cfg->redis_password) {
		/* First: every command after it runs as its user. */
		bool user = *cfg->redis_user;
		const char *auth_argv[3] = {"AUTH", user ? cfg->redis_user : cfg->redis_password, cfg->redis_password};
		size_t auth_lens[3] = {4, strlen(auth_argv[1]), strlen(auth_argv[2])};
		rc = put(w, l, RLINK_AUTH, NULL, user ? 3 : 2, auth_argv, auth_lens);
	}
	if (rc == 0)
		rc = put(w, l, RLINK_RUN_ID, NULL, 3, run_argv, run_lens);
	if (rc == 0)
		rc = put(w, l, RLINK_CLIENT_ID, NULL, 2, id_argv, id_lens);
	if (rc < 0) {
		rlink_close(w, l, "pipeline full at connect");
		maybe_closed(w, l);
		return;
	}
	/* Redis may have restarted or failed over without the scripts. */
	queue_loads(w, l);
	/* Replays wait for the run id: see fence(). */
}

/* Kills the dropped connections of this same server before anything is
 * replayed: a release must not run ahead of a reserve a dead connection
 * still had in Redis's input buffer. After a restart none can exist. */
static void fence(struct worker *w, struct rlink *l, const char *run_id)
{
	snprintf(l->run_id, sizeof(l->run_id), "%s", run_id);
	if (strcmp(l->run_id, l->dead_run_id) != 0)
		l->n_dead = 0;
	for (unsigned i = 0; i < l->n_dead; i++) {
		char id[24];
		const char *kill_argv[4] = {"CLIENT", "KILL", "ID", id};
		size_t kill_lens[4] = {6, 4, 2, 0};
		kill_lens[3] = (size_t)snprintf(id, sizeof(id), "%lld", l->dead[i]);
		if (put(w, l, RLINK_KILL, NULL, 4, kill_argv, kill_lens) < 0) {
			rlink_close(w, l, "pipeline full while fencing");
			return;
		}
		l->fifo[(l->head + l->count - 1) % l->cap].client_id = l->dead[i];
	}
	l->fenced = true;
	resv_link_ready(w, l);
}

/* A replicated command's WAIT answered: its held reply goes to resv as
 * it came if enough replicas have every write this connection made so far
 * (or if the command failed: an error wrote nothing to wait for), and as a
 * NOREPLICAS error otherwise: the command ran here, but a failover could
 * lose what it wrote. */
static void on_wait_reply(struct worker *w, struct rlink *l, const struct rslot *reply)
{
	if (!l->holding) {
		rlink_close(w, l, "WAIT answered with no command held for it");
		return;
	}
	l->holding = false;
	l->waits_out--;
	unsigned want = w->cfg->redis_wait_replicas;
	long long got = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
	if (got >= (long long)want || l->held.type == REDIS_REPLY_ERROR) {
		if (got >= (long long)want && l->replicas_short) {
			worker_log(w, "redis %s: writes reach %lld replicas again", l->where, got);
			l->replicas_short = false;
		}
		resv_link_reply(w, l, l->held_pe.kind, l->held_pe.req, &l->held);
		return;
	}
	w->stats.replication_short++;
	if (!l->replicas_short) {
		worker_warn(w, "redis %s: WAIT %u %u: %s; its orders are answered 503 and their "
			      "reservations released until enough replicas keep up",
			   l->where, want, w->cfg->redis_wait_timeout_ms,
			   got >= 0 ? "too few replicas acknowledged in time" : reply->str);
		l->replicas_short = true;
	}
	struct rslot *no = &l->held;
	no->type = REDIS_REPLY_ERROR;
	no->len = (size_t)snprintf(no->str, sizeof(no->str), "NOREPLICAS %lld of %u replicas in %u ms",
				   got < 0 ? 0 : got, want, w->cfg->redis_wait_timeout_ms);
	no->n_elems = 0;
	resv_link_reply(w, l, l->held_pe.kind, l->held_pe.req, no);
}

/* The link's own commands; anything else is resv's. */
static void on_reply(struct worker *w, struct rlink *l, struct rslot *reply)
{
	if (l->count == 0) {
		rlink_close(w, l, "reply with no command waiting for it");
		return;
	}
	struct pending pe = l->fifo[l->head];
	l->head = (l->head + 1) % l->cap;
	l->count--;
	l->last_reply_ms = w->now_mono_ms;
	metrics_rtt_add(&w->redis_rtt, w->now_mono_us - pe.queued_us);
	if (pe.replicated) {
		l->held = *reply;
		l->held_pe = pe;
		l->holding = true;
		return;
	}
	switch (pe.kind) {
	case RLINK_WAIT:
		on_wait_reply(w, l, reply);
		return;
	case RLINK_LOAD:
		l->load_queued = false;
		if (reply->type == REDIS_REPLY_ERROR)
			worker_warn(w, "redis %s: SCRIPT LOAD failed: %s", l->where, reply->str);
		return;
	case RLINK_ASKING:
		return; /* OK; the command after it says the rest */
	case RLINK_PING:
		return; /* any reply: the server answers */
	case RLINK_AUTH:
		if (reply->type == REDIS_REPLY_ERROR) {
			char why[sizeof(reply->str) + 32];
			snprintf(why, sizeof(why), "AUTH%s%s: %s", *w->cfg->redis_user ? " as " : "",
				 w->cfg->redis_user, reply->str);
			rlink_close(w, l, why);
		}
		return;
	case RLINK_RUN_ID:
		if (reply->type != REDIS_REPLY_STRING || reply->len == 0) {
			rlink_close(w, l, reply->type == REDIS_REPLY_ERROR ? reply->str : "no run id");
			return;
		}
		fence(w, l, reply->str);
		return;
	case RLINK_CLIENT_ID:
		if (reply->type != REDIS_REPLY_INTEGER) {
			rlink_close(w, l, "CLIENT ID failed");
			return;
		}
		l->client_id = reply->integer;
		l->state = R_UP; /* reserves may go out now */
		l->ever_up = true;
		return;
	case RLINK_KILL:
		/* Killed, or "No such client": either way it runs nothing more. */
		if (reply->type != REDIS_REPLY_ERROR || strstr(reply->str, "No such client")) {
			for (unsigned i = 0; i < l->n_dead; i++) {
				if (l->dead[i] == pe.client_id) {
					l->dead[i] = l->dead[--l->n_dead];
					break;
				}
			}
		} else {
			worker_warn(w, "redis %s: CLIENT KILL ID %lld: %s", l->where, pe.client_id, reply->str);
		}
		return;
	default:
		resv_link_reply(w, l, pe.kind, pe.req, reply);
	}
}

void rlink_on_recv(struct worker *w, struct rlink *l, int res)
{
	l->ops--;
	if (!connected(l)) {
		maybe_closed(w, l);
		return;
	}
	if (res <= 0) {
		rlink_close(w, l, res == 0 ? "closed by the server" : strerror(-res));
		maybe_closed(w, l);
		return;
	}
	if (redisReaderFeed(l->reader, l->in, (size_t)res) != REDIS_OK) {
		rlink_close(w, l, "reply reader failed");
		maybe_closed(w, l);
		return;
	}
	for (;;) {
		void *reply = NULL;
		if (redisReaderGetReply(l->reader, &reply) != REDIS_OK) {
			rlink_close(w, l, l->reader->errstr[0] ? l->reader->errstr : "protocol error");
			break;
		}
		if (!reply)
			break;
		on_reply(w, l, reply);
		if (!connected(l))
			break;
	}
	if (connected(l)) {
		if (l->fenced)
			resv_link_ready(w, l);
		arm_recv(w, l);
	}
	maybe_closed(w, l);
}

static void arm_send(struct worker *w, struct rlink *l)
{
	unsigned idx = l->fill ^ 1;
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_send(sqe, l->fd, l->out[idx] + l->send_off, l->out_len[idx] - l->send_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(OP_REDIS_SEND, l->index, 0));
	l->ops++;
}

void rlink_on_send(struct worker *w, struct rlink *l, int res)
{
	l->ops--;
	if (!connected(l)) {
		maybe_closed(w, l);
		return;
	}
	if (res < 0) {
		rlink_close(w, l, strerror(-res));
		maybe_closed(w, l);
		return;
	}
	unsigned idx = l->fill ^ 1;
	l->send_off += (size_t)res;
	if (l->send_off < l->out_len[idx]) {
		arm_send(w, l); /* short send: the rest, before anything newer */
		return;
	}
	l->out_len[idx] = 0;
	l->send_off = 0;
	l->sending = false;
}

void rlink_before_wait(struct worker *w, struct rlink *l)
{
	if (!connected(l) || l->sending || l->out_len[l->fill] == 0) {
		maybe_closed(w, l);
		return;
	}
	l->fill ^= 1; /* the filled buffer goes out; the turn fills the other */
	l->sending = true;
	w->stats.redis_sends++;
	l->send_off = 0;
	arm_send(w, l);
}

/* Whether a reconnect may go now: a host given by name is looked up again
 * first, the worker asking on later ticks while the lookup runs. */
static bool address_ready(struct worker *w, struct rlink *l)
{
	char note[256];
	if (!l->lookup)
		return true;
	int rc = rlookup_poll(l->lookup, w->now_mono_ms, w->cfg->redis_timeout_ms, &l->addr, &l->addr_len, note,
			      sizeof(note));
	if (*note)
		worker_log(w, "redis %s: %s", l->where, note);
	return rc == 0;
}

/* A link with nothing to say for this long says PING: silence from then
 * on closes it after [redis] timeout_ms, as for any command. */
#define RLINK_IDLE_PING_MS 500

void rlink_tick(struct worker *w, struct rlink *l)
{
	if (l->state == R_DOWN && w->now_mono_ms >= l->next_attempt_ms && address_ready(w, l))
		start_connect(w, l);
	if (l->state == R_UP && l->count == 0 && w->now_mono_ms - l->last_reply_ms >= RLINK_IDLE_PING_MS) {
		const char *ping_argv[1] = {"PING"};
		static const size_t ping_lens[1] = {4};
		if (put(w, l, RLINK_PING, NULL, 1, ping_argv, ping_lens) < 0)
			return; /* no room: then it is not idle */
	}
	if (!connected(l) || l->count == 0)
		return;
	/* Silence, not a long queue, is what marks a dead server: each WAIT
	 * may hold the connection for its timeout, and what is queued behind a
	 * few of them can wait longer than timeout_ms while replies flow. */
	int64_t since = l->fifo[l->head].queued_ms;
	if (l->last_reply_ms > since)
		since = l->last_reply_ms;
	if (w->now_mono_ms - since > (int64_t)w->cfg->redis_timeout_ms) {
		char why[64];
		snprintf(why, sizeof(why), "no reply within %u ms", w->cfg->redis_timeout_ms);
		rlink_close(w, l, why);
		maybe_closed(w, l);
	}
}
