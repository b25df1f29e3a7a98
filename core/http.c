/*
 * http: strict HTTP/1.1 request-head parser. See http.h for the contract.
 *
 * The head is located first (CRLF CRLF within max_head_bytes), then parsed
 * line by line. Rescanning a partial head on every call is bounded by
 * max_head_bytes, and a head normally arrives in one read.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "http.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar */
static bool is_tchar(unsigned char c)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != 0 && memchr(extra, c, sizeof(extra) - 1) != NULL;
}

/* field-value bytes: VCHAR, SP, HTAB, obs-text */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int fail(struct http_request *req, unsigned status, const char *reason)
{
	req->error_status = status;
	req->error_reason = reason;
	return -EBADMSG;
}

static bool token_eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* Does the comma-separated list s[0..n) contain token (case-insensitive)? */
static bool list_has(const char *s, size_t n, const char *token)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
			i++;
		size_t start = i;
		while (i < n && s[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
			end--;
		if (end > start && token_eq(s + start, end - start, token))
			return true;
	}
	return false;
}

static int parse_content_length(const char *v, size_t n, size_t *out)
{
	size_t value = 0;
	if (n == 0 || n > 15)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		value = value * 10 + (size_t)(v[i] - '0');
	}
	*out = value;
	return 0;
}

/* Finds the CR ending the line at p (there is one before end: the head
 * ends in CRLF CRLF) and checks the line is clean: the CR is followed by
 * LF, and no bare LF hides inside. One memchr each, no byte loop. */
static int next_line(const char *p, const char *end, const char **eol, struct http_request *req)
{
	const char *cr = memchr(p, '\r', (size_t)(end - p));
	if (!cr || cr[1] != '\n')
		return fail(req, 400, "bare CR in request head");
	if (memchr(p, '\n', (size_t)(cr - p)))
		return fail(req, 400, "bare LF in request head");
	*eol = cr;
	return 0;
}

/* RFC 9112 3.2.2: a server must accept the absolute-form
 * ("POST http://host/v1/orders"), which some proxies and clients send. No
 * route here depends on the authority, so only what follows it is kept; an
 * empty path is "/", and a bare query after the authority is dropped with it
 * (no route reads a query). */
static int strip_absolute_form(struct http_request *req)
{
	const char *t = req->path, *end = t + req->path_len;
	size_t scheme;
	if (req->path_len > 7 && strncasecmp(t, "http://", 7) == 0)
		scheme = 7;
	else if (req->path_len > 8 && strncasecmp(t, "https://", 8) == 0)
		scheme = 8;
	else
		return 0;
	const char *host = t + scheme, *p = host;
	while (p < end && *p != '/' && *p != '?' && *p != '#')
		p++;
	if (p == host || *host == ':')
		return fail(req, 400, "absolute-form request target without a host");
	if (p < end && *p == '/') {
		req->path = p;
		req->path_len = (size_t)(end - p);
	} else {
		req->path = "/";
		req->path_len = 1;
	}
	return 0;
}

static int parse_request_line(const char *p, const char *eol, struct http_request *req)
{
	const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (!sp1 || sp1 == p)
		return fail(req, 400, "malformed request line");
	for (const char *c = p; c < sp1; c++)
		if (!is_tchar((unsigned char)*c))
			return fail(req, 400, "malformed method");
	size_t mlen = (size_t)(sp1 - p);
	if (mlen == 3 && memcmp(p, "GET", 3) == 0)
		req->method = HTTP_METHOD_GET;
	else if (mlen == 4 && memcmp(p, "POST", 4) == 0)
		req->method = HTTP_METHOD_POST;
	else if (mlen == 4 && memcmp(p, "HEAD", 4) == 0)
		req->method = HTTP_METHOD_HEAD;
	else
		req->method = HTTP_METHOD_OTHER;

	const char *target = sp1 + 1;
	const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
	if (!sp2 || sp2 == target)
		return fail(req, 400, "malformed request line");
	for (const char *c = target; c < sp2; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return fail(req, 400, "invalid byte in request target");
	req->path = target;
	req->path_len = (size_t)(sp2 - target);
	if (*target != '/') {
		int rc = strip_absolute_form(req);
		if (rc < 0)
			return rc;
	}

	const char *ver = sp2 + 1;
	if ((size_t)(eol - ver) != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[6] != '.' ||
	    ver[5] < '0' || ver[5] > '9' || ver[7] < '0' || ver[7] > '9')
		return fail(req, 400, "malformed HTTP version");
	if (ver[5] != '1')
		return fail(req, 505, "only HTTP/1.x is supported");
	req->minor_version = (unsigned)(ver[7] - '0');
	req->keep_alive = req->minor_version >= 1;
	return 0;
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *limits,
		       struct http_request *req)
{
	memset(req, 0, sizeof(*req));

	/* RFC 9112 2.2: ignore empty lines before the request line, a few of
	 * them (a client's CRLF after a body); more is a flood that would fill
	 * the input buffer without ever making a request, and is refused at
	 * once rather than left to the request timeout. */
	size_t skip = 0;
	while (skip + 1 < len && buf[skip] == '\r' && buf[skip + 1] == '\n') {
		skip += 2;
		if (skip > 2 * HTTP_MAX_EMPTY_LINES)
			return fail(req, 400, "too many empty lines before the request line");
	}

	size_t limit = len - skip < limits->max_head_bytes ? len - skip : limits->max_head_bytes;
	const char *end = memmem(buf + skip, limit, "\r\n\r\n", 4);
	if (!end) {
		if (len - skip >= limits->max_head_bytes)
			return fail(req, 431, "request head too large");
		/* A bare LF or stray CR can be rejected before the head completes,
		 * which also stops a client that never sends CRLF CRLF. */
		for (size_t i = skip; i < len; i++) {
			if (buf[i] == '\n' && (i == skip || buf[i - 1] != '\r'))
				return fail(req, 400, "bare LF in request head");
			if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n')
				return fail(req, 400, "bare CR in request head");
		}
		return HTTP_INCOMPLETE;
	}

	const char *p = buf + skip;
	const char *head_end = end + 2; /* points at the final CRLF */
	const char *eol;
	if (next_line(p, head_end + 2, &eol, req) < 0)
		return -EBADMSG;
	int rc = parse_request_line(p, eol, req);
	if (rc < 0)
		return rc;

	bool have_cl = false, have_te = false, have_host = false;
	bool conn_close = false, conn_keep = false;
	unsigned nheaders = 0;
	for (p = eol + 2; p < head_end; p = eol + 2) {
		if (next_line(p, head_end + 2, &eol, req) < 0)
			return -EBADMSG;
		if (++nheaders > limits->max_headers)
			return fail(req, 431, "too many header fields");
		if (*p == ' ' || *p == '\t')
			return fail(req, 400, "obsolete line folding is not accepted");
		const char *colon = p;
		while (colon < eol && is_tchar((unsigned char)*colon))
			colon++;
		if (colon == p || colon == eol || *colon != ':')
			return fail(req, 400, "malformed header field name");
		const char *v = colon + 1, *vend = eol;
		while (v < vend && (*v == ' ' || *v == '\t'))
			v++;
		while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		for (const char *c = v; c < vend; c++)
			if (!is_value_char((unsigned char)*c))
				return fail(req, 400, "control character in header value");
		const char *name = p;
		size_t nlen = (size_t)(colon - p), vlen = (size_t)(vend - v);

		if (token_eq(name, nlen, "content-length")) {
			size_t cl;
			if (parse_content_length(v, vlen, &cl) < 0)
				return fail(req, 400, "invalid Content-Length");
			if (have_cl && cl != req->content_length)
				return fail(req, 400, "conflicting Content-Length values");
			have_cl = true;
			req->content_length = cl;
		} else if (token_eq(name, nlen, "transfer-encoding")) {
			have_te = true;
		} else if (token_eq(name, nlen, "host")) {
			if (have_host)
				return fail(req, 400, "more than one Host field");
			have_host = true;
		} else if (token_eq(name, nlen, "connection")) {
			conn_close |= list_has(v, vlen, "close");
			conn_keep |= list_has(v, vlen, "keep-alive");
		} else if (token_eq(name, nlen, "expect")) {
			if (!token_eq(v, vlen, "100-continue"))
				return fail(req, 417, "only Expect: 100-continue is supported");
			req->expect_continue = true;
		} else if (token_eq(name, nlen, "idempotency-key")) {
			/* Two keys (a proxy adding its own) would leave it to chance
			 * which one guards the retry. */
			if (req->idempotency_key)
				return fail(req, 400, "more than one Idempotency-Key field");
			req->idempotency_key = v;
			req->idempotency_key_len = vlen;
		} else if (token_eq(name, nlen, "x-forwarded-for")) {
			req->forwarded_for = v;
			req->forwarded_for_len = vlen;
		} else if (token_eq(name, nlen, "authorization")) {
			if (req->authorization)
				return fail(req, 400, "more than one Authorization field");
			req->authorization = v;
			req->authorization_len = vlen;
		}
	}

	if (have_te && have_cl)
		return fail(req, 400, "both Transfer-Encoding and Content-Length");
	if (have_te)
		return fail(req, 501, "Transfer-Encoding is not supported; send Content-Length");
	if (req->minor_version >= 1 && !have_host)
		return fail(req, 400, "missing Host field");
	if (req->content_length > limits->max_body_bytes)
		return fail(req, 413, "request body too large");
	if (conn_close)
		req->keep_alive = false;
	else if (conn_keep)
		req->keep_alive = true;
	/* Expect only means something when a body is coming, and never to an
	 * HTTP/1.0 client (RFC 9110 10.1.1: it may not understand a 100). */
	if (req->content_length == 0 || req->minor_version == 0)
		req->expect_continue = false;

	req->head_len = (size_t)(head_end + 2 - buf);
	return (int)req->head_len;
}

const char *http_status_text(unsigned status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 425: return "Too Early";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
