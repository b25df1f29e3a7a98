/*
 * html: the report page. Each chart is one <svg> with a fixed viewBox:
 * per-second series drawn as polylines (or stacked areas for the status
 * mix), axes with a few round ticks, and a legend. Colours are fixed so
 * that a reader (and the rendering test) can tell the series apart.
 */
#include "html.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/version.h"

#include "report.h"
#include "sched.h"

#define W 960
#define H 280
#define ML 70 /* margins: room for tick labels and the legend */
#define MR 20
#define MT 30
#define MB 40

struct series_def {
	const char *name;
	const char *colour;
	const double *v;
	bool dashed; /* drawn dashed over the others: a series that may coincide with one */
};

/* The stages of a time chart's x axis, shaded alternately and named, so a
 * reader sees which stage each second belongs to. n == 0: none. */
struct bands {
	double start_s[PROF_MAX_STAGES + 1];
	const char *name[PROF_MAX_STAGES];
	unsigned n;
};

static void draw_bands(FILE *f, const struct bands *b, size_t n)
{
	double span = (double)(n > 1 ? n : 1), w = W - ML - MR;
	for (unsigned k = 0; b && k < b->n; k++) {
		double x0 = ML + fmin(b->start_s[k], span) / span * w;
		double x1 = ML + fmin(b->start_s[k + 1], span) / span * w;
		if (x1 <= x0)
			continue; /* a 0 s step */
		fprintf(f, "<rect class=\"band\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>"
			   "<text class=\"bandl\" x=\"%.1f\" y=\"%d\">",
			x0, MT, x1 - x0, H - MT - MB, k % 2 ? "#f7f7f7" : "#eef3fa", x0 + 4, MT + 12);
		for (const char *c = b->name[k]; *c; c++)
			fputc(*c == '<' || *c == '&' ? '_' : *c, f);
		fprintf(f, "</text>\n");
	}
}

/* A round step giving about five ticks over [0, max]. */
static double nice_step(double max)
{
	double raw = max / 5, mag = pow(10, floor(log10(raw)));
	double f = raw / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static double y_of(double v, double max, bool logy, double min_log)
{
	double h = H - MT - MB;
	if (logy) {
		double lv = log10(v > min_log ? v : min_log), lo = log10(min_log), hi = log10(max);
		return MT + h - (lv - lo) / (hi - lo) * h;
	}
	return MT + h - v / max * h;
}

/* Both axis lines, and the y axis's grid and labels: decades on a log
 * scale, round steps on a linear one. */
static void y_axis(FILE *f, double max, bool logy, double min_log)
{
	double x1 = W - MR, y1 = H - MB, step = logy ? 0 : nice_step(max);
	fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>\n", ML, y1, x1, y1);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.1f\" class=\"ax\"/>\n", ML, MT, ML, y1);
	for (double v = logy ? min_log : 0; v <= max * 1.0001; v = logy ? v * 10 : v + step) {
		double y = y_of(v, max, logy, min_log);
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
			   "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%g</text>\n",
			ML, y, x1, y, ML - 6, y + 4, v);
	}
}

static void axes(FILE *f, size_t n, double max, bool logy, double min_log, const char *unit,
		 const struct bands *b)
{
	draw_bands(f, b, n);
	y_axis(f, max, logy, min_log);
	double xstep = nice_step(n > 1 ? (double)n : 1);
	if (xstep < 1)
		xstep = 1;
	for (double s = 0; s <= (double)n; s += xstep) {
		double x = ML + s / (double)(n > 1 ? n : 1) * (W - ML - MR);
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%gs</text>\n", x, H - MB + 16, s);
	}
	fprintf(f, "<text x=\"8\" y=\"%d\" class=\"unit\">%s</text>\n", MT - 12, unit);
}

static void legend(FILE *f, const struct series_def *s, int ns)
{
	double x = ML + 10;
	for (int k = 0; k < ns; k++) {
		fprintf(f, "<rect x=\"%.0f\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
			   "<text x=\"%.0f\" y=\"%d\" class=\"lg\">%s</text>\n",
			x, H - 16, s[k].colour, x + 16, H - 6, s[k].name);
		x += 28 + 7.5 * (double)strlen(s[k].name);
	}
}

static void line_chart(FILE *f, const char *title, const char *unit, size_t n,
		       const struct series_def *s, int ns, bool logy, const struct bands *b)
{
	double max = 0, min_pos = HUGE_VAL, min_log = 0.01;
	for (int k = 0; k < ns; k++) {
		for (size_t i = 0; i < n; i++) {
			if (s[k].v[i] > max)
				max = s[k].v[i];
			if (s[k].v[i] > 0 && s[k].v[i] < min_pos)
				min_pos = s[k].v[i];
		}
	}
	if (logy) {
		/* From the decade below the smallest value: no empty decades. */
		if (min_pos != HUGE_VAL)
			min_log = fmax(0.001, pow(10, floor(log10(min_pos))));
		max = pow(10, ceil(log10(max > min_log ? max : min_log * 10)));
		if (max <= min_log)
			max = min_log * 10;
	} else {
		max = max > 0 ? max * 1.08 : 1;
		max = ceil(max / nice_step(max)) * nice_step(max);
	}
	fprintf(f, "<h2>%s</h2>\n<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
		   "role=\"img\" aria-label=\"%s\">\n",
		title, W, H, W, H, title);
	axes(f, n, max, logy, min_log, unit, b);
	/* Dashed series last: on top of a solid one they coincide with, both
	 * still show. */
	for (int pass = 0; pass < 2; pass++)
	for (int k = 0; k < ns; k++) {
		if (s[k].dashed != (pass == 1))
			continue;
		fprintf(f, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"3\"%s "
			   "data-series=\"%s\" points=\"",
			s[k].colour, s[k].dashed ? " stroke-dasharray=\"10 6\"" : "", s[k].name);
		for (size_t i = 0; i < n; i++) {
			if (logy && s[k].v[i] <= 0)
				continue; /* no answers that second: no point */
			double x = ML + ((double)i + 0.5) / (double)n * (W - ML - MR);
			fprintf(f, "%.1f,%.1f ", x, y_of(s[k].v[i], max, logy, min_log));
		}
		fprintf(f, "\"/>\n");
	}
	legend(f, s, ns);
	fprintf(f, "</svg>\n");
}

/* Stacked areas: series k is drawn between the sum of 0..k-1 and 0..k. */
static void stacked_chart(FILE *f, const char *title, const char *unit, size_t n,
			  const struct series_def *s, int ns, const struct bands *b)
{
	double max = 0;
	for (size_t i = 0; i < n; i++) {
		double sum = 0;
		for (int k = 0; k < ns; k++)
			sum += s[k].v[i];
		if (sum > max)
			max = sum;
	}
	max = max > 0 ? max * 1.08 : 1;
	max = ceil(max / nice_step(max)) * nice_step(max);
	fprintf(f, "<h2>%s</h2>\n<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
		   "role=\"img\" aria-label=\"%s\">\n",
		title, W, H, W, H, title);
	axes(f, n, max, false, 0, unit, b);
	double *base = calloc(n ? n : 1, sizeof(double));
	if (!base)
		return;
	double bw = (double)(W - ML - MR) / (double)(n ? n : 1);
	for (int k = 0; k < ns; k++) {
		fprintf(f, "<g class=\"series\" fill=\"%s\" data-series=\"%s\">", s[k].colour, s[k].name);
		for (size_t i = 0; i < n; i++) {
			if (s[k].v[i] <= 0)
				continue;
			double y0 = y_of(base[i], max, false, 0), y1 = y_of(base[i] + s[k].v[i], max, false, 0);
			fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
				ML + (double)i * bw, y1, bw, y0 - y1);
			base[i] += s[k].v[i];
		}
		fprintf(f, "</g>\n");
	}
	free(base);
	legend(f, s, ns);
	fprintf(f, "</svg>\n");
}

/*
 * Latency by percentile, the way HdrHistogram plots it: x is
 * log10(1 / (1 - p)), so 90%, 99%, 99.9% ... are equally spaced and the
 * tail gets the room; y is log scale. Drawn from the whole histogram, not
 * from the per-second percentiles.
 */
static void percentile_chart(FILE *f, const struct lg_result *r)
{
	const struct hist *hs[2] = {r->latency, r->service};
	static const struct series_def s[2] = {
		{"latency (from intended send)", "#d62728", NULL, false},
		{"service time (from actual send)", "#1f77b4", NULL, true},
	};
	uint64_t count = hist_count(r->latency);
	/* No further than the histogram resolves: 1 in count. */
	double xmax = count > 10 ? fmin(6, ceil(log10((double)count))) : 1;
	enum { POINTS = 240 };
	double v[2][POINTS + 1], max = 0, min_pos = HUGE_VAL;
	for (int k = 0; k < 2; k++)
		for (int i = 0; i <= POINTS; i++) {
			double x = xmax * i / POINTS, p = 100 * (1 - pow(10, -x));
			v[k][i] = (double)hist_percentile(hs[k], i == POINTS ? 100 : p) / 1000;
			max = fmax(max, v[k][i]);
			if (v[k][i] > 0)
				min_pos = fmin(min_pos, v[k][i]);
		}
	double min_log = min_pos == HUGE_VAL ? 0.01 : fmax(0.001, pow(10, floor(log10(min_pos))));
	max = pow(10, ceil(log10(max > min_log ? max : min_log * 10)));
	fprintf(f, "<h2>Latency by percentile</h2>\n<svg class=\"chart\" id=\"percentiles\" viewBox=\"0 0 %d %d\" "
		   "width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"Latency by percentile\">\n", W, H, W, H);
	double w = W - ML - MR;
	y_axis(f, max, true, min_log);
	static const char *const ticks[] = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"};
	for (int t = 0; t <= (int)xmax; t++)
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%s</text>\n", ML + t / xmax * w, H - MB + 16,
			ticks[t]);
	fprintf(f, "<text x=\"8\" y=\"%d\" class=\"unit\">ms (log)</text>\n", MT - 12);
	for (int k = 0; k < 2; k++) {
		fprintf(f, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"3\"%s "
			   "data-series=\"%s\" points=\"", s[k].colour, s[k].dashed ? " stroke-dasharray=\"10 6\"" : "",
			s[k].name);
		for (int i = 0; i <= POINTS; i++)
			if (v[k][i] > 0)
				fprintf(f, "%.1f,%.1f ", ML + (double)i / POINTS * w, y_of(v[k][i], max, true, min_log));
		fprintf(f, "\"/>\n");
	}
	legend(f, s, 2);
	fprintf(f, "</svg>\n");
}

static void status_table(FILE *f, const struct lg_result *r)
{
	uint64_t total = 0;
	for (int k = 0; k < LG_OUTCOMES; k++)
		total += r->c.counts[k];
	fprintf(f, "<h2>Answers</h2>\n<table id=\"status\"><tr><th>outcome</th><th>answers</th><th>share</th></tr>\n");
	for (int k = 0; k < LG_OUTCOMES; k++)
		if (r->c.counts[k])
			fprintf(f, "<tr><td>%s</td><td>%" PRIu64 "</td><td>%.2f%%</td></tr>\n", lg_outcome_names[k],
				r->c.counts[k], total ? 100.0 * (double)r->c.counts[k] / (double)total : 0);
	fprintf(f, "<tr><td><b>all</b></td><td>%" PRIu64 "</td><td></td></tr>\n</table>\n", total);
}

static const char style[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}"
	"h1{font-size:20px}h2{font-size:16px;margin:24px 0 4px}"
	"table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
	"text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
	".ax{stroke:#333;stroke-width:1}.grid{stroke:#e4e4e4;stroke-width:1}"
	".yl{font-size:11px;text-anchor:end;fill:#555}.xl{font-size:11px;text-anchor:middle;fill:#555}"
	".unit{font-size:12px;fill:#333}.lg{font-size:12px;fill:#333}"
	".pass{color:#1a7f37;font-weight:bold}.fail{color:#c62828;font-weight:bold}"
	".note{color:#a15c00}.bandl{font-size:11px;fill:#667}";

static void stage_table(FILE *f, const struct lg_profile *p, const struct lg_result *r)
{
	fprintf(f, "<h2>Stages</h2>\n<table><tr><th>stage</th><th>seconds</th><th>rate/s</th>"
		   "<th>scheduled</th><th>sent</th><th>answered</th><th>late</th><th>p50 ms</th>"
		   "<th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>\n");
	for (unsigned k = 0; k <= r->n_stages; k++) {
		bool all = k == r->n_stages;
		const struct lg_counts *c = all ? &r->c : &r->stages[k].c;
		const struct hist *h = all ? r->latency : r->stages[k].latency;
		char rate[64] = "";
		if (!all && !p->closed_loop)
			snprintf(rate, sizeof(rate), "%.0f &rarr; %.0f", p->stages[k].from_rate,
				 p->stages[k].to_rate);
		fprintf(f, "<tr><td>%s</td><td>%.1f</td><td>%s</td><td>%.0f</td><td>%" PRIu64 "</td><td>%" PRIu64
			   "</td><td>%" PRIu64 "</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>\n",
			all ? "<b>overall</b>" : report_stage_name(p, k),
			all || p->closed_loop ? r->elapsed_s : p->stages[k].duration_s, rate,
			all ? r->scheduled : r->stages[k].scheduled, c->sent, c->completed, c->late_sends,
			(double)hist_percentile(h, 50) / 1000, (double)hist_percentile(h, 99) / 1000,
			(double)hist_percentile(h, 99.9) / 1000, (double)hist_max(h) / 1000);
	}
	fprintf(f, "</table>\n");
}

static void html_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else
			fputc(*s, f);
	}
}

/* One row of a thresholds or verification table. */
static void pass_fail_row(FILE *f, const char *what, bool ok, const char *detail)
{
	fprintf(f, "<tr><td>");
	html_text(f, what);
	fprintf(f, "</td><td class=\"%s\">%s</td><td style=\"text-align:left\">", ok ? "pass" : "fail",
		ok ? "PASS" : "FAIL");
	html_text(f, detail);
	fprintf(f, "</td></tr>\n");
}

static void meta_block(FILE *f, const struct report_meta *m, const struct lg_result *r)
{
	char when[64] = "";
	time_t secs = (time_t)(r->started_unix_ms / 1000);
	struct tm tm;
	if (gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	fprintf(f, "<table id=\"meta\"><tr><th>started</th><td style=\"text-align:left\">%s%s</td></tr>\n",
		when, r->interrupted ? " <span class=\"fail\">interrupted</span>" : "");
	fprintf(f, "<tr><th>flashload</th><td style=\"text-align:left\">%s (commit %s)</td></tr>\n",
		FLASHGATE_VERSION, flashgate_commit);
	fprintf(f, "<tr><th>command</th><td style=\"text-align:left\"><code>");
	html_text(f, m->command ? m->command : "");
	fprintf(f, "</code></td></tr>\n<tr><th>host</th><td style=\"text-align:left\">");
	html_text(f, m->host);
	fprintf(f, "</td></tr>\n<tr><th>sale</th><td style=\"text-align:left\">profile digest %.16s&hellip;"
		   "%s; generator %u of %u; %u report%s</td></tr>\n</table>\n",
		m->profile_digest, m->t0_unix_ms ? ", common T0" : "", m->shard, m->shards, m->generators,
		m->generators == 1 ? "" : "s merged");
}

static void gate_table(FILE *f, const struct report_meta *m)
{
	if (!m->n_thr && !m->no_api_answer)
		return;
	fprintf(f, "<h2>Thresholds</h2>\n");
	if (m->no_api_answer)
		fprintf(f, "<p class=\"fail\">FAIL: not one answer came from an order API.</p>\n");
	if (!m->n_thr)
		return;
	fprintf(f, "<p class=\"%s\">%u of %u missed</p>\n<table id=\"thresholds\"><tr><th>threshold</th>"
		   "<th>result</th><th>detail</th></tr>\n",
		m->thr_missed ? "fail" : "pass", m->thr_missed, m->n_thr);
	for (unsigned k = 0; k < m->n_thr; k++)
		pass_fail_row(f, m->thr[k].text, m->verdicts[k].ok, m->verdicts[k].detail);
	fprintf(f, "</table>\n");
}

static void verify_table(FILE *f, const struct verify_report *rep)
{
	fprintf(f, "<h2>Verification</h2>\n");
	if (!rep) {
		fprintf(f, "<p>Not run (flashload --verify checks Redis and the Kafka topic).</p>\n");
		return;
	}
	fprintf(f, "<p class=\"%s\">%s: %d of %d checks failed</p>\n<table id=\"verify\">"
		   "<tr><th>check</th><th>result</th><th>detail</th></tr>\n",
		rep->fails ? "fail" : "pass", rep->fails ? "FAIL" : "PASS", rep->fails, rep->n);
	for (int i = 0; i < rep->n; i++)
		pass_fail_row(f, rep->checks[i].what, rep->checks[i].ok, rep->checks[i].detail);
	fprintf(f, "</table>\n");
}

enum { S_SCHED, S_OFFERED, S_ANSWERED, S_P50, S_P90, S_P99, S_P999,
       S_OK, S_SOLD, S_LIMIT, S_REFUSED, S_UNAVAIL, S_ERR, S_MAL, S_NSERIES };

static void fill_series(double **v, const struct lg_profile *p, const struct lg_result *r)
{
	struct sched sc;
	sched_init(&sc, p);
	for (size_t i = 0; i < r->n_seconds; i++) {
		const struct lg_second *s = &r->seconds[i];
		const uint64_t *c = s->counts;
		v[S_SCHED][i] = p->closed_loop ? 0 : sched_count_between(&sc, (double)i, (double)i + 1);
		v[S_OFFERED][i] = (double)s->offered;
		v[S_ANSWERED][i] = (double)s->completed;
		v[S_P50][i] = (double)s->p50 / 1000;
		v[S_P90][i] = (double)s->p90 / 1000;
		v[S_P99][i] = (double)s->p99 / 1000;
		v[S_P999][i] = (double)s->p999 / 1000;
		v[S_OK][i] = (double)(c[LG_ACCEPTED] + c[LG_DUPLICATE]);
		v[S_SOLD][i] = (double)c[LG_SOLD_OUT];
		v[S_LIMIT][i] = (double)c[LG_LIMIT];
		v[S_REFUSED][i] = (double)(c[LG_IN_PROGRESS] + c[LG_NOT_FOUND] + c[LG_WINDOW] + c[LG_BAD_REQUEST] +
					   c[LG_UNAUTHORIZED] + c[LG_FORBIDDEN] + c[LG_THROTTLED]);
		v[S_UNAVAIL][i] = (double)c[LG_UNAVAILABLE];
		v[S_ERR][i] = (double)(c[LG_CONN_ERROR] + c[LG_TIMEOUT] + c[LG_OTHER_STATUS] +
				       c[LG_MALFORMED_WRONG]);
		v[S_MAL][i] = (double)c[LG_MALFORMED_OK];
	}
}

int html_write(const char *path, const struct lg_profile *p, const struct lg_target *t,
	       const struct lg_result *r, const struct verify_report *rep, const struct report_meta *meta)
{
	size_t n = r->n_seconds ? r->n_seconds : 1;
	double *v[S_NSERIES] = {NULL};
	int rc = 0;
	for (int k = 0; k < S_NSERIES; k++)
		if (!(v[k] = calloc(n, sizeof(double))))
			rc = -ENOMEM;
	FILE *f = rc ? NULL : fopen(path, "w");
	if (!f) {
		rc = rc ? rc : -errno;
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(-rc));
		goto out;
	}
	fill_series(v, p, r);
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		   "<title>flashload report</title><style>%s</style></head><body>\n", style);
	fprintf(f, "<h1>flashload report</h1>\n");
	meta_block(f, meta, r);
	fprintf(f, "<p>Profile <b>");
	html_text(f, p->source);
	char where[512];
	lg_target_text(t, where, sizeof(where));
	fprintf(f, "</b> against <b>");
	html_text(f, where);
	fprintf(f, "</b>; %u threads, %u connections; %.0f requests answered in "
		   "%.1f s (%.0f/s). Orders: %" PRIu64 " (accepted %" PRIu64 ", refused %" PRIu64
		   ", failed %" PRIu64 ", abandoned %" PRIu64 "), retries %" PRIu64 ", double clicks %" PRIu64
		   ".</p>\n",
		p->threads, p->connections, (double)r->c.completed, r->elapsed_s,
		r->elapsed_s > 0 ? (double)r->c.completed / r->elapsed_s : 0, r->orders,
		r->orders_accepted, r->orders_refused, r->orders_failed, r->orders_abandoned, r->retries,
		r->double_clicks);
	fprintf(f, "<p>Latency is measured from each request's intended send time (open loop, "
		   "coordinated omission corrected): p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms. "
		   "Service time (from the actual send): p99 %.2f ms.</p>\n",
		(double)hist_percentile(r->latency, 50) / 1000, (double)hist_percentile(r->latency, 99) / 1000,
		(double)hist_percentile(r->latency, 99.9) / 1000, (double)hist_max(r->latency) / 1000,
		(double)hist_percentile(r->service, 99) / 1000);
	if (r->generator_limited)
		fprintf(f, "<p class=\"note\">Generator-limited (flashload's own p99 lateness over 5 ms): it could not keep the schedule "
			   "(its CPU, or a machine shared with the server); the server may do better than "
			   "shown.</p>\n");
	if (r->unsent)
		fprintf(f, "<p class=\"note\">%" PRIu64 " requests were due but never sent.</p>\n", r->unsent);
	size_t ns = r->n_seconds;
	struct bands bands = {.n = 0};
	if (!p->closed_loop) {
		struct sched sc;
		sched_init(&sc, p);
		bands.n = p->n_stages;
		for (unsigned k = 0; k <= p->n_stages; k++)
			bands.start_s[k] = sc.start_s[k];
		for (unsigned k = 0; k < p->n_stages; k++)
			bands.name[k] = p->stages[k].name;
	}
	struct series_def rate[] = {
		{"scheduled", "#7f7f7f", v[S_SCHED], false},
		{"answered", "#ff7f0e", v[S_ANSWERED], false},
		{"offered (dashed)", "#1f77b4", v[S_OFFERED], true},
	};
	line_chart(f, "Rate: scheduled, offered (retries and double clicks included), answered",
		   "requests/s", ns, p->closed_loop ? rate + 1 : rate, p->closed_loop ? 2 : 3, false, &bands);
	struct series_def lat[] = {
		{"p50", "#2ca02c", v[S_P50], false},
		{"p90", "#1f77b4", v[S_P90], false},
		{"p99", "#d62728", v[S_P99], false},
		{"p99.9", "#9467bd", v[S_P999], false},
	};
	line_chart(f, "Latency percentiles per second (from the intended send time)", "ms (log)", ns, lat,
		   4, true, &bands);
	struct series_def mix[] = {
		{"accepted", "#2ca02c", v[S_OK], false},
		{"sold out", "#ff7f0e", v[S_SOLD], false},
		{"limit", "#e377c2", v[S_LIMIT], false},
		{"other 4xx", "#8c564b", v[S_REFUSED], false},
		{"503", "#9467bd", v[S_UNAVAIL], false},
		{"errors", "#d62728", v[S_ERR], false},
		{"malformed (refused)", "#17becf", v[S_MAL], false},
	};
	stacked_chart(f, "Status mix per second", "answers/s", ns, mix, 7, &bands);
	percentile_chart(f, r);
	status_table(f, r);
	stage_table(f, p, r);
	gate_table(f, meta);
	verify_table(f, rep);
	fprintf(f, "</body></html>\n");
	if (fclose(f) != 0) {
		rc = -EIO;
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
	}
out:
	for (int k = 0; k < S_NSERIES; k++)
		free(v[k]);
	return rc;
}
