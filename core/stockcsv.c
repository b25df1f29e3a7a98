/* stockcsv: the stock file's format. See stockcsv.h. */
#include "stockcsv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static const char header3[] = "sku,stock,per_user_limit";
static const char header5[] = "sku,stock,per_user_limit,starts_at_ms,ends_at_ms";

struct stockcsv {
	unsigned line;
	int ncols; /* 3 or 5 once the header is read */
	struct stock_row *rows;
	size_t n, cap;
	/* Open addressing over the rows by SKU: row index + 1, 0 empty. */
	uint32_t *slots;
	size_t nslots;
	unsigned error_line;
	char why[STOCKCSV_LINE_MAX + 160];
};

struct stockcsv *stockcsv_new(void)
{
	return calloc(1, sizeof(struct stockcsv));
}

void stockcsv_free(struct stockcsv *s)
{
	if (!s)
		return;
	free(s->rows);
	free(s->slots);
	free(s);
}

/* Records why line (0: the whole file) is refused; returns rc. */
static int fail(struct stockcsv *s, unsigned line, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct stockcsv *s, unsigned line, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->error_line = line;
	return rc;
}

static uint64_t hash(const char *sku)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (; *sku; sku++)
		h = (h ^ (unsigned char)*sku) * 0x100000001b3ULL;
	return h;
}

/* The slot of sku: where its row's index is, or the empty slot it would
 * take. */
static uint32_t *slot_of(const struct stockcsv *s, const char *sku)
{
	size_t i = (size_t)hash(sku) & (s->nslots - 1);
	while (s->slots[i] && strcmp(s->rows[s->slots[i] - 1].sku, sku) != 0)
		i = (i + 1) & (s->nslots - 1);
	return &s->slots[i];
}

/* Room for one more row, and an index at most half full. */
static int grow(struct stockcsv *s)
{
	if (s->n == UINT32_MAX - 1)
		return -ENOMEM;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct stock_row *rows = realloc(s->rows, cap * sizeof(*rows));
		if (!rows)
			return -ENOMEM;
		s->rows = rows;
		s->cap = cap;
	}
	if (2 * (s->n + 1) > s->nslots) {
		size_t nslots = s->nslots ? 2 * s->nslots : 128;
		uint32_t *slots = calloc(nslots, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		free(s->slots);
		s->slots = slots;
		s->nslots = nslots;
		for (size_t i = 0; i < s->n; i++)
			*slot_of(s, s->rows[i].sku) = (uint32_t)(i + 1);
	}
	return 0;
}

int stockcsv_u64(const char *v, unsigned long long max, unsigned long long *out)
{
	char *end;
	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(v, &end, 10);
	if (*end != '\0' || errno == ERANGE || *out > max)
		return -EINVAL;
	return 0;
}

int stockcsv_line(struct stockcsv *s, char *line)
{
	unsigned no = ++s->line;
	size_t len = strlen(line);
	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	if (len > STOCKCSV_LINE_MAX)
		return fail(s, no, -EINVAL, "line too long");
	if (len == 0 || line[0] == '#')
		return 0;
	if (!s->ncols) {
		s->ncols = strcmp(line, header3) == 0 ? 3 : strcmp(line, header5) == 0 ? 5 : 0;
		if (!s->ncols)
			return fail(s, no, -EINVAL, "expected the header '%s' or '%s'", header3, header5);
		return 0;
	}

	int ncols = 1;
	for (const char *p = line; (p = strchr(p, ',')); p++)
		ncols++;
	if (ncols != s->ncols)
		return fail(s, no, -EINVAL, "expected %d columns: %s", s->ncols, s->ncols == 3 ? header3 : header5);
	char *col[5];
	col[0] = line;
	for (int i = 1; i < ncols; i++) {
		col[i] = strchr(col[i - 1], ',');
		*col[i]++ = '\0';
	}
	struct stock_row r = {.line = no};
	/* Empty means no bound on that side. */
	if (s->ncols == 5 &&
	    ((*col[3] && stockcsv_u64(col[3], (unsigned long long)INT64_MAX, &r.starts) < 0) ||
	     (*col[4] && stockcsv_u64(col[4], (unsigned long long)INT64_MAX, &r.ends) < 0) ||
	     (r.starts && r.ends && r.ends <= r.starts)))
		return fail(s, no, -EINVAL, "starts_at_ms and ends_at_ms must be Unix milliseconds, empty for no bound, "
				   "with the end after the start");
	if (!order_valid_ident(col[0], strlen(col[0])))
		return fail(s, no, -EINVAL, "sku '%s' must be 1-64 characters of A-Z a-z 0-9 . _ : -", col[0]);
	if (stockcsv_u64(col[1], STOCKCSV_STOCK_MAX, &r.stock) < 0)
		return fail(s, no, -EINVAL, "stock '%s' must be an integer 0..%llu", col[1], STOCKCSV_STOCK_MAX);
	if (stockcsv_u64(col[2], STOCKCSV_LIMIT_MAX, &r.limit) < 0 || r.limit == 0)
		return fail(s, no, -EINVAL, "per_user_limit '%s' must be an integer 1..%llu", col[2], STOCKCSV_LIMIT_MAX);
	strcpy(r.sku, col[0]);

	if (grow(s) < 0)
		return fail(s, no, -ENOMEM, "out of memory");
	uint32_t *slot = slot_of(s, r.sku);
	if (*slot)
		return fail(s, no, -EINVAL, "sku '%s' appears twice (first on line %u)", r.sku, s->rows[*slot - 1].line);
	s->rows[s->n++] = r;
	*slot = (uint32_t)s->n;
	return 0;
}

int stockcsv_end(struct stockcsv *s)
{
	if (!s->ncols)
		return fail(s, 0, -EINVAL, "empty (expected the header '%s')", header3);
	return 0;
}

int stockcsv_read(struct stockcsv *s, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	errno = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		/* A NUL would hide the rest of the line from the checks. */
		if (memchr(line, '\0', (size_t)len)) {
			rc = fail(s, s->line + 1, -EINVAL, "a NUL byte in the line: not a text file?");
			break;
		}
		if ((rc = stockcsv_line(s, line)) < 0)
			break;
	}
	if (rc == 0 && (ferror(f) || errno == ENOMEM))
		rc = errno == ENOMEM ? fail(s, 0, -ENOMEM, "out of memory") : fail(s, 0, -EIO, "read error");
	free(line);
	return rc < 0 ? rc : stockcsv_end(s);
}

const char *stockcsv_error(const struct stockcsv *s, unsigned *line)
{
	*line = s->error_line;
	return s->why;
}

const struct stock_row *stockcsv_rows(const struct stockcsv *s, size_t *n)
{
	*n = s->n;
	return s->rows;
}
