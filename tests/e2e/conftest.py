"""Shared fixtures and helpers for eddy's end-to-end tests.

The tests run the real `eddy` binary on loopback and talk to it the way a
user would: raw sockets (the tutorials' own client code), curl, socat, ncat,
http.client. Every server is started on port 0, and readiness is the
`<service> listening on <addr>` log line, never a sleep.

The binary is $EDDY_BIN (relative paths are taken from the repository root),
or build/eddy in the repository.
"""

import contextlib
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

SERVICES = ("echo", "upper", "time", "daytime", "discard", "sink", "hello-raw",
            "http", "static")

# Options that take a value, so a value is not mistaken for a service.
VALUE_OPTIONS = {
    "-H", "--host", "-p", "--port", "-t", "--trigger", "-l", "--log-level",
    "--read-size", "--idle-timeout", "--backlog",
    "--body", "--content-type", "--root", "--max-body", "--header-timeout", "--body-timeout",
    "--send-timeout",
    "--keepalive-timeout", "--access-log", "--max-connections", "--drain-timeout", "--user",
    "--max-request-line", "--max-header-bytes", "--max-headers",
    "-w", "--workers", "--pid-file", "--upgrade-timeout",
}

# Seed 001's logging shape: asctime - name - thread - level - message.
LOG_RE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - eddy - (\S+) - "
    r"(TRACE|DEBUG|INFO|WARNING|ERROR) - (.*)$"
)
LISTEN_RE = re.compile(r" - INFO - (\S+) listening on (\S+)(?:\s|$)")
TRACE_RE = re.compile(r" - TRACE - .*\bepoll fd=(\d+) ([A-Z|]+)")
SANITIZER_RE = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
    r"ThreadSanitizer|MemorySanitizer|runtime error:"
)

TIMEOUT = 5.0  # default for every socket operation and every wait
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
TEST_ALARM = 45  # backstop: no single test may run longer than this


# $EDDY_WRAPPER (e.g. "valgrind --tool=memcheck ...", see `make valgrind`) is
# put in front of every eddy and example command, after any test's prefix.
WRAPPER = shlex.split(os.environ.get("EDDY_WRAPPER", ""))


def eddy_path():
    env = os.environ.get("EDDY_BIN")
    if env:
        p = Path(env)
        return p if p.is_absolute() else (REPO / p)
    return REPO / "build" / "eddy"


@pytest.fixture(scope="session")
def eddy_bin():
    p = eddy_path()
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"eddy binary not found at {p}: build it, or set EDDY_BIN")
    return str(p)


@pytest.fixture(autouse=True)
def _alarm():
    """Fails a test that hangs, even where a timeout was forgotten."""

    def on_alarm(signum, frame):
        pytest.fail(f"test did not finish within {TEST_ALARM} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_ALARM)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ---- addresses -------------------------------------------------------------


def parse_addr(text):
    """'127.0.0.1:80', '[::1]:80' or 'unix:/p' -> (family, sockaddr)."""
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[len("unix:"):]
    if text.startswith("/"):
        return socket.AF_UNIX, text
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, (host, int(port))
    host, _, port = text.rpartition(":")
    return socket.AF_INET, (host, int(port))


def count_services(args):
    n, skip = 0, False
    for a in args:
        if skip:
            skip = False
        elif a in VALUE_OPTIONS:
            skip = True
        elif not a.startswith("-") and a.split("=", 1)[0] in SERVICES:
            n += 1
    return n or 4  # no services: the four built-in defaults


# ---- the server under test ----------------------------------------------------


class Eddy:
    """One running eddy. `listeners` is a list of (service, address text,
    (family, sockaddr)) in log order; `lines` is everything on stderr."""

    def __init__(self, argv, expect, listen_re=None, merge_stdout=False):
        self.argv = argv
        self.expect = expect
        self.listen_re = listen_re or LISTEN_RE
        self.lines = []
        self.cond = threading.Condition()
        self.listeners = []
        self.check_clean = True  # teardown: exit 0, no ERROR, no sanitizer
        self.stopped = False
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            # eddy logs to stderr; the examples print to stdout as well.
            stdout=subprocess.PIPE if merge_stdout else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if merge_stdout else subprocess.PIPE,
            start_new_session=True,
        )
        self.output = self.proc.stdout if merge_stdout else self.proc.stderr
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.output:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        seen = 0
        with self.cond:
            while len(self.listeners) < self.expect:
                for line in self.lines[seen:]:
                    m = self.listen_re.search(line)
                    if m:
                        # The last group is the address; the first the name.
                        self.listeners.append((m[1], m[m.lastindex], parse_addr(m[m.lastindex])))
                seen = len(self.lines)
                if len(self.listeners) >= self.expect:
                    break
                left = deadline - time.monotonic()
                if self.proc.poll() is not None and not self.reader.is_alive():
                    pytest.fail(f"eddy exited with {self.proc.returncode} before "
                                f"listening:\n{self.stderr()}")
                if left <= 0:
                    pytest.fail(f"eddy not ready within {START_TIMEOUT} s "
                                f"({len(self.listeners)}/{self.expect} listeners):\n"
                                f"{self.stderr()}")
                self.cond.wait(min(left, 0.5))

    # -- addresses --
    def addr(self, service=None, index=0):
        """(family, sockaddr) of the index-th listener of service."""
        found = [l for l in self.listeners if service in (None, l[0])]
        assert found, f"no {service} listener in {self.listeners}"
        return found[index][2]

    def port(self, service=None):
        return self.addr(service)[1][1]

    # -- stderr --
    def stderr(self):
        with self.cond:
            return "\n".join(self.lines)

    def mark(self):
        with self.cond:
            return len(self.lines)

    def since(self, mark=0):
        with self.cond:
            return list(self.lines[mark:])

    def wait_for(self, pattern, start=0, timeout=TIMEOUT, count=1):
        """Waits until `count` lines from index `start` match `pattern`;
        returns the matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [m for m in map(rx.search, self.lines[start:]) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    pytest.fail(f"no {count} line(s) matching {pattern!r} within "
                                f"{timeout} s (found {len(found)}); stderr:\n"
                                + "\n".join(self.lines[start:][-50:]))
                self.cond.wait(min(left, 0.5))

    # -- process --
    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and waits for the exit; returns the exit code."""
        if not self.stopped:
            self.stopped = True
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.reader.join(2)
                pytest.fail(f"eddy did not exit within {timeout} s of {sig!r}:\n"
                            + self.stderr()[-4000:])
            self.reader.join(2)
        return self.proc.returncode

    def problems(self):
        """What teardown finds wrong: exit status, ERROR lines, sanitizers."""
        out = []
        rc = self.proc.returncode
        if rc != 0:
            out.append(f"eddy exited with {rc}, expected 0; stderr ends:\n"
                       + "\n".join(self.since()[-30:]))
        errs = [l for l in self.since() if " - ERROR - " in l or SANITIZER_RE.search(l)]
        if errs:
            out.append("stderr has errors:\n" + "\n".join(errs[:20]))
        return out


def _stop_all(started):
    """Teardown of the process fixtures: SIGTERM each, then exit 0, no
    ERROR lines, no sanitizer report (unless a test turned check_clean off)."""
    problems = []
    for e in started:
        try:
            e.stop()
        except BaseException as exc:  # pytest.fail inside stop
            problems.append(str(exc))
            continue
        if e.check_clean:
            problems += [f"{' '.join(e.argv)}: {p}" for p in e.problems()]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def eddy(eddy_bin):
    """Factory: eddy(*args, prefix=(), expect=None) starts eddy with args
    (e.g. 'echo=127.0.0.1:0'), waits for every `listening on` line and returns
    an Eddy. prefix wraps the command (e.g. prlimit). At teardown each one
    gets SIGTERM and must exit 0 with no ERROR or sanitizer report."""
    started = []

    def start(*args, prefix=(), expect=None):
        args = [str(a) for a in args]
        e = Eddy(list(prefix) + WRAPPER + [eddy_bin] + args,
                 expect if expect is not None else count_services(args))
        started.append(e)
        e.wait_ready()
        return e

    yield start
    _stop_all(started)


# What each example prints once it listens: (name, address).
EXAMPLE_READY_RE = re.compile(r"(?:(\S+): serving http://|(\w+ server )?listening on )"
                              r"(\[[^\]]+\]:\d+|[\d.]+:\d+)")


@pytest.fixture
def example():
    """Factory: example(name, *args) starts build/examples/NAME (or
    $EDDY_EXAMPLES/NAME), waits for the line that says where it listens, and
    returns an Eddy whose addr() is that address. Teardown as for eddy."""
    started = []
    where = Path(os.environ.get("EDDY_EXAMPLES", REPO / "build" / "examples"))

    def start(name, *args):
        e = Eddy(WRAPPER + [str(where / name)] + [str(a) for a in args], 1,
                 listen_re=EXAMPLE_READY_RE, merge_stdout=True)
        started.append(e)
        e.wait_ready()
        return e

    yield start
    _stop_all(started)


@pytest.fixture(params=["level", "edge"])
def trigger(request):
    """Runs a test once per connection trigger mode."""
    return request.param


def run_eddy(eddy_bin, *args, timeout=TIMEOUT):
    """Runs eddy to completion (for arguments that make it exit)."""
    try:
        return subprocess.run([*WRAPPER, eddy_bin, *map(str, args)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"eddy {' '.join(map(str, args))} still running after {timeout} s "
                    f"(stderr: {exc.stderr!r})")


def run_tool(argv, input=b"", timeout=TIMEOUT * 2):
    """Runs a client tool (curl, socat, ncat) with a deadline."""
    try:
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)} did not finish within {timeout} s")


# ---- client helpers ------------------------------------------------------------


def connect(addr, timeout=TIMEOUT, nodelay=False):
    """A connected blocking socket with a timeout on every operation."""
    family, sockaddr = addr
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sockaddr)
    except BaseException:
        s.close()
        raise
    if nodelay and family != socket.AF_UNIX:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until_eof(s, timeout=TIMEOUT, limit=64 << 20):
    """Everything the peer sends until its EOF (fails on timeout)."""
    deadline = time.monotonic() + timeout
    chunks, n = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no EOF within {timeout} s (got {n} bytes)")
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            pytest.fail(f"no EOF within {timeout} s (got {n} bytes: {b''.join(chunks)[:200]!r})")
        if not b:
            return b"".join(chunks)
        chunks.append(b)
        n += len(b)
        assert n <= limit, "peer sent far more than expected"


def recv_exact(s, n, timeout=TIMEOUT):
    """Exactly n bytes (fails on EOF or timeout)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"got {len(buf)} of {n} bytes within {timeout} s")
        s.settimeout(left)
        try:
            b = s.recv(min(n - len(buf), 1 << 20))
        except socket.timeout:
            pytest.fail(f"got {len(buf)} of {n} bytes within {timeout} s")
        if not b:
            pytest.fail(f"EOF after {len(buf)} of {n} bytes")
        buf += b
    return bytes(buf)


def readable(s, wait):
    """True if s has data or EOF pending within `wait` seconds."""
    r, _, _ = select.select([s], [], [], wait)
    return bool(r)


def round_trip(addr, data=b"ping\n", timeout=TIMEOUT):
    """One echo round trip on a fresh connection, ending with half-close."""
    with connect(addr, timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return recv_until_eof(s, timeout)


def echo_stream(s, data, timeout=20.0):
    """Sends data on s from a thread while reading the same amount back;
    returns what came back."""
    err = []

    def send():
        try:
            s.sendall(data)
        except Exception as exc:  # reported by the caller
            err.append(exc)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    got = recv_exact(s, len(data), timeout)
    t.join(timeout)
    assert not err, f"sender failed: {err[0]!r}"
    assert not t.is_alive(), "sender did not finish"
    return got


def send_with_fin(s, data):
    """Sends data and the FIN in one TCP segment (corked data, then
    shutdown), so the server sees both in a single epoll event."""
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)


def rst_close(s):
    """Closes s with an RST instead of a FIN (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


# ---- process measurements ---------------------------------------------------------


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(pred, timeout=TIMEOUT, what="condition"):
    """Polls pred() until it is true; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.02)


@contextlib.contextmanager
def stopped(pid):
    """Holds the process stopped (SIGSTOP) for the block: what clients do
    meanwhile waits in its sockets, as it would behind a busy server."""
    def state():
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: state() == "T", what="the process stopped")
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: state() != "T", what="the process running again")


def served_again(pred, timeout=TIMEOUT):
    """Tries pred() (a client exchange returning True when served) until it
    succeeds: a departing client's close reaches eddy a moment later."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (OSError, AssertionError) as exc:
            last = exc
        time.sleep(0.05)
    pytest.fail(f"not served again within {timeout} s (last error: {last!r})")


# ---- formats ------------------------------------------------------------------------

TIME_RE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def check_time_reply(reply, slack=5.0):
    """Asserts reply is one local time 'YYYY-MM-DD HH:MM:SS.ffffff', close to now."""
    import datetime

    assert TIME_RE.match(reply), f"not a time reply: {reply!r}"
    t = datetime.datetime.strptime(reply.decode(), "%Y-%m-%d %H:%M:%S.%f")
    delta = abs((datetime.datetime.now() - t).total_seconds())
    assert delta < slack, f"time {reply!r} is {delta:.1f} s from local now"


# ---- HTTP ---------------------------------------------------------------------------

HTTP_DATE_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT$"
)


def check_http_date(value, slack=5.0):
    """Asserts value is an IMF-fixdate (RFC 9110, 5.6.7) close to now."""
    import email.utils

    assert value is not None and HTTP_DATE_RE.match(value), f"not an HTTP date: {value!r}"
    when = email.utils.parsedate_to_datetime(value).timestamp()
    assert abs(when - time.time()) < slack, f"Date {value!r} is not now"


def ports_free(ports):
    """True if every TCP port in ports can be bound on 127.0.0.1 now."""
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def curl(*args, timeout=TIMEOUT * 2):
    """Runs curl quietly (errors still shown) with a deadline of its own."""
    return run_tool(["curl", "-sS", "--max-time", str(timeout - 1), *map(str, args)],
                    timeout=timeout)


def http_url(srv, service, path="/"):
    """http://HOST:PORT/path of srv's first `service` listener (IPv4 or IPv6)."""
    family, (host, port, *_) = srv.addr(service)
    host = f"[{host}]" if family == socket.AF_INET6 else host
    return f"http://{host}:{port}{path}"


def curl_response(out):
    """Splits the stdout of curl -i (or -D -) into the final response's
    status line, {lowercase name: value} and what follows (the body, with
    -i). Interim blocks (100 Continue; redirects followed with -L) are
    skipped."""
    while True:
        head, sep, rest = out.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/"), f"no response header in {out[:300]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0]
        if not (status.split()[1][0] in "13" and rest.startswith(b"HTTP/")):
            break
        out = rest
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


class HttpResponse:
    """One response as it came off the wire."""

    def __init__(self, version, status, reason, headers, body, head):
        self.version = version  # "HTTP/1.1"
        self.status = status    # 200
        self.reason = reason    # "OK"
        self.headers = headers  # [(name, value)] in order
        self.body = body        # bytes
        self.head = head        # the raw status line and header block

    def header(self, name):
        """The value of the header `name` (any case), None if absent; fails
        if it appears more than once."""
        found = [v for n, v in self.headers if n.lower() == name.lower()]
        assert len(found) <= 1, f"{name} repeated in {self.head!r}"
        return found[0] if found else None

    def __repr__(self):
        return (f"<{self.version} {self.status} {self.reason} {self.head[:300]!r}"
                f" + {len(self.body)} bytes>")


class HttpConn:
    """A raw client socket that speaks HTTP/1.x: send any bytes, then read
    the responses one at a time, framed by their Content-Length (eddy always
    sends one when there is a body), and check where the server closes."""

    def __init__(self, addr, timeout=TIMEOUT, nodelay=True):
        self.sock = connect(addr, timeout, nodelay=nodelay)
        self.timeout = timeout
        self.buf = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline, want):
        """Reads more into buf; False on EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {want} within {self.timeout} s; have {bytes(self.buf[:300])!r}")
        self.sock.settimeout(left)
        try:
            b = self.sock.recv(1 << 20)
        except socket.timeout:
            pytest.fail(f"no {want} within {self.timeout} s; have {bytes(self.buf[:300])!r}")
        self.buf += b
        return bool(b)

    def response(self, head=False, timeout=None):
        """The next response; head=True for the answer to a HEAD request."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if not self._fill(deadline, "response header"):
                pytest.fail(f"EOF instead of a response; have {bytes(self.buf[:300])!r}")
        raw = bytes(self.buf[:end + 4])
        del self.buf[:end + 4]
        lines = raw[:-4].decode("latin-1").split("\r\n")
        m = re.fullmatch(r"(HTTP/\d\.\d) (\d{3}) (.*)", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep and name and name == name.strip(), f"bad header line {line!r}"
            headers.append((name, value.strip()))
        resp = HttpResponse(m[1], int(m[2]), m[3], headers, b"", raw)
        if head or resp.status < 200 or resp.status in (204, 304):
            return resp
        length = resp.header("Content-Length")
        assert length is not None and length.isdigit(), f"no Content-Length: {raw!r}"
        while len(self.buf) < int(length):
            if not self._fill(deadline, f"{length}-byte body"):
                pytest.fail(f"EOF after {len(self.buf)} of {length} body bytes")
        resp.body = bytes(self.buf[:int(length)])
        del self.buf[:int(length)]
        return resp

    def expect_eof(self, timeout=None):
        """Asserts the server closes next, sending nothing more; returns how
        long that took."""
        t0 = time.monotonic()
        deadline = t0 + (timeout or self.timeout)
        while not self.buf:
            try:
                if not self._fill(deadline, "EOF"):
                    return time.monotonic() - t0
            except ConnectionResetError:
                pytest.fail("connection reset instead of a clean EOF")
        pytest.fail(f"more bytes instead of EOF: {bytes(self.buf[:300])!r}")

    def idle(self, wait):
        """True if nothing (not even EOF) arrives within wait seconds."""
        return not self.buf and not readable(self.sock, wait)


def http_request(method="GET", target="/", version="1.1", headers=(), body=b"", host="eddy"):
    """The bytes of a well-formed request (Content-Length added for a body)."""
    lines = [f"{method} {target} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{n}: {v}" for n, v in headers]
    if body and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def count_epollin(srv, addr, exchange):
    """Connects to a `--trace --read-size 1 --workers 1` server, runs
    exchange(sock) (one request in one packet, and its reply), and returns
    how many EPOLLIN events the connection fd got, with the log lines. One
    worker: with more, several loops may wake for one new connection, and
    the barrier below would be passed too early."""
    mark = srv.mark()
    c1 = connect(addr)
    try:
        # The first event after connecting is the listener's: that is its fd.
        listen_fd = srv.wait_for(TRACE_RE.pattern + r".*", start=mark)[0][1]
        exchange(c1)
        # c1 stays open, so its FIN cannot add an event. Barrier: a second
        # connection makes the listener fire again, so every trace line about
        # c1's bytes has been read once that line is.
        with connect(addr):
            srv.wait_for(rf" - TRACE - .*\bepoll fd={listen_fd} [A-Z|]*EPOLLIN", start=mark,
                         count=2)
            lines = srv.since(mark)
    finally:
        c1.close()
    per_fd = {}
    for line in lines:
        m = TRACE_RE.search(line)
        if m and m[1] != listen_fd and "EPOLLIN" in m[2].split("|"):
            per_fd[m[1]] = per_fd.get(m[1], 0) + 1
    assert len(per_fd) == 1, f"expected EPOLLIN on one connection fd: {per_fd}\n" + "\n".join(lines)
    return next(iter(per_fd.values())), lines


def fill_until_stalled(s, block, limit, stall=0.5, timeout=20.0):
    """Sends block after block on the non-blocking socket s until the peer
    stops taking bytes for `stall` seconds (or `limit` bytes went out);
    returns how many bytes were sent."""
    s.setblocking(False)
    sent, last = 0, time.monotonic()
    deadline = last + timeout
    view = memoryview(block)
    off = 0
    while sent < limit:
        now = time.monotonic()
        assert now < deadline, f"peer never stalled ({sent} bytes sent)"
        try:
            n = s.send(view[off:])
            sent += n
            off = (off + n) % len(block)
            last = now
        except BlockingIOError:
            if now - last >= stall:
                break
            select.select([], [s], [], 0.05)
    s.setblocking(True)
    return sent


def stuck_connection(addr):
    """A connection to an echo service that cannot finish: served (a round
    trip proves it was accepted, not just queued), then it sends until eddy
    stops taking bytes (its echo has filled every buffer on the way back)
    and never reads, so its echo cannot be delivered."""
    s = connect(addr)
    s.sendall(b"hi\n")
    assert s.recv(16) == b"hi\n"
    fill_until_stalled(s, b"x" * 65536, limit=1 << 30)
    return s
