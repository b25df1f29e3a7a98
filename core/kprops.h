/*
 * kprops: the librdkafka properties an SRE adds to every Kafka client that
 * flashgate and flashload make ([kafka] client_properties): how to reach
 * the brokers, mostly security (security.protocol, sasl.*, ssl.*), from a
 * file of "key=value" lines.
 *
 * Owns: the file's syntax ('#' comments, blank lines), the properties
 * flashgate keeps for itself (refused, so that nobody believes they
 * changed them: the producer's delivery guarantees and batching, which
 * have keys of their own, and the topic scan's consumer settings), and
 * applying the lines to a client's rd_kafka_conf_t before flashgate's own
 * settings. Does not own: reading the file (cfg_load does, with the
 * config) or any value.
 */
#ifndef FG_KPROPS_H
#define FG_KPROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>

/* Where a client connects, and how: the brokers, and the properties file's
 * text and name (text NULL or "": none). */
struct kprops {
	const char *brokers;
	const char *text;
	const char *file;
};

/* NULL if every line of text is a comment, blank or a "key=value" that
 * flashgate leaves to the file; else why not, with *line its number. */
const char *kprops_check(const char *text, int *line);

/* The value text gives key (its last line setting it) into out: 1, or 0
 * when text does not set it (or is not a valid file). */
int kprops_get(const char *text, const char *key, char *out, size_t cap);

/* Whether a and b set the same properties, in the same order, to the same
 * values but for sasl.username and sasl.password: the two a running
 * client takes (rd_kafka_sasl_set_credentials, for PLAIN and SCRAM). */
bool kprops_only_credentials_differ(const char *a, const char *b);

/* Sets bootstrap.servers and then each property of k on conf. 0, or
 * -EINVAL with "FILE:LINE: key: librdkafka's reason" in err. */
int kprops_apply(const struct kprops *k, rd_kafka_conf_t *conf, char *err, size_t err_len)
	__attribute__((warn_unused_result));

#endif
