/* libFuzzer target for core/http.c: any bytes, any split point. The parser
 * must never read outside the buffer, and a complete head must be stable:
 * parsing the same bytes again (or with more bytes behind) gives the same
 * answer. Build and run: make fuzz && build/fuzz/fuzz_http tests/fuzz/corpus/http */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http_limits limits = {
		.max_head_bytes = 2048, .max_headers = 32, .max_body_bytes = 4096};
	struct http_request a, b;
	/* An exact-size copy so ASan sees any read past the end. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	int rc = http_parse_request(buf, size, &limits, &a);
	if (rc > 0) {
		/* The path points into the buffer, or is the parser's own "/" for
		 * an absolute-form target without one. */
		bool in_buf = a.path >= buf && a.path + a.path_len <= buf + size;
		if ((size_t)rc > size || a.head_len != (size_t)rc ||
		    !(in_buf || (a.path_len == 1 && a.path[0] == '/')))
			abort();
		/* The head alone parses to the same result. */
		int again = http_parse_request(buf, (size_t)rc, &limits, &b);
		if (again != rc || b.content_length != a.content_length || b.keep_alive != a.keep_alive)
			abort();
	}
	/* Every prefix is either incomplete or decided the same way. */
	if (size > 0) {
		int prefix = http_parse_request(buf, size - 1, &limits, &b);
		if (rc > 0 && (size_t)rc <= size - 1 && prefix != rc)
			abort();
	}
	free(buf);
	return 0;
}
