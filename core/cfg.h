/*
 * cfg: flashgate's configuration: one table of keys (section, name, type,
 * range, default, meaning) drives parsing, validation, defaults and the
 * effective-config dump, so the three can never disagree.
 *
 * Owns: reading an INI file (libinih) into a struct cfg, with the files
 * [redis] password_file and [kafka] client_properties name, and refusing a
 * bad one with "file:line: [section] key: why". Does not own: acting on
 * the values (nor librdkafka's judgement of the properties: main asks it).
 * A loaded struct is read-only and shared by every worker thread; a
 * reload makes a new one (cfg_merge_live says which keys it may
 * change) and main hands it to the workers.
 */
#ifndef FG_CFG_H
#define FG_CFG_H

#include <stdbool.h>
#include <stdint.h>
#include <ini.h>
#include <stdio.h>

#include "netaddr.h"

#define CFG_HOST_MAX 256
#define CFG_BROKERS_MAX 512
#define CFG_TOPIC_MAX 250
#define CFG_WORD_MAX 32
#define CFG_TOKEN_MAX 129
#define CFG_USER_MAX 129
#define CFG_PATH_MAX 1024
#define CFG_PASSWORD_MAX 513
#define CFG_KAFKA_PROPS_MAX 8192
#define CFG_CLAIM_MAX 256
#define CFG_PROXIES_MAX 1024
#define CFG_NODE_AUTO UINT32_MAX

struct cfg {
	/* [server] */
	char listen[CFG_HOST_MAX];
	uint32_t port;
	uint32_t workers; /* 0: one per online CPU */
	uint32_t max_connections;
	uint32_t max_inflight;
	uint32_t max_pipeline;
	uint32_t max_head_bytes;
	uint32_t max_headers;
	uint32_t max_body_bytes;
	uint32_t retry_after_s;
	uint32_t drain_timeout_ms;
	uint32_t request_timeout_ms;
	uint32_t send_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t recv_buffers;
	uint32_t recv_buffer_bytes;
	char admin_token[CFG_TOKEN_MAX]; /* "" disables the admin endpoints */
	/* [order] */
	uint32_t node_id; /* CFG_NODE_AUTO: main takes a free one (gateway/lease.h) */
	uint32_t node_lease_ms;
	uint32_t max_qty;
	uint32_t soldout_cache_ms;
	uint32_t unknown_cache_ms;
	uint32_t sku_cache_entries;
	uint32_t idempotency_ttl_s;
	/* [redis] */
	char redis_host[CFG_HOST_MAX];
	uint32_t redis_port;
	uint32_t redis_timeout_ms;
	uint32_t redis_reconnect_ms;
	uint32_t redis_buckets; /* keys each SKU's stock is split over (core/bucket.h) */
	uint32_t redis_wait_replicas;   /* 0: reservations count once the master has them */
	uint32_t redis_wait_timeout_ms; /* below redis_timeout_ms (cfg_load checks) */
	uint32_t redis_confirm_delay_ms; /* how long a confirmation may wait for others */
	char redis_user[CFG_USER_MAX];          /* "": AUTH with the password alone */
	char redis_password_file[CFG_PATH_MAX]; /* "": no AUTH */
	/* Not a key: the first line of redis_password_file, read by cfg_load;
	 * cfg_dump never shows it. */
	char redis_password[CFG_PASSWORD_MAX];
	/* [kafka] */
	char kafka_brokers[CFG_BROKERS_MAX];
	char kafka_topic[CFG_TOPIC_MAX];
	uint32_t kafka_linger_ms;
	uint32_t kafka_inflight_requests;
	uint32_t kafka_batch_messages;
	char kafka_compression[CFG_WORD_MAX];
	uint32_t kafka_message_timeout_ms;
	uint32_t kafka_queue_messages;
	char kafka_client_properties[CFG_PATH_MAX]; /* "": none */
	/* Not a key: that file's text, read and checked by cfg_load (every
	 * Kafka client applies it: core/kprops.h); cfg_dump never shows it. */
	char kafka_properties[CFG_KAFKA_PROPS_MAX];
	/* [reconcile] */
	uint32_t reconcile_interval_ms; /* 0: the gateway runs no passes */
	char reconcile_policy[CFG_WORD_MAX];
	/* [identity] */
	char identity_mode[CFG_WORD_MAX]; /* "jwt" or "off" */
	char identity_keys[CFG_PATH_MAX]; /* the key directory (core/jwt.h) */
	char identity_issuer[CFG_CLAIM_MAX];   /* "": not checked */
	char identity_audience[CFG_CLAIM_MAX]; /* "": not checked */
	uint32_t identity_clock_skew_s;
	uint32_t identity_cache_entries;
	/* [admission]: rates in requests per second, 0 for no limit */
	uint32_t user_rate, user_burst;
	uint32_t addr_rate, addr_burst;
	uint32_t addr_max_connections;
	uint32_t instance_rate, instance_burst;
	uint32_t admission_table_entries;
	char trusted_proxies[CFG_PROXIES_MAX];
	char proxy_protocol[CFG_WORD_MAX]; /* "on": trusted proxies send a PROXY header first */
	/* Not a key: trusted_proxies parsed by cfg_load. */
	struct netaddr_list trusted_proxy_list;
	/* [admin] */
	char admin_listen[CFG_HOST_MAX];
	uint32_t admin_port;                  /* 0: the admin endpoints are on [server]'s listener */
	char admin_token_file[CFG_PATH_MAX];  /* "": [server] admin_token, if any */
	/* [log] */
	char log_level[CFG_WORD_MAX];  /* debug, info, warn, error */
	char log_format[CFG_WORD_MAX]; /* logfmt or text */
	char log_file[CFG_PATH_MAX];   /* "": stderr as it is */
	uint32_t log_access_every;     /* an order's line in every N; 0: none */
	char log_access_key_file[CFG_PATH_MAX];
};

/*
 * A libinih stream reader (for ini_parse_stream, with a struct cfg_lines as
 * the stream) that counts lines and "[section]" headers as they are read:
 * Debian's libinih passes neither the line number nor the headers to the
 * handler, and both other INI files of the project (flashload's profiles)
 * need them for "file:line" errors and repeated sections.
 */
struct cfg_lines {
	FILE *file;
	int line;
	unsigned headers;
	int why_line;  /* the first line a handler refused, 0 if none */
	char why[320]; /* and why: "[section] key: ..." */
};
char *cfg_read_line(char *str, int num, void *stream);

/*
 * Opens path and runs libinih over it through cfg_read_line; handler gets
 * user and records its first refusal in lines->why_line and lines->why.
 * Returns 0, or -errno with "path: ..." or "path:line: ..." in err.
 */
int cfg_parse_file(const char *path, struct cfg_lines *lines, ini_handler handler, void *user,
		   char *err, size_t err_len) __attribute__((warn_unused_result));

/* Fills *c with every key's default. */
void cfg_defaults(struct cfg *c);

/*
 * Loads path over the defaults, the Redis password from [redis]
 * password_file (a regular file: its first line) and the text of [kafka]
 * client_properties (checked line by line). Returns 0, or a
 * negative errno with a one-line message in err ("path:line: [section]
 * key: why", or the open error). Nothing in *c is meaningful after a
 * failure.
 */
int cfg_load(struct cfg *c, const char *path, char *err, size_t err_len)
	__attribute__((warn_unused_result));

/*
 * For a reload (SIGHUP): calls changed(arg, ...) for each key whose value
 * next (the file as it is now) changes from running's, with both values as
 * text (a secret as "(set)") and whether it can change live. Those that
 * take effect only when the process starts (they sized a table, bound a
 * socket or made a client) are copied back from running, so next becomes
 * what the process can run without a restart. Returns how many were.
 */
typedef void cfg_changed_fn(void *arg, const char *section, const char *name, const char *running,
			    const char *file, bool live);
unsigned cfg_merge_live(struct cfg *next, const struct cfg *running, cfg_changed_fn *changed, void *arg);

/* Where each key's value came from (cfg_load_over fills it, cfg_dump_sources
 * prints it): by the key's place in the table. */
enum cfg_from { CFG_FROM_DEFAULT, CFG_FROM_FILE, CFG_FROM_ENV, CFG_FROM_SET };
#define CFG_KEYS_MAX 96
struct cfg_sources {
	uint8_t from[CFG_KEYS_MAX]; /* enum cfg_from */
	int line[CFG_KEYS_MAX];     /* CFG_FROM_FILE: the line */
};

/* What overrides the file, in this order: environment variables
 * FLASHGATE_<SECTION>_<KEY> (environ, NULL for none; any other
 * FLASHGATE_* variable is refused as a typo), then "section.key=value"
 * from --set, in order. */
struct cfg_overrides {
	char *const *environ;
	const char *const *sets;
	unsigned n_sets;
};

/*
 * cfg_load with overrides (ov may be NULL) and, when src is not NULL,
 * where each value came from. Every bad line of the file and every bad
 * override is reported at once, one per line of err ("file:line: ...",
 * "environment FLASHGATE_X: ...", "--set s.k=v: ..."); libinih reports only
 * the first syntax error.
 */
int cfg_load_over(struct cfg *c, const char *path, const struct cfg_overrides *ov, struct cfg_sources *src,
		  char *err, size_t err_len) __attribute__((warn_unused_result));

/* Writes the effective configuration as a loadable INI file. */
void cfg_dump(const struct cfg *c, FILE *out);
/* The same, each key followed by where its value came from
 * ("; from FILE:LINE", "; from environment FLASHGATE_...", "; from --set",
 * "; default"). */
void cfg_dump_sources(const struct cfg *c, const struct cfg_sources *src, const char *path, FILE *out);

#endif
