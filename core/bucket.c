/* bucket: a SKU's stock over K keys. See bucket.h. */
#include "bucket.h"

#include <stdint.h>
#include <string.h>

#include "fmt.h"

void bkt_tag(char *out, const char *sku, unsigned i)
{
	/* Several times per order (routing, batching, confirming): no printf.
	 * A SKU is at most ORDER_ID_MAX characters; "#63" and the NUL fit. */
	char *p = fmt_put(out, sku, strnlen(sku, ORDER_ID_MAX));
	if (i > 0) {
		*p++ = '#';
		p = fmt_u64(p, i % BKT_MAX); /* the modulo only keeps a bad i in bounds */
	}
	*p = '\0';
}

unsigned bkt_home(const char *user, size_t len, unsigned k)
{
	if (k <= 1)
		return 0;
	/* FNV-1a: stable across builds and machines, which the layout in
	 * Redis depends on (every gateway must agree on a user's home). */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)user[i]) * 16777619u;
	return h % k;
}

unsigned long long bkt_share(unsigned long long units, unsigned k, unsigned i)
{
	return units / k + (i < units % k ? 1 : 0);
}
