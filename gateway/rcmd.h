/*
 * rcmd: the words of every Redis command a worker sends for its orders:
 * each script call's keys and arguments in the order script.h defines
 * them, and which calls count only once replicas have them. A command is
 * built in a struct rcmd on the caller's stack (nothing is allocated) and
 * handed to rlink as argv and lengths.
 *
 * Owns: key names, argument order, and the replication rule of each
 * command. Does not own: which server a command goes to (resv routes it by
 * rcmd.tag), or the RESP bytes and their sending (rlink).
 */
#ifndef FG_RCMD_H
#define FG_RCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/bucket.h"
#include "../core/cfg.h"
#include "../core/fmt.h"
#include "../core/keys.h"
#include "../core/oid.h"
#include "flow.h"
#include "resv.h"
#include "rlink.h"
#include "script.h"

/* A command's kind, as rlink carries it back with the reply. */
enum rcmd_kind {
	RCMD_RESERVE = RLINK_KIND_USER, RCMD_RELEASE, RCMD_CONFIRM, RCMD_RETURN,
	RCMD_TAKE, RCMD_GIVE, RCMD_XDONE, RCMD_XCHECK,
	RCMD_CONFIRMS, /* a batch of confirmations, chained like a reserve batch */
	RCMD_PROBE     /* where a slot is now (resv's probe) */
};

/* The reserve batch is the longest: 8 fixed words, then per order an idem
 * key and six fields. */
#define RCMD_ARGS_MAX (8 + RESV_BATCH_MAX * 8)

/* The words one order adds to a batch. */
struct rcmd_order {
	char qty[FMT_U64_MAX], ms[FMT_I64_MAX], id[OID_TEXT_LEN + 1], key_index[FMT_U64_MAX], cap[FMT_U64_MAX];
};

struct rcmd {
	int argc;
	const char *argv[RCMD_ARGS_MAX];
	size_t lens[RCMD_ARGS_MAX];
	bool replicated;       /* counts only once replicated (rlink_put_replicated) */
	char tag[BKT_TAG_MAX]; /* the bucket whose keys, and slot, it addresses */
	/* Storage for the words argv points at. */
	char key[5][KEYS_MAX];
	char num[4][24];
	char id[OID_TEXT_LEN + 1], xid[OID_TEXT_LEN + 8];
	char idem_key[RESV_BATCH_MAX][KEYS_MAX];
	struct rcmd_order order[RESV_BATCH_MAX];
};

/* One reserve script call for a chain (through b_next) of at most
 * RESV_BATCH_MAX orders of one SKU bucket. */
void rcmd_reserve(struct rcmd *c, const struct script_shas *shas, const struct cfg *cfg, const struct req *head);

/* One confirm script call for a chain of at most RESV_BATCH_MAX orders of
 * one SKU bucket. */
void rcmd_confirms(struct rcmd *c, const struct script_shas *shas, const struct req *head);

/* Release, confirm or return one order, or one step of its transfer
 * between buckets (now_ms stamps a take). */
void rcmd_single(struct rcmd *c, const struct script_shas *shas, const struct cfg *cfg, uint8_t kind,
		 const struct req *req, int64_t now_ms);

#endif
