/*
 * rlink: one Redis connection of a worker, driven by the worker's ring.
 *
 * Commands are written straight into an output buffer in RESP (no
 * allocation), gathered over a loop turn and sent in one write; replies are
 * parsed with hiredis's reader into one reused slot and matched to commands
 * in order. The link connects and reconnects by itself, loads the scripts on
 * every new connection, and before it lets resv replay anything it kills its
 * dropped connections on the same server (CLIENT KILL ID), so a command a
 * dead connection left in Redis's input buffer cannot run after its replay.
 *
 * A worker has one link per Redis server it talks to: one for a single
 * server, one per master of a Redis Cluster (resv routes).
 *
 * Owns: the socket, the buffers, the reader, the queue of commands waiting
 * for replies, reconnects, timeouts (an idle link is pinged, so a server
 * that stops answering is found even with no order flowing) and fencing, and the WAIT that follows
 * a replicated command ([redis] wait_replicas). Does not own: what a
 * command or a reply means (resv, through the callbacks below).
 */
#ifndef FG_RLINK_H
#define FG_RLINK_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct worker;
struct req;
struct rlink;

/* Longest batch a reply can carry one result per order for. */
#define RLINK_ELEMS_MAX 32

/* One reply: a scalar, or a batch's array of short strings. */
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
	struct relem elem[RLINK_ELEMS_MAX];
};

/* The link's own commands; resv's kinds start at RLINK_KIND_USER. */
enum {
	RLINK_LOAD = 1, RLINK_AUTH, RLINK_RUN_ID, RLINK_CLIENT_ID, RLINK_KILL, RLINK_ASKING, RLINK_WAIT,
	RLINK_PING, RLINK_KIND_USER
};

/* index: the link's number in the worker (user_data of its operations).
 * cap: commands that may wait for replies at once; out_cap: bytes a turn
 * may queue. -errno with w->err set. */
int rlink_new(struct worker *w, unsigned index, const char *host, unsigned port, unsigned cap,
	      size_t out_cap, struct rlink **out) __attribute__((warn_unused_result));
void rlink_free(struct rlink *l);

/* Queues one command (argv form) for req; its reply or its loss goes to
 * resv_link_reply / resv_link_lost. -ENOTCONN when not connected, -ENOBUFS
 * when full. */
int rlink_put(struct worker *w, struct rlink *l, uint8_t kind, struct req *req, int argc,
	      const char **argv, const size_t *lens) __attribute__((warn_unused_result));
/* The same for a command whose writes must survive a failover: with
 * [redis] wait_replicas = N, a WAIT N follows it and its reply reaches resv
 * only once N replicas have its writes, or else as an error reply starting
 * "NOREPLICAS" (it ran: what it wrote may be lost). Without, rlink_put.
 * -EAGAIN, not sent: the last WAIT came short and another is out. */
int rlink_put_replicated(struct worker *w, struct rlink *l, uint8_t kind, struct req *req, int argc,
			 const char **argv, const size_t *lens) __attribute__((warn_unused_result));
/* The scripts again (after NOSCRIPT), before anything queued after this. */
void rlink_reload_scripts(struct worker *w, struct rlink *l);
/* Drops the connection: every command without a reply is lost. */
void rlink_close(struct worker *w, struct rlink *l, const char *why);

bool rlink_up(const struct rlink *l);        /* handshake done: may carry reserves */
bool rlink_fenced(const struct rlink *l);    /* dropped connections killed: may replay */
bool rlink_ever_up(const struct rlink *l);   /* has been up at least once */
bool rlink_replicas_short(const struct rlink *l); /* the last WAIT came short */
unsigned rlink_waiting(const struct rlink *l); /* commands without a reply yet */
unsigned rlink_index(const struct rlink *l);
const char *rlink_where(const struct rlink *l); /* "host:port" */
bool rlink_is(const struct rlink *l, const char *host, unsigned port);

void rlink_on_connect(struct worker *w, struct rlink *l, int res);
void rlink_on_recv(struct worker *w, struct rlink *l, int res);
void rlink_on_send(struct worker *w, struct rlink *l, int res);
void rlink_before_wait(struct worker *w, struct rlink *l);
void rlink_tick(struct worker *w, struct rlink *l);

/* Implemented by resv. */
void resv_link_reply(struct worker *w, struct rlink *l, uint8_t kind, struct req *req, struct rslot *reply);
void resv_link_lost(struct worker *w, struct rlink *l, uint8_t kind, struct req *req);
/* Fenced after a (re)connect: what waited for this link may go. */
void resv_link_ready(struct worker *w, struct rlink *l);

#endif
