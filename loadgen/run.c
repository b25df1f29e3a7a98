/*
 * run: starts one engine thread per profile thread, gives them one start
 * instant (after all are connected, or at T0), prints the live line from
 * the finished seconds while they run, and merges their results. See run.h.
 */
#include "run.h"

#include <openssl/rand.h>

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

static volatile sig_atomic_t stop_requested;

void lg_request_stop(void)
{
	stop_requested = 1;
}

/* --- the calling thread: live line */

/* One final second as a JSON line on --live-json's descriptor, written
 * whole in one write() so a reader on a pipe never sees half a line. */
static void live_json(int fd, const struct lg_second *s, size_t sec, const char *stage, int64_t started_unix_ms)
{
	char line[2048];
	int n = snprintf(line, sizeof(line),
			 "{\"t\": %zu, \"unix_ms\": %lld, \"stage\": \"%s\", \"offered\": %llu, \"sent\": %llu, "
			 "\"answered\": %llu, \"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, "
			 "\"p999_us\": %llu, \"max_us\": %llu, \"counts\": {",
			 sec, (long long)(started_unix_ms + (int64_t)sec * 1000), stage, (unsigned long long)s->offered,
			 (unsigned long long)s->sent, (unsigned long long)s->completed, (unsigned long long)s->p50,
			 (unsigned long long)s->p90, (unsigned long long)s->p99, (unsigned long long)s->p999,
			 (unsigned long long)s->max);
	for (int k = 0; k < LG_OUTCOMES && n > 0 && (size_t)n < sizeof(line); k++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s\"%s\": %llu", k ? ", " : "",
			      lg_outcome_names[k], (unsigned long long)s->counts[k]);
	if (n > 0 && (size_t)n + 3 < sizeof(line)) {
		memcpy(line + n, "}}\n", 3);
		n += 3;
		/* A dashboard that went away costs the run nothing: the write
		 * fails (SIGPIPE is ignored) and the run goes on. */
		if (write(fd, line, (size_t)n) < 0)
			return;
	}
}

static void live_line(const struct lg_profile *p, const struct lg_target *t, struct shared *sh,
		      const struct lg_result *r, size_t *shown, uint64_t totals[LG_OUTCOMES])
{
	size_t final = ser_finalize(sh->series);
	struct lg_second s;
	while (*shown < final && ser_get(sh->series, *shown, &s) == 0) {
		for (int k = 0; k < LG_OUTCOMES; k++)
			totals[k] += s.counts[k];
		(*shown)++;
		const char *stage = p->closed_loop ? "max" :
			p->stages[sched_stage_at(&sh->sc, (double)(*shown - 1) + 0.5)].name;
		if (t->live_fd >= 0)
			live_json(t->live_fd, &s, *shown - 1, stage, r->started_unix_ms);
		if (t->quiet)
			continue;
		uint64_t errors = totals[LG_CONN_ERROR] + totals[LG_TIMEOUT] + totals[LG_UNAVAILABLE] +
				  totals[LG_OTHER_STATUS] + totals[LG_MALFORMED_WRONG];
		fprintf(stderr,
			"%s[%5zus] %-10s offered %7llu/s achieved %7llu/s p99 %8.2f ms | accepted %llu "
			"sold_out %llu errors %llu%s",
			t->live_tty ? "\r\033[K" : "", *shown, stage, (unsigned long long)s.offered,
			(unsigned long long)s.completed, (double)s.p99 / 1000.0,
			(unsigned long long)(totals[LG_ACCEPTED]),
			(unsigned long long)totals[LG_SOLD_OUT], (unsigned long long)errors,
			t->live_tty ? "" : "\n");
	}
}

void lg_target_text(const struct lg_target *t, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < t->n && at < len; i++) {
		int n = snprintf(buf + at, len - at, "%s%s:%u", i ? ", " : "", t->ep[i].host, t->ep[i].port);
		if (n < 0)
			break;
		at += (size_t)n;
	}
}

static int resolve_target(struct shared *sh, const struct lg_target *t, char *err, size_t err_len)
{
	for (unsigned i = 0; i < t->n; i++) {
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
		char port[8];
		snprintf(port, sizeof(port), "%u", t->ep[i].port);
		int gai = getaddrinfo(t->ep[i].host, port, &hints, &ai);
		if (gai != 0) {
			snprintf(err, err_len, "cannot resolve %s: %s", t->ep[i].host, gai_strerror(gai));
			return -EINVAL;
		}
		memcpy(&sh->addr[i], ai->ai_addr, ai->ai_addrlen);
		sh->addr_len[i] = ai->ai_addrlen;
		freeaddrinfo(ai);
		mix_host_init(&sh->host[i], t->ep[i].host, t->ep[i].port);
	}
	return 0;
}

static double *zipf_cdf(const struct lg_profile *p)
{
	double *cdf = calloc(p->skus, sizeof(double));
	if (!cdf)
		return NULL;
	double sum = 0, acc = 0;
	for (unsigned k = 0; k < p->skus; k++)
		sum += 1.0 / pow((double)(k + 1), p->zipf);
	for (unsigned k = 0; k < p->skus; k++) {
		acc += 1.0 / pow((double)(k + 1), p->zipf) / sum;
		cdf[k] = acc;
	}
	cdf[p->skus - 1] = 1.0;
	return cdf;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lg_run(const struct lg_profile *p, const struct lg_target *t, struct lg_result *r, char *err,
	   size_t err_len)
{
	struct shared sh = {.p = p, .t = t};
	struct jwt_key key;
	bool have_key = false;
	unsigned nt = p->threads, started = 0;
	struct engine *es = NULL;
	pthread_t *tids = NULL;
	bool sync_ok = false;
	int rc = lg_result_init(r, p->closed_loop ? 1 : p->n_stages);
	if (rc < 0)
		goto nomem;
	if (prof_has_bots(p) && !*p->sign_key) {
		snprintf(err, err_len, "%s: [bots] need the run's sign key (--sign-key or [run] sign_key): their "
				       "tokens are made from it", p->source);
		rc = -EINVAL;
		goto out;
	}
	if (*p->sign_key) {
		char why[600];
		if ((rc = jwt_signer_load(&key, p->sign_key, why, sizeof(why))) < 0) {
			snprintf(err, err_len, "sign key: %s", why);
			goto out;
		}
		have_key = true;
		sh.sign_key = &key;
		/* The forged bots' key: the real kid and alg, a secret of its own. */
		sh.forged_key = (struct jwt_key){.alg = JWT_HS256, .secret_len = 32};
		memcpy(sh.forged_key.kid, key.kid, sizeof(key.kid));
		if (RAND_bytes(sh.forged_key.secret, 32) != 1) {
			snprintf(err, err_len, "cannot make the forged bots' key: no randomness");
			rc = -EIO;
			goto out;
		}
	}
	sched_init(&sh.sc, p);
	snprintf(sh.run_tag, sizeof(sh.run_tag), "%llx",
		 (unsigned long long)((uint64_t)wall_ms() * 1000003ULL ^ (uint64_t)getpid()) & 0xffffffffffULL);
	if ((rc = resolve_target(&sh, t, err, err_len)) < 0)
		goto out;
	sh.zipf_cdf = zipf_cdf(p);
	sh.series = ser_new(nt);
	es = calloc(nt, sizeof(*es));
	tids = calloc(nt, sizeof(*tids));
	if (!sh.zipf_cdf || !sh.series || !es || !tids)
		goto nomem;
	for (unsigned i = 0; i < nt; i++) {
		if ((rc = engine_init(&es[i], &sh, i, nt)) < 0) {
			snprintf(err, err_len, "thread %u: %s", i, rc == -ENOMEM ? "out of memory" : strerror(-rc));
			goto out;
		}
	}
	if (pthread_mutex_init(&sh.mu, NULL) != 0 || pthread_cond_init(&sh.cond, NULL) != 0)
		goto nomem;
	sync_ok = true;
	for (; started < nt; started++) {
		if ((rc = -pthread_create(&tids[started], NULL, engine_thread, &es[started])) < 0) {
			snprintf(err, err_len, "cannot start thread: %s", strerror(-rc));
			break;
		}
	}
	pthread_mutex_lock(&sh.mu);
	while (sh.n_connected < started)
		pthread_cond_wait(&sh.cond, &sh.mu);
	for (unsigned i = 0; i < started && rc >= 0; i++) {
		if (es[i].rc < 0) {
			rc = es[i].rc;
			snprintf(err, err_len, "thread %u: io_uring: %s", i, strerror(-rc));
		}
	}
	if (rc < 0) {
		sh.abort = true;
	} else if (sh.connected_total == 0) {
		char where[512];
		lg_target_text(t, where, sizeof(where));
		snprintf(err, err_len, "cannot connect to %s", where);
		rc = -ECONNREFUSED;
		sh.abort = true;
	} else if (p->t0_unix_ms) {
		int64_t ahead_ms = p->t0_unix_ms - wall_ms();
		if (ahead_ms < -1000) {
			snprintf(err, err_len, "T0 is %.1f s in the past", (double)-ahead_ms / 1000);
			rc = -ETIME;
			sh.abort = true;
		} else {
			if (!t->quiet)
				fprintf(stderr, "flashload: waiting %.1f s for T0\n", (double)ahead_ms / 1000);
			sh.start_ns = mono_ns() + ahead_ms * 1000000LL;
			r->started_unix_ms = p->t0_unix_ms;
		}
	} else {
		sh.start_ns = mono_ns();
		r->started_unix_ms = wall_ms();
	}
	sh.go = true;
	pthread_cond_broadcast(&sh.cond);
	pthread_mutex_unlock(&sh.mu);
	if (rc < 0)
		goto out;

	size_t shown = 0;
	uint64_t totals[LG_OUTCOMES] = {0};
	while (atomic_load(&sh.finished) < nt) {
		struct timespec tick = {.tv_sec = 0, .tv_nsec = 100000000};
		nanosleep(&tick, NULL);
		if (stop_requested && !r->interrupted) {
			r->interrupted = true;
			atomic_store(&sh.stop, true);
			if (!t->quiet)
				fprintf(stderr, "\nflashload: interrupted: waiting up to %u ms for the answers due\n",
					p->timeout_ms);
		}
		live_line(p, t, &sh, r, &shown, totals);
	}
	int64_t end = mono_ns();
	live_line(p, t, &sh, r, &shown, totals);
	if (!t->quiet && t->live_tty)
		fputc('\n', stderr);
	for (unsigned i = 0; i < nt; i++) {
		if (es[i].rc < 0) {
			rc = es[i].rc;
			snprintf(err, err_len, "thread %u: %s", i, strerror(-rc));
			goto out;
		}
		if (lg_result_merge(r, &es[i].r) < 0)
			goto nomem;
		r->tokens_signed += es[i].tokens.signed_n;
		r->sign_ns += es[i].tokens.sign_ns;
	}
	for (unsigned k = 0; k < r->n_stages && !p->closed_loop; k++)
		r->stages[k].scheduled = sched_count_between(&sh.sc, sh.sc.start_s[k], sh.sc.start_s[k + 1]);
	r->scheduled = p->closed_loop ? (double)r->orders : sched_total(&sh.sc);
	if (p->max_requests && r->scheduled > (double)p->max_requests)
		r->scheduled = (double)p->max_requests;
	r->elapsed_s = (double)(end - sh.start_ns) / 1e9;
	r->schedule_s = p->closed_loop ? r->elapsed_s : prof_duration_s(p);
	/* flashload's own lateness, or requests left unsent while connections
	 * were free, mean this process fell behind; a wait for a busy connection
	 * is the server's (or too few --connections) and is in the latency. */
	r->generator_limited = !p->closed_loop &&
			       ((r->unsent > 0 && !r->conn_limited) ||
				hist_percentile(r->gen_lag, 99) > LG_GENERATOR_LAG_US);
	ser_finalize(sh.series);
	r->seconds = ser_take(sh.series, &r->n_seconds);
	rc = 0;
	goto out;
nomem:
	snprintf(err, err_len, "out of memory");
	rc = -ENOMEM;
out:
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (sync_ok) {
		pthread_mutex_destroy(&sh.mu);
		pthread_cond_destroy(&sh.cond);
	}
	if (es)
		for (unsigned i = 0; i < nt; i++)
			engine_free(&es[i]);
	free(es);
	free(tids);
	free((void *)sh.zipf_cdf);
	ser_free(sh.series);
	if (have_key)
		jwt_key_free(&key);
	return rc;
}
