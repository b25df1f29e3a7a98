/* resp: HTTP/1.1 response framing for the load generator. See resp.h. */
#include "resp.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

int resp_parse(const char *buf, size_t len, struct resp *out)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		return len > 16384 ? -EBADMSG : RESP_INCOMPLETE;
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
		return -EBADMSG;
	unsigned status = 0;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -EBADMSG;
		status = status * 10 + (unsigned)(buf[i] - '0');
	}
	size_t head = (size_t)(end - buf) + 4, clen = 0;
	bool close = buf[7] == '0';
	for (const char *p = memchr(buf, '\n', head) + 1; p < end;) {
		const char *eol = memchr(p, '\r', (size_t)(end + 2 - p));
		size_t n = (size_t)(eol - p);
		if (n > 15 && strncasecmp(p, "content-length:", 15) == 0) {
			clen = 0;
			for (const char *d = p + 15; d < eol; d++) {
				if (*d >= '0' && *d <= '9')
					clen = clen * 10 + (size_t)(*d - '0');
				/* A length no answer of ours can have: refuse it before
				 * head + clen can wrap. */
				if (clen > RESP_MAX_BODY)
					return -EBADMSG;
			}
		} else if (n > 11 && strncasecmp(p, "connection:", 11) == 0) {
			const char *v = p + 11;
			while (v < eol && *v == ' ')
				v++;
			if ((size_t)(eol - v) >= 5 && strncasecmp(v, "close", 5) == 0)
				close = true;
		}
		p = eol + 2;
	}
	/* 1xx answers have no body and precede the real one. */
	if (status >= 100 && status < 200)
		clen = 0;
	if (len < head + clen)
		return RESP_INCOMPLETE;
	out->status = status;
	out->total_len = head + clen;
	out->body = buf + head;
	out->body_len = clen;
	out->close = close;
	return (int)out->total_len;
}

const char *resp_json_str(const char *body, size_t len, const char *key, size_t *n)
{
	char pat[64];
	size_t klen = strlen(key);
	if (klen + 4 > sizeof(pat))
		return NULL;
	pat[0] = '"';
	memcpy(pat + 1, key, klen);
	memcpy(pat + 1 + klen, "\":\"", 3);
	const char *p = memmem(body, len, pat, klen + 4);
	if (!p)
		return NULL;
	p += klen + 4;
	const char *q = memchr(p, '"', (size_t)(body + len - p));
	if (!q)
		return NULL;
	*n = (size_t)(q - p);
	return p;
}
