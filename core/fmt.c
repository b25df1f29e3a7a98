/* fmt: decimal integers without printf; see fmt.h. */
#include "fmt.h"

char *fmt_u64(char *p, uint64_t v)
{
	char digits[FMT_U64_MAX];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = digits[--n];
	return p;
}

char *fmt_i64(char *p, int64_t v)
{
	if (v >= 0)
		return fmt_u64(p, (uint64_t)v);
	*p++ = '-';
	/* -(v + 1) + 1 stays in range for INT64_MIN. */
	return fmt_u64(p, (uint64_t)(-(v + 1)) + 1);
}
