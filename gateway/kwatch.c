/* kwatch: whether the brokers answer, once a second. See kwatch.h. */
#include "kwatch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgthread.h"
#include "kpub.h"
#include "logline.h"

struct kwatch {
	struct kpub_prober *prober;
	struct health *health;
	struct bgthread bg;
};

static void *run(void *arg)
{
	struct kwatch *kw = arg;
	bool was_ok = true;
	do {
		char why[256] = "";
		bool ok = kpub_prober_ask(kw->prober, KWATCH_TIMEOUT_MS, why, sizeof(why)) == 0;
		health_set_kafka(kw->health, ok, why);
		if (ok != was_ok) {
			if (ok)
				logline_printf(LOG_INFO, "kafka-watch", "the brokers answer again: ready as far as Kafka goes");
			else
				logline_printf(LOG_WARN, "kafka-watch", "the brokers do not answer (%s): not ready", why);
			was_ok = ok;
		}
	} while (bgthread_wait(&kw->bg, KWATCH_INTERVAL_MS));
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
	int rc = kw->prober ? bgthread_start(&kw->bg, "kafka watch", run, kw, err, err_len) : -EINVAL;
	if (rc < 0) {
		kpub_prober_free(kw->prober);
		free(kw);
		return rc;
	}
	*out = kw;
	return 0;
}

void kwatch_reconfigure(struct kwatch *kw, const struct cfg *before, const struct cfg *cfg)
{
	char err[256];
	if (!kw || strcmp(before->kafka_properties, cfg->kafka_properties) == 0)
		return;
	if (kpub_prober_set_credentials(kw->prober, cfg, err, sizeof(err)) < 0)
		logline_printf(LOG_WARN, "kafka-watch", "new SASL credentials not taken: %s", err);
}

void kwatch_stop(struct kwatch *kw)
{
	if (!kw)
		return;
	bgthread_stop(&kw->bg);
	kpub_prober_free(kw->prober);
	free(kw);
}
