/* bucket: a SKU's stock over K keys. See bucket.h. */
#include "bucket.h"

#include <stdint.h>
#include <stdio.h>

void bkt_tag(char *out, const char *sku, unsigned i)
{
	if (i == 0)
		snprintf(out, BKT_TAG_MAX, "%s", sku);
	else
		snprintf(out, BKT_TAG_MAX, "%s#%u", sku, i);
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
