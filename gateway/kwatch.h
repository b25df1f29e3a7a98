/*
 * kwatch: the instance's own look at its Kafka brokers, for /readyz. A
 * worker knows the brokers stopped answering only when its records wait
 * for acknowledgements; with no order flowing (an instance a load
 * balancer took out of rotation, say) it would never find out they came
 * back, nor that they went. A thread asks the brokers for the topic's
 * metadata every KWATCH_INTERVAL_MS and tells health.
 *
 * Owns: the thread and its client. Does not own: the question (kpub's
 * prober) or what the answer means for readiness (health).
 */
#ifndef FG_KWATCH_H
#define FG_KWATCH_H

#include <stddef.h>

#include "../core/cfg.h"
#include "health.h"

#define KWATCH_INTERVAL_MS 1000
/* Longer than a healthy broker's answer by far, shorter than the interval. */
#define KWATCH_TIMEOUT_MS 800

struct kwatch;

/* Starts the thread (call with the process's signals blocked); h must
 * outlive it. 0 with *out set, or -errno with err set. */
int kwatch_start(struct kwatch **out, const struct cfg *cfg, struct health *h, char *err, size_t err_len)
	__attribute__((warn_unused_result));
/* A reload that changed the SASL credentials (only they can change):
 * the watch's client takes them. NULL does nothing. */
void kwatch_reconfigure(struct kwatch *kw, const struct cfg *before, const struct cfg *cfg);

/* Stops the thread (within one question) and frees it. NULL does nothing. */
void kwatch_stop(struct kwatch *kw);

#endif
