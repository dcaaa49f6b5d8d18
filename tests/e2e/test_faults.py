"""Faults from outside the protocol: no file descriptors left, no memory for
a buffer, a full accept queue. For each, eddy must survive, say so in its
log where it can see the fault, keep serving the clients it already has, and
serve new ones once the fault is gone.

Allocation failures come from tests/fault/failmalloc.c, preloaded into eddy
(built as build/tests/libfailmalloc.so by `make e2e`). Its control file is
mapped by eddy, so a test switches failures on and off while data is in
flight. It cannot work under valgrind (memcheck brings its own allocator) or
ASan (which must come first among the preloaded libraries and replaces
malloc), so those tests skip there.
"""

import os
import re
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import (HttpConn, TIMEOUT, WRAPPER, connect, fd_count, http_request, recv_exact,
                      round_trip, served_again, stopped, wait_until)

# ---- helpers --------------------------------------------------------------------


def http_ok(addr, target="/", body=None):
    """One GET on a fresh connection: True if the answer is 200 (and has body)."""
    with HttpConn(addr, timeout=2) as c:
        c.send(http_request(target=target, headers=[("Connection", "close")]))
        r = c.response()
        return r.status == 200 and (body is None or r.body == body)


def http_outcome(c, timeout):
    """What an HttpConn client that sent a request sees: 'served' (a 200),
    'status NNN', 'eof', 'reset', or 'hang' if nothing within timeout."""
    what = outcome(c.sock, timeout, keep=c.buf)
    if what != "data":
        return what
    r = c.response()
    return "served" if r.status == 200 else f"status {r.status}"


def outcome(s, timeout, keep=None):
    """What a client sees next on s: 'eof', 'reset' or 'data'; 'hang' if
    nothing within timeout."""
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        return "hang"
    try:
        b = s.recv(65536)
    except ConnectionResetError:
        return "reset"
    if keep is not None:
        keep += b
    return "data" if b else "eof"


# ---- (a) out of file descriptors ------------------------------------------------

ACCEPT_WARNING_RE = (r" - WARNING - (\S+) on 127\.0\.0\.1:\d+: cannot accept: Too many open files; "
                     r"closed (\d+) waiting connection\(s\)")


def test_out_of_fds_sheds_logs_and_recovers(eddy):
    """With a 40-fd limit, 80 HTTP clients at once: those eddy could accept
    are answered, the rest see their connection closed (not a hang), the
    condition is logged, the served keep-alive clients go on being served,
    and once the crowd leaves everything is served again with the fd count
    back where it was. (static at the limit: the next test.)"""
    srv = eddy("http=127.0.0.1:0", "echo=127.0.0.1:0", prefix=["prlimit", "--nofile=40:40"])
    with open(f"/proc/{srv.pid}/limits") as f:
        assert re.search(r"^Max open files\s+40\s+40\b", f.read(), re.M)
    assert http_ok(srv.addr("http"))
    base = fd_count(srv.pid)
    mark = srv.mark()
    clients, results = [], {}
    try:
        for _ in range(80):
            c = HttpConn(srv.addr("http"), timeout=TIMEOUT)
            c.send(http_request())
            clients.append(c)
        for i, c in enumerate(clients):
            results[i] = http_outcome(c, TIMEOUT)
        odd = {i: w for i, w in results.items() if w not in ("served", "eof", "reset")}
        assert not odd, f"clients neither served nor closed: {odd}"
        served = [i for i, w in results.items() if w == "served"]
        shed = [i for i, w in results.items() if w in ("eof", "reset")]
        assert served, "no client at all was served under the fd limit"
        assert shed, "80 clients fit under a 40-fd limit? the limit did not apply"
        assert srv.alive()
        m = srv.wait_for(ACCEPT_WARNING_RE, start=mark)[0]
        assert m[1] == "http"
        # The reports are rate-limited and count every shed connection.
        srv.wait_for(r"cannot accept: Too many open files", start=mark)
        # A served keep-alive client is still served at the limit.
        keep = clients[served[0]]
        keep.send(http_request())
        assert keep.response().status == 200
    finally:
        for c in clients:
            c.close()
    # The crowd has left: every service answers again.
    served_again(lambda: http_ok(srv.addr("http"), body=b"Hello, world!"))
    served_again(lambda: round_trip(srv.addr("echo"), b"back\n", timeout=2) == b"back\n")
    wait_until(lambda: fd_count(srv.pid) <= base, what=f"fd count back to {base}")

    # The reports are rate-limited (once a second per worker and listener),
    # so the one that counts the shed connections may come a second or two
    # after the first.
    def dropped():
        found = (re.search(ACCEPT_WARNING_RE, l) for l in srv.since(mark))
        return sum(int(m[2]) for m in found if m)

    wait_until(lambda: dropped() >= 1, what="a report counting the shed connections")


def test_out_of_fds_static_file_open_fails_cleanly(eddy, tmp_path):
    """A static client that was accepted when only its own fd was left: the
    file cannot be opened, so it gets a 503 (try again later; not a 500, a
    hang or a crash), unless shedding has just freed an fd, and the same
    connection gets the file once fds are free."""
    (tmp_path / "f.txt").write_bytes(b"static file\n")
    srv = eddy("--root", tmp_path, "static=127.0.0.1:0", prefix=["prlimit", "--nofile=24:24"])
    holders = []
    try:
        keep = HttpConn(srv.addr("static"))
        keep.send(http_request(target="/f.txt"))
        assert keep.response().body == b"static file\n"
        # Fill the fd table with idle clients until eddy sheds one.
        for _ in range(40):
            s = connect(srv.addr("static"))
            holders.append(s)
            if outcome(s, 0.3) in ("eof", "reset"):
                break
        else:
            pytest.fail("eddy never ran out of fds under a 24-fd limit")
        keep.send(http_request(target="/f.txt"))
        r = keep.response()
        assert r.status in (200, 503), r
        assert srv.alive()
    finally:
        for s in holders:
            s.close()
    def again():
        keep.send(http_request(target="/f.txt"))
        r = keep.response()
        return r.status == 200 and r.body == b"static file\n"
    served_again(again)
    keep.close()


# ---- (b) allocation failure --------------------------------------------------------

CTL_SIZE = 128
CTL_STATS_OFF = 64


def failmalloc_lib(eddy_bin):
    env = os.environ.get("EDDY_FAILMALLOC")
    return Path(env) if env else Path(eddy_bin).resolve().parent / "tests" / "libfailmalloc.so"


@pytest.fixture
def failmalloc(eddy_bin, tmp_path):
    """The control of the failmalloc interposer: .prefix goes in front of
    eddy; .set(every, min_size) switches failures (every Nth allocation of at
    least min_size bytes; 0: off); .failed() is how many were failed."""
    if WRAPPER:
        pytest.skip("allocation failures cannot be injected under a wrapper (valgrind's "
                    "allocator replaces malloc)")
    if b"__asan_init" in Path(eddy_bin).read_bytes():
        pytest.skip("ASan replaces malloc; failmalloc cannot interpose it")
    lib = failmalloc_lib(eddy_bin)
    if not lib.is_file():
        pytest.fail(f"{lib} not found: `make e2e` builds it (or set EDDY_FAILMALLOC)")

    class Ctl:
        path = tmp_path / "failmalloc.ctl"
        prefix = ["env", f"FAILMALLOC_CTL={tmp_path / 'failmalloc.ctl'}", f"LD_PRELOAD={lib}"]

        def set(self, every, min_size=0):
            text = f"{every} {min_size}".encode()
            with open(self.path, "r+b") as f:
                f.write(text.ljust(CTL_STATS_OFF, b" "))

        def failed(self):
            with open(self.path, "rb") as f:
                f.seek(CTL_STATS_OFF)
                m = re.search(rb"failed=(\d+)", f.read())
            return int(m[1]) if m else 0

    ctl = Ctl()
    ctl.path.write_bytes(b"0 0".ljust(CTL_SIZE, b"\0"))
    return ctl


class Flood:
    """Echoes `total` random bytes through s from two threads (one sends, one
    reads back) and records how the stream ended."""

    def __init__(self, s, total, pause=0.0):
        self.s = s
        self.pause = pause  # the reader sleeps this long after each read
        self.data = os.urandom(total)
        self.got = bytearray()
        self.end = None  # 'complete', 'eof', 'reset', 'timeout' or a send error
        self.send_err = None
        self.sender = threading.Thread(target=self._send, daemon=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.sender.start()
        self.reader.start()

    def _send(self):
        view = memoryview(self.data)
        try:
            for i in range(0, len(view), 65536):
                self.s.sendall(view[i:i + 65536])
        except OSError as exc:
            self.send_err = exc

    def _read(self):
        self.s.settimeout(TIMEOUT)
        try:
            while len(self.got) < len(self.data):
                b = self.s.recv(64 << 10 if self.pause else 1 << 20)
                if not b:
                    self.end = "eof"
                    return
                if self.pause:
                    time.sleep(self.pause)
                self.got += b
            self.end = "complete"
        except ConnectionResetError:
            self.end = "reset"
        except socket.timeout:
            self.end = "timeout"

    def join(self, timeout=TIMEOUT * 2):
        self.reader.join(timeout)
        self.sender.join(timeout)
        assert not self.reader.is_alive(), "the echo stream neither finished nor ended"

    def intact(self):
        """What came back is exactly a prefix of what was sent."""
        return bytes(self.got) == self.data[:len(self.got)]


# Buffers of one block come from a per-loop pool (src/buf.c), so only a
# buffer bigger than a block reliably reaches malloc: the tests below read
# 32 KiB at a time, so every input buffer is malloc'd (and, where floods
# read slowly, output buffers grow past a block too).
POOL_BLOCK = 16384


def test_alloc_failure_mid_echo_closes_only_that_connection(eddy, failmalloc):
    """Buffer allocations fail while an echo flood is in flight: that
    connection is closed (its client sees the end, and what it got back is
    intact), idle clients that hold no buffer keep their connections, and
    everything is served once allocations succeed again."""
    srv = eddy("--read-size", 2 * POOL_BLOCK, "echo=127.0.0.1:0", "http=127.0.0.1:0",
               prefix=failmalloc.prefix)
    idle_echo = connect(srv.addr("echo"))
    idle_http = HttpConn(srv.addr("http"))
    victim = connect(srv.addr("echo"))
    try:
        idle_echo.sendall(b"before\n")
        assert recv_exact(idle_echo, 7) == b"before\n"
        idle_http.send(http_request())
        assert idle_http.response().status == 200
        flood = Flood(victim, 64 << 20)
        wait_until(lambda: len(flood.got) >= 1 << 20, what="echo flood under way")
        # Every allocation bigger than a pool block fails from now on.
        failmalloc.set(1, POOL_BLOCK + 1)
        wait_until(lambda: failmalloc.failed() >= 1, what="an allocation failed")
        flood.join()
        assert flood.end in ("eof", "reset"), f"the flood ended with {flood.end}"
        assert flood.intact(), "the echoed bytes before the failure were corrupted"
        assert srv.alive()
        failmalloc.set(0)
        # The idle clients were not touched.
        idle_echo.sendall(b"after\n")
        assert recv_exact(idle_echo, 6) == b"after\n"
        idle_http.send(http_request())
        assert idle_http.response().body == b"Hello, world!"
    finally:
        failmalloc.set(0)
        for s in (idle_echo, idle_http, victim):
            s.close()
    assert round_trip(srv.addr("echo"), b"new\n") == b"new\n"
    assert http_ok(srv.addr("http"))


def test_alloc_failure_mid_http_body(eddy, failmalloc):
    """A 256 KiB POST whose buffer cannot grow midway: the client sees a
    close or a 5xx, never a 200 with a wrong body; a keep-alive client
    beside it is still served, and the same POST succeeds afterwards."""
    srv = eddy("http=127.0.0.1:0", prefix=failmalloc.prefix)
    body = os.urandom(256 << 10)
    request = http_request("POST", body=body)
    head_len = len(request) - len(body)
    with HttpConn(srv.addr("http")) as bystander, connect(srv.addr("http")) as victim:
        bystander.send(http_request())
        assert bystander.response().status == 200
        victim.sendall(request[:head_len + 8192])
        time.sleep(0)  # nothing to wait for: the rest follows once failures are on
        failmalloc.set(1, 4096)
        try:
            victim.sendall(request[head_len + 8192:])
        except (BrokenPipeError, ConnectionResetError):
            pass
        wait_until(lambda: failmalloc.failed() >= 1, what="an allocation failed")
        end = outcome(victim, TIMEOUT)
        assert end != "hang", "the client was left hanging"
        if end == "data":
            victim.settimeout(TIMEOUT)
            status = victim.recv(12)
            assert not status.startswith(b"HTTP/1.1 2"), status
        failmalloc.set(0)
        assert srv.alive()
        bystander.send(http_request())
        assert bystander.response().body == b"Hello, world!"
    with HttpConn(srv.addr("http")) as c:
        c.send(request)
        r = c.response()
        assert r.status == 200 and r.body == body


def test_alloc_failure_for_new_connections_is_logged(eddy, failmalloc):
    """No memory at all when a client connects: the client sees a close, a
    WARNING names the service and the cause, and the next client after the
    failures stop is served."""
    srv = eddy("echo=127.0.0.1:0", "http=127.0.0.1:0", prefix=failmalloc.prefix)
    mark = srv.mark()
    failmalloc.set(1, 0)
    try:
        for service in ("echo", "http"):
            with connect(srv.addr(service)) as s:
                if service == "http":
                    s.sendall(http_request())
                assert outcome(s, TIMEOUT) in ("eof", "reset")
        srv.wait_for(r" - WARNING - echo: out of memory for a new connection", start=mark)
        srv.wait_for(r" - WARNING - http: cannot serve a new connection: Cannot allocate memory",
                     start=mark)
        assert failmalloc.failed() >= 2
    finally:
        failmalloc.set(0)
    assert round_trip(srv.addr("echo"), b"ok\n") == b"ok\n"
    assert http_ok(srv.addr("http"))


def test_intermittent_alloc_failures_never_corrupt(eddy, failmalloc, trigger):
    """Every 5th allocation of a buffer bigger than a pool block fails while
    six echo floods that read slowly and a pipelining HTTP client run:
    each stream either completes intact or ends with a close, never with
    wrong bytes; eddy survives and serves after."""
    srv = eddy("--trigger", trigger, "--read-size", 2 * POOL_BLOCK, "echo=127.0.0.1:0",
               "http=127.0.0.1:0", prefix=failmalloc.prefix)
    socks = [connect(srv.addr("echo"), timeout=TIMEOUT) for _ in range(6)]
    pipe = connect(srv.addr("http"))
    try:
        failmalloc.set(5, POOL_BLOCK + 1)
        floods = [Flood(s, 4 << 20, pause=0.002) for s in socks]
        # Ten pipelined GETs: every response that comes is a whole, right one.
        pipe.sendall(http_request() * 10)
        for f in floods:
            f.join()
            assert f.end in ("complete", "eof", "reset"), f.end
            assert f.intact(), "echoed bytes were corrupted under allocation failures"
        got = bytearray()
        pipe.settimeout(TIMEOUT)
        try:
            while True:
                b = pipe.recv(65536)
                if not b:
                    break
                got += b
                if got.count(b"Hello, world!") == 10:
                    break
        except ConnectionResetError:
            pass
        for resp in got.split(b"HTTP/1.1 ")[1:]:
            assert resp.startswith(b"200 OK\r\n") or resp.startswith(b"5"), resp[:100]
        assert failmalloc.failed() >= 1, "no allocation failed: the test tested nothing"
        assert srv.alive()
    finally:
        failmalloc.set(0)
        for s in socks + [pipe]:
            s.close()
    assert round_trip(srv.addr("echo"), b"ok\n") == b"ok\n"
    assert http_ok(srv.addr("http"))


def test_alloc_failure_on_open_connection_is_logged(eddy, failmalloc):
    """An operator must be able to see that clients are being cut off for
    lack of memory: a WARNING (at the default level) names the cause."""
    # Reads bigger than a pool block: the input buffer comes from malloc.
    srv = eddy("--read-size", 2 * POOL_BLOCK, "echo=127.0.0.1:0", "http=127.0.0.1:0",
               prefix=failmalloc.prefix)
    mark = srv.mark()
    with connect(srv.addr("echo")) as s, connect(srv.addr("http")) as h:
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"
        failmalloc.set(1, POOL_BLOCK + 1)
        s.sendall(b"y" * 100000)
        h.sendall(http_request())
        assert outcome(s, TIMEOUT) in ("eof", "reset")
        assert outcome(h, TIMEOUT) in ("eof", "reset")
        failmalloc.set(0)
    srv.wait_for(r" - WARNING - echo: .*(?i:memory)", start=mark, timeout=2)
    srv.wait_for(r" - WARNING - http: .*(?i:memory)", start=mark, timeout=2)


# ---- (c) a full accept queue ------------------------------------------------------


def listen_overflows():
    """The kernel's count of connections dropped for a full accept queue
    (TcpExt ListenOverflows; for the whole network namespace)."""
    with open("/proc/net/netstat") as f:
        lines = [l.split() for l in f if l.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1]))["ListenOverflows"])


def test_full_accept_queue_survives_and_recovers(eddy):
    """With --backlog 1 and eddy stopped (SIGSTOP), 30 clients connect: the
    kernel queues a couple and drops the rest, which retry their SYN. After
    SIGCONT eddy says how many attempts the kernel dropped and serves what
    reaches it; every client is either served or refused/timed out by the
    kernel, never answered wrongly; new clients are served at once
    afterwards."""
    srv = eddy("--backlog", "1", "echo=127.0.0.1:0")
    assert round_trip(srv.addr("echo"), b"before\n") == b"before\n"
    family, sockaddr = srv.addr("echo")
    socks = []
    overflows = listen_overflows()
    with stopped(srv.pid):
        for _ in range(30):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(sockaddr)
            socks.append(s)
        # Let the handshakes that can complete do so while eddy sleeps.
        select.select([], socks, [], 0.5)
        assert listen_overflows() > overflows, "the accept queue never overflowed"
    port = srv.port("echo")
    srv.wait_for(rf"WARNING - echo on 127\.0\.0\.1:{port}: the kernel dropped [1-9]\d* "
                 r"connection attempt\(s\), its accept queue full \(--backlog 1,")
    results = {}
    deadline = time.monotonic() + 15  # SYN retries come after 1, 3 and 7 s
    pending = {i: s for i, s in enumerate(socks)}
    for i, s in pending.items():
        err = None
        _, w, _ = select.select([], [s], [], max(0.0, deadline - time.monotonic()))
        if not w:
            results[i] = "connect timeout"
            continue
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            results[i] = os.strerror(err)
            continue
        s.setblocking(True)
        s.settimeout(max(0.5, deadline - time.monotonic()))
        msg = b"client %02d\n" % i
        got = b""
        try:
            s.sendall(msg)
            while len(got) < len(msg):
                b = s.recv(64)
                if not b:
                    break
                got += b
            results[i] = "served" if got == msg else f"wrong reply {got!r}"
        except (ConnectionResetError, BrokenPipeError) as exc:
            results[i] = type(exc).__name__
        except socket.timeout:
            results[i] = "reply timeout"
    for s in socks:
        s.close()
    assert srv.alive()
    wrong = {i: r for i, r in results.items() if r.startswith("wrong")}
    assert not wrong, wrong
    served = sum(r == "served" for r in results.values())
    assert served >= 2, f"not even the queued clients were served: {results}"
    # Afterwards, a new client is served at once.
    t0 = time.monotonic()
    assert round_trip(srv.addr("echo"), b"after\n") == b"after\n"
    assert time.monotonic() - t0 < 2
