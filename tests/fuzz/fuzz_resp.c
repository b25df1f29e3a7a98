/* libFuzzer target for loadgen/resp.c: the answers flashload reads from a
 * server it does not control. A complete answer must lie inside the input,
 * with its body inside the answer; the JSON lookup must stay inside the body.
 * Build and run: make fuzz && build/fuzz/fuzz_resp tests/fuzz/corpus/resp */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../loadgen/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct resp rs;
	int rc = resp_parse(buf, size, &rs);
	if (rc > 0) {
		if ((size_t)rc != rs.total_len || rs.total_len > size || rs.body < buf ||
		    rs.body + rs.body_len != buf + rs.total_len || rs.status > 999)
			abort();
		size_t n;
		const char *v = resp_json_str(rs.body, rs.body_len, "order_id", &n);
		if (v && (v < rs.body || v + n > rs.body + rs.body_len))
			abort();
	} else if (rc != RESP_INCOMPLETE && rc >= 0) {
		abort();
	}
	free(buf);
	return 0;
}
