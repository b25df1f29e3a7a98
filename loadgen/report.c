/* report: text and JSON summaries. See report.h. */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "../core/version.h"

const char *report_stage_name(const struct lg_profile *p, unsigned k)
{
	return p->closed_loop ? "max" : p->stages[k].name;
}

static double ms(uint64_t us)
{
	return (double)us / 1000.0;
}

static void print_latency(FILE *out, const char *what, const struct hist *h)
{
	fprintf(out, "%-34s p50 %8.2f  p90 %8.2f  p99 %8.2f  p99.9 %8.2f  max %8.2f ms\n", what,
		ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)),
		ms(hist_percentile(h, 99.9)), ms(hist_max(h)));
}

/* [bots]: what each kind of sender sent, got and bought. */
static void who_table(FILE *out, const struct lg_result *r)
{
	fprintf(out, "\n%-10s %9s %8s %8s %8s %8s %8s %8s %8s %9s %9s\n", "who", "requests", "202", "409", "401",
		"403", "429", "other", "units", "p50 ms", "p99 ms");
	for (int k = 0; k < WHO_N; k++) {
		const struct lg_who_result *w = &r->who[k];
		uint64_t n = 0;
		for (int o = 0; o < LG_OUTCOMES; o++)
			n += w->counts[o];
		uint64_t c409 = w->counts[LG_SOLD_OUT] + w->counts[LG_LIMIT] + w->counts[LG_IN_PROGRESS];
		uint64_t known = w->counts[LG_ACCEPTED] + c409 + w->counts[LG_UNAUTHORIZED] + w->counts[LG_FORBIDDEN] +
				 w->counts[LG_THROTTLED];
		fprintf(out, "%-10s %9" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
			     " %8" PRIu64 " %9.2f %9.2f\n",
			prof_who_names[k], n, w->counts[LG_ACCEPTED], c409, w->counts[LG_UNAUTHORIZED],
			w->counts[LG_FORBIDDEN], w->counts[LG_THROTTLED], n - known, w->units,
			n ? (double)hist_percentile(w->latency, 50) / 1000 : 0,
			n ? (double)hist_percentile(w->latency, 99) / 1000 : 0);
	}
}

static void stage_row(FILE *out, const char *name, double secs, double scheduled,
		      const struct lg_counts *c, const struct hist *lat)
{
	fprintf(out, "%-12s %7.1f %10.0f %10" PRIu64 " %10" PRIu64 " %10.0f %9.2f %9.2f %9.2f %9.2f %8" PRIu64 "\n",
		name, secs, scheduled, c->sent, c->completed, secs > 0 ? (double)c->completed / secs : 0,
		ms(hist_percentile(lat, 50)), ms(hist_percentile(lat, 99)),
		ms(hist_percentile(lat, 99.9)), ms(hist_max(lat)), c->late_sends);
}

void report_text(FILE *out, const struct lg_profile *p, const struct lg_target *t,
		 const struct lg_result *r)
{
	double achieved = r->elapsed_s > 0 ? (double)r->c.completed / r->elapsed_s : 0;
	char where[512];
	lg_target_text(t, where, sizeof(where));
	fprintf(out, "flashload: %s against %s, %u threads, %u connections\n", p->source, where,
		p->threads, p->connections);
	if (r->interrupted)
		fprintf(out, "INTERRUPTED after %.1f s of a %.1f s schedule: what follows is what ran\n",
			r->elapsed_s, r->schedule_s);
	fprintf(out, "%" PRIu64 " requests answered in %.2f s: %.0f req/s achieved", r->c.completed,
		r->elapsed_s, achieved);
	if (!p->closed_loop)
		fprintf(out, " (schedule %.0f requests over %.1f s: %.0f req/s)", r->scheduled,
			r->schedule_s, r->schedule_s > 0 ? r->scheduled / r->schedule_s : 0);
	fprintf(out, "\n\n%-12s %7s %10s %10s %10s %10s %9s %9s %9s %9s %8s\n", "stage", "secs",
		"scheduled", "sent", "answered", "answers/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
		"late");
	for (unsigned k = 0; k < r->n_stages; k++) {
		double secs = p->closed_loop ? r->elapsed_s : p->stages[k].duration_s;
		stage_row(out, report_stage_name(p, k), secs,
			  p->closed_loop ? (double)r->stages[k].c.offered : r->stages[k].scheduled,
			  &r->stages[k].c, r->stages[k].latency);
	}
	stage_row(out, "overall", r->elapsed_s, r->scheduled, &r->c, r->latency);
	fprintf(out, "(a request belongs to the stage of its intended send time; \"late\" = sent over 1 ms "
		     "after it)\n\n");
	/* Every outcome, zeros included: scripts look for "timeouts 0". */
	for (int i = 0; i < LG_OUTCOMES; i++)
		fprintf(out, "%s%s %" PRIu64, i ? " | " : "status: ", lg_outcome_names[i], r->c.counts[i]);
	fprintf(out, "\norders: %" PRIu64 " (accepted %" PRIu64 ", %" PRIu64 " of them on a retry; refused %"
		     PRIu64 "; failed %" PRIu64 " (503, timeout or broken connection on the last try)",
		r->orders, r->orders_accepted, r->accepted_after_retry, r->orders_refused, r->orders_failed);
	if (r->orders_abandoned)
		fprintf(out, "; abandoned %" PRIu64 " (reset by the client before an answer)", r->orders_abandoned);
	fprintf(out, "); retries %" PRIu64 ", double clicks %" PRIu64 ", keys answered with two order ids %" PRIu64 "\n",
		r->retries, r->double_clicks, r->key_conflicts);
	if (r->tokens_signed)
		fprintf(out, "tokens: %" PRIu64 " shoppers' tokens signed, %.1f us each (in flashload's threads, "
			     "before their first order)\n",
			r->tokens_signed, (double)r->sign_ns / 1000.0 / (double)r->tokens_signed);
	if (prof_has_bots(p))
		who_table(out, r);
	uint64_t mal = 0;
	for (int k = 0; k < MAL_KINDS; k++)
		mal += r->malformed_sent[k];
	if (mal) {
		fprintf(out, "malformed:");
		for (int k = 0; k < MAL_KINDS; k++)
			if (r->malformed_sent[k])
				fprintf(out, " %s %" PRIu64 "/%" PRIu64 " got %u;", prof_malformed_names[k],
					r->malformed_ok[k], r->malformed_sent[k], prof_malformed_status[k]);
		fprintf(out, "\n");
	}
	if (r->unsent || r->connect_failures)
		fprintf(out, "not sent: %" PRIu64 " requests due but never sent; %" PRIu64
			     " connection attempts failed\n",
			r->unsent, r->connect_failures);
	print_latency(out, p->closed_loop ? "latency (closed loop)" : "latency (from intended send)",
		      r->latency);
	print_latency(out, "service time (from actual send)", r->service);
	print_latency(out, "order latency (retries included)", r->order_latency);
	if (!p->closed_loop)
		fprintf(out, "send lag: p50 %.2f  p99 %.2f  max %.2f ms (generator's own: p99 %.2f ms), %"
			     PRIu64 " of %" PRIu64 " sent more than 1 ms late%s%s\n",
			ms(hist_percentile(r->send_lag, 50)), ms(hist_percentile(r->send_lag, 99)),
			ms(hist_max(r->send_lag)), ms(hist_percentile(r->gen_lag, 99)), r->c.late_sends,
			r->c.sent,
			r->conn_limited ? "  [requests waited for a connection: the server fell behind or "
					  "there are too few connections; their wait is in the latency]" : "",
			r->generator_limited ? "  [generator-limited: flashload's own p99 lateness was over "
					       "5 ms: it could not keep the schedule (its CPU, or a machine "
					       "shared with the server); the server may do better than shown]" : "");
}

/* The lossless part: {"count", "min", "max", "sum", "clamped", "buckets":
 * [index, count, ...]}, indexes as HdrHistogram counts them (hist.h). */
static void json_hdr(FILE *f, const struct hist_packed *pk)
{
	if (!pk) {
		fprintf(f, "null");
		return;
	}
	fprintf(f, "{\"count\": %" PRIu64 ", \"min\": %" PRIu64 ", \"max\": %" PRIu64 ", \"sum\": %.17g"
		   ", \"clamped\": %" PRIu64 ", \"buckets\": [",
		pk->total, pk->min, pk->max, pk->sum, pk->clamped);
	for (size_t k = 0; k < pk->n; k++)
		fprintf(f, "%s%u, %" PRIu64, k ? ", " : "", pk->idx[k], pk->count[k]);
	fprintf(f, "]}");
}

static void json_hist(FILE *f, const char *name, const struct hist *h, const char *tail)
{
	fprintf(f, "\"%s\": {\"count\": %" PRIu64 ", \"p50\": %" PRIu64 ", \"p90\": %" PRIu64
		   ", \"p95\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"p999\": %" PRIu64 ", \"max\": %" PRIu64
		   ", \"hdr\": ",
		name, hist_count(h), hist_percentile(h, 50), hist_percentile(h, 90), hist_percentile(h, 95),
		hist_percentile(h, 99), hist_percentile(h, 99.9), hist_max(h));
	struct hist_packed *pk = hist_pack(h);
	json_hdr(f, pk); /* null when out of memory: the merge refuses it */
	hist_packed_free(pk);
	fprintf(f, "}%s", tail);
}

static void json_counts(FILE *f, const uint64_t *counts)
{
	fprintf(f, "{");
	for (int i = 0; i < LG_OUTCOMES; i++)
		fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", lg_outcome_names[i], counts[i]);
	fprintf(f, "}");
}

/* Names in JSON come from the profile (identifier characters only) or
 * from fixed strings; details may hold quotes from server text. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s >= 0x20)
			fputc(*s, f);
	}
	fputc('"', f);
}

bool report_api_answered(const struct lg_result *r)
{
	static const enum lg_outcome api[] = {
		LG_ACCEPTED, LG_DUPLICATE, LG_SOLD_OUT, LG_LIMIT, LG_IN_PROGRESS, LG_WINDOW,
		LG_UNAVAILABLE, LG_MALFORMED_OK, LG_UNAUTHORIZED, LG_FORBIDDEN, LG_THROTTLED,
	};
	for (size_t k = 0; k < sizeof(api) / sizeof(api[0]); k++)
		if (r->c.counts[api[k]])
			return true;
	return false;
}

void report_gate(struct report_meta *meta, const struct lg_profile *p, const struct lg_result *r)
{
	meta->thr_missed = 0;
	for (unsigned k = 0; k < meta->n_thr; k++) {
		char err[160];
		struct thr_verdict *v = &meta->verdicts[k];
		if (thr_judge(&meta->thr[k], p, r, v, err, sizeof(err)) < 0) {
			v->ok = false; /* a stage checked before the run: cannot happen */
			snprintf(v->detail, sizeof(v->detail), "%s", err);
		}
		meta->thr_missed += !v->ok;
	}
	meta->no_api_answer = !report_api_answered(r);
}

void report_gate_text(FILE *out, const struct report_meta *meta)
{
	if (meta->n_thr)
		fprintf(out, "\nthresholds: %u of %u missed\n", meta->thr_missed, meta->n_thr);
	for (unsigned k = 0; k < meta->n_thr; k++)
		fprintf(out, "  %s  %-28s %s\n", meta->verdicts[k].ok ? "PASS" : "FAIL", meta->thr[k].text,
			meta->verdicts[k].detail);
	if (meta->no_api_answer)
		fprintf(out, "\nFAIL: not one answer came from an order API (wrong --target or path?): "
			     "see the status line\n");
}

int report_json(const char *path, const struct lg_profile *p, const struct lg_target *t,
		const struct lg_result *r, const struct verify_report *rep, const struct report_meta *meta)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		int rc = -errno;
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return rc;
	}
	fprintf(f, "{\n  \"format\": \"flashload-report\",\n  \"format_version\": 2,\n  \"meta\": {\"version\": ");
	json_str(f, FLASHGATE_VERSION);
	fprintf(f, ", \"commit\": ");
	json_str(f, flashgate_commit);
	fprintf(f, ", \"command\": ");
	json_str(f, meta->command ? meta->command : "");
	fprintf(f, ", \"host\": ");
	json_str(f, meta->host);
	fprintf(f, ", \"profile_digest\": \"%s\", \"t0_unix_ms\": %" PRId64
		   ", \"shard\": %u, \"shards\": %u, \"generators\": %u, \"accepted_log\": ",
		meta->profile_digest, meta->t0_unix_ms, meta->shard, meta->shards, meta->generators);
	if (meta->accepted_log)
		json_str(f, meta->accepted_log);
	else
		fprintf(f, "null");
	fprintf(f, "},\n  \"interrupted\": %s,\n  \"thresholds\": [", r->interrupted ? "true" : "false");
	for (unsigned k = 0; k < meta->n_thr; k++) {
		fprintf(f, "%s\n    {\"threshold\": ", k ? "," : "");
		json_str(f, meta->thr[k].text);
		fprintf(f, ", \"ok\": %s, \"observed\": %.6g, \"detail\": ", meta->verdicts[k].ok ? "true" : "false",
			meta->verdicts[k].observed);
		json_str(f, meta->verdicts[k].detail);
		fprintf(f, "}");
	}
	fprintf(f, "%s],\n  \"api_answered\": %s,\n  \"profile\": ", meta->n_thr ? "\n  " : "",
		meta->no_api_answer ? "false" : "true");
	json_str(f, p->source);
	char where[512];
	lg_target_text(t, where, sizeof(where));
	fprintf(f, ",\n  \"target\": \"%s\",\n  \"threads\": %u,\n  \"connections\": %u,\n", where,
		p->threads, p->connections);
	fprintf(f, "  \"started_unix_ms\": %" PRId64 ",\n  \"closed_loop\": %s,\n", r->started_unix_ms,
		p->closed_loop ? "true" : "false");
	fprintf(f, "  \"scheduled\": %.0f,\n  \"offered\": %" PRIu64 ",\n  \"sent\": %" PRIu64
		   ",\n  \"requests\": %" PRIu64 ",\n  \"unsent\": %" PRIu64 ",\n",
		r->scheduled, r->c.offered, r->c.sent, r->c.completed, r->unsent);
	fprintf(f, "  \"elapsed_s\": %.6f,\n  \"achieved_rps\": %.3f,\n  \"late_sends\": %" PRIu64
		   ",\n  \"max_lag_us\": %" PRIu64 ",\n",
		r->elapsed_s, r->elapsed_s > 0 ? (double)r->c.completed / r->elapsed_s : 0,
		r->c.late_sends, hist_max(r->send_lag));
	fprintf(f, "  \"generator_limited\": %s,\n  \"connection_limited\": %s,\n  \"counts\": ",
		r->generator_limited ? "true" : "false", r->conn_limited ? "true" : "false");
	json_counts(f, r->c.counts);
	fprintf(f, ",\n  \"orders\": {\"total\": %" PRIu64 ", \"accepted\": %" PRIu64
		   ", \"accepted_after_retry\": %" PRIu64 ", \"refused\": %" PRIu64 ", \"failed\": %" PRIu64
		   ", \"abandoned\": %" PRIu64 ", \"retries\": %" PRIu64 ", \"double_clicks\": %" PRIu64
		   ", \"key_conflicts\": %" PRIu64 "},\n",
		r->orders, r->orders_accepted, r->accepted_after_retry, r->orders_refused,
		r->orders_failed, r->orders_abandoned, r->retries, r->double_clicks, r->key_conflicts);
	fprintf(f, "  \"tokens\": {\"signed\": %" PRIu64 ", \"sign_us\": %.3f},\n", r->tokens_signed,
		(double)r->sign_ns / 1000.0);
	fprintf(f, "  \"who\": {");
	for (int k = 0; k < WHO_N; k++) {
		fprintf(f, "%s\"%s\": {\"counts\": ", k ? ", " : "", prof_who_names[k]);
		json_counts(f, r->who[k].counts);
		fprintf(f, ", \"units\": %" PRIu64 ", ", r->who[k].units);
		json_hist(f, "latency_us", r->who[k].latency, "}");
	}
	fprintf(f, "},\n");
	fprintf(f, "  \"malformed\": {");
	for (int k = 0; k < MAL_KINDS; k++)
		fprintf(f, "%s\"%s\": {\"sent\": %" PRIu64 ", \"expected_status\": %u, \"ok\": %" PRIu64 "}",
			k ? ", " : "", prof_malformed_names[k], r->malformed_sent[k],
			prof_malformed_status[k], r->malformed_ok[k]);
	fprintf(f, "},\n  ");
	json_hist(f, "latency_us", r->latency, ",\n  ");
	json_hist(f, "service_us", r->service, ",\n  ");
	json_hist(f, "order_latency_us", r->order_latency, ",\n  ");
	json_hist(f, "send_lag_us", r->send_lag, ",\n  ");
	json_hist(f, "generator_lag_us", r->gen_lag, ",\n");
	fprintf(f, "  \"stages\": [\n");
	for (unsigned k = 0; k < r->n_stages; k++) {
		const struct lg_stage_result *s = &r->stages[k];
		fprintf(f, "    {\"name\": \"%s\", \"duration_s\": %.3f, \"from_rate\": %.3f, \"to_rate\": %.3f, "
			   "\"scheduled\": %.0f, \"offered\": %" PRIu64 ", \"sent\": %" PRIu64
			   ", \"answered\": %" PRIu64 ", \"late_sends\": %" PRIu64 ", \"counts\": ",
			report_stage_name(p, k), p->closed_loop ? r->elapsed_s : p->stages[k].duration_s,
			p->closed_loop ? 0 : p->stages[k].from_rate, p->closed_loop ? 0 : p->stages[k].to_rate,
			s->scheduled, s->c.offered, s->c.sent, s->c.completed, s->c.late_sends);
		json_counts(f, s->c.counts);
		fprintf(f, ", ");
		json_hist(f, "latency_us", s->latency, ", ");
		json_hist(f, "service_us", s->service, k + 1 < r->n_stages ? "},\n" : "}\n");
	}
	fprintf(f, "  ],\n  \"seconds\": [\n");
	for (size_t i = 0; i < r->n_seconds; i++) {
		const struct lg_second *s = &r->seconds[i];
		fprintf(f, "    {\"t\": %zu, \"offered\": %" PRIu64 ", \"sent\": %" PRIu64
			   ", \"answered\": %" PRIu64 ", \"p50_us\": %" PRIu64 ", \"p90_us\": %" PRIu64
			   ", \"p99_us\": %" PRIu64 ", \"p999_us\": %" PRIu64 ", \"max_us\": %" PRIu64
			   ", \"counts\": ",
			i, s->offered, s->sent, s->completed, s->p50, s->p90, s->p99, s->p999, s->max);
		json_counts(f, s->counts);
		fprintf(f, ", \"hdr\": ");
		json_hdr(f, s->latency);
		fprintf(f, "}%s\n", i + 1 < r->n_seconds ? "," : "");
	}
	fprintf(f, "  ],\n  \"verify\": ");
	if (rep) {
		fprintf(f, "{\"failures\": %d, \"checks\": [\n", rep->fails);
		for (int i = 0; i < rep->n; i++) {
			fprintf(f, "    {\"ok\": %s, \"check\": ", rep->checks[i].ok ? "true" : "false");
			json_str(f, rep->checks[i].what);
			fprintf(f, ", \"detail\": ");
			json_str(f, rep->checks[i].detail);
			fprintf(f, "}%s\n", i + 1 < rep->n ? "," : "");
		}
		fprintf(f, "  ]}\n}\n");
	} else {
		fprintf(f, "null\n}\n");
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}
