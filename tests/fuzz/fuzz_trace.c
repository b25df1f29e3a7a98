/* libFuzzer target for loadgen/trace.c: --replay reads traces made
 * elsewhere (an nginx access log, a CSV someone exported). Whatever the
 * bytes, a trace is loaded or refused with a message; a loaded one is
 * sorted, its users and SKUs inside their counts.
 * Build and run: make fuzz && build/fuzz/fuzz_trace tests/fuzz/corpus/trace */
#include <stdint.h>
#include <stdlib.h>

#include "../../loadgen/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace t;
	char err[512];
	err[0] = '\0';
	if (trace_parse("fuzz", (const char *)data, size, &t, err, sizeof(err)) < 0) {
		if (!err[0])
			abort();
		return 0;
	}
	for (size_t i = 0; i < t.n; i++) {
		const struct trace_order *o = &t.o[i];
		if ((i && o->at_s < t.o[i - 1].at_s) || o->at_s < 0 || o->user < 1 || o->user > t.users ||
		    o->sku > t.skus || o->qty < 1 || o->qty > 1000000)
			abort();
	}
	if (t.n == 0 || t.duration_s != t.o[t.n - 1].at_s)
		abort();
	trace_free(&t);
	return 0;
}
