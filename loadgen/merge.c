/* merge: several generators' reports as one. See merge.h. */
#include "merge.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* One report being read: the first error sticks, so the readers below can
 * be called in a row and checked once. */
struct rd {
	const char *path;
	char *err;
	size_t err_len;
	int rc;
};

static void bad(struct rd *rd, const char *what, const char *why)
{
	if (rd->rc == 0) {
		snprintf(rd->err, rd->err_len, "%s: %s: %s", rd->path, what, why);
		rd->rc = -EINVAL;
	}
}

static json_t *member(struct rd *rd, json_t *o, const char *key, json_type type)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	if (!v || json_typeof(v) != type) {
		bad(rd, key, "missing, or not of its type");
		return NULL;
	}
	return v;
}

static uint64_t u64(struct rd *rd, json_t *o, const char *key)
{
	json_t *v = member(rd, o, key, JSON_INTEGER);
	if (!v)
		return 0;
	if (json_integer_value(v) < 0) {
		bad(rd, key, "negative");
		return 0;
	}
	return (uint64_t)json_integer_value(v);
}

static double num(struct rd *rd, json_t *o, const char *key)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	if (!json_is_number(v)) {
		bad(rd, key, "missing, or not a number");
		return 0;
	}
	return json_number_value(v);
}

static bool flag(struct rd *rd, json_t *o, const char *key)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	if (!json_is_boolean(v)) {
		bad(rd, key, "missing, or not true or false");
		return false;
	}
	return json_is_true(v);
}

static const char *str(struct rd *rd, json_t *o, const char *key)
{
	json_t *v = member(rd, o, key, JSON_STRING);
	return v ? json_string_value(v) : "";
}

/* An exported histogram ({"count", "min", "max", "sum", "clamped",
 * "buckets": [index, count, ...]}) added into dst; null adds nothing when
 * nullable (a second nothing completed in). */
static void hdr_into(struct rd *rd, json_t *hdr, const char *what, struct hist *dst, bool nullable)
{
	if (rd->rc)
		return;
	if (json_is_null(hdr) && nullable)
		return;
	json_t *buckets = json_is_object(hdr) ? json_object_get(hdr, "buckets") : NULL;
	if (!json_is_array(buckets) || json_array_size(buckets) % 2) {
		bad(rd, what, "no histogram buckets: percentiles alone cannot be added up");
		return;
	}
	struct hist_packed pk = {.n = json_array_size(buckets) / 2};
	pk.total = u64(rd, hdr, "count");
	pk.min = u64(rd, hdr, "min");
	pk.max = u64(rd, hdr, "max");
	pk.clamped = u64(rd, hdr, "clamped");
	pk.sum = num(rd, hdr, "sum");
	pk.idx = malloc((pk.n ? pk.n : 1) * sizeof(*pk.idx));
	pk.count = malloc((pk.n ? pk.n : 1) * sizeof(*pk.count));
	if (!pk.idx || !pk.count) {
		rd->rc = rd->rc ? rd->rc : -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < pk.n && rd->rc == 0; k++) {
		json_t *i = json_array_get(buckets, 2 * k), *c = json_array_get(buckets, 2 * k + 1);
		if (!json_is_integer(i) || !json_is_integer(c) || json_integer_value(i) < 0 ||
		    json_integer_value(i) >= (json_int_t)HIST_INDEXES || json_integer_value(c) <= 0)
			bad(rd, what, "a bucket out of range");
		pk.idx[k] = (uint32_t)json_integer_value(i);
		pk.count[k] = (uint64_t)json_integer_value(c);
	}
	/* hist_unpack_into checks the buckets against the count and extremes,
	 * and changes nothing when they disagree. */
	int rc = rd->rc ? 0 : hist_unpack_into(dst, &pk);
	if (rc == -ENOMEM)
		rd->rc = rc;
	else if (rc < 0)
		bad(rd, what, "its buckets, count, min or max contradict each other");
out:
	free(pk.idx);
	free(pk.count);
}

static void hist_member(struct rd *rd, json_t *o, const char *key, struct hist *dst)
{
	json_t *v = member(rd, o, key, JSON_OBJECT);
	if (v)
		hdr_into(rd, json_object_get(v, "hdr"), key, dst, false);
}

static void counts_into(struct rd *rd, json_t *o, uint64_t *counts)
{
	for (int k = 0; k < LG_OUTCOMES && o; k++)
		counts[k] += u64(rd, o, lg_outcome_names[k]);
}

/* What each report must agree on with the first. */
struct sale {
	char digest[65];
	int64_t t0;
	bool closed_loop;
	unsigned shards;
};

static void read_stages(struct rd *rd, json_t *j, struct merged *m, bool first)
{
	json_t *stages = member(rd, j, "stages", JSON_ARRAY);
	if (!stages)
		return;
	size_t n = json_array_size(stages);
	if (n == 0 || n > PROF_MAX_STAGES) {
		bad(rd, "stages", "none, or more than a profile can have");
		return;
	}
	if (first) {
		m->p.n_stages = (unsigned)n;
		if (lg_result_init(&m->r, (unsigned)n) < 0) {
			rd->rc = -ENOMEM;
			return;
		}
	} else if (n != m->r.n_stages) {
		bad(rd, "stages", "not the same stages as the first report's");
		return;
	}
	for (size_t k = 0; k < n && rd->rc == 0; k++) {
		json_t *s = json_array_get(stages, k);
		struct prof_stage *ps = &m->p.stages[k];
		struct lg_stage_result *rs = &m->r.stages[k];
		const char *name = str(rd, s, "name");
		if (first) {
			snprintf(ps->name, sizeof(ps->name), "%s", name);
			ps->duration_s = num(rd, s, "duration_s");
		} else if (strcmp(ps->name, name) != 0) {
			bad(rd, "stages", "not the same stages as the first report's");
			return;
		}
		/* Shards offer 1/N each: together, the sale's rate. */
		ps->from_rate += num(rd, s, "from_rate");
		ps->to_rate += num(rd, s, "to_rate");
		rs->scheduled += num(rd, s, "scheduled");
		rs->c.offered += u64(rd, s, "offered");
		rs->c.sent += u64(rd, s, "sent");
		rs->c.completed += u64(rd, s, "answered");
		rs->c.late_sends += u64(rd, s, "late_sends");
		counts_into(rd, member(rd, s, "counts", JSON_OBJECT), rs->c.counts);
		hist_member(rd, s, "latency_us", rs->latency);
		hist_member(rd, s, "service_us", rs->service);
	}
}

/* The per-second series, its second 0 at started_unix_ms, added into
 * secs (hists per second) at the offset of this report's start. */
static void read_seconds(struct rd *rd, json_t *j, size_t offset, struct lg_second **secs,
			 struct hist ***hists, size_t *n)
{
	json_t *arr = member(rd, j, "seconds", JSON_ARRAY);
	if (!arr)
		return;
	size_t want = offset + json_array_size(arr);
	if (want > *n) {
		struct lg_second *s = realloc(*secs, want * sizeof(*s));
		struct hist **h = s ? realloc(*hists, want * sizeof(*h)) : NULL;
		if (s)
			*secs = s;
		if (!s || !h) {
			rd->rc = -ENOMEM;
			return;
		}
		*hists = h;
		memset(*secs + *n, 0, (want - *n) * sizeof(**secs));
		memset(*hists + *n, 0, (want - *n) * sizeof(**hists));
		*n = want;
	}
	for (size_t i = 0; i < json_array_size(arr) && rd->rc == 0; i++) {
		json_t *s = json_array_get(arr, i);
		struct lg_second *d = &(*secs)[offset + i];
		d->offered += u64(rd, s, "offered");
		d->sent += u64(rd, s, "sent");
		d->completed += u64(rd, s, "answered");
		counts_into(rd, member(rd, s, "counts", JSON_OBJECT), d->counts);
		json_t *hdr = json_object_get(s, "hdr");
		if (json_is_null(hdr) || rd->rc)
			continue;
		struct hist **h = &(*hists)[offset + i];
		if (!*h && !(*h = hist_new())) {
			rd->rc = -ENOMEM;
			return;
		}
		hdr_into(rd, hdr, "seconds", *h, true);
	}
}

static void add_target(struct lg_target *t, const char *text)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", text);
	char *save = NULL;
	for (char *one = strtok_r(buf, ", ", &save); one; one = strtok_r(NULL, ", ", &save)) {
		char *colon = strrchr(one, ':');
		if (!colon || t->n == LG_MAX_TARGETS)
			continue;
		*colon = '\0';
		unsigned port = (unsigned)strtoul(colon + 1, NULL, 10);
		bool seen = false;
		for (unsigned k = 0; k < t->n && !seen; k++)
			seen = t->ep[k].port == port && strcmp(t->ep[k].host, one) == 0;
		if (!seen && strlen(one) < sizeof(t->ep[0].host)) {
			strcpy(t->ep[t->n].host, one);
			t->ep[t->n++].port = (uint16_t)port;
		}
	}
}

/* Reads report k into m; the first sets the sale the others must match. */
static void read_report(struct rd *rd, json_t *j, size_t k, struct merged *m, struct sale *sale, bool force,
			int64_t base_ms, struct lg_second **secs, struct hist ***hists, size_t *nsec)
{
	if (strcmp(str(rd, j, "format"), "flashload-report") != 0 || u64(rd, j, "format_version") != 2) {
		rd->rc = 0;
		bad(rd, "format", "not a flashload JSON report of format 2 (flashload --json)");
		return;
	}
	json_t *meta = member(rd, j, "meta", JSON_OBJECT);
	const char *digest = str(rd, meta, "profile_digest");
	int64_t t0 = (int64_t)u64(rd, meta, "t0_unix_ms");
	unsigned shards = (unsigned)u64(rd, meta, "shards");
	bool closed = flag(rd, j, "closed_loop");
	if (rd->rc)
		return;
	if (k == 0) {
		snprintf(sale->digest, sizeof(sale->digest), "%s", digest);
		sale->t0 = t0;
		sale->closed_loop = closed;
		sale->shards = shards;
	} else if (!force && (strcmp(sale->digest, digest) != 0 || sale->t0 != t0 || sale->shards != shards)) {
		bad(rd, strcmp(sale->digest, digest) ? "profile_digest" : sale->t0 != t0 ? "t0_unix_ms" : "shards",
		    "another sale than the first report's (other profile, traffic options, T0 or number "
		    "of shards); --force merges them anyway");
		return;
	}
	if (closed != sale->closed_loop) {
		bad(rd, "closed_loop", "open-loop and closed-loop runs cannot be one sale");
		return;
	}
	m->generators += (unsigned)u64(rd, meta, "generators");
	struct lg_result *r = &m->r;
	read_stages(rd, j, m, k == 0);
	if (rd->rc)
		return;
	if (k == 0) {
		snprintf(m->p.source, sizeof(m->p.source), "%s", str(rd, j, "profile"));
		m->p.closed_loop = closed;
	}
	add_target(&m->t, str(rd, j, "target"));
	m->p.threads += (unsigned)u64(rd, j, "threads");
	m->p.connections += (unsigned)u64(rd, j, "connections");
	r->scheduled += num(rd, j, "scheduled");
	r->c.offered += u64(rd, j, "offered");
	r->c.sent += u64(rd, j, "sent");
	r->c.completed += u64(rd, j, "requests");
	r->unsent += u64(rd, j, "unsent");
	r->c.late_sends += u64(rd, j, "late_sends");
	r->generator_limited |= flag(rd, j, "generator_limited");
	r->conn_limited |= flag(rd, j, "connection_limited");
	r->interrupted |= flag(rd, j, "interrupted");
	counts_into(rd, member(rd, j, "counts", JSON_OBJECT), r->c.counts);
	json_t *o = member(rd, j, "orders", JSON_OBJECT);
	r->orders += u64(rd, o, "total");
	r->orders_accepted += u64(rd, o, "accepted");
	r->accepted_after_retry += u64(rd, o, "accepted_after_retry");
	r->orders_refused += u64(rd, o, "refused");
	r->orders_failed += u64(rd, o, "failed");
	r->orders_abandoned += u64(rd, o, "abandoned");
	r->retries += u64(rd, o, "retries");
	r->double_clicks += u64(rd, o, "double_clicks");
	r->key_conflicts += u64(rd, o, "key_conflicts");
	json_t *tok = member(rd, j, "tokens", JSON_OBJECT);
	r->tokens_signed += u64(rd, tok, "signed");
	r->sign_ns += (uint64_t)llround(num(rd, tok, "sign_us") * 1000);
	json_t *who = member(rd, j, "who", JSON_OBJECT);
	for (int w = 0; w < WHO_N && rd->rc == 0; w++) {
		json_t *one = member(rd, who, prof_who_names[w], JSON_OBJECT);
		counts_into(rd, member(rd, one, "counts", JSON_OBJECT), r->who[w].counts);
		r->who[w].units += u64(rd, one, "units");
		hist_member(rd, one, "latency_us", r->who[w].latency);
		/* The reports say who sent, not the profile's shares: any sender
		 * that did marks its kind present, for the who table. */
		for (int c = 0; c < LG_OUTCOMES && w != WHO_SHOPPER; c++)
			if (r->who[w].counts[c])
				m->p.bot_share[w] = 1;
	}
	json_t *mal = member(rd, j, "malformed", JSON_OBJECT);
	for (int w = 0; w < MAL_KINDS && rd->rc == 0; w++) {
		json_t *one = member(rd, mal, prof_malformed_names[w], JSON_OBJECT);
		r->malformed_sent[w] += u64(rd, one, "sent");
		r->malformed_ok[w] += u64(rd, one, "ok");
	}
	hist_member(rd, j, "latency_us", r->latency);
	hist_member(rd, j, "service_us", r->service);
	hist_member(rd, j, "order_latency_us", r->order_latency);
	hist_member(rd, j, "send_lag_us", r->send_lag);
	hist_member(rd, j, "generator_lag_us", r->gen_lag);
	int64_t started = (int64_t)u64(rd, j, "started_unix_ms");
	if (rd->rc)
		return;
	/* Seconds are aligned on the wall clock: with a common T0 they
	 * coincide; without one, each lands where it ran. */
	size_t offset = (size_t)llround((double)(started - base_ms) / 1000.0);
	read_seconds(rd, j, offset, secs, hists, nsec);
	double end_s = (double)(started - base_ms) / 1000.0 + num(rd, j, "elapsed_s");
	if (end_s > r->elapsed_s)
		r->elapsed_s = end_s;
}

static json_t *load(const char *path, char *err, size_t err_len, int *rc)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		*rc = je.position == 0 && je.line <= 0 ? -ENOENT : -EINVAL;
		snprintf(err, err_len, "%s:%d: %s", path, je.line, je.text);
	}
	return j;
}

int merge_reports(const char *const *paths, size_t n, bool force, struct merged *m, char *err,
		  size_t err_len)
{
	memset(m, 0, sizeof(*m));
	prof_defaults(&m->p);
	m->p.threads = m->p.connections = 0;
	for (unsigned k = 0; k < PROF_MAX_STAGES; k++)
		m->p.stages[k].from_rate = m->p.stages[k].to_rate = 0;
	memset(m->p.bot_share, 0, sizeof(m->p.bot_share));
	json_t **docs = calloc(n ? n : 1, sizeof(*docs));
	struct rd rd = {.err = err, .err_len = err_len};
	struct lg_second *secs = NULL;
	struct hist **hists = NULL;
	size_t nsec = 0;
	int rc = 0;
	if (!docs) {
		rc = -ENOMEM;
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	/* Every report is read before any is added: the series is aligned on
	 * the earliest start, and a bad one is refused before work is done. */
	int64_t base_ms = INT64_MAX;
	for (size_t k = 0; k < n; k++) {
		if (!(docs[k] = load(paths[k], err, err_len, &rc)))
			goto out;
		json_t *started = json_object_get(docs[k], "started_unix_ms");
		if (json_is_integer(started) && json_integer_value(started) < base_ms)
			base_ms = json_integer_value(started);
		/* The same generator's report twice would count its orders twice. */
		for (size_t i = 0; i < k; i++) {
			json_t *a = json_object_get(docs[i], "meta"), *b = json_object_get(docs[k], "meta");
			json_t *sa = json_object_get(a, "shard"), *sb = json_object_get(b, "shard");
			json_t *na = json_object_get(a, "shards");
			bool same_shard = json_is_integer(sa) && json_equal(sa, sb) &&
					  json_equal(na, json_object_get(b, "shards")) && json_integer_value(na) > 1;
			if (json_equal(docs[i], docs[k]) || same_shard) {
				snprintf(err, err_len, "%s and %s: %s", paths[i], paths[k],
					 same_shard ? "the same shard twice" : "the same report twice");
				rc = -EINVAL;
				goto out;
			}
		}
	}
	struct sale sale = {0};
	for (size_t k = 0; k < n && rd.rc == 0; k++) {
		rd.path = paths[k];
		read_report(&rd, docs[k], k, m, &sale, force, base_ms, &secs, &hists, &nsec);
	}
	if ((rc = rd.rc) < 0) {
		if (rc == -ENOMEM)
			snprintf(err, err_len, "out of memory");
		goto out;
	}
	json_t *meta = json_object_get(docs[0], "meta");
	snprintf(m->profile_digest, sizeof(m->profile_digest), "%s",
		 json_string_value(json_object_get(meta, "profile_digest")));
	m->t0_unix_ms = json_integer_value(json_object_get(meta, "t0_unix_ms"));
	m->r.started_unix_ms = base_ms;
	m->r.schedule_s = m->p.closed_loop ? m->r.elapsed_s : prof_duration_s(&m->p);
	for (size_t i = 0; i < nsec; i++) {
		struct hist *h = hists[i];
		if (!h)
			continue;
		secs[i].p50 = hist_percentile(h, 50);
		secs[i].p90 = hist_percentile(h, 90);
		secs[i].p99 = hist_percentile(h, 99);
		secs[i].p999 = hist_percentile(h, 99.9);
		secs[i].max = hist_max(h);
		if (!(secs[i].latency = hist_pack(h))) {
			rc = -ENOMEM;
			snprintf(err, err_len, "out of memory");
			goto out;
		}
	}
	m->r.seconds = secs;
	m->r.n_seconds = nsec;
	secs = NULL;
out:
	for (size_t i = 0; hists && i < nsec; i++)
		hist_free(hists[i]);
	free(hists);
	ser_seconds_free(secs, nsec);
	for (size_t k = 0; docs && k < n; k++)
		json_decref(docs[k]);
	free(docs);
	if (rc < 0)
		merge_free(m);
	return rc;
}

void merge_free(struct merged *m)
{
	lg_result_free(&m->r);
}
