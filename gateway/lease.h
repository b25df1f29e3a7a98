/*
 * lease: this instance's node id ([order] node_id, part of every order
 * id), held in Redis while the instance runs, so two instances never mint
 * order ids under one node id.
 *
 * At start-up the instance takes fg:{node:N}:lease (SET unless another
 * instance holds it; with node_id = auto, the first free N); a second
 * instance with the same id refuses to start and names the holder. A
 * holder that was a process of this machine (same boot, same pid
 * namespace) and is gone, killed or crashed, is replaced at once, so a
 * restart after a crash does not wait for its lease to lapse. A thread
 * renews the lease every node_lease_ms / 3.
 *
 * The rule that keeps ids unique when a lease is lost (Redis out of reach
 * longer than the lease, so another instance may take the id):
 *   - the holder mints ids only while its lease is valid by its own
 *     monotonic clock: until nine tenths of node_lease_ms after it sent
 *     its last successful renewal (Redis counts the lease from when it
 *     received it, later), and only ids whose time is at most the bound
 *     it wrote with that renewal (fg:{node:N}:until, which never
 *     expires: its wall clock then plus node_lease_ms);
 *   - a new holder starts its ids after that bound;
 *   - a holder that finds another holder's lease stops minting for good
 *     (its /readyz says so) and never takes the id back.
 * So the ids of one node id increase from holder to holder even when
 * their clocks disagree. On SIGTERM the lease is given up and the bound
 * set to the last id minted, so a restart starts where the last run ended
 * rather than node_lease_ms ahead. With [redis] wait_replicas, each
 * write of the lease waits for the replicas as reserves do.
 *
 * Owns: the lease keys, their scripts, the renewal thread and the
 * validity the workers read (atomics). Does not own: the ids (core/oid),
 * or what the request path answers without a lease (flow: 503).
 */
#ifndef FG_LEASE_H
#define FG_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/cfg.h"

struct lease;

/* Takes the lease of cfg's node_id, or with auto of the first free id:
 * 0 with *out and *node set, or -errno after printing why (for an id held
 * by another instance: who, on which host, since when). */
int lease_take(struct lease **out, const struct cfg *cfg, unsigned *node) __attribute__((warn_unused_result));
/* Unix ms after which this holder's ids start (the bound the previous
 * holder of the id left; 0 for none). */
int64_t lease_ids_after_ms(const struct lease *l);
/* Starts the renewal thread (call with the process's signals blocked).
 * 0, or -errno with err set. */
int lease_start(struct lease *l, char *err, size_t err_len) __attribute__((warn_unused_result));
/* A reload: the Redis password of cfg for the next connection. */
void lease_reconfigure(struct lease *l, const struct cfg *cfg);
/* Any thread: whether an id whose time is id_ms may be minted now. */
bool lease_allows(const struct lease *l, int64_t now_mono_ms, int64_t id_ms);
/* Any thread: "held", or why not (for /readyz). */
const char *lease_state(const struct lease *l);
/* Once no worker mints any more: stops the thread, gives the lease up and
 * leaves last_id_ms as the next holder's bound, then frees. NULL does
 * nothing. */
void lease_end(struct lease *l, int64_t last_id_ms);

#endif
