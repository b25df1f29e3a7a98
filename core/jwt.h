/*
 * jwt: JSON Web Tokens (RFC 7519) as flashgate uses them: the buyer's
 * identity on every order, signed by the platform's auth service.
 *
 * Owns: the keys (a directory of files, one key each, named by its kid),
 * parsing a compact JWS (RFC 7515) of at most JWT_TOKEN_MAX bytes, checking
 * its signature with OpenSSL's libcrypto (HS256, EdDSA with Ed25519, ES256
 * with P-256), its times and its issuer and audience, and decoding the
 * claims flashgate reads into a struct jwt_claims; and, for flashload,
 * signing such tokens. Does not own: HTTP (the caller hands it the bytes
 * after "Bearer "), caching verified tokens (gateway/auth), or what the
 * claims allow (the order flow and the reserve script judge that).
 *
 * The key directory: KID.hs256 holds an HMAC secret (the file's bytes, at
 * least 32 of them); KID.pem a public key in PEM, Ed25519 (EdDSA) or EC
 * P-256 (ES256). A token's "kid" picks its key, and its "alg" must be the
 * key's: a token cannot choose a weaker algorithm than its key's (the
 * classic "alg":"none" and HS256-with-a-public-key attacks). Several keys
 * at once let an issuer roll its key: add the new one, move the issuer,
 * remove the old one.
 *
 * Claims read: sub (the user id: 1-64 identifier characters, core/order.h),
 * exp and nbf (checked against the caller's clock with a skew), iss and aud
 * (checked when the policy names them; aud may be a string or an array),
 * and flashgate's purchase claims: fg_skus, an array of at most
 * JWT_SKUS_MAX SKUs or SKU prefixes ending in '*' that the token may buy,
 * and fg_limit, units per SKU the holder may buy (below the SKU's own
 * per-user limit; 0 when absent). Other claims are ignored.
 */
#ifndef FG_JWT_H
#define FG_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "order.h"

#define JWT_TOKEN_MAX 2048
#define JWT_KID_MAX 64
#define JWT_SKUS_MAX 8
#define JWT_CLAIM_MAX 256 /* iss and each aud */
#define JWT_SECRET_MIN 32
#define JWT_SECRET_MAX 512

enum jwt_alg { JWT_HS256, JWT_EDDSA, JWT_ES256 };

/* Why a token was refused; JWT_OK when it was not. Each has a short word
 * for answers and metrics (jwt_result_word). */
enum jwt_result {
	JWT_OK = 0,
	JWT_MALFORMED,     /* not three base64url parts of JSON objects, or a claim of the wrong type */
	JWT_UNKNOWN_KID,   /* no key of that kid (or none given and not one key) */
	JWT_WRONG_ALG,     /* alg is not the kid's key's */
	JWT_BAD_SIGNATURE,
	JWT_EXPIRED,
	JWT_NOT_YET_VALID,
	JWT_NO_EXPIRY,     /* exp is required: a token must not buy forever */
	JWT_BAD_SUBJECT,   /* sub missing or not a user id */
	JWT_BAD_ISSUER,
	JWT_BAD_AUDIENCE,
	JWT_RESULT_N
};

struct jwt_key {
	char kid[JWT_KID_MAX + 1];
	enum jwt_alg alg;
	unsigned char secret[JWT_SECRET_MAX]; /* HS256 */
	size_t secret_len;
	void *pkey; /* EVP_PKEY *: EdDSA, ES256 (public for verifying, private for signing) */
};

struct jwt_keyset {
	struct jwt_key *keys;
	unsigned n;
};

struct jwt_policy {
	const char *issuer;   /* "" or NULL: not checked */
	const char *audience; /* "" or NULL: not checked */
	int64_t skew_s;       /* tolerance on exp and nbf */
};

struct jwt_claims {
	char sub[ORDER_ID_MAX + 1];
	uint8_t sub_len;
	int64_t exp; /* seconds since the epoch */
	uint32_t limit; /* fg_limit; 0: none */
	uint8_t nskus;  /* fg_skus; 0: any SKU */
	struct {
		char s[ORDER_ID_MAX + 1];
		uint8_t len;
		bool prefix; /* ended in '*' (not stored) */
	} skus[JWT_SKUS_MAX];
};

/*
 * Loads every key in dir (see above) into *ks. A file of another name, a
 * secret shorter than JWT_SECRET_MIN bytes, a PEM that holds no public key
 * of a supported type, or a directory with no key fails with "DIR/FILE:
 * why" in err. 0 or -errno; *ks is empty after a failure.
 */
int jwt_keyset_load(struct jwt_keyset *ks, const char *dir, char *err, size_t err_len)
	__attribute__((warn_unused_result));
void jwt_keyset_free(struct jwt_keyset *ks);

/*
 * One thread's prepared crypto state for a set of keys: an HMAC context
 * per HS256 key, keyed once. OpenSSL 3's one-shot HMAC() looks the
 * algorithm up and keys a new context on every call, behind a lock the
 * workers would share: with it, an HS256 check cost about as much as the
 * rest of a sold-out answer. NULL when out of memory. A context is used by
 * one thread at a time; the keys must outlive it.
 */
struct jwt_ctx;
struct jwt_ctx *jwt_ctx_new(const struct jwt_key *keys, unsigned n);
void jwt_ctx_free(struct jwt_ctx *cx);

/*
 * Checks tok[0..len) against ks and policy at now_s, with cx (from
 * jwt_ctx_new over ks's keys, or NULL: slower, the same answer). JWT_OK
 * with *out filled, or why not (*out is then meaningless).
 */
enum jwt_result jwt_verify(const struct jwt_keyset *ks, struct jwt_ctx *cx, const char *tok, size_t len,
			   const struct jwt_policy *policy, int64_t now_s, struct jwt_claims *out);

/* "HS256", "EdDSA" or "ES256": the alg a token of that key names. */
const char *jwt_alg_name(enum jwt_alg a);

/* "malformed", "unknown_kid", ... for answers, logs and metrics. */
const char *jwt_result_word(enum jwt_result r);

/* Whether the token's fg_skus allow sku (any SKU when it has none). */
bool jwt_claims_allow_sku(const struct jwt_claims *c, const char *sku, size_t len);

/*
 * For flashload and tests: a signing key from one file, named as in a key
 * directory (KID.hs256: the secret; KID.pem: a PEM private key, Ed25519 or
 * P-256). 0 or -errno with err set.
 */
int jwt_signer_load(struct jwt_key *key, const char *path, char *err, size_t err_len)
	__attribute__((warn_unused_result));
void jwt_key_free(struct jwt_key *key);

/*
 * Writes a compact token for claims_json (a JSON object's text, whole)
 * signed by key, with the key's alg and kid in the header, into dst (cap
 * bytes, NUL-terminated), with cx (from jwt_ctx_new over that one key, or
 * NULL). Returns its length or -errno (-ENOSPC: too small).
 */
int jwt_sign(const struct jwt_key *key, struct jwt_ctx *cx, const char *claims_json, char *dst, size_t cap)
	__attribute__((warn_unused_result));

#endif
