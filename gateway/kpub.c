/* kpub: librdkafka producer bridged into the ring. See kpub.h. */
#include "kpub.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/kprops.h"
#include "flow.h"
#include "worker.h"

struct kpub {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	rd_kafka_queue_t *mainq;
	int pipe_rd, pipe_wr;
	bool closing; /* reports now only count what is left */
	char wake_buf[64];
	int64_t last_error_log_ms;
	/* For health: records produced and not yet reported, since when the
	 * count went above 0, and the last report (and whether it failed). */
	unsigned in_flight;
	int64_t busy_since_ms, last_report_ms;
	bool last_failed;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	struct worker *w = opaque;
	struct req *req = m->_private;
	struct kpub *k = w->kpub;
	if (k->closing)
		return; /* past the drain deadline: the ledger keeps the order for reconcile */
	k->in_flight--;
	k->last_report_ms = w->now_mono_ms;
	metrics_rtt_add(&w->kafka_ack, w->now_mono_us - req->produced_us);
	k->last_failed = m->err != 0;
	int err = 0;
	if (m->err)
		/* A record that timed out while in flight may still have been
		 * written: that is not a failure anyone may undo. */
		err = rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_NOT_PERSISTED ? -EIO : -EINPROGRESS;
	flow_on_delivery(w, req, err, m->err ? rd_kafka_err2str(m->err) : NULL);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	struct worker *w = opaque;
	/* Broker-down errors repeat every few hundred ms; one line a second is enough. */
	if (w->now_mono_ms - w->kpub->last_error_log_ms < 1000)
		return;
	w->kpub->last_error_log_ms = w->now_mono_ms;
	worker_warn(w, "kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* The sum of every "name":N in librdkafka's statistics: "Produce" is a
 * key of each broker's request counters, "tx_bytes" a top-level total. */
static uint64_t stats_sum(const char *json, const char *quoted_name)
{
	uint64_t sum = 0;
	size_t len = strlen(quoted_name);
	for (const char *p = strstr(json, quoted_name); p; p = strstr(p + len, quoted_name))
		if (p[len] == ':')
			sum += strtoull(p + len + 1, NULL, 10);
	return sum;
}

/* From rd_kafka_poll, on the worker's thread, once a second: what the
 * producer asked of the brokers, for the cost of an order
 * (scripts/bench-cost.sh). */
static int on_stats(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
	(void)rk;
	(void)json_len;
	struct worker *w = opaque;
	w->stats.kafka_produce_requests = stats_sum(json, "\"Produce\"");
	w->stats.kafka_sent_bytes = stats_sum(json, "\"tx_bytes\"");
	return 0; /* librdkafka frees json */
}

/* librdkafka logs from its own threads; worker_log writes whole lines. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	struct worker *w = rd_kafka_opaque(rk);
	/* librdkafka's levels are syslog's: 0-3 errors, 4 warnings, 5-6 notices
	 * and information, 7 debugging. */
	enum log_level lv = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
	worker_logl(w, lv, "kafka: [%d] %s: %s", level, fac, buf);
}

static int set(struct worker *w, rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char err[256];
	if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
		snprintf(w->err, sizeof(w->err), "kafka: %s=%s: %s", key, value, err);
		return -EINVAL;
	}
	return 0;
}

#define PROBE_STEP_MS 100

/* What the probe's client met: every broker refused or dropped the
 * connection (an outage), or refused who it is (the config's mistake). */
struct probe {
	bool all_down;
	char refused[512];
};

static void on_probe_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	struct probe *p = opaque;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		p->all_down = true;
	else if ((err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL) && !*p->refused)
		snprintf(p->refused, sizeof(p->refused), "%s", reason);
}

int kpub_probe(const struct cfg *cfg, int timeout_ms, char *err, size_t err_len)
{
	struct probe pr = {0};
	const struct kprops kp = {cfg->kafka_brokers, cfg->kafka_properties, cfg->kafka_client_properties};
	char why[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* Quiet: an outage is said once, below, not by every retry. */
	if (kprops_apply(&kp, conf, err, err_len) < 0 ||
	    rd_kafka_conf_set(conf, "log_level", "0", err, err_len) != RD_KAFKA_CONF_OK) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	rd_kafka_conf_set_opaque(conf, &pr);
	rd_kafka_conf_set_error_cb(conf, on_probe_error);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, err_len, "kafka: cannot create a producer: %s", why);
		return -EINVAL;
	}
	int rc = 0;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, cfg->kafka_topic, NULL);
	rd_kafka_resp_err_t kerr = rkt ? RD_KAFKA_RESP_ERR__TIMED_OUT : rd_kafka_last_error();
	/* In steps, so that brokers that refuse the connection, or refuse
	 * the client's SASL or TLS, end the wait at once rather than at the
	 * timeout; a step without an answer is tried again. */
	for (int waited = 0; (kerr == RD_KAFKA_RESP_ERR__TIMED_OUT || kerr == RD_KAFKA_RESP_ERR__TRANSPORT) &&
			     waited < timeout_ms && !pr.all_down && !*pr.refused;
	     waited += PROBE_STEP_MS) {
		kerr = rd_kafka_metadata(rk, 0, rkt, &md, PROBE_STEP_MS);
		rd_kafka_poll(rk, kerr == RD_KAFKA_RESP_ERR__TRANSPORT ? PROBE_STEP_MS : 0); /* on_probe_error */
	}
	if (*pr.refused) {
		snprintf(err, err_len, "kafka: %s (see [kafka] client_properties)", pr.refused);
		rc = -EINVAL;
	} else if (kerr == RD_KAFKA_RESP_ERR__TIMED_OUT || kerr == RD_KAFKA_RESP_ERR__TRANSPORT) {
		snprintf(err, err_len, "kafka: no broker of %s %s", cfg->kafka_brokers,
			 pr.all_down ? "takes a connection" : "answered in time");
		rc = -ETIMEDOUT;
	} else if (kerr) {
		snprintf(err, err_len, "kafka: topic %s at %s: %s", cfg->kafka_topic, cfg->kafka_brokers,
			 rd_kafka_err2str(kerr));
		rc = -EINVAL;
	} else if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
		snprintf(err, err_len, "kafka: the brokers at %s have no topic %s (%s): create it, or fix [kafka] topic",
			 cfg->kafka_brokers, cfg->kafka_topic,
			 md->topic_cnt == 1 && md->topics[0].err ? rd_kafka_err2str(md->topics[0].err) : "no partitions");
		rc = -ENOENT;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	return rc;
}

int kpub_init(struct worker *w)
{
	const struct cfg *cfg = w->cfg;
	char num[32], client_id[64], err[512];
	int fds[2];
	struct kpub *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	w->kpub = k;
	k->pipe_rd = k->pipe_wr = -1;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(w->err, sizeof(w->err), "kafka: pipe: %s", strerror(errno));
		return -errno;
	}
	k->pipe_rd = fds[0];
	k->pipe_wr = fds[1];
	/* librdkafka's end must never block (a blocking one has hung its users);
	 * the ring's end stays blocking so io_uring waits on it by polling
	 * instead of completing at once with -EAGAIN. */
	if (fcntl(k->pipe_wr, F_SETFL, O_NONBLOCK) < 0) {
		snprintf(w->err, sizeof(w->err), "kafka: pipe O_NONBLOCK: %s", strerror(errno));
		return -errno;
	}

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	snprintf(client_id, sizeof(client_id), "flashgate-%u-%u", cfg->node_id, w->index);
	/* A broker that hangs (connections open, nothing answered) holds
	 * what was sent to it for socket.timeout.ms, 60 s by default: longer
	 * than an order waits, so each such order failed although a follower
	 * had taken the partition over in seconds. A third of an order's time
	 * lets a request time out and go again to the new leader (the
	 * idempotent producer keeps it one record). Before the SRE's
	 * properties, which may say otherwise. */
	uint32_t socket_ms = cfg->kafka_message_timeout_ms / 3;
	snprintf(num, sizeof(num), "%u", socket_ms < 1000 ? 1000 : socket_ms > 60000 ? 60000 : socket_ms);
	int rc = set(w, conf, "socket.timeout.ms", num);
	/* The SRE's properties next: flashgate's own come after them. */
	const struct kprops kp = {cfg->kafka_brokers, cfg->kafka_properties, cfg->kafka_client_properties};
	rc = rc ?: kprops_apply(&kp, conf, w->err, sizeof(w->err));
	rc = rc ?: set(w, conf, "client.id", client_id);
	rc = rc ?: set(w, conf, "acks", "all");
	rc = rc ?: set(w, conf, "enable.idempotence", "true");
	snprintf(num, sizeof(num), "%u", cfg->kafka_linger_ms);
	rc = rc ?: set(w, conf, "linger.ms", num);
	/* With linger 0, one unanswered request per broker is what batches:
	 * records that arrive while it is out go together in the next one, so
	 * batches grow with the load instead of every order waiting out a
	 * timer (config/flashgate.conf, BENCHMARKS.md). */
	snprintf(num, sizeof(num), "%u", cfg->kafka_inflight_requests);
	rc = rc ?: set(w, conf, "max.in.flight", num);
	snprintf(num, sizeof(num), "%u", cfg->kafka_batch_messages);
	rc = rc ?: set(w, conf, "batch.num.messages", num);
	rc = rc ?: set(w, conf, "compression.codec", cfg->kafka_compression);
	snprintf(num, sizeof(num), "%u", cfg->kafka_message_timeout_ms);
	rc = rc ?: set(w, conf, "message.timeout.ms", num);
	snprintf(num, sizeof(num), "%u", cfg->kafka_queue_messages);
	rc = rc ?: set(w, conf, "queue.buffering.max.messages", num);
	rc = rc ?: set(w, conf, "socket.nagle.disable", "true");
	rc = rc ?: set(w, conf, "statistics.interval.ms", "1000");
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	rd_kafka_conf_set_opaque(conf, w);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set_stats_cb(conf, on_stats);

	k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!k->rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(w->err, sizeof(w->err), "kafka: cannot create producer: %s", err);
		return -EINVAL;
	}
	k->rkt = rd_kafka_topic_new(k->rk, cfg->kafka_topic, NULL);
	if (!k->rkt) {
		snprintf(w->err, sizeof(w->err), "kafka: topic %s: %s", cfg->kafka_topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		return -EINVAL;
	}
	k->mainq = rd_kafka_queue_get_main(k->rk);
	rd_kafka_queue_io_event_enable(k->mainq, k->pipe_wr, "1", 1);
	return 0;
}

void kpub_destroy(struct worker *w, int timeout_ms)
{
	struct kpub *k = w->kpub;
	if (!k)
		return;
	if (k->rk) {
		k->closing = true;
		if (rd_kafka_flush(k->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			worker_warn(w, "kafka: %d records undelivered at shutdown; purging",
				   rd_kafka_outq_len(k->rk));
			rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
			rd_kafka_poll(k->rk, 0);
		}
		if (k->mainq) {
			rd_kafka_queue_io_event_enable(k->mainq, -1, NULL, 0);
			rd_kafka_queue_destroy(k->mainq);
		}
		if (k->rkt)
			rd_kafka_topic_destroy(k->rkt);
		rd_kafka_destroy(k->rk);
	}
	if (k->pipe_rd >= 0)
		close(k->pipe_rd);
	if (k->pipe_wr >= 0)
		close(k->pipe_wr);
	free(k);
	w->kpub = NULL;
}

int kpub_produce(struct worker *w, struct req *req)
{
	struct kpub *k = w->kpub;
	/* No copy flag: librdkafka points at req->record until the report. */
	rd_kafka_resp_err_t err = rd_kafka_producev(
		k->rk, RD_KAFKA_V_RKT(k->rkt), RD_KAFKA_V_MSGFLAGS(0),
		RD_KAFKA_V_KEY(req->order.user_id, req->order.user_len),
		RD_KAFKA_V_VALUE(req->record, (size_t)req->record_len),
		RD_KAFKA_V_TIMESTAMP(req->accepted_at_ms), RD_KAFKA_V_OPAQUE(req), RD_KAFKA_V_END);
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return -ENOBUFS;
	if (err) {
		worker_warn(w, "kafka: produce: %s", rd_kafka_err2str(err));
		return -EIO;
	}
	req->in_kafka = true;
	req->produced_us = w->now_mono_us;
	if (k->in_flight++ == 0)
		k->busy_since_ms = w->now_mono_ms;
	return 0;
}

/* rd_kafka_sasl_set_credentials with what text says; 0 (nothing to set
 * counts) or -EINVAL with err set. */
static int set_credentials(rd_kafka_t *rk, const char *text, char *user, size_t user_len, char *err, size_t err_len)
{
	char pass[CFG_KAFKA_PROPS_MAX];
	if (!kprops_get(text, "sasl.username", user, user_len) || !kprops_get(text, "sasl.password", pass, sizeof(pass))) {
		snprintf(err, err_len, "the file sets no sasl.username and sasl.password");
		return -EINVAL;
	}
	rd_kafka_error_t *e = rd_kafka_sasl_set_credentials(rk, user, pass);
	explicit_bzero(pass, sizeof(pass));
	if (e) {
		snprintf(err, err_len, "%s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return -EINVAL;
	}
	return 0;
}

void kpub_reconfigure(struct worker *w, const struct cfg *cfg)
{
	char user[256], err[256];
	if (strcmp(cfg->kafka_properties, w->cfg->kafka_properties) == 0)
		return;
	/* cfg_merge_live let only the credentials change. */
	if (set_credentials(w->kpub->rk, cfg->kafka_properties, user, sizeof(user), err, sizeof(err)) < 0)
		worker_warn(w, "kafka: new SASL credentials not taken: %s; the producer keeps the ones before", err);
	else
		worker_log(w, "kafka: SASL credentials of user %s from the next connection on", user);
}

bool kpub_acknowledging(const struct worker *w)
{
	const struct kpub *k = w->kpub;
	/* A failure says so for a while, not until the next success: an
	 * instance that is not ready gets no orders to succeed with. */
	if (k->last_failed && w->now_mono_ms - k->last_report_ms < KPUB_STALL_MS)
		return false;
	if (k->in_flight == 0)
		return true;
	int64_t since = k->busy_since_ms > k->last_report_ms ? k->busy_since_ms : k->last_report_ms;
	return w->now_mono_ms - since < KPUB_STALL_MS;
}

struct kpub_prober {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	char topic[CFG_TOPIC_MAX];
};

struct kpub_prober *kpub_prober_new(const struct cfg *cfg, char *err, size_t err_len)
{
	const struct kprops kp = {cfg->kafka_brokers, cfg->kafka_properties, cfg->kafka_client_properties};
	char why[512];
	struct kpub_prober *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, err_len, "kafka watch: out of memory");
		return NULL;
	}
	snprintf(p->topic, sizeof(p->topic), "%s", cfg->kafka_topic);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* Quiet: an outage is the workers' to log; this client only asks. */
	if (kprops_apply(&kp, conf, err, err_len) < 0 ||
	    rd_kafka_conf_set(conf, "log_level", "0", err, err_len) != RD_KAFKA_CONF_OK) {
		rd_kafka_conf_destroy(conf);
		free(p);
		return NULL;
	}
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!p->rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, err_len, "kafka watch: cannot create a client: %s", why);
		free(p);
		return NULL;
	}
	p->rkt = rd_kafka_topic_new(p->rk, cfg->kafka_topic, NULL);
	if (!p->rkt) {
		snprintf(err, err_len, "kafka watch: topic %s: %s", cfg->kafka_topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		kpub_prober_free(p);
		return NULL;
	}
	return p;
}

int kpub_prober_ask(struct kpub_prober *p, int timeout_ms, char *err, size_t err_len)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t kerr = rd_kafka_metadata(p->rk, 0, p->rkt, &md, timeout_ms);
	rd_kafka_poll(p->rk, 0);
	int rc = 0;
	if (kerr) {
		snprintf(err, err_len, "metadata for %s: %s", p->topic, rd_kafka_err2str(kerr));
		rc = kerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? -ETIMEDOUT : -EIO;
	} else if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
		snprintf(err, err_len, "topic %s: %s", p->topic,
			 md->topic_cnt == 1 && md->topics[0].err ? rd_kafka_err2str(md->topics[0].err)
								  : "no partitions");
		rc = -ENOENT;
	} else {
		for (int i = 0; i < md->topics[0].partition_cnt; i++) {
			if (md->topics[0].partitions[i].leader < 0) {
				snprintf(err, err_len, "topic %s: partition %d has no leader", p->topic,
					 md->topics[0].partitions[i].id);
				rc = -EAGAIN;
				break;
			}
		}
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	return rc;
}

int kpub_prober_set_credentials(struct kpub_prober *p, const struct cfg *cfg, char *err, size_t err_len)
{
	char user[256];
	return set_credentials(p->rk, cfg->kafka_properties, user, sizeof(user), err, err_len);
}

void kpub_prober_free(struct kpub_prober *p)
{
	if (!p)
		return;
	if (p->rkt)
		rd_kafka_topic_destroy(p->rkt);
	if (p->rk)
		rd_kafka_destroy(p->rk);
	free(p);
}

void kpub_arm(struct worker *w)
{
	struct kpub *k = w->kpub;
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_read(sqe, k->pipe_rd, k->wake_buf, sizeof(k->wake_buf), 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_KAFKA_WAKE, 0, 0));
}

void kpub_poll(struct worker *w)
{
	/* librdkafka signals once until its queue is served: serve it all. */
	while (rd_kafka_poll(w->kpub->rk, 0) > 0)
		;
}

void kpub_on_wake(struct worker *w, int res)
{
	if (res < 0 && res != -EAGAIN && res != -EINTR)
		worker_warn(w, "kafka: reading the wake-up pipe: %s", strerror(-res));
	kpub_poll(w);
	kpub_arm(w);
}

int kpub_outstanding(const struct worker *w)
{
	return rd_kafka_outq_len(w->kpub->rk);
}
