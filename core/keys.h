/*
 * keys: the Redis key layout of a sale, shared by the gateway (reservation
 * script, stock admin) and flashload (verification).
 *
 * All keys of one SKU carry the hash tag {sku}, so they live in one Redis
 * Cluster slot and one script can touch them atomically.
 *   fg:{SKU}          hash: stock, limit, sold, initial, loaded_at_ms
 *   fg:{SKU}:users    hash: user_id -> units bought
 *   fg:{SKU}:pending  hash: order_id -> "user_id qty accepted_at_ms", the
 *                     reservations not yet confirmed by Kafka (the outbox)
 *   fg:{SKU}:orders   hash: order_id -> the same entry, once Kafka has the
 *                     order (moved from pending by the confirm script): what
 *                     `stock release ORDER_ID` gives back
 *   fg:{SKU}:returned hash: order_id -> entry, orders given back (so a second
 *                     release of one order changes nothing)
 *   fg:{SKU}:idem:USER:KEY  string: the order id an Idempotency-Key made,
 *                     with a TTL; removed when that order is released
 *   fg:skus           set of loaded SKUs (admin and verification only)
 */
#ifndef FG_KEYS_H
#define FG_KEYS_H

#define KEYS_SKU_FMT "fg:{%s}"
#define KEYS_USERS_FMT "fg:{%s}:users"
#define KEYS_PENDING_FMT "fg:{%s}:pending"
#define KEYS_ORDERS_FMT "fg:{%s}:orders"
#define KEYS_RETURNED_FMT "fg:{%s}:returned"
#define KEYS_IDEM_FMT "fg:{%s}:idem:%s:%s"
#define KEYS_SKU_SET "fg:skus"
/* longest key: "fg:{" + 64 + "}:idem:" + 64 + ":" + 64 + NUL */
#define KEYS_MAX 208

#endif
