"""Hostile clients, end to end: request smuggling, oversized and malformed
input, path escapes against `static`, slowloris at every stage, clients that
never read, floods, resets, half-open and abandoned connections, and the TCP
services fed garbage.

Every case asserts what the attacker would see (the exact status, then the
close), and then `settled()` checks what everyone else relies on: the server
still answers a normal request, its open fds are back to the count it had
before the attack (polled with a deadline), and its RSS stays bounded.

Cases that test_http.py and test_static.py already cover (their MALFORMED
and ESCAPES tables, the request-line, header and body limits, one slowloris
trickle) are not repeated here."""

import os
import select
import socket
import threading
import time

import pytest

from conftest import (HttpConn, check_time_reply, connect, fill_until_stalled, http_request,
                      recv_exact, recv_until_eof, round_trip, rss_kib, rst_close)

HELLO = b"Hello, world!"
STATIC_HELLO = b"hello, hostile world\n"
SECRET = b"TOP SECRET, outside the root\n"
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
           413: "Content Too Large", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 501: "Not Implemented"}
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

SETTLE_TIMEOUT = 15.0  # fds back to baseline: a loaded machine may be slow
RSS_SLACK_KIB = 8 << 10  # after an ordinary case
RSS_FLOOD_KIB = 24 << 10  # after a flood; freed memory need not all go back


# ---- the server under attack --------------------------------------------------------------


def fd_table(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed while we looked
            pass
    return out


def sanitized(pid):
    """True if the process runs under ASan (its RSS is then far larger and
    freed memory sits in the quarantine)."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


class Target:
    """One eddy under attack, its services, and its baselines."""

    def __init__(self, srv, expect_body=HELLO):
        self.srv = srv
        self.pid = srv.pid
        self.expect_body = expect_body
        self.asan = sanitized(self.pid)
        # Warm up every service once, so lazily allocated memory is in the
        # baseline; then measure.
        self.normal()
        self.fds0 = self.wait_fds()
        self.rss0 = rss_kib(self.pid)

    def addr(self, service=None):
        return self.srv.addr(service)

    def fds(self):
        return len(fd_table(self.pid))

    def wait_fds(self, want=None, timeout=SETTLE_TIMEOUT):
        """Waits until the fd count is `want` (or, with None, stops
        changing); returns it."""
        deadline = time.monotonic() + timeout
        last, stable_since = -1, time.monotonic()
        while True:
            assert self.srv.alive(), "eddy died:\n" + self.srv.stderr()[-3000:]
            n = self.fds()
            now = time.monotonic()
            if want is not None and n == want:
                return n
            if want is None:
                if n != last:
                    last, stable_since = n, now
                elif now - stable_since >= 0.1:
                    return n
            if now > deadline:
                table = fd_table(self.pid)
                sockets = sum(1 for t in table.values() if t.startswith("socket:"))
                others = sorted(t for t in table.values() if not t.startswith("socket:"))
                pytest.fail(f"eddy has {n} fds, not {want}, after {timeout} s "
                            f"({sockets} sockets; others: {others})")
            time.sleep(0.02)

    def normal(self):
        """A normal request to each service; asserts its normal answer."""
        for service, _, addr in self.srv.listeners:
            if service == "http":
                with HttpConn(addr) as c:
                    c.send(http_request("GET"))
                    r = c.response()
                    assert (r.status, r.body) == (200, self.expect_body), r
            elif service == "static":
                with HttpConn(addr) as c:
                    c.send(http_request("GET", "/hello.txt"))
                    r = c.response()
                    assert (r.status, r.body) == (200, STATIC_HELLO), r
            elif service == "echo":
                assert round_trip(addr, b"normal\x00\n") == b"normal\x00\n"
            elif service == "upper":
                assert round_trip(addr, b"normal\n") == b"NORMAL\n"
            elif service == "time":
                check_time_reply(round_trip(addr, b"Now"))
            elif service in ("discard", "sink"):
                assert round_trip(addr, b"normal\n") == b""
            elif service == "hello-raw":
                with connect(addr) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    assert recv_until_eof(s).startswith(b"HTTP/1.0 200 OK\r\n")
            elif service == "daytime":
                with connect(addr) as s:
                    assert recv_until_eof(s).endswith(b"\n")
            else:
                raise AssertionError(f"no normal request for {service}")

    def settled(self, rss_slack_kib=RSS_SLACK_KIB):
        """After an attack: the fds come back to the baseline, a normal
        request is answered, and RSS stayed bounded."""
        self.wait_fds(self.fds0)
        self.normal()
        self.wait_fds(self.fds0)
        rss = rss_kib(self.pid)
        slack = rss_slack_kib * (4 if self.asan else 1)
        assert rss - self.rss0 <= slack, \
            f"RSS {rss} KiB is {(rss - self.rss0) / 1024:.1f} MiB over the baseline {self.rss0} KiB"
        assert self.srv.alive()


@pytest.fixture
def attack(eddy, monkeypatch):
    """Factory: attack(*eddy_args) starts eddy and returns a Target."""
    # ASan keeps freed memory in a quarantine of 256 MiB by default, which
    # would hide whether eddy bounds its memory. A small one keeps RSS
    # meaningful and still catches use-after-free of recent frees.
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "quarantine_size_mb=16")

    def start(*args, expect_body=HELLO):
        return Target(eddy(*args), expect_body)

    return start


@pytest.fixture
def http(attack):
    return attack("http=127.0.0.1:0")


@pytest.fixture
def tree(tmp_path):
    """tmp_path/root (served) and tmp_path/outside, with links of every kind
    that try to lead out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(STATIC_HELLO)
    with open(root / "big.bin", "wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB of zeros, written in no time
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"<h1>sub</h1>\n")
    (root / "nodir").mkdir()
    (root / "nodir" / "plain.txt").write_bytes(b"plain\n")
    # No index.html at the root: "/" is a directory without an index.
    links = {
        "link_abs_out": outside / "secret.txt",
        "link_abs_in": root / "hello.txt",
        "link_passwd": "/etc/passwd",
        "link_loop": "link_loop",
        "link_rel_out": "../outside/secret.txt",
        "link_chain": "sub/../link_rel_out",
        "link_proc": "/proc/self/root/etc/passwd",
        "link_deep": "../" * 12 + "etc/passwd",
        "dir_abs_out": outside,
        "sub/up": "../../outside",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    return root


@pytest.fixture
def static(attack, tree):
    return attack("--root", tree, "static=127.0.0.1:0")


# ---- client helpers -----------------------------------------------------------------------


def expect_refusal(c, status):
    """The one answer to a bad request: `status`, Connection: close, then
    EOF with nothing after it (so whatever was smuggled behind it is never
    answered)."""
    r = c.response()
    assert r.head.startswith(f"HTTP/1.1 {status} {REASONS[status]}\r\n".encode()), r
    assert r.header("Connection") == "close", r
    assert r.body == f"{status} {REASONS[status]}\n".encode(), r
    c.expect_eof()
    return r


def expect_close_after(c, timeout=5.0):
    """EOF or a reset after what was read: for clients that sent far more
    than the server drains before it closes (a reset is then how TCP says
    the rest was not read)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the server did not close"
        c.sock.settimeout(left)
        try:
            b = c.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return
        except socket.timeout:
            pytest.fail("the server did not close")
        if not b:
            return
        pytest.fail(f"more bytes instead of a close: {b[:200]!r}")


class Sender(threading.Thread):
    """Sends data in the background, stopping quietly when the server
    closes or resets; `sent` is how much the kernel took."""

    def __init__(self, sock, data, chunk=64 * 1024):
        super().__init__(daemon=True)
        self.sock, self.data, self.chunk, self.sent, self.error = sock, data, chunk, 0, None
        self.start()

    def run(self):
        view = memoryview(self.data)
        try:
            while self.sent < len(view):
                self.sent += self.sock.send(view[self.sent:self.sent + self.chunk])
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.error = exc
        except OSError as exc:  # EBADF if the test closed the socket
            self.error = exc

    def finish(self, timeout=10.0):
        self.join(timeout)
        assert not self.is_alive(), f"sender stuck after {self.sent} bytes"


def wait_all_closed(socks, timeout=10.0):
    """Waits until the server has closed every socket in socks (EOF or
    reset readable on each)."""
    deadline = time.monotonic() + timeout
    pending = list(socks)
    while pending:
        left = deadline - time.monotonic()
        assert left > 0, f"{len(pending)} of {len(socks)} connections still open"
        # select() is limited to fd numbers below 1024: use poll.
        p = select.poll()
        for s in pending:
            p.register(s, select.POLLIN)
        ready = {fd for fd, _ in p.poll(min(left, 0.5) * 1000)}
        still = []
        for s in pending:
            if s.fileno() in ready:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                if data:
                    still.append(s)  # a response first; the close follows
                    continue
            else:
                still.append(s)
        pending = still


# ---- request smuggling and framing --------------------------------------------------------
#
# RFC 9112 6.3: a request whose framing another parser could read differently
# is an unrecoverable error: 400 and close, so nothing behind it (SMUGGLED) is
# ever taken as a request. Unknown transfer codings are 501 (RFC 9112 6.1).

POST = b"POST / HTTP/1.1\r\nHost: x\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

SMUGGLING = [
    # Content-Length: duplicates, overflow, and values other parsers read as numbers.
    ("cl-twice-same", 400, POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("cl-twice-other-case", 400, POST + b"Content-Length: 5\r\ncontent-length: 5\r\n\r\nhello"),
    ("cl-negative", 400, POST + b"Content-Length: -1\r\n\r\n"),
    ("cl-empty", 400, POST + b"Content-Length: \r\n\r\n"),
    ("cl-space-inside", 400, POST + b"Content-Length: 1 0\r\n\r\nhellohello"),
    ("cl-2pow64", 400, POST + b"Content-Length: 18446744073709551616\r\n\r\n"),
    ("cl-wraps-to-5", 400, POST + b"Content-Length: 18446744073709551621\r\n\r\nhello"),
    ("cl-19-digits", 413, POST + b"Content-Length: 9999999999999999999\r\n\r\n"),
    ("cl-nul", 400, POST + b"Content-Length: 5\x00\r\n\r\nhello"),
    ("cl-vtab", 400, POST + b"Content-Length:\x0b5\r\n\r\nhello"),
    ("cl-arabic-digit", 400, POST + "Content-Length: \u0665\r\n\r\nhello".encode()),
    ("cl-exponent", 400, POST + b"Content-Length: 5e0\r\n\r\nhello"),
    # Transfer-Encoding obfuscations.
    ("te-two-fields", 400, POST + b"Transfer-Encoding: chunked\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-then-identity", 400, POST + b"Transfer-Encoding: chunked\r\n"
                              b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
    ("te-gzip-field-then-chunked", 501, POST + b"Transfer-Encoding: gzip\r\n"
                                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-vtab", 400, POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"),
    ("te-quoted", 400, POST + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n'),
    ("te-kelvin-sign", 400, POST + "Transfer-Encoding: chun\u212aed\r\n\r\n0\r\n\r\n".encode()),
    ("te-space-in-name", 400, POST + b"Transfer Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-tab-before-colon", 400, POST + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"),
    ("te-nul-in-name", 400, POST + b"Transfer-Encoding\x00: chunked\r\n\r\n0\r\n\r\n"),
    ("te-folded-first-line", 400, b"POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\n"
                                  b"Host: x\r\n\r\n0\r\n\r\n"),
    ("te-empty", 400, POST + b"Transfer-Encoding: \r\n\r\n"),
    ("te-only-commas", 400, POST + b"Transfer-Encoding: , ,\r\n\r\n"),
    ("te-chunked-then-cl-0", 400, POST + b"Transfer-Encoding: chunked\r\n"
                                  b"Content-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    # Chunk sizes.
    ("chunk-negative", 400, CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-plus", 400, CHUNKED + b"+5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-0x", 400, CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-leading-space", 400, CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-empty-size", 400, CHUNKED + b"\r\nhello\r\n0\r\n\r\n"),
    ("chunk-64-bit-max", 413, CHUNKED + b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("chunk-over-max-body", 413, CHUNKED + b"100001\r\nhello\r\n0\r\n\r\n"),
    ("chunk-shorter-than-data", 400, CHUNKED + b"3\r\nhello\r\n0\r\n\r\n"),
    ("chunk-bare-cr", 400, CHUNKED + b"5\rhello\r\n0\r\n\r\n"),
    ("chunk-ext-ctl", 400, CHUNKED + b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-too-long", 400, CHUNKED + b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n"),
    ("chunk-no-final-crlf", 400, CHUNKED + b"5\r\nhello\r\n0\r\n"),  # SMUGGLED follows
    ("trailer-folded", 400, CHUNKED + b"0\r\nX-T: a\r\n b\r\n\r\n"),
    ("trailer-no-colon", 400, CHUNKED + b"0\r\nX-T a\r\n\r\n"),
    ("trailer-space-before-colon", 400, CHUNKED + b"0\r\nX-T : a\r\n\r\n"),
    # Control bytes and separators other parsers treat as whitespace.
    ("nul-in-method", 400, b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("nul-in-target", 400, b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("del-in-value", 400, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n"),
    ("esc-in-value", 400, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \x1b[2J\r\n\r\n"),
    ("obs-text-in-name", 400, b"GET / HTTP/1.1\r\nHost: x\r\nX-\xff: a\r\n\r\n"),
    ("tabs-in-request-line", 400, b"GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n"),
    ("space-after-version", 400, b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n"),
    ("version-1.10", 400, b"GET / HTTP/1.10\r\nHost: x\r\n\r\n"),
    ("fragment-in-target", 400, b"GET /#frag HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("slash-in-host", 400, b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
    ("nine-empty-lines-first", 400, b"\r\n" * 9 + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
]


@pytest.mark.parametrize("status,req", [c[1:] for c in SMUGGLING], ids=[c[0] for c in SMUGGLING])
def test_smuggling_and_framing(http, status, req):
    with HttpConn(http.addr()) as c:
        c.send(req + SMUGGLED)
        expect_refusal(c, status)
    http.settled()


@pytest.mark.parametrize("value", ["Chunked", "\tchunked", "chunked\t ", ", chunked", "chunked ,"],
                         ids=["case", "leading-tab", "trailing-ows", "empty-element-first",
                              "empty-element-last"])
def test_transfer_encoding_spellings_rfc_allows(http, value):
    """Codings are case-insensitive, OWS is allowed and empty list
    elements are ignored (RFC 9110 5.6.1, 7.8): all of these are chunked,
    and the body decoded as such is what comes back, with the request
    behind it answered on the same connection."""
    body = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    with HttpConn(http.addr()) as c:
        c.send(POST + f"Transfer-Encoding: {value}\r\n\r\n".encode() + body
               + http_request("GET"))
        r = c.response()
        assert (r.status, r.body) == (200, b"hello world"), r
        r = c.response()
        assert (r.status, r.body) == (200, HELLO), r
    http.settled()


def test_get_with_a_body_consumes_it(http):
    """A GET may carry a Content-Length body; it is framing all the same,
    so the bytes are consumed and never read as a request of their own."""
    with HttpConn(http.addr()) as c:
        body = SMUGGLED
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
               + http_request("GET"))
        for _ in range(2):
            r = c.response()
            assert (r.status, r.body) == (200, HELLO), r
        assert c.idle(0.3), "the body was answered as a request"
    http.settled()


def test_look_alike_header_is_not_framing(http):
    """Transfer_Encoding is a valid but unknown field name: the request has
    no body, and the chunk bytes behind it are the next "request", which is
    refused. A proxy that normalised '_' to '-' would disagree, but eddy
    never answers what it did not parse."""
    with HttpConn(http.addr()) as c:
        c.send(POST + b"Transfer_Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + SMUGGLED)
        r = c.response()
        assert (r.status, r.body) == (200, b""), r
        expect_refusal(c, 400)
    http.settled()


def test_smuggling_one_byte_at_a_time(http):
    """A CL+TE conflict trickled byte by byte gets the same answer as sent
    at once: the parser's verdict does not depend on how bytes are split."""
    req = (POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
           + SMUGGLED)
    with HttpConn(http.addr()) as c:
        for i in range(len(req)):
            try:
                c.send(req[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            if i % 16 == 0 and not c.idle(0):
                break  # the server answered already
        expect_refusal(c, 400)
    http.settled()


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_chunked_post_one_byte_at_a_time(attack, trigger):
    srv = attack("--trigger", trigger, "http=127.0.0.1:0")
    req = CHUNKED + b"3\r\nabc\r\n1;ext=1\r\nd\r\n0\r\nT: v\r\n\r\n" + http_request("GET")
    with HttpConn(srv.addr()) as c:
        for i in range(len(req)):
            c.send(req[i:i + 1])
        r = c.response()
        assert (r.status, r.body) == (200, b"abcd"), r
        r = c.response()
        assert (r.status, r.body) == (200, HELLO), r
    srv.settled()


# ---- oversized lines, headers and bodies ---------------------------------------------------


OVERSIZED = [
    ("request-line-1mib", 414, b"GET /" + b"a" * (1 << 20)),
    ("method-1mib", 414, b"A" * (1 << 20)),
    ("header-value-1mib", 431, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * (1 << 20)),
    ("100k-tiny-headers", 431, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"a:b\r\n" * 100_000),
    ("empty-lines-flood", 400, b"\r\n" * 500_000),
]


@pytest.mark.parametrize("status,req", [c[1:] for c in OVERSIZED], ids=[c[0] for c in OVERSIZED])
def test_oversized_head_answered_early(http, status, req):
    """A megabyte of head is refused as soon as a limit is passed, not
    buffered: the answer comes while the client is still sending, and RSS
    does not grow by the megabyte."""
    with HttpConn(http.addr()) as c:
        sender = Sender(c.sock, req)
        r = c.response(timeout=10)
        assert r.head.startswith(f"HTTP/1.1 {status} {REASONS[status]}\r\n".encode()), r
        assert r.header("Connection") == "close"
        expect_close_after(c, timeout=10)
        sender.finish()
    http.settled()


def test_declared_huge_body_refused_before_it_is_sent(attack):
    srv = attack("--max-body", "1000", "http=127.0.0.1:0")
    with HttpConn(srv.addr()) as c:
        c.send(POST + b"Content-Length: 104857600\r\n\r\n")
        r = c.response()
        assert r.status == 413 and r.header("Connection") == "close", r
        # The client sends the body anyway: the server does not keep it.
        sender = Sender(c.sock, b"x" * (8 << 20))
        expect_close_after(c, timeout=10)
        sender.finish()
    srv.settled()


def test_endless_chunked_body_is_cut_at_max_body(attack):
    srv = attack("--max-body", "65536", "http=127.0.0.1:0")
    chunk = b"1000\r\n" + b"c" * 4096 + b"\r\n"
    with HttpConn(srv.addr()) as c:
        c.send(CHUNKED)
        sender = Sender(c.sock, chunk * 2048)  # 8 MiB, never a last chunk
        r = c.response(timeout=10)
        assert r.status == 413 and r.header("Connection") == "close", r
        expect_close_after(c, timeout=10)
        sender.finish()
    srv.settled()


def test_chunk_extension_flood_is_bounded(attack):
    """Chunk framing that is almost all extension: a few body bytes, but
    the raw bytes fill the request buffer. The server answers 413 rather
    than buffer without end."""
    srv = attack("--max-body", "1000", "http=127.0.0.1:0")
    chunk = b"1;" + b"e" * 4000 + b"\r\nx\r\n"
    with HttpConn(srv.addr()) as c:
        c.send(CHUNKED)
        sender = Sender(c.sock, chunk * 1000)  # 1000 body bytes in 4 MB
        r = c.response(timeout=10)
        assert r.status == 413 and r.header("Connection") == "close", r
        expect_close_after(c, timeout=10)
        sender.finish()
    srv.settled()


def test_trailer_flood_is_bounded(http):
    """A trailer section without end: it is part of the chunked content
    (RFC 9112 7.1.2), so past its bound the answer is 413, then a close."""
    with HttpConn(http.addr()) as c:
        c.send(CHUNKED + b"0\r\n")
        sender = Sender(c.sock, b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 100) for i in range(20_000)))
        r = c.response(timeout=10)
        assert r.status == 413 and r.header("Connection") == "close", r
        expect_close_after(c, timeout=10)
        sender.finish()
    http.settled()


# ---- slowloris: a deadline at every stage ---------------------------------------------------


@pytest.mark.parametrize("partial", [
    b"\r\n\r\n",  # only the empty lines a request may start with
    b"GE",
    b"GET /slow HTTP/1.",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: abc",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r",  # all but the last LF
], ids=["empty-lines", "method", "request-line", "header-value", "last-lf"])
def test_slowloris_at_each_header_stage(attack, partial):
    """With --header-timeout 1, a request stuck at any point of its head
    gets 408 and a close about 1 s after its first byte, and other clients
    are answered meanwhile."""
    srv = attack("--header-timeout", "1", "http=127.0.0.1:0")
    with HttpConn(srv.addr()) as slow:
        t0 = time.monotonic()
        slow.send(partial)
        # Meanwhile a normal client is served, before the slow one is cut.
        with HttpConn(srv.addr()) as other:
            other.send(http_request("GET"))
            assert other.response().body == HELLO
        if time.monotonic() - t0 < 0.6:  # else the machine is too loaded to tell
            assert slow.idle(0), "the slow client was answered before its deadline"
        expect_refusal(slow, 408)
        took = time.monotonic() - t0
        assert 0.8 <= took < 5, f"408 after {took:.2f} s"
    srv.settled()


def test_slowloris_second_request_on_keepalive(attack):
    """The deadline also guards a request that starts after a first one was
    answered on the same connection."""
    srv = attack("--header-timeout", "1", "--keepalive-timeout", "10", "http=127.0.0.1:0")
    with HttpConn(srv.addr()) as c:
        c.send(http_request("GET") + b"GET / HTTP/1.1\r\nHo")
        assert c.response().body == HELLO
        t0 = time.monotonic()
        expect_refusal(c, 408)
        took = time.monotonic() - t0
        assert 0.5 <= took < 5, f"408 after {took:.2f} s"
    srv.settled()


def test_slowloris_crowd(attack):
    """300 connections each stuck in their head: all get 408 and are
    closed at the deadline; a normal client is served throughout."""
    srv = attack("--header-timeout", "2", "http=127.0.0.1:0")
    socks = []
    try:
        for i in range(300):
            s = connect(srv.addr())
            s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\nX-Slow: " % i)
            socks.append(s)
        srv.normal()
        assert srv.fds() >= srv.fds0 + 300, "the crowd was closed before its deadline"
        wait_all_closed(socks, timeout=15)
    finally:
        for s in socks:
            s.close()
    srv.settled()


def test_stalled_body_does_not_block_others(attack):
    """A body that stops halfway (before the body timeout, 60 s by default:
    test_http.py checks the 408 at its end) holds only its own connection:
    others are served, and when the client gives up everything is
    released."""
    srv = attack("--header-timeout", "1", "http=127.0.0.1:0")
    socks = []
    try:
        for _ in range(20):
            s = connect(srv.addr())
            s.sendall(POST + b"Content-Length: 100000\r\n\r\n" + b"b" * 50_000)
            socks.append(s)
        t0 = time.monotonic()
        for _ in range(5):
            srv.normal()
        assert time.monotonic() - t0 < 5
    finally:
        for s in socks:
            s.close()
    srv.settled()


def test_silent_crowd_is_reclaimed_while_clients_hold_it(attack):
    """1000 connections opened and then abandoned without a byte or a
    close: the server closes its ends at the header deadline, with no
    answer, while the clients still hold theirs."""
    srv = attack("--header-timeout", "1", "http=127.0.0.1:0")
    socks = []
    try:
        for _ in range(1000):
            socks.append(connect(srv.addr(), timeout=10))
        srv.wait_fds(srv.fds0, timeout=15)  # before any client closes
        for s in socks[::50]:
            assert s.recv(100) == b""
    finally:
        for s in socks:
            s.close()
    srv.settled()


# ---- clients that never read ---------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_pipelined_flood_without_reading(attack, trigger):
    """A client pipelines requests for 10 KiB responses and never reads:
    eddy stops reading it (back-pressure) instead of queueing responses
    without end; other clients are served; when the client resets, all is
    released."""
    body = "z" * 10_000
    srv = attack("--trigger", trigger, "--body", body, "http=127.0.0.1:0",
                 expect_body=body.encode())
    flood = connect(srv.addr(), timeout=10)
    try:
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        block = http_request("GET") * 500
        # 200 MiB of responses asked for; the server must stall us long before.
        sent = fill_until_stalled(flood, block, limit=len(block) * 800)
        assert sent < len(block) * 800, "every request was read though no response was"
        peak = rss_kib(srv.pid)
        srv.normal()
        growth = (peak - srv.rss0) / 1024
        bound = 40 * (4 if srv.asan else 1)
        assert growth < bound, f"RSS grew by {growth:.1f} MiB for one client that never reads"
        # Still stalled: nothing was read while we looked.
        assert fill_until_stalled(flood, block, limit=len(block), stall=0.3) < len(block)
    finally:
        rst_close(flood)
    srv.settled(RSS_FLOOD_KIB)


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_reader_stalled_past_keepalive_gets_every_response(attack, trigger):
    """A client pipelines 100,000 requests (13 MB of answers) and reads
    nothing for longer than the keep-alive timeout, then reads: it gets
    exactly one intact response per request (the connection was neither
    cut as idle while answers were pending nor lost a byte while the
    server held back)."""
    srv = attack("--trigger", trigger, "--keepalive-timeout", "1", "http=127.0.0.1:0")
    n = 100_000
    with HttpConn(srv.addr(), timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sender = Sender(c.sock, http_request("GET") * n)
        time.sleep(1.5)  # past the keep-alive timeout, with answers pending
        first = c.response()
        assert (first.status, first.body) == (200, HELLO), first
        size = len(first.head) + len(HELLO)  # every answer has this size
        rest = recv_exact(c.sock, size * (n - 1) - len(c.buf), timeout=30)
        stream = bytes(c.buf) + rest
        assert stream.count(b"HTTP/1.1 200 OK\r\n") == n - 1
        assert stream.count(HELLO) == n - 1
        sender.finish()
        assert sender.error is None and sender.sent == n * len(http_request("GET"))
        # Nothing more: at most the keep-alive close, if reading took longer
        # than the timeout once the server's last answer had left.
        if not c.idle(0.2):
            assert c.sock.recv(1000) == b"", "more than one answer per request"
    srv.settled(RSS_FLOOD_KIB)


def test_body_flood_without_reading_is_bounded_per_connection(attack):
    """Four clients pipeline 1 MiB POSTs (echoed back) and read nothing:
    each is stopped after a bounded amount of input and output (about one
    request buffered and one response queued), so memory grows with the
    number of such clients, not with what they send."""
    srv = attack("http=127.0.0.1:0")
    body = b"p" * (1 << 20)
    block = http_request("POST", body=body)
    floods = []
    try:
        for _ in range(4):
            s = connect(srv.addr(), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sent = fill_until_stalled(s, block, limit=len(block) * 64, stall=0.3)
            assert sent < len(block) * 64
            floods.append(s)
        srv.normal()
        growth = (rss_kib(srv.pid) - srv.rss0) / 1024
        bound = 4 * 6 * (4 if srv.asan else 1)
        assert growth < bound, f"RSS grew by {growth:.1f} MiB for 4 clients that never read"
    finally:
        for s in floods:
            rst_close(s)
    srv.settled(RSS_FLOOD_KIB)


def test_big_response_never_read_then_client_leaves(static):
    """Ten clients ask for a 64 MiB file and read none of it: eddy sends
    what the sockets take and waits, holding no copies; when they close
    (FIN with unread data, which the kernel turns into a reset), the file
    and socket fds are released."""
    socks = []
    try:
        for _ in range(10):
            s = connect(static.addr())
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            s.sendall(http_request("GET", "/big.bin"))
            socks.append(s)
        static.normal()
        # One fd for each socket and one for each open file.
        static.wait_fds(static.fds0 + 20)
        growth = rss_kib(static.pid) - static.rss0
        assert growth < (16 << 10) * (4 if static.asan else 1), f"RSS grew by {growth} KiB"
    finally:
        for s in socks:
            s.close()
    static.settled()


# ---- many connections, resets, half-open clients -------------------------------------------


@pytest.mark.parametrize("service,payload", [
    ("http", b""), ("http", b"GET / HTTP/1.1\r\nHo"), ("echo", b"x" * 100),
    ("static", b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
], ids=["http-silent", "http-partial", "echo-unread", "static-unread"])
def test_3000_connections_opened_and_abandoned(attack, tree, service, payload):
    """3000 connections opened at once, some with a partial request or an
    unread answer, then closed by the client: the server's fds return to
    the baseline and its RSS to near it."""
    args = ("--root", tree) if service == "static" else ()
    srv = attack("--backlog", "4096", *args, f"{service}=127.0.0.1:0")
    socks = []
    try:
        for _ in range(3000):
            s = connect(srv.addr(), timeout=10)
            if payload:
                s.send(payload)
            socks.append(s)
        srv.normal()
        srv.wait_fds(srv.fds0 + 3000)  # all held at once...
    finally:
        for i, s in enumerate(socks):
            rst_close(s) if i % 3 == 0 else s.close()
    srv.settled(RSS_FLOOD_KIB)  # ...and all released


def test_3000_connections_past_max_connections(attack):
    """Past --max-connections, each of 2900 HTTP clients that sent a request
    at once gets the 503 and a close, the 100 admitted ones are served, and
    nothing is left behind."""
    srv = attack("--backlog", "4096", "--max-connections", "100", "http=127.0.0.1:0")
    socks = []
    try:
        for _ in range(3000):
            s = connect(srv.addr(), timeout=10)
            s.sendall(http_request("GET"))
            socks.append(s)
        statuses = {}
        for s in socks:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    b = s.recv(4096)
                    if not b:
                        break
                    head += b
            except ConnectionResetError:  # after the 503, if the request was unread
                pass
            status = head[:12].decode("latin-1") or "nothing"
            statuses[status] = statuses.get(status, 0) + 1
        assert statuses == {"HTTP/1.1 200": 100, "HTTP/1.1 503": 2900}, statuses
    finally:
        for s in socks:
            s.close()
    srv.settled(RSS_FLOOD_KIB)


@pytest.mark.parametrize("stage", [
    POST + b"Content-Len",
    POST + b"Content-Length: 100000\r\n\r\n" + b"b" * 30_000,
    CHUNKED + b"1000\r\n" + b"c" * 100,
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 200 + b"GET / HTTP",
    b"BAD\x00 / HTTP/1.1\r\n\r\n" + b"x" * 100_000,
], ids=["in-header", "in-body", "in-chunk", "after-pipeline", "while-lingering"])
def test_reset_mid_request(http, stage):
    for _ in range(20):
        s = connect(http.addr())
        s.sendall(stage)
        rst_close(s)
    http.settled()


def test_reset_mid_file_response(static):
    """Resets while a 64 MiB sendfile() is in flight: the file fds are
    closed with the sockets, and the server goes on."""
    for i in range(20):
        with HttpConn(static.addr()) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            c.send(http_request("GET", "/big.bin"))
            r = c.response(head=True)
            assert r.status == 200 and r.header("Content-Length") == str(64 << 20)
            recv_exact(c.sock, 1000 * (i + 1))
            rst_close(c.sock)
    static.settled()


def test_file_shrinks_mid_response(static, tree):
    """The file is truncated while sendfile() is sending it: the client
    gets fewer bytes than Content-Length and then a close (the only honest
    end for a response whose length was promised), and no fd is kept."""
    path = tree / "shrinking.bin"
    with open(path, "wb") as f:
        f.truncate(32 << 20)
    with HttpConn(static.addr()) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(http_request("GET", "/shrinking.bin"))
        r = c.response(head=True)
        assert r.header("Content-Length") == str(32 << 20)
        got = len(recv_exact(c.sock, 100_000))
        os.truncate(path, 1 << 20)
        got += len(recv_until_eof(c.sock, timeout=10))
        assert 100_000 <= got < 32 << 20
    static.settled()


def test_reset_mid_range_and_head(static):
    for req in (http_request("GET", "/big.bin", headers=[("Range", "bytes=1000-")]),
                http_request("HEAD", "/big.bin") + http_request("GET", "/big.bin")):
        for _ in range(10):
            s = connect(static.addr())
            s.sendall(req)
            recv_exact(s, 10)
            rst_close(s)
    static.settled()


@pytest.mark.parametrize("n", [1, 3])
def test_half_close_after_requests(http, n):
    """shutdown(SHUT_WR) right after n pipelined requests: all n answered,
    then a clean EOF."""
    with HttpConn(http.addr()) as c:
        c.send(http_request("GET") * n)
        c.sock.shutdown(socket.SHUT_WR)
        for _ in range(n):
            assert c.response().body == HELLO
        c.expect_eof()
    http.settled()


def test_half_close_after_request_and_a_partial_one(http):
    """Two whole requests, half of a third, then FIN: the two are answered,
    the third can never complete, so the connection closes after them."""
    with HttpConn(http.addr()) as c:
        c.send(http_request("GET") * 2 + b"GET / HT")
        c.sock.shutdown(socket.SHUT_WR)
        for _ in range(2):
            assert c.response().body == HELLO
        c.expect_eof()
    http.settled()


def test_half_close_after_big_file(static):
    with HttpConn(static.addr()) as c:
        c.send(http_request("GET", "/big.bin", headers=[("Range", "bytes=0-4194303")]))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.response(timeout=15)
        assert r.status == 206 and len(r.body) == 4 << 20 and not r.body.strip(b"\0")
        c.expect_eof()
    static.settled()


def test_half_close_mid_request(http):
    """A head cut short by the client's FIN can never complete: the server
    closes without answering it, and does not wait for a deadline."""
    with HttpConn(http.addr()) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        took = c.expect_eof(timeout=5)
        assert took < 3
    http.settled()


def test_half_close_mid_body(http):
    with HttpConn(http.addr()) as c:
        c.send(POST + b"Content-Length: 10\r\n\r\nhello")
        c.sock.shutdown(socket.SHUT_WR)
        took = c.expect_eof(timeout=5)
        assert took < 3
    http.settled()


def keep_sending_until_refused(sock, data, timeout=8.0):
    """Sends data every 10 ms into a connection the server has closed its
    side of; returns how long until the kernel refused (EPIPE or reset).
    The server drains such input for a short while (so its last answer is
    not destroyed by a reset) but must not let a client that never stops
    hold the connection open."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        time.sleep(0.01)
    pytest.fail(f"still accepting bytes {timeout} s after the server closed")


def test_client_sends_after_server_closed(http):
    """The server closes after a Connection: close response; the client
    keeps sending into the closed connection. It is refused within a few
    seconds, and the server serves the next client."""
    with HttpConn(http.addr()) as c:
        c.send(http_request("GET", headers=[("Connection", "close")]))
        assert c.response().body == HELLO
        c.expect_eof()
        keep_sending_until_refused(c.sock, http_request("GET") * 10)
    http.settled()


def test_client_sends_after_refusal(http):
    with HttpConn(http.addr()) as c:
        c.send(b"BAD\x00 / HTTP/1.1\r\n\r\n")
        expect_refusal(c, 400)
        try:
            for _ in range(50):
                c.send(http_request("GET"))
                time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert c.idle(0.1) or c.sock.recv(1) == b""
    http.settled()


def test_pipeline_after_connection_close_is_ignored(http):
    with HttpConn(http.addr()) as c:
        c.send(http_request("GET", headers=[("Connection", "close")]) + SMUGGLED * 100)
        assert c.response().body == HELLO
        c.expect_eof()
    http.settled()


# ---- static: escapes not covered by test_static.py -------------------------------------------

STATIC_ESCAPES = [
    ("/%5c..%5coutside%5csecret.txt", 400),  # encoded backslashes
    ("/%c0%ae%c0%ae/outside/secret.txt", 404),  # overlong UTF-8 "." (a plain name)
    ("/%e0%80%ae%e0%80%ae/outside/secret.txt", 404),
    ("/%c0%af..%c0%afoutside", 404),  # overlong UTF-8 "/"
    ("/%252e%252e/outside/secret.txt", 404),  # double-encoded: decoded once
    ("/..;/outside/secret.txt", 404),
    ("/.../outside/secret.txt", 404),
    ("/%20../outside/secret.txt", 404),
    ("//etc/passwd", 403),  # an absolute path to the kernel: refused
    ("/sub//../../outside/secret.txt", 403),
    ("/hello.txt/..", 403),
    ("/sub/.", 403),
    ("/%2e", 403),
    ("/sub/%2E%2e/%2e%2E/outside/secret.txt", 403),
    ("http://evil.example/%2e%2e/outside/secret.txt", 403),
    ("http://evil.example/hello.txt", 200),  # absolute-form: still this root
    ("/link_abs_out", 403),
    ("/link_abs_in", 403),  # absolute targets are refused even inside the root
    ("/link_passwd", 403),
    ("/link_loop", 403),
    ("/link_chain", 403),
    ("/link_proc", 403),
    ("/link_deep", 403),
    ("/dir_abs_out/secret.txt", 403),
    ("/sub/up/secret.txt", 403),
    ("/", 403),  # the root itself has no index and there is no --listing
    ("/nodir/", 403),
    ("/" + "a/" * 2100 + "x", 414),  # longer than PATH_MAX once decoded
]


@pytest.mark.parametrize("target,status", STATIC_ESCAPES, ids=[t[:40] for t, _ in STATIC_ESCAPES])
def test_static_escapes(static, target, status):
    with HttpConn(static.addr()) as c:
        c.send(http_request("GET", target))
        r = c.response()
        assert r.status == status, r
        assert SECRET not in r.body and b"root:" not in r.body
        if status == 200:
            assert r.body == STATIC_HELLO
        # Refused paths are answers like any other: the connection lives on.
        c.send(http_request("GET", "/hello.txt"))
        assert c.response().body == STATIC_HELLO
    static.settled()


@pytest.mark.parametrize("target", ["http://x?/hello.txt", "http://x?/nodir/plain.txt"],
                         ids=["query-names-a-file", "query-names-a-subdir-file"])
def test_static_absolute_form_query_is_not_the_path(static, target):
    """The path of http://x?/file is empty, i.e. '/': the root, which has no
    index and no listing here, so 403; never the file named in the query."""
    with HttpConn(static.addr()) as c:
        c.send(http_request("GET", target))
        r = c.response()
        assert r.status == 403, r
    static.settled()


@pytest.mark.parametrize("target", [b"/hello.txt%zz", b"/%", b"/%2", b"/%g0", b"/..\\outside",
                                    b"/hello.txt\x00.png", b"/a b", b"/\xc0\xae"],
                         ids=["bad-escape", "lone-percent", "half-escape", "non-hex-escape",
                              "raw-backslash", "raw-nul", "raw-space", "raw-8bit"])
def test_static_unparseable_targets(static, target):
    with HttpConn(static.addr()) as c:
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED)
        expect_refusal(c, 400)
    static.settled()


def test_static_listing_never_leaves_the_root(attack, tree):
    srv = attack("--listing", "--root", tree, "static=127.0.0.1:0")
    with HttpConn(srv.addr()) as c:
        c.send(http_request("GET", "/nodir/"))
        r = c.response()
        assert r.status == 200 and b"plain.txt" in r.body
        for target in ("/dir_abs_out/", "/sub/up/", "/%2e%2e/", "/sub/../", "//tmp/",
                       "http://evil.example/../"):
            c.send(http_request("GET", target))
            r = c.response()
            assert r.status == 403, (target, r)
            assert b"secret.txt" not in r.body
    srv.settled()


# ---- the TCP services fed garbage ----------------------------------------------------------


def test_echo_and_upper_binary_and_nul(attack):
    """Every byte value, NULs in bulk, CR/LF and escape sequences come back
    unchanged from echo; upper changes only a-z (no locale games with
    bytes over 0x7f)."""
    srv = attack("echo=127.0.0.1:0", "upper=127.0.0.1:0")
    data = bytes(range(256)) * 64 + b"\x00" * 65536 + b"\r\n\x1b[2J\xff\xfe\r" * 1000
    assert round_trip(srv.addr("echo"), data, timeout=10) == data
    assert round_trip(srv.addr("upper"), data, timeout=10) == data.upper()
    srv.settled()


def test_discard_flood_then_reset(attack):
    """256 MiB into discard as fast as loopback goes, then a reset halfway
    through another flood: memory stays flat, the fds come back."""
    srv = attack("discard=127.0.0.1:0")
    block = os.urandom(1 << 20)
    with connect(srv.addr(), timeout=30) as s:
        for _ in range(256):
            s.sendall(block)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s, timeout=20) == b""
    s = connect(srv.addr(), timeout=30)
    for _ in range(64):
        s.sendall(block)
    rst_close(s)
    srv.settled()


def test_sink_log_escapes_control_bytes(attack):
    """sink logs what it receives; bytes that would move a terminal's
    cursor or split the log line are written escaped."""
    srv = attack("sink=127.0.0.1:0")
    mark = srv.srv.mark()
    assert round_trip(srv.addr(), b"\x1b[2J\x00evil\r\nfake - INFO - x\x07") == b""
    srv.srv.wait_for(r"recv: ", start=mark)
    logged = "\n".join(srv.srv.since(mark))
    assert "\x1b" not in logged and "\x00" not in logged and "\x07" not in logged
    assert "\\x1b[2J\\x00evil\\r\\nfake" in logged
    assert not any(line.startswith("fake") for line in srv.srv.since(mark))
    srv.settled()


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00", b"\xff" * 3 + b"\r\n" * 1000,
                                     b"GET / HTTP/1.1\r\n\r\n"],
                         ids=["nuls", "high-bytes", "http"])
def test_time_with_garbage(attack, garbage):
    srv = attack("time=127.0.0.1:0")
    with connect(srv.addr()) as s:
        s.sendall(garbage)
        check_time_reply(recv_until_eof(s))
        # Sending after the server closed: no crash, the next client is fine.
        try:
            for _ in range(20):
                s.sendall(b"more")
                time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            pass
    srv.settled()


def test_tcp_services_abandoned_mid_line(attack):
    """Clients that stop mid-line (time after 2 of its 3 bytes, echo with
    output it never reads, hello-raw without its blank line) and then go
    silent are closed by --idle-timeout; those that reset are released at
    once."""
    srv = attack("--idle-timeout", "1", "time=127.0.0.1:0", "echo=127.0.0.1:0",
                 "hello-raw=127.0.0.1:0")
    silent = []
    try:
        for _ in range(10):
            t = connect(srv.addr("time"))
            t.sendall(b"No")
            e = connect(srv.addr("echo"))
            e.sendall(b"half a line")
            h = connect(srv.addr("hello-raw"))
            h.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n")
            silent += [t, e, h]
            r = connect(srv.addr("time"))
            r.sendall(b"N")
            rst_close(r)
        wait_all_closed(silent, timeout=10)
    finally:
        for s in silent:
            s.close()
    srv.settled()


def test_echo_half_open_client_that_never_reads(attack):
    """A client fills echo's pipes, sends its FIN and never reads: echo
    cannot deliver what it owes, and closes at --idle-timeout rather than
    hold the connection (and its buffers) for ever."""
    srv = attack("--idle-timeout", "1", "echo=127.0.0.1:0")
    s = connect(srv.addr())
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sent = fill_until_stalled(s, os.urandom(256 * 1024), limit=256 << 20, stall=0.3)
        assert sent < 256 << 20
        s.shutdown(socket.SHUT_WR)
        srv.wait_fds(srv.fds0, timeout=10)  # while the client still holds its end
    finally:
        s.close()
    srv.settled(RSS_FLOOD_KIB)


CHAOS_PIECES = [
    http_request("GET"), http_request("GET", "/big.bin"), http_request("HEAD", "/big.bin"),
    http_request("GET", "/hello.txt", headers=[("Range", "bytes=1-")]),
    http_request("POST", body=b"0123456789"),
    CHUNKED + b"5\r\nhello\r\n0\r\n\r\n",
    POST + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    http_request("GET", headers=[("Connection", "close")]), http_request("GET", "/sub"),
    POST + b"Content-Length: 99999\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n",
    b"abc", b"\r\n", b"\x00\xff", b"GET /%zz HTTP/1.1\r\n\r\n", b"x" * 20000,
]


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_chaos(attack, tree, trigger):
    """A seeded mix of everything above on 60-odd connections to http and
    static at once: fragments of good and bad requests, reads of any size
    or none, half-closes, resets and closes at any point."""
    import random

    srv = attack("--trigger", trigger, "--root", tree, "--header-timeout", "1",
                 "--keepalive-timeout", "1", "--max-body", "5000",
                 "http=127.0.0.1:0", "static=127.0.0.1:0")
    rng = random.Random(20261123)
    addrs = [srv.addr("http"), srv.addr("static")]
    live = []
    try:
        for _ in range(4000):
            if len(live) < 60 or rng.random() < 0.3:
                family, sockaddr = rng.choice(addrs)
                s = socket.socket(family, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(sockaddr)
                if rng.random() < 0.5:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                live.append(s)
            s = rng.choice(live)
            act = rng.random()
            try:
                if act < 0.55:
                    data = b"".join(rng.choice(CHAOS_PIECES) for _ in range(rng.randint(1, 4)))
                    if rng.random() < 0.3:
                        data = data[:rng.randint(0, len(data))]
                    s.send(data)
                elif act < 0.7:
                    s.recv(rng.choice([1, 100, 65536]))
                elif act < 0.8:
                    s.shutdown(socket.SHUT_WR)
                elif act < 0.9:
                    live.remove(s)
                    rst_close(s)
                else:
                    live.remove(s)
                    s.close()
            except OSError:  # EAGAIN, EPIPE, ECONNRESET, ENOTCONN: all fine here
                pass
            assert srv.srv.alive(), "eddy died:\n" + srv.srv.stderr()[-3000:]
        srv.normal()
    finally:
        for s in live:
            s.close()
    srv.settled(RSS_FLOOD_KIB)


def test_daytime_connect_reset_storm(attack):
    srv = attack("daytime=127.0.0.1:0", "echo=127.0.0.1:0")
    for _ in range(300):
        rst_close(connect(srv.addr("daytime")))
        s = connect(srv.addr("echo"))
        s.sendall(b"x" * 1000)
        rst_close(s)
    srv.settled()
