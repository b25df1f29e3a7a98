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

/* A command's kind, as rlink carries it back with the reply. The transfer
 * steps are in enum resv_xstep's order. */
enum rcmd_kind {
	RCMD_RESERVE = RLINK_KIND_USER, RCMD_RELEASE, RCMD_CONFIRM, RCMD_RETURN,
	RCMD_TAKE, RCMD_GIVE, RCMD_XDONE, RCMD_XCHECK,
	RCMD_CONFIRMS, /* a batch of confirmations, chained like a reserve batch */
	RCMD_COMBINED, /* batches of several buckets, chained through g_next */
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

/* A combined call (script.h: combined): reserve and confirm batches of
 * any buckets on one server. Reserved orders are bounded by the reply's
 * elements (one each); the words and keys by what the struct holds. */
#define RCMD_COMBINED_RESERVES RLINK_ELEMS_MAX
#define RCMD_COMBINED_CONFIRMS 64
#define RCMD_COMBINED_BATCHES 64
#define RCMD_COMBINED_KEYS (3 * RCMD_COMBINED_BATCHES + RCMD_COMBINED_RESERVES)
#define RCMD_COMBINED_ARGS (3 * RCMD_COMBINED_BATCHES + 7 * RCMD_COMBINED_RESERVES + RCMD_COMBINED_CONFIRMS)

struct rcmd_combined {
	int argc;
	const char *argv[6 + RCMD_COMBINED_KEYS + RCMD_COMBINED_ARGS];
	size_t lens[6 + RCMD_COMBINED_KEYS + RCMD_COMBINED_ARGS];
	unsigned reserves, confirms, batches; /* orders and batches so far */
	/* Keys and arguments gather apart (EVALSHA takes every key first). */
	unsigned n_keys, n_args;
	const char *key_argv[RCMD_COMBINED_KEYS];
	size_t key_lens[RCMD_COMBINED_KEYS];
	const char *arg_argv[RCMD_COMBINED_ARGS];
	size_t arg_lens[RCMD_COMBINED_ARGS];
	/* Storage for the words those point at. */
	char key[RCMD_COMBINED_KEYS][KEYS_MAX];
	char num[4 + 2 * RCMD_COMBINED_BATCHES][FMT_U64_MAX];
	unsigned n_num;
	struct rcmd_order order[RCMD_COMBINED_RESERVES];
	char confirm_id[RCMD_COMBINED_CONFIRMS][OID_TEXT_LEN + 1];
};

void rcmd_combined_start(struct rcmd_combined *m);
/* Adds a batch (a chain through b_next of n orders of one bucket) to the
 * call: false, and nothing added, when it does not fit. */
bool rcmd_combined_add(struct rcmd_combined *m, const struct req *head, unsigned n, bool confirms);
/* The call's words (argv, lens, argc), once every batch is in. */
void rcmd_combined_finish(struct rcmd_combined *m, const struct script_shas *shas, const struct cfg *cfg);

/* Release, confirm or return one order, or one step of its transfer
 * between buckets (now_ms stamps a take). */
void rcmd_single(struct rcmd *c, const struct script_shas *shas, const struct cfg *cfg, uint8_t kind,
		 const struct req *req, int64_t now_ms);

#endif
