/* libFuzzer target for core/stockcsv.c: the stock file operators write or
 * export. Any bytes go through the reader (fmemopen, as a file is read);
 * a file that is taken must hold only rows the format allows, each SKU
 * once, in file order; one that is refused must say why, naming a line of
 * the input or the file as a whole. Build and run:
 * make fuzz && build/fuzz/fuzz_stockcsv tests/fuzz/corpus/stockcsv */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/stockcsv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	FILE *f = fmemopen((void *)data, size, "r");
	struct stockcsv *s = stockcsv_new();
	if (!f || !s)
		abort();
	int rc = stockcsv_read(s, f);
	fclose(f);
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (rc < 0) {
		unsigned line;
		const char *why = stockcsv_error(s, &line);
		if (rc != -EINVAL || !why[0] || line > lines)
			abort();
	} else {
		size_t n;
		const struct stock_row *r = stockcsv_rows(s, &n);
		for (size_t i = 0; i < n; i++) {
			if (!order_valid_ident(r[i].sku, strlen(r[i].sku)) || r[i].stock > STOCKCSV_STOCK_MAX ||
			    r[i].limit < 1 || r[i].limit > STOCKCSV_LIMIT_MAX ||
			    (r[i].starts && r[i].ends && r[i].ends <= r[i].starts) || r[i].line > lines ||
			    (i && r[i].line <= r[i - 1].line))
				abort();
			for (size_t j = 0; j < i && n < 512; j++)
				if (strcmp(r[i].sku, r[j].sku) == 0)
					abort();
		}
	}
	stockcsv_free(s);
	return 0;
}
