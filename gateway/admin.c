/* admin: authenticated admin endpoints. See admin.h. */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../core/oid.h"
#include "../core/order.h"
#include "admission.h"
#include "conn.h"
#include "flow.h"
#include "health.h"
#include "lease.h"
#include "metrics.h"
#include "resv.h"
#include "../core/version.h"
#include "worker.h"

static const char metrics_path[] = "/admin/v1/metrics";
static const char prefix[] = "/admin/v1/orders/";
static const char suffix[] = "/release";

/* Compares without an early exit, so the time taken does not tell an
 * attacker how much of a guess was right. */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = (unsigned char)(alen != blen);
	for (size_t i = 0; i < alen; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
	return diff == 0;
}

static void return_from_bucket(struct worker *w, struct req *r);
static void serve_metrics(struct worker *w, struct req *r, const struct http_request *hr);

/* The path without its query (a scraper may add one). */
static bool path_is(const struct http_request *hr, const char *path, size_t len)
{
	const char *q = memchr(hr->path, '?', hr->path_len);
	size_t n = q ? (size_t)(q - hr->path) : hr->path_len;
	return n == len && memcmp(hr->path, path, len) == 0;
}

static bool authorized(const struct worker *w, const struct http_request *hr)
{
	const char *token = w->cfg->admin_token;
	if (!hr->authorization || hr->authorization_len < 7 ||
	    strncasecmp(hr->authorization, "Bearer ", 7) != 0)
		return false;
	return same_secret(hr->authorization + 7, hr->authorization_len - 7, token, strlen(token));
}

void admin_handle(struct worker *w, struct req *r, const struct http_request *hr, const char *body)
{
	if (!w->cfg->admin_token[0]) {
		flow_answer(w, r, 404, NULL, "{\"status\":\"not_found\"}");
		return;
	}
	/* An address that sent wrong tokens waits before its next is judged. */
	const struct netaddr *from = r->conn ? conn_client(r->conn) : NULL;
	uint32_t wait_s = from ? adm_admin_wait(w, from) : 0;
	if (wait_s) {
		char retry[48];
		snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", wait_s);
		w->stats.refused[REF_ADMIN_TOKENS]++;
		flow_answer(w, r, 429, retry, "{\"status\":\"too_many_requests\",\"reason\":\"admin_tokens\"}");
		return;
	}
	if (!authorized(w, hr)) {
		if (from)
			adm_admin_failed(w, from);
		flow_answer(w, r, 401, "WWW-Authenticate: Bearer\r\n", "{\"status\":\"unauthorized\"}");
		return;
	}
	if (path_is(hr, metrics_path, sizeof(metrics_path) - 1)) {
		serve_metrics(w, r, hr);
		return;
	}
	size_t plen = sizeof(prefix) - 1, slen = sizeof(suffix) - 1;
	const char *id = hr->path + plen;
	if (hr->path_len != plen + OID_TEXT_LEN + slen || memcmp(hr->path, prefix, plen) != 0 ||
	    memcmp(id + OID_TEXT_LEN, suffix, slen) != 0) {
		flow_answer(w, r, 404, NULL, "{\"status\":\"not_found\"}");
		return;
	}
	if (hr->method != HTTP_METHOD_POST) {
		flow_answer(w, r, 405, "Allow: POST\r\n", "{\"status\":\"method_not_allowed\",\"allow\":\"POST\"}");
		return;
	}
	struct order_error err;
	if (oid_parse(id, OID_TEXT_LEN, &r->order_id) < 0) {
		flow_answer(w, r, 400, NULL,
			    "{\"status\":\"invalid\",\"field\":\"order_id\",\"error\":\"must be 16 hex digits\"}");
		return;
	}
	if (order_parse_sku_body(body, hr->content_length, r->order.sku, &err) < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "{\"status\":\"invalid\",\"field\":\"%s\",\"error\":\"%s %s\"}",
			 err.field, err.field, err.why);
		flow_answer(w, r, 400, NULL, msg);
		return;
	}
	r->order.sku_len = (uint8_t)strlen(r->order.sku);
	/* The order's bucket is its user's home, and only the order knows the
	 * user: the buckets are asked in turn until one has it. */
	r->bucket = 0;
	return_from_bucket(w, r);
}

/* The process_* numbers, from /proc at the scrape (seconds apart: a
 * directory walk and three small files cost nothing there). */
static void read_process(struct metrics_instance *p)
{
	memset(p, 0, sizeof(*p));
	/* ready and lease_held: the caller's */
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		p->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
				 ru.ru_stime.tv_usec / 1e6;
	long page = sysconf(_SC_PAGESIZE), hz = sysconf(_SC_CLK_TCK);
	unsigned long long vm = 0, rss = 0, start_ticks = 0, btime = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%llu %llu", &vm, &rss) == 2) {
			p->virtual_bytes = vm * (uint64_t)page;
			p->resident_bytes = rss * (uint64_t)page;
		}
		fclose(f);
	}
	char line[1024];
	f = fopen("/proc/self/stat", "r");
	if (f) {
		const char *at = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
		/* starttime is field 22; after ") " comes field 3 */
		for (int field = 2; at && *at && field < 22; at++)
			if (*at == ' ')
				field++;
		if (at)
			start_ticks = strtoull(at, NULL, 10);
		fclose(f);
	}
	f = fopen("/proc/stat", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	if (f)
		fclose(f);
	if (btime && hz > 0)
		p->start_time_seconds = (double)btime + (double)start_ticks / (double)hz;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; d && (e = readdir(d));)
		p->open_fds += e->d_name[0] != '.';
	if (d) {
		closedir(d);
		p->open_fds--; /* the directory's own */
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = rl.rlim_cur;
}

/* Scrapes are rare (seconds apart) and the page is larger than any
 * order answer, so it gets its own buffer for the one request. */
static void serve_metrics(struct worker *w, struct req *r, const struct http_request *hr)
{
	if (hr->method != HTTP_METHOD_GET && hr->method != HTTP_METHOD_HEAD) {
		flow_answer(w, r, 405, "Allow: GET, HEAD\r\n",
			    "{\"status\":\"method_not_allowed\",\"allow\":\"GET, HEAD\"}");
		return;
	}
	char *text = malloc(METRICS_TEXT_MAX);
	if (!text) {
		flow_answer(w, r, 503, NULL, "{\"status\":\"unavailable\",\"reason\":\"memory\"}");
		return;
	}
	worker_publish(w); /* this worker's own numbers as of now */
	struct metrics_instance proc;
	read_process(&proc);
	char health[HEALTH_BODY_MAX];
	health_ready(w->shared->health, w->now_mono_ms, &proc.ready, health, sizeof(health));
	proc.lease_held = lease_allows(w->shared->lease, w->now_mono_ms, oid_gen_next_ms(&w->oids, w->now_ms));
	int n = metrics_render(w->metrics, text, METRICS_TEXT_MAX, FLASHGATE_VERSION, flashgate_commit);
	int m = n < 0 ? n : metrics_render_instance(&proc, text + n, METRICS_TEXT_MAX - (size_t)n);
	if (m < 0)
		n = m;
	else
		n += m;
	if (n < 0) {
		worker_warn(w, "metrics: the page outgrew its %d-byte buffer", METRICS_TEXT_MAX);
		free(text);
		flow_answer(w, r, 500, NULL, "{\"status\":\"error\",\"error\":\"metrics page too large\"}");
		return;
	}
	flow_answer_large(w, r, "text/plain; version=0.0.4; charset=utf-8", text, (size_t)n);
}

static void return_from_bucket(struct worker *w, struct req *r)
{
	int rc = resv_return(w, r);
	if (rc < 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "{\"status\":\"unavailable\",\"reason\":\"%s\"}",
			 rc == -ENOTCONN ? "redis" : rc == -EAGAIN ? "replication" : "overloaded");
		flow_answer(w, r, 503, NULL, msg);
	}
}

void admin_on_return(struct worker *w, struct req *r, const char *res, size_t len)
{
	char body[200], id[OID_TEXT_LEN + 1];
	oid_format(r->order_id, id);
	if (len > 9 && memcmp(res, "returned:", 9) == 0) {
		/* "returned:QTY:USER": the quantity is digits, the user the rest,
		 * whatever it holds. Anything else is not the script's answer. */
		const char *q = res + 9, *end = res + len, *colon = memchr(q, ':', len - 9);
		size_t qlen = colon ? (size_t)(colon - q) : 0, ulen = colon ? (size_t)(end - colon - 1) : 0;
		if (!qlen || qlen > 10 || strspn(q, "0123456789") < qlen ||
		    !order_valid_ident(colon + 1, ulen)) {
			worker_warn(w, "redis: unexpected return result '%.*s'", (int)(len > 80 ? 80 : len), res);
			flow_answer(w, r, 503, NULL, "{\"status\":\"unavailable\",\"reason\":\"redis\"}");
			return;
		}
		snprintf(body, sizeof(body),
			 "{\"status\":\"returned\",\"order_id\":\"%s\",\"user_id\":\"%.*s\",\"qty\":%.*s}", id,
			 (int)ulen, colon + 1, (int)qlen, q);
		flow_answer(w, r, 200, NULL, body);
	} else if (len == 7 && memcmp(res, "already", 7) == 0) {
		snprintf(body, sizeof(body), "{\"status\":\"already_returned\",\"order_id\":\"%s\"}", id);
		flow_answer(w, r, 200, NULL, body);
	} else if (len == 7 && memcmp(res, "pending", 7) == 0) {
		snprintf(body, sizeof(body), "{\"status\":\"not_settled\",\"order_id\":\"%s\"}", id);
		flow_answer(w, r, 409, NULL, body);
	} else if (r->bucket + 1u < w->cfg->redis_buckets) {
		r->bucket++;
		return_from_bucket(w, r);
	} else {
		snprintf(body, sizeof(body), "{\"status\":\"unknown_order\",\"order_id\":\"%s\"}", id);
		flow_answer(w, r, 404, NULL, body);
	}
}
