/* libFuzzer target for core/order.c: request bodies and Kafka records.
 * A body that validates must re-encode into a record that decodes to the
 * same order; an admin body that parses names a valid SKU. Build and run: make fuzz && build/fuzz/fuzz_order tests/fuzz/corpus/order */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/order.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct order_req o;
	struct order_error e;
	char sku[ORDER_ID_MAX + 1];
	if (order_parse_sku_body(buf, size, sku, &e) == 0 && !order_valid_ident(sku, strlen(sku)))
		abort(); /* the admin body: an accepted SKU is a valid identifier */
	/* With a signed token the body may omit user_id: never a bad one. */
	if (order_parse_request(buf, size, 1000, false, &o, &e) == 0 && o.user_len &&
	    !order_valid_ident(o.user_id, o.user_len))
		abort();
	if (order_parse_request(buf, size, 1000, true, &o, &e) == 0) {
		if (!order_valid_ident(o.user_id, o.user_len) || !order_valid_ident(o.sku, o.sku_len) ||
		    o.qty < 1 || o.qty > 1000)
			abort();
		struct order_record r = {.order_id = 42, .qty = o.qty, .accepted_at_ms = 1, .node_id = 1};
		memcpy(r.user_id, o.user_id, (size_t)o.user_len + 1);
		memcpy(r.sku, o.sku, (size_t)o.sku_len + 1);
		char rec[ORDER_RECORD_MAX];
		int n = order_encode_record(rec, sizeof(rec), &r);
		struct order_record back;
		if (n < 0 || order_decode_record(rec, (size_t)n, &back) != 0 || back.qty != o.qty ||
		    strcmp(back.user_id, o.user_id) != 0 || strcmp(back.sku, o.sku) != 0)
			abort();
	} else if (!e.field || !e.why) {
		abort();
	}
	struct order_record any;
	if (order_decode_record(buf, size, &any) == 0 && !order_valid_ident(any.user_id, strlen(any.user_id)))
		abort(); /* must not crash; a decoded record names a valid user */
	free(buf);
	return 0;
}
