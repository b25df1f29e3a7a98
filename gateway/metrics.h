/*
 * metrics: what the gateway counts, and those numbers for a monitoring
 * system in Prometheus's text format (served by admin: GET
 * /admin/v1/metrics).
 *
 * Each worker counts in its own plain fields on the request path (no
 * atomics, no sharing) and publishes a copy into its own slot here once a
 * tick; whichever worker serves a scrape reads every slot and sums them.
 * The slots are the only memory two workers touch: written by one thread,
 * read by another, both with relaxed atomic word accesses, so a scrape may
 * mix values a tick apart but never tears one.
 *
 * The gateway's reconcile thread (autorec) publishes its own counters the
 * same way, into a slot of its own.
 *
 * Owns: the counters' definitions (struct worker_stats), the accepted-order
 * latency histogram, the slots and the text format. Does not own: the HTTP
 * answer or its authentication (admin), or when a worker publishes
 * (worker).
 */
#ifndef FG_METRICS_H
#define FG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a request or connection was turned away before any stock was asked
 * for: its status and the reason its answer and the metrics page give
 * (metrics_refusal_reason). REF_NONE: it was not. */
enum metrics_refusal {
	REF_NONE = 0,
	/* 401: who is buying could not be established */
	REF_NO_TOKEN,
	REF_TOKEN_MALFORMED,
	REF_TOKEN_UNKNOWN_KID,
	REF_TOKEN_WRONG_ALG,
	REF_TOKEN_BAD_SIGNATURE,
	REF_TOKEN_EXPIRED,
	REF_TOKEN_NOT_YET_VALID,
	REF_TOKEN_NO_EXPIRY,
	REF_TOKEN_BAD_SUBJECT,
	REF_TOKEN_BAD_ISSUER,
	REF_TOKEN_BAD_AUDIENCE,
	/* 403: the token may not buy this */
	REF_USER_MISMATCH,
	REF_SKU_NOT_IN_TOKEN,
	/* 429: more than a client's share */
	REF_USER_RATE,
	REF_ADDR_RATE,
	REF_INSTANCE_RATE,
	REF_ADDR_CONNECTIONS, /* a connection, answered and closed at accept */
	/* 503 at accept: the worker was full and had no idle connection to close */
	REF_WORKER_FULL,
	/* 400: a trusted proxy's X-Forwarded-For held no address */
	REF_BAD_FORWARDED_FOR,
	/* 429: an address that sent five wrong admin tokens, one a second after */
	REF_ADMIN_TOKENS,
	REF_N
};

unsigned metrics_refusal_status(enum metrics_refusal r);
const char *metrics_refusal_reason(enum metrics_refusal r);

/* Why a request was answered 503 once admitted: the "reason" of its body
 * and of flashgate_unavailable_total (metrics_unavailable_reason). */
enum metrics_unavailable {
	UNAV_REDIS,         /* Redis out of reach, or a call of its failed */
	UNAV_REPLICATION,   /* too few replicas acknowledged ([redis] wait_replicas) */
	UNAV_KAFKA,         /* not durable in Kafka: its units were released */
	UNAV_KAFKA_UNKNOWN, /* may be in Kafka: left for reconcile */
	UNAV_OVERLOADED,    /* max_inflight, or a full queue */
	UNAV_DRAINING,      /* read after SIGTERM */
	UNAV_CONFIG,        /* the SKU was loaded with another bucket count */
	UNAV_REBALANCING,   /* units between buckets did not come in time */
	UNAV_NODE_LEASE,    /* the node id's lease is not held (lease.h) */
	UNAV_N
};
const char *metrics_unavailable_reason(enum metrics_unavailable u);

/* Every field a uint64_t: published word by word (metrics.c). */
struct worker_stats {
	uint64_t requests, accepted, sold_out, limit_exceeded, rejected, unavailable;
	uint64_t answers_orphaned; /* answered after the client's connection was gone */
	uint64_t send_timeouts;    /* connections closed: their client stopped reading */
	uint64_t recv_starved; /* the receive buffer ring ran dry for a connection */
	uint64_t recv_paused;  /* a connection's recv paused while it caught up */
	uint64_t reserve_calls, reserve_orders; /* script calls, and the orders they carried */
	uint64_t confirm_calls, confirm_orders; /* the same for confirmations */
	uint64_t transfers, units_moved;        /* rebal: units moved between a SKU's buckets */
	uint64_t rebal_gave_up;                 /* rebal: 503 after two rounds of moving units */
	uint64_t transfers_repaired, units_repaired; /* rebal: finished after a failure cut them */
	uint64_t transfers_left;                /* rebal: still open after REBAL_REPAIR_MAX_MS */
	uint64_t redirects;                     /* MOVED and ASK answers followed */
	uint64_t tryagains;                     /* reserves and takes sent again after TRYAGAIN */
	uint64_t link_waits;                    /* ... that waited for a new master's link */
	uint64_t replication_short;             /* reserves and takes refused: WAIT came short */
	uint64_t slots_probed;                  /* slots of waiting replays found on a new master */
	uint64_t refused[REF_N];                /* by enum metrics_refusal ([REF_NONE] unused) */
	uint64_t unavailable_by[UNAV_N];        /* 503s after admission, by enum metrics_unavailable */
	uint64_t conns_evicted;                 /* idle keep-alive connections closed to make room */
	uint64_t token_cache_hits;              /* tokens answered from the worker's cache */
	uint64_t token_verifications;           /* tokens whose signature was checked */
	uint64_t redis_sends;                   /* buffers of commands written to Redis: round trips */
	uint64_t kafka_produce_requests;        /* Produce requests sent, from librdkafka's statistics */
	uint64_t kafka_sent_bytes;              /* bytes sent to the brokers, from the same */
};

/* Upper bounds (microseconds) of the latency histogram's buckets; the
 * last, +Inf, is the count. 5 ms is a bound: the SLO this is watched for. */
#define METRICS_LATENCY_BOUNDS 13
extern const uint32_t metrics_latency_bounds_us[METRICS_LATENCY_BOUNDS];

/* Time from a request read to its 202, in the worker that answered it. */
struct metrics_latency {
	uint64_t bucket[METRICS_LATENCY_BOUNDS + 1]; /* per bucket, not cumulative */
	uint64_t sum_us;
};

void metrics_latency_add(struct metrics_latency *l, int64_t us);

/* Finer bounds for a server's answer: a Redis round trip (from a command
 * queued to its reply) and a Kafka acknowledgement (from a record produced
 * to its delivery report), in the same struct. */
extern const uint32_t metrics_rtt_bounds_us[METRICS_LATENCY_BOUNDS];
void metrics_rtt_add(struct metrics_latency *l, int64_t us);

/* What one worker publishes. */
struct metrics_sample {
	struct worker_stats stats;
	struct metrics_latency accept_latency;
	struct metrics_latency redis_rtt; /* metrics_rtt_bounds_us */
	struct metrics_latency kafka_ack; /* metrics_rtt_bounds_us */
	uint64_t connections;       /* open client connections */
	uint64_t orders_in_flight;  /* admitted, not yet answered */
	uint64_t kafka_outstanding; /* records librdkafka holds (queued or awaiting ack) */
	uint64_t redis_pending;     /* Redis commands sent or queued, not yet answered */
	uint64_t redis_up;          /* 1 when the worker can reach Redis */
	uint64_t skus_sold_out;     /* SKUs it knows as sold out (skucache): the page shows the most of any worker */
};

/* What the gateway's reconcile passes did (autorec), published by its
 * thread after each pass. */
struct metrics_reconcile {
	uint64_t passes;         /* passes run (a pass another instance ran is not counted) */
	uint64_t passes_failed;  /* ... that could not settle everything they found */
	uint64_t confirmed, published, released; /* old reservations settled, by how */
	uint64_t transfers, transfer_units;      /* bucket transfers finished */
};

struct metrics;

/* Slots for `workers` workers, all zero. NULL when out of memory. */
struct metrics *metrics_new(unsigned workers);
void metrics_free(struct metrics *m);

/* In worker `index`'s thread only. */
void metrics_publish(struct metrics *m, unsigned index, const struct metrics_sample *s);

/* In the autorec thread only. */
void metrics_publish_reconcile(struct metrics *m, const struct metrics_reconcile *r);

/* The sum over every worker's last published sample, as Prometheus text
 * (version 0.0.4). Returns the length written to out (NUL-terminated), or
 * -ENOSPC when cap is too small. */
int metrics_render(const struct metrics *m, char *out, size_t cap, const char *version, const char *commit)
	__attribute__((warn_unused_result));

/* The instance as a whole, read by the caller at the scrape: its health
 * (health.h, lease.h) and what the process uses (process_* on the page; 0
 * for what it could not read). */
struct metrics_instance {
	bool ready;      /* what /readyz would answer */
	bool lease_held; /* the node id's lease: order ids may be minted */
	double cpu_seconds;
	uint64_t resident_bytes, virtual_bytes;
	uint64_t open_fds, max_fds;
	double start_time_seconds;
};
int metrics_render_instance(const struct metrics_instance *p, char *out, size_t cap)
	__attribute__((warn_unused_result));

/* Enough for metrics_render's output. */
#define METRICS_TEXT_MAX 32768

#endif
