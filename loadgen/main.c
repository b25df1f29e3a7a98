/*
 * flashload: flashgate's load generator. Replays a sale's traffic profile
 * (or a single steady stage from the command line) on an open-loop
 * schedule, reports what the clients saw (text, JSON, HTML), searches for
 * the capacity under a p99 target, and with --verify proves afterwards
 * from Redis and Kafka that the books balance.
 *
 * Owns: the command line, which outputs are written, and the exit code
 * (0 ok, 1 verification failed, 2 usage, 3 the run could not be done).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/version.h"
#include "../core/cfg.h"
#include "../core/oid.h"
#include "capacity.h"
#include "html.h"
#include "profile.h"
#include "report.h"
#include "run.h"
#include "verify.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: flashload --target HOST:PORT[,HOST:PORT...] [--profile FILE] [options]\n"
		"       flashload --version\n"
		"  (--target may be repeated: the connections are spread evenly over the gateways)\n"
		"traffic (a profile file has all of these; options override it):\n"
		"  --profile FILE      stages, catalogue, users, retries and mix (config/profiles/)\n"
		"  --rate R|max        without a profile: one stage at R req/s on an open-loop\n"
		"                      schedule, or max (closed loop: each connection sends when\n"
		"                      answered) [max]\n"
		"  --duration D        without a profile: that stage's length: 10s, 500ms, 2m [10s]\n"
		"  --scale F           multiply every stage's rates by F (same shape, other size)\n"
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
static int write_accepted(const char *path, const struct lg_profile *p, const struct lg_result *r)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < r->n_accepted; i++) {
		char id[OID_TEXT_LEN + 1];
		oid_format(r->accepted_ids[i], id);
		fprintf(f, "%s %u\n", id, p->qty);
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

static int read_accepted(const char *path, struct lg_result *r)
{
	memset(r, 0, sizeof(*r));
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
			r->orders_abandoned = abandoned;
			continue;
		}
		if (sscanf(line, "%31s %u", id, &qty) != 2 || oid_parse(id, strlen(id), &v) < 0) {
			fprintf(stderr, "flashload: %s:%d: expected 'ORDER_ID QTY'\n", path, lineno);
			fclose(f);
			lg_result_free(r);
			return -EINVAL;
		}
		if (r->n_accepted == r->cap_accepted) {
			size_t cap = r->cap_accepted ? 2 * r->cap_accepted : 4096;
			uint64_t *grown = realloc(r->accepted_ids, cap * sizeof(*grown));
			if (!grown) {
				fclose(f);
				lg_result_free(r);
				return -ENOMEM;
			}
			r->accepted_ids = grown;
			r->cap_accepted = cap;
		}
		r->accepted_ids[r->n_accepted++] = v;
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

/* Everything the command line asks for besides the profile. */
struct cli {
	struct lg_target t;
	struct verify_opts v;
	const char *profile, *config, *json, *html, *accepted_log, *write_stock;
	bool verify, verify_only, have_target;
	bool find_capacity, duration_set;
	double scale;
	struct cap_opts cap;
};

enum {
	O_TARGET = 256, O_PROFILE, O_RATE, O_DURATION, O_REQUESTS, O_CONNECTIONS, O_THREADS, O_T0,
	O_ARRIVAL, O_SKUS, O_SKU_PREFIX, O_ZIPF, O_USERS, O_USER_PREFIX, O_QTY, O_RETRIES, O_KEYS, O_SIGN_KEY,
	O_DUPLICATES, O_MALFORMED, O_TIMEOUT, O_SEED, O_JSON, O_HTML, O_ACCEPTED_LOG, O_WRITE_STOCK,
	O_QUIET, O_FIND_CAPACITY, O_P99, O_STEP, O_VERIFY, O_CONFIG, O_REDIS, O_KAFKA, O_TOPIC,
	O_VERIFY_ONLY, O_RECONCILED, O_SCALE, O_ABANDON,
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
	{"scale", required_argument, 0, O_SCALE},
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
	case O_ACCEPTED_LOG: c->accepted_log = arg; break;
	case O_WRITE_STOCK: c->write_stock = arg; break;
	case O_QUIET: c->t.quiet = true; break;
	case O_FIND_CAPACITY: break; /* seen before the other options */
	case O_P99:
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
	default: return -EINVAL;
	}
	return bad;
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
	for (unsigned k = 0; k < p->n_stages && c->scale > 0; k++) {
		p->stages[k].from_rate *= c->scale;
		p->stages[k].to_rate *= c->scale;
	}
	if (!c->profile && !rate_set)
		p->closed_loop = true; /* the command line's default: as fast as answers come */
	if (p->closed_loop && p->max_requests && !c->duration_set && !c->profile)
		p->closed_duration_s = 0; /* --requests alone: run until that many */
	if (p->duplicate_share > 0 || p->retries > 0)
		p->idempotency_keys = true; /* a retry without the key could buy twice */
	return 0;
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

int main(int argc, char **argv)
{
	struct lg_profile p;
	struct cli c = {
		.v = {.redis_host = "127.0.0.1", .redis_port = 16379, .kafka_brokers = "127.0.0.1:19092",
		      .topic = "orders"},
		.cap = {.p99_target_us = 5000, .step_s = 5, .start_rate = 1000, .max_steps = 16},
	};
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("flashload %s (commit %s)\n", FLASHGATE_VERSION, flashgate_commit);
		return 0;
	}
	prof_defaults(&p);
	p.closed_duration_s = 10;
	int rc = parse_cli(argc, argv, &p, &c);
	if (rc)
		return rc == 1 ? 0 : rc;
	char err[512];
	if (prof_check(&p, err, sizeof(err)) < 0) {
		fprintf(stderr, "flashload: %s\n", err);
		return 2;
	}
	if (p.t0_unix_ms && !c.write_stock) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t late_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - p.t0_unix_ms;
		if (late_ms > 1000) {
			fprintf(stderr, "flashload: T0 is %.1f s in the past\n", (double)late_ms / 1000);
			return 2;
		}
	}
	if (c.write_stock) {
		if (prof_write_stock(&p, c.write_stock, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			return 3;
		}
		return 0;
	}
	if (c.verify_only && !c.accepted_log) {
		fprintf(stderr, "flashload: --verify-only needs --accepted-log FILE\n");
		return 2;
	}
	if (!c.have_target && !c.verify_only) {
		fprintf(stderr, "flashload: --target HOST:PORT is required\n");
		usage(stderr);
		return 2;
	}
	if (c.config) {
		struct cfg cfg;
		if (cfg_load(&cfg, c.config, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			return 2;
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
		return 2;
	}
	c.t.live_tty = isatty(STDERR_FILENO);
	if (c.find_capacity)
		return run_capacity(&p, &c);

	struct lg_result r;
	if (c.verify_only) {
		if (read_accepted(c.accepted_log, &r) < 0)
			return 3;
	} else {
		if (lg_run(&p, &c.t, &r, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			lg_result_free(&r);
			return 3;
		}
		report_text(stdout, &p, &c.t, &r);
		if (c.accepted_log && write_accepted(c.accepted_log, &p, &r) < 0) {
			lg_result_free(&r);
			return 3;
		}
	}
	struct verify_report rep;
	int fails = 0;
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
			lg_result_free(&r);
			return 3;
		}
	}
	const struct verify_report *vr = c.verify ? &rep : NULL;
	if ((c.json && report_json(c.json, &p, &c.t, &r, vr) < 0) ||
	    (c.html && html_write(c.html, &p, &c.t, &r, vr) < 0)) {
		lg_result_free(&r);
		return 3;
	}
	lg_result_free(&r);
	return fails ? 1 : 0;
}
