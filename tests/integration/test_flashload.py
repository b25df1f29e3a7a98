"""flashload's own integration tests, against a real flashgate, redis-server
and Kafka broker (scripts/run-integration-tests.sh starts and stops them):
traffic profiles, T0, threads, retries with Idempotency-Keys, the malformed
mix, the JSON and HTML reports (the HTML one rendered in headless
Chromium), the capacity search and the verification table.

Run: scripts/run-integration-tests.sh  (prints "flashload: N passed, N failed")"""

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib

from harness import BIN, ROOT, Env, Gateway, eq, expect, orphaned_answers, run_tests, signing_key_path

ENV = Env()
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def path(name):
    return os.path.join(ENV.run_dir, name)


def flashload(*args, timeout=300, sign=True):
    """flashload with args; its shoppers' tokens signed with the run's key
    unless sign is False."""
    signing = ["--sign-key", signing_key_path()] if sign else []
    r = subprocess.run([os.path.join(BIN, "flashload")] + signing + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(r.stdout)
    return r


def write_profile(name, text):
    p = path(name)
    with open(p, "w") as f:
        f.write(text)
    return p


def verified_run(conf, name, *args):
    """flashload --verify against a gateway started on conf for the run;
    asserts it passed and returns its stdout and JSON report."""
    report = path(name + ".json")
    with Gateway(ENV, conf):
        r = flashload("--target", "127.0.0.1:%d" % ENV.gw_port, "--quiet", "--verify", "--config", conf,
                      "--json", report, *args)
    eq(r.returncode, 0, "flashload --verify (stderr: %s)" % r.stderr[-2000:])
    with open(report) as f:
        return r.stdout, json.load(f)


def load_profile_stock(conf, profile):
    csv = path(os.path.basename(profile) + ".csv")
    r = flashload("--profile", profile, "--write-stock", csv)
    eq(r.returncode, 0, "--write-stock (stderr: %s)" % r.stderr)
    ENV.flashgate(conf, "stock", "load", csv)


SALE = """
[run]
connections = 48
timeout = 5s
seed = 3

[stage warm]
duration = 1s
rate = 200

[stage open]
; a step: nothing in 0 s, then the peak
duration = 0s
from = 200
to = 1500

[stage peak]
duration = 2s
rate = 1500

[stage fall]
duration = 1s
from = 1500
to = 100

[catalogue]
sku_prefix = %(prefix)s
zipf = 0.99

[class hot]
count = 2
stock = 40
per_user_limit = 1

[class rest]
count = 8
stock = 100000
per_user_limit = 50

[users]
count = 2000
prefix = %(prefix)su

[retries]
max = 3
backoff = 20ms

[mix]
duplicate_share = 0.05
malformed_share = 0.03
malformed_kinds = all
"""


def run_sale(prefix, *outputs):
    """The SALE profile with SKUs PREFIX1..10 against a fresh gateway, verified;
    outputs are extra flashload options (--json FILE, --html FILE)."""
    conf = ENV.write_config()
    profile = write_profile(prefix + ".ini", SALE % {"prefix": prefix})
    load_profile_stock(conf, profile)
    with Gateway(ENV, conf):
        r = flashload("--target", "127.0.0.1:%d" % ENV.gw_port, "--profile", profile, "--quiet",
                      "--verify", "--config", conf, *outputs)
    eq(r.returncode, 0, "flashload --verify exit status (stderr: %s)" % r.stderr[-2000:])
    return conf


@test
def profile_sale_verified_with_json_report():
    """A profile with a step and a ramp, hot SKUs with little stock, double
    clicks, retries and every malformed kind: the schedule is kept to the
    request, every malformed request gets its status, and --verify passes
    with the key and malformed checks in its table."""
    report = path("sale.json")
    conf = run_sale("ps", "--json", report)
    with open(report) as f:
        j = json.load(f)
    # 200 + 3000 + 800 first tries, evenly spaced (uniform arrivals).
    eq(j["scheduled"], 4000, "scheduled requests")
    eq([s["name"] for s in j["stages"]], ["warm", "open", "peak", "fall"], "stages in file order")
    eq([s["scheduled"] for s in j["stages"]], [200, 0, 3000, 800], "per-stage schedule")
    eq(j["orders"]["total"] + sum(m["sent"] for m in j["malformed"].values()), 4000,
       "every arrival is an order or a malformed request")
    eq(j["offered"], 4000 + j["orders"]["double_clicks"] + j["orders"]["retries"],
       "offered = arrivals + double clicks + retries")
    eq(j["unsent"], 0, "nothing left unsent")
    eq(sum(s["answered"] for s in j["seconds"]), j["requests"], "per-second series adds up")
    expect(len(j["seconds"]) >= 4, "one entry per second (%d)" % len(j["seconds"]))
    expect(j["orders"]["double_clicks"] > 50, "double clicks were sent")
    for kind, m in j["malformed"].items():
        expect(m["sent"] > 0, "malformed kind %s was sent" % kind)
        eq(m["ok"], m["sent"], "malformed %s answered %d" % (kind, m["expected_status"]))
    o = j["orders"]
    eq(o["accepted"] + o["refused"] + o["failed"] + o["abandoned"], o["total"], "every order settled")
    eq(o["key_conflicts"], 0, "no key answered with two order ids")
    for sku in ("ps1", "ps2"):
        s = ENV.stock(conf, sku)
        eq((s["stock"], s["sold"]), (0, 40), "hot SKU %s sold out exactly" % sku)
    checks = {c["check"]: c["ok"] for c in j["verify"]["checks"]}
    expect(all(checks.values()), "verification: %s" % checks)
    expect("each Idempotency-Key made at most one order" in checks, "key check in the table")
    expect("every malformed request refused as it must be" in checks, "malformed check in the table")
    records = [v for _, v in ENV.topic_records() if v["sku"].startswith("ps")]
    eq(len(records), o["accepted"], "orders in the topic")
    expect(all(v.get("idempotency_key", "").startswith("fl") for v in records),
           "every record carries its Idempotency-Key")


def decode_png_colours(png):
    """Counts of each RGB colour in an 8-bit RGB/RGBA PNG (what Chromium's
    --screenshot writes); enough of PNG to read back a rendered page."""
    with open(png, "rb") as f:
        data = f.read()
    expect(data[:8] == b"\x89PNG\r\n\x1a\n", "screenshot is a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            expect(depth == 8 and ctype in (2, 6) and interlace == 0, "8-bit RGB(A) PNG")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    counts = {}
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, bpp):
            px = bytes(line[x:x + 3])
            counts[px] = counts.get(px, 0) + 1
        prev = line
    return counts


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


@test
def html_report_renders_its_charts_in_chromium():
    """The HTML report, opened from a file in headless Chromium with the
    network off: three SVG charts with drawn series, the stage and
    verification tables, no scripts; the screenshot shows the series'
    colours well beyond their legend swatches."""
    chromium = shutil.which("chromium")
    expect(chromium, "chromium is installed (scripts/setup.sh installs it)")
    html = path("report.html")
    run_sale("hr", "--html", html)
    with open(html) as f:
        text = f.read()
    expect("<script" not in text and "http://" not in text and "https://" not in text,
           "self-contained: no scripts, nothing fetched")
    profile_dir = path("chromium-profile")
    dom = subprocess.run([chromium] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile_dir,
                                                        "--enable-logging=stderr", "--v=0",
                                                        "--dump-dom", "file://" + html],
                         capture_output=True, text=True, timeout=120)
    eq(dom.returncode, 0, "chromium --dump-dom (stderr: %s)" % dom.stderr[-1000:])
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    eq(console, [], "no console messages while rendering")
    eq(dom.stdout.count('<svg class="chart"'), 4, "four charts in the rendered DOM")
    expect(dom.stdout.count("<polyline") >= 9, "rate, latency and percentile series drawn")
    # Every chart has data: each polyline has points, each stacked group rects.
    import re
    for m in re.finditer(r'<polyline[^>]*data-series="([^"]*)"[^>]*points="([^"]*)"', dom.stdout):
        expect(len(m.group(2).split()) >= 3, "series %s has points: %r" % (m.group(1), m.group(2)[:80]))
    pct = dom.stdout[dom.stdout.index('id="percentiles"'):]
    pct = pct[:pct.index("</svg>")]
    expect(pct.count("<polyline") == 2 and "99.9%" in pct, "latency by percentile, HDR axis")
    # SALE's stages warm, peak and fall (the 0 s step has no width) on each time chart.
    eq(dom.stdout.count('class="band"'), 9, "stage bands on the three time charts")
    expect('stroke-dasharray' in dom.stdout, "offered is dashed over answered")
    expect('id="meta"' in dom.stdout and 'id="status"' in dom.stdout, "metadata and status tables")
    expect('id="verify"' in dom.stdout and "PASS" in dom.stdout, "verification table")
    png = path("report.png")
    shot = subprocess.run([chromium] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile_dir,
                                                         "--window-size=1040,2700",
                                                         "--screenshot=" + png, "file://" + html],
                          capture_output=True, text=True, timeout=120)
    eq(shot.returncode, 0, "chromium --screenshot (stderr: %s)" % shot.stderr[-1000:])
    artifacts = os.path.join(ROOT, "out", "test-artifacts")
    os.makedirs(artifacts, exist_ok=True)
    shutil.copy(png, os.path.join(artifacts, "flashload-report.png"))
    print("screenshot kept: %s" % os.path.join(artifacts, "flashload-report.png"))
    colours = decode_png_colours(png)
    # Each colour has two 12x12 legend swatches (288 px); the series must
    # add well beyond that, or the charts were not drawn.
    for name, rgb in (("offered/p90", "1f77b4"), ("answered/sold out", "ff7f0e"),
                      ("p50/accepted", "2ca02c"), ("p99/errors", "d62728")):
        n = colours.get(bytes.fromhex(rgb), 0)
        expect(n > 600, "%s (#%s) drawn: %d pixels" % (name, rgb, n))


@test
def bad_profile_stops_with_file_line_and_why():
    """A bad profile line is refused before any connection is made."""
    bad = write_profile("bad.ini", "[run]\nconnections = 8\n\n[stage a]\nduration = 3 seconds\nrate = 10\n")
    r = flashload("--target", "127.0.0.1:1", "--profile", bad)
    eq(r.returncode, 2, "exit status")
    expect("%s:5: [stage a] duration: not a duration" % bad in r.stderr, r.stderr)
    r = flashload("--target", "127.0.0.1:1", "--profile", bad, "--rate", "5")
    eq(r.returncode, 2, "exit status")
    r = flashload("--target", "127.0.0.1:1", "--rate", "100", "--duration", "1s", "--t0", "1000")
    eq(r.returncode, 2, "T0 in the past (stderr: %s)" % r.stderr)
    expect("T0 is" in r.stderr and "in the past" in r.stderr, r.stderr)


@test
def t0_opens_at_the_wall_clock_instant_and_threads_share_the_schedule():
    """Two threads wait for T0, then together send exactly the schedule,
    and the report is anchored at T0."""
    conf = ENV.write_config()
    ENV.load_stock(conf, [("t0a1", 1000000, 1000000)])
    report = path("t0.json")
    with Gateway(ENV, conf):
        t0 = int(time.time() * 1000) + 2500
        began = time.time()
        r = flashload("--target", "127.0.0.1:%d" % ENV.gw_port, "--rate", "1000", "--duration", "2s",
                      "--threads", "2", "--connections", "32", "--skus", "1", "--sku-prefix", "t0a",
                      "--t0", t0, "--quiet", "--json", report)
        took = time.time() - began
    eq(r.returncode, 0, "exit status (stderr: %s)" % r.stderr[-1000:])
    with open(report) as f:
        j = json.load(f)
    eq(j["started_unix_ms"], t0, "the run is anchored at T0")
    eq(j["threads"], 2, "threads")
    eq(j["scheduled"], 2000, "scheduled")
    eq(j["sent"], 2000, "two threads together sent the schedule, no more, no less")
    eq(j["counts"]["202 accepted"], 2000, "all accepted")
    expect(took >= 4.4, "waited for T0 before the 2 s schedule (took %.2f s)" % took)


@test
def open_loop_spreads_over_every_connection_and_target():
    """Below the connections' capacity an open-loop job goes to the
    connection idle longest, so two --target gateways share the load
    evenly. (Taking the one answered last put nearly every order on the
    same few connections, and one gateway of two saw a fifth of the load.)"""
    conf = ENV.write_config("spread-a.conf", order__node_id=1)
    conf_b = ENV.write_config("spread-b.conf", order__node_id=2, server__port=ENV.gw_port + 1)
    ENV.load_stock(conf, [("sprw1", 1000000, 1000000), ("spr1", 1000000, 1000000)])
    targets = ("--target", "127.0.0.1:%d" % ENV.gw_port, "--target", "127.0.0.1:%d" % (ENV.gw_port + 1))
    with Gateway(ENV, conf), Gateway(ENV, conf_b, port=ENV.gw_port + 1):
        # A gateway's first orders wait for its producers to meet the
        # broker (hundreds of ms on a broker just started); while one
        # gateway's connections all wait, the other takes every order.
        warm = flashload(*targets, "--rate", "max", "--requests", "200", "--connections", "16",
                         "--skus", "1", "--sku-prefix", "sprw", "--users", "100000", "--quiet")
        eq(warm.returncode, 0, "warm-up exit status (stderr: %s)" % warm.stderr[-1000:])
        expect("202 accepted 200 " in warm.stdout, "the warm-up orders went to Kafka: %s" % warm.stdout[-600:])
        r = flashload(*targets, "--rate", "500", "--duration", "4s", "--connections", "16", "--skus", "1",
                      "--sku-prefix", "spr", "--users", "100000", "--quiet")
    eq(r.returncode, 0, "exit status (stderr: %s)" % r.stderr[-1000:])
    nodes = {}
    for _, v in ENV.topic_records():
        if v["sku"] == "spr1":
            nodes[v["node_id"]] = nodes.get(v["node_id"], 0) + 1
    print("orders by gateway node: %s" % nodes)
    eq(sum(nodes.values()), 2000, "orders accepted")
    expect(950 <= nodes.get(1, 0) <= 1050, "each gateway took about half: %s" % nodes)


@test
def retries_reuse_the_key_through_overload():
    """A gateway that may hold only two orders in flight answers most of a
    burst 503; shoppers retry with the same Idempotency-Key and backoff,
    and the books still balance: one order per key, every accepted order
    in the topic."""
    conf = ENV.write_config(server__max_inflight=2)
    ENV.load_stock(conf, [("rt%d" % i, 100000, 100000) for i in range(1, 4)])
    _, j = verified_run(conf, "retries", "--rate", "3000", "--duration", "1s", "--connections", "64",
                        "--skus", "3", "--sku-prefix", "rt", "--retries", "8")
    expect(j["counts"]["503"] > 0, "the gateway shed load (%d 503s)" % j["counts"]["503"])
    expect(j["orders"]["retries"] > 0, "shoppers retried")
    o = j["orders"]
    eq(o["accepted"] + o["refused"] + o["failed"] + o["abandoned"], o["total"], "every order settled")
    expect(j["orders"]["accepted_after_retry"] > 0,
           "orders got through on a retry (%d)" % j["orders"]["accepted_after_retry"])
    records = [v for _, v in ENV.topic_records() if v["sku"].startswith("rt")]
    keys = [(v["user_id"], v["idempotency_key"]) for v in records]
    eq(len(set(keys)), len(keys), "no key made two orders")
    eq(len(records), j["orders"]["accepted"], "orders in the topic == accepted")


@test
def abandoning_clients_reset_their_connections_and_the_sale_still_verifies():
    """--abandon 0.4 over a sale that oversubscribes its stock: 4 in 10
    orders' clients reset the connection (RST) if no answer came within
    0-10 ms. The gateway's producer lingers 50 ms, so every order that
    reaches Kafka is still unanswered then: the gateway finds those
    connections gone with the orders in flight, and sells them all the
    same. flashload counts them as
    abandoned, not as answers, and its verification allows one order in
    the topic without a 202 per abandon and no more; the books must still
    balance exactly against Redis."""
    conf = ENV.write_config("abandon.conf", kafka__linger_ms=50)
    ENV.load_stock(conf, [("ab1", 800, 100000), ("ab2", 800, 100000)])
    log_from = ENV.log_size()
    out, j = verified_run(conf, "abandon", "--rate", "2000", "--duration", "2s", "--connections", "64",
                          "--skus", "2", "--sku-prefix", "ab", "--abandon", "0.4")
    o = j["orders"]
    # Sold-out answers beat the 0-10 ms; orders that reach Kafka do not.
    expect(o["abandoned"] > 200, "clients abandoned orders (%d)" % o["abandoned"])
    orphans = orphaned_answers(ENV.log_since(log_from))
    expect(orphans > 0, "the gateway answered orders whose connection was gone (%d)" % orphans)
    eq(j["counts"]["abandoned"], o["abandoned"], "each abandon is one request's outcome")
    eq(o["accepted"] + o["refused"] + o["failed"] + o["abandoned"], o["total"], "every order settled")
    expect("abandoned %d (reset by the client before an answer)" % o["abandoned"] in out, out[-1500:])
    checks = {c["check"]: (c["ok"], c["detail"]) for c in j["verify"]["checks"]}
    expect(all(ok for ok, _ in checks.values()), "verification: %s" % checks)
    records = [v for _, v in ENV.topic_records() if v["sku"] in ("ab1", "ab2")]
    sold = sum(ENV.stock(conf, sku)["sold"] for sku in ("ab1", "ab2"))
    eq(sold, len(records), "units sold == orders in the topic")
    expect(o["accepted"] <= len(records) <= o["accepted"] + o["abandoned"],
           "the topic holds every 202 and at most the abandoned besides (%d accepted, %d in the topic)"
           % (o["accepted"], len(records)))
    eq(sold, 1600, "the oversubscribed stock sold out exactly")


@test
def find_capacity_reports_the_highest_passing_rate():
    """--find-capacity doubles, then bisects, and reports a rate whose own
    step passed the p99 target; every step above it failed or was the
    generator's limit."""
    conf = ENV.write_config()
    report = path("capacity.json")
    with Gateway(ENV, conf):
        # Unknown SKUs: the gateway answers 404 from its cache, so the
        # search measures the front end, quickly.
        r = flashload("--target", "127.0.0.1:%d" % ENV.gw_port, "--find-capacity", "--p99", "50ms",
                      "--step", "1s", "--rate", "250", "--connections", "64", "--skus", "1",
                      "--sku-prefix", "nosuchsku", "--json", report, timeout=600)
    eq(r.returncode, 0, "exit status (stderr: %s)" % r.stderr[-1000:])
    with open(report) as f:
        j = json.load(f)
    expect(j["capacity_rps"] >= 250, "capacity found (%s)" % j["capacity_rps"])
    steps = j["steps"]
    passing = [s for s in steps if s["passed"]]
    expect(any(s["rate"] == j["capacity_rps"] for s in passing), "the reported rate passed its step")
    for s in passing:
        expect(s["p99_us"] <= 50000, "a passing step's p99 is within the target: %s" % s)
    for s in steps:
        if s["rate"] > j["capacity_rps"]:
            expect(not s["passed"], "no faster step passed: %s" % s)
    expect("capacity: %d req/s" % j["capacity_rps"] in r.stdout, r.stdout)


@test
def thresholds_gate_the_run_and_a_run_of_404s_fails():
    """--threshold fails the run (exit 1) naming every threshold missed, and
    the reports show each; a run whose every answer was 404 (the wrong
    target, say) fails though no threshold was given; --p99 outside
    --find-capacity and a threshold the run cannot judge are usage errors."""
    conf = ENV.write_config()
    ENV.load_stock(conf, [("thr1", 1000000, 1000000)])
    base = ("--target", "127.0.0.1:%d" % ENV.gw_port, "--rate", "300", "--duration", "1s", "--skus", "1",
            "--users", "100000", "--quiet")
    report = path("thr.json")
    html = path("thr.html")
    with Gateway(ENV, conf):
        r = flashload(*base, "--sku-prefix", "thr", "--json", report, "--html", html,
                      "--threshold", "p99<30s", "--threshold", "accepted>=999999",
                      "--threshold", "errors<=0", "--threshold", "stage:steady:status:202>=300")
        eq(r.returncode, 1, "one threshold of four missed (stderr: %s)" % r.stderr[-1000:])
        expect("1 threshold missed: accepted>=999999" in r.stderr, r.stderr)
        expect("p99<30s" not in r.stderr, "passing thresholds are not named as missed: %s" % r.stderr)
        expect("thresholds: 1 of 4 missed" in r.stdout, r.stdout[-1500:])
        expect("FAIL  accepted>=999999" in r.stdout and "PASS  errors<=0" in r.stdout, r.stdout[-1500:])
        with open(report) as f:
            j = json.load(f)
        eq([(t["threshold"], t["ok"]) for t in j["thresholds"]],
           [("p99<30s", True), ("accepted>=999999", False), ("errors<=0", True),
            ("stage:steady:status:202>=300", True)], "thresholds in the JSON report")
        eq(j["thresholds"][1]["observed"], 300, "what accepted came to")
        eq(j["api_answered"], True, "answers came from the order API")
        with open(html) as f:
            page = f.read()
        expect('id="thresholds"' in page and "accepted&gt;=999999" in page, "thresholds in the HTML report")

        live = path("thr.live")
        r = flashload(*base, "--sku-prefix", "thr", "--threshold", "p99<30s", "--threshold", "accepted>=300",
                      "--live-json", live, "--json", report, "--duration", "2s")
        eq(r.returncode, 0, "every threshold held (stderr: %s)" % r.stderr[-1000:])
        with open(live) as f:
            lines = [json.loads(line) for line in f]
        with open(report) as f:
            j = json.load(f)
        eq([(x["t"], x["answered"], x["p99_us"]) for x in lines],
           [(i, x["answered"], x["p99_us"]) for i, x in enumerate(j["seconds"])],
           "--live-json: every second as it finished, as the report has it")
        eq(lines[1]["unix_ms"] - lines[0]["unix_ms"], 1000, "each line stamped with its second")

        # fd:N, a descriptor the caller opened: a pipe a dashboard reads.
        rd, wr = os.pipe()
        proc = subprocess.Popen([os.path.join(BIN, "flashload"), "--sign-key", signing_key_path()] + list(base) +
                                ["--sku-prefix", "thr", "--live-json", "fd:%d" % wr],
                                pass_fds=(wr,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        os.close(wr)
        with os.fdopen(rd) as f:
            piped = [json.loads(line) for line in f]
        eq(proc.wait(timeout=60), 0, "--live-json fd:N (stderr: %s)" % proc.stderr.read()[-500:])
        expect(len(piped) >= 1 and sum(x["answered"] for x in piped) == 300, "the pipe got every second: %s" % piped)

        # Unknown SKUs: every answer is the gateway's 404.
        r = flashload(*base, "--sku-prefix", "nosuchsku", "--json", report)
        eq(r.returncode, 1, "a run of 404s (stderr: %s)" % r.stderr[-1000:])
        expect("not one answer came from an order API" in r.stderr, r.stderr)
        with open(report) as f:
            eq(json.load(f)["api_answered"], False, "api_answered in the JSON report")

    for args, why in ((("--p99", "5ms"), "--p99 is the target of --find-capacity"),
                      (("--threshold", "p99<5"), "a latency needs a unit"),
                      (("--threshold", "status:418<1%"), "status is one of"),
                      (("--threshold", "stage:peak:p99<5ms"), "the profile has no stage 'peak'"),
                      (("--speed", "2"), "--speed is for --replay"),
                      (("--replay", os.path.join(ROOT, "config", "traces", "opening.csv"), "--rate", "5"),
                       "the trace is the schedule"),
                      (("--live-json", "fd:987"), "no such open descriptor")):
        r = flashload(*base, "--sku-prefix", "thr", *args)
        eq(r.returncode, 2, "%s is a usage error (stderr: %s)" % (" ".join(args), r.stderr))
        expect(why in r.stderr, "%s: %s" % (" ".join(args), r.stderr))


@test
def interrupted_run_writes_every_report():
    """SIGINT stops the schedule, waits for the answers due, and writes the
    text, JSON and HTML reports of what ran, marked interrupted (exit 130);
    --verify-only over its accepted log then balances the books."""
    conf = ENV.write_config()
    ENV.load_stock(conf, [("intr1", 1000000, 1000000)])
    report, html, log = path("intr.json"), path("intr.html"), path("intr.accepted")
    for f in (report, html, log):
        if os.path.exists(f):
            os.unlink(f)
    with Gateway(ENV, conf):
        proc = subprocess.Popen([os.path.join(BIN, "flashload"), "--sign-key", signing_key_path(),
                                 "--target", "127.0.0.1:%d" % ENV.gw_port, "--rate", "500", "--duration", "60s",
                                 "--skus", "1", "--sku-prefix", "intr", "--users", "100000", "--quiet",
                                 "--json", report, "--html", html, "--accepted-log", log,
                                 "--verify", "--config", conf],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        proc.send_signal(2)
        out, err = proc.communicate(timeout=30)
        sys.stdout.write(out)
        eq(proc.returncode, 130, "interrupted exit status (stderr: %s)" % err[-1000:])
        expect("INTERRUPTED after" in out, out[:600])
        expect("not verifying" in err, "an interrupted run does not verify: %s" % err)
        with open(report) as f:
            j = json.load(f)
        eq(j["interrupted"], True, "marked interrupted")
        expect(500 <= j["requests"] <= 5000, "what ran was reported: %d answers" % j["requests"])
        eq(j["counts"]["202 accepted"], j["requests"], "every request sent got its answer")
        with open(html) as f:
            expect("interrupted" in f.read(), "the HTML report says interrupted")
        with open(log) as f:
            eq(len(f.read().splitlines()), j["orders"]["accepted"], "the accepted log holds every 202")
        r = flashload("--verify-only", "--accepted-log", log, "--config", conf, "--sku-prefix", "intr")
    eq(r.returncode, 0, "the books of what ran balance (stderr: %s)" % r.stderr[-1000:])


def hdr_percentile(hdr, p):
    """HdrHistogram's percentile over exported buckets, as core/hist.c
    computes it: the highest value equivalent to the first bucket whose
    cumulative count reaches ceil(p% of count), capped at max."""
    b = hdr["buckets"]
    want = max(1, -(-p * hdr["count"] // 100))
    seen = 0
    for k in range(0, len(b), 2):
        seen += b[k + 1]
        if seen >= want:
            idx = b[k]
            if idx < 2048:
                top = idx
            else:
                shift = (idx >> 10) - 1
                top = (((idx & 1023) + 1024) << shift) + (1 << shift) - 1
            return min(top, hdr["max"])
    return hdr["max"]


def summed_buckets(hdrs):
    total = {}
    for h in hdrs:
        b = h["buckets"]
        for k in range(0, len(b), 2):
            total[b[k]] = total.get(b[k], 0) + b[k + 1]
    return total


@test
def three_generators_merge_into_one_sale():
    """Three --shard generators with one --t0 against two gateways are one
    sale: disjoint users, --verify-only over their three accepted logs
    passes every check, and `flashload merge` adds their reports up
    losslessly (the merged histograms are the sum of theirs, bucket by
    bucket), equal in counts to one generator at the same total rate.
    Reports of another sale, or the same shard twice, are refused."""
    conf = ENV.write_config("merge-a.conf", order__node_id=1)
    conf_b = ENV.write_config("merge-b.conf", order__node_id=2, server__port=ENV.gw_port + 1)
    ENV.load_stock(conf, [("mg1", 1000000, 1000000), ("wmg1", 1000000, 1000000)])
    targets = "127.0.0.1:%d,127.0.0.1:%d" % (ENV.gw_port, ENV.gw_port + 1)
    sale = ("--target", targets, "--rate", "900", "--duration", "3s", "--skus", "1", "--sku-prefix", "mg",
            "--users", "30000", "--user-prefix", "mgu", "--connections", "16", "--quiet")
    with Gateway(ENV, conf), Gateway(ENV, conf_b, port=ENV.gw_port + 1):
        warm = flashload("--target", targets, "--rate", "max", "--requests", "200", "--skus", "1",
                         "--sku-prefix", "wmg", "--users", "100000", "--quiet")
        eq(warm.returncode, 0, "warm-up (stderr: %s)" % warm.stderr[-1000:])
        t0 = int(time.time() * 1000) + 3000
        gens = []
        for i in (1, 2, 3):
            args = [os.path.join(BIN, "flashload"), "--sign-key", signing_key_path()] + list(sale) + [
                "--t0", str(t0), "--shard", "%d/3" % i, "--seed", str(i),
                "--json", path("shard%d.json" % i), "--accepted-log", path("shard%d.accepted" % i)]
            gens.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for i, g in enumerate(gens, 1):
            out, err = g.communicate(timeout=120)
            eq(g.returncode, 0, "generator %d (stderr: %s)" % (i, err[-1000:]))

        logs = []
        for i in (1, 2, 3):
            logs += ["--accepted-log", path("shard%d.accepted" % i)]
        r = flashload("--verify-only", *logs, "--config", conf, "--sku-prefix", "mg")
        eq(r.returncode, 0, "the three generators' sale verified as one (stderr: %s)" % r.stderr[-1000:])
        expect("orders in the topic == 202s seen" in r.stdout, "the exact count, not >=: %s" % r.stdout[-2000:])
        r = flashload("--verify-only", "--accepted-log", path("shard1.accepted"), "--config", conf,
                      "--sku-prefix", "mg")
        eq(r.returncode, 1, "one shard's log alone: the others' orders look accepted silently")
        r = flashload("--verify-only", "--accepted-log", path("shard1.accepted"), "--expect-others",
                      "--config", conf, "--sku-prefix", "mg")
        eq(r.returncode, 0, "one shard's log, told of the others (stderr: %s)" % r.stderr[-1000:])
        expect("orders in the topic >= 202s seen" in r.stdout, r.stdout[-2000:])

        users = {}
        for _, v in ENV.topic_records():
            if v["sku"] == "mg1":
                users.setdefault(v["user_id"].split("-")[0], set()).add(v["user_id"])
        eq(sorted(users), ["mgug1", "mgug2", "mgug3"], "each shard's users, and only theirs, named apart")
        eq(sum(len(u) for u in users.values()), len(set().union(*users.values())), "no user in two shards")
        # Then one generator at the total rate, for comparison.
        single = path("single.json")
        r = flashload(*sale, "--t0", "+2s", "--json", single)
        eq(r.returncode, 0, "one generator at the total rate (stderr: %s)" % r.stderr[-1000:])

    shards = []
    for i in (1, 2, 3):
        with open(path("shard%d.json" % i)) as f:
            shards.append(json.load(f))
        eq((shards[-1]["meta"]["shard"], shards[-1]["meta"]["shards"]), (i, 3), "shard %d's meta" % i)
        eq(shards[-1]["scheduled"], 900, "shard %d ran a third of the sale" % i)
    merged = path("merged.json")
    merged_html = path("merged.html")
    r = flashload("merge", *[path("shard%d.json" % i) for i in (1, 2, 3)], "--json", merged, "--html", merged_html,
                  "--threshold", "accepted>=2700", sign=False)
    eq(r.returncode, 0, "merge (stderr: %s)" % r.stderr[-1000:])
    with open(merged) as f:
        m = json.load(f)
    eq(m["meta"]["generators"], 3, "three generators merged")
    for key in ("scheduled", "offered", "sent", "requests"):
        eq(m[key], sum(s[key] for s in shards), "merged %s is the sum" % key)
    eq(m["counts"], {k: sum(s["counts"][k] for s in shards) for k in m["counts"]}, "status counts added")
    eq(m["orders"]["accepted"], 2700, "every order accepted")
    eq(m["stages"][0]["from_rate"], 900, "the stages' rates added up")
    for name in ("latency_us", "service_us", "order_latency_us"):
        got = m[name]["hdr"]
        b = got["buckets"]
        eq(dict(zip(b[0::2], b[1::2])), summed_buckets(s[name]["hdr"] for s in shards),
           "%s: the merged buckets are the sum of the generators'" % name)
        for p, key in ((50, "p50"), (99, "p99"), (99.9, "p999")):
            eq(m[name][key], hdr_percentile(got, p), "%s %s from the merged buckets" % (name, key))
        eq(got["max"], max(s[name]["hdr"]["max"] for s in shards), "%s max" % name)
    eq(sum(s["answered"] for s in m["seconds"]), m["requests"], "the merged per-second series adds up")
    expect(len(m["seconds"]) <= max(len(s["seconds"]) for s in shards) + 1,
           "seconds aligned on T0, not laid end to end (%d)" % len(m["seconds"]))
    with open(single) as f:
        one = json.load(f)
    for key in ("scheduled", "requests"):
        eq(m[key], one[key], "merged %s == one generator's at the same total rate" % key)
    eq(one["orders"]["accepted"], m["orders"]["accepted"], "accepted, merged and single")
    expect(m["latency_us"]["p50"] < 50000 and one["latency_us"]["p50"] < 50000,
           "p50 within noise: merged %d us, single %d us" % (m["latency_us"]["p50"], one["latency_us"]["p50"]))
    with open(merged_html) as f:
        expect("3 reports merged" in f.read(), "the HTML report says what was merged")

    r = flashload("merge", path("shard1.json"), single, sign=False)
    eq(r.returncode, 2, "another sale's report refused (stderr: %s)" % r.stderr)
    expect("another sale" in r.stderr, r.stderr)
    r = flashload("merge", path("shard1.json"), single, "--force", sign=False)
    eq(r.returncode, 0, "--force merges them (stderr: %s)" % r.stderr[-600:])
    r = flashload("merge", path("shard1.json"), path("shard2.json"), path("shard1.json"), sign=False)
    eq(r.returncode, 2, "the same shard twice refused (stderr: %s)" % r.stderr)
    expect("the same shard twice" in r.stderr, r.stderr)
    with open(path("notareport.json"), "w") as f:
        json.dump({"hello": 1}, f)
    r = flashload("merge", path("shard1.json"), path("notareport.json"), sign=False)
    eq(r.returncode, 2, "a file that is not a report (stderr: %s)" % r.stderr)
    expect("not a flashload JSON report" in r.stderr, r.stderr)


def read_trace(p):
    rows = []
    with open(p) as f:
        for line in f:
            if line.startswith("#") or line.startswith("offset"):
                continue
            parts = line.rstrip("\n").split(",")
            rows.append({"offset_ms": float(parts[0]), "user": parts[1], "sku": parts[2], "qty": int(parts[3]),
                         "key": parts[4] if len(parts) > 4 else ""})
    return rows


def shape(orders, user, sku):
    """What a replay must keep of a sale: how many orders each SKU got (by
    rank), how many each shopper placed (as a multiset), the units."""
    per_sku, per_user = {}, {}
    for o in orders:
        per_sku[o[sku]] = per_sku.get(o[sku], 0) + 1
        per_user[o[user]] = per_user.get(o[user], 0) + 1
    return sorted(per_sku.values(), reverse=True), sorted(per_user.values()), sum(o["qty"] for o in orders)


@test
def a_recorded_sale_replays_with_its_shape():
    """`flashload record` turns a past sale's topic into a trace (users and
    keys anonymised, SKUs by name), and --replay sends it again at 2x on
    another catalogue: the same orders per SKU by rank, the same orders per
    shopper, the same units, in half the time, and the books balance. The
    shipped trace loads and writes its catalogue."""
    conf = ENV.write_config()
    profile = write_profile("rca.ini", SALE % {"prefix": "rca"})
    load_profile_stock(conf, profile)
    trace = path("rca.trace.csv")
    with Gateway(ENV, conf):
        r = flashload("--target", "127.0.0.1:%d" % ENV.gw_port, "--profile", profile, "--quiet")
        eq(r.returncode, 0, "the sale to record (stderr: %s)" % r.stderr[-1000:])
        r = flashload("record", "--config", conf, "--sku-prefix", "rca", "--out", trace, sign=False)
        eq(r.returncode, 0, "record (stderr: %s)" % r.stderr[-1000:])
        records = [v for _, v in ENV.topic_records() if v["sku"].startswith("rca")]
        rows = read_trace(trace)
        eq(len(rows), len(records), "one trace line per order in the topic")
        with open(trace) as f:
            text = f.read()
        expect("rcau" not in text, "no user's name in the trace")
        expect(all(len(o["user"]) == 17 and o["user"][0] == "a" for o in rows), "users anonymised: %s" % rows[0])
        eq(sum(1 for o in rows if o["key"]), sum(1 for v in records if v.get("idempotency_key")),
           "every recorded order's key, anonymised")
        eq(shape(rows, "user", "sku"), shape(records, "user_id", "sku"), "the trace has the sale's shape")
        expect(all(rows[i]["offset_ms"] <= rows[i + 1]["offset_ms"] for i in range(len(rows) - 1)), "in time order")

        replay_profile = write_profile("rcb.ini", "[catalogue]\nsku_prefix = rcb\n[class all]\ncount = 10\n"
                                                 "stock = 1000000\nper_user_limit = 100000\n"
                                                 "[users]\nprefix = rcbu\n")
        stock = path("rcb.csv")
        r = flashload("--profile", replay_profile, "--replay", trace, "--write-stock", stock)
        eq(r.returncode, 0, "--write-stock for a trace (stderr: %s)" % r.stderr)
        with open(stock) as f:
            eq(len(f.read().splitlines()) - 1, len({o["sku"] for o in rows}), "one stock line per SKU of the trace")
        ENV.flashgate(conf, "stock", "load", stock)
        report = path("rcb.json")
        r = flashload("--target", "127.0.0.1:%d" % ENV.gw_port, "--profile", replay_profile, "--replay", trace,
                      "--speed", "2", "--quiet", "--verify", "--config", conf, "--json", report)
        eq(r.returncode, 0, "the replay, verified (stderr: %s)" % r.stderr[-1000:])
    with open(report) as f:
        j = json.load(f)
    eq(j["scheduled"], len(rows), "the trace's orders scheduled")
    eq(j["orders"]["accepted"], len(rows), "and accepted")
    eq([s["name"] for s in j["stages"]], ["replay"], "one stage")
    span = rows[-1]["offset_ms"] / 1000.0 / 2
    expect(span - 0.2 <= j["elapsed_s"] <= span + 2.0, "replayed at 2x: %.2f s for a %.2f s trace"
           % (j["elapsed_s"], span * 2))
    print("replay lateness: generator p99 %d us, send lag p99 %d us" % (j["generator_lag_us"]["p99"],
                                                                      j["send_lag_us"]["p99"]))
    replayed = [v for _, v in ENV.topic_records() if v["sku"].startswith("rcb")]
    eq(shape(replayed, "user_id", "sku"), shape(rows, "user", "sku"), "the replay has the trace's shape")

    r = flashload("record", "--config", conf, "--sku-prefix", "nosuchprefix", "--out", path("none.csv"), sign=False)
    eq(r.returncode, 1, "nothing to record (stderr: %s)" % r.stderr)
    expect("no orders of SKUs nosuchprefix" in r.stderr, r.stderr)

    shipped = os.path.join(ROOT, "config", "traces", "opening.csv")
    r = flashload("--replay", shipped, "--write-stock", path("opening.csv"))
    eq(r.returncode, 0, "the shipped trace loads (stderr: %s)" % r.stderr)


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "flashload"))
