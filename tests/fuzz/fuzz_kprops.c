/* libFuzzer target for core/kprops.c: the Kafka client properties file an
 * SRE writes ([kafka] client_properties). kprops_check and kprops_apply
 * must agree on the syntax: a text the check accepts is refused by apply
 * only in librdkafka's words, at a line of the file and naming the
 * property ("FILE:LINE: key: ..."); a text the check refuses names a line
 * that exists. Build and run: make fuzz && build/fuzz/fuzz_kprops
 * tests/fuzz/corpus/kprops */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/kprops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	int lines = 1;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	int line = 0;
	const char *why = kprops_check(text, &line);
	if (why) {
		if (line < 1 || line > lines)
			abort();
		free(text);
		return 0;
	}
	char err[768];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const struct kprops k = {"127.0.0.1:9092", text, "F"};
	if (kprops_apply(&k, conf, err, sizeof(err)) < 0) {
		int at = 0, n = 0;
		if (sscanf(err, "F:%d: %*[a-z0-9._-]: %n", &at, &n) != 1 || n == 0 || at < 1 || at > lines) {
			fprintf(stderr, "check accepted, apply refused without naming a property: %s\n", err);
			abort();
		}
	}
	rd_kafka_conf_destroy(conf);
	free(text);
	return 0;
}
