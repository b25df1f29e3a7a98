/* jwt_cost: what verifying one bearer token costs on this machine, per
 * algorithm, without the gateway's cache (its first request from a
 * shopper) and what signing one costs (flashload, or an auth service).
 * Prints one Markdown row per algorithm; scripts/bench-identity.sh runs it
 * beside the gateway's own numbers. Usage: jwt_cost [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../core/jwt.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes a private key (for signing, in sign/) and its public half (the
 * keyset, in keys/), both named for the kid. */
static int make_key(const char *dir, const char *name, EVP_PKEY *pk)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/sign/%s.pem", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) != 1)
		return -1;
	fclose(f);
	snprintf(path, sizeof(path), "%s/keys/%s.pem", dir, name);
	f = fopen(path, "w");
	if (!f || PEM_write_PUBKEY(f, pk) != 1)
		return -1;
	fclose(f);
	EVP_PKEY_free(pk);
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000;
	char dir[] = "/tmp/fg-jwt-cost-XXXXXX", path[600], err[512];
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/keys", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/sign", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/keys/hs.hs256", dir);
	FILE *f = fopen(path, "w");
	for (int i = 0; f && i < 32; i++)
		fputc(i * 13 + 7, f);
	if (!f)
		return 1;
	fclose(f);
	if (make_key(dir, "ed", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) < 0 ||
	    make_key(dir, "es", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) < 0)
		return 1;
	struct jwt_keyset ks;
	snprintf(path, sizeof(path), "%s/keys", dir);
	if (jwt_keyset_load(&ks, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	const char *files[] = {"keys/hs.hs256", "sign/ed.pem", "sign/es.pem"};
	struct jwt_policy policy = {.skew_s = 30};
	struct jwt_ctx *vcx = jwt_ctx_new(ks.keys, ks.n);
	if (!vcx)
		return 1;
	printf("| algorithm | token bytes | sign us | verify us, one-shot | verify us, prepared (the gateway's) |\n"
	       "|---|---:|---:|---:|---:|\n");
	for (int a = 0; a < 3; a++) {
		struct jwt_key key;
		snprintf(path, sizeof(path), "%s/%s", dir, files[a]);
		if (jwt_signer_load(&key, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		char tok[JWT_TOKEN_MAX], claims[128];
		int len = 0;
		struct jwt_ctx *scx = jwt_ctx_new(&key, 1);
		if (!scx)
			return 1;
		double t0 = now_s();
		for (int i = 0; i < n; i++) {
			snprintf(claims, sizeof(claims), "{\"sub\":\"u%d\",\"iat\":1800000000,\"exp\":1800086400}", i);
			len = jwt_sign(&key, scx, claims, tok, sizeof(tok));
			if (len < 0) {
				fprintf(stderr, "%s: signing failed (%d)\n", jwt_alg_name(key.alg), len);
				return 1;
			}
		}
		double sign_us = (now_s() - t0) * 1e6 / n;
		struct jwt_claims c;
		double verify_us[2];
		for (int k = 0; k < 2; k++) {
			t0 = now_s();
			for (int i = 0; i < n; i++) {
				enum jwt_result r = jwt_verify(&ks, k ? vcx : NULL, tok, (size_t)len, &policy, 1800000000, &c);
				if (r != JWT_OK) {
					fprintf(stderr, "%s: verify: %s\n", jwt_alg_name(key.alg), jwt_result_word(r));
					return 1;
				}
			}
			verify_us[k] = (now_s() - t0) * 1e6 / n;
		}
		printf("| %s | %d | %.2f | %.2f | %.2f |\n", jwt_alg_name(key.alg), len, sign_us, verify_us[0], verify_us[1]);
		jwt_ctx_free(scx);
		jwt_key_free(&key);
	}
	jwt_ctx_free(vcx);
	jwt_keyset_free(&ks);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	return system(path) == 0 ? 0 : 1;
}
