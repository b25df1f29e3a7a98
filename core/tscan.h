/*
 * tscan: read every record of a Kafka topic written since a point in time,
 * up to the end as it stood when the scan began. Used by flashload's
 * verification and by `flashgate reconcile`, off the request path.
 *
 * Owns: a short-lived librdkafka consumer (assigned partitions, no group,
 * no commits), the start offsets for a time (offsets_for_times) and the
 * stop at each partition's high watermark. Does not own: what a record
 * means; each payload goes to the caller's callback.
 */
#ifndef FG_TSCAN_H
#define FG_TSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kprops.h"

/* Called once per record; a negative return stops the scan with it. */
typedef int (*tscan_fn)(void *ctx, const char *payload, size_t len);

/* What a caller keeps in hand while a scan runs; any field may be NULL. */
struct tscan_ctl {
	/* Another thread's flag, read atomically: the scan gives up within
	 * about a second of it turning true, with -ECANCELED. */
	const bool *stop;
	/* Called about once a second, on the scan's thread, whether records
	 * come or not (reconcile renews its lock); a negative return stops the
	 * scan with it. */
	int (*tick)(void *arg);
	void *arg;
};

/* Reads records with a timestamp >= since_ms (0: from the beginning),
 * within timeout_s in all, from kafka's brokers with its properties.
 * Returns the number of records read, or -errno with err set. ctl may be
 * NULL. */
long long tscan_read(const struct kprops *kafka, const char *topic, int64_t since_ms, int timeout_s,
		     const struct tscan_ctl *ctl, tscan_fn fn, void *ctx, char *err, size_t err_len)
	__attribute__((warn_unused_result));

#endif
