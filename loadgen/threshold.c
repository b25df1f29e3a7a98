/* threshold: --threshold parsing and judging. See threshold.h. */
#include "threshold.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	enum lg_outcome o[3];
	int n;
} statuses[] = {
	{"200", {LG_DUPLICATE}, 1},
	{"202", {LG_ACCEPTED}, 1},
	{"401", {LG_UNAUTHORIZED}, 1},
	{"403", {LG_FORBIDDEN}, 1},
	{"404", {LG_NOT_FOUND}, 1},
	{"409", {LG_SOLD_OUT, LG_LIMIT, LG_IN_PROGRESS}, 3},
	{"425", {LG_WINDOW}, 1},
	{"429", {LG_THROTTLED}, 1},
	{"503", {LG_UNAVAILABLE}, 1},
	{"timeout", {LG_TIMEOUT}, 1},
	{"conn", {LG_CONN_ERROR}, 1},
};

static const enum lg_outcome errors[] = {
	LG_UNAVAILABLE, LG_OTHER_STATUS, LG_CONN_ERROR, LG_TIMEOUT,
	LG_NOT_FOUND, LG_BAD_REQUEST, LG_MALFORMED_WRONG,
};

static bool is_latency(enum thr_metric m)
{
	return m == THR_PERCENTILE || m == THR_MAX_LATENCY || m == THR_MEAN;
}

/* The metric word at *s, advancing past it. */
static int parse_metric(const char **s, struct threshold *t, char *err, size_t err_len)
{
	const char *at = *s;
	size_t n = strcspn(at, "<>");
	char word[48];
	if (n == 0 || n >= sizeof(word)) {
		snprintf(err, err_len, "expected METRIC OP VALUE");
		return -EINVAL;
	}
	memcpy(word, at, n);
	word[n] = '\0';
	*s = at + n;
	if (strcmp(word, "max") == 0) {
		t->metric = THR_MAX_LATENCY;
	} else if (strcmp(word, "mean") == 0) {
		t->metric = THR_MEAN;
	} else if (strcmp(word, "errors") == 0) {
		t->metric = THR_ERRORS;
		for (size_t k = 0; k < sizeof(errors) / sizeof(errors[0]); k++)
			t->outcomes[errors[k]] = true;
	} else if (strcmp(word, "accepted") == 0) {
		t->metric = THR_ACCEPTED;
	} else if (strcmp(word, "answered") == 0) {
		t->metric = THR_ANSWERED;
	} else if (strcmp(word, "rps") == 0) {
		t->metric = THR_RPS;
	} else if (strncmp(word, "status:", 7) == 0) {
		t->metric = THR_STATUS;
		for (size_t k = 0; k < sizeof(statuses) / sizeof(statuses[0]); k++) {
			if (strcmp(word + 7, statuses[k].name) == 0) {
				for (int i = 0; i < statuses[k].n; i++)
					t->outcomes[statuses[k].o[i]] = true;
				return 0;
			}
		}
		snprintf(err, err_len, "'%s': status is one of 200 202 401 403 404 409 425 429 503 timeout conn",
			 word + 7);
		return -EINVAL;
	} else if (word[0] == 'p') {
		char *end;
		t->metric = THR_PERCENTILE;
		t->percentile = strtod(word + 1, &end);
		if (end == word + 1 || *end || !(t->percentile > 0 && t->percentile <= 100)) {
			snprintf(err, err_len, "'%s': a percentile is p followed by 0 < N <= 100", word);
			return -EINVAL;
		}
	} else {
		snprintf(err, err_len, "'%s': metric is pN, max, mean, errors, status:CODE, accepted, "
				       "answered or rps", word);
		return -EINVAL;
	}
	return 0;
}

static int parse_value(const char *s, struct threshold *t, char *err, size_t err_len)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || !(v >= 0) || isinf(v)) {
		snprintf(err, err_len, "'%s': expected a number", s);
		return -EINVAL;
	}
	const char *unit = end;
	if (is_latency(t->metric)) {
		double scale = strcmp(unit, "us") == 0 ? 1 : strcmp(unit, "ms") == 0 ? 1e3 :
			       strcmp(unit, "s") == 0 ? 1e6 : 0;
		if (scale == 0) {
			snprintf(err, err_len, "'%s': a latency needs a unit: us, ms or s", s);
			return -EINVAL;
		}
		t->value = v * scale;
	} else if (t->metric == THR_ERRORS || t->metric == THR_STATUS) {
		if (strcmp(unit, "%") == 0) {
			if (v > 100) {
				snprintf(err, err_len, "'%s': a share is at most 100%%", s);
				return -EINVAL;
			}
			t->share = true;
			t->value = v / 100;
		} else if (*unit == '\0') {
			t->value = v;
		} else {
			snprintf(err, err_len, "'%s': a share ends in %%, a count has no unit", s);
			return -EINVAL;
		}
	} else if (*unit != '\0') {
		snprintf(err, err_len, "'%s': this metric is a plain number", s);
		return -EINVAL;
	} else {
		t->value = v;
	}
	return 0;
}

int thr_parse(const char *expr, struct threshold *t, char *err, size_t err_len)
{
	memset(t, 0, sizeof(*t));
	char buf[THR_TEXT_MAX];
	size_t n = 0;
	for (const char *c = expr; *c; c++) {
		if (*c == ' ' || *c == '\t')
			continue;
		if (n + 1 >= sizeof(buf)) {
			snprintf(err, err_len, "longer than %d characters", THR_TEXT_MAX - 1);
			return -EINVAL;
		}
		buf[n++] = *c;
	}
	buf[n] = '\0';
	memcpy(t->text, buf, n + 1);
	const char *s = buf;
	if (strncmp(s, "stage:", 6) == 0) {
		s += 6;
		size_t len = strcspn(s, ":");
		if (len == 0 || len >= sizeof(t->stage) || s[len] != ':') {
			snprintf(err, err_len, "expected stage:NAME:METRIC");
			return -EINVAL;
		}
		memcpy(t->stage, s, len);
		t->stage[len] = '\0';
		s += len + 1;
	}
	int rc = parse_metric(&s, t, err, err_len);
	if (rc < 0)
		return rc;
	if (s[0] == '<')
		t->op = s[1] == '=' ? THR_LE : THR_LT;
	else if (s[0] == '>')
		t->op = s[1] == '=' ? THR_GE : THR_GT;
	else {
		snprintf(err, err_len, "expected < <= > or >= after the metric");
		return -EINVAL;
	}
	s += s[1] == '=' ? 2 : 1;
	return parse_value(s, t, err, err_len);
}

static const char *op_text(enum thr_op op)
{
	static const char *const text[] = {"<", "<=", ">", ">="};
	return text[op];
}

int thr_judge(const struct threshold *t, const struct lg_profile *p, const struct lg_result *r,
	      struct thr_verdict *v, char *err, size_t err_len)
{
	const uint64_t *counts = r->c.counts;
	const struct hist *lat = r->latency;
	double secs = r->elapsed_s;
	uint64_t accepted = r->orders_accepted;
	if (t->stage[0]) {
		unsigned k = 0;
		while (k < r->n_stages && strcmp(p->closed_loop ? "max" : p->stages[k].name, t->stage) != 0)
			k++;
		if (k == r->n_stages) {
			snprintf(err, err_len, "%s: the profile has no stage '%s'", t->text, t->stage);
			return -ENOENT;
		}
		counts = r->stages[k].c.counts;
		lat = r->stages[k].latency;
		secs = p->closed_loop ? r->elapsed_s : p->stages[k].duration_s;
		accepted = counts[LG_ACCEPTED];
	}
	uint64_t answered = 0, matching = 0;
	for (int o = 0; o < LG_OUTCOMES; o++) {
		answered += counts[o];
		matching += t->outcomes[o] ? counts[o] : 0;
	}
	double x;
	switch (t->metric) {
	case THR_PERCENTILE: x = (double)hist_percentile(lat, t->percentile); break;
	case THR_MAX_LATENCY: x = (double)hist_max(lat); break;
	case THR_MEAN: x = hist_mean(lat); break;
	case THR_ERRORS:
	case THR_STATUS:
		x = t->share ? (answered ? (double)matching / (double)answered : 0) : (double)matching;
		break;
	case THR_ACCEPTED: x = (double)accepted; break;
	case THR_ANSWERED: x = (double)answered; break;
	case THR_RPS: x = secs > 0 ? (double)answered / secs : 0; break;
	default: x = 0; break;
	}
	switch (t->op) {
	case THR_LT: v->ok = x < t->value; break;
	case THR_LE: v->ok = x <= t->value; break;
	case THR_GT: v->ok = x > t->value; break;
	case THR_GE: v->ok = x >= t->value; break;
	}
	/* A latency bound over nothing answered says nothing: it fails. */
	if (is_latency(t->metric) && hist_count(lat) == 0)
		v->ok = false;
	v->observed = x;
	const char *what = t->text;
	size_t name_len = strcspn(what, "<>");
	if (is_latency(t->metric))
		snprintf(v->detail, sizeof(v->detail), "%.*s = %.3f ms (limit %s %.3f ms)%s", (int)name_len, what,
			 x / 1e3, op_text(t->op), t->value / 1e3, hist_count(lat) ? "" : ", nothing answered");
	else if (t->share)
		snprintf(v->detail, sizeof(v->detail), "%.*s = %.4f%% (%llu of %llu answers; limit %s %.4f%%)",
			 (int)name_len, what, x * 100, (unsigned long long)matching, (unsigned long long)answered,
			 op_text(t->op), t->value * 100);
	else
		snprintf(v->detail, sizeof(v->detail), "%.*s = %.0f (limit %s %g)", (int)name_len, what, x,
			 op_text(t->op), t->value);
	return 0;
}
