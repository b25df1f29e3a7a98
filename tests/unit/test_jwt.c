/* Unit tests for core/jwt.c: tokens signed here with keys made here, in a
 * key directory written to a temporary folder, as an operator would. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../core/jwt.h"

#define NOW 1800000000

static char dir[64], signdir[64];
static struct jwt_keyset ks;
static struct jwt_key hs, ed, es, ed_other;
static struct jwt_ctx *cx; /* the keyset's, as a gateway worker has one */
static const struct jwt_policy policy = {.issuer = "", .audience = "", .skew_s = 30};

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

/* Writes NAME.pem's private half to signdir and public half to dir. */
static void make_pkey(const char *name, EVP_PKEY *pk, bool publish)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/%s.pem", signdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	if (publish) {
		snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
		f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(PEM_write_PUBKEY(f, pk), 1);
		fclose(f);
	}
	EVP_PKEY_free(pk);
}

static void load_signer(struct jwt_key *k, const char *file)
{
	char path[160], err[256];
	snprintf(path, sizeof(path), "%s", file);
	assert_int_equal(jwt_signer_load(k, path, err, sizeof(err)), 0);
}

static int setup(void **state)
{
	(void)state;
	char err[256], path[160];
	strcpy(dir, "/tmp/fg-jwt-XXXXXX");
	strcpy(signdir, "/tmp/fg-jwt-sign-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(signdir));
	unsigned char secret[32];
	for (int i = 0; i < 32; i++)
		secret[i] = (unsigned char)(i * 7 + 1);
	snprintf(path, sizeof(path), "%s/hs.hs256", dir);
	write_file(path, secret, sizeof(secret));
	make_pkey("ed", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), true);
	make_pkey("es", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), true);
	make_pkey("edx", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), false); /* not the gateway's */
	assert_int_equal(jwt_keyset_load(&ks, dir, err, sizeof(err)), 0);
	assert_int_equal(ks.n, 3);
	cx = jwt_ctx_new(ks.keys, ks.n);
	assert_non_null(cx);
	load_signer(&hs, path);
	snprintf(path, sizeof(path), "%s/ed.pem", signdir);
	load_signer(&ed, path);
	snprintf(path, sizeof(path), "%s/es.pem", signdir);
	load_signer(&es, path);
	snprintf(path, sizeof(path), "%s/edx.pem", signdir);
	load_signer(&ed_other, path);
	/* edx claims to be ed: same kid, other key */
	strcpy(ed_other.kid, "ed");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[200];
	jwt_ctx_free(cx);
	jwt_keyset_free(&ks);
	jwt_key_free(&hs);
	jwt_key_free(&ed);
	jwt_key_free(&es);
	jwt_key_free(&ed_other);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, signdir);
	return system(cmd) == 0 ? 0 : -1;
}

static enum jwt_result check(const struct jwt_key *k, const char *claims, struct jwt_claims *c)
{
	char tok[JWT_TOKEN_MAX];
	int n = jwt_sign(k, NULL, claims, tok, sizeof(tok));
	assert_true(n > 0);
	return jwt_verify(&ks, cx, tok, (size_t)n, &policy, NOW, c);
}

static void test_each_algorithm_verifies(void **state)
{
	(void)state;
	struct jwt_claims c;
	const char *claims = "{\"sub\":\"alice\",\"exp\":1800000100}";
	assert_int_equal(check(&hs, claims, &c), JWT_OK);
	assert_string_equal(c.sub, "alice");
	assert_int_equal(c.sub_len, 5);
	assert_int_equal(c.exp, 1800000100);
	assert_int_equal(check(&ed, claims, &c), JWT_OK);
	assert_int_equal(check(&es, claims, &c), JWT_OK);
	/* ES256 signatures are random: sign again, verify again */
	assert_int_equal(check(&es, claims, &c), JWT_OK);
}

static void test_a_key_that_is_not_the_kids_is_refused(void **state)
{
	(void)state;
	struct jwt_claims c;
	assert_int_equal(check(&ed_other, "{\"sub\":\"a\",\"exp\":1800000100}", &c), JWT_BAD_SIGNATURE);
}

static void test_times(void **state)
{
	(void)state;
	struct jwt_claims c;
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1799999980}", &c), JWT_OK); /* within the skew */
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1799999970}", &c), JWT_EXPIRED);
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100,\"nbf\":1800000020}", &c), JWT_OK);
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100,\"nbf\":1800000031}", &c),
			 JWT_NOT_YET_VALID);
	assert_int_equal(check(&hs, "{\"sub\":\"a\"}", &c), JWT_NO_EXPIRY);
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100.75}", &c), JWT_OK);
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":\"1800000100\"}", &c), JWT_MALFORMED);
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1.8e9}", &c), JWT_MALFORMED);
}

static void test_subject(void **state)
{
	(void)state;
	struct jwt_claims c;
	assert_int_equal(check(&hs, "{\"exp\":1800000100}", &c), JWT_BAD_SUBJECT);
	assert_int_equal(check(&hs, "{\"sub\":\"a b\",\"exp\":1800000100}", &c), JWT_BAD_SUBJECT);
	assert_int_equal(check(&hs, "{\"sub\":\"\",\"exp\":1800000100}", &c), JWT_BAD_SUBJECT);
	/* an escaped '/' is still not an identifier character */
	assert_int_equal(check(&hs, "{\"sub\":\"a\\/b\",\"exp\":1800000100}", &c), JWT_BAD_SUBJECT);
	assert_int_equal(check(&hs, "{\"sub\":\"a\\u003ab\",\"exp\":1800000100}", &c), JWT_OK);
	assert_string_equal(c.sub, "a:b");
	/* a repeated claim is refused, whichever copy a reader would keep */
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1800000100}", &c), JWT_MALFORMED);
}

static void test_issuer_and_audience(void **state)
{
	(void)state;
	struct jwt_claims c;
	struct jwt_policy p = {.issuer = "https://auth.shop", .audience = "d11", .skew_s = 0};
	char tok[JWT_TOKEN_MAX];
	int n = jwt_sign(&hs, NULL, "{\"sub\":\"a\",\"exp\":1800000100,\"iss\":\"https://auth.shop\",\"aud\":[\"x\",\"d11\"]}",
			 tok, sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &p, NOW, &c), JWT_OK);
	n = jwt_sign(&hs, NULL, "{\"sub\":\"a\",\"exp\":1800000100,\"iss\":\"https://auth.shop\",\"aud\":\"bf\"}", tok,
		     sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &p, NOW, &c), JWT_BAD_AUDIENCE);
	n = jwt_sign(&hs, NULL, "{\"sub\":\"a\",\"exp\":1800000100,\"aud\":\"d11\"}", tok, sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &p, NOW, &c), JWT_BAD_ISSUER);
}

static void test_purchase_claims(void **state)
{
	(void)state;
	struct jwt_claims c;
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100,\"fg_skus\":[\"d11-*\",\"tv-1\"],\"fg_limit\":1}",
			       &c), JWT_OK);
	assert_int_equal(c.limit, 1);
	assert_int_equal(c.nskus, 2);
	assert_true(jwt_claims_allow_sku(&c, "d11-42", 6));
	assert_true(jwt_claims_allow_sku(&c, "tv-1", 4));
	assert_false(jwt_claims_allow_sku(&c, "tv-10", 5));
	assert_false(jwt_claims_allow_sku(&c, "bf-1", 4));
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100,\"fg_skus\":[]}", &c), JWT_MALFORMED);
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100,\"fg_skus\":[\"*\"]}", &c), JWT_MALFORMED);
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100,\"fg_limit\":0}", &c), JWT_MALFORMED);
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100,\"fg_skus\":[\"1\",\"2\",\"3\",\"4\",\"5\","
				    "\"6\",\"7\",\"8\",\"9\"]}", &c), JWT_MALFORMED);
	/* claims flashgate does not read are skipped, nested or not */
	assert_int_equal(check(&hs, "{\"sub\":\"a\",\"exp\":1800000100,\"x\":{\"y\":[1,true,null,{\"z\":\"\\\"\"}]}}",
			       &c), JWT_OK);
	assert_true(jwt_claims_allow_sku(&c, "anything", 8));
}

/* A header written by hand, signed with hs's secret. */
static int forge(const char *header_b64, const char *claims, char *tok, size_t cap)
{
	char t[JWT_TOKEN_MAX];
	int n = jwt_sign(&hs, NULL, claims, t, sizeof(t));
	assert_true(n > 0);
	const char *dot = strchr(t, '.');
	return snprintf(tok, cap, "%s%s", header_b64, dot);
}

static void test_header_attacks(void **state)
{
	(void)state;
	struct jwt_claims c;
	char tok[JWT_TOKEN_MAX];
	/* {"alg":"none","kid":"hs"} with an empty signature */
	int n = snprintf(tok, sizeof(tok), "eyJhbGciOiJub25lIiwia2lkIjoiaHMifQ.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMTAwfQ.");
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &policy, NOW, &c), JWT_WRONG_ALG);
	/* {"alg":"none","kid":"hs"} with hs's signature of another header */
	n = forge("eyJhbGciOiJub25lIiwia2lkIjoiaHMifQ", "{\"sub\":\"a\",\"exp\":1800000100}", tok, sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &policy, NOW, &c), JWT_WRONG_ALG);
	/* {"alg":"HS256","kid":"ed"}: an HMAC keyed by the public key */
	n = forge("eyJhbGciOiJIUzI1NiIsImtpZCI6ImVkIn0", "{\"sub\":\"a\",\"exp\":1800000100}", tok, sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &policy, NOW, &c), JWT_WRONG_ALG);
	/* {"alg":"HS256","kid":"nope"} */
	n = forge("eyJhbGciOiJIUzI1NiIsImtpZCI6Im5vcGUifQ", "{\"sub\":\"a\",\"exp\":1800000100}", tok, sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &policy, NOW, &c), JWT_UNKNOWN_KID);
	/* {"alg":"HS256"} without a kid, and three keys to choose from */
	n = forge("eyJhbGciOiJIUzI1NiJ9", "{\"sub\":\"a\",\"exp\":1800000100}", tok, sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &policy, NOW, &c), JWT_UNKNOWN_KID);
	/* {"alg":"HS256","kid":"hs","crit":["exp"]} */
	n = forge("eyJhbGciOiJIUzI1NiIsImtpZCI6ImhzIiwiY3JpdCI6WyJleHAiXX0", "{\"sub\":\"a\",\"exp\":1800000100}", tok,
		  sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &policy, NOW, &c), JWT_MALFORMED);
}

static void test_tampering_and_shapes(void **state)
{
	(void)state;
	struct jwt_claims c;
	char tok[JWT_TOKEN_MAX];
	int n = jwt_sign(&ed, NULL, "{\"sub\":\"alice\",\"exp\":1800000100}", tok, sizeof(tok));
	assert_int_equal(jwt_verify(&ks, cx, tok, (size_t)n, &policy, NOW, &c), JWT_OK);
	/* every byte changed in turn is refused */
	for (int i = 0; i < n; i++) {
		char t[JWT_TOKEN_MAX];
		memcpy(t, tok, (size_t)n);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		assert_int_not_equal(jwt_verify(&ks, cx, t, (size_t)n, &policy, NOW, &c), JWT_OK);
	}
	/* every prefix is refused */
	for (int i = 0; i < n; i++)
		assert_int_not_equal(jwt_verify(&ks, cx, tok, (size_t)i, &policy, NOW, &c), JWT_OK);
	assert_int_equal(jwt_verify(&ks, cx, "a.b.c.d", 7, &policy, NOW, &c), JWT_MALFORMED);
	assert_int_equal(jwt_verify(&ks, cx, "..", 2, &policy, NOW, &c), JWT_MALFORMED);
	assert_int_equal(jwt_verify(&ks, cx, "", 0, &policy, NOW, &c), JWT_MALFORMED);
	assert_string_equal(jwt_result_word(JWT_BAD_SIGNATURE), "bad_signature");
}

/* A prepared context gives the one-shot's answers, call after call (it is
 * re-keyed from what it holds), for signing and verifying. */
static void test_prepared_contexts_agree_with_the_one_shot(void **state)
{
	(void)state;
	struct jwt_ctx *sign_cx = jwt_ctx_new(&hs, 1);
	assert_non_null(sign_cx);
	for (int i = 0; i < 50; i++) {
		char claims[96], a[JWT_TOKEN_MAX], b[JWT_TOKEN_MAX];
		snprintf(claims, sizeof(claims), "{\"sub\":\"u%d\",\"exp\":1800000100}", i);
		int na = jwt_sign(&hs, sign_cx, claims, a, sizeof(a));
		int nb = jwt_sign(&hs, NULL, claims, b, sizeof(b));
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, (size_t)na);
		struct jwt_claims c;
		assert_int_equal(jwt_verify(&ks, cx, a, (size_t)na, &policy, NOW, &c), JWT_OK);
		assert_int_equal(jwt_verify(&ks, NULL, a, (size_t)na, &policy, NOW, &c), JWT_OK);
		char *sig = strrchr(a, '.') + 1;
		*sig = *sig == 'A' ? 'B' : 'A';
		assert_int_equal(jwt_verify(&ks, cx, a, (size_t)na, &policy, NOW, &c), JWT_BAD_SIGNATURE);
	}
	jwt_ctx_free(sign_cx);
}

static void test_key_directory_errors(void **state)
{
	(void)state;
	char d[64], path[160], err[256];
	struct jwt_keyset k;
	strcpy(d, "/tmp/fg-jwt-bad-XXXXXX");
	assert_non_null(mkdtemp(d));
	assert_int_equal(jwt_keyset_load(&k, d, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no keys"));
	snprintf(path, sizeof(path), "%s/short.hs256", d);
	write_file(path, "too short", 9);
	assert_int_equal(jwt_keyset_load(&k, d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "short.hs256"));
	assert_non_null(strstr(err, "32"));
	unlink(path);
	/* a private key where the public one belongs */
	char src[160];
	snprintf(src, sizeof(src), "%s/ed.pem", signdir);
	snprintf(path, sizeof(path), "cp %s %s/ed.pem", src, d);
	assert_int_equal(system(path), 0);
	assert_int_equal(jwt_keyset_load(&k, d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "public"));
	snprintf(path, sizeof(path), "%s/ed.pem", d);
	unlink(path);
	snprintf(path, sizeof(path), "%s/k1.hs265", d);
	write_file(path, "0123456789abcdef0123456789abcdef", 32);
	assert_int_equal(jwt_keyset_load(&k, d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a key file"));
	unlink(path);
	rmdir(d);
	assert_true(jwt_keyset_load(&k, "/nonexistent/keys", err, sizeof(err)) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_algorithm_verifies),
		cmocka_unit_test(test_a_key_that_is_not_the_kids_is_refused),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_subject),
		cmocka_unit_test(test_issuer_and_audience),
		cmocka_unit_test(test_purchase_claims),
		cmocka_unit_test(test_header_attacks),
		cmocka_unit_test(test_tampering_and_shapes),
		cmocka_unit_test(test_prepared_contexts_agree_with_the_one_shot),
		cmocka_unit_test(test_key_directory_errors),
	};
	return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
