/* autorec: periodic reconcile passes inside the gateway. See autorec.h. */
#include "autorec.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logline.h"
#include "reconcile.h"

/* The longest wait after failed passes, unless the interval is longer. */
#define BACKOFF_MAX_MS 60000

struct autorec {
	const struct cfg *cfg; /* &own: the thread's copy, changed only between passes */
	struct cfg own;
	struct cfg next;       /* under mu: a reload's, taken before the next pass */
	bool has_next;         /* under mu */
	struct metrics *metrics;
	struct reconcile_opts opts;
	char owner[128];
	struct metrics_reconcile counts; /* this thread's; published after each pass */
	uint32_t wait_ms;                /* until the next pass: the interval, longer after failures */
	bool failing;                    /* the last pass failed */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	bool stopping;       /* under mu */
	bool in_pass;        /* under mu */
	bool cut_short;      /* atomic: a pass's topic scan gives up (reconcile_opts.stop) */
};

/* Each line of a pass's report as one log line from "reconcile". */
static void log_report(const char *report, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(report, '\n', len);
		size_t n = nl ? (size_t)(nl - report) : len;
		logline_write(LOG_INFO, "reconcile", report, n);
		report += nl ? n + 1 : n;
		len -= nl ? n + 1 : n;
	}
}

static void one_pass(struct autorec *a)
{
	struct reconcile_tally t = {0};
	char *report = NULL;
	size_t report_len = 0;
	/* The report goes to memory first, to be logged line by line; without
	 * the memory, straight to stderr. */
	FILE *out = open_memstream(&report, &report_len);
	int rc = reconcile_run(a->cfg, &a->opts, out ? out : stderr, &t);
	if (out && fclose(out) == 0)
		log_report(report, report_len);
	free(report);
	if (rc == -EBUSY)
		return; /* another instance's pass, or its rest: this interval is done */
	a->counts.passes++;
	/* What fails a pass (Redis or the broker out of reach) fails the next
	 * one too: after the first failure each wait doubles, up to a minute
	 * (or the interval, if longer), and the log gets a line per pass. */
	uint32_t interval = a->cfg->reconcile_interval_ms;
	uint32_t cap = interval > BACKOFF_MAX_MS ? interval : BACKOFF_MAX_MS;
	if (rc < 0 && a->failing)
		a->wait_ms = a->wait_ms > cap / 2 ? cap : a->wait_ms * 2;
	else
		a->wait_ms = interval;
	a->failing = rc < 0;
	if (rc < 0) {
		a->counts.passes_failed++;
		char why[256];
		int n = snprintf(why, sizeof(why), "pass failed: %s; the next one in %u ms\n",
				 rc == -EAGAIN ? "some old entries are still open" : strerror(-rc), a->wait_ms);
		log_report(why, n < (int)sizeof(why) ? (size_t)n : sizeof(why) - 1);
	}
	a->counts.confirmed += t.confirmed;
	a->counts.published += t.published;
	a->counts.released += t.released;
	a->counts.transfers += t.transfers;
	a->counts.transfer_units += t.transfer_units;
	metrics_publish_reconcile(a->metrics, &a->counts);
}

static void *run(void *arg)
{
	struct autorec *a = arg;
	pthread_mutex_lock(&a->mu);
	while (!a->stopping) {
		struct timespec due;
		clock_gettime(CLOCK_MONOTONIC, &due);
		due.tv_sec += a->wait_ms / 1000;
		due.tv_nsec += (long)(a->wait_ms % 1000) * 1000000;
		if (due.tv_nsec >= 1000000000) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000;
		}
		while (!a->stopping && pthread_cond_timedwait(&a->wake, &a->mu, &due) != ETIMEDOUT)
			;
		if (a->stopping)
			break;
		if (a->has_next) { /* a new Redis password, say */
			a->own = a->next;
			a->has_next = false;
		}
		a->in_pass = true;
		pthread_mutex_unlock(&a->mu);
		one_pass(a);
		pthread_mutex_lock(&a->mu);
		a->in_pass = false;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int autorec_start(struct autorec **out, const struct cfg *cfg, struct metrics *m, char *err, size_t err_len)
{
	*out = NULL;
	if (cfg->reconcile_interval_ms == 0)
		return 0;
	struct autorec *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, err_len, "reconcile thread: out of memory");
		return -ENOMEM;
	}
	a->own = *cfg;
	a->cfg = &a->own;
	a->metrics = m;
	a->wait_ms = cfg->reconcile_interval_ms;
	char role[32];
	snprintf(role, sizeof(role), "flashgate-node-%u", cfg->node_id);
	reconcile_owner(a->owner, sizeof(a->owner), role);
	a->opts = (struct reconcile_opts){
		.release = strcmp(cfg->reconcile_policy, "release") == 0,
		.min_age_ms = -1,
		.quiet = true,
		.owner = a->owner,
		.lock_wait_ms = 0,
		.lock_rest_ms = cfg->reconcile_interval_ms,
		.stop = &a->cut_short,
	};
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc == 0) {
		if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
			rc = pthread_cond_init(&a->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (rc != 0) {
		snprintf(err, err_len, "reconcile thread: its condition variable: %s", strerror(rc));
		free(a);
		return -rc;
	}
	if ((rc = pthread_mutex_init(&a->mu, NULL)) != 0) {
		snprintf(err, err_len, "reconcile thread: its mutex: %s", strerror(rc));
		goto fail_cond;
	}
	if ((rc = pthread_create(&a->thread, NULL, run, a)) != 0) {
		snprintf(err, err_len, "reconcile thread: %s", strerror(rc));
		goto fail_mutex;
	}
	*out = a;
	return 0;
fail_mutex:
	pthread_mutex_destroy(&a->mu);
fail_cond:
	pthread_cond_destroy(&a->wake);
	free(a);
	return -rc;
}

void autorec_reconfigure(struct autorec *a, const struct cfg *cfg)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->next = *cfg;
	a->has_next = true;
	pthread_mutex_unlock(&a->mu);
}

void autorec_stop(struct autorec *a)
{
	if (!a)
		return;
	/* A scan of the topic can take minutes (a broker that does not answer):
	 * it gives up. What the pass has claimed and published it finishes:
	 * the flush is bounded by the delivery timeout, and what it could not
	 * finish the next pass, of any instance, finds. */
	__atomic_store_n(&a->cut_short, true, __ATOMIC_RELAXED);
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	if (a->in_pass)
		logline_printf(LOG_INFO, "reconcile", "finishing the reconcile pass in progress");
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
