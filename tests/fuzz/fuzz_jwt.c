/* libFuzzer target for the parsers of what a client sends before its body:
 * core/jwt.c's token (header, claims, base64url, signature) and
 * core/netaddr.c's X-Forwarded-For. The first byte picks the input's use:
 *   0: the rest is a token, checked against an HS256 key;
 *   1: the rest is the claims JSON, signed here with that key and checked,
 *      so the claims parser sees every input (a random token never gets
 *      past the signature);
 *   2: the rest is an X-Forwarded-For value from a trusted proxy;
 *   3: the rest is the start of a connection from a trusted load balancer
 *      (core/proxyproto.c's PROXY protocol header).
 * Oracle: nothing crashes, and an accepted token's claims are well formed
 * (sub a user id, SKUs identifiers, at most JWT_SKUS_MAX of them). Build
 * and run: make fuzz && build/fuzz/fuzz_jwt tests/fuzz/corpus/jwt */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/jwt.h"
#include "../../core/netaddr.h"
#include "../../core/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jwt_key key = {.kid = "f1", .alg = JWT_HS256, .secret_len = 32};
static struct jwt_keyset ks = {&key, 1};

static void check_claims(const struct jwt_claims *c)
{
	if (!order_valid_ident(c->sub, c->sub_len) || strlen(c->sub) != c->sub_len || c->nskus > JWT_SKUS_MAX)
		abort();
	for (unsigned i = 0; i < c->nskus; i++)
		if (!order_valid_ident(c->skus[i].s, c->skus[i].len))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	for (int i = 0; i < 32; i++)
		key.secret[i] = (unsigned char)i;
	struct jwt_policy policy = {.issuer = "iss", .audience = size % 2 ? "aud" : "", .skew_s = 30};
	struct jwt_claims c;
	const char *rest = (const char *)data + 1;
	size_t n = size - 1;
	if (data[0] % 4 == 3) {
		struct proxyproto pp;
		int rc = proxyproto_parse(rest, n, &pp);
		if (rc > 0 && (size_t)rc > n)
			abort(); /* a header longer than what arrived */
		if (rc == 0 || (rc < 0 && rc != PROXYPROTO_INCOMPLETE && rc != -EBADMSG))
			abort();
	} else if (data[0] % 4 == 0) {
		if (jwt_verify(&ks, NULL, rest, n, &policy, 1800000000, &c) == JWT_OK)
			check_claims(&c);
	} else if (data[0] % 4 == 1) {
		char claims[1024], tok[JWT_TOKEN_MAX];
		if (n >= sizeof(claims))
			return 0;
		memcpy(claims, rest, n);
		claims[n] = '\0';
		if (strlen(claims) != n)
			return 0; /* jwt_sign takes text */
		int len = jwt_sign(&key, NULL, claims, tok, sizeof(tok));
		if (len > 0 && jwt_verify(&ks, NULL, tok, (size_t)len, &policy, 1800000000, &c) == JWT_OK)
			check_claims(&c);
	} else {
		struct netaddr_list trusted;
		const char *why;
		struct netaddr out;
		if (netaddr_parse_list("10.0.0.0/8, ::1", &trusted, &why) < 0)
			abort();
		memset(&out, 0, sizeof(out));
		struct netaddr zero = {0};
		/* a refusal leaves *out alone */
		if (netaddr_forwarded_client(&trusted, rest, n, &out) < 0 && memcmp(&out, &zero, sizeof(out)) != 0)
			abort();
	}
	return 0;
}
