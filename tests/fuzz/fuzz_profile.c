/* libFuzzer target for loadgen/profile.c: the traffic profiles the platform
 * team writes before a sale (config/profiles/). A profile either loads, and
 * then checks, lasts a finite time and writes its catalogue, or is refused
 * with a message that names the file ("PATH:LINE: ..." or "PATH: ..."). The
 * input goes through a memfd, since prof_load reads a path. Build and run:
 * make fuzz && build/fuzz/fuzz_profile tests/fuzz/corpus/profile */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../loadgen/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lg_profile p; /* large: off the stack */
	char path[64], err[512];
	int fd = memfd_create("fuzz_profile", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	prof_defaults(&p);
	err[0] = '\0';
	int rc = prof_load(&p, path, err, sizeof(err));
	close(fd);
	if (rc < 0) {
		if (strncmp(err, path, strlen(path)) != 0 || err[strlen(path)] != ':')
			abort(); /* a refusal names the file (and the line) */
		return 0;
	}
	if (prof_check(&p, err, sizeof(err)) < 0) {
		if (!err[0])
			abort(); /* a refusal says why */
		return 0;
	}
	double s = prof_duration_s(&p);
	if (!isfinite(s) || s < 0)
		abort();
	for (unsigned sku = 1; sku <= 64; sku++)
		if (!prof_class_of(&p, sku))
			abort(); /* every SKU of a checked profile has a class */
	return 0;
}
