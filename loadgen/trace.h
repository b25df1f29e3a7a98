/*
 * trace: a recorded sale to replay (--replay): when each order arrived,
 * who sent it, for what and how many. Three formats, told apart by the
 * first line that is not blank or a # comment:
 *
 *   CSV     offset_ms,user,sku,qty[,key]   (a header line starting with
 *           "offset" is skipped); offset_ms from the trace's T0, decimals
 *           allowed; key an Idempotency-Key, the same for a retry
 *   JSONL   {"offset_ms": 12.5, "user": "a1", "sku": "s9", "qty": 1, "key": "k"}
 *           (qty and key optional)
 *   nginx   the combined access log format: the time from [time_local]
 *           (milliseconds when it has a fraction, as in
 *           [11/Nov/2026:00:00:00.123 +0800]), only POST requests to a
 *           path starting with /v1/orders; the user is $remote_user, or
 *           the client address when that is "-"; sku and qty from the query
 *           string when there (?sku=..&qty=..), else the profile picks the
 *           SKU and the quantity is 1
 *
 * Users are renumbered by first appearance and SKUs by popularity (the
 * most ordered is 1), so a replay keeps the trace's shape (hot SKUs,
 * shoppers who come back) under the run's own user and SKU prefixes, and
 * `--write-stock` gives the hottest the profile's first class.
 *
 * Owns: reading and checking a trace. Does not own: the schedule (engine)
 * or the catalogue (profile).
 */
#ifndef LG_TRACE_H
#define LG_TRACE_H

#include <stddef.h>
#include <stdint.h>

enum trace_format { TRACE_CSV, TRACE_JSONL, TRACE_NGINX };

struct trace_order {
	double at_s;   /* from the trace's T0 */
	uint32_t user; /* 1..users */
	uint32_t sku;  /* 1..skus by popularity; 0: the profile picks */
	uint32_t qty;
	uint64_t key;  /* a hash of the recorded key; 0: none */
};

struct trace {
	struct trace_order *o; /* sorted by at_s */
	size_t n;
	unsigned users, skus;
	double duration_s;     /* the last order's offset */
	enum trace_format format;
	uint64_t skipped;      /* nginx lines that were not orders */
};

extern const char *const trace_format_names[];

/* Loads path; 0, or -errno with "path:line: why" in err. */
int trace_load(const char *path, struct trace *t, char *err, size_t err_len)
	__attribute__((warn_unused_result));
/* Loads a trace held in memory (name for messages): the same. */
int trace_parse(const char *name, const char *text, size_t len, struct trace *t, char *err, size_t err_len)
	__attribute__((warn_unused_result));
void trace_free(struct trace *t);

/* Keeps only the orders of users u with u % shards == shard - 1: shards
 * of one replay have disjoint users, each the trace's own behaviour. */
void trace_shard(struct trace *t, unsigned shard, unsigned shards);

#endif
