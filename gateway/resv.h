/*
 * resv: stock reservation in Redis, through the worker's ring.
 *
 * The reservations of a turn are grouped by SKU bucket, and each group
 * goes as one script call that takes arrays (up to RESV_BATCH_MAX orders)
 * and answers one result per order: a hot SKU costs Redis one script run
 * per turn instead of one per order. Confirmations (Kafka has the order:
 * its ledger entry is settled) are grouped the same way, and since nobody
 * waits for them they also wait for company up to redis.confirm_delay_ms.
 * Each command goes to the Redis server
 * that owns its keys' hash slot, over that server's link (gateway/rlink.h):
 * one link on a single server, one per master on a Redis Cluster, whose
 * MOVED and ASK answers resv follows. Commands whose replies were lost are
 * answered as failures, and any reservation that may have been made is
 * released (release is idempotent through the pending ledger) once its
 * server is back.
 *
 * Owns: when commands go (batching, replays) and where (routing, the slot
 * map, MOVED and ASK). Does not own: the words of a command (rcmd), the
 * connections (rlink), what a reply means to the order (flow, rebal).
 */
#ifndef FG_RESV_H
#define FG_RESV_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/rcl.h"
#include "script.h"

struct worker;
struct req;

/* map: the servers and the slots they own (core/rcl.h), read at start-up. */
int resv_init(struct worker *w, const struct script_shas *shas, const struct rcl_map *map)
	__attribute__((warn_unused_result));
void resv_destroy(struct worker *w);

#define RESV_BATCH_MAX 32
/* Ticks (100 ms each) a reserve or take waits out TRYAGAIN before its
 * orders hear 503: a slot's keys move in milliseconds. */
#define RESV_TRYAGAIN_MAX 5

/* Adds req to this turn's batch for its SKU (sent before the loop waits).
 * -ENOTCONN when Redis is down, -ENOBUFS when the pipeline is full; the req
 * is untouched then. */
int resv_reserve(struct worker *w, struct req *req) __attribute__((warn_unused_result));
/* Queue the release script / the ledger confirmation for req. These never
 * fail: while Redis is down they wait and are replayed on reconnect. */
void resv_release(struct worker *w, struct req *req);
void resv_confirm(struct worker *w, struct req *req);
/* Queues the return script for req's order id and SKU (an admin release):
 * -ENOTCONN when Redis is down, -ENOBUFS when full. Never replayed: the
 * admin retries, and the script is idempotent. */
int resv_return(struct worker *w, struct req *req) __attribute__((warn_unused_result));

/* One step of a transfer of units from bucket req->donor to req->bucket
 * (gateway/rebal.h): its reply goes to rebal_on_reply, its loss (it may
 * have run) to rebal_on_lost. -ENOTCONN / -ENOBUFS as above; -EAGAIN for a
 * take, give or check when the replicas are short ([redis] wait_replicas).
 * RESV_XCHECK asks the donor whether a take whose answer was lost ran. */
enum resv_xstep { RESV_TAKE, RESV_GIVE, RESV_XDONE, RESV_XCHECK };
int resv_transfer(struct worker *w, struct req *req, enum resv_xstep step)
	__attribute__((warn_unused_result));
/* The same step as a replay: it goes once the master owning its key is
 * reachable (after a failover, the promoted replica). Never refused. */
void resv_transfer_later(struct worker *w, struct req *req, enum resv_xstep step);

bool resv_up(const struct worker *w);
/* Commands in flight or waiting for replay. */
unsigned resv_pending(const struct worker *w);

/* Completions of link number link's operations. */
void resv_on_connect(struct worker *w, unsigned link, int res);
void resv_on_recv(struct worker *w, unsigned link, int res);
void resv_on_send(struct worker *w, unsigned link, int res);
/* Before-wait hook: sends what the turn queued, and the confirmations
 * whose delay is over. */
void resv_before_wait(struct worker *w);
/* How long the loop may sleep before confirmations are due: -1 for as
 * long as it likes (none wait). */
int64_t resv_wait_us(const struct worker *w);
/* Tick: reconnects and reply timeouts. */
void resv_tick(struct worker *w);

#endif
