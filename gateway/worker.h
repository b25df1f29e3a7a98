/*
 * worker: one thread, one io_uring, one listening socket (SO_REUSEPORT),
 * its own Redis connections (one per server) and one Kafka producer:
 * shared-nothing, so nothing on the request path takes a lock.
 *
 * Owns: the ring and its loop, the encoding of user_data, the listeners, the
 * housekeeping tick, and the drain on shutdown. Does not own: what a
 * completion means to a connection (conn), to Redis (resv) or to Kafka
 * (kpub); it only routes completions to them.
 *
 * Loop contract: handlers only queue SQEs; one io_uring_submit_and_wait per
 * turn sends them all, after the before-wait hooks have gathered each
 * connection's responses into one send and the turn's Redis commands into
 * one write.
 */
#ifndef FG_WORKER_H
#define FG_WORKER_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/cfg.h"
#include "../core/http.h"
#include "../core/oid.h"
#include "../core/rcl.h"
#include "logline.h"
#include "metrics.h"
#include "script.h"

struct conns;
struct flow;
struct auth;
struct adm;
struct adm_conns;
struct health;
struct jwt_keyset;
struct lease;
struct access;
struct access_key;

/* What every worker of the instance reads or counts together: set up by
 * main before the workers start, outliving them. */
struct worker_shared {
	struct adm_conns *conns; /* open connections per address (admission.h) */
	struct health *health;   /* each worker's slot of it (health.h) */
	struct lease *lease;     /* the node id's lease: no order id without it */
	const struct access_key *access_key; /* the access log's user hash (access.h) */
	unsigned workers;
};

/* A configuration the workers run: the one they start with, then one per
 * reload (SIGHUP). Made by main, read-only to the workers, kept alive by
 * main until every worker has acknowledged a later one. */
struct worker_config {
	const struct cfg *cfg;
	const struct jwt_keyset *keys; /* identity's keys; NULL when it is off */
	uint64_t gen;                  /* 0 at start, then higher at each reload */
};
struct resv;
struct kpub;
struct skucache;

/* What a completion belongs to; the low 8 bits of user_data. */
enum op {
	OP_ACCEPT = 1,
	OP_RECV,
	OP_SEND,
	OP_REDIS_CONNECT,
	OP_REDIS_RECV,
	OP_REDIS_SEND,
	OP_KAFKA_WAKE,
	OP_TICK,
	OP_WAKE,
	OP_STOP,
	OP_RELOAD,
};

/* user_data = generation(32) | index(24) | op(8). The generation lets a
 * handler recognise a completion for a slot that was since reused. */
static inline uint64_t ud_make(enum op op, uint32_t index, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint64_t)(index & 0xffffff) << 8 | (uint64_t)op;
}
static inline enum op ud_op(uint64_t ud) { return (enum op)(ud & 0xff); }
static inline uint32_t ud_index(uint64_t ud) { return (uint32_t)(ud >> 8) & 0xffffff; }
static inline uint32_t ud_gen(uint64_t ud) { return (uint32_t)(ud >> 32); }

struct worker {
	const struct cfg *cfg;         /* the running configuration's; changes only between turns */
	const struct jwt_keyset *keys; /* the same */
	unsigned index;
	struct io_uring ring;
	bool ring_ready;
	int listen_fd;
	int admin_fd; /* [admin] port's listener, or -1 */
	int stop_fd; /* eventfd: main thread asks the worker to drain */
	uint64_t stop_buf;
	int reload_fd; /* eventfd: main thread has set next_config */
	uint64_t reload_buf;
	const struct worker_config *next_config; /* atomic: written by main, read here */
	uint64_t config_gen;                     /* atomic: the gen this worker runs */
	int config_result;                       /* atomic: 0, or why the last one failed */
	struct __kernel_timespec tick_ts;
	/* A one-shot timeout for work due before the next tick; one at a time. */
	struct __kernel_timespec wake_ts;
	bool wake_armed;
	struct http_limits limits;
	struct oid_gen oids;

	struct conns *conns;
	struct flow *flow;
	struct resv *resv;
	struct kpub *kpub;
	struct skucache *skucache;
	struct auth *auth;
	struct adm *adm;
	struct access *access;
	const struct worker_shared *shared;

	int64_t now_ms;      /* wall clock, read once per loop turn */
	int64_t now_mono_ms; /* monotonic, read once per loop turn */
	int64_t now_mono_us; /* the same reading, for latencies */
	bool draining;
	int64_t drain_deadline_mono_ms;
	bool accepting;
	bool buckets_warned; /* a SKU loaded with another bucket count was logged */
	struct worker_stats stats;
	struct metrics_latency accept_latency;
	struct metrics_latency redis_rtt; /* counted by rlink */
	struct metrics_latency kafka_ack; /* counted by kpub */
	struct metrics *metrics; /* shared with the other workers: this one's slot only */

	pthread_t thread;
	int result; /* 0, or -errno with err set */
	char err[256];
};

/* Sets up everything that can fail before the thread starts. Returns 0 or
 * -errno with w->err set; on failure worker_destroy is still safe. */
int worker_init(struct worker *w, const struct worker_config *conf, const struct script_shas *shas,
		const struct rcl_map *map, struct metrics *metrics, const struct worker_shared *shared,
		unsigned index)
	__attribute__((warn_unused_result));
int worker_start(struct worker *w) __attribute__((warn_unused_result));
/* Asks a running worker to drain (async-signal-safe: one write). */
void worker_stop(struct worker *w);

/*
 * Asks a running worker to run conf from its next loop turn: the keys
 * that can change live (core/cfg.h) take effect for requests read from
 * then on, and nothing in flight is dropped. conf must stay alive until
 * worker_config_gen(w) reaches a later gen. Main thread only.
 */
void worker_reconfigure(struct worker *w, const struct worker_config *conf);
/* The gen the worker runs, and 0 or -errno if taking it failed (then it
 * still runs, and uses, the configuration before). */
uint64_t worker_config_gen(const struct worker *w, int *result);
void worker_destroy(struct worker *w);

/* An SQE from the worker's ring; submits to make room when the SQ is full,
 * so it never returns NULL. */
struct io_uring_sqe *worker_sqe(struct worker *w);

/* Checks once, before any thread starts, that this kernel and sandbox let
 * us use io_uring with the flags the workers need. 0, or -errno with a
 * one-line explanation and fix in err. */
int worker_probe_uring(char *err, size_t err_len) __attribute__((warn_unused_result));

/* Copies this worker's counters and gauges into its metrics slot (each
 * tick, and before it serves a scrape). */
void worker_publish(struct worker *w);

/* A line of the log from this worker (logline.h): an event (info), a
 * failure or refusal someone should see (warn), or at a given level. */
void worker_log(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void worker_warn(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void worker_logl(struct worker *w, enum log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
