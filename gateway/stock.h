/*
 * stock: the administrator's commands on a sale's stock in Redis
 * (`flashgate stock load FILE.csv`, `stock show SKU`, `stock list`, `stock add SKU N`,
 * `stock set SKU N`, `stock release ORDER_ID`), and the
 * start-up SCRIPT LOAD. Blocking (core/rcl.h, on one server or a Redis
 * Cluster): these run before or beside the serving workers, never on the
 * request path.
 *
 * Owns: writing a stock file (its format and checks are core/stockcsv.h; a
 * bad file changes nothing) a batch of whole SKUs at a time, the key
 * layout of keys.h on write, and the check that a server is recent enough
 * for the scripts (stock_connect, also reconcile's).
 */
#ifndef FG_STOCK_H
#define FG_STOCK_H

#include <stdbool.h>
#include <stdio.h>

#include "../core/cfg.h"
#include "../core/rcl.h"
#include "script.h"

/* Each returns 0, or -errno after printing "flashgate: ..." to stderr. */

/* stock_load's flags: load SKUs that sold units too (their counts and
 * every user's are reset); or only print what a load would do. */
enum { STOCK_REPLACE = 1, STOCK_DRY_RUN = 2 };
/* Loads a CSV; a SKU that already sold units or holds reservations is
 * refused without STOCK_REPLACE (-EEXIST, nothing written). */
int stock_load(const struct cfg *cfg, const char *csv_path, unsigned flags) __attribute__((warn_unused_result));
/* One SKU, as a line (and one per bucket) or as a JSON object. */
int stock_show(const struct cfg *cfg, const char *sku, bool json, FILE *out) __attribute__((warn_unused_result));
/* Every loaded SKU whose name starts with prefix (NULL: all), by name, a
 * line each and a count, or a JSON array. */
int stock_list(const struct cfg *cfg, const char *prefix, bool json, FILE *out) __attribute__((warn_unused_result));
/* Restock: adds units to a loaded SKU's stock (and to its initial count,
 * so sold + stock == initial still holds). */
int stock_add(const struct cfg *cfg, const char *sku, const char *units, FILE *out)
	__attribute__((warn_unused_result));
/* Gives a settled order's units back to its SKU and its user's count,
 * exactly once (the order service cancelled it: unpaid, refused). sku may
 * be NULL: the SKU ledgers are searched. A second release prints that
 * nothing changed and succeeds. */
int stock_release(const struct cfg *cfg, const char *order_id, const char *sku, FILE *out)
	__attribute__((warn_unused_result));
/* Sets what is left to sell to exactly N units (0 stops the sale of that
 * SKU); units already sold stay sold, and initial becomes sold + N. */
int stock_set(const struct cfg *cfg, const char *sku, const char *units, FILE *out)
	__attribute__((warn_unused_result));
/* Connects to the sale's Redis (one server, or any master of a cluster)
 * and checks it is recent enough for the scripts (SCRIPT_REDIS_MAJOR);
 * NULL after printing why. */
struct rcl *stock_connect(const struct cfg *cfg);
/* Loads the scripts (on every master of a cluster) and reads which server
 * owns which slot. */
int stock_load_scripts(const struct cfg *cfg, struct script_shas *shas, struct rcl_map *map)
	__attribute__((warn_unused_result));

#endif
