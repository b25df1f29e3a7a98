/* netaddr: addresses and CIDR lists. See netaddr.h. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void netaddr_from_v4(const void *v4, struct netaddr *out)
{
	memcpy(out->b, v4_mapped, 12);
	memcpy(out->b + 12, v4, 4);
}

bool netaddr_is_v4(const struct netaddr *a)
{
	return memcmp(a->b, v4_mapped, 12) == 0;
}

int netaddr_parse(const char *s, size_t n, struct netaddr *out)
{
	char buf[NETADDR_TEXT_MAX];
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	struct in_addr a4;
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		netaddr_from_v4(&a4, out);
		return 0;
	}
	return inet_pton(AF_INET6, buf, out->b) == 1 ? 0 : -EINVAL;
}

void netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET)
		netaddr_from_v4(&((const struct sockaddr_in *)(const void *)sa)->sin_addr, out);
	else if (sa->sa_family == AF_INET6)
		memcpy(out->b, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
}

static void clear_past(struct netaddr *a, unsigned bits)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits > i * 8 ? bits - i * 8 : 0;
		if (keep < 8)
			a->b[i] &= (uint8_t)(0xff00 >> keep);
	}
}

int netaddr_parse_list(const char *text, struct netaddr_list *out, const char **why)
{
	out->n = 0;
	const char *p = text;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *end = p + strcspn(p, ", ");
		const char *slash = memchr(p, '/', (size_t)(end - p));
		struct netaddr_range r;
		if (out->n == NETADDR_LIST_MAX) {
			*why = "more than 32 addresses or ranges";
			return -EINVAL;
		}
		if (netaddr_parse(p, (size_t)((slash ? slash : end) - p), &r.base) < 0) {
			*why = "not an IPv4 or IPv6 address or CIDR range (such as 10.0.0.0/8 or fd00::/8)";
			return -EINVAL;
		}
		bool v4 = netaddr_is_v4(&r.base);
		unsigned max = v4 ? 32 : 128, bits = max;
		if (slash) {
			char *e;
			if (slash + 1 == end || slash[1] < '0' || slash[1] > '9') {
				*why = "a range's prefix length must be a number";
				return -EINVAL;
			}
			unsigned long b = strtoul(slash + 1, &e, 10);
			if (e != end || b > max) {
				*why = v4 ? "an IPv4 prefix length is 0 to 32" : "an IPv6 prefix length is 0 to 128";
				return -EINVAL;
			}
			bits = (unsigned)b;
		}
		r.bits = (uint8_t)(v4 ? bits + 96 : bits);
		clear_past(&r.base, r.bits);
		out->v[out->n++] = r;
		p = end;
	}
	return 0;
}

bool netaddr_in_list(const struct netaddr_list *l, const struct netaddr *a)
{
	for (unsigned i = 0; i < l->n; i++) {
		struct netaddr m = *a;
		clear_past(&m, l->v[i].bits);
		if (memcmp(m.b, l->v[i].base.b, 16) == 0)
			return true;
	}
	return false;
}

/* One entry of an X-Forwarded-For list. */
static int forwarded_entry(const char *s, size_t n, struct netaddr *out)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n && *s == '[') {
		const char *close = memchr(s, ']', n);
		return close ? netaddr_parse(s + 1, (size_t)(close - s - 1), out) : -EINVAL;
	}
	const char *colon = memchr(s, ':', n);
	if (colon && !memchr(colon + 1, ':', (size_t)(s + n - colon - 1)))
		n = (size_t)(colon - s); /* one colon: IPv4 with a port */
	return netaddr_parse(s, n, out);
}

int netaddr_forwarded_client(const struct netaddr_list *trusted, const char *xff, size_t n, struct netaddr *out)
{
	struct netaddr found;
	bool any = false;
	while (n) {
		const char *comma = memrchr(xff, ',', n);
		size_t start = comma ? (size_t)(comma - xff) + 1 : 0;
		if (forwarded_entry(xff + start, n - start, &found) < 0)
			return -EINVAL;
		any = true;
		if (!netaddr_in_list(trusted, &found))
			break;
		n = comma ? (size_t)(comma - xff) : 0;
	}
	if (!any)
		return -EINVAL;
	*out = found;
	return 0;
}

const char *netaddr_format(const struct netaddr *a, char *buf)
{
	if (netaddr_is_v4(a))
		inet_ntop(AF_INET, a->b + 12, buf, NETADDR_TEXT_MAX);
	else
		inet_ntop(AF_INET6, a->b, buf, NETADDR_TEXT_MAX);
	return buf;
}
