/*
 * stockcsv: the stock file's format, `flashgate stock load`'s input.
 *
 *   sku,stock,per_user_limit[,starts_at_ms,ends_at_ms]
 *
 * Owns: reading the file line by line, checking every field, finding a SKU
 * listed twice (in constant time per row, so a catalogue of a million SKUs
 * reads in about a second), and naming the line that is wrong and why. The
 * whole file is read before the caller writes anything.
 * Does not own: opening the file, Redis, or what a row does to a sale
 * (gateway/stock.c).
 */
#ifndef FG_STOCKCSV_H
#define FG_STOCKCSV_H

#include <stdio.h>

#include "order.h"

#define STOCKCSV_STOCK_MAX 1000000000000ull
#define STOCKCSV_LIMIT_MAX 1000000000ull
/* Longer lines are refused: no valid row comes near it. */
#define STOCKCSV_LINE_MAX 510

struct stock_row {
	char sku[ORDER_ID_MAX + 1];
	unsigned long long stock, limit;
	unsigned long long starts, ends; /* sale window, Unix ms; 0: open */
	unsigned line;
};

struct stockcsv;

struct stockcsv *stockcsv_new(void);
void stockcsv_free(struct stockcsv *s);

/* The next line of the file, without its line end (a trailing CR is
 * dropped here); the line is modified. 0: taken (a row, the header, a
 * comment or a blank line); -EINVAL: the line is wrong, see
 * stockcsv_error; -ENOMEM. */
int stockcsv_line(struct stockcsv *s, char *line);
/* After the last line: 0, or -EINVAL when the file had no header. */
int stockcsv_end(struct stockcsv *s);
/* Every line of f, then stockcsv_end: 0, -EINVAL, -EIO (a read error) or
 * -ENOMEM; stockcsv_error says what. */
int stockcsv_read(struct stockcsv *s, FILE *f);

/* The file's rule for a number, also `stock add` and `stock set`'s: digits
 * only, at most max. 0 or -EINVAL. */
int stockcsv_u64(const char *v, unsigned long long max, unsigned long long *out);

/* Why the last call failed, and the line it names (0: the file as a whole). */
const char *stockcsv_error(const struct stockcsv *s, unsigned *line);
/* The rows read so far, in file order. */
const struct stock_row *stockcsv_rows(const struct stockcsv *s, size_t *n);

#endif
