/* worker: one thread, one ring, shared-nothing. See worker.h. */

#include "worker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "admission.h"
#include "auth.h"
#include "conn.h"
#include "flow.h"
#include "health.h"
#include "kpub.h"
#include "lease.h"
#include "logline.h"
#include "resv.h"
#include "skucache.h"

#define TICK_MS 100
#define SQ_ENTRIES 1024
/* Longest start-up wait for Redis before accepting anyway (then /healthz
 * and orders answer 503 until it is reachable). */
#define ACCEPT_WAIT_MS 5000

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t clock_ms(clockid_t id)
{
	return clock_us(id) / 1000;
}

static void read_clocks(struct worker *w)
{
	w->now_ms = clock_ms(CLOCK_REALTIME);
	w->now_mono_us = clock_us(CLOCK_MONOTONIC);
	w->now_mono_ms = w->now_mono_us / 1000;
}

static void vlog(struct worker *w, enum log_level level, const char *fmt, va_list ap)
{
	char text[LOGLINE_MAX], who[16];
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	if (n < 0)
		return;
	snprintf(who, sizeof(who), "w%u", w->index);
	logline_write(level, who, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

void worker_log(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(w, LOG_INFO, fmt, ap);
	va_end(ap);
}

void worker_warn(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(w, LOG_WARN, fmt, ap);
	va_end(ap);
}

void worker_logl(struct worker *w, enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(w, level, fmt, ap);
	va_end(ap);
}

static int open_listener(struct worker *w, const char *host, unsigned port_n, int *out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICHOST}, *ai;
	char port[8];
	int one = 1, rc;

	snprintf(port, sizeof(port), "%u", port_n);
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(w->err, sizeof(w->err), "listen address %s: %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(w->err, sizeof(w->err), "socket: %s", strerror(errno));
		goto out;
	}
	/* One listening socket per worker: the kernel spreads connections. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		rc = -errno;
		snprintf(w->err, sizeof(w->err), "setsockopt SO_REUSEPORT: %s", strerror(errno));
		goto fail;
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		rc = -errno;
		snprintf(w->err, sizeof(w->err), "bind %s:%u: %s", host, port_n, strerror(errno));
		goto fail;
	}
	if (listen(fd, 4096) < 0) {
		rc = -errno;
		snprintf(w->err, sizeof(w->err), "listen %s:%u: %s", host, port_n, strerror(errno));
		goto fail;
	}
	*out = fd;
	rc = 0;
	goto out;
fail:
	close(fd);
out:
	freeaddrinfo(ai);
	return rc;
}

int worker_init(struct worker *w, const struct worker_config *conf, const struct script_shas *shas,
		const struct rcl_map *map, struct metrics *metrics, const struct worker_shared *shared,
		unsigned index)
{
	int rc;
	const struct cfg *cfg = conf->cfg;
	memset(w, 0, sizeof(*w));
	w->cfg = cfg;
	w->keys = conf->keys;
	w->config_gen = conf->gen;
	w->index = index;
	w->shared = shared;
	w->metrics = metrics;
	w->listen_fd = w->admin_fd = w->stop_fd = w->reload_fd = -1;
	w->limits.max_head_bytes = cfg->max_head_bytes;
	w->limits.max_headers = cfg->max_headers;
	w->limits.max_body_bytes = cfg->max_body_bytes;
	w->tick_ts.tv_nsec = TICK_MS * 1000000LL;
	read_clocks(w);

	if ((rc = oid_gen_init(&w->oids, cfg->node_id, index)) < 0) {
		snprintf(w->err, sizeof(w->err), "order ids: node %u worker %u out of range",
			 cfg->node_id, index);
		return rc;
	}
	oid_gen_start_after(&w->oids, lease_ids_after_ms(shared->lease));
	w->stop_fd = eventfd(0, EFD_CLOEXEC);
	w->reload_fd = eventfd(0, EFD_CLOEXEC);
	if (w->stop_fd < 0 || w->reload_fd < 0) {
		snprintf(w->err, sizeof(w->err), "eventfd: %s", strerror(errno));
		return -errno;
	}
	if ((rc = open_listener(w, cfg->listen, cfg->port, &w->listen_fd)) < 0 ||
	    (cfg->admin_port && (rc = open_listener(w, cfg->admin_listen, cfg->admin_port, &w->admin_fd)) < 0))
		return rc;
	if ((rc = flow_init(w)) < 0 || (rc = conns_init(w)) < 0 || (rc = skc_init(w)) < 0 ||
	    (rc = auth_init(w)) < 0 || (rc = adm_init(w)) < 0 || (rc = access_init(w)) < 0) {
		snprintf(w->err, sizeof(w->err), "request, connection, token and rate tables: %s", strerror(-rc));
		return rc;
	}
	if ((rc = resv_init(w, shas, map)) < 0) {
		if (!w->err[0])
			snprintf(w->err, sizeof(w->err), "redis client: %s", strerror(-rc));
		return rc;
	}
	if ((rc = kpub_init(w)) < 0)
		return rc;
	return 0;
}

struct io_uring_sqe *worker_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&w->ring))) {
		int rc = io_uring_submit(&w->ring);
		if (rc < 0 && rc != -EAGAIN && rc != -EBUSY)
			worker_warn(w, "io_uring_submit: %s", strerror(-rc));
	}
	return sqe;
}

/* The public listener's accept is index 0, the admin one's index 1. */
static void arm_accept(struct worker *w, unsigned which)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_multishot_accept(sqe, which ? w->admin_fd : w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(OP_ACCEPT, which, 0));
}

static void arm_tick(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_timeout(sqe, &w->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_TICK, 0, 0));
}

/* Confirmations wait for company (resv_confirm) but not past their delay:
 * if nothing else wakes the loop by then, this does. Arming one timeout per
 * batch costs less than a timed wait on every turn (each arms a timer). */
static void arm_wake(struct worker *w, int64_t in_us)
{
	w->wake_ts.tv_sec = in_us / 1000000;
	w->wake_ts.tv_nsec = (in_us % 1000000) * 1000;
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_timeout(sqe, &w->wake_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_WAKE, 0, 0));
	w->wake_armed = true;
}

static void arm_stop(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_read(sqe, w->stop_fd, &w->stop_buf, sizeof(w->stop_buf), 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_STOP, 0, 0));
}

static void arm_reload(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_read(sqe, w->reload_fd, &w->reload_buf, sizeof(w->reload_buf), 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_RELOAD, 0, 0));
}

/* Between two turns: no request is half-way through a handler, so each
 * module can swap what it derived from the old configuration. */
static void apply_config(struct worker *w)
{
	const struct worker_config *c = __atomic_load_n(&w->next_config, __ATOMIC_ACQUIRE);
	if (!c || c->gen <= w->config_gen)
		return;
	int rc = auth_reconfigure(w, c->cfg, c->keys);
	if (rc < 0) {
		worker_warn(w, "reload %llu: the identity keys' contexts: %s; keeping the configuration before",
			   (unsigned long long)c->gen, strerror(-rc));
	} else {
		kpub_reconfigure(w, c->cfg);
		w->cfg = c->cfg;
		w->keys = c->keys;
		w->limits.max_headers = w->cfg->max_headers;
		adm_reconfigure(w);
	}
	__atomic_store_n(&w->config_result, rc < 0 ? rc : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&w->config_gen, c->gen, __ATOMIC_RELEASE);
}

void worker_reconfigure(struct worker *w, const struct worker_config *conf)
{
	uint64_t one = 1;
	__atomic_store_n(&w->next_config, conf, __ATOMIC_RELEASE);
	if (write(w->reload_fd, &one, sizeof(one)) < 0)
		worker_warn(w, "reload: eventfd write: %s", strerror(errno));
}

uint64_t worker_config_gen(const struct worker *w, int *result)
{
	uint64_t gen = __atomic_load_n(&w->config_gen, __ATOMIC_ACQUIRE);
	*result = __atomic_load_n(&w->config_result, __ATOMIC_RELAXED);
	return gen;
}

static void begin_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	w->accepting = false;
	w->drain_deadline_mono_ms = w->now_mono_ms + w->cfg->drain_timeout_ms;
	for (unsigned which = 0; which < (w->admin_fd >= 0 ? 2u : 1u); which++) {
		struct io_uring_sqe *sqe = worker_sqe(w);
		io_uring_prep_cancel64(sqe, ud_make(OP_ACCEPT, which, 0), 0);
		io_uring_sqe_set_data64(sqe, 0);
	}
	conns_drain(w);
	worker_log(w, "draining: %u connections, %u orders in flight", conns_open(w),
		   flow_orders_inflight(w));
}

static bool drained(struct worker *w)
{
	if (conns_open(w) == 0 && flow_busy(w) == 0)
		return true;
	if (w->now_mono_ms >= w->drain_deadline_mono_ms) {
		worker_warn(w, "drain deadline passed with %u connections and %u requests busy "
			      "(%u Redis commands pending); their reservations stay in the ledger",
			   conns_open(w), flow_busy(w), resv_pending(w));
		return true;
	}
	return false;
}

static void dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	int res = cqe->res;
	switch (ud_op(ud)) {
	case OP_ACCEPT:
		conn_on_accept(w, res, ud_index(ud) == 1);
		if (!(cqe->flags & IORING_CQE_F_MORE) && w->accepting)
			arm_accept(w, ud_index(ud)); /* the multishot ended (error or overflow) */
		break;
	case OP_RECV:
		conn_on_recv(w, ud_index(ud), ud_gen(ud), res, cqe->flags);
		break;
	case OP_SEND:
		conn_on_send(w, ud_index(ud), ud_gen(ud), res);
		break;
	case OP_REDIS_CONNECT:
		resv_on_connect(w, ud_index(ud), res);
		break;
	case OP_REDIS_RECV:
		resv_on_recv(w, ud_index(ud), res);
		break;
	case OP_REDIS_SEND:
		resv_on_send(w, ud_index(ud), res);
		break;
	case OP_KAFKA_WAKE:
		kpub_on_wake(w, res);
		break;
	case OP_TICK:
		resv_tick(w);
		conns_tick(w);
		skc_tick(w);
		/* The pipe signals only when the queue goes from empty to non-empty;
		 * a report queued before the first read was armed would otherwise
		 * wait forever. Serving an empty queue costs one lock. */
		kpub_poll(w);
		worker_publish(w);
		arm_tick(w);
		break;
	case OP_WAKE: /* what is due goes in resv_before_wait */
		w->wake_armed = false;
		break;
	case OP_STOP:
		begin_drain(w);
		break;
	case OP_RELOAD:
		apply_config(w);
		arm_reload(w);
		break;
	}
}

static void *run(void *arg)
{
	struct worker *w = arg;
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
	/* Room for every connection's recv and send plus the fixed ops. */
	p.cq_entries = 2 * w->cfg->max_connections + 4096;
	int rc = io_uring_queue_init_params(SQ_ENTRIES, &w->ring, &p);
	if (rc < 0) {
		snprintf(w->err, sizeof(w->err), "io_uring_queue_init: %s", strerror(-rc));
		w->result = rc;
		return NULL;
	}
	w->ring_ready = true;
	/* Every turn enters the kernel once: a registered ring fd spares that
	 * entry the file-table lookup. Older kernels lack it; nothing else
	 * depends on it. */
	if ((rc = io_uring_register_ring_fd(&w->ring)) < 0)
		worker_log(w, "io_uring_register_ring_fd: %s (continuing without)", strerror(-rc));
	if ((rc = conns_start(w)) < 0) {
		snprintf(w->err, sizeof(w->err), "registering the receive buffer ring: %s", strerror(-rc));
		w->result = rc;
		return NULL;
	}
	int64_t accept_by_ms = clock_ms(CLOCK_MONOTONIC) + ACCEPT_WAIT_MS;
	arm_stop(w);
	arm_reload(w);
	arm_tick(w);
	kpub_arm(w);
	kpub_poll(w); /* whatever was queued before the read was armed */
	resv_tick(w); /* first connect */

	for (;;) {
		read_clocks(w);
		/* Take connections once Redis is reachable, so the first orders are
		 * not refused while the connection is still being set up; they
		 * wait in the backlog meanwhile. */
		if (!w->accepting && !w->draining &&
		    (resv_up(w) || w->now_mono_ms >= accept_by_ms)) {
			w->accepting = true;
			arm_accept(w, 0);
			if (w->admin_fd >= 0)
				arm_accept(w, 1);
		}
		conns_before_wait(w);
		resv_before_wait(w);
		if (w->draining && drained(w))
			break;
		int64_t due_us = resv_wait_us(w);
		if (due_us >= 0 && !w->wake_armed)
			arm_wake(w, due_us);
		rc = io_uring_submit_and_wait(&w->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
			snprintf(w->err, sizeof(w->err), "io_uring_submit_and_wait: %s", strerror(-rc));
			w->result = rc;
			break;
		}
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			dispatch(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
	}
	worker_publish(w);
	worker_log(w, "stopped: %llu requests, %llu accepted, %llu sold out, %llu limit exceeded, "
		      "%llu rejected, %llu unavailable, %llu answered after their connection was gone, %llu connections closed for not reading; receive ring dry %llu times, recv paused %llu times; "
		      "reserved orders %llu in script calls %llu, confirmed %llu in %llu; "
		      "bucket transfers %llu moving %llu units, %llu orders gave up rebalancing; "
		      "transfers finished after a failure %llu moving %llu units, left for reconcile %llu; "
		      "redis redirections %llu, sent again after TRYAGAIN %llu, waited for a new master %llu, "
		      "calls refused for too few replicas %llu, slots found by asking another master %llu",
		   (unsigned long long)w->stats.requests, (unsigned long long)w->stats.accepted,
		   (unsigned long long)w->stats.sold_out, (unsigned long long)w->stats.limit_exceeded,
		   (unsigned long long)w->stats.rejected, (unsigned long long)w->stats.unavailable,
		   (unsigned long long)w->stats.answers_orphaned, (unsigned long long)w->stats.send_timeouts,
		   (unsigned long long)w->stats.recv_starved, (unsigned long long)w->stats.recv_paused,
		   (unsigned long long)w->stats.reserve_orders, (unsigned long long)w->stats.reserve_calls,
		   (unsigned long long)w->stats.confirm_orders, (unsigned long long)w->stats.confirm_calls,
		   (unsigned long long)w->stats.transfers, (unsigned long long)w->stats.units_moved,
		   (unsigned long long)w->stats.rebal_gave_up, (unsigned long long)w->stats.transfers_repaired,
		   (unsigned long long)w->stats.units_repaired, (unsigned long long)w->stats.transfers_left,
		   (unsigned long long)w->stats.redirects,
		   (unsigned long long)w->stats.tryagains, (unsigned long long)w->stats.link_waits,
		   (unsigned long long)w->stats.replication_short, (unsigned long long)w->stats.slots_probed);
	return NULL;
}

void worker_publish(struct worker *w)
{
	int queued = kpub_outstanding(w);
	struct metrics_sample s = {
		.stats = w->stats,
		.accept_latency = w->accept_latency,
		.redis_rtt = w->redis_rtt,
		.kafka_ack = w->kafka_ack,
		.connections = conns_open(w),
		.orders_in_flight = flow_orders_inflight(w),
		.kafka_outstanding = queued > 0 ? (uint64_t)queued : 0,
		.redis_pending = resv_pending(w),
		.redis_up = resv_up(w),
		.skus_sold_out = skc_sold_out(w),
	};
	metrics_publish(w->metrics, w->index, &s);
	const struct health_worker hw = {
		.turn_ms = w->now_mono_ms,
		.redis_up = s.redis_up,
		.kafka_ok = kpub_acknowledging(w),
		.draining = w->draining,
		.lease_ok = lease_allows(w->shared->lease, w->now_mono_ms, oid_gen_next_ms(&w->oids, w->now_ms)),
	};
	health_publish(w->shared->health, w->index, &hw);
}

int worker_start(struct worker *w)
{
	int rc = pthread_create(&w->thread, NULL, run, w);
	if (rc != 0) {
		snprintf(w->err, sizeof(w->err), "pthread_create: %s", strerror(rc));
		return -rc;
	}
	return 0;
}

void worker_stop(struct worker *w)
{
	uint64_t one = 1;
	if (write(w->stop_fd, &one, sizeof(one)) < 0)
		worker_warn(w, "stop: eventfd write: %s", strerror(errno));
}

void worker_destroy(struct worker *w)
{
	int64_t left = w->drain_deadline_mono_ms - clock_ms(CLOCK_MONOTONIC);
	kpub_destroy(w, left > 1000 ? (int)left : 1000);
	resv_destroy(w);
	conns_destroy(w);
	flow_destroy(w);
	skc_destroy(w);
	auth_destroy(w);
	adm_destroy(w);
	access_destroy(w);
	if (w->ring_ready)
		io_uring_queue_exit(&w->ring);
	if (w->listen_fd >= 0)
		close(w->listen_fd);
	if (w->admin_fd >= 0)
		close(w->admin_fd);
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	if (w->reload_fd >= 0)
		close(w->reload_fd);
}

int worker_probe_uring(char *err, size_t err_len)
{
	struct io_uring ring;
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	int rc = io_uring_queue_init_params(8, &ring, &p);
	if (rc == 0) {
		io_uring_queue_exit(&ring);
		return 0;
	}
	if (rc == -EPERM || rc == -ENOSYS || rc == -EACCES)
		snprintf(err, err_len,
			 "io_uring is not available here (%s): allow it with sysctl "
			 "kernel.io_uring_disabled=0, or in containers a seccomp profile that "
			 "permits io_uring_setup/io_uring_enter/io_uring_register",
			 strerror(-rc));
	else if (rc == -EINVAL)
		snprintf(err, err_len,
			 "io_uring lacks SINGLE_ISSUER/DEFER_TASKRUN (%s): flashgate needs Linux 6.1 or newer",
			 strerror(-rc));
	else
		snprintf(err, err_len, "io_uring_queue_init: %s", strerror(-rc));
	return rc;
}
