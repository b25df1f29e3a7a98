"""Who is buying and how much of the gateway one client may take: signed
identity (JWT), purchase claims, rate limits, connection caps, and the
request-level bugs found on the way, each with the exact bytes that showed
it. Against the real redis-server and Kafka broker started by
scripts/services.sh; each test starts its own gateway.

Run: scripts/run-integration-tests.sh  (prints "admission: N passed, N failed")"""

import json
import os
import socket
import subprocess
import time

from harness import (Conn, Env, Gateway, eq, expect, fresh, jwt_hs256, metric, order_body, post_order, request,
                     run_tests, token_for)

ENV = Env()
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def idempotency_keys_of_two_users_never_share_a_redis_key():
    """User X with key x:R and user X:x with key R were given one Redis key:
    the second was told 200 "accepted" with the first's order id and held
    nothing."""
    conf = ENV.write_config()
    sku = fresh("ik1")  # keys outlive a stock load: a SKU of this run's own
    ENV.load_stock(conf, [(sku, 10, 5)])
    with Gateway(ENV, conf):
        a = post_order(ENV.gw_port, "X", sku, 1, {"Idempotency-Key": "x:R"})
        eq(a.status, 202, "first user's order")
        b = post_order(ENV.gw_port, "X:x", sku, 1, {"Idempotency-Key": "R"})
        eq(b.status, 202, "second user's order (was 200 with the first's order id)")
        expect(a.json()["order_id"] != b.json()["order_id"], "two orders, two ids")
    eq(ENV.redis("HGET", "fg:{%s}:users" % sku, "X"), "1", "X holds its unit")
    eq(ENV.redis("HGET", "fg:{%s}:users" % sku, "X:x"), "1", "X:x holds its unit")
    eq(ENV.stock(conf, sku)["sold"], 2, "units sold")


@test
def an_idempotency_key_reused_for_another_request_is_refused_422():
    conf = ENV.write_config()
    sku = fresh("ik2")
    ENV.load_stock(conf, [(sku, 10, 5)])
    with Gateway(ENV, conf):
        first = post_order(ENV.gw_port, "kim", sku, 1, {"Idempotency-Key": "k-422"})
        eq(first.status, 202, "first order")
        again = post_order(ENV.gw_port, "kim", sku, 1, {"Idempotency-Key": "k-422"})
        eq(again.status, 200, "the same request again")
        eq(again.json()["order_id"], first.json()["order_id"], "answered with the first order")
        other = post_order(ENV.gw_port, "kim", sku, 3, {"Idempotency-Key": "k-422"})
        eq(other.status, 422, "same key, qty 3 instead of 1 (was 200 as if it matched)")
        eq(other.json(), {"status": "idempotency_key_reused", "order_id": first.json()["order_id"]}, "body")
    eq(ENV.stock(conf, sku)["sold"], 1, "only the first order took stock")


@test
def admin_release_of_a_user_with_a_colon_answers_valid_json():
    """The answer was {"user_id":"heaf4655rel","qty":u1:2}."""
    token = "admin-token-0123456789"
    conf = ENV.write_config(server__admin_token=token)
    ENV.load_stock(conf, [("rel1", 10, 5)])
    with Gateway(ENV, conf):
        r = post_order(ENV.gw_port, "heaf4655rel:u1", "rel1", 2)
        eq(r.status, 202, "order")
        oid = r.json()["order_id"]
        deadline = time.time() + 10
        while ENV.stock(conf, "rel1")["pending"] and time.time() < deadline:
            time.sleep(0.05)  # the confirm moves it to the settled orders
        c = Conn(ENV.gw_port)
        c.send(request("POST", "/admin/v1/orders/%s/release" % oid, json.dumps({"sku": "rel1"}),
                       {"Authorization": "Bearer " + token}))
        a = c.read()
        c.close()
        eq(a.status, 200, "release")
        eq(json.loads(a.body), {"status": "returned", "order_id": oid, "user_id": "heaf4655rel:u1", "qty": 2},
           "the answer is JSON and names the user whole")
    eq(ENV.stock(conf, "rel1")["stock"], 10, "the units are back")


@test
def http10_gets_no_100_continue_and_hears_keep_alive():
    conf = ENV.write_config()
    ENV.load_stock(conf, [("h10", 10, 5)])
    with Gateway(ENV, conf):
        body = order_body("h10u", "h10", 1).encode()
        head = ("POST /v1/orders HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                % (len(body), ENV.auth_header("h10u"))).encode()
        c = Conn(ENV.gw_port)
        c.send(head)
        c.sock.settimeout(0.5)
        try:
            early = c.sock.recv(100)
        except socket.timeout:
            early = b""
        c.sock.settimeout(10)
        eq(early, b"", "bytes before the body (an HTTP/1.0 client must never get 100 Continue)")
        c.send(body)
        r = c.read()
        eq(r.status, 202, "the order")
        eq(r.headers.get("connection"), "keep-alive", "HTTP/1.0 keep-alive answer says so")
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        eq(c.read().status, 200, "a second request on the kept connection")
        c.close()


@test
def a_flood_of_empty_lines_is_refused_at_once():
    """20 KB of CRLF before a request line waited for the 408."""
    conf = ENV.write_config(server__request_timeout_ms=10000)
    with Gateway(ENV, conf):
        c = Conn(ENV.gw_port)
        t0 = time.time()
        c.send(b"\r\n" * 10240)
        r = c.read()
        eq(r.status, 400, "status")
        expect(time.time() - t0 < 5, "answered at once, not at the request timeout (%.1f s)" % (time.time() - t0))
        expect(c.closed_by_server(), "the connection is closed after the 400")


ADMIN = "admin-token-0123456789"


def order(port, user, sku, qty=1, token=None, headers=None, body_user=True):
    """POST an order; token None: a good one for user; False: none."""
    h = dict(headers or {})
    if token is False:
        h["Authorization"] = None
    else:
        h["Authorization"] = "Bearer " + (token or token_for(user))
    body = json.dumps({"user_id": user, "sku": sku, "qty": qty}) if body_user else \
        json.dumps({"sku": sku, "qty": qty})
    c = Conn(port)
    try:
        c.send(request("POST", "/v1/orders", body, h))
        return c.read()
    finally:
        c.close()


def refused(port, code, reason):
    return metric(port, "flashgate_refused_total", ADMIN, code=code, reason=reason)


@test
def who_is_buying_comes_from_the_token():
    conf = ENV.write_config(server__admin_token=ADMIN)
    ENV.load_stock(conf, [("id1", 100, 5)])
    with Gateway(ENV, conf):
        r = order(ENV.gw_port, "ann", "id1", token=False)
        eq(r.status, 401, "no token")
        eq(r.headers.get("www-authenticate"), "Bearer", "the bare challenge (RFC 6750 3.1)")
        eq(r.json(), {"status": "unauthorized", "reason": "no_token"}, "body")
        now = int(time.time())
        cases = [
            ("expired", jwt_hs256({"sub": "ann", "exp": now - 3600})),
            ("bad_signature", jwt_hs256({"sub": "ann", "exp": now + 60}, secret=b"x" * 32)),
            ("unknown_kid", jwt_hs256({"sub": "ann", "exp": now + 60}, kid="gone")),
            ("no_expiry", jwt_hs256({"sub": "ann"})),
            ("not_yet_valid", jwt_hs256({"sub": "ann", "exp": now + 600, "nbf": now + 300})),
            ("bad_subject", jwt_hs256({"sub": "ann smith", "exp": now + 60})),
            ("wrong_alg", jwt_hs256({"sub": "ann", "exp": now + 60},
                                    header={"alg": "none", "kid": "t1"})),
            ("malformed", "not.a.token"),
        ]
        for reason, tok in cases:
            r = order(ENV.gw_port, "ann", "id1", token=tok)
            eq(r.status, 401, reason)
            eq(r.json()["reason"], reason, "the refusal's reason")
            eq(r.headers.get("www-authenticate"),
               'Bearer error="invalid_token", error_description="%s"' % reason, "challenge for " + reason)
        r = order(ENV.gw_port, "ann", "id1", token=token_for("bob"))
        eq(r.status, 403, "another user's token with ann in the body")
        eq(r.json(), {"status": "forbidden", "reason": "user_mismatch"}, "body")
        r = order(ENV.gw_port, "bob", "id1", token=token_for("bob"), body_user=False)
        eq(r.status, 202, "a body without user_id buys as the token's sub")
        oid = r.json()["order_id"]
        eq(refused(ENV.gw_port, 401, "no_token"), 1, "metric: no_token")
        eq(refused(ENV.gw_port, 401, "expired"), 1, "metric: expired")
        eq(refused(ENV.gw_port, 403, "user_mismatch"), 1, "metric: user_mismatch")
    s = ENV.stock(ENV.write_config(server__admin_token=ADMIN), "id1")
    eq((s["sold"], s["pending"]), (1, 0), "only bob's order took stock")
    recs = [v for _, v in ENV.topic_records() if v.get("order_id") == oid]
    eq([r["user_id"] for r in recs], ["bob"], "the record names the token's user")


@test
def a_cached_token_still_expires():
    conf = ENV.write_config(identity__clock_skew_s=0)
    ENV.load_stock(conf, [("ce1", 100, 50)])
    with Gateway(ENV, conf):
        tok = jwt_hs256({"sub": "cat", "exp": int(time.time()) + 2})
        eq(order(ENV.gw_port, "cat", "ce1", token=tok).status, 202, "while valid")
        eq(order(ENV.gw_port, "cat", "ce1", token=tok).status, 202, "again, from the cache")
        time.sleep(3.1)
        r = order(ENV.gw_port, "cat", "ce1", token=tok)
        eq((r.status, r.json()["reason"]), (401, "expired"), "the cached token after its exp")


def openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, capture_output=True, check=True).stdout


def eddsa_token(priv_pem, kid, claims):
    import base64
    b64 = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()  # noqa: E731
    signing_input = b64(json.dumps({"alg": "EdDSA", "kid": kid}).encode()) + "." + b64(json.dumps(claims).encode())
    msg = os.path.join(ENV.run_dir, "eddsa-msg")
    with open(msg, "wb") as f:
        f.write(signing_input.encode())
    sig = openssl("pkeyutl", "-sign", "-rawin", "-inkey", priv_pem, "-in", msg)
    return signing_input + "." + b64(sig)


@test
def keys_roll_without_downtime():
    """Old and new kid both accepted, then the old one removed: an
    HS256 secret rolled to an EdDSA key made with openssl, as an issuer
    would."""
    keys = os.path.join(ENV.run_dir, "roll-keys")
    os.makedirs(keys, exist_ok=True)
    old = os.path.join(keys, "old.hs256")
    with open(old, "wb") as f:
        f.write(os.urandom(32))
    with open(old, "rb") as f:
        old_secret = f.read()
    priv = os.path.join(ENV.run_dir, "new-private.pem")
    openssl("genpkey", "-algorithm", "ed25519", "-out", priv)
    openssl("pkey", "-in", priv, "-pubout", "-out", os.path.join(keys, "new.pem"))
    conf = ENV.write_config("roll.conf", identity__keys=keys)
    ENV.load_stock(conf, [("kr1", 100, 50)])
    exp = int(time.time()) + 600
    old_tok = jwt_hs256({"sub": "kim", "exp": exp}, kid="old", secret=old_secret)
    new_tok = eddsa_token(priv, "new", {"sub": "kim", "exp": exp})
    with Gateway(ENV, conf):
        eq(order(ENV.gw_port, "kim", "kr1", token=old_tok).status, 202, "old kid during the roll")
        eq(order(ENV.gw_port, "kim", "kr1", token=new_tok).status, 202, "new kid (EdDSA) during the roll")
        forged = new_tok[:-4] + ("AAAA" if not new_tok.endswith("AAAA") else "BBBB")
        eq(order(ENV.gw_port, "kim", "kr1", token=forged).json()["reason"], "bad_signature", "EdDSA, altered")
    os.unlink(old)
    with Gateway(ENV, conf):
        r = order(ENV.gw_port, "kim", "kr1", token=old_tok)
        eq((r.status, r.json()["reason"]), (401, "unknown_kid"), "old kid once removed")
        eq(order(ENV.gw_port, "kim", "kr1", token=new_tok).status, 202, "new kid after the roll")


@test
def a_bad_key_directory_stops_startup_naming_the_file():
    keys = os.path.join(ENV.run_dir, "bad-keys")
    os.makedirs(keys, exist_ok=True)
    with open(os.path.join(keys, "short.hs256"), "wb") as f:
        f.write(b"short")
    conf = ENV.write_config("badkeys.conf", identity__keys=keys)
    r = ENV.flashgate(conf, "-t", check=False)
    eq(r.returncode, 1, "-t exit status")
    expect("short.hs256" in r.stderr and "32" in r.stderr, "names the file and why: " + r.stderr)
    off = ENV.write_config("off.conf", identity__mode="off")
    ENV.load_stock(off, [("off1", 10, 5)])
    with Gateway(ENV, off) as gw:
        eq(post_order(ENV.gw_port, "olly", "off1", 1, {"Authorization": None}).status, 202, "off: no token needed")
    with open(gw.log_path) as f:
        expect("WARNING: [identity] mode = off" in f.read(), "identity off is logged loudly")


@test
def a_token_for_one_sale_buys_nothing_in_another():
    conf = ENV.write_config(server__admin_token=ADMIN)
    ENV.load_stock(conf, [("d11-1", 100, 5), ("d11-2", 100, 5), ("bf-1", 100, 5)])
    tok = token_for("pat", fg_skus=["d11-*"], fg_limit=1)
    with Gateway(ENV, conf):
        eq(order(ENV.gw_port, "pat", "d11-1", token=tok).status, 202, "a SKU of its sale")
        r = order(ENV.gw_port, "pat", "d11-1", token=tok)
        eq((r.status, r.json()), (409, {"status": "limit_exceeded", "remaining": 0}),
           "fg_limit 1, below the SKU's 5")
        eq(order(ENV.gw_port, "pat", "d11-2", token=tok).status, 202, "the limit is per SKU")
        r = order(ENV.gw_port, "pat", "bf-1", token=tok)
        eq((r.status, r.json()), (403, {"status": "forbidden", "reason": "sku_not_in_token"}), "another sale's SKU")
        eq(order(ENV.gw_port, "pat", "bf-1").status, 202, "a token without fg_skus buys any SKU")
    s = ENV.stock(conf, "d11-1")
    eq(s["sold"], 1, "d11-1 sold")
    eq(ENV.stock(conf, "bf-1")["sold"], 1, "bf-1 sold")


def pipeline(port, reqs):
    """Sends reqs on one connection at once and reads every answer."""
    c = Conn(port)
    try:
        c.send(b"".join(reqs))
        return [c.read() for _ in reqs]
    finally:
        c.close()


@test
def one_account_hammering_gets_429_and_costs_redis_no_more_than_its_rate():
    """The scalper of the issue: one connection pipelining orders. A user's
    rate (burst 5, then 1/s) lets five reach Redis; the rest are 429 with
    Retry-After, counted; the purchase limit holds in Redis regardless."""
    conf = ENV.write_config(server__admin_token=ADMIN, server__workers=1, admission__user_rate=1,
                            admission__user_burst=5, server__max_pipeline=64)
    ENV.load_stock(conf, [("hm1", 1000, 3)])
    with Gateway(ENV, conf):
        before = metric(ENV.gw_port, "flashgate_reserve_orders_total", ADMIN)
        reqs = [request("POST", "/v1/orders", json.dumps({"user_id": "sc", "sku": "hm1", "qty": 1}))
                for _ in range(40)]
        answers = pipeline(ENV.gw_port, reqs)
        codes = [a.status for a in answers]
        eq(codes.count(429), 35, "429s (codes %s)" % codes)
        eq(codes.count(202), 3, "accepted: the per-user limit")
        eq(codes.count(409), 2, "limit_exceeded")
        r429 = [a for a in answers if a.status == 429][0]
        eq(r429.json(), {"status": "too_many_requests", "reason": "user_rate"}, "body")
        expect(int(r429.headers.get("retry-after", "0")) >= 1, "Retry-After")
        eq(refused(ENV.gw_port, 429, "user_rate"), 35, "counted")
        reserved = metric(ENV.gw_port, "flashgate_reserve_orders_total", ADMIN) - before
        eq(reserved, 5, "orders that reached Redis")
    eq(ENV.stock(conf, "hm1")["sold"], 3, "units sold")


@test
def a_sold_out_sku_with_random_keys_reaches_redis_no_faster_than_the_rate():
    """Keyed requests skip the sold-out cache (a retry of an accepted order
    must hear its order id): bounded by the user's rate instead."""
    conf = ENV.write_config(server__admin_token=ADMIN, server__workers=1, admission__user_rate=1,
                            admission__user_burst=5, server__max_pipeline=64)
    ENV.load_stock(conf, [("so1", 1, 1)])
    with Gateway(ENV, conf):
        eq(post_order(ENV.gw_port, "first", "so1").status, 202, "the last unit")
        before = metric(ENV.gw_port, "flashgate_reserve_orders_total", ADMIN)
        reqs = [request("POST", "/v1/orders", json.dumps({"user_id": "bot", "sku": "so1", "qty": 1}),
                        {"Idempotency-Key": "rk-%d" % i}) for i in range(50)]
        codes = [a.status for a in pipeline(ENV.gw_port, reqs)]
        eq(codes.count(409) + codes.count(429), 50, "sold out or throttled")
        reached = metric(ENV.gw_port, "flashgate_reserve_orders_total", ADMIN) - before
        eq(reached, 5, "keyed requests that reached Redis (was 50 of 50)")


@test
def client_address_from_a_trusted_proxy_only():
    base = dict(server__admin_token=ADMIN, server__workers=1, admission__addr_rate=1,
                admission__addr_burst=2, admission__user_rate=0)
    conf = ENV.write_config("xff.conf", admission__trusted_proxies="127.0.0.0/8, ::1", **base)
    ENV.load_stock(conf, [("px1", 1000, 1000)])

    def from_(ip, user):
        return order(ENV.gw_port, user, "px1", headers={"X-Forwarded-For": "203.0.113.9, " + ip}).status

    with Gateway(ENV, conf):
        eq([from_("198.51.100.1", "a%d" % i) for i in range(3)], [202, 202, 429], "one client behind the proxy")
        eq(from_("198.51.100.2", "b"), 202, "another client behind the same proxy")
        eq(order(ENV.gw_port, "c", "px1", headers={"X-Forwarded-For": "not-an-address"}).status, 400,
           "an unreadable X-Forwarded-For from the proxy")
        eq(refused(ENV.gw_port, 429, "address_rate"), 1, "counted")
    conf = ENV.write_config("noxff.conf", **base)
    with Gateway(ENV, conf):
        # Not trusted: the header is the client's own words; the peer is the client.
        eq([from_("198.51.100.%d" % i, "d%d" % i) for i in range(3)], [202, 202, 429],
           "X-Forwarded-For ignored from an untrusted peer")


@test
def one_address_cannot_hold_every_connection():
    """8,800 silent connections from one address left every new client
    closed without an answer, a log line or a counter."""
    conf = ENV.write_config(server__admin_token=ADMIN, server__workers=1, server__max_connections=16,
                            admission__addr_max_connections=6)
    ENV.load_stock(conf, [("cc1", 100, 50)])
    with Gateway(ENV, conf) as gw:
        time.sleep(0.5)  # the start-up probe's own connection is gone, and uncounted
        silent = [socket.create_connection(("127.0.0.1", ENV.gw_port)) for _ in range(6)]
        time.sleep(0.3)
        c = Conn(ENV.gw_port)
        r = c.read()
        eq((r.status, r.json()), (429, {"status": "too_many_requests", "reason": "address_connections"}),
           "the seventh connection from one address")
        expect(c.closed_by_server(), "and it is closed")
        for s in silent:
            s.close()
        time.sleep(0.3)
        eq(order(ENV.gw_port, "ok", "cc1").status, 202, "room again once they close")
        eq(refused(ENV.gw_port, 429, "address_connections"), 1, "counted")
    with open(gw.log_path) as f:
        expect("turned away" in f.read(), "logged")


@test
def a_full_worker_closes_its_longest_idle_connection_for_a_new_client():
    conf = ENV.write_config(server__admin_token=ADMIN, server__workers=1, server__max_connections=12)
    ENV.load_stock(conf, [("ev1", 100, 50)])
    with Gateway(ENV, conf):
        idle = [socket.create_connection(("127.0.0.1", ENV.gw_port)) for _ in range(12)]
        time.sleep(0.3)
        codes = [order(ENV.gw_port, "e%d" % i, "ev1").status for i in range(5)]
        eq(codes, [202] * 5, "new clients served while idle connections filled the worker")
        idle[0].settimeout(2)
        eq(idle[0].recv(100), b"", "the longest-idle connection was the one closed")
        expect(metric(ENV.gw_port, "flashgate_connections_evicted_total", ADMIN) >= 1, "evictions counted")
        eq(refused(ENV.gw_port, 503, "worker_full"), 0, "nobody turned away")
        for s in idle:
            s.close()


@test
def a_sku_before_its_start_is_answered_from_memory_and_opens_on_time():
    """A not-started SKU went to Redis on every request (425, 500 of 500)."""
    now = int(ENV.redis("TIME").split()[0]) * 1000
    starts = now + 2000
    path = os.path.join(ENV.run_dir, "soon.csv")
    with open(path, "w") as f:
        f.write("sku,stock,per_user_limit,starts_at_ms,ends_at_ms\nsoon,10,1,%d,\n" % starts)
    conf = ENV.write_config(server__admin_token=ADMIN, server__workers=1, admission__user_rate=0,
                            server__max_pipeline=128)
    ENV.flashgate(conf, "stock", "load", path)
    with Gateway(ENV, conf):
        first = order(ENV.gw_port, "early", "soon")
        eq((first.status, first.json()), (425, {"status": "not_started", "starts_at_ms": starts}), "from Redis")
        before = metric(ENV.gw_port, "flashgate_reserve_orders_total", ADMIN)
        reqs = [request("POST", "/v1/orders", json.dumps({"user_id": "early", "sku": "soon", "qty": 1}))
                for _ in range(100)]
        answers = pipeline(ENV.gw_port, reqs)
        eq({(a.status, a.body) for a in answers},
           {(425, json.dumps({"status": "not_started", "starts_at_ms": starts}, separators=(",", ":")))},
           "every early order after it, the same answer")
        reached = metric(ENV.gw_port, "flashgate_reserve_orders_total", ADMIN) - before
        eq(reached, 0, "of those, orders that reached Redis (was 100 of 100)")
        time.sleep(max(0, (starts - int(ENV.redis("TIME").split()[0]) * 1000) / 1000) + 0.6)
        eq(order(ENV.gw_port, "prompt", "soon").status, 202, "within soldout_cache_ms of the start")


@test
def random_unknown_skus_reach_redis_no_faster_than_the_rate():
    conf = ENV.write_config(server__admin_token=ADMIN, server__workers=1, admission__user_rate=1,
                            admission__user_burst=5, server__max_pipeline=64)
    with Gateway(ENV, conf):
        before = metric(ENV.gw_port, "flashgate_reserve_orders_total", ADMIN)
        reqs = [request("POST", "/v1/orders", json.dumps({"user_id": "prober", "sku": "nope-%d" % i, "qty": 1}))
                for i in range(30)]
        codes = [a.status for a in pipeline(ENV.gw_port, reqs)]
        eq((codes.count(404), codes.count(429)), (5, 25), "unknown, then throttled")
        eq(metric(ENV.gw_port, "flashgate_reserve_orders_total", ADMIN) - before, 5, "orders that reached Redis")


@test
def bots_take_nothing_and_shoppers_keep_their_latency():
    """config/profiles/bots.ini: honest shoppers and every kind of bot in
    one open-loop sale, behind a trusted proxy (flashload adds
    X-Forwarded-For), with 300 silent connections held from the start."""
    from harness import BIN, ROOT, signing_key_path
    profile = os.path.join(ROOT, "config", "profiles", "bots.ini")
    stock = os.path.join(ENV.run_dir, "bots.csv")
    subprocess.run([os.path.join(BIN, "flashload"), "--profile", profile, "--write-stock", stock], check=True)
    conf = ENV.write_config("bots.conf", server__admin_token=ADMIN, server__max_connections=200,
                            admission__trusted_proxies="127.0.0.1", admission__addr_rate=5,
                            admission__addr_burst=10)
    ENV.flashgate(conf, "stock", "load", stock)
    report = os.path.join(ENV.run_dir, "bots.json")
    with Gateway(ENV, conf):
        r = subprocess.run([os.path.join(BIN, "flashload"), "--target", "127.0.0.1:%d" % ENV.gw_port,
                            "--profile", profile, "--sign-key", signing_key_path(), "--quiet", "--verify",
                            "--config", conf, "--json", report], capture_output=True, text=True, timeout=300)
        print(r.stdout[r.stdout.find("who "):])
        eq(r.returncode, 0, "flashload --verify (stderr %s)" % r.stderr[-1500:])
        evicted = metric(ENV.gw_port, "flashgate_connections_evicted_total", ADMIN)
    expect("verify: PASS" in r.stdout, "the books balance and no account bought past its limit")
    with open(report) as f:
        who = json.load(f)["who"]

    def n(kind, outcome):
        return who[kind]["counts"][outcome]

    def total(kind):
        return sum(who[kind]["counts"].values())

    shopper = who["shopper"]
    expect(n("shopper", "202 accepted") > 1000, "shoppers bought: %s" % shopper["counts"])
    eq(n("shopper", "401") + n("shopper", "403") + n("shopper", "429"), 0, "shoppers refused for who they are")
    for kind, outcome in [("no_token", "401"), ("forged", "401"), ("expired", "401"), ("impostor", "403")]:
        expect(total(kind) > 100, "%s sent: %d" % (kind, total(kind)))
        eq(n(kind, outcome), total(kind), "%s: every request refused %s" % (kind, outcome))
        eq(who[kind]["units"], 0, kind + ": units bought")
    expect(n("hammer", "429") > total("hammer") / 2, "the hammering account throttled: %s" % who["hammer"]["counts"])
    expect(who["hammer"]["units"] <= 5 * 50, "the hammering account's units are within its limits")
    expect(n("sybil", "429") > total("sybil") * 0.8, "the sybils behind one address throttled: %s"
           % who["sybil"]["counts"])
    expect(evicted >= 1, "silent connections closed to make room (%d)" % evicted)
    p99_ms = shopper["latency_us"]["p99"] / 1000
    # The bound this 2-core machine keeps with flashload, the gateway,
    # Redis and the broker on it (BENCHMARKS.md "Identity" has the run's
    # numbers); a regression that lets bots in shows as thousands of ms.
    expect(p99_ms < 500, "honest shoppers' p99 %.1f ms" % p99_ms)


@test
def issuer_and_audience_are_checked_when_configured():
    conf = ENV.write_config("issaud.conf", identity__issuer="https://auth.shop.test",
                            identity__audience="d11-2026")
    ENV.load_stock(conf, [("ia1", 100, 50)])
    exp = int(time.time()) + 600
    with Gateway(ENV, conf):
        good = jwt_hs256({"sub": "ida", "exp": exp, "iss": "https://auth.shop.test", "aud": ["web", "d11-2026"]})
        eq(order(ENV.gw_port, "ida", "ia1", token=good).status, 202, "the right issuer and audience")
        for reason, claims in [("bad_issuer", {"iss": "https://evil.test", "aud": "d11-2026"}),
                               ("bad_issuer", {"aud": "d11-2026"}),
                               ("bad_audience", {"iss": "https://auth.shop.test", "aud": "bf-2026"}),
                               ("bad_audience", {"iss": "https://auth.shop.test"})]:
            claims.update({"sub": "ida", "exp": exp})
            r = order(ENV.gw_port, "ida", "ia1", token=jwt_hs256(claims))
            eq((r.status, r.json()["reason"]), (401, reason), "claims %s" % claims)


@test
def the_instance_rate_is_shared_by_everyone():
    """instance_rate is the instance's, split over its workers: with one
    worker, a burst of 4 and then 1/s, 4 of 12 distinct shoppers get in."""
    conf = ENV.write_config(server__admin_token=ADMIN, server__workers=1, admission__instance_rate=1,
                            admission__instance_burst=4, server__max_pipeline=64)
    ENV.load_stock(conf, [("ir1", 100, 50)])
    with Gateway(ENV, conf):
        reqs = [request("POST", "/v1/orders", json.dumps({"user_id": "ir%d" % i, "sku": "ir1", "qty": 1}))
                for i in range(12)]
        answers = pipeline(ENV.gw_port, reqs)
        codes = [a.status for a in answers]
        eq((codes.count(202), codes.count(429)), (4, 8), "admitted, throttled (codes %s)" % codes)
        eq({a.json()["reason"] for a in answers if a.status == 429}, {"instance_rate"}, "the reason")
        eq(refused(ENV.gw_port, 429, "instance_rate"), 8, "counted")


@test
def a_load_balancer_names_the_client_with_the_proxy_protocol():
    # The balancer connects from 127.0.0.2; the harness's own probes come
    # from 127.0.0.1, untrusted, and speak plain HTTP.
    conf = ENV.write_config("pp.conf", server__workers=1, admission__trusted_proxies="127.0.0.2",
                            admission__proxy_protocol="on", admission__addr_rate=1, admission__addr_burst=2,
                            admission__user_rate=0)
    ENV.load_stock(conf, [("pp1", 1000, 1000)])

    def orders(header, users):
        c = Conn(ENV.gw_port, source="127.0.0.2")
        try:
            c.send(header)
            out = []
            for u in users:
                c.send(request("POST", "/v1/orders", order_body(u, "pp1")))
                out.append(c.read().status)
            return out
        finally:
            c.close()

    v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([192, 0, 2, 77, 127, 0, 0, 1]) + b"\xdc\x04\x01\xbb")
    with Gateway(ENV, conf):
        eq(orders(b"PROXY TCP4 192.0.2.66 127.0.0.1 56324 18180\r\n", ["a1", "a2", "a3"]), [202, 202, 429],
           "one client behind the balancer (v1), its address rate")
        eq(orders(v2, ["b1"]), [202], "another client (v2)")
        eq(orders(b"PROXY TCP4 192.0.2.66 127.0.0.1 1 2\r\n", ["a4"]), [429], "the first client again")
        eq(orders(b"PROXY UNKNOWN\r\n", ["h1"]), [202], "a health check's connection is the balancer's own")
        eq(orders(b"PROXY TCP4 192.0.2.66 127.0.0.1 1 2\r\n"[:20], []), [], "half a header, then gone")
        plain = Conn(ENV.gw_port)
        plain.send(b"PROXY TCP4 192.0.2.99 127.0.0.1 1 2\r\n\r\n")  # to HTTP, a head
        eq(plain.read().status, 400, "a header from a client that is not a balancer is not believed")
        plain.close()
        c = Conn(ENV.gw_port, source="127.0.0.2")
        c.send(request("POST", "/v1/orders", order_body("n1", "pp1")))
        r = c.read()
        eq(r.status, 400, "no header from a balancer that must send one")
        expect("PROXY" in r.json()["error"], "says why: %s" % r.body)
        expect(c.closed_by_server(), "and closes")


if __name__ == "__main__":
    import sys
    sys.exit(run_tests(TESTS, "admission"))
