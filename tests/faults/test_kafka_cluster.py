"""flashgate on the Kafka a platform runs: three brokers, the orders topic
at replication factor 3 with min.insync.replicas 2, a quorum of three
dedicated controllers (services.sh kafka-cluster-up, started by
scripts/run-kafka-cluster-faults.sh). Each scenario is a sale under
load during which brokers are killed, hung (SIGSTOP) or restarted, then
reconcile and flashload --verify --reconciled: no unit oversold, no 202
lost, no order twice, stock consumed == units in the topic, the pending
ledger empty. Each prints what the load saw and how long the gateway
took to take orders again once the fault was over.

Records wait up to 10 s for their acknowledgement here
(kafka.message_timeout_ms): a leader that dies is replaced after the
brokers' 3 s session timeout, and an order should wait that out, not fail.

Run: make test-faults-cluster  (prints "kafka cluster: N passed, N failed")"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_faults import (ENV, SERVICES, Load, expect, post_order, run_tests, settle, start_gateway,  # noqa: E402
                         stock, stop_leftover_gateways)

TESTS = []
BROKERS = (1, 2, 3)
CONTROLLERS = (100, 101, 102)
BOOTSTRAP = ",".join("127.0.0.1:%d" % (int(os.environ["FG_KAFKA_CLUSTER_PORT"]) + i) for i in range(3))


def test(fn):
    TESTS.append(fn)
    return fn


def cluster(cmd):
    r = subprocess.run([SERVICES, "kafka-cluster-" + cmd], capture_output=True, text=True, timeout=300)
    expect(r.returncode == 0, "services.sh kafka-cluster-%s failed:\n%s%s" % (cmd, r.stdout, r.stderr))
    sys.stdout.write(r.stdout)


def active_controller():
    """The controller quorum's leader, by the brokers (None if none answers)."""
    r = subprocess.run([SERVICES, "kafka-cluster-controller"], capture_output=True, text=True, timeout=60)
    return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else None


def node_pid(node):
    with open(os.path.join(ENV.run_dir, "kcluster", str(node), "kafka.pid")) as f:
        return int(f.read().strip())


def partitions():
    """{partition: (leader, [in-sync replicas])} by the brokers that answer."""
    r = subprocess.run(["kcat", "-b", BOOTSTRAP, "-L", "-t", ENV.topic, "-m", "5"],
                       capture_output=True, text=True, timeout=30)
    out = {}
    for line in r.stdout.splitlines():
        f = line.replace(",", " ").split()
        if f[:1] == ["partition"]:
            isrs = f[f.index("isrs:") + 1:]
            out[int(f[1])] = (int(f[3]), [int(b) for b in isrs])
    return out


def running(pid):
    """A process that has not exited (a zombie has)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(what, cond, timeout_s):
    """Seconds until cond() held; fails the test after timeout_s."""
    t0 = time.time()
    while not cond():
        expect(time.time() - t0 < timeout_s, "%s: not within %d s (partitions: %s)" % (what, timeout_s, partitions()))
        time.sleep(0.2)
    return time.time() - t0


def cluster_config():
    return ENV.write_config(kafka__brokers=BOOTSTRAP, kafka__message_timeout_ms=10000, redis__timeout_ms=500,
                            redis__reconnect_ms=100, server__drain_timeout_ms=15000)


def recovered(prefix, timeout_s=60):
    """Seconds until a new order is accepted (fails after timeout_s)."""
    t0, seen = time.time(), []
    while time.time() - t0 < timeout_s:
        seen.append(post_order(ENV.gw_port, "after", prefix + "after").status)
        if seen[-1] == 202:
            return time.time() - t0
        time.sleep(0.2)
    expect(False, "no order accepted within %d s after the fault (answers: %s)" % (timeout_s, sorted(set(seen))))


def report(load, what, took):
    print("%s: accepted %d, 503 %d, timeouts %d; an order accepted again %.1f s after the fault was cleared"
          % (what, load.count("202 accepted"), load.count("503"), load.count("timeouts"), took))


def sale_through(prefix, fault, heal, seconds=10, connections=128):
    """A sale of 800 orders/s for `seconds`; fault() two seconds in, heal()
    after the load; then the time until an order is accepted again, the
    cluster back in sync, a clean stop, reconcile and verify. Returns the
    finished load and that time."""
    conf = cluster_config()
    ENV.load_stock(conf, stock(prefix))
    gw = start_gateway(conf)
    load = Load(conf, prefix, 4, seconds=seconds, connections=connections)
    time.sleep(2)
    fault()
    load.wait()
    heal()
    took = recovered(prefix)
    cluster("up")  # every node back and every replica in sync, for what follows
    expect(load.count("timeouts") == 0, "no request hung past flashload's timeout")
    expect(gw.stop() == 0, "gateway exits 0")
    settle(conf, load)
    return load, took


def replace_leader(victim, sig, state):
    """Sends sig to partition 0's leader victim and waits until another
    broker leads it; the seconds that took go in state["elected_s"]."""
    os.kill(node_pid(victim), sig)
    state["elected_s"] = wait_until("a new leader for partition 0",
                                    lambda: partitions().get(0, (victim,))[0] not in (victim, -1), 30)


@test
def partition_leader_killed_then_restarted():
    """The leader of partition 0 is killed (SIGKILL) mid-sale. Another
    in-sync replica takes the partition over within the session timeout
    and the producer moves to it: the orders waiting on the dead leader are
    acknowledged by the new one (the idempotent producer writes each once),
    none fails. The killed broker comes back as a follower."""
    victim = partitions()[0][0]
    state = {}
    load, took = sale_through("lk", lambda: replace_leader(victim, signal.SIGKILL, state), lambda: cluster("up"))
    print("partition 0's leader %d killed; a new leader in %.1f s" % (victim, state["elected_s"]))
    report(load, "leader killed", took)
    expect(load.count("503") == 0, "orders failed while a leader was replaced: %d" % load.count("503"))


@test
def partition_leader_hung_then_resumed():
    """The same leader hangs instead (SIGSTOP: its connections stay open,
    nothing answers). The controller fences it once its heartbeats stop,
    a follower takes over, and the producer's requests to the hung broker
    time out (socket.timeout.ms, a third of message_timeout_ms: at
    librdkafka's default of 60 s, 49-96 orders of this sale failed) and go
    again to the new leader: none fails. On SIGCONT the old leader finds
    itself fenced, truncates to the new leader's log and follows."""
    victim = partitions()[0][0]
    state = {}
    load, took = sale_through("lh", lambda: replace_leader(victim, signal.SIGSTOP, state),
                              lambda: os.kill(node_pid(victim), signal.SIGCONT))
    print("partition 0's leader %d hung; a new leader in %.1f s" % (victim, state["elected_s"]))
    report(load, "leader hung", took)
    expect(load.count("503") == 0, "orders failed while a hung leader was replaced: %d" % load.count("503"))


@test
def in_sync_set_shrinks_below_min_insync_then_grows():
    """One broker stopped: every partition keeps two in-sync replicas and
    the sale goes on. A second stopped: one replica left, below
    min.insync.replicas, and the brokers refuse writes
    (NOT_ENOUGH_REPLICAS): orders are answered 503 once their records time
    out, their units released (or, if a record may have been written,
    left to reconcile), and nothing accepted is lost. Both resumed, the set
    grows back and the sale goes on by itself."""
    keep = partitions()[0][0]
    stopped = [b for b in BROKERS if b != keep]
    state = {}

    def shrink():
        os.kill(node_pid(stopped[0]), signal.SIGSTOP)
        wait_until("two in-sync replicas everywhere",
                   lambda: all(len(isr) == 2 and leader in isr for leader, isr in partitions().values()), 30)
        ok = sum(post_order(ENV.gw_port, "two-isr-%d" % i, "isafter").status == 202 for i in range(5))
        state["with_two"] = ok
        os.kill(node_pid(stopped[1]), signal.SIGSTOP)
        state["one_isr_s"] = wait_until("one in-sync replica",
                                        lambda: all(isr == [keep] for _, isr in partitions().values()), 30)

    def grow():
        for b in stopped:
            os.kill(node_pid(b), signal.SIGCONT)

    load, took = sale_through("is", shrink, grow, seconds=16)
    print("with two in-sync replicas: %d of 5 orders accepted; one replica left %.1f s after the second stop"
          % (state["with_two"], state["one_isr_s"]))
    report(load, "in-sync set shrunk", took)
    expect(state["with_two"] == 5, "orders accepted with two in-sync replicas: %d of 5" % state["with_two"])
    expect(load.count("503") > 0, "orders refused below min.insync.replicas")


def loopback_drop(port, on):
    """Drops every TCP packet to or from port on the loopback (on), or
    stops dropping them: an established connection freezes with nothing
    closed or reset, as a partition between two hosts does; once healed,
    TCP's retransmissions go through. Only in the suite's own network
    namespace: the host's rules are never touched."""
    expect(os.environ.get("FG_NETNS") == "1",
           "the partition needs the suite's private network namespace (scripts/run-kafka-cluster-faults.sh "
           "as root makes it): not putting iptables rules on the host's loopback")
    for direction in ("--dport", "--sport"):
        r = subprocess.run(["iptables", "-I" if on else "-D", "OUTPUT", "-o", "lo", "-p", "tcp", direction,
                            str(port), "-j", "DROP"], capture_output=True, text=True, timeout=30)
        expect(r.returncode == 0, "iptables %s: %s" % ("insert" if on else "delete", r.stderr))


@test
def gateway_cut_off_from_one_broker_then_healed():
    """A network partition between the gateway and one broker only: every
    packet to and from that broker's client port is dropped (iptables on
    the loopback, both directions), while its replication listener and the
    controller still reach it. So nothing fences it: it keeps leading its
    partitions, and no producer can reach them. The orders whose records
    go there wait out message_timeout_ms and are answered 503 (units
    released, or left to reconcile when a request may have been written);
    orders for the other brokers' partitions are accepted throughout. Once
    healed, the producer's connections come back by themselves. Faithful
    where a TCP proxy would not be: nothing is closed, as with a cable cut,
    and the client sees the broker's own address, not a stand-in's."""
    # Earlier scenarios may have left one broker leading everything.
    cluster("balance")
    wait_until("leadership spread over the brokers", lambda: len({l for l, _ in partitions().values()}) > 1, 30)
    victim = partitions()[0][0]
    port = int(os.environ["FG_KAFKA_CLUSTER_PORT"]) + victim - 1
    led = sorted(p for p, (leader, _) in partitions().items() if leader == victim)
    state = {}

    def cut():
        loopback_drop(port, True)
        state["cut"] = True
        time.sleep(6)
        state["during"] = partitions()

    def heal():
        loopback_drop(port, False)
        state["cut"] = False

    try:
        # Enough connections that shoppers waiting on the cut-off broker
        # (10 s each) leave others to buy from the rest.
        load, took = sale_through("np", cut, heal, seconds=16, connections=6000)
    finally:
        if state.get("cut"):
            loopback_drop(port, False)
    print("broker %d (partitions %s) cut off from its clients; 6 s in, the leaders: %s"
          % (victim, led, {p: l for p, (l, _) in state["during"].items()}))
    report(load, "one broker cut off", took)
    expect(all(state["during"][p][0] == victim for p in led),
           "the cut-off broker kept its leaderships (the controller still hears it): %s" % state["during"])
    expect(load.count("503") > 0, "orders for the cut-off broker's partitions were refused once they timed out")
    unsent = int(load.out.split("not sent: ")[1].split()[0]) if "not sent: " in load.out else 0
    expect(unsent == 0, "every order was sent (%d were not: too few connections)" % unsent)
    expect(load.count("202 accepted") > 4000, "orders for the other partitions accepted throughout: %d"
           % load.count("202 accepted"))


@test
def controller_killed_mid_sale():
    """The active controller is killed (SIGKILL) mid-sale: the other two
    controllers elect a new leader of the quorum, the brokers go on
    leading what they led, and the sale goes on. Then a partition leader
    is killed too: only a working controller can move its partitions, and
    the new one does, so no order fails. Both come back after the sale."""
    victim = active_controller()
    expect(victim in CONTROLLERS, "an active controller among %s: %s" % (CONTROLLERS, victim))
    state = {}

    def kill():
        os.kill(node_pid(victim), signal.SIGKILL)
        state["failover_s"] = wait_until("another controller leading the quorum",
                                         lambda: active_controller() not in (victim, None), 60)
        state["new"] = active_controller()
        leader = partitions()[0][0]
        replace_leader(leader, signal.SIGKILL, state)
        state["broker"] = leader

    load, took = sale_through("ck", kill, lambda: cluster("up"), seconds=20)
    print("controller %d killed; controller %d led the quorum %.1f s later; then broker %d, partition 0's "
          "leader, killed: a new leader in %.1f s"
          % (victim, state["new"], state["failover_s"], state["broker"], state["elected_s"]))
    report(load, "controller and then a leader killed", took)
    expect(load.count("503") == 0, "orders failed across the controller's failover: %d" % load.count("503"))


@test
def rolling_restart_of_the_brokers():
    """Each broker in turn is stopped (SIGTERM: a controlled shutdown
    that hands its leaderships over first) and started again, each back in
    sync before the next goes, all during one sale."""
    def roll():
        for b in BROKERS:
            os.kill(node_pid(b), signal.SIGTERM)
            pid = node_pid(b)
            wait_until("broker %d stopped" % b, lambda: not running(pid), 60)
            cluster("up")

    load, took = sale_through("rr", roll, lambda: None, seconds=40)
    report(load, "rolling restart", took)
    expect(load.count("503") == 0, "orders failed during the rolling restart: %d" % load.count("503"))


def after_failure():
    """Never leave a gateway running, a broker hung or cut off for the next test."""
    stop_leftover_gateways()
    if os.environ.get("FG_NETNS") == "1":
        subprocess.run(["iptables", "-F", "OUTPUT"], capture_output=True, timeout=30)
    for node in BROKERS + CONTROLLERS:
        try:
            os.kill(node_pid(node), signal.SIGCONT)
        except OSError:
            pass
    cluster("up")


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "kafka cluster", after_failure))
