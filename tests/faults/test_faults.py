"""flashgate fault tests: each scenario runs a load against the real Redis
and Kafka started by scripts/run-fault-tests.sh, injects a fault (a broker
or Redis stopped, killed and restarted; the gateway killed), and then
asserts the invariants with flashload's verifier:
  zero oversell, zero lost 202s, zero duplicates in the topic,
  stock consumed == records in the topic, no reservation left pending.
No fakes: every fault is done to the real process with a signal.

Run: make test-faults  (prints "faults: N passed, N failed")"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import (BIN, ROOT, Conn, Env, Gateway, eq, expect, post_order, request, run_tests,  # noqa: E402
                     signing_key_path, verify_only)

ENV = Env()
TESTS = []
SERVICES = os.path.join(ROOT, "scripts", "services.sh")


GATEWAYS = []


def test(fn):
    TESTS.append(fn)
    return fn


def start_gateway(conf):
    gw = Gateway(ENV, conf)
    GATEWAYS.append(gw)
    return gw


def stop_leftover_gateways():
    while GATEWAYS:
        gw = GATEWAYS.pop()
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait()


def pid_of(name):
    with open(os.path.join(ENV.run_dir, name + ".pid")) as f:
        return int(f.read().strip())


def services_up():
    r = subprocess.run([SERVICES, "up"], capture_output=True, text=True)
    expect(r.returncode == 0, "services.sh up failed:\n%s%s" % (r.stdout, r.stderr))


class Load:
    """flashload in the background, writing the 202s it sees to a file.
    One order in twenty has a shopper who gives up after 0-10 ms without
    an answer and resets the connection (--abandon), so every outage also
    meets orders whose client is gone when their fate is decided; the
    verification (--reconciled) already allows orders no client saw."""

    def __init__(self, conf, prefix, skus, rate=800, seconds=8, connections=128):
        self.log = os.path.join(ENV.run_dir, prefix + "-accepted.txt")
        self.prefix = prefix
        self.conf = conf
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "flashload"), "--sign-key", signing_key_path(), "--target", "127.0.0.1:%d" % ENV.gw_port,
             "--rate", str(rate), "--duration", "%ds" % seconds, "--connections", str(connections),
             "--skus", str(skus), "--sku-prefix", prefix, "--users", "20000", "--timeout", "20000",
             "--abandon", "0.05", "--quiet", "--accepted-log", self.log],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self):
        out, err = self.proc.communicate(timeout=180)
        sys.stdout.write(out)
        expect(self.proc.returncode == 0, "flashload exit %d: %s" % (self.proc.returncode, err[-500:]))
        self.out = out
        return out

    def count(self, what):
        return int(self.out.split(what + " ")[1].split()[0])


def reconcile(conf, *args):
    r = subprocess.run([os.path.join(BIN, "flashgate"), "-c", conf, "reconcile"] + list(args),
                       capture_output=True, text=True, timeout=300)
    sys.stdout.write(r.stdout)
    expect(r.returncode == 0, "reconcile exit %d: %s" % (r.returncode, r.stderr[-1000:]))
    return r.stdout


def verify(conf, load):
    verify_only(conf, load.log, load.prefix, "--reconciled")


# Every bucket's tag of every loaded SKU (core/bucket.h), in Lua: the fault
# tests' Redis is a single server, so one script may read them all.
BUCKET_TAGS = ("local tags = {} for _, s in ipairs(redis.call('SMEMBERS', 'fg:skus')) do "
               "local k = tonumber(redis.call('HGET', 'fg:{' .. s .. '}', 'buckets') or '1') "
               "tags[#tags + 1] = s for b = 1, k - 1 do tags[#tags + 1] = s .. '#' .. b end end ")


def pending_entries():
    return ENV.redis("EVAL", BUCKET_TAGS + "local out = {} for _, t in ipairs(tags) do "
                     "local h = redis.call('HGETALL', 'fg:{' .. t .. '}:pending') "
                     "for i = 1, #h, 2 do out[#out + 1] = t .. ' ' .. h[i] .. ' ' .. h[i + 1] end end "
                     "return out", "0")


def pending_total():
    return int(ENV.redis("EVAL", BUCKET_TAGS + "local n = 0 for _, t in ipairs(tags) do "
                         "n = n + redis.call('HLEN', 'fg:{' .. t .. '}:pending') end return n", "0"))


def settle(conf, load):
    """After the fault: reconcile (the gateway is stopped, so every entry
    is abandoned), verify, and check a second reconcile has nothing to do."""
    reconcile(conf, "--min-age-ms", "0")
    verify(conf, load)
    again = reconcile(conf, "--min-age-ms", "0")
    expect("0 published, 0 released" in again or "0 older than" in again, "second reconcile did something")


def fault_config():
    return ENV.write_config(kafka__message_timeout_ms=2000, redis__timeout_ms=500,
                            redis__reconnect_ms=100, server__drain_timeout_ms=15000)


def stock(prefix, n=4, units=3000):
    """The load's SKUs, plus PREFIXafter for checking that orders flow
    again once the fault is over (the load may sell the others out)."""
    return [("%s%d" % (prefix, i), units, 3) for i in range(1, n + 1)] + [(prefix + "after", 100, 100)]


def outage(prefix, service, fault, down_s, seconds=8, wait_for_orders_s=0):
    """The shape of every outage test: load, fault a service two seconds in,
    heal it after down_s, then check that no request hung, that orders flow
    again without restarting the gateway, that it drains cleanly, and that
    the books balance. Returns the config and the finished load."""
    conf = fault_config()
    ENV.load_stock(conf, stock(prefix))
    gw = start_gateway(conf)
    load = Load(conf, prefix, 4, seconds=seconds)
    time.sleep(2)
    if fault == "pause":
        os.kill(pid_of(service), signal.SIGSTOP)
        time.sleep(down_s)
        os.kill(pid_of(service), signal.SIGCONT)
    else:
        os.kill(pid_of(service), signal.SIGKILL)
        time.sleep(down_s)
        services_up()  # Kafka keeps its log dir; Redis its append-only file
    load.wait()
    expect(load.count("timeouts") == 0, "no request hung past flashload's timeout")
    # An unclean broker restart recovers its logs and reloads the producer-id
    # coordinator before idempotent producers may write again.
    deadline = time.time() + max(wait_for_orders_s, 2)
    seen = []
    while time.time() < deadline:
        seen.append(post_order(ENV.gw_port, "after", prefix + "after").status)
        if seen[-1] == 202:
            break
        time.sleep(0.5)
    expect(seen[-1] == 202, "orders flow after the %s is back, without restarting the gateway "
           "(answers while waiting: %s)" % (service, sorted(set(seen))))
    expect(gw.stop() == 0, "gateway exits 0")
    return conf, load


@test
def broker_paused_then_resumed():
    # longer than message_timeout_ms: in-flight orders time out
    conf, load = outage("bp", "kafka", "pause", 4)
    expect(load.count("503") > 0, "the outage produced 503s")
    settle(conf, load)


@test
def broker_killed_then_restarted():
    conf, load = outage("bk", "kafka", "kill", 2, seconds=12, wait_for_orders_s=90)
    expect(load.count("503") > 0, "the outage produced 503s")
    settle(conf, load)


@test
def redis_paused_then_resumed():
    conf, load = outage("rp", "redis", "pause", 3)
    expect(load.count("503") > 0, "the outage produced 503s")
    # A Redis outage alone leaves nothing for reconcile: every reservation
    # whose reply was lost was released on reconnect, after the dropped
    # connection was killed so none of its commands could run later.
    expect(pending_total() == 0, "reservations left pending by a Redis outage: %s" % pending_entries())
    settle(conf, load)


@test
def redis_killed_then_restarted():
    # append-only file, fsync always: acknowledged writes survive the restart
    conf, load = outage("rk", "redis", "kill", 2)
    expect(pending_total() == 0, "reservations left pending by a Redis outage: %s" % pending_entries())
    settle(conf, load)


def transfers_in_flight(prefix, buckets):
    """Entries in the transfer ledgers of the load's 4 SKUs."""
    return sum(int(ENV.redis("HLEN", "fg:{%s%d%s}:xfer" % (prefix, i, "#%d" % b if b else "")))
               for i in range(1, 5) for b in range(buckets))


def killed_mid_sale(conf, prefix, buckets):
    """Starts a gateway on conf, runs the load (1500/s for 5 s) and kills
    the gateway 2.5 s in. Returns the load, finished, and when it died."""
    gw = start_gateway(conf)
    if buckets > 1:
        # Orders must be flowing when the gateway dies, so that buckets are
        # running dry and moving units: every worker's producer must have
        # its id from the new broker (8 orders in a row, each on a new
        # connection, so on both workers).
        deadline, ok = time.time() + 60, 0
        while ok < 8 and time.time() < deadline:
            ok = ok + 1 if post_order(ENV.gw_port, "warm%d" % ok, prefix + "after").status == 202 else 0
    load = Load(conf, prefix, 4, rate=1500, seconds=5)
    time.sleep(2.5)
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait()
    killed_at = time.time()
    load.wait()
    return load, killed_at


def reconciled(report):
    """(confirmed, published, released) from a reconcile report."""
    m = re.search(r"(\d+) already in the topic \(confirmed\), (\d+) published, (\d+) released", report)
    expect(m, "no outcome line in the reconcile report: " + report)
    return tuple(int(g) for g in m.groups())


def crash_then_reconcile(prefix, policy, buckets=1, units=3000):
    """A gateway killed mid-sale, then `flashgate reconcile --policy POLICY`.
    Each record waits 200 ms in the dead gateway's producer before it is
    sent, so on any machine a few hundred orders are reserved and not in
    the topic when it dies: complete must publish them, release release
    them, and each policy does only its own."""
    # min age = 2 x 3000 ms: ample room to show young entries are left alone
    conf = ENV.write_config(kafka__message_timeout_ms=3000, redis__timeout_ms=500, redis__buckets=buckets,
                            kafka__linger_ms=200)
    ENV.load_stock(conf, stock(prefix, units=units))
    load, _ = killed_mid_sale(conf, prefix, buckets)
    left = pending_total()
    print("pending reservations after the crash: %d" % left)
    expect(left > 0, "the crash left no reservation pending: nothing to reconcile")
    if buckets > 1:
        print("transfers cut in half by the crash: %d" % transfers_in_flight(prefix, buckets))
    # Young entries are left alone: a live gateway may still settle them.
    young = reconcile(conf)
    expect(" 0 published, 0 released" in young or " 0 older than" in young,
           "reconcile touched entries younger than the delivery timeout")
    time.sleep(6.5)  # past 2 x message_timeout_ms
    confirmed, published, released = reconciled(reconcile(conf, "--policy", policy))
    eq(confirmed + published + released, left, "every pending reservation settled")
    if policy == "complete":
        expect(published > 0 and released == 0, "complete publishes what is missing from the topic, "
               "releases nothing: %d published, %d released" % (published, released))
    else:
        expect(released > 0 and published == 0, "release releases what is missing from the topic, "
               "publishes nothing: %d published, %d released" % (published, released))
    verify(conf, load)  # with buckets, also: no units left in transit
    again = reconcile(conf, "--policy", policy)
    expect("0 older than" in again, "second reconcile found work")
    expect("transfers" not in again, "second reconcile found transfers: " + again)


@test
def gateway_killed_with_buckets_then_reconciled():
    """The same crash with buckets = 4 and little stock, so buckets run dry
    and units move between them while the gateway dies: reconcile settles
    the ledgers and finishes any transfer cut in half; verify checks that no
    unit was sold twice or left stranded."""
    crash_then_reconcile("cb", "complete", buckets=4, units=1000)


@test
def gateway_killed_then_reconciled_complete():
    crash_then_reconcile("cc", "complete")


@test
def gateway_killed_then_reconciled_release():
    crash_then_reconcile("cr", "release")


def reconcile_metrics(port, token):
    """The reconcile counters of one gateway's metrics page, by name
    (labels kept: flashgate_reconcile_orders_total{outcome="published"})."""
    c = Conn(port)
    try:
        c.send(request("GET", "/admin/v1/metrics", None, {"Authorization": "Bearer " + token}))
        r = c.read()
    finally:
        c.close()
    eq(r.status, 200, "metrics page")
    return {line.split()[0]: int(line.split()[1]) for line in r.body.splitlines()
            if line.startswith("flashgate_reconcile_")}


@test
def gateway_killed_then_settled_by_the_gateways_left():
    """No operator: a gateway is killed mid-sale (buckets = 4, so units may
    be moving between buckets as it dies; whether the kill cuts a transfer
    is chance), and the two instances that go on serving settle what it
    left by themselves (reconcile.interval_ms): every old reservation
    confirmed or published, every cut transfer finished, the ledgers empty
    within seconds of the entries turning old. Both instances try a pass
    every 300 ms on the same Redis; the pass lock lets one run at a time,
    and the topic holds each order once. The counters on the two metrics
    pages add up to exactly what the crash left."""
    prefix, token = "sa", "s3cret-autorec-token-42"
    # Passes every 300 ms; an entry is old after 2 x 1500 ms. The gateway to
    # be killed holds each record 200 ms before sending it, so that a few
    # hundred orders are between Redis and Kafka when it dies, on any machine.
    dead = ENV.write_config("sa-dead.conf", kafka__message_timeout_ms=1500, redis__timeout_ms=500,
                            redis__buckets=4, reconcile__interval_ms=0, kafka__linger_ms=200)
    ENV.load_stock(dead, stock(prefix, units=1000))
    load, killed_at = killed_mid_sale(dead, prefix, 4)
    pending, cut = pending_total(), transfers_in_flight(prefix, 4)
    print("left by the crash: %d reservations pending, %d transfers cut" % (pending, cut))
    expect(pending > 0, "the crash left no reservation pending: nothing to settle")

    ports = (ENV.gw_port, ENV.gw_port + 1)
    survivors = []
    for i, port in enumerate(ports):
        conf = ENV.write_config("sa-%d.conf" % i, kafka__message_timeout_ms=1500, redis__timeout_ms=500,
                                redis__buckets=4, reconcile__interval_ms=300, server__port=port,
                                order__node_id=10 + i, server__admin_token=token)
        survivors.append(Gateway(ENV, conf, port=port))
        GATEWAYS.append(survivors[-1])
    deadline = killed_at + 30
    while (pending_total() or transfers_in_flight(prefix, 4)) and time.time() < deadline:
        time.sleep(0.2)
    settled_in = time.time() - killed_at
    eq(pending_total(), 0, "reservations still pending %.1f s after the crash" % settled_in)
    print("settled by the gateways left %.1f s after the crash" % settled_in)
    time.sleep(0.5)  # the last pass's counters are published after it ends
    m = [reconcile_metrics(port, token) for port in ports]
    print("reconcile counters of the two instances: %s" % m)
    settled = sum(x.get('flashgate_reconcile_orders_total{outcome="%s"}' % o, 0)
                  for x in m for o in ("confirmed", "published"))
    eq(settled, pending, "orders the passes confirmed or published")
    eq(sum(x["flashgate_reconcile_orders_total{outcome=\"released\"}"] for x in m), 0, "released (policy complete)")
    eq(sum(x["flashgate_reconcile_transfers_total"] for x in m), cut, "transfers the passes finished")
    for g in survivors:
        eq(g.stop(), 0, "a survivor's exit status after SIGTERM")
    verify(dead, load)  # each order once in the topic; sold == the topic; nothing in transit
    # The command line waits for a running pass, and cuts a resting one.
    ENV.redis("SET", "fg:reconcile:lock", "run test-holder", "PX", "1500")
    t0 = time.time()
    again = reconcile(dead, "--min-age-ms", "0")
    expect("waiting for another pass (run test-holder)" in again and time.time() - t0 >= 1.0,
           "reconcile did not wait for the pass holding the lock: " + again)
    expect("0 older than" in again and "transfers" not in again, "reconcile found work: " + again)
    ENV.redis("SET", "fg:reconcile:lock", "rest test-holder", "PX", "60000")
    t0 = time.time()
    again = reconcile(dead, "--min-age-ms", "0")
    expect("waiting" not in again and time.time() - t0 < 5, "reconcile waited for a resting lock: " + again)
    eq(ENV.redis("EXISTS", "fg:reconcile:lock"), "0", "the lock after the command's pass")


@test
def gateway_killed_mid_pass_lets_go_of_the_lock_within_its_lease():
    """A gateway killed in the middle of its reconcile pass (claiming and
    publishing 5,000 entries a crash left) holds fg:reconcile:lock only for
    what is left of its lease (15 s + 2 x redis.timeout_ms; the pass renews
    it as it goes), not for the longest pass a live holder could make
    (minutes): another instance's pass then finishes the job. Every entry
    is settled and its order is in the topic; an order the dead pass had
    sent may be there twice (consumers deduplicate by order_id, README)."""
    sku, n = "lz1", 5000
    lease_ms = 15000 + 2 * 500
    conf = ENV.write_config("lz.conf", kafka__message_timeout_ms=1500, redis__timeout_ms=500,
                            reconcile__interval_ms=300)
    ENV.load_stock(conf, [(sku, n, 5)])
    # What crashed gateways leave (fault injection into the real Redis): n
    # reservations an hour old that never reached the topic.
    old_ms = int(time.time() * 1000) - 3600 * 1000
    ENV.redis("EVAL", "for i = 1, tonumber(ARGV[1]) do "
              "redis.call('HSET', KEYS[1], string.format('00000000%08x', 0x1ea5e000 + i), 'lz' .. i .. ' 1 ' .. ARGV[2]) "
              "redis.call('HINCRBY', KEYS[3], 'lz' .. i, 1) end "
              "redis.call('HINCRBY', KEYS[2], 'stock', -tonumber(ARGV[1])) "
              "return redis.call('HINCRBY', KEYS[2], 'sold', tonumber(ARGV[1]))",
              "3", "fg:{%s}:pending" % sku, "fg:{%s}" % sku, "fg:{%s}:users" % sku, str(n), str(old_ms))
    claimed = ("local c = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do "
               "if string.sub(v, 1, 2) == 'C ' then c = c + 1 end end return c")
    holder = start_gateway(conf)
    deadline = time.time() + 30
    while int(ENV.redis("EVAL", claimed, "1", "fg:{%s}:pending" % sku)) == 0 and time.time() < deadline:
        time.sleep(0.05)
    lock = ENV.redis("GET", "fg:reconcile:lock")
    holder.proc.kill()
    holder.proc.wait()
    killed_at = time.time()
    ttl = int(ENV.redis("PTTL", "fg:reconcile:lock"))
    left = int(ENV.redis("HLEN", "fg:{%s}:pending" % sku))
    print("killed mid-pass with %d of %d entries left; lock %r held for %d ms more" % (left, n, lock, ttl))
    expect(lock.startswith("run ") and left > 0, "the pass was not under way at the kill: %r, %d left" % (lock, left))
    expect(0 < ttl <= lease_ms, "the dead holder's lock lives %d ms more, not within its lease" % ttl)

    other = ENV.write_config("lz-2.conf", kafka__message_timeout_ms=1500, redis__timeout_ms=500,
                             reconcile__interval_ms=300, server__port=ENV.gw_port + 1, order__node_id=11)
    gw = Gateway(ENV, other, port=ENV.gw_port + 1)
    GATEWAYS.append(gw)
    deadline = killed_at + lease_ms / 1000 + 60
    while int(ENV.redis("HLEN", "fg:{%s}:pending" % sku)) and time.time() < deadline:
        time.sleep(0.2)
    settled_in = time.time() - killed_at
    eq(ENV.redis("HLEN", "fg:{%s}:pending" % sku), "0", "entries still pending %.1f s after the kill" % settled_in)
    print("settled by the other instance %.1f s after the holder died" % settled_in)
    eq(gw.stop(), 0, "the other instance's exit status after SIGTERM")
    ids = {"00000000%08x" % (0x1ea5e000 + i) for i in range(1, n + 1)}
    seen = [v["order_id"] for _, v in ENV.topic_records() if v["order_id"] in ids]
    eq(len(set(seen)), n, "orders of the entries in the topic")
    print("%d of them twice (sent by the dead pass after the other's scan)" % (len(seen) - n))
    s = ENV.stock(conf, sku)
    eq((s["stock"], s["sold"], s["pending"]), (0, n, 0), "the books")


def after_failure():
    """Never leave a gateway running or a service paused for the next test."""
    stop_leftover_gateways()
    for name in ("kafka", "redis"):
        try:
            os.kill(pid_of(name), signal.SIGCONT)
        except OSError:
            pass
    services_up()


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "faults", after_failure))
