/*
 * rcl: the blocking Redis client of the administrative commands (`flashgate
 * stock`, `flashgate reconcile`, flashload's verify), on one server or on a
 * Redis Cluster alike.
 *
 * Every command names the key it touches and goes to the master that owns
 * the key's hash slot: the slot map is read with CLUSTER SLOTS when the
 * client opens, a MOVED answer updates that slot and the command is sent
 * again to the new owner, and an ASK answer (a slot being migrated) sends
 * it once to the target node after ASKING. A key's master that cannot be
 * reached (one that died answers no MOVED) makes the client read the map
 * again from the other nodes, every 100 ms for up to 2 s, so a command
 * run just after a failover finds the promoted replica. On a server
 * without cluster support everything goes to that server.
 *
 * Owns: the connections to the nodes and the slot map. Not for the request
 * path: it blocks and allocates (the gateway's workers speak Redis through
 * their rings, gateway/resv.h).
 */
#ifndef FG_RCL_H
#define FG_RCL_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RCL_SLOTS 16384

struct rcl;

/* Connects to host:port and reads the slot map if it is a cluster node.
 * A password (NULL or "": none) is sent with AUTH on every connection, as
 * AUTH user password when user is set; both strings must outlive the
 * client. NULL with a message in err ("redis HOST:PORT: why") on failure. */
struct rcl *rcl_open(const char *host, unsigned port, unsigned timeout_ms, const char *user,
		     const char *password, char *err, size_t err_len);
void rcl_close(struct rcl *c);

bool rcl_is_cluster(const struct rcl *c);
/* The Redis Cluster hash slot of key (its {hash tag} when it has one). */
unsigned rcl_slot(const char *key, size_t len);

/* Runs a command (hiredis format) on the master owning key; key NULL: the
 * node the client opened with. Returns the reply, which the caller frees
 * (an error reply is returned as it is, MOVED and ASK are followed), or
 * NULL with the cause in rcl_error() when no node could be asked. */
redisReply *rcl_command(struct rcl *c, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One command of a pipeline, in argv form, with the key that routes it:
 * up to RCL_CMD_ARGS words in argv and len, or any number in the caller's
 * own arrays, many and many_len (argv is then not read). */
#define RCL_CMD_ARGS 4
struct rcl_cmd {
	const char *key;
	int argc;
	const char *argv[RCL_CMD_ARGS];
	size_t len[RCL_CMD_ARGS];
	const char *const *many;
	const size_t *many_len;
	redisReply *reply; /* set by rcl_pipeline; the caller frees it */
};
/* VERB KEY [FIELD] (field NULL: none), routed by key. */
struct rcl_cmd rcl_cmd_key(const char *verb, const char *key, const char *field);
/* Runs n commands as a pipeline: each master's commands are written at
 * once and their replies read back in order, rather than a round trip
 * each (a walk over every bucket of a catalogue costs Redis a tenth as
 * much this way). A command redirected (MOVED, ASK, TRYAGAIN), or whose
 * master's connection failed, is run again alone the way rcl_command
 * runs it. 0 with every reply set; -EIO (rcl_error says why) or -ENOMEM
 * otherwise, with the replies set so far for the caller to free and the
 * rest NULL. */
int rcl_pipeline(struct rcl *c, struct rcl_cmd *cmds, size_t n) __attribute__((warn_unused_result));
/* The same inside MULTI on one server: a command is never sent twice nor
 * on another connection (it would run outside the transaction), so one
 * whose connection failed stops the pipeline: -EIO, its reply and the
 * rest NULL. Redirections are returned as replies. */
int rcl_pipeline_tx(struct rcl *c, struct rcl_cmd *cmds, size_t n) __attribute__((warn_unused_result));

/* The same on every master (SCRIPT LOAD); the last reply, or NULL. */
redisReply *rcl_command_all(struct rcl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *rcl_error(const struct rcl *c);

/* The masters and the slot each owns, for the gateway's workers, which
 * speak to Redis through their own rings and follow MOVED themselves. */
#define RCL_MAP_NODES 16
struct rcl_map {
	bool cluster; /* false: one server, node[0] */
	unsigned n;
	struct {
		char host[64];
		unsigned port;
	} node[RCL_MAP_NODES];
	uint8_t slot[RCL_SLOTS]; /* slot -> node */
};
/* -ENOSPC (with rcl_error set) when the cluster has more masters. */
int rcl_map(struct rcl *c, struct rcl_map *out);

#endif
