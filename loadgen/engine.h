/*
 * engine: one flashload thread. It owns an io_uring, its share of the
 * connections and of the schedule (every nthreads-th arrival), and plays
 * the shoppers: picks user and SKU, sends, classifies each answer, retries
 * with backoff and the same Idempotency-Key, double-clicks, and counts
 * everything per stage and per second. The struct is shared with run.c,
 * which starts and joins the threads and merges their results; nothing
 * else touches it.
 *
 * Owns: connections, pacing, retries, per-request timing. Does not own:
 * threads, merging or reporting (run), request bytes (mix), pending work
 * memory (jobs).
 */
#ifndef LG_ENGINE_H
#define LG_ENGINE_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "jobs.h"
#include "mix.h"
#include "run.h"
#include "sched.h"
#include "series.h"
#include "tokens.h"

#define ENGINE_IN_CAP 4096

struct lconn {
	int fd;
	int state;
	uint32_t gen;
	bool recv_armed, send_armed;
	struct job job;
	int64_t sent_ns;
	int64_t abandon_at_ns; /* the client gives up then if unanswered; 0: never */
	struct __kernel_timespec abandon_ts; /* its timer's delay, read at submit */
	int64_t retry_at_ns; /* a failed connect waits before the next try */
	uint8_t ep;          /* which of the target's endpoints */
	size_t out_len, out_off, in_len;
	char out[MIX_REQ_MAX];
	char in[ENGINE_IN_CAP];
};

struct shared {
	const struct lg_profile *p;
	const struct lg_target *t;
	struct sched sc;
	struct mix_host host[LG_MAX_TARGETS];
	const double *zipf_cdf;
	struct sockaddr_storage addr[LG_MAX_TARGETS];
	socklen_t addr_len[LG_MAX_TARGETS];
	char run_tag[16]; /* makes Idempotency-Keys unique to this run */
	struct series *series;
	const struct jwt_key *sign_key; /* NULL: orders carry no token */
	struct jwt_key forged_key;      /* [bots] forged: sign_key's kid, another secret */
	/* start-up: every thread connects, then all start on one clock */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned n_connected;
	uint64_t connected_total;
	bool go, abort;
	atomic_bool stop; /* interrupted: no more sends, answers awaited up to the timeout */
	int64_t start_ns;
	atomic_uint finished;
};

struct engine {
	struct shared *sh;
	const struct lg_profile *p;
	unsigned tid, nthreads;
	struct lg_result r;
	struct io_uring ring;
	bool ring_ok;
	struct lconn *conns;
	unsigned n_conns;
	/* Idle connections, a ring in the order they went idle: a job takes
	 * the one idle longest, so the load spreads over every connection
	 * (and every --target) instead of the few answered last. */
	unsigned *idle;
	unsigned idle_head, n_idle, n_busy;
	uint64_t rng;
	/* arrivals */
	bool arrivals_done;
	uint64_t arrivals, max_arrivals;
	double arrival_n;   /* cumulative-count position of the next arrival */
	size_t trace_next;  /* --replay: the trace order the next arrival is */
	int64_t next_arrival_ns;
	int64_t closed_end_ns;
	uint64_t key_seq;
	struct jobs jobs;
	struct tokens tokens;
	/* [bots] */
	bool bots;
	struct tokens forged, expired;
	char xff[48];
	int *silent; /* connections opened at the start and never spoken on */
	unsigned n_silent;
	/* the second being counted, published when it is over */
	size_t cur_sec;
	struct lg_second tick;
	struct hist *tick_lat;
	int64_t next_timeout_scan_ns;
	struct __kernel_timespec timer_ts;
	bool timer_armed;
	int rc;
};

static inline int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sets up thread tid of nthreads (memory, ring); 0 or -errno. */
int engine_init(struct engine *e, struct shared *sh, unsigned tid, unsigned nthreads)
	__attribute__((warn_unused_result));
void engine_free(struct engine *e);

/* The thread's body: connect, wait for the common start, run, publish. */
void *engine_thread(void *arg);

#endif
