/* metrics: worker slots and the Prometheus text. See metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_WORDS (sizeof(struct metrics_sample) / sizeof(uint64_t))
_Static_assert(sizeof(struct metrics_sample) % sizeof(uint64_t) == 0,
	       "a sample is published word by word: every field must be a uint64_t");

const uint32_t metrics_latency_bounds_us[METRICS_LATENCY_BOUNDS] = {
	250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000,
};

/* One cache line or more per worker: a worker's stores never invalidate
 * the line another worker is storing to. */
struct slot {
	uint64_t word[SAMPLE_WORDS];
} __attribute__((aligned(64)));

#define RECONCILE_WORDS (sizeof(struct metrics_reconcile) / sizeof(uint64_t))
_Static_assert(sizeof(struct metrics_reconcile) % sizeof(uint64_t) == 0,
	       "published word by word: every field must be a uint64_t");

struct metrics {
	unsigned n;
	struct slot *slots;
	uint64_t reconcile[RECONCILE_WORDS]; /* written once a pass: sharing its line costs nothing */
};

const uint32_t metrics_rtt_bounds_us[METRICS_LATENCY_BOUNDS] = {
	50, 100, 250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

static void add_with(struct metrics_latency *l, int64_t us, const uint32_t *bounds)
{
	if (us < 0)
		us = 0; /* the clock is per loop turn: never less than that */
	unsigned i = 0;
	while (i < METRICS_LATENCY_BOUNDS && (uint64_t)us > bounds[i])
		i++;
	l->bucket[i]++;
	l->sum_us += (uint64_t)us;
}

void metrics_latency_add(struct metrics_latency *l, int64_t us)
{
	add_with(l, us, metrics_latency_bounds_us);
}

void metrics_rtt_add(struct metrics_latency *l, int64_t us)
{
	add_with(l, us, metrics_rtt_bounds_us);
}

struct metrics *metrics_new(unsigned workers)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->slots = aligned_alloc(64, (size_t)workers * sizeof(struct slot));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	memset(m->slots, 0, (size_t)workers * sizeof(struct slot));
	m->n = workers;
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m);
}

void metrics_publish(struct metrics *m, unsigned index, const struct metrics_sample *s)
{
	uint64_t words[SAMPLE_WORDS];
	memcpy(words, s, sizeof(words));
	for (size_t i = 0; i < SAMPLE_WORDS; i++)
		__atomic_store_n(&m->slots[index].word[i], words[i], __ATOMIC_RELAXED);
}

void metrics_publish_reconcile(struct metrics *m, const struct metrics_reconcile *r)
{
	uint64_t words[RECONCILE_WORDS];
	memcpy(words, r, sizeof(words));
	for (size_t i = 0; i < RECONCILE_WORDS; i++)
		__atomic_store_n(&m->reconcile[i], words[i], __ATOMIC_RELAXED);
}

static void sum_slots(const struct metrics *m, struct metrics_sample *total)
{
	uint64_t sum[SAMPLE_WORDS] = {0};
	for (unsigned w = 0; w < m->n; w++)
		for (size_t i = 0; i < SAMPLE_WORDS; i++)
			sum[i] += __atomic_load_n(&m->slots[w].word[i], __ATOMIC_RELAXED);
	memcpy(total, sum, sizeof(*total));
}

struct out {
	char *p;
	size_t cap, len;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	if (o->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->full = true;
		return;
	}
	o->len += (size_t)n;
}

static void one(struct out *o, const char *name, const char *type, const char *help, uint64_t v)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

#define STAT(field, name, help) {name, help, offsetof(struct worker_stats, field)}
static const struct {
	const char *name, *help;
	size_t offset;
} counters[] = {
	STAT(requests, "flashgate_requests_total", "HTTP requests read, on every path."),
	STAT(accepted, "flashgate_orders_accepted_total", "Orders answered 202: reserved and durable in Kafka."),
	STAT(sold_out, "flashgate_orders_sold_out_total", "Orders answered 409 sold_out, from Redis or the sold-out cache."),
	STAT(limit_exceeded, "flashgate_orders_limit_exceeded_total", "Orders answered 409 limit_exceeded (the per-user limit)."),
	STAT(rejected, "flashgate_requests_rejected_total", "Requests answered 4xx other than 409: malformed, too large, unknown path or SKU."),
	STAT(unavailable, "flashgate_requests_unavailable_total", "Requests answered 503 (Redis, Kafka, replication, overload, draining)."),
	STAT(answers_orphaned, "flashgate_answers_orphaned_total", "Answers ready after their client's connection was gone (reset, or closed by a timeout)."),
	STAT(send_timeouts, "flashgate_send_timeouts_total", "Connections closed because their client did not read its answers within send_timeout_ms."),
	STAT(recv_starved, "flashgate_recv_buffers_dry_total", "Times the receive buffer ring ran dry for a connection."),
	STAT(recv_paused, "flashgate_recv_paused_total", "Times a connection's reading paused while its answers caught up."),
	STAT(reserve_calls, "flashgate_reserve_calls_total", "Reserve script calls sent to Redis."),
	STAT(reserve_orders, "flashgate_reserve_orders_total", "Orders those calls carried (divided by the calls: the batch size)."),
	STAT(confirm_calls, "flashgate_confirm_calls_total", "Confirm script calls sent to Redis (orders Kafka has, leaving the pending ledger)."),
	STAT(confirm_orders, "flashgate_confirm_orders_total", "Orders those calls carried (redis.confirm_delay_ms lets them gather)."),
	STAT(transfers, "flashgate_bucket_transfers_total", "Units moved between a bucketed SKU's buckets: transfers."),
	STAT(units_moved, "flashgate_bucket_transfer_units_total", "Units moved between a bucketed SKU's buckets."),
	STAT(rebal_gave_up, "flashgate_rebalance_gave_up_total", "Orders answered 503 after two rounds of moving units."),
	STAT(transfers_repaired, "flashgate_transfers_repaired_total", "Transfers a failure cut that the gateway finished."),
	STAT(units_repaired, "flashgate_transfer_units_repaired_total", "Units those finished transfers moved."),
	STAT(transfers_left, "flashgate_transfers_left_total", "Transfers left for flashgate reconcile."),
	STAT(redirects, "flashgate_redis_redirections_total", "Redis Cluster MOVED and ASK answers followed."),
	STAT(tryagains, "flashgate_redis_tryagain_total", "Reserves and takes sent again after TRYAGAIN."),
	STAT(link_waits, "flashgate_redis_master_waits_total", "Commands that waited for a new master's connection."),
	STAT(replication_short, "flashgate_redis_replication_short_total", "Calls refused because too few replicas acknowledged (wait_replicas)."),
	STAT(slots_probed, "flashgate_redis_slots_probed_total", "Slots of waiting replays found by asking another master."),
	STAT(redis_sends, "flashgate_redis_sends_total", "Writes of commands to Redis (each a round trip: every command of a loop turn to one node goes in one)."),
	STAT(kafka_produce_requests, "flashgate_kafka_produce_requests_total", "Produce requests sent to the brokers (librdkafka's statistics, once a second)."),
	STAT(kafka_sent_bytes, "flashgate_kafka_sent_bytes_total", "Bytes sent to the brokers (librdkafka's statistics, once a second)."),
};

static const struct {
	unsigned status;
	const char *reason;
} refusals[REF_N] = {
	[REF_NONE] = {0, "none"},
	[REF_NO_TOKEN] = {401, "no_token"},
	[REF_TOKEN_MALFORMED] = {401, "malformed"},
	[REF_TOKEN_UNKNOWN_KID] = {401, "unknown_kid"},
	[REF_TOKEN_WRONG_ALG] = {401, "wrong_alg"},
	[REF_TOKEN_BAD_SIGNATURE] = {401, "bad_signature"},
	[REF_TOKEN_EXPIRED] = {401, "expired"},
	[REF_TOKEN_NOT_YET_VALID] = {401, "not_yet_valid"},
	[REF_TOKEN_NO_EXPIRY] = {401, "no_expiry"},
	[REF_TOKEN_BAD_SUBJECT] = {401, "bad_subject"},
	[REF_TOKEN_BAD_ISSUER] = {401, "bad_issuer"},
	[REF_TOKEN_BAD_AUDIENCE] = {401, "bad_audience"},
	[REF_USER_MISMATCH] = {403, "user_mismatch"},
	[REF_SKU_NOT_IN_TOKEN] = {403, "sku_not_in_token"},
	[REF_USER_RATE] = {429, "user_rate"},
	[REF_ADDR_RATE] = {429, "address_rate"},
	[REF_INSTANCE_RATE] = {429, "instance_rate"},
	[REF_ADDR_CONNECTIONS] = {429, "address_connections"},
	[REF_WORKER_FULL] = {503, "worker_full"},
	[REF_BAD_FORWARDED_FOR] = {400, "bad_forwarded_for"},
	[REF_ADMIN_TOKENS] = {429, "admin_tokens"},
};

unsigned metrics_refusal_status(enum metrics_refusal r)
{
	return (unsigned)r < REF_N ? refusals[r].status : 0;
}

const char *metrics_refusal_reason(enum metrics_refusal r)
{
	return (unsigned)r < REF_N ? refusals[r].reason : "unknown";
}

static const char *const unavailable_reasons[UNAV_N] = {
	[UNAV_REDIS] = "redis",           [UNAV_REPLICATION] = "replication", [UNAV_KAFKA] = "kafka",
	[UNAV_KAFKA_UNKNOWN] = "kafka_unknown", [UNAV_OVERLOADED] = "overloaded", [UNAV_DRAINING] = "draining",
	[UNAV_CONFIG] = "config",         [UNAV_REBALANCING] = "rebalancing", [UNAV_NODE_LEASE] = "node_lease",
};

const char *metrics_unavailable_reason(enum metrics_unavailable u)
{
	return (unsigned)u < UNAV_N ? unavailable_reasons[u] : "unknown";
}

static void histogram(struct out *o, const char *h, const char *help, const uint32_t *bounds,
		      const struct metrics_latency *l)
{
	put(o, "# HELP %s %s\n# TYPE %s histogram\n", h, help, h);
	uint64_t cumulative = 0;
	for (unsigned i = 0; i < METRICS_LATENCY_BOUNDS; i++) {
		cumulative += l->bucket[i];
		put(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", h, bounds[i] / 1e6, cumulative);
	}
	cumulative += l->bucket[METRICS_LATENCY_BOUNDS];
	put(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n", h, cumulative, h,
	    (double)l->sum_us / 1e6, h, cumulative);
}

int metrics_render(const struct metrics *m, char *buf, size_t cap, const char *version, const char *commit)
{
	struct metrics_sample s;
	struct out o = {.p = buf, .cap = cap};
	sum_slots(m, &s);

	put(&o, "# HELP flashgate_build_info The gateway's version and git commit.\n# TYPE flashgate_build_info gauge\n"
		"flashgate_build_info{version=\"%s\",commit=\"%s\"} 1\n", version, commit);
	one(&o, "flashgate_workers", "gauge", "Worker threads.", m->n);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		uint64_t v;
		memcpy(&v, (const char *)&s.stats + counters[i].offset, sizeof(v));
		one(&o, counters[i].name, "counter", counters[i].help, v);
	}
	put(&o, "# HELP flashgate_refused_total Requests (and connections, at accept) turned away before any stock "
		"was asked for: by status and reason.\n# TYPE flashgate_refused_total counter\n");
	for (unsigned r = REF_NONE + 1; r < REF_N; r++)
		put(&o, "flashgate_refused_total{code=\"%u\",reason=\"%s\"} %" PRIu64 "\n", refusals[r].status,
		    refusals[r].reason, s.stats.refused[r]);
	put(&o, "# HELP flashgate_unavailable_total Requests answered 503 once admitted, by reason (the reason "
		"their body names).\n# TYPE flashgate_unavailable_total counter\n");
	for (unsigned u = 0; u < UNAV_N; u++)
		put(&o, "flashgate_unavailable_total{reason=\"%s\"} %" PRIu64 "\n", unavailable_reasons[u],
		    s.stats.unavailable_by[u]);
	one(&o, "flashgate_connections_evicted_total", "counter",
	    "Idle keep-alive connections closed to make room for a new one (a worker at max_connections).",
	    s.stats.conns_evicted);
	put(&o, "# HELP flashgate_tokens_total Bearer tokens checked: from the worker's cache, or verified.\n"
		"# TYPE flashgate_tokens_total counter\nflashgate_tokens_total{source=\"cache\"} %" PRIu64 "\n"
		"flashgate_tokens_total{source=\"verified\"} %" PRIu64 "\n",
	    s.stats.token_cache_hits, s.stats.token_verifications);
	one(&o, "flashgate_connections", "gauge", "Open client connections.", s.connections);
	one(&o, "flashgate_orders_in_flight", "gauge", "Orders admitted and not yet answered.", s.orders_in_flight);
	one(&o, "flashgate_kafka_outstanding", "gauge", "Records librdkafka holds: queued or awaiting acknowledgement.",
	    s.kafka_outstanding);
	one(&o, "flashgate_redis_pending", "gauge", "Redis commands queued or sent, not yet answered.", s.redis_pending);
	one(&o, "flashgate_redis_workers_up", "gauge", "Workers that can reach Redis (of flashgate_workers).", s.redis_up);
	/* Each worker knows the SKUs it was asked for: the instance knows at
	 * least as many as the one that knows most, and a sum would count a
	 * SKU once per worker. */
	uint64_t most = 0;
	for (unsigned w = 0; w < m->n; w++) {
		uint64_t v = __atomic_load_n(&m->slots[w].word[offsetof(struct metrics_sample, skus_sold_out) / 8],
					     __ATOMIC_RELAXED);
		most = v > most ? v : most;
	}
	one(&o, "flashgate_skus_sold_out", "gauge",
	    "SKUs known sold out from recent orders (soldout_cache_ms), in the worker that knows most.", most);

	uint64_t rw[RECONCILE_WORDS];
	struct metrics_reconcile rec;
	for (size_t i = 0; i < RECONCILE_WORDS; i++)
		rw[i] = __atomic_load_n(&m->reconcile[i], __ATOMIC_RELAXED);
	memcpy(&rec, rw, sizeof(rec));
	one(&o, "flashgate_reconcile_passes_total", "counter", "Reconcile passes this gateway ran (reconcile.interval_ms).",
	    rec.passes);
	one(&o, "flashgate_reconcile_passes_failed_total", "counter",
	    "Reconcile passes that left something open: the log says what.", rec.passes_failed);
	put(&o, "# HELP flashgate_reconcile_orders_total Old reservations its passes settled: already in the topic "
		"(confirmed), published, or released.\n# TYPE flashgate_reconcile_orders_total counter\n"
		"flashgate_reconcile_orders_total{outcome=\"confirmed\"} %" PRIu64 "\n"
		"flashgate_reconcile_orders_total{outcome=\"published\"} %" PRIu64 "\n"
		"flashgate_reconcile_orders_total{outcome=\"released\"} %" PRIu64 "\n",
	    rec.confirmed, rec.published, rec.released);
	one(&o, "flashgate_reconcile_transfers_total", "counter", "Bucket transfers cut in half that its passes finished.",
	    rec.transfers);
	one(&o, "flashgate_reconcile_transfer_units_total", "counter", "Units those transfers moved.",
	    rec.transfer_units);

	histogram(&o, "flashgate_order_accept_seconds",
		  "Time from an order read to its 202, inside the gateway (the loop turn's clock).",
		  metrics_latency_bounds_us, &s.accept_latency);
	histogram(&o, "flashgate_redis_roundtrip_seconds",
		  "Time from a Redis command queued to its reply, idle links' PINGs included.", metrics_rtt_bounds_us,
		  &s.redis_rtt);
	histogram(&o, "flashgate_kafka_ack_seconds",
		  "Time from a record produced to its delivery report (acks=all), failures included.",
		  metrics_rtt_bounds_us, &s.kafka_ack);
	return o.full ? -ENOSPC : (int)o.len;
}

int metrics_render_instance(const struct metrics_instance *p, char *buf, size_t cap)
{
	struct out o = {.p = buf, .cap = cap};
	one(&o, "flashgate_ready", "gauge", "1 while /readyz answers 200 (every check passes), else 0.", p->ready);
	one(&o, "flashgate_node_lease_held", "gauge", "1 while the node id's lease lets this instance mint order ids.",
	    p->lease_held);
	put(&o, "# HELP process_cpu_seconds_total User and system CPU time the process spent.\n"
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.3f\n", p->cpu_seconds);
	one(&o, "process_resident_memory_bytes", "gauge", "Resident memory.", p->resident_bytes);
	one(&o, "process_virtual_memory_bytes", "gauge", "Virtual memory.", p->virtual_bytes);
	one(&o, "process_open_fds", "gauge", "Open file descriptors.", p->open_fds);
	one(&o, "process_max_fds", "gauge", "The limit on open file descriptors (RLIMIT_NOFILE).", p->max_fds);
	put(&o, "# HELP process_start_time_seconds When the process started, in Unix seconds.\n"
		"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n", p->start_time_seconds);
	return o.full ? -ENOSPC : (int)o.len;
}
