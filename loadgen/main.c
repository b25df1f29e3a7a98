/*
 * flashload: flashgate's load generator. Replays a sale's traffic profile
 * (or a single steady stage from the command line) on an open-loop
 * schedule, reports what the clients saw (text, JSON, HTML), searches for
 * the capacity under a p99 target, and with --verify proves afterwards
 * from Redis and Kafka that the books balance.
 *
 * Owns: the command line, which outputs are written, and the exit code:
 * 0 ok; 1 the run failed its gate (a verification FAIL, a --threshold
 * missed, or not one answer from an order API); 2 usage; 3 the run could
 * not be done; 130 interrupted (SIGINT or SIGTERM), after writing every
 * report for what ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../core/version.h"
#include "../core/cfg.h"
#include "../core/oid.h"
#include "capacity.h"
#include "html.h"
#include "merge.h"
#include "profile.h"
#include "record.h"
#include "report.h"
#include "run.h"
#include "threshold.h"
#include "trace.h"
#include "verify.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: flashload --target HOST:PORT[,HOST:PORT...] [--profile FILE] [options]\n"
		"       flashload merge REPORT.json... [--json FILE] [--html FILE] [--threshold EXPR]\n"
		"                       [--force]   several generators' reports of one sale as one\n"
		"       flashload record --config CONF [--since T] [--until T] [--sku-prefix P]\n"
		"                       [--anon-key FILE] --out TRACE.csv   a past sale's topic as a trace\n"
		"       flashload --version\n"
		"  (--target may be repeated: the connections are spread evenly over the gateways)\n"
		"traffic (a profile file has all of these; options override it):\n"
		"  --profile FILE      stages, catalogue, users, retries and mix (config/profiles/)\n"
		"  --rate R|max        without a profile: one stage at R req/s on an open-loop\n"
		"                      schedule, or max (closed loop: each connection sends when\n"
		"                      answered) [max]\n"
		"  --duration D        without a profile: that stage's length: 10s, 500ms, 2m [10s]\n"
		"  --scale F           multiply every stage's rates by F (same shape, other size)\n"
		"  --replay FILE       a recorded sale instead of stages: CSV, JSON lines or an\n"
		"                      nginx access log (docs/flashload.md); `flashload record`\n"
		"                      makes one from a past sale's topic\n"
		"  --speed X           replay X times as fast [1]\n"
		"  --requests N        stop after N first tries (whichever comes first)\n"
		"  --connections C     keep-alive connections, split over the threads [64]\n"
		"  --threads T         engine threads, each with its own io_uring [1]\n"
		"  --t0 T              start the schedule at wall-clock T (unix ms, +30s, or\n"
		"                      2026-11-11T00:00:00Z) so several generators open together\n"
		"  --arrival A         uniform or poisson [uniform]\n"
		"  --skus M            one class of M SKUs PREFIX1..PREFIXM, Zipf-skewed [10]\n"
		"  --sku-prefix P      [sku]\n"
		"  --zipf S            Zipf exponent of SKU popularity (0 = uniform) [0.99]\n"
		"  --users U           users PREFIX1..PREFIXU, uniform [10000]\n"
		"  --user-prefix P     [u]\n"
		"  --qty Q             units per order [1]\n"
		"  --retries N         retry 503, timeouts and in_progress up to N times [0]\n"
		"  --keys              send an Idempotency-Key with every order\n"
		"  --sign-key FILE     sign each shopper's bearer token with this key, as the\n"
		"                      platform's auth service would: KID.hs256 (an HMAC secret)\n"
		"                      or KID.pem (an Ed25519 or P-256 private key); profile\n"
		"                      [run] sign_key. The gateway needs the kid's verifying key\n"
		"  --duplicates S      share of orders double-clicked (0..1) [0]\n"
		"  --malformed S       share of malformed requests (0..1) [0]\n"
		"  --abandon S         share of orders whose client resets the connection if no\n"
		"                      answer came within 0..abandon_after (profile) [0, 10ms]\n"
		"  --timeout MS        a request without an answer after MS fails [10000]\n"
		"  --seed N            random seed (same seed, same order sequence)\n"
		"output:\n"
		"  --json FILE         the report as JSON (per stage, per second, verification)\n"
		"  --html FILE         a self-contained HTML report with charts\n"
		"  --accepted-log FILE the accepted order ids (one per line, with qty; and\n"
		"                      '# abandoned N' when shoppers gave up)\n"
		"  --write-stock FILE  write the profile's catalogue as a `flashgate stock load` CSV\n"
		"                      and exit\n"
		"  --quiet             no live line\n"
		"  --live-json F       each second as a JSON line while it runs, for a dashboard:\n"
		"                      a file, a FIFO, or fd:N (a descriptor the caller opened)\n"
		"  --shard I/N         this generator is I of N running one sale (same --t0,\n"
		"                      same profile): 1/N of every stage's rate, its own users;\n"
		"                      its --verify allows the others' orders in the topic\n"
		"  --threshold EXPR    fail the run (exit 1) unless EXPR holds; repeatable:\n"
		"                      p99<50ms, stage:peak:p99.9<200ms, errors<0.1%%,\n"
		"                      status:503<1%%, accepted>=50000, rps>=9000\n"
		"                      (metrics: pN max mean errors status:CODE accepted\n"
		"                      answered rps; see docs/flashload.md)\n"
		"capacity search:\n"
		"  --find-capacity     find the highest rate whose p99 stays within --p99\n"
		"  --p99 D             the target, e.g. 5ms [5ms]\n"
		"  --step D            length of each step [5s]; --rate gives the first rate [1000]\n"
		"verification (after the run):\n"
		"  --verify            check Redis and Kafka; exit 1 on any FAIL\n"
		"  --config CONF       take Redis and Kafka addresses from flashgate's config,\n"
		"                      with its Redis AUTH and Kafka client properties\n"
		"  --redis HOST:PORT   [127.0.0.1:16379]\n"
		"  --kafka BROKERS     [127.0.0.1:19092]\n"
		"  --topic T           [orders]\n"
		"  --verify-only       no load: verify the orders listed in --accepted-log\n"
		"                      (repeat it to verify several generators' sale as one)\n"
		"  --expect-others     other generators sold in this sale too (see --shard)\n"
		"  --reconciled        after `flashgate reconcile`: orders without a 202 may be\n"
		"                      in the topic (published for a crashed gateway)\n");
}

static int parse_hostport(const char *s, char *host, size_t host_len, unsigned *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= host_len)
		return -EINVAL;
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end || p == 0 || p > 65535)
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	*port = (unsigned)p;
	return 0;
}

static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
		      unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '-' || end == s || *end || errno || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* One 202 a line: "ORDER_ID QTY". */
static int write_accepted(const char *path, const struct lg_result *r)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < r->n_accepted; i++) {
		char id[OID_TEXT_LEN + 1];
		oid_format(r->accepted_ids[i], id);
		fprintf(f, "%s %u\n", id, r->accepted_qty[i]);
	}
	/* --verify-only must know them: each may be in the topic unseen. */
	if (r->orders_abandoned)
		fprintf(f, "# abandoned %" PRIu64 "\n", r->orders_abandoned);
	if (fclose(f) != 0) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* Adds the orders one accepted log lists to r. */
static int read_accepted(const char *path, struct lg_result *r)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	char line[128];
	int lineno = 0;
	while (fgets(line, sizeof(line), f)) {
		char id[32];
		unsigned qty;
		uint64_t v;
		lineno++;
		unsigned long long abandoned;
		if (sscanf(line, "# abandoned %llu", &abandoned) == 1) {
			r->orders_abandoned += abandoned;
			continue;
		}
		if (sscanf(line, "%31s %u", id, &qty) != 2 || oid_parse(id, strlen(id), &v) < 0) {
			fprintf(stderr, "flashload: %s:%d: expected 'ORDER_ID QTY'\n", path, lineno);
			fclose(f);
			return -EINVAL;
		}
		if (lg_result_add_accepted(r, v, qty) < 0) {
			fclose(f);
			return -ENOMEM;
		}
		r->accepted_units += qty;
	}
	fclose(f);
	return 0;
}

static int parse_share(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= 0 && v <= 1))
		return -EINVAL;
	*out = v;
	return 0;
}

#define LG_MAX_LOGS 64

/* Everything the command line asks for besides the profile. */
struct cli {
	struct lg_target t;
	struct verify_opts v;
	const char *profile, *config, *json, *html, *accepted_log, *write_stock;
	const char *accepted_logs[LG_MAX_LOGS];
	const char *replay;
	double speed;
	struct trace trace;
	unsigned n_logs;
	unsigned shard, shards;
	bool verify, verify_only, have_target;
	bool find_capacity, duration_set, p99_set;
	double scale;
	struct threshold thr[THR_MAX];
	unsigned n_thr;
	struct cap_opts cap;
};

enum {
	O_TARGET = 256, O_PROFILE, O_RATE, O_DURATION, O_REQUESTS, O_CONNECTIONS, O_THREADS, O_T0,
	O_ARRIVAL, O_SKUS, O_SKU_PREFIX, O_ZIPF, O_USERS, O_USER_PREFIX, O_QTY, O_RETRIES, O_KEYS, O_SIGN_KEY,
	O_DUPLICATES, O_MALFORMED, O_TIMEOUT, O_SEED, O_JSON, O_HTML, O_ACCEPTED_LOG, O_WRITE_STOCK,
	O_QUIET, O_FIND_CAPACITY, O_P99, O_STEP, O_VERIFY, O_CONFIG, O_REDIS, O_KAFKA, O_TOPIC,
	O_VERIFY_ONLY, O_RECONCILED, O_SCALE, O_ABANDON, O_THRESHOLD, O_SHARD, O_EXPECT_OTHERS,
	O_REPLAY, O_SPEED, O_LIVE_JSON,
};

static const struct option long_opts[] = {
	{"target", required_argument, 0, O_TARGET}, {"profile", required_argument, 0, O_PROFILE},
	{"rate", required_argument, 0, O_RATE}, {"duration", required_argument, 0, O_DURATION},
	{"requests", required_argument, 0, O_REQUESTS},
	{"connections", required_argument, 0, O_CONNECTIONS},
	{"threads", required_argument, 0, O_THREADS}, {"t0", required_argument, 0, O_T0},
	{"arrival", required_argument, 0, O_ARRIVAL}, {"skus", required_argument, 0, O_SKUS},
	{"sku-prefix", required_argument, 0, O_SKU_PREFIX}, {"zipf", required_argument, 0, O_ZIPF},
	{"users", required_argument, 0, O_USERS}, {"user-prefix", required_argument, 0, O_USER_PREFIX},
	{"qty", required_argument, 0, O_QTY}, {"retries", required_argument, 0, O_RETRIES},
	{"keys", no_argument, 0, O_KEYS}, {"sign-key", required_argument, 0, O_SIGN_KEY}, {"duplicates", required_argument, 0, O_DUPLICATES},
	{"malformed", required_argument, 0, O_MALFORMED}, {"timeout", required_argument, 0, O_TIMEOUT},
	{"abandon", required_argument, 0, O_ABANDON},
	{"seed", required_argument, 0, O_SEED}, {"json", required_argument, 0, O_JSON},
	{"html", required_argument, 0, O_HTML}, {"accepted-log", required_argument, 0, O_ACCEPTED_LOG},
	{"write-stock", required_argument, 0, O_WRITE_STOCK}, {"quiet", no_argument, 0, O_QUIET},
	{"find-capacity", no_argument, 0, O_FIND_CAPACITY}, {"p99", required_argument, 0, O_P99},
	{"step", required_argument, 0, O_STEP}, {"verify", no_argument, 0, O_VERIFY},
	{"config", required_argument, 0, O_CONFIG}, {"redis", required_argument, 0, O_REDIS},
	{"kafka", required_argument, 0, O_KAFKA}, {"topic", required_argument, 0, O_TOPIC},
	{"verify-only", no_argument, 0, O_VERIFY_ONLY}, {"reconciled", no_argument, 0, O_RECONCILED},
	{"scale", required_argument, 0, O_SCALE}, {"threshold", required_argument, 0, O_THRESHOLD},
	{"live-json", required_argument, 0, O_LIVE_JSON}, {"replay", required_argument, 0, O_REPLAY}, {"speed", required_argument, 0, O_SPEED},
	{"shard", required_argument, 0, O_SHARD}, {"expect-others", no_argument, 0, O_EXPECT_OTHERS},
	{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
};

/* Applies one option over the profile; 0, -EINVAL (bad value) or -ENOTSUP
 * (not with a profile). */
static int apply(struct lg_profile *p, struct cli *c, int opt, const char *arg, bool *rate_set)
{
	unsigned long long u;
	double d;
	int bad = 0;
	switch (opt) {
	case O_TARGET: {
		/* Repeated, or a comma-separated list: several gateways share the load. */
		char list[1024];
		if (strlen(arg) >= sizeof(list))
			return -EINVAL;
		strcpy(list, arg);
		char *save = NULL;
		for (char *one = strtok_r(list, ",", &save); one && !bad; one = strtok_r(NULL, ",", &save)) {
			unsigned port;
			if (c->t.n == LG_MAX_TARGETS)
				return -EINVAL;
			struct lg_endpoint *ep = &c->t.ep[c->t.n];
			bad = parse_hostport(one, ep->host, sizeof(ep->host), &port);
			ep->port = (uint16_t)port;
			c->t.n += !bad;
		}
		c->have_target = c->t.n > 0;
		break;
	}
	case O_PROFILE: break; /* loaded before the other options */
	case O_RATE:
		*rate_set = true;
		if (strcmp(arg, "max") == 0) {
			p->closed_loop = true;
		} else {
			char *end;
			d = strtod(arg, &end);
			if (*end || !(d > 0 && d <= 10e6))
				return -EINVAL;
			if (c->profile && !c->find_capacity)
				return -ENOTSUP;
			p->closed_loop = false;
			p->stages[0].from_rate = p->stages[0].to_rate = d;
			c->cap.start_rate = d;
		}
		break;
	case O_DURATION:
		if (c->profile)
			return -ENOTSUP;
		bad = prof_parse_duration(arg, &d);
		p->stages[0].duration_s = d;
		p->closed_duration_s = d;
		c->duration_set = true;
		break;
	case O_REQUESTS: bad = parse_uint(arg, 1, UINT64_MAX, &u); p->max_requests = u; break;
	case O_CONNECTIONS: bad = parse_uint(arg, 1, 100000, &u); p->connections = (unsigned)u; break;
	case O_THREADS: bad = parse_uint(arg, 1, 64, &u); p->threads = (unsigned)u; break;
	case O_T0: {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		bad = prof_parse_t0(arg, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &p->t0_unix_ms);
		break;
	}
	case O_ARRIVAL:
		if (strcmp(arg, "uniform") == 0)
			p->arrival = PROF_UNIFORM;
		else if (strcmp(arg, "poisson") == 0)
			p->arrival = PROF_POISSON;
		else
			bad = -EINVAL;
		break;
	case O_SKUS:
		if (c->profile)
			return -ENOTSUP;
		bad = parse_uint(arg, 1, 10000000, &u);
		p->classes[0].count = p->skus = (unsigned)u;
		break;
	case O_SKU_PREFIX:
	case O_USER_PREFIX: {
		size_t n = strlen(arg);
		if (!n || n >= PROF_PREFIX_MAX || n + 10 > 64)
			return -EINVAL;
		strcpy(opt == O_SKU_PREFIX ? p->sku_prefix : p->user_prefix, arg);
		break;
	}
	case O_ZIPF: {
		char *end;
		p->zipf = strtod(arg, &end);
		bad = *end || !(p->zipf >= 0 && p->zipf <= 10) ? -EINVAL : 0;
		break;
	}
	case O_USERS: bad = parse_uint(arg, 1, 1000000000, &u); p->users = (unsigned)u; break;
	case O_QTY: bad = parse_uint(arg, 1, 1000000, &u); p->qty = (unsigned)u; break;
	case O_RETRIES: bad = parse_uint(arg, 0, 100, &u); p->retries = (unsigned)u; break;
	case O_KEYS: p->idempotency_keys = true; break;
	case O_SIGN_KEY:
		bad = strlen(arg) >= sizeof(p->sign_key);
		if (!bad)
			strcpy(p->sign_key, arg);
		break;
	case O_DUPLICATES: bad = parse_share(arg, &p->duplicate_share); break;
	case O_MALFORMED: bad = parse_share(arg, &p->malformed_share); break;
	case O_ABANDON: bad = parse_share(arg, &p->abandon_share); break;
	case O_TIMEOUT: bad = parse_uint(arg, 1, 3600000, &u); p->timeout_ms = (unsigned)u; break;
	case O_SEED: bad = parse_uint(arg, 0, UINT64_MAX, &u); p->seed = u; break;
	case O_JSON: c->json = arg; break;
	case O_HTML: c->html = arg; break;
	case O_ACCEPTED_LOG:
		if (c->n_logs == LG_MAX_LOGS)
			return -EINVAL;
		c->accepted_log = c->accepted_logs[c->n_logs++] = arg;
		break;
	case O_SHARD: {
		unsigned i, n;
		char tail;
		if (sscanf(arg, "%u/%u%c", &i, &n, &tail) != 2 || i < 1 || i > n || n > 1000)
			return -EINVAL;
		c->shard = i;
		c->shards = n;
		c->v.others = n > 1;
		break;
	}
	case O_EXPECT_OTHERS: c->v.others = true; break;
	case O_REPLAY: c->replay = arg; break;
	case O_LIVE_JSON:
		if (strncmp(arg, "fd:", 3) == 0) {
			bad = parse_uint(arg + 3, 1, 1 << 20, &u);
			if (!bad && fcntl((int)u, F_GETFD) < 0) {
				fprintf(stderr, "flashload: --live-json %s: no such open descriptor\n", arg);
				return -E2BIG;
			}
			c->t.live_fd = (int)u;
		} else {
			c->t.live_fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (c->t.live_fd < 0) {
				fprintf(stderr, "flashload: --live-json %s: %s\n", arg, strerror(errno));
				return -E2BIG;
			}
		}
		break;
	case O_SPEED: {
		char *end;
		c->speed = strtod(arg, &end);
		bad = *end || !(c->speed > 0 && c->speed <= 1000) ? -EINVAL : 0;
		break;
	}
	case O_WRITE_STOCK: c->write_stock = arg; break;
	case O_QUIET: c->t.quiet = true; break;
	case O_FIND_CAPACITY: break; /* seen before the other options */
	case O_P99:
		c->p99_set = true;
		bad = prof_parse_duration(arg, &d);
		if (!bad && d <= 0)
			bad = -EINVAL;
		c->cap.p99_target_us = (uint64_t)llround(d * 1e6);
		break;
	case O_STEP:
		bad = prof_parse_duration(arg, &d);
		if (!bad && d < 0.5)
			bad = -EINVAL;
		c->cap.step_s = d;
		break;
	case O_VERIFY: c->verify = true; break;
	case O_CONFIG: c->config = arg; break;
	case O_REDIS:
		bad = parse_hostport(arg, c->v.redis_host, sizeof(c->v.redis_host), &c->v.redis_port);
		break;
	case O_KAFKA: snprintf(c->v.kafka_brokers, sizeof(c->v.kafka_brokers), "%s", arg); break;
	case O_TOPIC: snprintf(c->v.topic, sizeof(c->v.topic), "%s", arg); break;
	case O_VERIFY_ONLY: c->verify_only = c->verify = true; break;
	case O_RECONCILED: c->v.reconciled = true; break;
	case O_SCALE: {
		char *end;
		c->scale = strtod(arg, &end);
		bad = *end || !(c->scale > 0 && c->scale <= 10000) ? -EINVAL : 0;
		break;
	}
	case O_THRESHOLD: {
		char why[160];
		if (c->n_thr == THR_MAX) {
			fprintf(stderr, "flashload: --threshold: at most %d\n", THR_MAX);
			return -E2BIG;
		}
		if (thr_parse(arg, &c->thr[c->n_thr], why, sizeof(why)) < 0) {
			fprintf(stderr, "flashload: --threshold '%s': %s\n", arg, why);
			return -E2BIG;
		}
		c->n_thr++;
		break;
	}
	default: return -EINVAL;
	}
	return bad;
}

/* The first threshold naming a stage p does not have, or NULL. */
static const struct threshold *unknown_stage(const struct threshold *thr, unsigned n, const struct lg_profile *p)
{
	for (unsigned k = 0; k < n; k++) {
		bool found = !thr[k].stage[0];
		for (unsigned i = 0; i < (p->closed_loop ? 1 : p->n_stages) && !found; i++)
			found = strcmp(report_stage_name(p, i), thr[k].stage) == 0;
		if (!found)
			return &thr[k];
	}
	return NULL;
}

/* Parses the command line over the profile; 0, 1 (--help shown) or 2 (usage). */
static int parse_cli(int argc, char **argv, struct lg_profile *p, struct cli *c)
{
	int opt, li;
	bool rate_set = false;
	/* First pass: the profile is the base the other options override. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", long_opts, &li)) != -1) {
		if (opt == O_PROFILE)
			c->profile = optarg;
		else if (opt == O_FIND_CAPACITY)
			c->find_capacity = true;
	}
	if (c->profile) {
		char err[512];
		if (prof_load(p, c->profile, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			return 2;
		}
	}
	optind = 1;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "h", long_opts, &li)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return 1;
		}
		if (opt == '?') {
			usage(stderr);
			return 2;
		}
		int rc = apply(p, c, opt, optarg, &rate_set);
		if (rc == -ENOTSUP) {
			fprintf(stderr, "flashload: --%s: the profile's stages and classes set this; edit "
					"the profile or drop --profile\n", long_opts[li].name);
			return 2;
		}
		if (rc == -E2BIG) /* said why already */
			return 2;
		if (rc < 0) {
			fprintf(stderr, "flashload: --%s: invalid value '%s'\n", long_opts[li].name,
				optarg ? optarg : "");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "flashload: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (c->p99_set && !c->find_capacity) {
		fprintf(stderr, "flashload: --p99 is the target of --find-capacity; to gate a run "
				"on it, use --threshold 'p99<5ms'\n");
		return 2;
	}
	if (c->n_thr && (c->find_capacity || c->verify_only)) {
		fprintf(stderr, "flashload: --threshold judges a run's answers: not with %s\n",
			c->find_capacity ? "--find-capacity" : "--verify-only");
		return 2;
	}
	if (c->n_logs > 1 && !c->verify_only) {
		fprintf(stderr, "flashload: a run writes one --accepted-log; several are for --verify-only\n");
		return 2;
	}
	/* A shard runs 1/N of the sale: the same shape at 1/N the rate, and
	 * users of its own (the same count in all, named apart by prefix). */
	double share = c->shards > 1 ? 1.0 / c->shards : 1.0;
	for (unsigned k = 0; k < p->n_stages; k++) {
		p->stages[k].from_rate *= (c->scale > 0 ? c->scale : 1) * share;
		p->stages[k].to_rate *= (c->scale > 0 ? c->scale : 1) * share;
	}
	if (c->shards > 1) {
		char prefix[PROF_PREFIX_MAX];
		int n = snprintf(prefix, sizeof(prefix), "%sg%u-", p->user_prefix, c->shard);
		if (n < 0 || (size_t)n >= sizeof(prefix) || n + 10 > 64) {
			fprintf(stderr, "flashload: --shard: the user prefix '%s' has no room for the shard's mark\n",
				p->user_prefix);
			return 2;
		}
		memcpy(p->user_prefix, prefix, (size_t)n + 1);
		p->users = (p->users + c->shards - 1) / c->shards;
		if (p->max_requests)
			p->max_requests = (p->max_requests + c->shards - 1) / c->shards;
	}
	if (c->replay) {
		if (rate_set || c->duration_set || c->scale > 0 || c->find_capacity) {
			fprintf(stderr, "flashload: --replay: the trace is the schedule: not with --rate, "
					"--duration, --scale or --find-capacity (--speed replays it faster)\n");
			return 2;
		}
		char err[512];
		if (trace_load(c->replay, &c->trace, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: --replay: %s\n", err);
			return 2;
		}
		if (c->shards > 1)
			trace_shard(&c->trace, c->shard, c->shards);
		if (c->trace.n == 0) {
			fprintf(stderr, "flashload: --replay: shard %u of %u has no orders of the trace\n",
				c->shard, c->shards);
			return 2;
		}
		/* One stage spanning the trace at its mean rate, for the
		 * reports; the arrivals themselves are the trace's. */
		double speed = c->speed > 0 ? c->speed : 1;
		double secs = c->trace.duration_s / speed;
		if (secs < 0.001)
			secs = 0.001;
		p->trace = &c->trace;
		p->replay_speed = speed;
		p->closed_loop = false;
		p->n_stages = 1;
		p->stages[0] = (struct prof_stage){"replay", secs, (double)c->trace.n / secs,
						   (double)c->trace.n / secs};
		p->users = c->trace.users;
		if (c->trace.skus) {
			if (!c->profile)
				p->classes[0].count = c->trace.skus;
			p->skus = c->trace.skus; /* past the classes: the last class's terms */
		}
	} else if (c->speed > 0) {
		fprintf(stderr, "flashload: --speed is for --replay\n");
		return 2;
	}
	if (!c->profile && !rate_set && !c->replay)
		p->closed_loop = true; /* the command line's default: as fast as answers come */
	if (p->closed_loop && p->max_requests && !c->duration_set && !c->profile)
		p->closed_duration_s = 0; /* --requests alone: run until that many */
	if (p->duplicate_share > 0 || p->retries > 0)
		p->idempotency_keys = true; /* a retry without the key could buy twice */
	const struct threshold *t = unknown_stage(c->thr, c->n_thr, p);
	if (t) {
		fprintf(stderr, "flashload: --threshold '%s': the profile has no stage '%s'\n", t->text, t->stage);
		return 2;
	}
	return 0;
}

/* Options that shape the traffic: two generators of one sale agree on
 * these (the others: where to send, how many threads, what to write). */
static bool shapes_traffic(int opt)
{
	switch (opt) {
	case O_RATE: case O_DURATION: case O_SCALE: case O_REQUESTS: case O_ARRIVAL: case O_SKUS:
	case O_SKU_PREFIX: case O_ZIPF: case O_USERS: case O_USER_PREFIX: case O_QTY: case O_RETRIES:
	case O_KEYS: case O_DUPLICATES: case O_MALFORMED: case O_ABANDON: case O_TIMEOUT:
	case O_REPLAY: case O_SPEED:
		return true;
	default:
		return false;
	}
}

static int digest_file(EVP_MD_CTX *md, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int rc = -errno;
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return rc;
	}
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(md, buf, n);
	fclose(f);
	return 0;
}

/* The sale's digest: SHA-256 of the profile file and the traffic options,
 * so `flashload merge` can tell reports of one sale from another's. */
static int sale_digest(int argc, char **argv, const char *profile, char hex[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = -ENOMEM;
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		goto out;
	EVP_DigestUpdate(md, "flashload-sale-1\n", 17);
	if (profile && (rc = digest_file(md, profile)) < 0)
		goto out;
	rc = -ENOMEM;
	int opt, li;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", long_opts, &li)) != -1) {
		if (!shapes_traffic(opt))
			continue;
		/* A replay is its trace's contents, wherever each box keeps it. */
		if (opt == O_REPLAY) {
			EVP_DigestUpdate(md, "replay=", 7);
			if ((rc = digest_file(md, optarg)) < 0)
				goto out;
			rc = -ENOMEM;
			continue;
		}
		EVP_DigestUpdate(md, long_opts[li].name, strlen(long_opts[li].name));
		EVP_DigestUpdate(md, "=", 1);
		if (optarg)
			EVP_DigestUpdate(md, optarg, strlen(optarg));
		EVP_DigestUpdate(md, "\n", 1);
	}
	unsigned char d[32];
	unsigned dlen = 0;
	if (!EVP_DigestFinal_ex(md, d, &dlen) || dlen != sizeof(d))
		goto out;
	for (unsigned i = 0; i < dlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

/* The command line as one string, for the report's record. */
static char *command_text(int argc, char **argv)
{
	size_t len = 1;
	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 3;
	char *s = malloc(len), *at = s;
	if (!s)
		return NULL;
	for (int i = 0; i < argc; i++) {
		bool plain = argv[i][strcspn(argv[i], " \t'\"")] == '\0' && argv[i][0];
		at += sprintf(at, plain ? "%s%s" : "%s'%s'", i ? " " : "", argv[i]);
	}
	return s;
}

static int run_capacity(const struct lg_profile *p, struct cli *c)
{
	struct cap_result res;
	char err[256];
	if (cap_find(p, &c->t, &c->cap, stdout, &res, err, sizeof(err)) < 0) {
		fprintf(stderr, "flashload: %s\n", err);
		return 3;
	}
	if (c->json && cap_json(c->json, &c->cap, &res) < 0)
		return 3;
	return res.capacity > 0 ? 0 : 1;
}

static void meta_host(struct report_meta *m)
{
	if (gethostname(m->host, sizeof(m->host)) < 0)
		snprintf(m->host, sizeof(m->host), "unknown");
	m->host[sizeof(m->host) - 1] = '\0';
}

/* flashload merge: the reports of several generators as one sale's. */
static int merge_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", required_argument, 0, 'j'}, {"html", required_argument, 0, 'H'},
		{"threshold", required_argument, 0, 't'}, {"force", no_argument, 0, 'f'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	const char *json = NULL, *html = NULL;
	bool force = false;
	static struct threshold thr[THR_MAX];
	unsigned n_thr = 0;
	int opt;
	char err[512];
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = optarg; break;
		case 'H': html = optarg; break;
		case 'f': force = true; break;
		case 't':
			if (n_thr == THR_MAX || thr_parse(optarg, &thr[n_thr], err, sizeof(err)) < 0) {
				fprintf(stderr, "flashload merge: --threshold '%s': %s\n", optarg,
					n_thr == THR_MAX ? "too many" : err);
				return 2;
			}
			n_thr++;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	size_t n = (size_t)(argc - optind);
	if (n < 1 || n > MERGE_MAX_REPORTS) {
		fprintf(stderr, "flashload merge: give 1 to %d JSON reports\n", MERGE_MAX_REPORTS);
		return 2;
	}
	struct merged m;
	int rc = merge_reports((const char *const *)argv + optind, n, force, &m, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "flashload merge: %s\n", err);
		return rc == -EINVAL ? 2 : 3;
	}
	struct report_meta meta = {.shard = 1, .shards = 1, .t0_unix_ms = m.t0_unix_ms,
				   .generators = m.generators, .thr = thr, .n_thr = n_thr};
	char *command = command_text(argc + 1, argv - 1);
	meta.command = command;
	snprintf(meta.profile_digest, sizeof(meta.profile_digest), "%s", m.profile_digest);
	meta_host(&meta);
	const struct threshold *t = unknown_stage(thr, n_thr, &m.p);
	if (t) {
		fprintf(stderr, "flashload merge: --threshold '%s': the reports have no stage '%s'\n", t->text,
			t->stage);
		free(command);
		merge_free(&m);
		return 2;
	}
	printf("flashload merge: %u generators' reports\n", m.generators);
	report_text(stdout, &m.p, &m.t, &m.r);
	report_gate(&meta, &m.p, &m.r);
	report_gate_text(stdout, &meta);
	int exit_code = 0;
	if ((json && report_json(json, &m.p, &m.t, &m.r, NULL, &meta) < 0) ||
	    (html && html_write(html, &m.p, &m.t, &m.r, NULL, &meta) < 0))
		exit_code = 3;
	else if (meta.thr_missed || meta.no_api_answer)
		exit_code = 1;
	free(command);
	merge_free(&m);
	return exit_code;
}

/* flashload record: a past sale's topic as a trace for --replay. */
static int record_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, 0, 'c'}, {"kafka", required_argument, 0, 'k'},
		{"topic", required_argument, 0, 't'}, {"since", required_argument, 0, 's'},
		{"until", required_argument, 0, 'u'}, {"sku-prefix", required_argument, 0, 'p'},
		{"anon-key", required_argument, 0, 'a'}, {"out", required_argument, 0, 'o'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	static struct cfg cfg;
	struct record_opts o = {.kafka = {.brokers = "127.0.0.1:19092"}, .topic = "orders", .sku_prefix = ""};
	const char *anon_path = NULL;
	char err[512];
	int opt;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (cfg_load(&cfg, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "flashload record: %s\n", err);
				return 2;
			}
			o.kafka = (struct kprops){cfg.kafka_brokers, cfg.kafka_properties, cfg.kafka_client_properties};
			o.topic = cfg.kafka_topic;
			break;
		case 'k': o.kafka.brokers = optarg; break;
		case 't': o.topic = optarg; break;
		case 's':
		case 'u':
			if (prof_parse_t0(optarg, now_ms, opt == 's' ? &o.since_ms : &o.until_ms) < 0) {
				fprintf(stderr, "flashload record: --%s: '%s' is not unix ms or "
						"YYYY-MM-DDTHH:MM:SSZ\n", opt == 's' ? "since" : "until", optarg);
				return 2;
			}
			break;
		case 'p': o.sku_prefix = optarg; break;
		case 'a': anon_path = optarg; break;
		case 'o': o.out = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.out || optind < argc) {
		fprintf(stderr, "flashload record: --out FILE is required (and nothing else after the options)\n");
		return 2;
	}
	if (anon_path) {
		FILE *f = fopen(anon_path, "rb");
		if (!f) {
			fprintf(stderr, "flashload record: %s: %s\n", anon_path, strerror(errno));
			return 2;
		}
		o.anon_key_len = fread(o.anon_key, 1, sizeof(o.anon_key), f);
		fclose(f);
		if (o.anon_key_len < 16) {
			fprintf(stderr, "flashload record: %s: an anonymising key of at least 16 bytes\n", anon_path);
			return 2;
		}
	} else {
		/* A key for this recording alone: its users cannot be linked to
		 * another recording's. */
		o.anon_key_len = 32;
		if (RAND_bytes(o.anon_key, 32) != 1) {
			fprintf(stderr, "flashload record: no randomness for the anonymising key\n");
			return 3;
		}
	}
	long long n = record_run(&o, err, sizeof(err));
	explicit_bzero(o.anon_key, sizeof(o.anon_key));
	if (n < 0) {
		fprintf(stderr, "flashload record: %s\n", err);
		return n == -ENOENT ? 1 : 3;
	}
	printf("flashload record: %lld orders to %s\n", n, o.out);
	return 0;
}

/* Leaving main before the run: what parse_cli loaded goes. */
static int done(struct cli *c, int code)
{
	trace_free(&c->trace);
	return code;
}

static void on_stop_signal(int sig)
{
	(void)sig;
	lg_request_stop();
}

int main(int argc, char **argv)
{
	struct lg_profile p;
	struct cli c = {
		.t = {.live_fd = -1},
		.v = {.redis_host = "127.0.0.1", .redis_port = 16379, .kafka_brokers = "127.0.0.1:19092",
		      .topic = "orders"},
		.cap = {.p99_target_us = 5000, .step_s = 5, .start_rate = 1000, .max_steps = 16},
	};
	if (argc >= 2 && strcmp(argv[1], "merge") == 0)
		return merge_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "record") == 0)
		return record_main(argc - 1, argv + 1);
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("flashload %s (commit %s)\n", FLASHGATE_VERSION, flashgate_commit);
		return 0;
	}
	prof_defaults(&p);
	p.closed_duration_s = 10;
	int rc = parse_cli(argc, argv, &p, &c);
	if (rc)
		return done(&c, rc == 1 ? 0 : rc);
	char err[512];
	if (prof_check(&p, err, sizeof(err)) < 0) {
		fprintf(stderr, "flashload: %s\n", err);
		return done(&c, 2);
	}
	if (p.t0_unix_ms && !c.write_stock) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t late_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - p.t0_unix_ms;
		if (late_ms > 1000) {
			fprintf(stderr, "flashload: T0 is %.1f s in the past\n", (double)late_ms / 1000);
			return done(&c, 2);
		}
	}
	if (c.write_stock) {
		if (prof_write_stock(&p, c.write_stock, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			return done(&c, 3);
		}
		return done(&c, 0);
	}
	if (c.verify_only && !c.accepted_log) {
		fprintf(stderr, "flashload: --verify-only needs --accepted-log FILE\n");
		return done(&c, 2);
	}
	if (!c.have_target && !c.verify_only) {
		fprintf(stderr, "flashload: --target HOST:PORT is required\n");
		usage(stderr);
		return done(&c, 2);
	}
	if (c.config) {
		struct cfg cfg;
		if (cfg_load(&cfg, c.config, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			return done(&c, 2);
		}
		snprintf(c.v.redis_host, sizeof(c.v.redis_host), "%s", cfg.redis_host);
		c.v.redis_port = cfg.redis_port;
		snprintf(c.v.redis_user, sizeof(c.v.redis_user), "%s", cfg.redis_user);
		snprintf(c.v.redis_password, sizeof(c.v.redis_password), "%s", cfg.redis_password);
		explicit_bzero(cfg.redis_password, sizeof(cfg.redis_password));
		snprintf(c.v.kafka_brokers, sizeof(c.v.kafka_brokers), "%s", cfg.kafka_brokers);
		memcpy(c.v.kafka_properties, cfg.kafka_properties, sizeof(c.v.kafka_properties));
		memcpy(c.v.kafka_properties_file, cfg.kafka_client_properties, sizeof(c.v.kafka_properties_file));
		snprintf(c.v.topic, sizeof(c.v.topic), "%s", cfg.kafka_topic);
	}
	if (c.t.n > p.connections) {
		fprintf(stderr, "flashload: %u gateways need at least as many --connections (%u)\n", c.t.n,
			p.connections);
		return done(&c, 2);
	}
	c.t.live_tty = isatty(STDERR_FILENO);
	if (c.find_capacity)
		return done(&c, run_capacity(&p, &c));

	struct report_meta meta = {.shard = c.shards ? c.shard : 1, .shards = c.shards ? c.shards : 1,
				   .t0_unix_ms = p.t0_unix_ms, .accepted_log = c.accepted_log, .generators = 1,
				   .thr = c.thr, .n_thr = c.n_thr};
	char *command = command_text(argc, argv);
	meta.command = command;
	meta_host(&meta);
	if (sale_digest(argc, argv, c.profile, meta.profile_digest) < 0) {
		free(command);
		return done(&c, 3);
	}

	struct lg_result r;
	memset(&r, 0, sizeof(r));
	int exit_code = 0;
	if (c.verify_only) {
		if (lg_result_init(&r, p.closed_loop ? 1 : p.n_stages) < 0) {
			fprintf(stderr, "flashload: out of memory\n");
			exit_code = 3;
			goto out;
		}
		for (unsigned k = 0; k < c.n_logs; k++) {
			if (read_accepted(c.accepted_logs[k], &r) < 0) {
				exit_code = 3;
				goto out;
			}
		}
	} else {
		/* Ctrl-C or a TERM from CI ends the schedule, not the report: the
		 * second one kills as usual. */
		if (c.t.live_fd >= 0)
			signal(SIGPIPE, SIG_IGN); /* a dashboard that goes away does not stop the run */
		struct sigaction sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESETHAND};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		int run_rc = lg_run(&p, &c.t, &r, err, sizeof(err));
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (run_rc < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			exit_code = 3;
			goto out;
		}
		report_text(stdout, &p, &c.t, &r);
		report_gate(&meta, &p, &r);
		report_gate_text(stdout, &meta);
		if (c.accepted_log && write_accepted(c.accepted_log, &r) < 0) {
			exit_code = 3;
			goto out;
		}
	}
	struct verify_report rep;
	int fails = 0;
	if (c.verify && r.interrupted) {
		fprintf(stderr, "flashload: interrupted: not verifying (answers may still be due); "
				"--verify-only --accepted-log checks the books later\n");
		c.verify = false;
	}
	if (c.verify) {
		fflush(stdout);
		c.v.accepted_ids = r.accepted_ids;
		c.v.n_accepted = r.n_accepted;
		c.v.accepted_units = r.accepted_units;
		c.v.sku_prefix = p.sku_prefix;
		c.v.have_client = !c.verify_only;
		c.v.key_conflicts = r.key_conflicts;
		c.v.abandoned = r.orders_abandoned;
		for (int k = 0; k < MAL_KINDS; k++) {
			c.v.malformed_sent += r.malformed_sent[k];
			c.v.malformed_ok += r.malformed_ok[k];
		}
		fails = verify_run(&c.v, &rep, stdout);
		if (fails < 0) {
			fprintf(stderr, "flashload: verification could not be done\n");
			exit_code = 3;
			goto out;
		}
	}
	const struct verify_report *vr = c.verify ? &rep : NULL;
	if ((c.json && report_json(c.json, &p, &c.t, &r, vr, &meta) < 0) ||
	    (c.html && html_write(c.html, &p, &c.t, &r, vr, &meta) < 0)) {
		exit_code = 3;
		goto out;
	}
	if (meta.thr_missed) {
		fprintf(stderr, "flashload: %u threshold%s missed:", meta.thr_missed, meta.thr_missed == 1 ? "" : "s");
		for (unsigned k = 0; k < meta.n_thr; k++)
			if (!meta.verdicts[k].ok)
				fprintf(stderr, " %s (%s);", meta.thr[k].text, meta.verdicts[k].detail);
		fputc('\n', stderr);
	}
	if (meta.no_api_answer)
		fprintf(stderr, "flashload: not one answer came from an order API\n");
	if (r.interrupted)
		exit_code = 130;
	else if (fails || meta.thr_missed || meta.no_api_answer)
		exit_code = 1;
out:
	lg_result_free(&r);
	trace_free(&c.trace);
	free(command);
	return exit_code;
}
