/*
 * conn: client connections of one worker: the pool (allocated at start-up),
 * recv and send through the ring, HTTP/1.1 framing (keep-alive, pipelining,
 * Expect: 100-continue, Connection: close), and answers written strictly in
 * request order even when later requests finish first.
 *
 * Owns: each connection's socket, input and output buffers and pipeline
 * queue. Does not own: what a request means (flow) or parsing rules (http).
 * Invariant: a connection returns to the pool only when neither its recv
 * nor its send is in flight; requests still queued are handed back to flow
 * detached, so answers that arrive later are dropped, never written into a
 * reused connection.
 */
#ifndef FG_CONN_H
#define FG_CONN_H

#include <stdbool.h>
#include <stdint.h>

struct worker;
struct conn;

int conns_init(struct worker *w) __attribute__((warn_unused_result));
void conns_destroy(struct worker *w);

/* A multishot accept produced fd (or failed with res < 0), on the public
 * listener or the admin one. */
void conn_on_accept(struct worker *w, int res, bool admin);
void conn_on_recv(struct worker *w, uint32_t index, uint32_t gen, int res, uint32_t flags);

/* In the worker's thread, once its ring exists: registers the receive
 * buffer ring. 0 or -errno. */
int conns_start(struct worker *w) __attribute__((warn_unused_result));
void conn_on_send(struct worker *w, uint32_t index, uint32_t gen, int res);

/* The request at some position in c's queue got its answer. */
void conn_req_answered(struct worker *w, struct conn *c);

/* Before-wait hook: one send per connection with output, and wake
 * connections that were waiting for a free request slot. */
void conns_before_wait(struct worker *w);

/* Tick: 408 for requests not complete within request_timeout_ms, close
 * connections idle longer than idle_timeout_ms. */
void conns_tick(struct worker *w);

/* Shutdown: stop reading, close idle connections, close the others once
 * their answers are written. */
void conns_drain(struct worker *w);

/* Connections open (for the drain). */
unsigned conns_open(const struct worker *w);

/* Who c is from: the address it was accepted from, or behind a trusted
 * load balancer that speaks the PROXY protocol, the client it named. */
struct netaddr;
const struct netaddr *conn_client(const struct conn *c);
/* Whether c came in on the admin listener ([admin] port). */
bool conn_is_admin(const struct conn *c);

#endif
