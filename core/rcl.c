/* rcl: cluster-aware blocking Redis client for admin commands. See rcl.h. */
#include "rcl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A cluster has far fewer masters; more means a confused map. */
#define MAX_NODES 64
/* Redirections followed for one command before giving up. */
#define MAX_REDIRECTS 8
/* A key's master that cannot be reached: the slot map read again from the
 * other nodes this often, this many times (2 s), before giving up. */
#define REFRESH_MS 100
#define MAX_REFRESHES 20

struct node {
	char host[64];
	unsigned port;
	redisContext *ctx; /* NULL until first used */
	unsigned gen;      /* connections opened: tells a pipeline its own from a new one */
};

struct rcl {
	struct timeval timeout;
	const char *user, *password; /* the caller's, for AUTH on every node */
	bool cluster;
	struct node nodes[MAX_NODES];
	unsigned n_nodes;
	uint8_t slots[RCL_SLOTS]; /* slot -> index in nodes */
	char err[256];
};

/* CRC16-CCITT (XMODEM), the function Redis Cluster hashes keys with. */
static uint16_t crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
	}
	return crc;
}

unsigned rcl_slot(const char *key, size_t len)
{
	/* Only the part between the first '{' and the next '}' counts, when
	 * it is not empty. */
	const char *open = memchr(key, '{', len);
	if (open) {
		size_t rest = len - (size_t)(open - key) - 1;
		const char *close = memchr(open + 1, '}', rest);
		if (close && close > open + 1)
			return crc16(open + 1, (size_t)(close - open - 1)) & (RCL_SLOTS - 1);
	}
	return crc16(key, len) & (RCL_SLOTS - 1);
}

static int node_index(struct rcl *c, const char *host, unsigned port)
{
	for (unsigned i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].port == port && strcmp(c->nodes[i].host, host) == 0)
			return (int)i;
	if (c->n_nodes == MAX_NODES || strlen(host) >= sizeof(c->nodes[0].host)) {
		snprintf(c->err, sizeof(c->err), "redis cluster: too many nodes, or a bad address %s:%u", host, port);
		return -ENOSPC;
	}
	struct node *n = &c->nodes[c->n_nodes];
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	n->ctx = NULL;
	return (int)c->n_nodes++;
}

static redisContext *node_ctx(struct rcl *c, unsigned i)
{
	struct node *n = &c->nodes[i];
	if (n->ctx)
		return n->ctx;
	redisContext *ctx = redisConnectWithTimeout(n->host, (int)n->port, c->timeout);
	if (!ctx || ctx->err || redisSetTimeout(ctx, c->timeout) != REDIS_OK) {
		snprintf(c->err, sizeof(c->err), "redis %s:%u: %s", n->host, n->port,
			 ctx && ctx->err ? ctx->errstr : "cannot connect");
		redisFree(ctx);
		return NULL;
	}
	if (*c->password) {
		redisReply *r = *c->user ? redisCommand(ctx, "AUTH %s %s", c->user, c->password)
					 : redisCommand(ctx, "AUTH %s", c->password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(c->err, sizeof(c->err), "redis %s:%u AUTH%s%s: %s", n->host, n->port,
				 *c->user ? " as " : "", c->user, r ? r->str : ctx->errstr);
			freeReplyObject(r);
			redisFree(ctx);
			return NULL;
		}
		freeReplyObject(r);
	}
	n->gen++;
	return n->ctx = ctx;
}

/* Reads CLUSTER SLOTS: [[start, end, [host, port, id], replicas...], ...] */
static int read_slot_map(struct rcl *c, redisContext *ctx)
{
	redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
	if (!r) {
		snprintf(c->err, sizeof(c->err), "redis CLUSTER SLOTS: %s", ctx->errstr);
		return -EIO;
	}
	int rc = 0;
	if (r->type == REDIS_REPLY_ERROR) {
		/* "ERR This instance has cluster support disabled" */
		c->cluster = false;
		goto out;
	}
	c->cluster = true;
	for (size_t i = 0; i < r->elements && rc == 0; i++) {
		redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[2]->type != REDIS_REPLY_ARRAY ||
		    e->element[2]->elements < 2 || e->element[2]->element[0]->type != REDIS_REPLY_STRING) {
			snprintf(c->err, sizeof(c->err), "redis CLUSTER SLOTS: unexpected reply");
			rc = -EIO;
			break;
		}
		long long from = e->element[0]->integer, to = e->element[1]->integer;
		int idx = node_index(c, e->element[2]->element[0]->str, (unsigned)e->element[2]->element[1]->integer);
		if (idx < 0 || from < 0 || to >= RCL_SLOTS || from > to) {
			rc = idx < 0 ? idx : -EIO;
			break;
		}
		for (long long s = from; s <= to; s++)
			c->slots[s] = (uint8_t)idx;
	}
out:
	freeReplyObject(r);
	return rc;
}

struct rcl *rcl_open(const char *host, unsigned port, unsigned timeout_ms, const char *user,
		     const char *password, char *err, size_t err_len)
{
	struct rcl *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, err_len, "redis: out of memory");
		return NULL;
	}
	c->user = user ? user : "";
	c->password = password ? password : "";
	c->timeout.tv_sec = timeout_ms / 1000;
	c->timeout.tv_usec = (timeout_ms % 1000) * 1000;
	redisContext *ctx = NULL;
	if (node_index(c, host, port) < 0 || !(ctx = node_ctx(c, 0)) || read_slot_map(c, ctx) < 0) {
		snprintf(err, err_len, "%s", c->err);
		rcl_close(c);
		return NULL;
	}
	return c;
}

void rcl_close(struct rcl *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n_nodes; i++)
		redisFree(c->nodes[i].ctx);
	free(c);
}

bool rcl_is_cluster(const struct rcl *c)
{
	return c->cluster;
}

const char *rcl_error(const struct rcl *c)
{
	return c->err;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the slot and the node's index. */
static int redirect_target(struct rcl *c, const char *msg, unsigned *slot)
{
	char host[64];
	unsigned port;
	if (sscanf(msg, "%*s %u %63[^:]:%u", slot, host, &port) != 3 || *slot >= RCL_SLOTS) {
		snprintf(c->err, sizeof(c->err), "redis: unreadable redirection '%.80s'", msg);
		return -EIO;
	}
	return node_index(c, host, port);
}

/* A master that died answers nothing, so no MOVED names the replica that
 * takes over, and the node the map was read from may still name the dead
 * one for a moment after the promotion. So the map is read again from any
 * other node that answers. 0 once read; -EIO if none answered (c->err
 * keeps the first failure). */
static int refresh_map(struct rcl *c, unsigned dead)
{
	char first_err[sizeof(c->err)];
	memcpy(first_err, c->err, sizeof(first_err));
	usleep(REFRESH_MS * 1000);
	int rc = -EIO;
	for (unsigned i = 0; i < c->n_nodes && rc < 0; i++) {
		redisContext *ctx = i == dead ? NULL : node_ctx(c, i);
		if (ctx && (rc = read_slot_map(c, ctx)) < 0 && ctx->err) {
			/* Its connection is unusable now: reconnect on next use. */
			redisFree(ctx);
			c->nodes[i].ctx = NULL;
		}
	}
	memcpy(c->err, first_err, sizeof(c->err));
	return rc;
}

/* What run() sends: a hiredis format with its arguments, or an argv. */
struct what {
	const char *fmt;
	va_list *ap;
	struct rcl_cmd *cmd;
};

/* hiredis's argv functions take const char **; they do not write to it. */
static const char **cmd_argv(const struct rcl_cmd *cmd)
{
	return (const char **)(cmd->many ? cmd->many : cmd->argv);
}

static const size_t *cmd_len(const struct rcl_cmd *cmd)
{
	return cmd->many ? cmd->many_len : cmd->len;
}

static redisReply *send_one(redisContext *ctx, const struct what *w)
{
	if (w->cmd)
		return redisCommandArgv(ctx, w->cmd->argc, cmd_argv(w->cmd), cmd_len(w->cmd));
	va_list copy;
	va_copy(copy, *w->ap);
	redisReply *r = redisvCommand(ctx, w->fmt, copy);
	va_end(copy);
	return r;
}

static redisReply *run(struct rcl *c, const char *key, const struct what *what)
{
	unsigned slot = key ? rcl_slot(key, strlen(key)) : 0;
	unsigned node = c->cluster && key ? c->slots[slot] : 0;
	bool asking = false;
	int refreshes = 0;
	for (int hop = 0; hop <= MAX_REDIRECTS; hop++) {
		redisContext *ctx = node_ctx(c, node);
		if (!ctx && c->cluster && key && refreshes < MAX_REFRESHES && refresh_map(c, node) == 0) {
			refreshes++;
			hop--; /* not a redirection */
			node = c->slots[slot];
			asking = false;
			continue;
		}
		if (!ctx) {
			if (c->cluster && key) {
				size_t n = strlen(c->err);
				snprintf(c->err + n, sizeof(c->err) - n,
					 " (slot %u's master in the cluster's map for the last %d s; if it has just "
					 "died, run this again once its replica is promoted)",
					 slot, MAX_REFRESHES * REFRESH_MS / 1000);
			}
			return NULL;
		}
		if (asking) {
			redisReply *ok = redisCommand(ctx, "ASKING");
			freeReplyObject(ok);
			asking = false;
		}
		redisReply *r = send_one(ctx, what);
		if (!r) {
			snprintf(c->err, sizeof(c->err), "redis %s:%u: %s", c->nodes[node].host, c->nodes[node].port,
				 ctx->errstr);
			/* The connection is unusable now: reconnect on next use. */
			redisFree(ctx);
			c->nodes[node].ctx = NULL;
			return NULL;
		}
		bool moved = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0;
		bool ask = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0;
		bool again = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "TRYAGAIN", 8) == 0;
		if (!moved && !ask && !again)
			return r;
		if (again) { /* a multi-key command during a migration: wait a little */
			freeReplyObject(r);
			usleep(50000);
			continue;
		}
		unsigned moved_slot;
		int target = redirect_target(c, r->str, &moved_slot);
		freeReplyObject(r);
		if (target < 0)
			return NULL;
		if (moved)
			c->slots[moved_slot] = (uint8_t)target;
		asking = ask;
		node = (unsigned)target;
	}
	snprintf(c->err, sizeof(c->err), "redis: more than %d redirections for one command", MAX_REDIRECTS);
	return NULL;
}

redisReply *rcl_command(struct rcl *c, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct what what = {.fmt = fmt, .ap = &ap};
	redisReply *r = run(c, key, &what);
	va_end(ap);
	return r;
}

static bool redirected(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR &&
	       (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0 ||
		strncmp(r->str, "TRYAGAIN", 8) == 0);
}

struct rcl_cmd rcl_cmd_key(const char *verb, const char *key, const char *field)
{
	struct rcl_cmd c = {.key = key, .argc = field ? 3 : 2, .argv = {verb, key, field},
			    .len = {strlen(verb), strlen(key), field ? strlen(field) : 0}};
	return c;
}

static int pipeline(struct rcl *c, struct rcl_cmd *cmds, size_t n, bool run_again)
{
	/* The node each command was written to, or -1: run it alone later;
	 * and that node's connection then, which alone holds its reply. */
	struct sent {
		int node;
		unsigned gen;
	} *sent = malloc((n ? n : 1) * sizeof(*sent));
	if (!sent) {
		snprintf(c->err, sizeof(c->err), "redis pipeline: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		cmds[i].reply = NULL;
		unsigned node = c->cluster && cmds[i].key ? c->slots[rcl_slot(cmds[i].key, strlen(cmds[i].key))] : 0;
		redisContext *ctx = node_ctx(c, node);
		bool ok = ctx && redisAppendCommandArgv(ctx, cmds[i].argc, cmd_argv(&cmds[i]), cmd_len(&cmds[i])) == REDIS_OK;
		sent[i] = (struct sent){ok ? (int)node : -1, c->nodes[node].gen};
	}
	int rc = 0;
	size_t i;
	for (i = 0; i < n && rc == 0; i++) {
		int node = sent[i].node;
		if (node >= 0 && c->nodes[node].ctx && c->nodes[node].gen == sent[i].gen) {
			void *reply = NULL;
			if (redisGetReply(c->nodes[node].ctx, &reply) != REDIS_OK) {
				/* The connection broke: the rest of its commands go alone,
				 * through a new one. */
				redisFree(c->nodes[node].ctx);
				c->nodes[node].ctx = NULL;
			} else if (!run_again || !redirected(reply)) {
				cmds[i].reply = reply;
				continue;
			} else {
				freeReplyObject(reply);
			}
		}
		if (!run_again) {
			unsigned at = node < 0 ? 0 : (unsigned)node;
			snprintf(c->err, sizeof(c->err), "redis %s:%u: connection lost in a transaction",
				 c->nodes[at].host, c->nodes[at].port);
			rc = -EIO;
			break;
		}
		/* Not sent, its connection lost, or redirected: the way
		 * rcl_command goes, following MOVED and ASK. */
		struct what what = {.cmd = &cmds[i]};
		if (!(cmds[i].reply = run(c, cmds[i].key, &what)))
			rc = -EIO;
	}
	/* Replies left unread would answer the next commands: drop those
	 * connections (the next use opens them again). */
	for (; i < n; i++) {
		int node = sent[i].node;
		if (node >= 0 && c->nodes[node].ctx && c->nodes[node].gen == sent[i].gen) {
			redisFree(c->nodes[node].ctx);
			c->nodes[node].ctx = NULL;
		}
	}
	free(sent);
	return rc;
}

int rcl_pipeline(struct rcl *c, struct rcl_cmd *cmds, size_t n)
{
	return pipeline(c, cmds, n, true);
}

int rcl_pipeline_tx(struct rcl *c, struct rcl_cmd *cmds, size_t n)
{
	return pipeline(c, cmds, n, false);
}

redisReply *rcl_command_all(struct rcl *c, const char *fmt, ...)
{
	redisReply *last = NULL;
	bool used[MAX_NODES] = {false};
	unsigned n = c->cluster ? RCL_SLOTS : 1;
	for (unsigned s = 0; s < n; s++) {
		unsigned node = c->cluster ? c->slots[s] : 0;
		if (used[node])
			continue;
		used[node] = true;
		redisContext *ctx = node_ctx(c, node);
		if (!ctx) {
			freeReplyObject(last);
			return NULL;
		}
		va_list ap;
		va_start(ap, fmt);
		redisReply *r = redisvCommand(ctx, fmt, ap);
		va_end(ap);
		freeReplyObject(last);
		last = r;
		if (!r || r->type == REDIS_REPLY_ERROR) {
			if (!r)
				snprintf(c->err, sizeof(c->err), "redis %s:%u: %s", c->nodes[node].host,
					 c->nodes[node].port, ctx->errstr);
			return r;
		}
	}
	return last;
}

int rcl_map(struct rcl *c, struct rcl_map *out)
{
	memset(out, 0, sizeof(*out));
	out->cluster = c->cluster;
	/* Only the masters that own slots: nodes met through redirections
	 * that own none since are left out. */
	int index_of[MAX_NODES];
	for (unsigned i = 0; i < MAX_NODES; i++)
		index_of[i] = -1;
	unsigned slots = c->cluster ? RCL_SLOTS : 1;
	for (unsigned s = 0; s < slots; s++) {
		unsigned node = c->cluster ? c->slots[s] : 0;
		if (index_of[node] < 0) {
			if (out->n == RCL_MAP_NODES) {
				snprintf(c->err, sizeof(c->err), "redis cluster: more than %d masters", RCL_MAP_NODES);
				return -ENOSPC;
			}
			index_of[node] = (int)out->n;
			snprintf(out->node[out->n].host, sizeof(out->node[0].host), "%s", c->nodes[node].host);
			out->node[out->n].port = c->nodes[node].port;
			out->n++;
		}
		out->slot[s] = (uint8_t)index_of[node];
	}
	return 0;
}
