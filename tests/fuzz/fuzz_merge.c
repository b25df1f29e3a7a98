/* libFuzzer target for loadgen/merge.c: `flashload merge` reads JSON
 * reports that come from other machines. Whatever the bytes, a report is
 * merged or refused with a message, never read out of bounds, and a merged
 * result's counts are consistent with what it says it holds. An input
 * holding "\n--\n" is two reports, so the checks between reports run too.
 * Build and run: make fuzz && build/fuzz/fuzz_merge tests/fuzz/corpus/merge */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../loadgen/merge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int as_file(const uint8_t *data, size_t size, char *path, size_t path_len)
{
	int fd = memfd_create("report", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	snprintf(path, path_len, "/proc/self/fd/%d", fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *cut = memmem(data, size, "\n--\n", 4);
	size_t first = cut ? (size_t)(cut - data) : size;
	char p0[64], p1[64];
	int fd0 = as_file(data, first, p0, sizeof(p0));
	int fd1 = cut ? as_file(cut + 4, size - first - 4, p1, sizeof(p1)) : -1;
	if (fd0 < 0 || (cut && fd1 < 0))
		abort();
	const char *paths[2] = {p0, p1};
	struct merged m;
	char err[512];
	err[0] = '\0';
	int rc = merge_reports(paths, cut ? 2 : 1, false, &m, err, sizeof(err));
	if (rc < 0) {
		if (!err[0])
			abort(); /* a refusal says why */
	} else {
		uint64_t n = 0;
		for (int k = 0; k < LG_OUTCOMES; k++)
			n += m.r.c.counts[k];
		(void)n;
		if (m.r.n_stages == 0 || m.r.n_stages > PROF_MAX_STAGES || !m.r.latency)
			abort();
		for (size_t i = 0; i < m.r.n_seconds; i++)
			if (m.r.seconds[i].latency && m.r.seconds[i].latency->total == 0)
				abort();
		merge_free(&m);
	}
	close(fd0);
	if (fd1 >= 0)
		close(fd1);
	return 0;
}
