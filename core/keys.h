/*
 * keys: the Redis key layout of a sale, shared by the gateway (reservation
 * script, stock admin) and flashload (verification).
 *
 * All keys of one SKU bucket carry its hash tag (core/bucket.h: {SKU} for
 * bucket 0, {SKU#i} for the others), so they live in one Redis Cluster
 * slot and one script can touch them atomically. Each bucket has all of
 * the keys below; "SKU" there means the bucket's tag. With `buckets = 1`
 * there is one bucket, tagged {SKU}.
 *   fg:{SKU}          hash: stock, limit, sold, initial, loaded_at_ms,
 *                     starts, ends, buckets (K), moved_in, moved_out (units
 *                     given to / taken from this bucket by transfers); per
 *                     bucket: sold + stock == initial + moved_in - moved_out
 *   fg:{SKU}:users    hash: user_id -> units bought
 *   fg:{SKU}:pending  hash: order_id -> "user_id qty accepted_at_ms", the
 *                     reservations not yet confirmed by Kafka (the outbox)
 *   fg:{SKU}:orders   hash: order_id -> the same entry, once Kafka has the
 *                     order (moved from pending by the confirm script): what
 *                     `stock release ORDER_ID` gives back
 *   fg:{SKU}:returned hash: order_id -> entry, orders given back (so a second
 *                     release of one order changes nothing)
 *   fg:{SKU}:idem:N:USER:KEY  string: "ORDER_ID QTY", the order an
 *                     Idempotency-Key made and the quantity it asked for
 *                     (the request's fingerprint: user and SKU are in the
 *                     key), with a TTL; removed when that order is
 *                     released. N is USER's length: user ids and keys may
 *                     both hold ':', and without it user "X" with key
 *                     "x:R" and user "X:x" with key "R" shared one key.
 *   fg:{SKU}:xfer     hash: transfer id -> "to_bucket units ms", units
 *                     taken from this bucket and not yet known to have
 *                     arrived (what `flashgate reconcile` finishes after a
 *                     crash between the two halves of a transfer)
 *   fg:{SKU}:xin:XID  string: transfer XID arrived here (so it is given
 *                     once), kept for KEYS_XIN_TTL_S; reconcile gives only
 *                     transfers younger than KEYS_XFER_GIVE_MAX_S
 *   fg:skus           set of loaded SKUs (admin and verification only)
 *   fg:reconcile:lock string: "run OWNER" while a reconcile pass runs,
 *                     "rest OWNER" for a gateway's interval after it
 *                     (gateway/reconcile.h)
 */
#ifndef FG_KEYS_H
#define FG_KEYS_H

#define KEYS_SKU_FMT "fg:{%s}"
#define KEYS_USERS_FMT "fg:{%s}:users"
#define KEYS_PENDING_FMT "fg:{%s}:pending"
#define KEYS_ORDERS_FMT "fg:{%s}:orders"
#define KEYS_RETURNED_FMT "fg:{%s}:returned"
#define KEYS_IDEM_FMT "fg:{%s}:idem:%zu:%s:%s" /* tag, strlen(user), user, key */
#define KEYS_XFER_FMT "fg:{%s}:xfer"
#define KEYS_XIN_FMT "fg:{%s}:xin:%s"
#define KEYS_XIN_TTL_S (7 * 86400)
#define KEYS_XFER_GIVE_MAX_S (6 * 86400)
#define KEYS_SKU_SET "fg:skus"
#define KEYS_RECONCILE_LOCK "fg:reconcile:lock"
/* longest key: "fg:{" + 64 + "#63}:idem:" + 64 + ":" + 64 + NUL */
#define KEYS_MAX 212

#endif
