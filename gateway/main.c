/*
 * flashgate: the order-ingestion gateway's command line.
 *
 *   flashgate -c CONF [serve]            run the gateway until SIGTERM/SIGINT;
 *                                        SIGHUP reloads CONF, SIGUSR1 reopens
 *                                        [log] file
 *   flashgate -c CONF -t                 check the config and print it
 *   flashgate -c CONF stock load [--replace] [--dry-run] FILE   a sale's stock from CSV
 *   flashgate -c CONF stock show SKU [--json]   one SKU's stock in one line
 *   flashgate -c CONF stock list [PREFIX] [--json]   every loaded SKU
 *   flashgate -c CONF stock add SKU N    restock: N more units
 *   flashgate -c CONF stock set SKU N    N units left to sell
 *   flashgate -c CONF stock release ORDER_ID [SKU]   give a cancelled order back
 *   flashgate -c CONF reconcile [--policy complete|release] [--min-age-ms N] [--dry-run]
 *
 * Owns: argument parsing, start-up order, signals, reloads (SIGHUP) and
 * the process exit code. Signals are blocked in every thread and taken
 * here with sigwait, so no handler runs inside a worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/jwt.h"
#include "access.h"
#include "admission.h"
#include "../core/cfg.h"
#include "../core/kprops.h"
#include "autorec.h"
#include "health.h"
#include "kpub.h"
#include "kwatch.h"
#include "lease.h"
#include "logline.h"
#include "notify.h"
#include "reconcile.h"
#include "stock.h"
#include "../core/version.h"
#include "worker.h"

/*
 * Read by jemalloc at its start (MALLOC_CONF in the environment still
 * applies on top). librdkafka's lz4 codec callocs a 68 KB frame buffer for
 * every produce request. Above jemalloc's default thread-cache limit
 * (32 KB) that calloc reuses a freed extent and zeroes it with
 * madvise(MADV_DONTNEED): a syscall, a TLB shootdown sent to the other
 * cores and a page fault per request, about 4,600 of each a second at 10k
 * orders/s. Caching sizes up to 128 KB per thread turns them into a memset.
 * The ASan build does not link jemalloc and ignores this.
 */
const char *malloc_conf = "tcache_max:131072";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: flashgate -c CONF [serve]           run the gateway\n"
		"       flashgate -c CONF -t [--probe]      check CONF, print the effective config and where\n"
		"                                           each value came from; --probe: and that Redis and\n"
		"                                           the brokers answer\n"
		"  before the command: --set SECTION.KEY=VALUE (repeatable) over the environment's\n"
		"  FLASHGATE_SECTION_KEY over CONF; durations take ms, s, m, h (250ms, 10s) and sizes B, KiB, MiB\n"
		"       flashgate -c CONF stock load [--replace] [--dry-run] FILE\n"
		"                                           load stock (CSV: sku,stock,per_user_limit); a SKU\n"
		"                                           that sold units needs --replace (its counts reset)\n"
		"       flashgate -c CONF stock show SKU [--json]   print one SKU's stock\n"
		"       flashgate -c CONF stock list [PREFIX] [--json]   every loaded SKU (starting with PREFIX)\n"
		"       flashgate -c CONF stock add SKU N   restock: N more units (seen within soldout_cache_ms)\n"
		"       flashgate -c CONF stock set SKU N   exactly N units left to sell (0 stops the SKU)\n"
		"       flashgate -c CONF stock release ORDER_ID [SKU]\n"
		"                                           a cancelled order's units back, exactly once\n"
		"       flashgate -c CONF reconcile [--policy complete|release] [--min-age-ms N] [--dry-run]\n"
		"                                           settle reservations a crashed gateway left\n"
		"       flashgate --version\n");
}

/* How long start-up asks the brokers about the topic. */
#define KAFKA_PROBE_MS 3000

/* While the gateway serves, its lines go to the log (logline: logfmt,
 * levels); before, and for the command-line tools, to stderr as
 * "flashgate: ...". */
static bool serving;

static void say(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(enum log_level level, const char *fmt, ...)
{
	char text[LOGLINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (serving)
		logline_write(level, "main", text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
	else
		fprintf(stderr, "flashgate: %s\n", text);
}

static void log_keys(const char *what, const struct jwt_keyset *keys, const char *dir)
{
	char line[LOGLINE_MAX];
	size_t n = 0;
	int k = snprintf(line, sizeof(line), "%s: %u key%s from %s:", what, keys->n, keys->n == 1 ? "" : "s", dir);
	n = k > 0 ? (size_t)k : 0;
	for (unsigned i = 0; i < keys->n && n < sizeof(line); i++) {
		k = snprintf(line + n, sizeof(line) - n, " %s (%s)", keys->keys[i].kid, jwt_alg_name(keys->keys[i].alg));
		n += k > 0 ? (size_t)k : 0;
	}
	say(LOG_INFO, "%s", line);
}

/* The identity keys, or with identity off a warning no one can miss: the
 * gateway then believes whatever user_id a body names. */
static int load_identity(const struct cfg *cfg, struct jwt_keyset *keys)
{
	char err[1200];
	if (strcmp(cfg->identity_mode, "off") == 0) {
		say(LOG_WARN, "WARNING: [identity] mode = off: orders are taken for whatever user_id "
			      "their body names; anyone can buy as anyone, and per-user limits and rates hold "
			      "against no one who can type another name");
		return 0;
	}
	if (jwt_keyset_load(keys, cfg->identity_keys, err, sizeof(err)) < 0) {
		say(LOG_ERROR, "not starting: [identity] keys: %s", err);
		return -EINVAL;
	}
	log_keys("identity", keys, cfg->identity_keys);
	return 0;
}

/* What overrides the file ([section] key from FLASHGATE_SECTION_KEY, then
 * --set), at start-up and at every reload alike. */
#define SETS_MAX 64
static struct cfg_overrides overrides;

/* A multi-line error, each line as its own "flashgate: ..." line. */
static void print_lines(const char *err)
{
	while (*err) {
		size_t n = strcspn(err, "\n");
		say(LOG_WARN, "%.*s", (int)n, err);
		err += n + (err[n] == '\n');
	}
}

/* READY=1 for the service manager once /readyz would say 200 (the
 * workers' Redis links up), or after READY_WAIT_MS with what is missing in
 * STATUS: a gateway that starts during an outage still started. */
#define READY_WAIT_MS 5000
static void notify_when_ready(const struct health *h)
{
	char body[HEALTH_BODY_MAX], status[HEALTH_BODY_MAX + 32];
	bool ok = false;
	for (int waited = 0; waited < READY_WAIT_MS; waited += 20) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		health_ready(h, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &ok, body, sizeof(body));
		if (ok)
			break;
		usleep(20000);
	}
	snprintf(status, sizeof(status), ok ? "serving" : "serving, not ready: %s", body);
	notify_status(status);
	notify_ready();
}

/* [log] file: opened (again) and put in place of stderr, so every thread's
 * next line goes there; the old file is closed by the same dup2. On a
 * failure stderr stays as it was. 0 or -errno (logged). */
static int open_log_file(const char *file)
{
	if (!*file)
		return 0;
	int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		say(LOG_ERROR, "[log] file %s: %s; logging on to the log as it was", file, strerror(-rc));
		return rc;
	}
	close(fd);
	return 0;
}

/* A configuration the process runs: the workers point into it until each
 * has taken a later one. */
struct config_set {
	struct worker_config wc;
	struct cfg cfg;
	struct jwt_keyset keys;
	bool node_auto; /* the file says node_id = auto; cfg has the id taken */
};

static struct config_set *config_set_new(const struct cfg *cfg, uint64_t gen)
{
	struct config_set *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	if (cfg)
		cs->cfg = *cfg;
	cs->wc.cfg = &cs->cfg;
	cs->wc.gen = gen;
	return cs;
}

static void config_set_free(struct config_set *cs)
{
	if (!cs)
		return;
	jwt_keyset_free(&cs->keys);
	explicit_bzero(&cs->cfg, sizeof(cs->cfg)); /* the Redis password, the admin token */
	free(cs);
}

static void log_change(void *arg, const char *section, const char *name, const char *running, const char *file,
		       bool live)
{
	unsigned long long gen = *(const uint64_t *)arg;
	if (live)
		say(LOG_INFO, "reload %llu: [%s] %s: %s -> %s", gen, section, name, running, file);
	else
		say(LOG_WARN, "reload %llu: [%s] %s: %s -> %s takes effect only at a restart; keeping %s", gen,
		    section, name, running, file, running);
}

/* How long a reload waits for every worker to take it: each does within a
 * loop turn, and a turn ends at least every tick (100 ms). */
#define RELOAD_WAIT_MS 5000

/*
 * SIGHUP: the file at path read again, whole or not at all. The keys that
 * can change live go to the workers and the reconcile thread; the others
 * keep their running values, each named in the log. gen numbers this
 * attempt (one per SIGHUP, refused or not, so each log line names its
 * own). Returns the set now running: next, or cur when the file was
 * refused.
 */
static struct config_set *reload(const char *path, uint64_t gen, struct config_set *cur, struct worker *workers,
				 unsigned n, struct autorec *autorec, struct lease *lease, struct kwatch *kwatch)
{
	char err[2600];
	struct config_set *next = config_set_new(NULL, gen);
	if (!next) {
		say(LOG_ERROR, "reload %llu refused: out of memory; running the configuration before",
		    (unsigned long long)gen);
		return cur;
	}
	if (cfg_load_over(&next->cfg, path, &overrides, NULL, err, sizeof(err)) < 0) {
		say(LOG_WARN, "reload %llu refused, running the configuration before:", (unsigned long long)gen);
		print_lines(err);
		goto refuse;
	}
	next->node_auto = cur->node_auto;
	if (next->node_auto && next->cfg.node_id == CFG_NODE_AUTO)
		next->cfg.node_id = cur->cfg.node_id; /* auto, as at start: the id taken then */
	unsigned kept = cfg_merge_live(&next->cfg, &cur->cfg, log_change, &gen);
	/* The key directory is read again even when its path is the same:
	 * that is how keys rotate. */
	if (cur->wc.keys) {
		if (jwt_keyset_load(&next->keys, next->cfg.identity_keys, err, sizeof(err)) < 0) {
			say(LOG_WARN, "reload %llu refused, running the configuration before: "
					"[identity] keys: %s", (unsigned long long)gen, err);
			goto refuse;
		}
		next->wc.keys = &next->keys;
	}
	for (unsigned i = 0; i < n; i++)
		worker_reconfigure(&workers[i], &next->wc);
	autorec_reconfigure(autorec, &next->cfg);
	lease_reconfigure(lease, &next->cfg);
	kwatch_reconfigure(kwatch, &cur->cfg, &next->cfg);

	bool all = false, failed = false;
	for (int waited = 0; !all && waited < RELOAD_WAIT_MS; waited += 10) {
		all = true;
		for (unsigned i = 0; i < n; i++) {
			int result;
			if (worker_config_gen(&workers[i], &result) < gen)
				all = false;
			else if (result < 0)
				failed = true;
		}
		if (!all)
			usleep(10000);
	}
	if (next->wc.keys) {
		char what[48];
		snprintf(what, sizeof(what), "reload %llu: identity", (unsigned long long)gen);
		log_keys(what, &next->keys, next->cfg.identity_keys);
	}
	if (!all || failed) {
		/* A worker may still read the configuration before: it stays. */
		say(LOG_WARN, "reload %llu: %s; the configuration before stays in memory", (unsigned long long)gen,
		    failed ? "a worker kept the configuration before (above)" : "not every worker has taken it yet");
	} else {
		config_set_free(cur);
	}
	logline_configure(next->cfg.log_level, next->cfg.log_format);
	open_log_file(next->cfg.log_file);
	say(LOG_INFO, "reloaded %s (reload %llu)%s", path, (unsigned long long)gen,
	    kept ? "; some changes wait for a restart (above)" : "");
	return next;
refuse:
	config_set_free(next);
	return cur;
}

static int serve(const struct cfg *boot, const char *path)
{
	const struct cfg *cfg = boot; /* then the running set's, until the signal loop */
	char err[512];
	logline_configure(cfg->log_level, cfg->log_format);
	serving = true;
	if (open_log_file(cfg->log_file) < 0)
		return 1;
	struct script_shas shas;
	struct worker *workers = NULL;
	struct metrics *metrics = NULL;
	struct autorec *autorec = NULL;
	struct kwatch *kwatch = NULL;
	struct lease *lease = NULL;
	unsigned n = cfg->workers, started = 0, node;
	int rc;
	sigset_t sigs;

	if (worker_probe_uring(err, sizeof(err)) < 0) {
		say(LOG_ERROR, "not starting: %s", err);
		return 1;
	}
	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus < 1 ? 1 : cpus > OID_MAX_WORKER + 1 ? OID_MAX_WORKER + 1 : (unsigned)cpus;
	}
	/* The servers and their slots, read once; each worker copies them. */
	static struct rcl_map map;
	if (stock_load_scripts(cfg, &shas, &map) < 0) {
		say(LOG_ERROR, "not starting: the reservation scripts could not be loaded into "
				"redis %s:%u (above)", cfg->redis_host, cfg->redis_port);
		return 1;
	}
	if (map.cluster)
		printf("flashgate: redis cluster of %u masters, reached through %s:%u\n", map.n, cfg->redis_host,
		       cfg->redis_port);
	/* A topic the brokers lack is a mistake in the config: every order
	 * would wait out message_timeout_ms for it. No answer is an outage,
	 * which the workers ride out with 503s until a broker is back. */
	rc = kpub_probe(cfg, KAFKA_PROBE_MS, err, sizeof(err));
	if (rc == -ETIMEDOUT) {
		say(LOG_WARN, "%s; starting anyway: orders are answered 503 until one does", err);
	} else if (rc < 0) {
		say(LOG_ERROR, "not starting: %s", err);
		return 1;
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	struct config_set *running = config_set_new(cfg, 0);
	struct worker_shared shared = {.workers = n};
	if (!running) {
		say(LOG_ERROR, "out of memory");
		return 1;
	}
	if (load_identity(cfg, &running->keys) < 0) {
		config_set_free(running);
		return 1;
	}
	running->wc.keys = running->keys.n ? &running->keys : NULL;
	running->node_auto = cfg->node_id == CFG_NODE_AUTO;
	static struct access_key access_key;
	if (access_key_load(&access_key, cfg->log_access_key_file, err, sizeof(err)) < 0) {
		say(LOG_ERROR, "not starting: %s", err);
		config_set_free(running);
		return 1;
	}
	shared.access_key = &access_key;
	if (lease_take(&lease, cfg, &node) < 0) {
		config_set_free(running);
		return 1;
	}
	running->cfg.node_id = node;
	cfg = &running->cfg;
	shared.lease = lease;
	workers = calloc(n, sizeof(*workers));
	metrics = metrics_new(n);
	/* Sized for the connections of every worker, so that few addresses share a counter. */
	shared.conns = adm_conns_new(4 * n * cfg->max_connections);
	shared.health = health_new(n);
	if (!workers || !metrics || !shared.conns || !shared.health) {
		say(LOG_ERROR, "out of memory");
		free(workers);
		metrics_free(metrics);
		adm_conns_free(shared.conns);
		health_free(shared.health);
		lease_end(lease, 0);
		config_set_free(running);
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		rc = worker_init(&workers[i], &running->wc, &shas, &map, metrics, &shared, i);
		if (rc < 0) {
			say(LOG_ERROR, "not starting: worker %u: %s", i,
			    workers[i].err[0] ? workers[i].err : strerror(-rc));
			worker_destroy(&workers[i]);
			goto stop;
		}
		started++;
	}
	for (unsigned i = 0; i < n; i++) {
		if ((rc = worker_start(&workers[i])) < 0) {
			say(LOG_ERROR, "not starting: worker %u: %s", i, workers[i].err);
			for (unsigned j = 0; j < i; j++)
				worker_stop(&workers[j]);
			for (unsigned j = 0; j < i; j++)
				pthread_join(workers[j].thread, NULL);
			goto destroy;
		}
	}
	if ((rc = lease_start(lease, err, sizeof(err))) < 0 ||
	    (rc = autorec_start(&autorec, cfg, metrics, err, sizeof(err))) < 0 ||
	    (rc = kwatch_start(&kwatch, cfg, shared.health, err, sizeof(err))) < 0) {
		say(LOG_ERROR, "not starting: %s", err);
		autorec_stop(autorec);
		for (unsigned j = 0; j < n; j++)
			worker_stop(&workers[j]);
		for (unsigned j = 0; j < n; j++)
			pthread_join(workers[j].thread, NULL);
		goto destroy;
	}
	say(LOG_INFO, "flashgate %s (commit %s): listening on %s:%u, %u workers, node %u; redis %s:%u; kafka %s topic %s",
	    FLASHGATE_VERSION, flashgate_commit, cfg->listen, cfg->port, n, cfg->node_id, cfg->redis_host,
		cfg->redis_port, cfg->kafka_brokers, cfg->kafka_topic);
	say(LOG_INFO, "node %u leased in redis%s (renewed every %u ms)", cfg->node_id,
		running->node_auto ? " (node_id = auto)" : "", cfg->node_lease_ms / 3);
	if (autorec)
		say(LOG_INFO, "reconcile passes every %u ms (policy %s), shared with every instance "
				"on this redis", cfg->reconcile_interval_ms, cfg->reconcile_policy);
	cfg = NULL; /* a reload frees it */
	notify_when_ready(shared.health);

	sigdelset(&sigs, SIGPIPE);
	int sig = 0;
	uint64_t reloads = 0;
	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGUSR1) { /* logrotate moved the file away */
			if (open_log_file(running->cfg.log_file) == 0 && *running->cfg.log_file)
				say(LOG_INFO, "SIGUSR1: log file %s opened again", running->cfg.log_file);
			continue;
		}
		if (sig != SIGHUP)
			break;
		notify_reloading();
		running = reload(path, ++reloads, running, workers, n, autorec, lease, kwatch);
		/* Refused or taken, the process serves on: ready again either way
		 * (the log, and STATUS, say which). */
		char status[64];
		snprintf(status, sizeof(status), "serving; reload %llu %s", (unsigned long long)reloads,
			 running->wc.gen == reloads ? "taken" : "refused");
		notify_status(status);
		notify_ready();
	}
	say(LOG_INFO, "%s: draining (up to %u ms)", strsignal(sig),
		running->cfg.drain_timeout_ms);
	health_set_draining(shared.health);
	notify_stopping();
	for (unsigned i = 0; i < n; i++)
		worker_stop(&workers[i]);
	autorec_stop(autorec); /* while the workers drain */
	kwatch_stop(kwatch);
	rc = 0;
	int64_t last_id_ms = 0;
	for (unsigned i = 0; i < n; i++) {
		pthread_join(workers[i].thread, NULL);
		if (workers[i].result < 0) {
			say(LOG_ERROR, "worker %u failed: %s", i, workers[i].err);
			rc = -1;
		}
		int64_t ms = oid_gen_last_ms(&workers[i].oids);
		last_id_ms = ms > last_id_ms ? ms : last_id_ms;
	}
	lease_end(lease, last_id_ms); /* no worker mints any more */
	lease = NULL;
destroy:
	lease_end(lease, 0); /* a failed start: what was minted is nothing */
	for (unsigned i = 0; i < started; i++)
		worker_destroy(&workers[i]);
	free(workers);
	metrics_free(metrics);
	adm_conns_free(shared.conns);
	health_free(shared.health);
	config_set_free(running);
	if (rc == 0)
		say(LOG_INFO, "stopped");
	return rc == 0 ? 0 : 1;
stop:
	lease_end(lease, 0);
	for (unsigned i = 0; i < started; i++)
		worker_destroy(&workers[i]);
	free(workers);
	metrics_free(metrics);
	adm_conns_free(shared.conns);
	health_free(shared.health);
	config_set_free(running);
	return 1;
}

static int stock_usage(const char *what)
{
	fprintf(stderr, "flashgate: %s\n"
			"usage: flashgate -c CONF stock load [--replace] [--dry-run] FILE\n"
			"       flashgate -c CONF stock show SKU [--json]\n"
			"       flashgate -c CONF stock list [PREFIX] [--json]\n"
			"       flashgate -c CONF stock add SKU N\n"
			"       flashgate -c CONF stock set SKU N\n"
			"       flashgate -c CONF stock release ORDER_ID [SKU]\n",
		what);
	return 2;
}

/* `stock VERB ...`: flags anywhere after the verb, then the verb's words. */
static int stock_cmd(const struct cfg *cfg, int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : NULL, *words[3];
	unsigned n = 0, load_flags = 0;
	bool json = false;
	char why[160];
	if (!verb)
		return stock_usage("which command? (load, show, list, add, set or release)");
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0 && (strcmp(verb, "show") == 0 || strcmp(verb, "list") == 0)) {
			json = true;
		} else if (strcmp(a, "--replace") == 0 && strcmp(verb, "load") == 0) {
			load_flags |= STOCK_REPLACE;
		} else if (strcmp(a, "--dry-run") == 0 && strcmp(verb, "load") == 0) {
			load_flags |= STOCK_DRY_RUN;
		} else if (a[0] == '-' && a[1] == '-') {
			snprintf(why, sizeof(why), "stock %s: unknown option '%s'", verb, a);
			return stock_usage(why);
		} else if (n == 3) {
			snprintf(why, sizeof(why), "stock %s: too many arguments ('%s')", verb, a);
			return stock_usage(why);
		} else {
			words[n++] = a;
		}
	}
	struct {
		const char *verb, *needs;
		unsigned min, max;
	} verbs[] = {
		{"load", "a CSV file", 1, 1}, {"show", "a SKU", 1, 1},          {"list", "at most a prefix", 0, 1},
		{"add", "a SKU and a unit count", 2, 2}, {"set", "a SKU and a unit count", 2, 2},
		{"release", "an order id, and maybe its SKU", 1, 2},
	};
	for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
		if (strcmp(verb, verbs[v].verb) != 0)
			continue;
		if (n < verbs[v].min || n > verbs[v].max) {
			snprintf(why, sizeof(why), "stock %s needs %s (got %u argument%s)", verb, verbs[v].needs, n,
				 n == 1 ? "" : "s");
			return stock_usage(why);
		}
		int rc;
		switch (v) {
		case 0: rc = stock_load(cfg, words[0], load_flags); break;
		case 1: rc = stock_show(cfg, words[0], json, stdout); break;
		case 2: rc = stock_list(cfg, n ? words[0] : NULL, json, stdout); break;
		case 3: rc = stock_add(cfg, words[0], words[1], stdout); break;
		case 4: rc = stock_set(cfg, words[0], words[1], stdout); break;
		default: rc = stock_release(cfg, words[0], n == 2 ? words[1] : NULL, stdout); break;
		}
		return rc < 0 ? 1 : 0;
	}
	snprintf(why, sizeof(why), "unknown command 'stock %s'", verb);
	return stock_usage(why);
}

static int reconcile_cmd(const struct cfg *cfg, int argc, char **argv)
{
	struct reconcile_opts o = {.min_age_ms = -1};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
			const char *p = argv[++i];
			if (strcmp(p, "release") == 0) {
				o.release = true;
			} else if (strcmp(p, "complete") != 0) {
				fprintf(stderr, "flashgate: reconcile: --policy must be complete or release\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--min-age-ms") == 0 && i + 1 < argc) {
			char *end;
			o.min_age_ms = strtoll(argv[++i], &end, 10);
			if (*end || o.min_age_ms < 0) {
				fprintf(stderr, "flashgate: reconcile: --min-age-ms must be a number >= 0\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--dry-run") == 0) {
			o.dry_run = true;
		} else {
			fprintf(stderr, "flashgate: reconcile: unknown option '%s'\n", argv[i]);
			return 2;
		}
	}
	char owner[128];
	reconcile_owner(owner, sizeof(owner), "flashgate-reconcile");
	o.owner = owner;
	o.lock_wait_ms = 60000; /* a gateway's pass takes seconds, not minutes */
	return reconcile_run(cfg, &o, stdout, NULL) < 0 ? 1 : 0;
}

/* -t --probe: Redis answers (and runs a version the scripts need), and a
 * broker knows the topic. */
static int probe_services(const struct cfg *cfg)
{
	char err[640];
	struct rcl *c = stock_connect(cfg); /* says why not */
	if (!c)
		return -EIO;
	redisReply *r = rcl_command(c, NULL, "PING");
	bool pong = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
	if (!pong)
		fprintf(stderr, "flashgate: redis %s:%u PING: %s\n", cfg->redis_host, cfg->redis_port,
			!r ? rcl_error(c) : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	freeReplyObject(r);
	rcl_close(c);
	if (!pong)
		return -EIO;
	fprintf(stderr, "flashgate: probe: redis %s:%u answers\n", cfg->redis_host, cfg->redis_port);
	if (kpub_probe(cfg, KAFKA_PROBE_MS, err, sizeof(err)) < 0) {
		fprintf(stderr, "flashgate: probe: %s\n", err);
		return -EIO;
	}
	fprintf(stderr, "flashgate: probe: kafka %s has topic %s\n", cfg->kafka_brokers, cfg->kafka_topic);
	return 0;
}

/* For -t, what cfg_load cannot judge: whether librdkafka takes [kafka]
 * client_properties, each at its line and then as a whole (a client made
 * and dropped at once: an unsupported SASL mechanism or a missing CA file
 * shows only then). Serving, kpub_probe finds the same before any worker
 * starts. */
static int check_kafka_properties(const struct cfg *cfg, const char *conf)
{
	char err[640];
	if (!*cfg->kafka_client_properties)
		return 0;
	const struct kprops kp = {cfg->kafka_brokers, cfg->kafka_properties, cfg->kafka_client_properties};
	rd_kafka_conf_t *scratch = rd_kafka_conf_new();
	int rc = kprops_apply(&kp, scratch, err, sizeof(err));
	if (rc == 0 && rd_kafka_conf_set(scratch, "log_level", "0", err, sizeof(err)) != RD_KAFKA_CONF_OK)
		rc = -EINVAL;
	if (rc < 0) {
		rd_kafka_conf_destroy(scratch);
		fprintf(stderr, "flashgate: %s: [kafka] client_properties: %s\n", conf, err);
		return rc;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, scratch, err, sizeof(err));
	if (!rk) {
		rd_kafka_conf_destroy(scratch);
		fprintf(stderr, "flashgate: %s: [kafka] client_properties %s: librdkafka refuses them: %s\n", conf,
			cfg->kafka_client_properties, err);
		return -EINVAL;
	}
	rd_kafka_destroy(rk);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf = NULL;
	bool check_only = false;
	int opt;
	struct cfg cfg;
	char err[2600];

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("flashgate %s (commit %s)\n", FLASHGATE_VERSION, flashgate_commit);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	static const struct option long_opts[] = {
		{"set", required_argument, 0, 'S'}, {"probe", no_argument, 0, 'P'}, {0, 0, 0, 0},
	};
	static const char *sets[SETS_MAX];
	bool probe = false;
	while ((opt = getopt_long(argc, argv, "+c:th", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c': conf = optarg; break;
		case 't': check_only = true; break;
		case 'S':
			if (overrides.n_sets == SETS_MAX) {
				fprintf(stderr, "flashgate: more than %d --set options\n", SETS_MAX);
				return 2;
			}
			sets[overrides.n_sets++] = optarg;
			break;
		case 'P': probe = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!conf) {
		fprintf(stderr, "flashgate: -c CONF is required\n");
		usage(stderr);
		return 2;
	}
	if (probe && !check_only) {
		fprintf(stderr, "flashgate: --probe goes with -t\n");
		return 2;
	}
	overrides.sets = sets;
	overrides.environ = environ;
	struct cfg_sources src;
	if (cfg_load_over(&cfg, conf, &overrides, &src, err, sizeof(err)) < 0) {
		print_lines(err);
		return 1;
	}
	if (check_only) {
		/* serve's own Kafka probe (kpub_probe) makes the same check. */
		struct jwt_keyset keys = {0};
		if (check_kafka_properties(&cfg, conf) < 0 || load_identity(&cfg, &keys) < 0)
			return 1;
		jwt_keyset_free(&keys);
		if (probe && probe_services(&cfg) < 0)
			return 1;
		cfg_dump_sources(&cfg, &src, conf, stdout);
		return 0;
	}
	argc -= optind;
	argv += optind;
	if (argc == 0 || (argc == 1 && strcmp(argv[0], "serve") == 0))
		return serve(&cfg, conf);
	if (strcmp(argv[0], "stock") == 0)
		return stock_cmd(&cfg, argc, argv);
	if (strcmp(argv[0], "reconcile") == 0)
		return reconcile_cmd(&cfg, argc, argv);
	fprintf(stderr, "flashgate: unknown command '%s'\n", argv[0]);
	usage(stderr);
	return 2;
}
