/*
 * admin: the gateway's admin endpoints, for the order service rather than
 * shoppers:
 *   POST /admin/v1/orders/ORDER_ID/release   body {"sku":"..."}
 *     a cancelled (unpaid, refused) settled order's units and its user's
 *     count go back, exactly once; a second release changes nothing.
 *     200 {"status":"returned",...} | 200 {"status":"already_returned"} |
 *     409 {"status":"not_settled"} (still pending: its gateway or reconcile
 *     settles it first) | 404 {"status":"unknown_order"}
 * Off (404, as if absent) unless server.admin_token is set; then every
 * request needs "Authorization: Bearer <token>" (401 otherwise).
 *
 * Owns: authentication, routing and answers of /admin/. Does not own: the
 * Redis script (script.h: return) or its I/O (resv).
 */
#ifndef FG_ADMIN_H
#define FG_ADMIN_H

#include <stddef.h>

#include "../core/http.h"

struct worker;
struct req;

void admin_handle(struct worker *w, struct req *req, const struct http_request *hr, const char *body);

/* The return script's answer for req. */
void admin_on_return(struct worker *w, struct req *req, const char *result, size_t len);

#endif
