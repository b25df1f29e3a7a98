/*
 * jobs: one engine thread's pending work. Requests that are due wait in a
 * FIFO for a free connection (oldest first, so the wait of each is charged
 * to its latency); retries wait in a min-heap until their backoff is over;
 * each order (a first try with its retries and double clicks) lives in a
 * slot from a free list until its last attempt is settled.
 *
 * Owns: that memory, grown by doubling and never freed during a run, so a
 * steady run allocates nothing per request. Does not own: what a job means
 * or when it is sent (engine). Not thread-safe: one per engine thread.
 */
#ifndef LG_JOBS_H
#define LG_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mix.h"

#define JOBS_NO_SLOT UINT32_MAX

struct job {
	uint32_t slot;    /* the order, or JOBS_NO_SLOT for a malformed request */
	int8_t malformed; /* its kind when slot == JOBS_NO_SLOT */
	int64_t intended_ns;
};

/* One order: its first try, retries and double clicks. */
struct order_slot {
	struct mix_order o;
	int64_t first_intended_ns;
	uint64_t order_id;    /* learned from a 202 or 200; 0 until then */
	uint16_t attempts;    /* sent or scheduled */
	uint16_t outstanding; /* queued, deferred or on a connection */
	bool resolved;
	uint8_t resolved_as; /* enum lg_outcome, once resolved */
	uint32_t next_free;
};

struct jobs {
	struct job *queue; /* ring */
	size_t q_head, q_len, q_cap;
	struct job *heap;  /* by intended_ns */
	size_t h_len, h_cap;
	struct order_slot *slots;
	uint32_t n_slots, free_slot;
};

void jobs_init(struct jobs *j);
void jobs_free(struct jobs *j);

/* Queues a due job; 0 or -ENOMEM. */
int jobs_push(struct jobs *j, struct job job) __attribute__((warn_unused_result));
/* The oldest due job (jobs_queued() must be > 0). */
struct job jobs_pop(struct jobs *j);
static inline size_t jobs_queued(const struct jobs *j) { return j->q_len; }

/* Holds a job until its intended time; 0 or -ENOMEM. */
int jobs_defer(struct jobs *j, struct job job) __attribute__((warn_unused_result));
/* Queues every deferred job due by now; 0 or -ENOMEM. */
int jobs_release_due(struct jobs *j, int64_t now) __attribute__((warn_unused_result));
static inline size_t jobs_deferred(const struct jobs *j) { return j->h_len; }
/* The earliest deferred job's time (jobs_deferred() must be > 0). */
static inline int64_t jobs_next_deferred_ns(const struct jobs *j) { return j->heap[0].intended_ns; }

/* A free order slot's index in *out; 0 or -ENOMEM. */
int jobs_slot_new(struct jobs *j, uint32_t *out) __attribute__((warn_unused_result));
void jobs_slot_free(struct jobs *j, uint32_t i);
static inline struct order_slot *jobs_slot(struct jobs *j, uint32_t i) { return &j->slots[i]; }

#endif
