/* libFuzzer target for core/cfg.c: the config file SREs edit by hand. A
 * file that loads must dump (cfg_dump, what `flashgate -t` prints) into a
 * file that loads to the same configuration (but for the admin token,
 * which the dump does not show; the Redis password comes from the same
 * password_file both times); a file that is refused must
 * say where and why ("PATH:LINE: ..." or "PATH: ..."). The input goes
 * through a memfd, since cfg_load reads a path. Build and run:
 * make fuzz && build/fuzz/fuzz_cfg tests/fuzz/corpus/cfg */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../core/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A memfd holding len bytes of text; its path in path. -1 on failure. */
static int text_file(const void *text, size_t len, char *path, size_t path_len)
{
	int fd = memfd_create("fuzz_cfg", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (len && write(fd, text, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	snprintf(path, path_len, "/proc/self/fd/%d", fd);
	return fd;
}

/* cfg_dump's text of c, malloc'd; NULL on failure. */
static char *dump(const struct cfg *c, size_t *len)
{
	char *text = NULL;
	FILE *out = open_memstream(&text, len);
	if (!out)
		return NULL;
	cfg_dump(c, out);
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cfg c, again; /* large: off the stack */
	char path[64], path2[64], err[512];
	int fd = text_file(data, size, path, sizeof(path));
	if (fd < 0)
		return 0;
	err[0] = '\0';
	if (cfg_load(&c, path, err, sizeof(err)) < 0) {
		close(fd);
		if (strncmp(err, path, strlen(path)) != 0 || err[strlen(path)] != ':')
			abort(); /* a refusal names the file (and the line) */
		return 0;
	}
	/* fd stays open until the dump is loaded: a password_file naming it
	 * (/proc/self/fd/N) must find the same file the second time. */
	c.admin_token[0] = '\0'; /* a secret: the dump says only that it is set */

	size_t len1, len2;
	char *text1 = dump(&c, &len1);
	if (!text1) {
		close(fd);
		return 0;
	}
	int fd2 = text_file(text1, len1, path2, sizeof(path2));
	if (fd2 < 0) {
		free(text1);
		close(fd);
		return 0;
	}
	if (cfg_load(&again, path2, err, sizeof(err)) < 0) {
		fprintf(stderr, "the dump of a loaded config was refused: %s\n%s", err, text1);
		abort();
	}
	close(fd2);
	close(fd);
	/* The password is no key of the dump: it comes from the same file. */
	if (strcmp(c.redis_password, again.redis_password) != 0)
		abort();
	char *text2 = dump(&again, &len2);
	if (!text2)
		abort();
	if (len1 != len2 || memcmp(text1, text2, len1) != 0) {
		fprintf(stderr, "dump, load, dump changed the config:\n%s---\n%s", text1, text2);
		abort();
	}
	free(text1);
	free(text2);
	return 0;
}
