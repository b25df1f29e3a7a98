/*
 * jwt: compact JWS parsing, verification and signing. See jwt.h.
 *
 * The JSON of a token's header and claims is read by a small strict
 * scanner: objects of members whose values are strings (escapes decoded),
 * integers (a NumericDate's fraction is dropped), arrays of strings, or
 * anything else skipped to a bounded depth. A claim flashgate reads that
 * appears twice is refused: two parsers that keep different ones of a
 * repeated name are how tokens get read one way and checked another.
 */
#include "jwt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define JSON_DEPTH_MAX 8
#define SIG_MAX 64

static const char *const result_words[JWT_RESULT_N] = {
	[JWT_OK] = "ok",
	[JWT_MALFORMED] = "malformed",
	[JWT_UNKNOWN_KID] = "unknown_kid",
	[JWT_WRONG_ALG] = "wrong_alg",
	[JWT_BAD_SIGNATURE] = "bad_signature",
	[JWT_EXPIRED] = "expired",
	[JWT_NOT_YET_VALID] = "not_yet_valid",
	[JWT_NO_EXPIRY] = "no_expiry",
	[JWT_BAD_SUBJECT] = "bad_subject",
	[JWT_BAD_ISSUER] = "bad_issuer",
	[JWT_BAD_AUDIENCE] = "bad_audience",
};

const char *jwt_result_word(enum jwt_result r)
{
	return (unsigned)r < JWT_RESULT_N ? result_words[r] : "unknown";
}

const char *jwt_alg_name(enum jwt_alg a)
{
	return a == JWT_HS256 ? "HS256" : a == JWT_EDDSA ? "EdDSA" : "ES256";
}

/* --- base64url (RFC 4648 section 5), no padding, as JWS requires */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decoded length, or -1 for a byte outside the alphabet, a length no
 * encoding has, or more than cap bytes. */
static int b64url_decode(const char *s, size_t n, unsigned char *dst, size_t cap)
{
	if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
		return -1;
	size_t out = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dst[out++] = (unsigned char)(acc >> bits);
		}
	}
	/* Leftover bits must be zero: one token, one spelling. */
	if (bits && (acc & ((1u << bits) - 1)))
		return -1;
	return (int)out;
}

static size_t b64url_encode(const unsigned char *src, size_t n, char *dst)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
		dst[o++] = abc[v >> 18];
		dst[o++] = abc[(v >> 12) & 63];
		dst[o++] = abc[(v >> 6) & 63];
		dst[o++] = abc[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;
		dst[o++] = abc[v >> 18];
		dst[o++] = abc[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
		dst[o++] = abc[v >> 18];
		dst[o++] = abc[(v >> 12) & 63];
		dst[o++] = abc[(v >> 6) & 63];
	}
	return o;
}

/* --- a strict scanner for the two JSON objects */

struct js {
	const char *p, *end;
};

static void js_ws(struct js *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool js_eat(struct js *j, char c)
{
	js_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A string into dst (NUL-terminated, at most cap - 1 bytes; dst NULL:
 * skipped). -1 on bad syntax or when it does not fit. */
static int js_string(struct js *j, char *dst, size_t cap, size_t *len)
{
	size_t n = 0;
	js_ws(j);
	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	for (;;) {
		if (j->p >= j->end)
			return -1;
		unsigned char c = (unsigned char)*j->p++;
		unsigned cp;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			cp = c;
		} else {
			if (j->p >= j->end)
				return -1;
			char e = *j->p++;
			switch (e) {
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case '/': cp = '/'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'n': cp = '\n'; break;
			case 'r': cp = '\r'; break;
			case 't': cp = '\t'; break;
			case 'u':
				if (j->end - j->p < 4 || hex4(j->p, &cp) < 0)
					return -1;
				j->p += 4;
				/* A surrogate pair is two escapes; a lone half is refused. */
				if (cp >= 0xd800 && cp < 0xdc00) {
					unsigned lo;
					if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
					    hex4(j->p + 2, &lo) < 0 || lo < 0xdc00 || lo >= 0xe000)
						return -1;
					j->p += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp < 0xe000) {
					return -1;
				}
				break;
			default:
				return -1;
			}
		}
		/* Bytes >= 0x80 arrive as UTF-8 and are kept as they are. */
		unsigned char u[4];
		size_t un;
		if (cp < 0x80 || c >= 0x80) {
			u[0] = (unsigned char)cp;
			un = 1;
		} else if (cp < 0x800) {
			u[0] = (unsigned char)(0xc0 | cp >> 6);
			u[1] = (unsigned char)(0x80 | (cp & 63));
			un = 2;
		} else if (cp < 0x10000) {
			u[0] = (unsigned char)(0xe0 | cp >> 12);
			u[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
			u[2] = (unsigned char)(0x80 | (cp & 63));
			un = 3;
		} else {
			u[0] = (unsigned char)(0xf0 | cp >> 18);
			u[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
			u[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
			u[3] = (unsigned char)(0x80 | (cp & 63));
			un = 4;
		}
		if (dst) {
			if (n + un >= cap)
				return -1;
			memcpy(dst + n, u, un);
		}
		n += un;
	}
	if (dst)
		dst[n] = '\0';
	if (len)
		*len = n;
	return 0;
}

/* A NumericDate or count: digits, an optional fraction (dropped) and no
 * sign or exponent; at most 15 digits before the point. */
static int js_int(struct js *j, int64_t *out)
{
	js_ws(j);
	int64_t v = 0;
	int digits = 0;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		if (++digits > 15)
			return -1;
		v = v * 10 + (*j->p++ - '0');
	}
	if (!digits)
		return -1;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -1;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E'))
		return -1;
	*out = v;
	return 0;
}

static int js_skip(struct js *j, int depth)
{
	js_ws(j);
	if (j->p >= j->end || depth > JSON_DEPTH_MAX)
		return -1;
	char c = *j->p;
	if (c == '"')
		return js_string(j, NULL, 0, NULL);
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		j->p++;
		if (js_eat(j, close))
			return 0;
		do {
			if (c == '{' && (js_string(j, NULL, 0, NULL) < 0 || !js_eat(j, ':')))
				return -1;
			if (js_skip(j, depth + 1) < 0)
				return -1;
		} while (js_eat(j, ','));
		return js_eat(j, close) ? 0 : -1;
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		j->p++;
		while (j->p < j->end && strchr("0123456789.eE+-", *j->p))
			j->p++;
		return 0;
	}
	static const char *const words[] = {"true", "false", "null"};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);
		if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0) {
			j->p += n;
			return 0;
		}
	}
	return -1;
}

/* Calls member(name, j, user) for each member; member consumes the value
 * (or returns 1 to have it skipped). The object must be all there is. */
static int js_object(struct js *j, int (*member)(const char *, struct js *, void *), void *user)
{
	if (!js_eat(j, '{'))
		return -1;
	if (!js_eat(j, '}')) {
		do {
			char name[32];
			int rc;
			/* A name longer than any we read is one we skip. */
			struct js save = *j;
			if (js_string(j, name, sizeof(name), NULL) < 0) {
				*j = save;
				if (js_string(j, NULL, 0, NULL) < 0)
					return -1;
				name[0] = '\0';
			}
			if (!js_eat(j, ':'))
				return -1;
			rc = name[0] ? member(name, j, user) : 1;
			if (rc < 0)
				return -1;
			if (rc > 0 && js_skip(j, 1) < 0)
				return -1;
		} while (js_eat(j, ','));
		if (!js_eat(j, '}'))
			return -1;
	}
	js_ws(j);
	return j->p == j->end ? 0 : -1;
}

/* --- the header */

struct header {
	char alg[16], kid[JWT_KID_MAX + 1];
	bool has_alg, has_kid, crit;
};

static int header_member(const char *name, struct js *j, void *user)
{
	struct header *h = user;
	if (strcmp(name, "alg") == 0) {
		if (h->has_alg)
			return -1;
		h->has_alg = true;
		return js_string(j, h->alg, sizeof(h->alg), NULL);
	}
	if (strcmp(name, "kid") == 0) {
		if (h->has_kid)
			return -1;
		h->has_kid = true;
		return js_string(j, h->kid, sizeof(h->kid), NULL);
	}
	if (strcmp(name, "crit") == 0)
		h->crit = true; /* RFC 7515 4.1.11: extensions we cannot honour */
	return 1;
}

/* --- the claims */

struct claims_ctx {
	struct jwt_claims *c;
	const struct jwt_policy *policy;
	unsigned seen;
	bool iss_ok, aud_ok;
	int64_t nbf;
	enum jwt_result why;
};

enum { SEEN_SUB = 1, SEEN_EXP = 2, SEEN_NBF = 4, SEEN_ISS = 8, SEEN_AUD = 16, SEEN_SKUS = 32, SEEN_LIMIT = 64 };

static bool once(struct claims_ctx *x, unsigned bit)
{
	if (x->seen & bit)
		return false;
	x->seen |= bit;
	return true;
}

static int aud_value(struct claims_ctx *x, struct js *j)
{
	char v[JWT_CLAIM_MAX];
	if (js_string(j, v, sizeof(v), NULL) < 0)
		return -1;
	if (x->policy->audience && strcmp(v, x->policy->audience) == 0)
		x->aud_ok = true;
	return 0;
}

static int sku_value(struct claims_ctx *x, struct js *j)
{
	char v[ORDER_ID_MAX + 2];
	size_t n;
	if (js_string(j, v, sizeof(v), &n) < 0)
		return -1;
	bool prefix = n > 0 && v[n - 1] == '*';
	if (prefix)
		n--;
	/* "*" alone (any SKU) is what no fg_skus already says: refused as a
	 * likely mistake in the issuer. */
	if (!order_valid_ident(v, n) || x->c->nskus >= JWT_SKUS_MAX)
		return -1;
	memcpy(x->c->skus[x->c->nskus].s, v, n);
	x->c->skus[x->c->nskus].s[n] = '\0';
	x->c->skus[x->c->nskus].len = (uint8_t)n;
	x->c->skus[x->c->nskus].prefix = prefix;
	x->c->nskus++;
	return 0;
}

static int js_string_array(struct js *j, struct claims_ctx *x, int (*each)(struct claims_ctx *, struct js *))
{
	if (!js_eat(j, '['))
		return -1;
	if (js_eat(j, ']'))
		return 0;
	do {
		if (each(x, j) < 0)
			return -1;
	} while (js_eat(j, ','));
	return js_eat(j, ']') ? 0 : -1;
}

static int claims_member(const char *name, struct js *j, void *user)
{
	struct claims_ctx *x = user;
	struct jwt_claims *c = x->c;
	if (strcmp(name, "sub") == 0) {
		char v[ORDER_ID_MAX + 1];
		size_t n;
		if (!once(x, SEEN_SUB))
			return -1;
		if (js_string(j, v, sizeof(v), &n) < 0 || !order_valid_ident(v, n)) {
			x->why = JWT_BAD_SUBJECT;
			return -1;
		}
		memcpy(c->sub, v, n + 1);
		c->sub_len = (uint8_t)n;
		return 0;
	}
	if (strcmp(name, "exp") == 0)
		return once(x, SEEN_EXP) ? js_int(j, &c->exp) : -1;
	if (strcmp(name, "nbf") == 0)
		return once(x, SEEN_NBF) ? js_int(j, &x->nbf) : -1;
	if (strcmp(name, "iss") == 0) {
		char v[JWT_CLAIM_MAX];
		if (!once(x, SEEN_ISS) || js_string(j, v, sizeof(v), NULL) < 0)
			return -1;
		x->iss_ok = x->policy->issuer && strcmp(v, x->policy->issuer) == 0;
		return 0;
	}
	if (strcmp(name, "aud") == 0) {
		if (!once(x, SEEN_AUD))
			return -1;
		js_ws(j);
		return j->p < j->end && *j->p == '[' ? js_string_array(j, x, aud_value) : aud_value(x, j);
	}
	if (strcmp(name, "fg_skus") == 0) {
		if (!once(x, SEEN_SKUS) || js_string_array(j, x, sku_value) < 0)
			return -1;
		return c->nskus ? 0 : -1; /* an empty list would buy nothing: a broken token */
	}
	if (strcmp(name, "fg_limit") == 0) {
		int64_t v;
		if (!once(x, SEEN_LIMIT) || js_int(j, &v) < 0 || v < 1 || v > 1000000000)
			return -1;
		c->limit = (uint32_t)v;
		return 0;
	}
	return 1;
}

/* --- prepared contexts */

struct jwt_ctx {
	const struct jwt_key *keys;
	unsigned n;
	EVP_MAC_CTX **hmac; /* per key; NULL for a key of another alg */
};

struct jwt_ctx *jwt_ctx_new(const struct jwt_key *keys, unsigned n)
{
	struct jwt_ctx *cx = calloc(1, sizeof(*cx));
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!cx || !mac || !(cx->hmac = calloc(n ? n : 1, sizeof(*cx->hmac))))
		goto fail;
	cx->keys = keys;
	cx->n = n;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
			       OSSL_PARAM_construct_end()};
	for (unsigned i = 0; i < n; i++) {
		if (keys[i].alg != JWT_HS256)
			continue;
		if (!(cx->hmac[i] = EVP_MAC_CTX_new(mac)) ||
		    EVP_MAC_init(cx->hmac[i], keys[i].secret, keys[i].secret_len, params) != 1)
			goto fail;
	}
	EVP_MAC_free(mac);
	return cx;
fail:
	EVP_MAC_free(mac);
	jwt_ctx_free(cx);
	return NULL;
}

void jwt_ctx_free(struct jwt_ctx *cx)
{
	if (!cx)
		return;
	for (unsigned i = 0; cx->hmac && i < cx->n; i++)
		EVP_MAC_CTX_free(cx->hmac[i]);
	free(cx->hmac);
	free(cx);
}

/* HMAC-SHA256 of msg with k into mac[32]: through cx's context for k when
 * it has one (reinitialised with the key it holds), else the one-shot. */
static bool hmac_sha256(const struct jwt_key *k, struct jwt_ctx *cx, const char *msg, size_t mlen,
			unsigned char mac[32])
{
	if (cx && k >= cx->keys && k < cx->keys + cx->n && cx->hmac[k - cx->keys]) {
		EVP_MAC_CTX *m = cx->hmac[k - cx->keys];
		size_t out = 0;
		return EVP_MAC_init(m, NULL, 0, NULL) == 1 && EVP_MAC_update(m, (const unsigned char *)msg, mlen) == 1 &&
		       EVP_MAC_final(m, mac, &out, 32) == 1 && out == 32;
	}
	unsigned int n = 0;
	return HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)msg, mlen, mac, &n) && n == 32;
}

/* --- signatures */

static bool verify_sig(const struct jwt_key *k, struct jwt_ctx *cx, const char *msg, size_t mlen,
		       const unsigned char *sig, size_t slen)
{
	if (k->alg == JWT_HS256) {
		unsigned char mac[32];
		return slen == 32 && hmac_sha256(k, cx, msg, mlen, mac) && CRYPTO_memcmp(mac, sig, 32) == 0;
	}
	unsigned char der[80];
	const unsigned char *s = sig;
	size_t sl = slen;
	const EVP_MD *md = NULL;
	if (k->alg == JWT_ES256) {
		/* JWS carries r || s; libcrypto wants the DER of ECDSA-Sig-Value. */
		if (slen != 64)
			return false;
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
		if (!es || !r || !ss || !ECDSA_SIG_set0(es, r, ss)) {
			ECDSA_SIG_free(es);
			BN_free(r);
			BN_free(ss);
			return false;
		}
		unsigned char *p = der;
		int n = i2d_ECDSA_SIG(es, NULL);
		if (n <= 0 || (size_t)n > sizeof(der) || i2d_ECDSA_SIG(es, &p) != n) {
			ECDSA_SIG_free(es);
			return false;
		}
		ECDSA_SIG_free(es);
		s = der;
		sl = (size_t)n;
		md = EVP_sha256();
	} else if (slen != 64) {
		return false;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pkey) == 1 &&
		  EVP_DigestVerify(ctx, s, sl, (const unsigned char *)msg, mlen) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

static const struct jwt_key *find_key(const struct jwt_keyset *ks, const struct header *h)
{
	if (!h->has_kid)
		return ks->n == 1 ? &ks->keys[0] : NULL;
	for (unsigned i = 0; i < ks->n; i++)
		if (strcmp(ks->keys[i].kid, h->kid) == 0)
			return &ks->keys[i];
	return NULL;
}

enum jwt_result jwt_verify(const struct jwt_keyset *ks, struct jwt_ctx *cx, const char *tok, size_t len,
			   const struct jwt_policy *policy, int64_t now_s, struct jwt_claims *out)
{
	if (len > JWT_TOKEN_MAX)
		return JWT_MALFORMED;
	const char *dot1 = memchr(tok, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(tok + len - dot1 - 1)) : NULL;
	if (!dot2 || memchr(dot2 + 1, '.', (size_t)(tok + len - dot2 - 1)))
		return JWT_MALFORMED;

	char json[JWT_TOKEN_MAX];
	unsigned char sig[SIG_MAX];
	int n = b64url_decode(tok, (size_t)(dot1 - tok), (unsigned char *)json, sizeof(json));
	struct header h = {0};
	struct js j = {json, json + (n > 0 ? n : 0)};
	if (n <= 0 || js_object(&j, header_member, &h) < 0 || !h.has_alg || h.crit)
		return JWT_MALFORMED;
	const struct jwt_key *k = find_key(ks, &h);
	if (!k)
		return JWT_UNKNOWN_KID;
	if (strcmp(h.alg, jwt_alg_name(k->alg)) != 0)
		return JWT_WRONG_ALG;
	int slen = b64url_decode(dot2 + 1, (size_t)(tok + len - dot2 - 1), sig, sizeof(sig));
	if (slen <= 0)
		return JWT_MALFORMED;
	if (!verify_sig(k, cx, tok, (size_t)(dot2 - tok), sig, (size_t)slen))
		return JWT_BAD_SIGNATURE;

	memset(out, 0, sizeof(*out));
	struct claims_ctx x = {.c = out, .policy = policy, .why = JWT_MALFORMED};
	n = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), (unsigned char *)json, sizeof(json));
	j = (struct js){json, json + (n > 0 ? n : 0)};
	if (n <= 0 || js_object(&j, claims_member, &x) < 0)
		return x.why;
	if (!out->sub_len)
		return JWT_BAD_SUBJECT;
	if (!(x.seen & SEEN_EXP))
		return JWT_NO_EXPIRY;
	if (now_s >= out->exp + policy->skew_s)
		return JWT_EXPIRED;
	if ((x.seen & SEEN_NBF) && now_s + policy->skew_s < x.nbf)
		return JWT_NOT_YET_VALID;
	if (policy->issuer && *policy->issuer && !x.iss_ok)
		return JWT_BAD_ISSUER;
	if (policy->audience && *policy->audience && !x.aud_ok)
		return JWT_BAD_AUDIENCE;
	return JWT_OK;
}

bool jwt_claims_allow_sku(const struct jwt_claims *c, const char *sku, size_t len)
{
	if (!c->nskus)
		return true;
	for (unsigned i = 0; i < c->nskus; i++) {
		size_t n = c->skus[i].len;
		if (c->skus[i].prefix ? len >= n && memcmp(sku, c->skus[i].s, n) == 0
				      : len == n && memcmp(sku, c->skus[i].s, n) == 0)
			return true;
	}
	return false;
}

/* --- keys */

static bool valid_kid(const char *s, size_t n)
{
	if (n == 0 || n > JWT_KID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* The secret of an .hs256 file: its bytes, whole. */
static int read_secret(struct jwt_key *k, const char *path, char *err, size_t err_len)
{
	unsigned char buf[JWT_SECRET_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int rc = -errno;
		snprintf(err, err_len, "%s: cannot read: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, err_len, "%s: not a regular file", path);
		return -EINVAL;
	}
	ssize_t n = read(fd, buf, sizeof(buf));
	int rc = n < 0 ? -errno : 0;
	close(fd);
	if (rc < 0) {
		snprintf(err, err_len, "%s: cannot read: %s", path, strerror(-rc));
		return rc;
	}
	if (n < JWT_SECRET_MIN || n > JWT_SECRET_MAX) {
		snprintf(err, err_len, "%s: an HS256 secret must be %d to %d bytes, this is %zd "
				       "(make one with: openssl rand -out FILE 32)",
			 path, JWT_SECRET_MIN, JWT_SECRET_MAX, n);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -EINVAL;
	}
	memcpy(k->secret, buf, (size_t)n);
	k->secret_len = (size_t)n;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* The alg a key's type signs with, or -1 for a type we do not take. */
static int pkey_alg(EVP_PKEY *pk)
{
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519)
		return JWT_EDDSA;
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
		char group[64];
		size_t gl = 0;
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &gl) == 1 &&
		    strcmp(group, "prime256v1") == 0)
			return JWT_ES256;
	}
	return -1;
}

static int read_pem(struct jwt_key *k, const char *path, bool private_key, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int rc = -errno;
		snprintf(err, err_len, "%s: cannot read: %s", path, strerror(errno));
		return rc;
	}
	EVP_PKEY *pk = private_key ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!pk) {
		snprintf(err, err_len, "%s: holds no PEM %s key%s", path, private_key ? "private" : "public",
			 private_key ? "" : " (a gateway needs only the public half: openssl pkey -in KEY -pubout)");
		return -EINVAL;
	}
	int alg = pkey_alg(pk);
	if (alg < 0) {
		EVP_PKEY_free(pk);
		snprintf(err, err_len, "%s: a key of a type flashgate does not take (Ed25519 or EC P-256)", path);
		return -EINVAL;
	}
	k->alg = (enum jwt_alg)alg;
	k->pkey = pk;
	return 0;
}

/* A key from path, whose base name is KID.hs256 or KID.pem. */
static int load_key(struct jwt_key *k, const char *path, bool private_key, char *err, size_t err_len)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *dot = strrchr(base, '.');
	memset(k, 0, sizeof(*k));
	if (!dot || (strcmp(dot, ".hs256") != 0 && strcmp(dot, ".pem") != 0) ||
	    !valid_kid(base, (size_t)(dot - base))) {
		snprintf(err, err_len, "%s: not a key file: name it KID.hs256 (an HMAC secret) or KID.pem "
				       "(an Ed25519 or P-256 key), KID of 1-64 letters, digits, '.', '_', '-'",
			 path);
		return -EINVAL;
	}
	memcpy(k->kid, base, (size_t)(dot - base));
	if (strcmp(dot, ".hs256") == 0) {
		k->alg = JWT_HS256;
		return read_secret(k, path, err, err_len);
	}
	return read_pem(k, path, private_key, err, err_len);
}

void jwt_key_free(struct jwt_key *k)
{
	EVP_PKEY_free(k->pkey);
	OPENSSL_cleanse(k, sizeof(*k));
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
	for (unsigned i = 0; i < ks->n; i++)
		jwt_key_free(&ks->keys[i]);
	free(ks->keys);
	ks->keys = NULL;
	ks->n = 0;
}

int jwt_keyset_load(struct jwt_keyset *ks, const char *dir, char *err, size_t err_len)
{
	ks->keys = NULL;
	ks->n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		int rc = -errno;
		snprintf(err, err_len, "%s: cannot open the key directory: %s", dir, strerror(errno));
		return rc;
	}
	int rc = 0;
	unsigned cap = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.') /* ., .., and editors' hidden files */
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (ks->n == cap) {
			unsigned ncap = cap ? cap * 2 : 4;
			struct jwt_key *nk = realloc(ks->keys, ncap * sizeof(*nk));
			if (!nk) {
				rc = -ENOMEM;
				snprintf(err, err_len, "%s: out of memory", dir);
				break;
			}
			ks->keys = nk;
			cap = ncap;
		}
		struct jwt_key *k = &ks->keys[ks->n];
		if ((rc = load_key(k, path, false, err, err_len)) < 0)
			break;
		ks->n++;
		for (unsigned i = 0; i + 1 < ks->n; i++) {
			if (strcmp(ks->keys[i].kid, k->kid) == 0) {
				snprintf(err, err_len, "%s: a second key of kid '%s'", path, k->kid);
				rc = -EINVAL;
				break;
			}
		}
	}
	closedir(d);
	if (rc == 0 && ks->n == 0) {
		snprintf(err, err_len, "%s: no keys (KID.hs256 or KID.pem files)", dir);
		rc = -ENOENT;
	}
	if (rc < 0)
		jwt_keyset_free(ks);
	return rc;
}

int jwt_signer_load(struct jwt_key *key, const char *path, char *err, size_t err_len)
{
	return load_key(key, path, true, err, err_len);
}

/* --- signing (flashload, tests) */

static int sign_bytes(const struct jwt_key *k, struct jwt_ctx *cx, const char *msg, size_t mlen,
		      unsigned char *sig, size_t *slen)
{
	if (k->alg == JWT_HS256) {
		if (!hmac_sha256(k, cx, msg, mlen, sig))
			return -EIO;
		*slen = 32;
		return 0;
	}
	unsigned char der[80];
	size_t dl = sizeof(der);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx &&
		  EVP_DigestSignInit(ctx, NULL, k->alg == JWT_ES256 ? EVP_sha256() : NULL, NULL, k->pkey) == 1 &&
		  EVP_DigestSign(ctx, k->alg == JWT_ES256 ? der : sig, k->alg == JWT_ES256 ? &dl : slen,
				 (const unsigned char *)msg, mlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -EIO;
	if (k->alg == JWT_ES256) {
		const unsigned char *p = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
		const BIGNUM *r, *s;
		if (!es)
			return -EIO;
		ECDSA_SIG_get0(es, &r, &s);
		ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
		ECDSA_SIG_free(es);
		*slen = 64;
		if (!ok)
			return -EIO;
	}
	return 0;
}

int jwt_sign(const struct jwt_key *k, struct jwt_ctx *cx, const char *claims_json, char *dst, size_t cap)
{
	char header[128];
	int hl = snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", jwt_alg_name(k->alg),
			  k->kid);
	size_t cl = strlen(claims_json);
	/* base64url grows by 4/3; the signature is at most 86 characters. */
	if (hl < 0 || (size_t)hl >= sizeof(header) || ((size_t)hl + cl) * 4 / 3 + 4 + 90 > cap)
		return -ENOSPC;
	size_t n = b64url_encode((const unsigned char *)header, (size_t)hl, dst);
	dst[n++] = '.';
	n += b64url_encode((const unsigned char *)claims_json, cl, dst + n);
	unsigned char sig[SIG_MAX];
	size_t sl = sizeof(sig);
	int rc = sign_bytes(k, cx, dst, n, sig, &sl);
	if (rc < 0)
		return rc;
	dst[n++] = '.';
	n += b64url_encode(sig, sl, dst + n);
	dst[n] = '\0';
	return (int)n;
}
