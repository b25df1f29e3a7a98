/*
 * resv: stock reservation in Redis, through the worker's ring.
 *
 * One connection per worker. Commands are written straight into an output
 * buffer in RESP (no allocation), gathered over a loop turn and sent in one
 * write; replies are parsed with hiredis's reader and matched to commands
 * in order. The reservations of a turn are grouped by SKU, and each group
 * goes as one script call that takes arrays (up to RESV_BATCH_MAX orders)
 * and answers one result per order: a hot SKU costs Redis one script run
 * per turn instead of one per order. The connection is re-established by itself: commands whose
 * replies were lost are answered as failures, and any reservation that may
 * have been made is released (release is idempotent through the pending
 * ledger) once Redis is back.
 *
 * Owns: the socket, the pipeline, script loading, timeouts, reconnects.
 * Does not own: what a reply means to the order (flow).
 */
#ifndef FG_RESV_H
#define FG_RESV_H

#include <stdbool.h>
#include <stdint.h>

#include "script.h"

struct worker;
struct req;

int resv_init(struct worker *w, const struct script_shas *shas) __attribute__((warn_unused_result));
void resv_destroy(struct worker *w);

#define RESV_BATCH_MAX 32

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
 * (gateway/rebal.h): its reply goes to rebal. -ENOTCONN / -ENOBUFS as
 * above. A step whose reply is lost is not replayed: the transfer stays in
 * the donor's ledger and `flashgate reconcile` finishes it. */
enum resv_xstep { RESV_TAKE, RESV_GIVE, RESV_XDONE };
int resv_transfer(struct worker *w, struct req *req, enum resv_xstep step)
	__attribute__((warn_unused_result));

bool resv_up(const struct worker *w);
/* Commands in flight or waiting for replay. */
unsigned resv_pending(const struct worker *w);

void resv_on_connect(struct worker *w, int res);
void resv_on_recv(struct worker *w, int res);
void resv_on_send(struct worker *w, int res);
/* Before-wait hook: sends what the turn queued. */
void resv_before_wait(struct worker *w);
/* Tick: reconnects and request timeouts. */
void resv_tick(struct worker *w);

#endif
