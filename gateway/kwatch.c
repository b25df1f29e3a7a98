/* kwatch: whether the brokers answer, once a second. See kwatch.h. */
#include "kwatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpub.h"
#include "logline.h"

struct kwatch {
	struct kpub_prober *prober;
	struct health *health;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	bool stopping;       /* under mu */
};

static void *run(void *arg)
{
	struct kwatch *kw = arg;
	bool was_ok = true;
	pthread_mutex_lock(&kw->mu);
	while (!kw->stopping) {
		pthread_mutex_unlock(&kw->mu);
		char why[256] = "";
		bool ok = kpub_prober_ask(kw->prober, KWATCH_TIMEOUT_MS, why, sizeof(why)) == 0;
		health_set_kafka(kw->health, ok, why);
		if (ok != was_ok) {
			char line[320];
			int n = snprintf(line, sizeof(line), ok ? "the brokers answer again: ready as far as Kafka goes"
							    : "the brokers do not answer (%s): not ready", why);
			logline_write(ok ? LOG_INFO : LOG_WARN, "kafka-watch", line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
			was_ok = ok;
		}
		struct timespec due;
		clock_gettime(CLOCK_MONOTONIC, &due);
		due.tv_nsec += (long)KWATCH_INTERVAL_MS * 1000000;
		due.tv_sec += due.tv_nsec / 1000000000;
		due.tv_nsec %= 1000000000;
		pthread_mutex_lock(&kw->mu);
		while (!kw->stopping && pthread_cond_timedwait(&kw->wake, &kw->mu, &due) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&kw->mu);
	return NULL;
}

int kwatch_start(struct kwatch **out, const struct cfg *cfg, struct health *h, char *err, size_t err_len)
{
	*out = NULL;
	struct kwatch *kw = calloc(1, sizeof(*kw));
	if (!kw) {
		snprintf(err, err_len, "kafka watch: out of memory");
		return -ENOMEM;
	}
	kw->health = h;
	kw->prober = kpub_prober_new(cfg, err, err_len);
	if (!kw->prober) {
		free(kw);
		return -EINVAL;
	}
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc == 0) {
		if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
			rc = pthread_cond_init(&kw->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (rc != 0) {
		snprintf(err, err_len, "kafka watch: its condition variable: %s", strerror(rc));
		goto fail_prober;
	}
	if ((rc = pthread_mutex_init(&kw->mu, NULL)) != 0) {
		snprintf(err, err_len, "kafka watch: its mutex: %s", strerror(rc));
		goto fail_cond;
	}
	if ((rc = pthread_create(&kw->thread, NULL, run, kw)) != 0) {
		snprintf(err, err_len, "kafka watch: %s", strerror(rc));
		goto fail_mutex;
	}
	*out = kw;
	return 0;
fail_mutex:
	pthread_mutex_destroy(&kw->mu);
fail_cond:
	pthread_cond_destroy(&kw->wake);
fail_prober:
	kpub_prober_free(kw->prober);
	free(kw);
	return -rc;
}

void kwatch_stop(struct kwatch *kw)
{
	if (!kw)
		return;
	pthread_mutex_lock(&kw->mu);
	kw->stopping = true;
	pthread_cond_signal(&kw->wake);
	pthread_mutex_unlock(&kw->mu);
	pthread_join(kw->thread, NULL);
	pthread_cond_destroy(&kw->wake);
	pthread_mutex_destroy(&kw->mu);
	kpub_prober_free(kw->prober);
	free(kw);
}
