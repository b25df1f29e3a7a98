/*
 * resp: the client side of HTTP/1.1 for flashload: finding where one
 * response ends in a byte stream and what it said.
 *
 * Owns: status line, Content-Length framing, Connection: close, and the
 * fields of flashgate's JSON answers that the generator counts (status
 * word, order_id). Does not own: sockets or statistics.
 */
#ifndef LG_RESP_H
#define LG_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESP_INCOMPLETE (-100000)
#define RESP_MAX_BODY (1u << 20)

struct resp {
	unsigned status;
	size_t total_len; /* head + body */
	const char *body;
	size_t body_len;
	bool close;
};

/* Returns the response's total length (> 0), RESP_INCOMPLETE, or -EBADMSG. */
int resp_parse(const char *buf, size_t len, struct resp *out) __attribute__((warn_unused_result));

/* The string value of "key" in a flat JSON body, or NULL; *n gets its length. */
const char *resp_json_str(const char *body, size_t len, const char *key, size_t *n);

#endif
