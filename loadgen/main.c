/*
 * flashload: flashgate's load generator. Drives POST /v1/orders on an
 * open-loop schedule, reports what the clients saw, and with --verify
 * proves afterwards from Redis and Kafka that the books balance.
 *
 * Owns: the command line, the report and the exit code
 * (0 ok, 1 verification failed, 2 usage, 3 the run could not be done).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/cfg.h"
#include "../core/oid.h"
#include "run.h"
#include "verify.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: flashload --target HOST:PORT [options]\n"
		"  --rate R|max        requests per second on an open-loop schedule, or max\n"
		"                      (closed loop: each connection sends when answered) [max]\n"
		"  --duration D        schedule length: 10s, 500ms, 2m [10s]\n"
		"  --requests N        stop after N requests (with --rate: whichever comes first)\n"
		"  --connections C     keep-alive connections [64]\n"
		"  --skus M            SKUs PREFIX1..PREFIXM, Zipf-skewed popularity [10]\n"
		"  --sku-prefix P      [sku]\n"
		"  --users U           users PREFIX1..PREFIXU, uniform [10000]\n"
		"  --user-prefix P     [u]\n"
		"  --qty Q             units per order [1]\n"
		"  --zipf S            Zipf exponent of SKU popularity (0 = uniform) [0.99]\n"
		"  --timeout MS        a request without an answer after MS fails [10000]\n"
		"  --seed N            random seed (same seed, same order sequence)\n"
		"  --json FILE         also write the report as JSON\n"
		"  --accepted-log FILE write the order ids answered 202 (one per line, with qty)\n"
		"  --quiet             no live line\n"
		"verification (after the run):\n"
		"  --verify            check Redis and Kafka; exit 1 on any FAIL\n"
		"  --config CONF       take Redis and Kafka addresses from flashgate's config\n"
		"  --redis HOST:PORT   [127.0.0.1:16379]\n"
		"  --kafka BROKERS     [127.0.0.1:19092]\n"
		"  --topic T           [orders]\n"
		"  --verify-only       no load: verify the 202s listed in --accepted-log\n"
		"  --reconciled        after `flashgate reconcile`: orders without a 202 may be\n"
		"                      in the topic (published for a crashed gateway)\n");
}

static int parse_duration(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		return -EINVAL;
	if (*end == '\0' || strcmp(end, "s") == 0)
		*out = v;
	else if (strcmp(end, "ms") == 0)
		*out = v / 1000.0;
	else if (strcmp(end, "m") == 0)
		*out = v * 60.0;
	else
		return -EINVAL;
	return 0;
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

static void print_latency(FILE *out, const char *what, const struct hist *h)
{
	fprintf(out, "%-26s p50 %8.2f  p90 %8.2f  p99 %8.2f  p99.9 %8.2f  max %8.2f ms\n", what,
		(double)hist_percentile(h, 50) / 1000, (double)hist_percentile(h, 90) / 1000,
		(double)hist_percentile(h, 99) / 1000, (double)hist_percentile(h, 99.9) / 1000,
		(double)hist_max(h) / 1000);
}

static void report(FILE *out, const struct lg_opts *o, const struct lg_result *r)
{
	double achieved = r->elapsed_s > 0 ? (double)r->completed / r->elapsed_s : 0;
	fprintf(out, "flashload: %" PRIu64 " requests in %.2f s over %u connections: %.0f req/s achieved",
		r->completed, r->elapsed_s, o->connections, achieved);
	if (o->rate > 0)
		fprintf(out, " (schedule %.0f req/s)", o->rate);
	fprintf(out, "\n");
	for (int i = 0; i < LG_OUTCOMES; i++)
		fprintf(out, "%s%s %" PRIu64, i ? " | " : "status: ", lg_outcome_names[i], r->counts[i]);
	fprintf(out, "\n");
	if (r->unsent || r->connect_failures)
		fprintf(out, "not sent: %" PRIu64 " requests due but never sent; %" PRIu64
			     " connection attempts failed\n",
			r->unsent, r->connect_failures);
	print_latency(out, o->rate > 0 ? "latency (from intended)" : "latency (closed loop)", r->latency);
	print_latency(out, "service time", r->service);
	if (o->rate > 0) {
		fprintf(out, "send lag: max %.2f ms, %" PRIu64 " of %" PRIu64 " sent more than 1 ms late%s%s\n",
			(double)r->max_lag_us / 1000, r->late_sends, r->sent,
			r->conn_limited ? "  [requests waited for a connection: the server fell behind or --connections is too low; their wait is in the latency]" : "",
			r->generator_limited ? "  [generator-limited: flashload itself could not keep the schedule]" : "");
	}
}

static int write_json(const char *path, const struct lg_opts *o, const struct lg_result *r, int verify_fails)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "{\n  \"target\": \"%s:%u\",\n  \"rate\": %.3f,\n  \"connections\": %u,\n",
		o->host, o->port, o->rate, o->connections);
	fprintf(f, "  \"requests\": %" PRIu64 ",\n  \"elapsed_s\": %.6f,\n  \"achieved_rps\": %.3f,\n",
		r->completed, r->elapsed_s, r->elapsed_s > 0 ? (double)r->completed / r->elapsed_s : 0);
	fprintf(f, "  \"generator_limited\": %s,\n  \"connection_limited\": %s,\n  \"counts\": {",
		r->generator_limited ? "true" : "false", r->conn_limited ? "true" : "false");
	for (int i = 0; i < LG_OUTCOMES; i++)
		fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", lg_outcome_names[i], r->counts[i]);
	fprintf(f, "},\n");
	const struct hist *hs[2] = {r->latency, r->service};
	const char *names[2] = {"latency_us", "service_us"};
	for (int k = 0; k < 2; k++)
		fprintf(f, "  \"%s\": {\"p50\": %" PRIu64 ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64
			   ", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 "},\n",
			names[k], hist_percentile(hs[k], 50), hist_percentile(hs[k], 90),
			hist_percentile(hs[k], 99), hist_percentile(hs[k], 99.9), hist_max(hs[k]));
	fprintf(f, "  \"verify_failures\": %d\n}\n", verify_fails);
	if (fclose(f) != 0) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* One 202 a line: "ORDER_ID QTY". */
static int write_accepted(const char *path, const struct lg_opts *o, const struct lg_result *r)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "flashload: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < r->n_accepted; i++) {
		char id[OID_TEXT_LEN + 1];
		oid_format(r->accepted_ids[i], id);
		fprintf(f, "%s %u\n", id, o->qty);
	}
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

int main(int argc, char **argv)
{
	struct lg_opts o = {
		.rate = 0, .duration_s = 10, .connections = 64, .skus = 10, .users = 10000, .qty = 1,
		.sku_prefix = "sku", .user_prefix = "u", .zipf = 0.99, .timeout_ms = 10000,
	};
	struct verify_opts v = {.redis_host = "127.0.0.1", .redis_port = 16379,
				.kafka_brokers = "127.0.0.1:19092", .topic = "orders"};
	const char *config = NULL, *json = NULL, *accepted_log = NULL;
	bool verify = false, verify_only = false, have_target = false, duration_set = false;
	unsigned long long u;
	static const struct option opts[] = {
		{"target", required_argument, 0, 't'}, {"rate", required_argument, 0, 'r'},
		{"duration", required_argument, 0, 'd'}, {"requests", required_argument, 0, 'n'},
		{"connections", required_argument, 0, 'c'}, {"skus", required_argument, 0, 'S'},
		{"sku-prefix", required_argument, 0, 'P'}, {"users", required_argument, 0, 'U'},
		{"user-prefix", required_argument, 0, 'p'}, {"qty", required_argument, 0, 'q'},
		{"zipf", required_argument, 0, 'z'}, {"timeout", required_argument, 0, 'T'},
		{"seed", required_argument, 0, 's'}, {"json", required_argument, 0, 'j'},
		{"quiet", no_argument, 0, 'Q'}, {"verify", no_argument, 0, 'V'},
		{"config", required_argument, 0, 'C'}, {"redis", required_argument, 0, 'R'},
		{"kafka", required_argument, 0, 'K'}, {"topic", required_argument, 0, 'o'},
		{"accepted-log", required_argument, 0, 'A'}, {"verify-only", no_argument, 0, 'O'},
		{"reconciled", no_argument, 0, 'X'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	int opt, li = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, &li)) != -1) {
		int bad = 0;
		switch (opt) {
		case 't': {
			unsigned port;
			bad = parse_hostport(optarg, o.host, sizeof(o.host), &port);
			o.port = (uint16_t)port;
			have_target = true;
			break;
		}
		case 'r':
			if (strcmp(optarg, "max") == 0) {
				o.rate = 0;
			} else {
				char *end;
				o.rate = strtod(optarg, &end);
				bad = *end || o.rate <= 0 ? -EINVAL : 0;
			}
			break;
		case 'd': bad = parse_duration(optarg, &o.duration_s); duration_set = true; break;
		case 'n': bad = parse_uint(optarg, 1, UINT64_MAX, &u); o.max_requests = u; break;
		case 'c': bad = parse_uint(optarg, 1, 100000, &u); o.connections = (unsigned)u; break;
		case 'S': bad = parse_uint(optarg, 1, 10000000, &u); o.skus = (unsigned)u; break;
		case 'P': o.sku_prefix = optarg; break;
		case 'U': bad = parse_uint(optarg, 1, 1000000000, &u); o.users = (unsigned)u; break;
		case 'p': o.user_prefix = optarg; break;
		case 'q': bad = parse_uint(optarg, 1, 1000000, &u); o.qty = (unsigned)u; break;
		case 'z': {
			char *end;
			o.zipf = strtod(optarg, &end);
			bad = *end || o.zipf < 0 ? -EINVAL : 0;
			break;
		}
		case 'T': bad = parse_uint(optarg, 1, 3600000, &u); o.timeout_ms = (unsigned)u; break;
		case 's': bad = parse_uint(optarg, 0, UINT64_MAX, &u); o.seed = u; break;
		case 'j': json = optarg; break;
		case 'Q': o.quiet = true; break;
		case 'V': verify = true; break;
		case 'C': config = optarg; break;
		case 'R': bad = parse_hostport(optarg, v.redis_host, sizeof(v.redis_host), &v.redis_port); break;
		case 'K': snprintf(v.kafka_brokers, sizeof(v.kafka_brokers), "%s", optarg); break;
		case 'o': snprintf(v.topic, sizeof(v.topic), "%s", optarg); break;
		case 'A': accepted_log = optarg; break;
		case 'O': verify_only = verify = true; break;
		case 'X': v.reconciled = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad) {
			fprintf(stderr, "flashload: --%s: invalid value '%s'\n", opts[li].name, optarg);
			return 2;
		}
	}
	if (verify_only && !accepted_log) {
		fprintf(stderr, "flashload: --verify-only needs --accepted-log FILE\n");
		return 2;
	}
	if (!have_target && !verify_only) {
		fprintf(stderr, "flashload: --target HOST:PORT is required\n");
		usage(stderr);
		return 2;
	}
	if (o.max_requests && !duration_set)
		o.duration_s = 0; /* --requests alone: run until that many */
	if (strlen(o.sku_prefix) + 10 > 64 || strlen(o.user_prefix) + 10 > 64) {
		fprintf(stderr, "flashload: prefixes must leave room for a number within 64 characters\n");
		return 2;
	}
	if (config) {
		struct cfg cfg;
		char err[512];
		if (cfg_load(&cfg, config, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			return 2;
		}
		snprintf(v.redis_host, sizeof(v.redis_host), "%s", cfg.redis_host);
		v.redis_port = cfg.redis_port;
		snprintf(v.kafka_brokers, sizeof(v.kafka_brokers), "%s", cfg.kafka_brokers);
		snprintf(v.topic, sizeof(v.topic), "%s", cfg.kafka_topic);
	}
	o.live_tty = isatty(STDERR_FILENO);

	struct lg_result r;
	char err[256];
	if (verify_only) {
		if (read_accepted(accepted_log, &r) < 0)
			return 3;
	} else {
		if (lg_run(&o, &r, err, sizeof(err)) < 0) {
			fprintf(stderr, "flashload: %s\n", err);
			lg_result_free(&r);
			return 3;
		}
		report(stdout, &o, &r);
		if (accepted_log && write_accepted(accepted_log, &o, &r) < 0) {
			lg_result_free(&r);
			return 3;
		}
	}
	int fails = 0;
	if (verify) {
		fflush(stdout);
		v.accepted_ids = r.accepted_ids;
		v.n_accepted = r.n_accepted;
		v.accepted_units = r.accepted_units;
		v.sku_prefix = o.sku_prefix;
		fails = verify_run(&v, stdout);
		if (fails < 0) {
			fprintf(stderr, "flashload: verification could not be done\n");
			lg_result_free(&r);
			return 3;
		}
	}
	if (json && write_json(json, &o, &r, fails) < 0) {
		lg_result_free(&r);
		return 3;
	}
	lg_result_free(&r);
	return fails ? 1 : 0;
}
