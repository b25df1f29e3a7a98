/*
 * proxyproto: the PROXY protocol header (HAProxy's, versions 1 and 2) that
 * an L4 load balancer (HAProxy, AWS NLB, Envoy) sends at the start of a
 * connection to say whose it is: the client's address, which the TCP peer
 * (the balancer) is not.
 *
 * Owns: parsing one header from the start of a connection's bytes, with no
 * copy and no allocation, re-runnable as more bytes arrive. Does not own:
 * whether a peer may send one (gateway/conn: only trusted_proxies, and
 * only with [admission] proxy_protocol on), or what the address is used
 * for (gateway/admission).
 */
#ifndef FG_PROXYPROTO_H
#define FG_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "netaddr.h"

/* More bytes are needed; outside the errno range, like HTTP_INCOMPLETE. */
#define PROXYPROTO_INCOMPLETE (-100001)
/* The longest header this accepts: a v1 line is at most 107 bytes; a v2
 * header's TLVs are skipped up to this. */
#define PROXYPROTO_MAX 536

struct proxyproto {
	bool has_client;        /* false: LOCAL or UNKNOWN (a health check): use the peer */
	struct netaddr client;  /* the source address the balancer saw */
};

/*
 * Parses the header at buf[0..len). Returns its length (> 0) with *out set,
 * PROXYPROTO_INCOMPLETE, or -EBADMSG when the bytes are not a header of
 * either version (or one longer than PROXYPROTO_MAX).
 */
int proxyproto_parse(const char *buf, size_t len, struct proxyproto *out) __attribute__((warn_unused_result));

#endif
