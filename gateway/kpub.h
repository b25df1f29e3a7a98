/*
 * kpub: the worker's Kafka producer (librdkafka), driven by the ring.
 *
 * librdkafka signals its main queue through a pipe
 * (rd_kafka_queue_io_event_enable); the worker keeps a read on that pipe in
 * its ring and, when it completes, serves every queued delivery report with
 * rd_kafka_poll(rk, 0). No polling thread, no busy loop, no flush on the
 * request path. Records are produced without copying: the payload lives in
 * the req until its delivery report, which is why flow keeps a req alive
 * while in_kafka is set.
 *
 * Owns: the producer, its configuration and the wake-up pipe. Does not own:
 * what a delivery means to the order (flow).
 */
#ifndef FG_KPUB_H
#define FG_KPUB_H

#include <stdbool.h>
#include <stddef.h>

struct cfg;
struct worker;
struct req;

/* Before the workers start: whether the brokers know [kafka] topic, with
 * a producer made and dropped for the question (timeout_ms at most). 0;
 * -ENOENT when a broker answered without the topic, or -EINVAL when
 * librdkafka refuses the settings or a broker refuses its SASL or TLS
 * (all: a mistake in the config, err says which); -ETIMEDOUT when no
 * broker answered (a Kafka outage, which the workers ride out). */
int kpub_probe(const struct cfg *cfg, int timeout_ms, char *err, size_t err_len)
	__attribute__((warn_unused_result));

int kpub_init(struct worker *w) __attribute__((warn_unused_result));
/* Waits up to timeout_ms for outstanding deliveries, then destroys. */
void kpub_destroy(struct worker *w, int timeout_ms);

/* Produces req->record keyed by user id. 0, -ENOBUFS when the local queue
 * is full (back-pressure), or another -errno; on failure nothing was
 * queued and no report will come. */
int kpub_produce(struct worker *w, struct req *req) __attribute__((warn_unused_result));

/* A reload whose [kafka] client_properties changed only the SASL username
 * and password (cfg_merge_live allows no other change): the producer
 * authenticates with them from its next connection (librdkafka keeps the
 * connections it has). Logged either way. */
void kpub_reconfigure(struct worker *w, const struct cfg *cfg);

/* Arms the read of the wake-up pipe (once at start, then by on_wake). */
void kpub_arm(struct worker *w);
void kpub_on_wake(struct worker *w, int res);
/* Serves delivery reports now (used while draining). */
void kpub_poll(struct worker *w);
/* Records produced whose delivery report has not been served. */
int kpub_outstanding(const struct worker *w);

/* Longest a record may wait for its report, with no report at all coming
 * meanwhile, before the producer counts as not acknowledging. Reports
 * come in milliseconds; a broker that stops answering gives none. */
#define KPUB_STALL_MS 2000

/* For health: false while a record has waited KPUB_STALL_MS with no
 * report, or for KPUB_STALL_MS after a failed one. */
bool kpub_acknowledging(const struct worker *w);

/* A client kept for repeated questions to the brokers (kwatch: whether
 * they answer while no order flows). NULL with err set. */
struct kpub_prober;
struct kpub_prober *kpub_prober_new(const struct cfg *cfg, char *err, size_t err_len);
/* Whether a broker answers a metadata request for the topic within
 * timeout_ms, with a leader for every partition: 0, or -errno with err. */
int kpub_prober_ask(struct kpub_prober *p, int timeout_ms, char *err, size_t err_len)
	__attribute__((warn_unused_result));
/* The same for the prober, from any thread (librdkafka's call is
 * thread-safe): 0, or -EINVAL with err. */
int kpub_prober_set_credentials(struct kpub_prober *p, const struct cfg *cfg, char *err, size_t err_len)
	__attribute__((warn_unused_result));
void kpub_prober_free(struct kpub_prober *p);

#endif
