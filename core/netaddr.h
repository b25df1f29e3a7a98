/*
 * netaddr: client addresses as one 16-byte form (IPv4 as ::ffff:a.b.c.d,
 * so one table and one comparison serve both families), and lists of
 * address ranges in CIDR notation.
 *
 * Owns: parsing an address (from text or a sockaddr) and a comma-separated
 * CIDR list, matching an address against a list, and formatting one for
 * logs. Does not own: which addresses are trusted, or what a match allows
 * (gateway/admission).
 */
#ifndef FG_NETADDR_H
#define FG_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETADDR_LIST_MAX 32
#define NETADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

struct netaddr {
	uint8_t b[16];
};

struct netaddr_range {
	struct netaddr base; /* with the bits past the prefix cleared */
	uint8_t bits;        /* of the 128 */
};

struct netaddr_list {
	struct netaddr_range v[NETADDR_LIST_MAX];
	unsigned n;
};

/* An IPv4 or IPv6 address in s[0..n) (no port, no brackets). 0 or -EINVAL. */
int netaddr_parse(const char *s, size_t n, struct netaddr *out) __attribute__((warn_unused_result));

/* An IPv4 address (4 bytes, network order) in the 16-byte form, and
 * whether an address is one. */
void netaddr_from_v4(const void *v4, struct netaddr *out);
bool netaddr_is_v4(const struct netaddr *a);

/* The peer address of an accepted socket; an address of another family
 * (a Unix socket) becomes ::. */
void netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *out);

/*
 * "10.0.0.0/8, 192.168.1.7, ::1, fd00::/8": addresses or ranges separated
 * by commas (spaces around them allowed), at most NETADDR_LIST_MAX; an
 * address alone is the range of just it. "" is the empty list. 0, or
 * -EINVAL with *why saying what is wrong.
 */
int netaddr_parse_list(const char *text, struct netaddr_list *out, const char **why)
	__attribute__((warn_unused_result));

bool netaddr_in_list(const struct netaddr_list *l, const struct netaddr *a);

/*
 * The client behind trusted proxies, from an X-Forwarded-For value
 * xff[0..n) that a trusted peer sent: the right-most address that is not
 * itself in trusted (the entries left of it were written by the client and
 * prove nothing), or the left-most when all are. Entries may carry a port
 * ("192.0.2.1:443", "[2001:db8::1]:443"). 0 with *out set, or -EINVAL
 * when an entry it reads is not an address (*out is then unchanged).
 */
int netaddr_forwarded_client(const struct netaddr_list *trusted, const char *xff, size_t n, struct netaddr *out)
	__attribute__((warn_unused_result));

/* "192.0.2.1" or "2001:db8::1" into buf (NETADDR_TEXT_MAX bytes). */
const char *netaddr_format(const struct netaddr *a, char *buf);

#endif
