/* access: the sampled access log. See access.h. */
#include "access.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/netaddr.h"
#include "conn.h"
#include "flow.h"
#include "logline.h"
#include "worker.h"

struct access {
	EVP_MAC_CTX *mac; /* keyed once; EVP_MAC_init(NULL key) starts each hash */
	uint64_t seen;
};

int access_key_load(struct access_key *key, const char *file, char *err, size_t err_len)
{
	memset(key, 0, sizeof(*key));
	if (!*file) {
		key->len = 32;
		if (RAND_bytes(key->bytes, (int)key->len) != 1) {
			snprintf(err, err_len, "access log: no random key: OpenSSL's RAND_bytes failed");
			return -EIO;
		}
		return 0;
	}
	char buf[ACCESS_KEY_MAX + 2];
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		snprintf(err, err_len, "[log] access_key_file %s: %s", file, strerror(e));
		return -e;
	}
	buf[n] = '\0';
	size_t len = strcspn(buf, "\r\n");
	if (len < 16 || len > ACCESS_KEY_MAX) {
		snprintf(err, err_len, "[log] access_key_file %s: its first line must be 16 to %d bytes", file,
			 ACCESS_KEY_MAX);
		explicit_bzero(buf, sizeof(buf));
		return -EINVAL;
	}
	memcpy(key->bytes, buf, len);
	key->len = len;
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

int access_init(struct worker *w)
{
	struct access *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	w->access = a;
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
			       OSSL_PARAM_construct_end()};
	const struct access_key *k = w->shared->access_key;
	a->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);
	if (!a->mac || EVP_MAC_init(a->mac, k->bytes, k->len, params) != 1)
		return -ENOMEM;
	return 0;
}

void access_destroy(struct worker *w)
{
	if (!w->access)
		return;
	EVP_MAC_CTX_free(w->access->mac);
	free(w->access);
	w->access = NULL;
}

void access_order(struct worker *w, const struct req *r, unsigned status)
{
	struct access *a = w->access;
	uint32_t every = w->cfg->log_access_every;
	if (!every || ++a->seen % every != 0)
		return;
	unsigned char mac[32];
	size_t out = 0;
	char user[17] = "-", client[NETADDR_TEXT_MAX] = "-";
	if (r->order.user_len && EVP_MAC_init(a->mac, NULL, 0, NULL) == 1 &&
	    EVP_MAC_update(a->mac, (const unsigned char *)r->order.user_id, r->order.user_len) == 1 &&
	    EVP_MAC_final(a->mac, mac, &out, sizeof(mac)) == 1 && out == sizeof(mac)) {
		for (int i = 0; i < 8; i++)
			snprintf(user + 2 * i, 3, "%02x", mac[i]);
	}
	if (r->conn)
		netaddr_format(conn_client(r->conn), client);
	/* The line's fields go after msg: a log shipper reads them as keys. */
	logline_printf(LOG_INFO, "access", "order status=%u sku=%.*s qty=%u user=%s client=%s us=%lld", status,
		       (int)r->order.sku_len, r->order.sku, r->order.qty, user, client,
		       (long long)(w->now_mono_us - r->admitted_us));
}
