/*
 * health: whether the instance is alive and whether it is ready to take
 * orders, for the whole process whichever worker a probe reaches
 * (GET /livez, GET /readyz).
 *
 * Each worker publishes its view once a tick (its loop turned, its Redis
 * links up, its producer's records acknowledged, draining or not) into a
 * slot of its own; the instance's Kafka watch (kwatch) publishes whether the
 * brokers answer at all, which no worker can tell while no order is
 * flowing. A probe reads every slot. Slots are written by one thread and
 * read by others with relaxed atomic word accesses, like metrics'.
 *
 * Owns: the slots, the rules that turn them into live and ready, and the
 * JSON of the answer. Does not own: how a worker knows its Redis or Kafka
 * state (resv, kpub), the Kafka watch's probe (kwatch), or the HTTP answer
 * (flow).
 */
#ifndef FG_HEALTH_H
#define FG_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A worker whose loop has not turned for this long is not live: the tick
 * turns it every 100 ms even when nothing else happens. */
#define HEALTH_STALE_MS 2000

/* What one worker publishes each tick. */
struct health_worker {
	int64_t turn_ms;   /* monotonic ms of its last loop turn */
	bool redis_up;     /* every Redis link up (handshake done, answering) */
	bool kafka_ok;     /* its producer's records are being acknowledged */
	bool draining;
	bool lease_ok;     /* it may mint order ids (lease.h) */
};

struct health;

struct health *health_new(unsigned workers);
void health_free(struct health *h);

/* In worker `index`'s thread only. */
void health_publish(struct health *h, unsigned index, const struct health_worker *s);
/* In kwatch's thread: whether the brokers answered its last probe, and
 * if not why (copied; at most 160 bytes kept). */
void health_set_kafka(struct health *h, bool ok, const char *why);
/* In main's thread, at SIGTERM: every probe says draining from now on. */
void health_set_draining(struct health *h);

/*
 * The answer to a probe at monotonic now_ms: *ok and its JSON body into
 * out (cap bytes, NUL-terminated). /livez: every worker's loop turned
 * within HEALTH_STALE_MS. /readyz: live, and every worker's Redis links
 * up, Kafka answering the watch and every worker's records acknowledged,
 * the node id's lease held, and not draining; the body names each check that failed. Returns the
 * body's length.
 */
size_t health_live(const struct health *h, int64_t now_ms, bool *ok, char *out, size_t cap);
size_t health_ready(const struct health *h, int64_t now_ms, bool *ok, char *out, size_t cap);

#define HEALTH_BODY_MAX 1024

#endif
