/* proxyproto: PROXY protocol v1 and v2 headers. See proxyproto.h; the
 * format is HAProxy's proxy-protocol.txt. */
#include "proxyproto.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static const char v2_sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

/* "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", or "PROXY UNKNOWN ...\r\n". */
static int parse_v1(const char *buf, size_t len, struct proxyproto *out)
{
	size_t max = len < 108 ? len : 108;
	const char *eol = memchr(buf, '\r', max);
	if (!eol) {
		if (len >= 108 || memchr(buf, '\n', max))
			return -EBADMSG;
		return PROXYPROTO_INCOMPLETE;
	}
	size_t n = (size_t)(eol - buf);
	if (n + 1 >= len)
		return PROXYPROTO_INCOMPLETE;
	if (eol[1] != '\n')
		return -EBADMSG;
	const char *p = buf + 6, *end = eol;
	out->has_client = false;
	if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0)
		return (int)(n + 2); /* the rest of the line is to be ignored */
	if ((size_t)(end - p) < 5 || (memcmp(p, "TCP4 ", 5) != 0 && memcmp(p, "TCP6 ", 5) != 0))
		return -EBADMSG;
	bool v6 = p[3] == '6';
	p += 5;
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp || netaddr_parse(p, (size_t)(sp - p), &out->client) < 0)
		return -EBADMSG;
	/* The family must be what the line says. */
	if (v6 == netaddr_is_v4(&out->client))
		return -EBADMSG;
	/* The destination and both ports: present and well formed, not used. */
	struct netaddr dst;
	const char *d = sp + 1, *sp2 = memchr(d, ' ', (size_t)(end - d));
	if (!sp2 || netaddr_parse(d, (size_t)(sp2 - d), &dst) < 0)
		return -EBADMSG;
	const char *ports = sp2 + 1;
	int fields = 0;
	unsigned long v = 0;
	bool digits = false;
	for (const char *c = ports; c <= end; c++) {
		if (c < end && *c >= '0' && *c <= '9') {
			v = v * 10 + (unsigned long)(*c - '0');
			if (v > 65535)
				return -EBADMSG;
			digits = true;
		} else if (c == end || *c == ' ') {
			if (!digits)
				return -EBADMSG;
			fields++;
			v = 0;
			digits = false;
		} else {
			return -EBADMSG;
		}
	}
	if (fields != 2)
		return -EBADMSG;
	out->has_client = true;
	return (int)(n + 2);
}

static int parse_v2(const unsigned char *b, size_t len, struct proxyproto *out)
{
	if (len < 16)
		return PROXYPROTO_INCOMPLETE;
	unsigned ver = b[12] >> 4, cmd = b[12] & 0xf, fam = b[13] >> 4, proto = b[13] & 0xf;
	size_t body = (size_t)b[14] << 8 | b[15];
	if (ver != 2 || cmd > 1 || 16 + body > PROXYPROTO_MAX)
		return -EBADMSG;
	if (len < 16 + body)
		return PROXYPROTO_INCOMPLETE;
	out->has_client = false;
	if (cmd == 0)
		return (int)(16 + body); /* LOCAL: the balancer's own (a health check) */
	if (proto == 1 && fam == 1) { /* TCP over IPv4 */
		if (body < 12)
			return -EBADMSG;
		netaddr_from_v4(b + 16, &out->client);
		out->has_client = true;
	} else if (proto == 1 && fam == 2) { /* TCP over IPv6 */
		if (body < 36)
			return -EBADMSG;
		memcpy(out->client.b, b + 16, 16);
		out->has_client = true;
	}
	/* UNSPEC, UDP or a Unix socket: nothing to say about a TCP client. */
	return (int)(16 + body);
}

int proxyproto_parse(const char *buf, size_t len, struct proxyproto *out)
{
	size_t cmp = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	if (memcmp(buf, v2_sig, cmp) == 0)
		return len < sizeof(v2_sig) ? PROXYPROTO_INCOMPLETE : parse_v2((const unsigned char *)buf, len, out);
	cmp = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", cmp) == 0)
		return len < 6 ? PROXYPROTO_INCOMPLETE : parse_v1(buf, len, out);
	return -EBADMSG;
}
