/*
 * flow: the life of one request, from a parsed HTTP request to the bytes
 * of its answer, and of an order through its stages:
 *
 *   validate -> reserve (Redis) -> produce (Kafka) -> 202 + confirm (Redis)
 *                  |                   \-> failed: release (Redis) -> 503
 *                  \-> sold_out / limit_exceeded / unknown SKU -> 409 / 404
 *
 * Owns: the per-worker pool of struct req (allocated once at start-up), the
 * order state machine, and the response bytes. A req is referenced by its
 * connection's pipeline queue and by the Redis and Kafka operations in
 * flight; it returns to the pool only when none of them holds it, so a
 * client that disconnects never frees memory that librdkafka or the Redis
 * pipeline still points at.
 * Does not own: sockets (conn), Redis I/O (resv), Kafka I/O (kpub).
 */
#ifndef FG_FLOW_H
#define FG_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/http.h"
#include "../core/order.h"
#include "metrics.h"
#include "script.h"

struct worker;
struct conn;

#define FLOW_RESP_MAX 384

struct req {
	struct req *next;   /* connection pipeline queue, or free list */
	struct req *r_next; /* resv's replay list, or its TRYAGAIN list */
	bool r_listed;      /* in one of those lists (never both, never twice) */
	struct req *b_next; /* resv's batch: the next order for the same SKU */
	struct conn *conn;  /* NULL once the connection is gone */
	bool in_conn;       /* still in its connection's pipeline queue */
	bool answered;      /* resp holds the complete answer */
	bool close_after;   /* close the connection after this answer */
	bool head_only;     /* HEAD: headers without the body */
	bool http10;        /* an HTTP/1.0 request: keep-alive must be said */
	bool is_order;      /* counts against max_inflight until done */
	uint8_t redis_ops;  /* Redis commands in flight for this req */
	uint8_t replay;     /* resv: command to replay on reconnect, or after TRYAGAIN */
	uint8_t tryagains;  /* resv: times its reserve or take met TRYAGAIN */
	bool in_kafka;      /* librdkafka holds record until its report */
	int64_t produced_us; /* kpub: when, for the acknowledgement histogram */
	bool pooled;        /* in the free list */

	uint8_t bucket;     /* the SKU bucket its commands address (core/bucket.h) */
	/* rebal: a dry bucket's search of the others for units */
	uint8_t donor, takes, empties;
	bool transit;
	uint32_t moved;     /* units the current transfer took */
	uint32_t home_avail;
	int64_t repair_since_ms; /* rebal: a failure left the transfer open; 0: none */

	uint64_t order_id;
	int64_t accepted_at_ms;
	struct order_req order;
	uint32_t cap; /* the token's fg_limit for this user (0: none): the reserve script's lower limit */
	char idem[ORDER_ID_MAX + 1]; /* Idempotency-Key, "" when none */
	uint8_t idem_len;
	int record_len;
	char record[ORDER_RECORD_MAX];

	int64_t admitted_us;   /* monotonic, the loop turn that admitted the order */

	uint16_t resp_len;
	char resp[FLOW_RESP_MAX];
	/* An answer too large for resp (the metrics page): resp holds its
	 * head, big its body, copied out in pieces as the connection's output
	 * buffer drains. Allocated for the request, freed with it; never on
	 * the order path. */
	char *big;
	uint32_t big_len, big_off;
};

int flow_init(struct worker *w) __attribute__((warn_unused_result));
void flow_destroy(struct worker *w);

/* A req from the pool for conn, or NULL when the pool is empty. */
struct req *flow_alloc(struct worker *w, struct conn *conn);

/* A req that owes no client an answer, for work a request hands off (the
 * give and clean-up of a transfer between buckets), or NULL when the pool
 * is empty. It returns to the pool once its last Redis command is done. */
struct req *flow_alloc_internal(struct worker *w);

/* The connection has written out (or dropped) req's answer. */
void flow_conn_done(struct worker *w, struct req *req);

/* Routes one complete HTTP request; the answer arrives now or later. */
void flow_handle(struct worker *w, struct req *req, const struct http_request *hr,
		 const char *body);

/* Answers a request the parser rejected (the connection then closes). */
void flow_reject(struct worker *w, struct req *req, unsigned status, const char *why);

/* Sets req's answer (once; later calls are ignored) and frees req when
 * nothing else holds it. extra: NULL or whole header lines ending in CRLF. */
void flow_answer(struct worker *w, struct req *req, unsigned status, const char *extra,
		 const char *body);

/* Answers 200 with body (malloc'd, len bytes) as content_type; takes
 * ownership of body, also when it is not sent (HEAD). */
void flow_answer_large(struct worker *w, struct req *req, const char *content_type, char *body,
		       size_t len);

/* Answers 503 with Retry-After and {"status":"unavailable","reason":why}. */
void flow_unavailable(struct worker *w, struct req *req, enum metrics_unavailable why);

/* A command for req that owes the client nothing has finished. */
void flow_settled(struct worker *w, struct req *req);

/* Callbacks from resv and kpub. */
void flow_on_reserve_reply(struct worker *w, struct req *req, const struct reserve_result *result);
void flow_on_release_reply(struct worker *w, struct req *req);
void flow_on_confirm_reply(struct worker *w, struct req *req);
/* The return script's result for an admin release (see admin.h). */
void flow_on_return_reply(struct worker *w, struct req *req, const char *result, size_t len);
/* A Redis command for req ended without a usable reply (connection lost,
 * timeout, error reply; reason "redis"), or its writes did not reach the
 * replicas in time ("replication"); resv has already arranged any replay
 * it needs. Answers 503 with reason. */
void flow_on_redis_failure(struct worker *w, struct req *req, enum metrics_unavailable reason);
/* err: 0 written; -EIO certainly not written; -EINPROGRESS unknown (timed
 * out in flight): the reservation stays in the ledger for reconcile. */
void flow_on_delivery(struct worker *w, struct req *req, int err, const char *why);

/* Orders between admission and their final answer. */
unsigned flow_orders_inflight(const struct worker *w);
/* Reqs that are not in the free list (answers unsent, commands in flight). */
unsigned flow_busy(const struct worker *w);
/* Wakes connections that stalled on an empty pool. */
bool flow_has_free(const struct worker *w);

#endif
