"""Running flashgate as an SRE does on sale night: SIGHUP reloads, key
rotation, and a sale that goes on through them. Against the real
redis-server and Kafka broker started by scripts/services.sh; each test
starts its own gateway.

Run: scripts/run-integration-tests.sh  (prints "operations: N passed, N failed")"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from harness import (BIN, ROOT, Conn, Env, Gateway, eq, expect, fresh, get, jwt_hs256, metric, post_order, request,
                     run_tests, signing_key_path)

ENV = Env()
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def wait_for_log(offset, text, timeout=5.0):
    """The gateway log from offset once it holds text."""
    deadline = time.time() + timeout
    while True:
        log = ENV.log_since(offset)
        if text in log or time.time() > deadline:
            return log
        time.sleep(0.05)


def hup(gw, offset, done="reloaded "):
    """SIGHUP, then the log lines the reload wrote (up to its last)."""
    gw.proc.send_signal(signal.SIGHUP)
    return wait_for_log(offset, done)


def statuses(user, sku, n):
    """n orders of user, one connection each. The tests that count 429s run
    one worker: rates are per worker (docs/identity.md)."""
    return [post_order(ENV.gw_port, user, sku, 1).status for _ in range(n)]


@test
def sighup_changes_the_live_keys_and_names_those_that_need_a_restart():
    """The rate limit changes at once; the port, which only a restart can
    change, is named in the log and stays as it was."""
    sku = fresh("hup")
    conf = ENV.write_config(server__workers=1, admission__user_rate=1000, admission__user_burst=1000)
    ENV.load_stock(conf, [(sku, 1000, 1000)])
    with Gateway(ENV, conf) as gw:
        eq(statuses("hupper", sku, 5), [202] * 5, "five orders under a rate of 1000/s")
        ENV.write_config(server__workers=1, admission__user_rate=1, admission__user_burst=2,
                         server__port=ENV.gw_port + 7)
        at = ENV.log_size()
        log = hup(gw, at)
        expect('reload 1: [admission] user_rate: 1000 -> 1"' in log, "the live change logged: %s" % log)
        expect(("reload 1: [server] port: %d -> %d takes effect only at a restart; keeping %d"
                % (ENV.gw_port, ENV.gw_port + 7, ENV.gw_port)) in log, "the restart-only key named: %s" % log)
        expect("reloaded %s (reload 1); some changes wait for a restart" % conf in log, "the summary: %s" % log)
        got = statuses("hupper2", sku, 4)
        eq(got[:2], [202, 202], "a new user's burst of 2 after the reload")
        eq(got[2:], [429, 429], "then the new rate of 1/s (was 1000/s)")
        eq(gw.proc.poll(), None, "still running")


@test
def a_bad_file_on_sighup_is_refused_whole_with_file_and_line():
    sku = fresh("bad")
    conf = ENV.write_config(server__workers=1, admission__user_rate=1, admission__user_burst=2)
    ENV.load_stock(conf, [(sku, 1000, 1000)])
    with Gateway(ENV, conf) as gw:
        # A good change before a bad line: neither is taken.
        ENV.write_config(server__workers=1, admission__user_burst=500)
        with open(conf, "a") as f:
            f.write("[admission]\nuser_rate = fast\n")
        lines = open(conf).read().count("\n")
        at = ENV.log_size()
        log = hup(gw, at, done="refused")
        expect('level=warn who=main msg="reload 1 refused, running the configuration before:"\n' in log and
               ('level=warn who=main msg="%s:%d: [admission] user_rate: not a non-negative integer (value \'fast\')"'
                % (conf, lines)) in log, "refusal, then its file:line: %s" % log)
        eq(statuses("badhup", sku, 3), [202, 202, 429], "the old burst of 2 still holds")
        # The next good file is reload 2: the refused one changed nothing.
        ENV.write_config(server__workers=1, admission__user_rate=1, admission__user_burst=3)
        log = hup(gw, ENV.log_size())
        expect("reload 2: [admission] user_burst: 2 -> 3" in log, "a good file after it: %s" % log)
        eq(statuses("badhup2", sku, 4), [202, 202, 202, 429], "the new burst of 3")


@test
def identity_keys_rotate_on_sighup():
    """A new key is trusted after the HUP, a removed one is refused at once,
    even for a token the gateway had already verified and cached."""
    keys = os.path.join(ENV.run_dir, "rotate-keys")
    shutil.rmtree(keys, ignore_errors=True)
    os.makedirs(keys)
    shutil.copy(signing_key_path(), os.path.join(keys, "old.hs256"))
    with open(signing_key_path(), "rb") as f:
        old_secret = f.read()
    new_secret = os.urandom(32)
    sku = fresh("rot")
    conf = ENV.write_config(identity__keys=keys)
    ENV.load_stock(conf, [(sku, 1000, 1000)])

    def order(kid, secret, user):
        tok = jwt_hs256({"sub": user, "exp": int(time.time()) + 600}, kid=kid, secret=secret)
        return post_order(ENV.gw_port, user, sku, 1, {"Authorization": "Bearer " + tok}).status

    with Gateway(ENV, conf) as gw:
        eq(order("old", old_secret, "ro1"), 202, "a token of the old key")
        eq(order("new", new_secret, "ro2"), 401, "a token of a key not yet installed")
        with open(os.path.join(keys, "new.hs256"), "wb") as f:
            f.write(new_secret)
        log = hup(gw, ENV.log_size())
        expect("reload 1: identity: 2 keys from %s:" % keys in log, "both keys loaded: %s" % log)
        eq(order("new", new_secret, "ro2"), 202, "the new key, after the HUP")
        eq(order("old", old_secret, "ro1"), 202, "the old key, still installed")
        os.remove(os.path.join(keys, "old.hs256"))
        log = hup(gw, ENV.log_size())
        expect("reload 2: identity: 1 key from %s: new (HS256)" % keys in log, "old key gone: %s" % log)
        eq(order("old", old_secret, "ro1"), 401, "the old key's cached token, after its removal")
        eq(order("new", new_secret, "ro2"), 202, "the new key")
        # A key directory that no longer loads refuses the reload whole.
        with open(os.path.join(keys, "broken.hs256"), "wb") as f:
            f.write(b"short")
        log = hup(gw, ENV.log_size(), done="refused")
        expect("reload 3 refused, running the configuration before: [identity] keys:" in log,
               "a broken key refuses the reload: %s" % log)
        eq(order("new", new_secret, "ro2"), 202, "the keys before still verify")


def wait_status(path, status, within):
    """Seconds until path answers status (polled every 50 ms), and its body."""
    t0 = time.time()
    while True:
        try:
            r = get(ENV.gw_port, path)
        except OSError:  # not listening yet
            r = None
        if (r and r.status == status) or time.time() - t0 > within:
            return time.time() - t0, r
        time.sleep(0.05)


def frozen(pidfile):
    """SIGSTOP the service whose pid is in FG_RUN_DIR/pidfile; SIGCONT on exit."""
    class Frozen:
        def __enter__(self):
            with open(os.path.join(ENV.run_dir, pidfile)) as f:
                self.pid = int(f.read().strip())
            os.kill(self.pid, signal.SIGSTOP)

        def __exit__(self, *exc):
            os.kill(self.pid, signal.SIGCONT)
    return Frozen()


@test
def readyz_turns_503_while_redis_or_kafka_is_frozen_and_back_after():
    """With no order flowing: an idle Redis link is pinged, and the brokers
    are asked once a second, so a frozen server is found within ~1.5 s
    (ping after 500 ms idle, [redis] timeout_ms 1000; the watch's 800 ms
    question) and a thawed one within a second. /livez stays 200: the
    loops turn."""
    token = "admin-token-0123456789"
    sku = fresh("rz")
    conf = ENV.write_config(server__admin_token=token)
    ENV.load_stock(conf, [(sku, 100, 100)])
    with Gateway(ENV, conf):
        took, r = wait_status("/readyz", 200, 5)
        eq(r.status, 200, "ready at start: %s" % r.body)
        eq(r.json(), {"status": "ready", "redis": "up", "kafka": "up", "node_lease": "held", "draining": False,
                    "workers": 2}, "body")
        # A worker's link is found silent at its own ping: the first one
        # turns /readyz 503, and names itself.
        for pidfile, down in (("redis.pid", {"redis": "down"}), ("kafka.pid", {"kafka": "no_answer"})):
            with frozen(pidfile):
                took, r = wait_status("/readyz", 503, 6)
                eq(r.status, 503, "/readyz with %s frozen (after %.1f s)" % (pidfile, took))
                expect(took < 4, "%s found frozen within 4 s (took %.1f s)" % (pidfile, took))
                body = r.json()
                eq({k: body.get(k) for k in down}, down, "what /readyz says is down")
                if pidfile == "redis.pid":
                    expect(body["redis_down_workers"] in ([0], [1], [0, 1]), "which workers: %s" % body)
                eq(body["status"], "not_ready", "status")
                eq(get(ENV.gw_port, "/livez").status, 200, "/livez while %s is frozen" % pidfile)
                if pidfile == "redis.pid":
                    o = post_order(ENV.gw_port, "rzuser", sku, 1)
                    eq((o.status, o.json()), (503, {"status": "unavailable", "reason": "redis"}), "an order")
            took, r = wait_status("/readyz", 200, 15)
            eq(r.status, 200, "/readyz after %s thawed: %s" % (pidfile, r.body))
            print("      %s: ready again %.1f s after SIGCONT" % (pidfile, took))
        eq(metric(ENV.gw_port, "flashgate_unavailable_total", token, reason="redis"), 1,
           "the 503 counted by its reason")
        eq(metric(ENV.gw_port, "flashgate_unavailable_total", token, reason="kafka"), 0,
           "and not again as kafka when its units came back")


def start_refused(conf, timeout=20):
    """A gateway that must refuse to start: its exit status and stderr."""
    r = subprocess.run([os.path.join(BIN, "flashgate"), "-c", conf], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stderr


def lease(node):
    return ENV.redis("GET", "fg:{node:%d}:lease" % node)


def order_id_ms(oid):
    """The millisecond an order id carries (core/oid.h: its top 42 bits)."""
    return (int(oid, 16) >> 22) + 1735689600000


@test
def a_second_instance_with_the_same_node_id_refuses_to_start_and_names_the_holder():
    """Two instances on one node_id both served, and the topic held
    duplicate order ids. Now the second refuses, naming the first; with
    node_id = auto it takes a free id."""
    conf = ENV.write_config(order__node_id=5)
    with Gateway(ENV, conf) as a:
        holder = lease(5)
        expect(("pid=%d " % a.proc.pid) in holder, "the lease names the holder's pid: %r" % holder)
        second = ENV.write_config("second.conf", order__node_id=5, server__port=ENV.gw_port + 1)
        rc, err = start_refused(second)
        eq(rc, 1, "the second instance's exit status")
        expect("not starting: [order] node_id 5 is held by another instance (host=" in err and
               ("pid=%d since=" % a.proc.pid) in err, "refusal names the holder: %s" % err)
        auto = ENV.write_config("auto.conf", order__node_id="auto", server__port=ENV.gw_port + 1)
        at = ENV.log_size()
        with Gateway(ENV, auto, port=ENV.gw_port + 1) as b:
            log = wait_for_log(at, "leased in redis")
            expect("(node_id = auto)" in log and "node 5 leased" not in log, "auto took another id: %s" % log)
            r = post_order(ENV.gw_port + 1, "autouser", fresh("nosuch"), 1)
            expect(r.status in (404, 202), "the auto instance serves (%d)" % r.status)
            taken = [n for n in range(0, 8) if ("pid=%d " % b.proc.pid) in lease(n)]
            eq(len(taken), 1, "exactly one id leased by the auto instance")
            expect(taken[0] != 5, "not the first instance's id")
    eq(lease(5), "", "given up on SIGTERM")


@test
def ids_of_one_node_id_keep_increasing_across_holders():
    """A clean stop leaves the last id's time as the next holder's bound. A
    killed holder's lease is taken at once by a restart on the same machine
    (its process is gone), whose ids start after the bound the dead one
    last wrote (its clock plus the lease)."""
    sku = fresh("nid")
    conf = ENV.write_config(order__node_id=6, order__node_lease_ms=1500)
    ENV.load_stock(conf, [(sku, 100, 100)])
    with Gateway(ENV, conf):
        first = post_order(ENV.gw_port, "nid1", sku, 1).json()["order_id"]
    eq(int(ENV.redis("GET", "fg:{node:6}:until")), order_id_ms(first), "the bound is the last id's time")
    gw = Gateway(ENV, conf)
    second = post_order(ENV.gw_port, "nid1", sku, 1).json()["order_id"]
    expect(int(second, 16) > int(first, 16), "the restart's id %s after %s" % (second, first))
    gw.proc.kill()  # no SIGTERM: the lease stays until it lapses
    gw.proc.wait()
    gw.log.close()
    bound = int(ENV.redis("GET", "fg:{node:6}:until"))
    expect(("pid=%d " % gw.proc.pid) in lease(6), "the killed holder's lease is still there")
    at = ENV.log_size()
    with Gateway(ENV, conf):
        third = post_order(ENV.gw_port, "nid1", sku, 1).json()["order_id"]
    expect(("node 6: took the lease of a process of this machine that is gone (host=") in ENV.log_since(at),
           "the takeover is logged")
    expect(order_id_ms(third) > bound, "after the killed holder's bound (%d > %d)" % (order_id_ms(third), bound))


@test
def a_lease_taken_by_another_stops_orders_and_readyz_says_so():
    """The lease's key holding another holder (as if it lapsed and another
    instance took it): at the next renewal the gateway mints no more ids,
    answers orders 503 node_lease and /readyz 503, and never takes the id
    back, even once the key is free."""
    sku = fresh("lost")
    conf = ENV.write_config(order__node_id=7, order__node_lease_ms=1500)
    ENV.load_stock(conf, [(sku, 100, 100)])
    with Gateway(ENV, conf):
        eq(post_order(ENV.gw_port, "lost1", sku, 1).status, 202, "an order while the lease is held")
        at = ENV.log_size()
        ENV.redis("SET", "fg:{node:7}:lease", "host=elsewhere pid=1 since=now", "PX", "1500")
        log = wait_for_log(at, "LEASE LOST", timeout=3)
        expect("node 7: LEASE LOST: another instance holds it: host=elsewhere" in log, "logged: %s" % log)
        r = post_order(ENV.gw_port, "lost2", sku, 1)
        eq((r.status, r.json().get("reason")), (503, "node_lease"), "an order after the loss")
        took, r = wait_status("/readyz", 503, 2)
        eq((r.status, r.json()["node_lease"]), (503, "not_held"), "/readyz")
        time.sleep(2)  # the impostor's key lapses: still not taken back
        eq(lease(7), "", "the id is not taken back")
        eq(post_order(ENV.gw_port, "lost3", sku, 1).status, 503, "still no orders")
    eq(ENV.stock(conf, sku)["sold"], 1, "only the order before the loss sold")


@test
def a_lease_that_lapses_while_redis_is_away_stops_ids_until_renewed():
    """Redis frozen longer than the lease: the gateway stops minting ids
    at 9/10 of node_lease_ms by its own clock (the log says so), and once
    Redis answers again its renewal finds the lease free, with the bound
    it wrote itself, takes it back and orders go on."""
    sku = fresh("lap")
    conf = ENV.write_config(order__node_id=8, order__node_lease_ms=1500, redis__timeout_ms=300,
                            redis__wait_timeout_ms=50)
    ENV.load_stock(conf, [(sku, 100, 100)])
    with Gateway(ENV, conf):
        eq(post_order(ENV.gw_port, "lap1", sku, 1).status, 202, "an order while the lease is held")
        at = ENV.log_size()
        with frozen("redis.pid"):
            log = wait_for_log(at, "lease not renewed", timeout=5)
        expect("node 8: lease not renewed for 1350 ms" in log and "taking no orders until it is" in log,
               "the lapse logged: %s" % log[-1500:])
        log = wait_for_log(at, "lease renewed; taking orders again", timeout=5)
        expect("node 8: lease renewed; taking orders again" in log, "renewed after the thaw: %s" % log[-1500:])
        deadline, r = time.time() + 10, None
        while time.time() < deadline:
            r = post_order(ENV.gw_port, "lap2", sku, 1)
            if r.status == 202:
                break
            time.sleep(0.1)
        eq(r.status, 202, "orders again")
    eq(ENV.stock(conf, sku)["sold"], 2, "both orders sold")


PROFILE = """
[run]
connections = 32
timeout = 5s
seed = 11

[stage sale]
duration = 6s
rate = 400

[catalogue]
sku_prefix = %(prefix)s

[class hot]
count = 2
stock = 300
per_user_limit = 2

[class rest]
count = 6
stock = 100000
per_user_limit = 100

[users]
count = 3000
prefix = %(prefix)su
"""


@test
def ten_hups_during_a_sale_fail_no_request_and_the_books_balance():
    prefix = fresh("hs")
    conf = ENV.write_config(admission__user_rate=1000, admission__user_burst=1000)
    profile = os.path.join(ENV.run_dir, prefix + ".ini")
    with open(profile, "w") as f:
        f.write(PROFILE % {"prefix": prefix})
    csv = os.path.join(ENV.run_dir, prefix + ".csv")
    fl = [os.path.join(BIN, "flashload"), "--sign-key", signing_key_path()]
    subprocess.run(fl + ["--profile", profile, "--write-stock", csv], check=True, capture_output=True)
    ENV.flashgate(conf, "stock", "load", csv)
    report = os.path.join(ENV.run_dir, prefix + ".json")
    with Gateway(ENV, conf) as gw:
        at = ENV.log_size()
        load = subprocess.Popen(fl + ["--target", "127.0.0.1:%d" % ENV.gw_port, "--profile", profile,
                                      "--quiet", "--verify", "--config", conf, "--json", report],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        for i in range(10):
            # Each reload changes something the requests in flight use.
            ENV.write_config(admission__user_rate=1000 + i, admission__user_burst=1000,
                             server__request_timeout_ms=9000 + i)
            gw.proc.send_signal(signal.SIGHUP)
            time.sleep(0.45)
        out, err = load.communicate(timeout=120)
        sys.stdout.write(out)
        eq(load.returncode, 0, "flashload --verify across ten reloads (stderr: %s)" % err[-2000:])
        log = wait_for_log(at, "reloaded %s (reload 10)" % conf)
        eq(log.count("reloaded %s (reload " % conf), 10, "ten reloads taken")
        eq(gw.proc.poll(), None, "still running")
    with open(report) as f:
        j = json.load(f)
    o = j["orders"]
    eq(o["failed"], 0, "no request failed")
    expect(o["accepted"] > 1000, "orders accepted throughout (%d)" % o["accepted"])
    checks = {c["check"]: c["ok"] for c in j["verify"]["checks"]}
    expect(all(checks.values()), "books balance: %s" % checks)


@test
def a_rolling_restart_loses_nothing():
    """The procedure docs/operations.md gives: start the new instance on the
    same port (SO_REUSEPORT; node_id = auto gives it its own id), then
    SIGTERM the old one. The old one drains: what it has read it answers,
    what arrives on its connections after gets 503 draining and a close,
    and flashload's retries land on the new one. Across the restart no
    request fails and the books balance."""
    prefix = fresh("rr")
    conf = ENV.write_config(order__node_id="auto", admission__user_rate=1000, admission__user_burst=1000)
    profile = os.path.join(ENV.run_dir, prefix + ".ini")
    with open(profile, "w") as f:
        f.write(PROFILE % {"prefix": prefix} + "\n[retries]\nmax = 3\nbackoff = 20ms\n")
    csv = os.path.join(ENV.run_dir, prefix + ".csv")
    fl = [os.path.join(BIN, "flashload"), "--sign-key", signing_key_path()]
    subprocess.run(fl + ["--profile", profile, "--write-stock", csv], check=True, capture_output=True)
    ENV.flashgate(conf, "stock", "load", csv)
    report = os.path.join(ENV.run_dir, prefix + ".json")
    old = Gateway(ENV, conf)
    try:
        load = subprocess.Popen(fl + ["--target", "127.0.0.1:%d" % ENV.gw_port, "--profile", profile,
                                      "--keys", "--quiet", "--verify", "--config", conf, "--json", report],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        at = ENV.log_size()
        new = Gateway(ENV, conf)
        wait_for_log(at, "leased in redis")
        time.sleep(0.5)
        eq(old.stop(), 0, "the old instance drained and exited 0")
        out, err = load.communicate(timeout=120)
        sys.stdout.write(out)
        eq(new.stop(), 0, "the new instance exited 0")
    finally:
        for gw in (old, new):
            if gw.proc.poll() is None:
                gw.proc.kill()
    eq(load.returncode, 0, "flashload --verify across the restart (stderr: %s)" % err[-2000:])
    with open(report) as f:
        j = json.load(f)
    o = j["orders"]
    eq(o["failed"], 0, "no request failed (retries: %d)" % o["retries"])
    checks = {c["check"]: c["ok"] for c in j["verify"]["checks"]}
    expect(all(checks.values()), "books balance: %s" % checks)


@test
def stock_load_refuses_to_reset_a_sku_that_sold_without_replace():
    """Loading a SKU again reset its counts: a buyer who had reached her
    limit could buy again. Now that needs --replace; --dry-run says what a
    load would do and writes nothing."""
    a, b = fresh("sl-a"), fresh("sl-b")
    conf = ENV.write_config()
    csv = ENV.stock_csv([(a, 10, 1), (b, 5, 1)], "sl.csv")
    ENV.flashgate(conf, "stock", "load", csv, replace=False)
    with Gateway(ENV, conf):
        eq(post_order(ENV.gw_port, "slu", a, 1).status, 202, "an order")
        eq(post_order(ENV.gw_port, "slu", a, 1).status, 409, "her limit of 1 reached")
    r = ENV.flashgate(conf, "stock", "load", csv, check=False, replace=False)
    eq(r.returncode, 1, "a load over a SKU with sales is refused")
    expect("stock load refused: 1 SKU of the file already sold units" in r.stderr and
           "%s (sold 1, pending " % a in r.stderr and "Nothing was written" in r.stderr, r.stderr)
    eq(ENV.stock(conf, a)["sold"], 1, "nothing reset")
    r = ENV.flashgate(conf, "stock", "load", "--dry-run", csv, replace=False)
    expect("%s: REPLACES a SKU with sales: stock 9 -> 10, sold 1 -> 0" % a in r.stdout, r.stdout)
    expect("%s: loaded again, nothing sold yet" % b in r.stdout, r.stdout)
    expect("dry run: 2 SKUs: 0 new, 1 loaded again, 1 with sales (--replace needed); nothing written" in r.stdout,
           r.stdout)
    eq(ENV.stock(conf, a)["sold"], 1, "a dry run writes nothing")
    ENV.flashgate(conf, "stock", "load", "--replace", csv, replace=False)
    eq(ENV.stock(conf, a)["sold"], 0, "--replace resets it")
    # list and --json
    prefix = a  # the run's own: other runs' SKUs share the rest of the name
    out = ENV.flashgate(conf, "stock", "list", prefix).stdout.splitlines()
    eq(out[-1], "1 SKU starting with %s" % prefix, "list's count: %s" % out)
    out = json.loads(ENV.flashgate(conf, "stock", "list", prefix, "--json").stdout)
    eq(out, [{"sku": a, "stock": 10, "per_user_limit": 1, "sold": 0, "pending": 0, "buckets": 1,
              "in_transit": 0}], "list --json")
    eq(json.loads(ENV.flashgate(conf, "stock", "show", b, "--json").stdout)["stock"], 5, "show --json")
    # Argument errors say what is wrong.
    for args, want in ((("stock", "show"), "stock show needs a SKU (got 0 arguments)"),
                       (("stock",), "which command?"),
                       (("stock", "frob"), "unknown command 'stock frob'"),
                       (("stock", "show", b, "--bogus"), "stock show: unknown option '--bogus'"),
                       (("stock", "add", b), "stock add needs a SKU and a unit count (got 1 argument)")):
        r = ENV.flashgate(conf, *args, check=False)
        eq(r.returncode, 2, "%s: usage exit status" % " ".join(args))
        expect(want in r.stderr and "usage: flashgate -c CONF stock load" in r.stderr, r.stderr)


@test
def overrides_come_from_the_environment_and_set_and_t_says_where():
    conf = ENV.write_config(admission__user_rate=9)
    env = dict(os.environ, FLASHGATE_ADMISSION_USER_RATE="11", FLASHGATE_SERVER_IDLE_TIMEOUT_MS="2m")
    r = subprocess.run([os.path.join(BIN, "flashgate"), "-c", conf, "--set", "admission.user_rate=12", "-t",
                        "--probe"], capture_output=True, text=True, env=env)
    eq(r.returncode, 0, "-t --probe (stderr: %s)" % r.stderr)
    expect("user_rate = 12  ; from --set admission.user_rate\n" in r.stdout, r.stdout)
    expect("idle_timeout_ms = 120000  ; from environment FLASHGATE_SERVER_IDLE_TIMEOUT_MS\n" in r.stdout, r.stdout)
    expect("port = %d  ; from %s:" % (ENV.gw_port, conf) in r.stdout, r.stdout)
    expect("probe: redis 127.0.0.1:%d answers" % ENV.redis_port in r.stderr and
           "probe: kafka %s has topic %s" % (ENV.kafka, ENV.topic) in r.stderr, r.stderr)
    # A gateway started with --set keeps it through a reload: the file
    # says 9 then 10, the command line 12, and the reload changes nothing.
    at = ENV.log_size()
    with open(os.path.join(ENV.run_dir, "gateway.log"), "a") as log:
        gw = subprocess.Popen([os.path.join(BIN, "flashgate"), "-c", conf, "--set", "admission.user_rate=12"],
                              stdout=log, stderr=log)
    try:
        took, r = wait_status("/readyz", 200, 20)
        eq(r.status, 200, "the gateway with --set is ready")
        ENV.write_config(admission__user_rate=10)
        gw.send_signal(signal.SIGHUP)
        log = wait_for_log(at, "reloaded %s (reload 1)" % conf)
        expect('reloaded %s (reload 1)"' % conf in log and "user_rate" not in log, "no change: %s" % log)
    finally:
        gw.send_signal(signal.SIGTERM)
        eq(gw.wait(30), 0, "exit status after SIGTERM")
    bad = dict(os.environ, FLASHGATE_SERVER_PROT="1")
    r = subprocess.run([os.path.join(BIN, "flashgate"), "-c", conf, "-t"], capture_output=True, text=True, env=bad)
    eq(r.returncode, 1, "a misspelt variable stops -t")
    expect("flashgate: environment FLASHGATE_SERVER_PROT: no such key" in r.stderr, r.stderr)
    r = subprocess.run([os.path.join(BIN, "flashgate"), "-c", conf, "--set", "server.port=x", "-t"],
                       capture_output=True, text=True)
    eq(r.returncode, 1, "a bad --set stops -t")
    expect("flashgate: --set server.port=x: [server] port: not a non-negative integer (value 'x')" in r.stderr,
           r.stderr)


@test
def make_install_lays_out_a_service_systemd_accepts():
    """`make install` with PREFIX and DESTDIR: the binaries, the config
    pointed at the install's key directory, the profiles, the man pages
    (groff finds nothing to warn of) and the unit, which
    `systemd-analyze verify` accepts once installed where it names."""
    dest = os.path.join(ENV.run_dir, "destdir")
    shutil.rmtree(dest, ignore_errors=True)
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=" + dest, "PREFIX=/usr/local"],
                       capture_output=True, text=True)
    eq(r.returncode, 0, "make install (stderr: %s)" % r.stderr)
    files = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
    for want in ("usr/local/bin/flashgate", "usr/local/bin/flashload", "usr/local/etc/flashgate/flashgate.conf",
                 "usr/local/lib/systemd/system/flashgate.service", "usr/local/share/man/man8/flashgate.8",
                 "usr/local/share/man/man1/flashload.1", "usr/local/share/flashgate/profiles/double11.ini"):
        expect(want in files, "%s installed (%s)" % (want, files))
    with open(os.path.join(dest, "usr/local/etc/flashgate/flashgate.conf")) as f:
        expect("\nkeys = /usr/local/etc/flashgate/keys\n" in f.read(), "the config points at the installed keys")
    with open(os.path.join(dest, "usr/local/lib/systemd/system/flashgate.service")) as f:
        unit = f.read()
    for line in ("Type=notify", "ExecStart=/usr/local/bin/flashgate -c /usr/local/etc/flashgate/flashgate.conf",
                 "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "LimitNOFILE=262144"):
        expect(line + "\n" in unit, "the unit has %s" % line)
    for page in ("man8/flashgate.8", "man1/flashload.1"):
        g = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(dest, "usr/local/share/man", page)],
                           capture_output=True, text=True)
        eq((g.returncode, g.stderr), (0, ""), "groff on %s" % page)
    # verify runs the unit's commands' checks against the real root: an
    # install whose prefix exists there.
    prefix = os.path.join(ENV.run_dir, "prefix")
    shutil.rmtree(prefix, ignore_errors=True)
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", "PREFIX=" + prefix], capture_output=True, text=True)
    eq(r.returncode, 0, "make install PREFIX=%s (stderr: %s)" % (prefix, r.stderr))
    v = subprocess.run(["systemd-analyze", "verify", os.path.join(prefix, "lib/systemd/system/flashgate.service")],
                       capture_output=True, text=True, env=dict(os.environ, MANPATH=os.path.join(prefix, "share/man")))
    eq((v.returncode, v.stderr.strip()), (0, ""), "systemd-analyze verify")


@test
def the_service_manager_hears_ready_reloading_and_stopping():
    """Type=notify's protocol (sd_notify(3)), to a socket of the test's own
    standing in for systemd's."""
    import socket as so
    path = os.path.join(ENV.run_dir, "notify.sock")
    if os.path.exists(path):
        os.unlink(path)
    sock = so.socket(so.AF_UNIX, so.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    conf = ENV.write_config()
    with open(os.path.join(ENV.run_dir, "gateway.log"), "a") as log:
        gw = subprocess.Popen([os.path.join(BIN, "flashgate"), "-c", conf], stdout=log, stderr=log,
                              env=dict(os.environ, NOTIFY_SOCKET=path))
    try:
        eq(sock.recv(256), b"STATUS=serving", "STATUS once ready")
        eq(sock.recv(256), b"READY=1", "READY once ready")
        eq(get(ENV.gw_port, "/readyz").status, 200, "and it is")
        gw.send_signal(signal.SIGHUP)
        expect(sock.recv(256).startswith(b"RELOADING=1\nMONOTONIC_USEC="), "RELOADING at SIGHUP")
        eq(sock.recv(256), b"STATUS=serving; reload 1 taken", "STATUS after it")
        eq(sock.recv(256), b"READY=1", "READY again")
        gw.send_signal(signal.SIGTERM)
        eq(sock.recv(256), b"STOPPING=1", "STOPPING at SIGTERM")
        eq(gw.wait(30), 0, "exit status")
    finally:
        if gw.poll() is None:
            gw.kill()
        sock.close()
        os.unlink(path)


def metric_names(text):
    """The flashgate_* and process_* names an expression or a file uses,
    histograms by their base name."""
    names = set(re.findall(r"\b((?:flashgate|process)_[a-z_]+)\b", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


@test
def the_metrics_page_rules_and_dashboard_agree_and_promtool_passes_them():
    """promtool checks the page and the alerting rules; every metric the
    rules and the Grafana dashboard ask for is on the page."""
    token = "admin-token-0123456789"
    sku, gone = fresh("pm"), fresh("pmgone")
    conf = ENV.write_config(server__admin_token=token, server__workers=1, order__soldout_cache_ms=1000)
    ENV.load_stock(conf, [(sku, 10, 5), (gone, 1, 1)])
    with Gateway(ENV, conf):
        eq(post_order(ENV.gw_port, "pmuser", sku, 1).status, 202, "an order, so that every histogram has one")
        eq(post_order(ENV.gw_port, "pmuser", gone, 1).status, 202, "the last unit of another")
        eq(post_order(ENV.gw_port, "pmother", gone, 1).status, 409, "which is then sold out")
        # The worker counts its sold-out cache a slice a tick (two ticks here),
        # well within the entry's 1000 ms.
        eq(metric(ENV.gw_port, "flashgate_skus_sold_out", token), 1, "one SKU known sold out")
        c = Conn(ENV.gw_port)
        c.send(request("GET", "/admin/v1/metrics", headers={"Authorization": "Bearer " + token}))
        page = c.read().body
        c.close()
    check = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, text=True)
    eq((check.returncode, check.stdout + check.stderr), (0, ""), "promtool check metrics")
    on_page = {re.sub(r"_(bucket|sum|count)$", "", line.split("{")[0].split(" ")[0])
               for line in page.splitlines() if line and not line.startswith("#")}
    for name in ("flashgate_redis_roundtrip_seconds", "flashgate_kafka_ack_seconds", "flashgate_ready",
                 "flashgate_node_lease_held", "process_cpu_seconds_total", "process_open_fds",
                 "process_start_time_seconds", "flashgate_build_info"):
        expect(name in on_page, "%s on the page" % name)
    expect(re.search(r'^flashgate_kafka_ack_seconds_count [1-9]', page, re.M), "the order's ack counted")
    expect(re.search(r'^flashgate_build_info\{version="0.1.0",commit="[0-9a-f]{12}', page, re.M), "build_info")
    rules = os.path.join(ROOT, "config", "prometheus", "flashgate-alerts.yml")
    check = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
    eq(check.returncode, 0, "promtool check rules: %s" % check.stdout + check.stderr)
    with open(rules) as f:
        missing = metric_names(f.read()) - on_page
    eq(missing, set(), "metrics the rules use that the page lacks")
    with open(os.path.join(ROOT, "config", "grafana", "flashgate-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    expect(len(exprs) > 20, "the dashboard's queries (%d)" % len(exprs))
    eq(metric_names("\n".join(exprs)) - on_page, set(), "metrics the dashboard uses that the page lacks")


def admin_get(port, path, token):
    c = Conn(port)
    try:
        c.send(request("GET", path, headers={"Authorization": "Bearer " + token} if token else None))
        return c.read()
    finally:
        c.close()


@test
def the_admin_listener_is_apart_its_token_rotates_and_guesses_are_slowed():
    token_file = os.path.join(ENV.run_dir, "admin.token")
    with open(token_file, "w") as f:
        f.write("first-admin-token-0123\n")
    admin_port = ENV.gw_port + 3
    # One worker: like the rate limits, the count of wrong tokens is each worker's.
    conf = ENV.write_config(server__workers=1, admin__port=admin_port, admin__token_file=token_file)
    with Gateway(ENV, conf) as gw:
        _, r = wait_status("/readyz", 200, 10)
        eq(r.status, 200, "ready")
        eq(admin_get(ENV.gw_port, "/admin/v1/metrics", "first-admin-token-0123").status, 404,
           "no admin endpoint on the public listener")
        eq(admin_get(admin_port, "/admin/v1/metrics", "first-admin-token-0123").status, 200, "on the admin one")
        eq(admin_get(admin_port, "/readyz", None).status, 200, "/readyz on the admin listener")
        c = Conn(admin_port)
        c.send(request("POST", "/v1/orders", '{"sku":"x","qty":1}'))
        eq(c.read().status, 404, "no orders on the admin listener")
        c.close()
        # Five wrong tokens are judged; the sixth waits, and so does a right
        # one from that address until a second has passed.
        eq([admin_get(admin_port, "/admin/v1/metrics", "wrong-token-%016d" % i).status for i in range(5)],
           [401] * 5, "five wrong tokens")
        r = admin_get(admin_port, "/admin/v1/metrics", "wrong-token-again-0000")
        eq((r.status, r.json(), r.headers.get("retry-after")),
           (429, {"status": "too_many_requests", "reason": "admin_tokens"}, "1"), "the sixth")
        eq(admin_get(admin_port, "/admin/v1/metrics", "first-admin-token-0123").status, 429, "even a right one, now")
        time.sleep(1.1)
        eq(admin_get(admin_port, "/admin/v1/metrics", "first-admin-token-0123").status, 200, "a second later")
        # The token rotates on SIGHUP.
        with open(token_file, "w") as f:
            f.write("second-admin-token-456\n")
        log = hup(gw, ENV.log_size())
        expect("reloaded" in log, log)
        eq(admin_get(admin_port, "/admin/v1/metrics", "second-admin-token-456").status, 200, "the new token")
        eq(admin_get(admin_port, "/admin/v1/metrics", "first-admin-token-0123").status, 401, "the old one")
        time.sleep(1.1)  # that wrong one spent the token the last second gave
        eq(metric(admin_port, "flashgate_refused_total", "second-admin-token-456", code=429, reason="admin_tokens"),
           2, "the two 429s counted")
    r = ENV.flashgate(ENV.write_config("both.conf", server__admin_token="x" * 20, admin__token_file=token_file),
                      "-t", check=False)
    eq(r.returncode, 1, "a token and a token file")
    expect("[admin] token_file: set with [server] admin_token: keep one" in r.stderr, r.stderr)


@test
def the_log_file_is_opened_again_on_sigusr1_for_logrotate():
    logfile = os.path.join(ENV.run_dir, "fg-rotate.log")
    for p in (logfile, logfile + ".1"):
        if os.path.exists(p):
            os.unlink(p)
    conf = ENV.write_config(log__file=logfile, log__format="text")
    gw = subprocess.Popen([os.path.join(BIN, "flashgate"), "-c", conf], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        took, r = wait_status("/readyz", 200, 20)
        eq(r.status, 200, "ready")
        with open(logfile) as f:
            first = f.read()
        expect(" flashgate[main] info: flashgate 0.1.0 (commit " in first, "the text form in the file: %s" % first)
        os.rename(logfile, logfile + ".1")  # what logrotate does
        gw.send_signal(signal.SIGUSR1)
        deadline = time.time() + 5
        while not os.path.exists(logfile) and time.time() < deadline:
            time.sleep(0.05)
        gw.send_signal(signal.SIGTERM)
        eq(gw.wait(30), 0, "exit status")
        with open(logfile) as f:
            new = f.read()
        with open(logfile + ".1") as f:
            old = f.read()
        expect("SIGUSR1: log file %s opened again" % logfile in new and "draining" in new, "the new file: %s" % new)
        expect("draining" not in old, "nothing more in the rotated file")
    finally:
        if gw.poll() is None:
            gw.kill()


@test
def the_access_log_samples_orders_and_never_names_the_buyer():
    import hashlib
    import hmac as hm
    keyfile = os.path.join(ENV.run_dir, "access.key")
    with open(keyfile, "w") as f:
        f.write("access-log-key-0123456789\n")
    sku = fresh("al")
    conf = ENV.write_config(server__workers=1, log__access_every=2, log__access_key_file=keyfile)
    ENV.load_stock(conf, [(sku, 100, 100)])
    at = ENV.log_size()
    with Gateway(ENV, conf):
        got = [post_order(ENV.gw_port, "alice-al", sku, 1).status for _ in range(6)]
    eq(got, [202] * 6, "six orders")
    lines = [l for l in ENV.log_since(at).splitlines() if "who=access" in l]
    eq(len(lines), 3, "one order in two: %s" % lines)
    want = hm.new(b"access-log-key-0123456789", b"alice-al", hashlib.sha256).hexdigest()[:16]
    for line in lines:
        expect(('msg="order status=202 sku=%s qty=1 user=%s client=127.0.0.1 us=' % (sku, want)) in line, line)
        expect("alice" not in line, "the buyer is not named: %s" % line)


def kafka_user(name, password):
    r = subprocess.run([os.path.join(ROOT, "scripts", "services.sh"), "kafka-user", name, password],
                       capture_output=True, text=True, timeout=120)
    eq(r.returncode, 0, "services.sh kafka-user %s: %s" % (name, r.stderr))


@test
def kafka_sasl_credentials_rotate_on_sighup():
    """A client_properties file whose only change is sasl.username and
    sasl.password is taken live (librdkafka's rd_kafka_sasl_set_credentials
    for the producers and the Kafka watch; the reconcile passes make their
    clients anew). The old user then goes, and the passes, which connect
    afresh each time, go on as the new one. Any other change to the file
    waits for a restart, named in the log."""
    props = os.path.join(ENV.run_dir, "rotate.properties")

    def write_props(user, password, extra=""):
        with open(props, "w") as f:
            f.write("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
                    "sasl.username=%s\nsasl.password=%s\n%s" % (user, password, extra))

    kafka_user("rot-a", "rotation-pass-a-0123")
    write_props("rot-a", "rotation-pass-a-0123")
    sku = fresh("kr")
    conf = ENV.write_config(kafka__brokers=ENV.kafka_sasl, kafka__client_properties=props,
                            reconcile__interval_ms=300)
    ENV.load_stock(conf, [(sku, 100, 100)])
    with Gateway(ENV, conf) as gw:
        eq(post_order(ENV.gw_port, "kr1", sku, 1).status, 202, "an order as rot-a")
        kafka_user("rot-b", "rotation-pass-b-4567")
        write_props("rot-b", "rotation-pass-b-4567")
        log = hup(gw, ENV.log_size())
        expect("reload 1: [kafka] client_properties sasl.username/sasl.password: (set) -> (set)\"" in log,
               "taken live: %s" % log)
        eq(log.count("kafka: SASL credentials of user rot-b from the next connection on"), 2, "both workers: %s" % log)
        expect("rotation-pass" not in log, "no password in the log")
        r = subprocess.run([os.path.join(ROOT, "scripts", "services.sh"), "kafka-user", "rot-a", "--delete"],
                           capture_output=True, text=True, timeout=120)
        eq(r.returncode, 0, "rot-a deleted: %s" % r.stderr)
        at = ENV.log_size()
        eq(post_order(ENV.gw_port, "kr2", sku, 1).status, 202, "orders go on")
        time.sleep(1.5)  # several reconcile passes, each a new client: as rot-b
        log = ENV.log_since(at)
        expect("pass failed" not in log and "Authentication" not in log, "passes as rot-b: %s" % log[-1500:])
        write_props("rot-b", "rotation-pass-b-4567", "socket.keepalive.enable=true\n")
        log = hup(gw, ENV.log_size())
        expect("reload 2: [kafka] client_properties: (the file as read at start-up) -> (the file as it is now) "
               "takes effect only at a restart" in log, "another change waits: %s" % log)


@test
def both_programs_print_their_version_and_commit():
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                          cwd=ROOT).stdout.strip() or "unknown"
    for prog in ("flashgate", "flashload"):
        out = subprocess.run([os.path.join(BIN, prog), "--version"], capture_output=True, text=True)
        eq(out.returncode, 0, "%s --version exit status" % prog)
        expect(out.stdout.startswith("%s 0.1.0 (commit %s" % (prog, head)), "%s: %r" % (prog, out.stdout))


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "operations"))
