/*
 * http: a strict HTTP/1.1 request-head parser for a server (RFC 9112).
 *
 * Owns: turning the bytes of one request head into a struct http_request
 * that points into the caller's buffer (no copies, no allocation), and the
 * decision of which malformed heads get which 4xx/5xx. It can be re-run on
 * the same buffer as more bytes arrive.
 * Does not own: sockets, bodies (the caller waits for content_length bytes
 * after the head), routing, or writing responses.
 *
 * Strictness is deliberate (request smuggling): bare CR or LF, obs-fold,
 * whitespace before a colon, control bytes in values, conflicting or
 * non-numeric Content-Length, and Content-Length together with
 * Transfer-Encoding are all rejected, and the caller must close the
 * connection after answering any rejected head.
 */
#ifndef FG_HTTP_H
#define FG_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Returned when the head is not complete yet: call again with more bytes.
 * Chosen outside the errno range so it can never be mistaken for one. */
#define HTTP_INCOMPLETE (-100000)

/* Empty lines tolerated before a request line (RFC 9112 2.2). */
#define HTTP_MAX_EMPTY_LINES 8

enum http_method {
	HTTP_METHOD_OTHER = 0,
	HTTP_METHOD_GET,
	HTTP_METHOD_HEAD,
	HTTP_METHOD_POST,
};

struct http_limits {
	size_t max_head_bytes; /* request line + headers + final CRLF */
	unsigned max_headers;
	size_t max_body_bytes;
};

struct http_request {
	enum http_method method;
	/* The request target, not NUL-terminated; of an absolute-form target
	 * ("http://host/x") only the path, and "/" when it has none. */
	const char *path;
	size_t path_len;
	unsigned minor_version; /* HTTP/1.x */
	size_t head_len;        /* bytes of the head, including the blank line */
	size_t content_length;  /* 0 when absent */
	bool keep_alive;
	bool expect_continue;
	const char *idempotency_key; /* NULL when absent */
	size_t idempotency_key_len;
	const char *authorization;   /* NULL when absent */
	size_t authorization_len;
	/* The last X-Forwarded-For field (a proxy appends to the last), NULL
	 * when absent; believed only from a trusted proxy (gateway/flow). */
	const char *forwarded_for;
	size_t forwarded_for_len;
	/* Set when http_parse_request returns -EBADMSG: */
	unsigned error_status; /* 400, 417, 431, 501, 505 */
	const char *error_reason;
};

/*
 * Parses the request head at the start of buf[0..len). Returns the head's
 * length (> 0) when complete and valid, HTTP_INCOMPLETE when more bytes are
 * needed, or -EBADMSG with req->error_status and req->error_reason set.
 * Heads longer than limits->max_head_bytes fail with 431 as soon as that
 * many bytes have arrived without an end.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *limits,
		       struct http_request *req) __attribute__((warn_unused_result));

/* The reason phrase for a status code this server sends ("OK", ...). */
const char *http_status_text(unsigned status);

#endif
