"""Small helpers for flashgate's integration tests: a raw HTTP/1.1 client
(so malformed requests can be sent byte for byte), a gateway process
runner, and Redis/Kafka inspection through redis-cli and kcat.

The services themselves (redis-server, the Kafka broker) are real and are
started by scripts/services.sh before these tests run."""

import base64
import hashlib
import hmac
import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, os.environ.get("FG_BIN", "bin"))

# The tests run signed, as a sale does: every gateway they start has
# identity on with this HS256 key (made once per run directory), and every
# order they send carries a token for its body's user_id.
KEY_ID = "t1"


def key_dir():
    return os.path.join(os.environ["FG_RUN_DIR"], "keys")


def signing_key_path():
    """The key file: the gateway verifies with it, flashload signs with it."""
    path = os.path.join(key_dir(), KEY_ID + ".hs256")
    if not os.path.exists(path):
        os.makedirs(key_dir(), exist_ok=True)
        with open(path, "wb") as f:
            f.write(os.urandom(32))
    return path


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs256(claims, kid=KEY_ID, secret=None, header=None):
    """A compact JWT signed with HS256 (the run's key unless secret is given)."""
    if secret is None:
        with open(signing_key_path(), "rb") as f:
            secret = f.read()
    h = header if header is not None else {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def token_for(user, ttl=3600, **claims):
    c = {"sub": user, "exp": int(time.time()) + ttl}
    c.update(claims)
    return jwt_hs256(c)


def _default_user(body):
    try:
        user = json.loads(body).get("user_id")
        ok = isinstance(user, str) and re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", user)
        return user if ok else "anonymous"
    except (ValueError, AttributeError):
        return "anonymous"


class Env:
    def __init__(self):
        self.run_dir = os.environ["FG_RUN_DIR"]
        self.redis_port = int(os.environ["FG_REDIS_PORT"])
        self.kafka = "127.0.0.1:%s" % os.environ["FG_KAFKA_PORT"]
        # The broker's SASL listener (services.sh FG_KAFKA_SASL_PORT), its
        # user flashgate and that user's password.
        self.kafka_sasl = "127.0.0.1:%s" % os.environ.get("FG_KAFKA_SASL_PORT", "")
        self.kafka_sasl_password = os.environ.get("FG_KAFKA_SASL_PASSWORD", "flashgate-sasl-secret")
        # The same over TLS, and the test CA that signed the broker's certificate.
        self.kafka_sasl_ssl = "127.0.0.1:%s" % os.environ.get("FG_KAFKA_SASL_SSL_PORT", "")
        self.kafka_ca = os.path.join(self.run_dir, "kafka", "tls", "ca.pem")
        self.topic = os.environ["FG_TOPIC"]
        self.gw_port = int(os.environ.get("FG_GATEWAY_PORT", "18180"))

    def write_config(self, name="flashgate.conf", **overrides):
        """A gateway config pointing at the test services; overrides are
        'section.key' -> value."""
        values = {
            "identity.keys": os.path.dirname(signing_key_path()),
            "server.port": self.gw_port,
            "server.workers": 2,
            "redis.port": self.redis_port,
            "kafka.brokers": self.kafka,
            "kafka.topic": self.topic,
        }
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        sections = {}
        for key, value in values.items():
            section, name_ = key.split(".")
            sections.setdefault(section, []).append("%s = %s" % (name_, value))
        path = os.path.join(self.run_dir, name)
        with open(path, "w") as f:
            for section, lines in sections.items():
                f.write("[%s]\n%s\n" % (section, "\n".join(lines)))
        return path

    def auth_header(self, user):
        """An Authorization header line (with its CRLF) for user."""
        return "Authorization: Bearer %s\r\n" % token_for(user)

    def redis(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.redis_port), "--raw"] + list(args),
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stock_csv(self, rows, name="stock.csv"):
        path = os.path.join(self.run_dir, name)
        with open(path, "w") as f:
            f.write("sku,stock,per_user_limit\n")
            for sku, stock, limit in rows:
                f.write("%s,%d,%d\n" % (sku, stock, limit))
        return path

    def flashgate(self, conf, *args, check=True, replace=True):
        """flashgate -c conf args. Tests reuse SKU names, so a `stock load`
        starts its SKUs afresh (--replace) unless replace is False."""
        if replace and args[:2] == ("stock", "load") and "--dry-run" not in args:
            args = args[:2] + ("--replace",) + args[2:]
        r = subprocess.run([os.path.join(BIN, "flashgate"), "-c", conf] + list(args),
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError("flashgate %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
        return r

    def load_stock(self, conf, rows):
        self.flashgate(conf, "stock", "load", self.stock_csv(rows))

    def stock(self, conf, sku):
        """`stock show` parsed into a dict of ints (and the sku)."""
        # The first line is the SKU's; a bucketed SKU adds one line per bucket.
        line = self.flashgate(conf, "stock", "show", sku).stdout.strip().splitlines()[0]
        out = {}
        for part in line.split():
            k, v = part.split("=", 1)
            out[k] = v if k == "sku" else int(v)
        return out

    def log_size(self):
        """Where the gateway log (every Gateway's) ends now."""
        p = os.path.join(self.run_dir, "gateway.log")
        return os.path.getsize(p) if os.path.exists(p) else 0

    def log_since(self, offset):
        """The gateway log from offset (a log_size taken earlier)."""
        with open(os.path.join(self.run_dir, "gateway.log")) as f:
            f.seek(offset)
            return f.read()

    def topic_records(self):
        out = subprocess.run(["kcat", "-C", "-b", self.kafka, "-t", self.topic, "-o", "beginning",
                              "-e", "-q", "-f", "%k\t%s\n"],
                             check=True, capture_output=True, text=True, timeout=60)
        records = []
        for line in out.stdout.splitlines():
            if line.strip():
                key, value = line.split("\t", 1)
                records.append((key, json.loads(value)))
        return records


class Gateway:
    """A flashgate process for one test; stopped with SIGTERM."""

    def __init__(self, env, conf, port=None):
        self.env = env
        self.port = port or env.gw_port
        self.log_path = os.path.join(env.run_dir, "gateway.log")
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([os.path.join(BIN, "flashgate"), "-c", conf],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("flashgate exited with %s; see %s" % (self.proc.returncode, self.log_path))
            try:
                if get(self.port, "/healthz").status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        # Not left running: with SO_REUSEPORT it would take a share of the
        # next tests' connections on the same port.
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        raise AssertionError("flashgate did not answer /healthz within 20 s")

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("flashgate did not exit within %d s of SIGTERM" % timeout)
        self.log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None and rc != 0:
            raise AssertionError("flashgate exited %d after SIGTERM; see %s" % (rc, self.log_path))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body)


class Conn:
    """One keep-alive client connection that reads whole responses."""

    def __init__(self, port, timeout=10, source=None):
        """source: the local address to connect from (another loopback
        address plays a load balancer)."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def read(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return Response(status, headers, body.decode())

    def closed_by_server(self, wait=3.0):
        """True when the server closes the connection (EOF or reset)."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def request(method, path, body=None, headers=None):
    """Request bytes. An order (POST /v1/orders) gets a token for its
    body's user_id unless headers name an Authorization (None: send none)."""
    h = {"Host": "localhost"}
    if body is not None:
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body.encode()))
    if method == "POST" and path.startswith("/v1/orders"):
        h["Authorization"] = "Bearer " + token_for(_default_user(body or ""))
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    head = "%s %s HTTP/1.1\r\n%s\r\n" % (method, path, "".join("%s: %s\r\n" % kv for kv in h.items()))
    return (head + (body or "")).encode()


def fresh(name):
    """A SKU name of this run alone."""
    return "%s-%x" % (name, int(time.time() * 1000) & 0xffffffff)


def order_body(user, sku, qty=1):
    return json.dumps({"user_id": user, "sku": sku, "qty": qty})


def get(port, path):
    c = Conn(port, timeout=2)
    try:
        c.send(request("GET", path))
        return c.read()
    finally:
        c.close()


def post_order(port, user, sku, qty=1, headers=None):
    c = Conn(port)
    try:
        c.send(request("POST", "/v1/orders", order_body(user, sku, qty), headers))
        return c.read()
    finally:
        c.close()


def metric(port, name, admin_token, **labels):
    """One sample of the gateway's metrics page (0 when absent). The other
    workers publish their counters each 100 ms tick: wait for one."""
    time.sleep(0.25)
    c = Conn(port, timeout=5)
    try:
        c.send(request("GET", "/admin/v1/metrics", headers={"Authorization": "Bearer " + admin_token}))
        text = c.read().body
    finally:
        c.close()
    want = name + ("{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if labels and key.startswith(name + "{"):
            got = dict(re.findall(r'(\w+)="([^"]*)"', key[len(name):]))
            if got == {k: str(v) for k, v in labels.items()}:
                return float(value)
        elif key == want:
            return float(value)
    return 0.0


def verify_only(conf, accepted_log, prefix, *extra):
    """flashload --verify-only of the orders in accepted_log (SKUs PREFIX1..)
    against Redis and the topic; asserts it passed and returns its report."""
    r = subprocess.run([os.path.join(BIN, "flashload"), "--verify-only", "--accepted-log", accepted_log,
                        "--sku-prefix", prefix, "--config", conf] + list(extra),
                       capture_output=True, text=True, timeout=300)
    sys.stdout.write(r.stdout)
    expect(r.returncode == 0, "verification failed (exit %d): %s" % (r.returncode, r.stderr[-1000:]))
    return r.stdout


def orphaned_answers(log_text):
    """Answers the gateway's workers made after their client's connection
    was gone, from the closing lines in log_text."""
    return sum(int(n) for n in re.findall(r"(\d+) answered after their connection was gone", log_text))


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def run_tests(tests, label, on_failure=None):
    """Runs the named tests (argv) or all, prints one line per test and the
    closing "LABEL: N passed, N failed"; returns the exit status."""
    only = sys.argv[1:]
    passed = failed = 0
    for fn in tests:
        if only and fn.__name__ not in only:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("ok    %-60s %6.2fs" % (fn.__name__, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL  %-60s %6.2fs" % (fn.__name__, time.time() - t0), flush=True)
            traceback.print_exc()
            if on_failure:
                on_failure()
    print("%s: %d passed, %d failed" % (label, passed, failed))
    # Named tests may all live in another file: none run here is no failure.
    return 1 if failed or (passed == 0 and not only) else 0
