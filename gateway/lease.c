/* lease: one holder per node id. See lease.h for the rule. */
#include "lease.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/oid.h"
#include "../core/rcl.h"
#include "bgthread.h"
#include "logline.h"

/*
 * take or renew   KEYS: fg:{node:N}:lease fg:{node:N}:until
 *                 ARGV: holder, lease_ms, until_ms (this holder's new
 *                       bound), expected until ("" when taking), a dead
 *                       holder's value this one replaces ("" for none)
 *   -> {0, other holder} | {2, until} (it lapsed and another instance
 *      held it meanwhile: its bound moved) | {1, until before, until now}
 * give up         KEYS: the same   ARGV: holder, until_ms -> 1 | 0 (not ours)
 */
static const char take_lua[] =
	"local v = redis.call('GET', KEYS[1])\n"
	"local u = redis.call('GET', KEYS[2]) or '0'\n"
	"if v and v ~= ARGV[1] and v ~= ARGV[5] then return {0, v} end\n"
	"if not v and ARGV[4] ~= '' and u ~= ARGV[4] then return {2, u} end\n"
	"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
	"local now = u\n"
	"if tonumber(ARGV[3]) > tonumber(u) then now = ARGV[3]; redis.call('SET', KEYS[2], now) end\n"
	"return {1, u, now}\n";
static const char end_lua[] =
	"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
	"redis.call('DEL', KEYS[1])\n"
	"redis.call('SET', KEYS[2], ARGV[2])\n"
	"return 1\n";

enum lease_status { HELD, LAPSED, LOST };

struct lease {
	struct cfg cfg;  /* the thread's copy (rc points at its password) */
	struct cfg next; /* under bg's lock: a reload's, for the next connection */
	bool has_next;   /* under bg's lock */
	struct rcl *rc;  /* the thread's alone once it runs */
	unsigned node;
	char key[32], until_key[32];
	char holder[320];
	char until[24];  /* the bound as Redis holds it, for the next renewal */
	int64_t ids_after_ms;
	/* Read by every worker: */
	int64_t valid_until_mono_ms; /* atomic */
	int64_t max_id_ms;           /* atomic */
	int status;                  /* atomic: enum lease_status */
	struct bgthread bg; /* the renewals */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first line of a small file, or "" (a missing file is no error). */
static void read_line(const char *path, char *out, size_t cap)
{
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(out, (int)cap, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* A process's start time in clock ticks since boot (/proc/PID/stat field
 * 22): with the pid, it names one process even after its pid is reused. */
static unsigned long long start_ticks(long pid)
{
	char path[64], line[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	read_line(path, line, sizeof(line));
	const char *p = strrchr(line, ')'); /* the name may hold spaces */
	if (!p)
		return 0;
	unsigned long long ticks = 0;
	/* After ") ": state is field 3; starttime is field 22. */
	int field = 2;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22)
		ticks = strtoull(p, NULL, 10);
	return ticks;
}

/* Where a process runs: the machine's boot and the pid namespace. Two
 * holders with the same place can see each other's processes. */
static void place_of_self(char *out, size_t cap)
{
	char boot[64], ns[64] = "";
	read_line("/proc/sys/kernel/random/boot_id", boot, sizeof(boot));
	ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
	ns[n > 0 ? n : 0] = '\0';
	snprintf(out, cap, "%s/%s", boot, ns);
}

/* A field "name=value" of a holder's value, into out; false if absent. */
static bool holder_field(const char *holder, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = holder; (p = strstr(p, name)) != NULL; p += nl) {
		if ((p == holder || p[-1] == ' ') && p[nl] == '=') {
			size_t len = strcspn(p + nl + 1, " ");
			snprintf(out, cap, "%.*s", (int)len, p + nl + 1);
			return true;
		}
	}
	return false;
}

/*
 * Whether holder names a process of this machine and pid namespace that is
 * gone (killed, crashed): its lease may be taken at once rather than
 * after it lapses, so a restart after a crash does not wait. A holder
 * elsewhere, or one this process cannot tell about, is alive.
 */
static bool holder_is_dead(const char *holder)
{
	char place[160], theirs[160], pid[24], start[32];
	place_of_self(place, sizeof(place));
	if (!holder_field(holder, "place", theirs, sizeof(theirs)) || strcmp(theirs, place) != 0 ||
	    !holder_field(holder, "pid", pid, sizeof(pid)) || !holder_field(holder, "start", start, sizeof(start)))
		return false;
	long p = strtol(pid, NULL, 10);
	if (p <= 0)
		return false;
	/* kill(0) sees every process of the namespace, even where /proc hides
	 * other users' (systemd's ProtectProc=invisible): absent is gone. */
	if (kill((pid_t)p, 0) < 0 && errno == ESRCH)
		return true;
	/* The pid is taken: by the holder, or by another process since. Only
	 * a start time that can be read and differs says the holder is gone. */
	unsigned long long ticks = start_ticks(p);
	return ticks != 0 && ticks != strtoull(start, NULL, 10);
}

static void set_node(struct lease *l, unsigned node)
{
	l->node = node;
	snprintf(l->key, sizeof(l->key), "fg:{node:%u}:lease", node);
	snprintf(l->until_key, sizeof(l->until_key), "fg:{node:%u}:until", node);
}

/* With [redis] wait_replicas, a lease write counts once replicas have it:
 * a failover must not hand the id to a second instance. */
static int replicated(struct lease *l, char *err, size_t err_len)
{
	if (!l->cfg.redis_wait_replicas)
		return 0;
	redisReply *r = rcl_command(l->rc, l->key, "WAIT %u %u", l->cfg.redis_wait_replicas,
				    l->cfg.redis_wait_timeout_ms);
	int rc = 0;
	if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < (long long)l->cfg.redis_wait_replicas) {
		snprintf(err, err_len, "WAIT %u: %s", l->cfg.redis_wait_replicas,
			 !r ? rcl_error(l->rc) : r->type == REDIS_REPLY_INTEGER ? "too few replicas" : "refused");
		rc = -EAGAIN;
	}
	freeReplyObject(r);
	return rc;
}

/*
 * One take or renewal. On 1: *sent_mono is when it was sent and the bound
 * is in l->until. Returns 1 held, 0 another holder (its value in other),
 * 2 lapsed and taken meanwhile, or -errno with err set.
 */
static int take_once(struct lease *l, bool first, const char *dead, int64_t *sent_mono, char *other,
		     size_t other_len, char *err, size_t err_len)
{
	char lease_ms[16], until[24];
	*sent_mono = mono_ms();
	snprintf(lease_ms, sizeof(lease_ms), "%u", l->cfg.node_lease_ms);
	snprintf(until, sizeof(until), "%lld", (long long)(wall_ms() + l->cfg.node_lease_ms));
	redisReply *r = rcl_command(l->rc, l->key, "EVAL %s 2 %s %s %s %s %s %s %s", take_lua, l->key,
				    l->until_key, l->holder, lease_ms, until, first ? "" : l->until, dead ? dead : "");
	int rc;
	if (!r) {
		snprintf(err, err_len, "%s", rcl_error(l->rc));
		return -EIO;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, err_len, "%s", r->str);
		rc = -EIO;
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
		   r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(err, err_len, "unexpected reply to the lease script");
		rc = -EPROTO;
	} else {
		rc = (int)r->element[0]->integer;
		if (rc == 1 && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
			if (first)
				l->ids_after_ms = strtoll(r->element[1]->str, NULL, 10);
			snprintf(l->until, sizeof(l->until), "%s", r->element[2]->str);
		} else if (rc != 1) {
			snprintf(other, other_len, "%s", r->element[1]->str);
		}
	}
	freeReplyObject(r);
	if (rc == 1 && (rc = replicated(l, err, err_len)) == 0)
		rc = 1;
	return rc;
}

static void held_from(struct lease *l, int64_t sent_mono)
{
	__atomic_store_n(&l->max_id_ms, strtoll(l->until, NULL, 10), __ATOMIC_RELAXED);
	__atomic_store_n(&l->valid_until_mono_ms, sent_mono + (int64_t)l->cfg.node_lease_ms * 9 / 10,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&l->status, HELD, __ATOMIC_RELAXED);
}

int lease_take(struct lease **out, const struct cfg *cfg, unsigned *node)
{
	char err[300], other[256], host[64] = "", since[32], place[160];
	*out = NULL;
	struct lease *l = calloc(1, sizeof(*l));
	if (!l) {
		logline_printf(LOG_ERROR, "lease", "not starting: node lease: out of memory");
		return -ENOMEM;
	}
	l->cfg = *cfg;
	gethostname(host, sizeof(host) - 1);
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	place_of_self(place, sizeof(place));
	snprintf(l->holder, sizeof(l->holder), "host=%s pid=%d since=%s start=%llu place=%s", host, (int)getpid(),
		 since, start_ticks(getpid()), place);
	l->rc = rcl_open(cfg->redis_host, cfg->redis_port, cfg->redis_timeout_ms, cfg->redis_user,
			 cfg->redis_password, err, sizeof(err));
	if (!l->rc) {
		logline_printf(LOG_ERROR, "lease", "not starting: node lease: %s", err);
		free(l);
		return -EIO;
	}
	bool any = cfg->node_id == CFG_NODE_AUTO;
	unsigned first = any ? 0 : cfg->node_id, last = any ? OID_MAX_NODE : cfg->node_id;
	for (unsigned n = first; n <= last; n++) {
		int64_t sent;
		set_node(l, n);
		int rc = take_once(l, true, NULL, &sent, other, sizeof(other), err, sizeof(err));
		if (rc == 0 && holder_is_dead(other)) {
			char dead[256];
			snprintf(dead, sizeof(dead), "%s", other);
			rc = take_once(l, true, dead, &sent, other, sizeof(other), err, sizeof(err));
			if (rc == 1)
				logline_printf(LOG_WARN, "lease", "node %u: took the lease of a process of this "
					       "machine that is gone (%s); ids start after its bound", n, dead);
		}
		if (rc == 1) {
			held_from(l, sent);
			*node = n;
			*out = l;
			return 0;
		}
		if (rc < 0) {
			logline_printf(LOG_ERROR, "lease", "not starting: node lease %s at redis %s:%u: %s", l->key,
				cfg->redis_host, cfg->redis_port, err);
			goto fail;
		}
		if (!any) {
			logline_printf(LOG_ERROR, "lease",
				"not starting: [order] node_id %u is held by another instance (%s; "
				"its lease %s lapses %u ms after that instance stops renewing it): give each "
				"instance its own node_id, or node_id = auto",
				n, other, l->key, cfg->node_lease_ms);
			goto fail;
		}
	}
	logline_printf(LOG_ERROR, "lease", "not starting: node_id = auto: every id 0..%u is leased by another instance",
		OID_MAX_NODE);
fail:
	rcl_close(l->rc);
	free(l);
	return -EBUSY;
}

int64_t lease_ids_after_ms(const struct lease *l)
{
	return l->ids_after_ms;
}

bool lease_allows(const struct lease *l, int64_t now_mono_ms, int64_t id_ms)
{
	return now_mono_ms < __atomic_load_n(&l->valid_until_mono_ms, __ATOMIC_ACQUIRE) &&
	       id_ms <= __atomic_load_n(&l->max_id_ms, __ATOMIC_RELAXED);
}

const char *lease_state(const struct lease *l)
{
	switch (__atomic_load_n(&l->status, __ATOMIC_RELAXED)) {
	case HELD: return "held";
	case LAPSED: return "lapsed";
	default: return "lost";
	}
}

static void renew(struct lease *l)
{
	char err[300], other[256];
	int64_t sent;
	bgthread_lock(&l->bg);
	if (l->has_next) {
		rcl_close(l->rc); /* before its password changes */
		l->rc = NULL;
		l->cfg = l->next;
		l->has_next = false;
	}
	bgthread_unlock(&l->bg);
	if (!l->rc)
		l->rc = rcl_open(l->cfg.redis_host, l->cfg.redis_port, l->cfg.redis_timeout_ms, l->cfg.redis_user,
				 l->cfg.redis_password, err, sizeof(err));
	int rc = l->rc ? take_once(l, false, NULL, &sent, other, sizeof(other), err, sizeof(err)) : -EIO;
	int was = __atomic_load_n(&l->status, __ATOMIC_RELAXED);
	if (rc == 1) {
		held_from(l, sent);
		if (was != HELD)
			logline_printf(LOG_INFO, "lease", "node %u: lease renewed; taking orders again", l->node);
		return;
	}
	if (rc == 0 || rc == 2) {
		/* Never taken back: the other holder's ids may be ahead of ours. */
		__atomic_store_n(&l->valid_until_mono_ms, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&l->status, LOST, __ATOMIC_RELAXED);
		logline_printf(LOG_ERROR, "lease", "node %u: LEASE LOST: %s %s; this instance takes no more orders (restart it, with "
			 "another node_id or node_id = auto)",
			 l->node, rc == 0 ? "another instance holds it:" : "another instance held it meanwhile, bound",
			 other);
		return;
	}
	if (!l->rc) /* rcl_open's words are in err */
		rc = -EIO;
	if (mono_ms() >= __atomic_load_n(&l->valid_until_mono_ms, __ATOMIC_ACQUIRE) && was == HELD) {
		__atomic_store_n(&l->status, LAPSED, __ATOMIC_RELAXED);
		logline_printf(LOG_ERROR, "lease", "node %u: lease not renewed for %u ms (%s): taking no orders until it is", l->node,
			 l->cfg.node_lease_ms * 9 / 10, err);
	} else if (was == HELD) {
		logline_printf(LOG_WARN, "lease", "node %u: renewing the lease: %s (valid for %lld ms more)", l->node, err,
			 (long long)(__atomic_load_n(&l->valid_until_mono_ms, __ATOMIC_RELAXED) - mono_ms()));
	}
	if (rc == -EIO && l->rc) { /* a broken connection: the next renewal opens another */
		rcl_close(l->rc);
		l->rc = NULL;
	}
}

static void *run(void *arg)
{
	struct lease *l = arg;
	for (;;) {
		int status = __atomic_load_n(&l->status, __ATOMIC_RELAXED);
		/* Every third of the lease; faster while it is not held. */
		if (!bgthread_wait(&l->bg, status == HELD ? l->cfg.node_lease_ms / 3 : 200))
			return NULL;
		if (status != LOST)
			renew(l);
	}
}

int lease_start(struct lease *l, char *err, size_t err_len)
{
	return bgthread_start(&l->bg, "node lease", run, l, err, err_len);
}

void lease_reconfigure(struct lease *l, const struct cfg *cfg)
{
	if (!l->bg.started) { /* no thread reads it yet */
		l->cfg = *cfg;
		return;
	}
	bgthread_lock(&l->bg);
	/* The lease's own keys take effect at a restart (cfg_merge_live kept them). */
	l->next = *cfg;
	l->has_next = true;
	bgthread_unlock(&l->bg);
}

void lease_end(struct lease *l, int64_t last_id_ms)
{
	if (!l)
		return;
	bgthread_stop(&l->bg);
	char until[24], err[300];
	/* Never below where this holder started: it may have minted nothing. */
	snprintf(until, sizeof(until), "%lld",
		 (long long)(last_id_ms > l->ids_after_ms ? last_id_ms : l->ids_after_ms));
	if (!l->rc)
		l->rc = rcl_open(l->cfg.redis_host, l->cfg.redis_port, l->cfg.redis_timeout_ms, l->cfg.redis_user,
				 l->cfg.redis_password, err, sizeof(err));
	redisReply *r = l->rc ? rcl_command(l->rc, l->key, "EVAL %s 2 %s %s %s %s", end_lua, l->key, l->until_key,
					    l->holder, until)
			      : NULL;
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 && replicated(l, err, sizeof(err)) == 0)
		logline_printf(LOG_INFO, "lease", "node %u: lease given up; the next holder's ids start after %s", l->node, until);
	else
		logline_printf(LOG_WARN, "lease", "node %u: the lease could not be given up (%s): it lapses in %u ms", l->node,
			 r && r->type == REDIS_REPLY_ERROR ? r->str : r ? "not ours any more" : "redis out of reach",
			 l->cfg.node_lease_ms);
	freeReplyObject(r);
	rcl_close(l->rc);
	explicit_bzero(&l->cfg, sizeof(l->cfg));
	explicit_bzero(&l->next, sizeof(l->next));
	free(l);
}
