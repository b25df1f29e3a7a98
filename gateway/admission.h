/*
 * admission: how much of the gateway one client may take, decided before
 * an order costs Redis anything: token buckets per verified user, per
 * client address and for the instance as a whole, and a cap on the
 * connections one address holds open.
 *
 * Owns: each worker's rate tables (plain memory, its thread alone; see
 * below) and the instance's count of open connections per address (struct
 * adm_conns: the one table the workers share, atomic counters). Does not
 * own: who the user is (auth), which address a request is from (conn knows
 * the peer, flow reads X-Forwarded-For from a trusted proxy), or the
 * answers (flow, conn). The purchase limits themselves are not here: they
 * are exact in Redis (the reserve script) whatever these buckets do.
 *
 * Per worker, not per instance: a client whose connections land on W
 * workers may get up to W times a user or address rate, and an instance's
 * rate is split evenly between its workers. A shared table would put a
 * cache line that every worker writes on every order's path; the rates
 * bound cost, not purchases, and W is small.
 *
 * A rate table holds table_entries keys; a new key takes the longer-unseen
 * of its two slots, so a flood of new keys (one bot, many accounts) evicts
 * others, who then start again with a full bucket: at worst a burst more.
 */
#ifndef FG_ADMISSION_H
#define FG_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/netaddr.h"

struct worker;
struct adm_conns;

/* The instance's open-connection counts: entries counters addressed by a
 * hash of the address (two addresses that share one share its cap; with
 * entries well above the addresses seen, that is rare). NULL: no memory. */
struct adm_conns *adm_conns_new(unsigned entries);
void adm_conns_free(struct adm_conns *ac);
/* Counts a connection from a, unless a already has max open (max 0: no
 * cap); false when refused, and then nothing is counted. */
bool adm_conns_open(struct adm_conns *ac, const struct netaddr *a, uint32_t max);
/* A connection adm_conns_open counted has closed. */
void adm_conns_close(struct adm_conns *ac, const struct netaddr *a);

int adm_init(struct worker *w) __attribute__((warn_unused_result));
void adm_destroy(struct worker *w);
/* A reload: the rates of w->cfg from now on. Buckets keep their tokens. */
void adm_reconfigure(struct worker *w);

/* Each takes one token of its bucket: 0 when there was one, or the
 * seconds until there will be (for Retry-After, at least 1). */
uint32_t adm_take_user(struct worker *w, const char *user, size_t len);
uint32_t adm_take_addr(struct worker *w, const struct netaddr *a);
uint32_t adm_take_instance(struct worker *w);

/* Wrong admin tokens: the seconds address a must wait before its next try
 * is judged (0: now), and one more wrong one from it. */
uint32_t adm_admin_wait(struct worker *w, const struct netaddr *a);
void adm_admin_failed(struct worker *w, const struct netaddr *a);

#endif
