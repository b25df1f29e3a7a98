/*
 * profile: what a flashload run sends, as a traffic profile: the stages of
 * the rate curve (linear ramps, a step being a ramp of 0 s), an optional
 * wall-clock start (T0), the SKU catalogue (classes with count, stock and
 * per-user limit, Zipf popularity by rank), the user population, the retry
 * policy, and the shares of double clicks and malformed requests.
 *
 * Owns: the profile model, its defaults, loading an INI profile (libinih)
 * with "file:line: [section] key: why" on a bad line, and writing the
 * catalogue as a `flashgate stock load` CSV. Does not own: pacing (sched),
 * request bytes (mix) or sockets (run). config/profiles/ documents every
 * key in place.
 */
#ifndef LG_PROFILE_H
#define LG_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROF_MAX_STAGES 32
#define PROF_MAX_CLASSES 16
#define PROF_NAME_MAX 32
#define PROF_PREFIX_MAX 40
#define PROF_PATH_MAX 512

enum prof_arrival { PROF_UNIFORM, PROF_POISSON };

struct prof_stage {
	char name[PROF_NAME_MAX];
	double duration_s;
	double from_rate, to_rate; /* requests/s at the stage's start and end */
};

struct prof_class {
	char name[PROF_NAME_MAX];
	unsigned count;          /* SKUs of this class, ranked after earlier classes */
	unsigned long long stock; /* units per SKU */
	unsigned limit;          /* per-user limit per SKU */
};

/* Kinds of malformed request, each with the status it must get. */
enum prof_malformed {
	MAL_BAD_JSON,     /* truncated body                 -> 400 */
	MAL_MISSING_FIELD,/* no "sku"                       -> 400 */
	MAL_BAD_QTY,      /* qty 0                          -> 400 */
	MAL_BAD_KEY,      /* Idempotency-Key with a '/'     -> 400 */
	MAL_WRONG_METHOD, /* GET /v1/orders                 -> 405 */
	MAL_UNKNOWN_PATH, /* POST /v1/order                 -> 404 */
	MAL_OVERSIZED,    /* Content-Length over the limit  -> 413 */
	MAL_BAD_LENGTH,   /* Content-Length: 12x            -> 400 */
	MAL_KINDS
};

extern const char *const prof_malformed_names[MAL_KINDS];
extern const unsigned prof_malformed_status[MAL_KINDS];

/* Who sends an order: an honest shopper, or one of the bots of a [bots]
 * section (each with its share of the arrivals). */
enum prof_who {
	WHO_SHOPPER = 0,
	WHO_NO_TOKEN,  /* no Authorization at all */
	WHO_FORGED,    /* a token under the run's kid, signed with another key */
	WHO_EXPIRED,   /* a real token whose exp has passed */
	WHO_IMPOSTOR,  /* someone's real token, another user's id in the body */
	WHO_HAMMER,    /* one account, as fast as the schedule sends */
	WHO_SYBIL,     /* many accounts behind one address */
	WHO_N
};
extern const char *const prof_who_names[WHO_N];

struct trace;

struct lg_profile {
	char source[256]; /* the file, or "command line" */
	/* --replay: arrivals, users, SKUs and quantities from a recorded sale
	 * (trace.h), its time divided by replay_speed; NULL: from the stages. */
	const struct trace *trace;
	double replay_speed;
	/* [run] */
	unsigned connections, threads, timeout_ms;
	enum prof_arrival arrival;
	int64_t t0_unix_ms; /* 0: start when connected */
	uint64_t seed;
	uint64_t max_requests; /* 0: no limit */
	bool closed_loop;      /* --rate max: each connection sends when answered */
	double closed_duration_s;
	/* [stage NAME]... in file order */
	struct prof_stage stages[PROF_MAX_STAGES];
	unsigned n_stages;
	/* [catalogue] and [class NAME]... */
	char sku_prefix[PROF_PREFIX_MAX];
	double zipf;
	struct prof_class classes[PROF_MAX_CLASSES];
	unsigned n_classes;
	unsigned skus; /* sum of the classes' counts */
	/* [users] */
	unsigned users;
	char user_prefix[PROF_PREFIX_MAX];
	/* [run] sign_key: the key each shopper's token is signed with (core/jwt.h
	 * names: KID.hs256 or KID.pem); "" sends no Authorization. */
	char sign_key[PROF_PATH_MAX];
	unsigned qty;
	/* [retries] */
	unsigned retries; /* extra attempts after the first */
	unsigned backoff_ms, backoff_max_ms;
	/* [mix] */
	bool idempotency_keys;
	double duplicate_share, malformed_share;
	bool malformed_kinds[MAL_KINDS];
	double abandon_share;       /* orders whose client resets the connection ... */
	unsigned abandon_after_ms;  /* ... up to this long after sending, if unanswered */
	/* [bots]: each kind's share of the arrivals (WHO_SHOPPER's is the rest) */
	double bot_share[WHO_N];
	unsigned silent_connections; /* opened at the start and never spoken on */
	bool forwarded_for; /* send X-Forwarded-For: each shopper's own address, the sybils' one */
};

/* Whether any [bots] kind has a share of the arrivals. */
bool prof_has_bots(const struct lg_profile *p);

/* Defaults: one 10 s stage at 1000/s, 10 SKUs, 10000 users, no retries. */
void prof_defaults(struct lg_profile *p);

/*
 * Loads path over the defaults (stages and classes in the file replace the
 * default ones). 0, or -errno with "path:line: [section] key: why" in err.
 */
int prof_load(struct lg_profile *p, const char *path, char *err, size_t err_len)
	__attribute__((warn_unused_result));

/* Checks the whole (after command-line overrides); 0 or -EINVAL with err. */
int prof_check(const struct lg_profile *p, char *err, size_t err_len)
	__attribute__((warn_unused_result));

/* Total length of the stages in seconds. */
double prof_duration_s(const struct lg_profile *p);

/* The class of SKU number sku (1-based rank). */
const struct prof_class *prof_class_of(const struct lg_profile *p, unsigned sku);

/* Writes the catalogue as "sku,stock,per_user_limit" CSV; 0 or -errno. */
int prof_write_stock(const struct lg_profile *p, const char *path, char *err, size_t err_len)
	__attribute__((warn_unused_result));

/* Parses "10s", "500ms", "2m", "1h" or a bare number of seconds. */
int prof_parse_duration(const char *s, double *out) __attribute__((warn_unused_result));

/* Parses T0: unix milliseconds, "+30s" from now, or "YYYY-MM-DDTHH:MM:SS[.mmm]Z". */
int prof_parse_t0(const char *s, int64_t now_unix_ms, int64_t *out)
	__attribute__((warn_unused_result));

#endif
