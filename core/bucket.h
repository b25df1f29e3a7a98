/*
 * bucket: how one SKU's stock is split over K Redis keys (`[redis] buckets`),
 * so a hot SKU is not one hot key on one Redis Cluster slot.
 *
 * Bucket 0 of a SKU is addressed by the hash tag {SKU} (with K = 1 the
 * layout is exactly the unsharded one), bucket i > 0 by {SKU#i}; '#' cannot
 * appear in a SKU, so no two SKUs' buckets collide. Every key of keys.h is
 * per bucket. A user's home bucket (a hash of the user id) holds that user's
 * count, Idempotency-Keys and pending orders, which is why the per-user
 * limit stays exact: all of a user's orders for a SKU are judged in one
 * place. Units move between buckets (gateway/rebal.h), never orders.
 *
 * Owns: the tag, the home bucket and the initial split. No I/O.
 */
#ifndef FG_BUCKET_H
#define FG_BUCKET_H

#include <stddef.h>

#include "order.h"

#define BKT_MAX 64
/* "SKU#63" and the NUL */
#define BKT_TAG_MAX (ORDER_ID_MAX + 4)

/* Writes bucket i's tag of sku into out (BKT_TAG_MAX bytes); i < BKT_MAX. */
void bkt_tag(char *out, const char *sku, unsigned i);
/* The home bucket of user (len bytes) among k. */
unsigned bkt_home(const char *user, size_t len, unsigned k);
/* Bucket i's share of units split over k: the first units % k get one more. */
unsigned long long bkt_share(unsigned long long units, unsigned k, unsigned i);

#endif
