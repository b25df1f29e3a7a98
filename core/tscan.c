/* tscan: time-bounded topic scan. See tscan.h. */
#include "tscan.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* librdkafka's calls wait their whole timeout for a broker that is down;
 * asked a second at a time, the scan sees its deadline, *stop and ticks. */
#define STEP_MS 1000

struct watch {
	time_t deadline;
	const struct tscan_ctl *ctl;
	int64_t ticked_ms; /* monotonic */
	int why;           /* the tick's refusal, once it refused */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopped(const struct tscan_ctl *ctl)
{
	return ctl && ctl->stop && __atomic_load_n(ctl->stop, __ATOMIC_RELAXED);
}

/* Whether to stop asking: -ETIMEDOUT past the deadline, -ECANCELED when
 * told to stop, the tick's own refusal, 0 to ask again. */
static int over(struct watch *wt)
{
	const struct tscan_ctl *ctl = wt->ctl;
	if (stopped(ctl))
		return -ECANCELED;
	if (ctl && ctl->tick && !wt->why && mono_ms() - wt->ticked_ms >= STEP_MS) {
		wt->ticked_ms = mono_ms();
		int rc = ctl->tick(ctl->arg);
		if (rc < 0)
			wt->why = rc;
	}
	if (wt->why)
		return wt->why;
	return time(NULL) > wt->deadline ? -ETIMEDOUT : 0;
}

static bool again(rd_kafka_resp_err_t kerr, struct watch *wt)
{
	return kerr == RD_KAFKA_RESP_ERR__TIMED_OUT && over(wt) == 0;
}

static const char *why_text(int why)
{
	return why == -ECANCELED ? "stopped" : why == -ETIMEDOUT ? "timed out" : "given up by the caller";
}

/* After a call that waited: -ECANCELED or the tick's refusal if the scan
 * was stopped or given up meanwhile (err says during what), else 0. */
static int given_up(const struct watch *wt, const char *during, char *err, size_t err_len)
{
	int why = wt->why ? wt->why : stopped(wt->ctl) ? -ECANCELED : 0;
	if (why)
		snprintf(err, err_len, "%s: %s", during, why_text(why));
	return why;
}

long long tscan_read(const struct kprops *kafka, const char *topic, int64_t since_ms, int timeout_s,
		     const struct tscan_ctl *ctl, tscan_fn fn, void *ctx, char *err, size_t err_len)
{
	const char *brokers = kafka->brokers;
	struct watch wt = {.deadline = time(NULL) + timeout_s, .ctl = ctl, .ticked_ms = mono_ms()};
	char kerrstr[512];
	long long rc = 0, records = 0;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (kprops_apply(kafka, conf, err, err_len) < 0) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	const char *kv[][2] = {
		{"group.id", "flashgate-scan"}, /* required by the API; never joined */
		{"enable.auto.commit", "false"},
		{"enable.partition.eof", "true"},
	};
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], kerrstr, sizeof(kerrstr)) != RD_KAFKA_CONF_OK) {
			snprintf(err, err_len, "kafka %s: %s", kv[i][0], kerrstr);
			rd_kafka_conf_destroy(conf);
			return -EINVAL;
		}
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerrstr, sizeof(kerrstr));
	if (!rk) {
		snprintf(err, err_len, "kafka consumer: %s", kerrstr);
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *list = NULL;
	int64_t *high = NULL;
	bool *done = NULL;
	rd_kafka_resp_err_t kerr;
	do
		kerr = rd_kafka_metadata(rk, 0, rkt, &md, STEP_MS);
	while (again(kerr, &wt));
	if (kerr && (rc = given_up(&wt, "kafka metadata", err, err_len)) < 0)
		goto out;
	if (kerr || md->topic_cnt != 1 || md->topics[0].err) {
		snprintf(err, err_len, "kafka metadata for topic %s at %s: %s", topic, brokers,
			 rd_kafka_err2str(kerr ? kerr : md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN));
		rc = -EIO;
		goto out;
	}
	int parts = md->topics[0].partition_cnt;
	list = rd_kafka_topic_partition_list_new(parts);
	high = calloc((size_t)parts, sizeof(*high));
	done = calloc((size_t)parts, sizeof(*done));
	if (!list || !high || !done) {
		snprintf(err, err_len, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (int p = 0; p < parts; p++) {
		int64_t lo;
		do
			kerr = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &high[p], STEP_MS);
		while (again(kerr, &wt));
		if (kerr && (rc = given_up(&wt, "kafka watermarks", err, err_len)) < 0)
			goto out;
		if (kerr) {
			snprintf(err, err_len, "watermarks of %s/%d: %s", topic, p, rd_kafka_err2str(kerr));
			rc = -EIO;
			goto out;
		}
		rd_kafka_topic_partition_list_add(list, topic, p)->offset = since_ms;
	}
	/* Start where the wanted records start, not at the topic's beginning. */
	do
		kerr = rd_kafka_offsets_for_times(rk, list, STEP_MS);
	while (again(kerr, &wt));
	if (kerr && (rc = given_up(&wt, "kafka offsets for a time", err, err_len)) < 0)
		goto out;
	if (kerr) {
		snprintf(err, err_len, "offsets for time %lld: %s", (long long)since_ms, rd_kafka_err2str(kerr));
		rc = -EIO;
		goto out;
	}
	int remaining = 0;
	for (int i = 0; i < list->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &list->elems[i];
		if (tp->offset < 0 || tp->offset >= high[tp->partition])
			done[tp->partition] = true; /* nothing since then */
		else
			remaining++;
	}
	kerr = rd_kafka_assign(rk, list);
	if (kerr) {
		snprintf(err, err_len, "assign: %s", rd_kafka_err2str(kerr));
		rc = -EIO;
		goto out;
	}
	while (remaining > 0) {
		int why = over(&wt);
		if (why < 0) {
			snprintf(err, err_len, "reading %s %s with %d partitions unread", topic,
				 why_text(why), remaining);
			rc = why;
			break;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
		if (!m)
			continue;
		int p = m->partition;
		if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* Consumer errors are reports (a broker connection dropped);
			 * librdkafka retries, and the deadline bounds the wait. */
			rd_kafka_message_destroy(m);
			continue;
		}
		if (!m->err && p >= 0 && p < parts && !done[p] && m->offset < high[p]) {
			records++;
			int cb = fn(ctx, m->payload, m->len);
			if (cb < 0) {
				snprintf(err, err_len, "record callback failed");
				rd_kafka_message_destroy(m);
				rc = cb;
				break;
			}
		}
		if (p >= 0 && p < parts && !done[p] &&
		    (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || m->offset + 1 >= high[p])) {
			done[p] = true;
			remaining--;
		}
		rd_kafka_message_destroy(m);
	}
out:
	if (list)
		rd_kafka_topic_partition_list_destroy(list);
	free(high);
	free(done);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return rc < 0 ? rc : records;
}
