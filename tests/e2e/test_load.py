"""eddy-load, the load generator: against eddy's own services it reports
every request answered and no errors; against servers that misbehave on
purpose (small Python servers here: a corrupting echo, HTTP 500s, broken
framing, resets, silence) it counts the errors by kind and exits 1; its
arguments are checked (exit 2); --json carries every figure.

The binary is $EDDY_LOAD_BIN, else eddy-load next to $EDDY_BIN, else
build/eddy-load."""

import json
import os
import pty
import select
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import REPO, SANITIZER_RE, eddy_path

RUN_TIMEOUT = 30.0


def load_path():
    env = os.environ.get("EDDY_LOAD_BIN")
    if env:
        p = Path(env)
        return p if p.is_absolute() else REPO / p
    beside = eddy_path().parent / "eddy-load"
    return beside if beside.exists() else REPO / "build" / "eddy-load"


@pytest.fixture(scope="session")
def load_bin():
    p = load_path()
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"eddy-load not found at {p}: build it, or set EDDY_LOAD_BIN")
    return str(p)


def run_load(load_bin, *args, timeout=RUN_TIMEOUT):
    try:
        r = subprocess.run([load_bin, *map(str, args)], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"eddy-load {' '.join(map(str, args))} still running after {timeout} s "
                    f"(stdout: {exc.stdout!r})")
    assert not SANITIZER_RE.search(r.stderr), r.stderr
    return r


def run_json(load_bin, *args, rc=0):
    r = run_load(load_bin, *args, "--json")
    assert r.returncode == rc, f"exit {r.returncode}, expected {rc}:\n{r.stdout}\n{r.stderr}"
    lines = r.stdout.splitlines()
    assert len(lines) == 1, f"--json printed more than one line: {r.stdout!r}"
    return json.loads(lines[0])


def where(srv, service):
    """The address text eddy logged for its `service` listener."""
    return next(text for name, text, _ in srv.listeners if name == service)


def assert_clean(res, n):
    """n requests, all answered correctly, nothing else counted."""
    assert res["requests"] == n and res["ok"] == n and res["failed"] == 0, res
    assert res["errors_total"] == 0 and res["first_error"] is None, res
    assert res["latency_us"]["count"] == n
    lat = res["latency_us"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]


# ---- small misbehaving servers ---------------------------------------------------


@contextmanager
def tcp_server(handle):
    """Runs handle(sock) in a thread for every connection to a listener on
    127.0.0.1; yields its 'HOST:PORT'."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    stop = threading.Event()

    def serve(conn):
        with conn:
            try:
                conn.settimeout(10)
                handle(conn)
            except OSError:
                pass

    def accept_loop():
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{lsock.getsockname()[1]}"
    finally:
        stop.set()
        lsock.shutdown(socket.SHUT_RDWR)
        lsock.close()
        t.join(5)


def http_requests(conn):
    """Yields each request head a client sends on conn, until EOF."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        yield head


def http_server(respond):
    """An HTTP server: respond(i, head) gives the bytes to send for the
    i-th request on a connection and whether to close after them."""

    def handle(conn):
        for i, head in enumerate(http_requests(conn)):
            data, close = respond(i, head)
            conn.sendall(data)
            if close:
                return

    return tcp_server(handle)


# ---- against eddy ------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "[::1]:0", "unix"])
def test_echo_every_reply_verified(eddy, load_bin, listen, tmp_path):
    if listen == "unix":
        listen = f"unix:{tmp_path / 'echo.sock'}"
    srv = eddy(f"echo={listen}")
    res = run_json(load_bin, "echo", where(srv, "echo"), "-n", 3000, "-c", 4, "-P", 4, "-s", 100)
    assert_clean(res, 3000)
    assert res["bytes_sent"] == res["bytes_received"] == 3000 * 100
    assert res["connects"] == 4
    assert (res["mode"], res["connections"], res["pipeline"]) == ("echo", 4, 4)


def test_echo_large_messages_deeply_pipelined(eddy, load_bin):
    # 1 MiB in flight per connection each way: the client must keep reading
    # while its own requests are still queued, or both sides stall.
    srv = eddy("echo=127.0.0.1:0")
    res = run_json(load_bin, "echo", where(srv, "echo"), "-n", 64, "-c", 2, "-P", 8,
                   "-s", 128 * 1024)
    assert_clean(res, 64)
    assert res["bytes_received"] == 64 * 128 * 1024


def test_http_request_count_threads_and_status(eddy, load_bin):
    srv = eddy("http=127.0.0.1:0")
    res = run_json(load_bin, "http", where(srv, "http"), "-n", 3001, "-c", 5, "-t", 2, "-P", 3)
    assert_clean(res, 3001)
    assert res["threads"] == 2 and res["connects"] == 5
    assert res["http_status"]["2xx"] == 3001
    # Every response of eddy's http service is the same size.
    assert res["bytes_received"] % 3001 == 0 and res["bytes_received"] > 3001 * 13


def test_http_url_form_and_path(eddy, load_bin):
    srv = eddy("http=127.0.0.1:0")
    res = run_json(load_bin, f"http://{where(srv, 'http')}/some/path?x=1", "-n", 200, "-c", 2)
    assert_clean(res, 200)
    assert res["path"] == "/some/path?x=1"


def test_http_new_connection_per_request(eddy, load_bin):
    srv = eddy("http=127.0.0.1:0")
    res = run_json(load_bin, "http", where(srv, "http"), "--new-conn", "-n", 400, "-c", 4)
    assert_clean(res, 400)
    assert res["connects"] == 400 and res["new_conn"] is True


@pytest.mark.parametrize("new_conn", [False, True])
def test_http10(eddy, load_bin, new_conn):
    srv = eddy("http=127.0.0.1:0")
    args = ["--new-conn"] if new_conn else []
    res = run_json(load_bin, "http", where(srv, "http"), "--http10", "-n", 100, "-c", 2, *args)
    assert_clean(res, 100)
    # HTTP/1.0 keeps the connection only when asked to (eddy-load asks
    # unless --new-conn).
    assert res["connects"] == (100 if new_conn else 2)


def test_open_loop_new_connection_per_request(eddy, load_bin):
    # The shape of a zero-downtime restart check: a steady rate of fresh
    # connections.
    srv = eddy("echo=127.0.0.1:0")
    res = run_json(load_bin, "echo", where(srv, "echo"), "-R", 400, "-n", 60, "-c", 4,
                   "--new-conn")
    assert_clean(res, 60)
    assert res["connects"] == 60


def test_warmup_is_not_measured(eddy, load_bin):
    srv = eddy("echo=127.0.0.1:0")
    res = run_json(load_bin, "echo", where(srv, "echo"), "--warmup", "200ms", "-n", 500, "-c", 2)
    assert_clean(res, 500)  # exactly -n, whatever ran during the warm-up
    assert res["bytes_sent"] == 500 * 64
    res = run_json(load_bin, "echo", where(srv, "echo"), "--warmup", "300ms", "-d", "300ms")
    assert 0.299 <= res["duration_s"] < 3 and res["ok"] > 0 and res["errors_total"] == 0


def test_fixed_request_against_time(eddy, load_bin):
    # The time service answers 3 bytes with a 26-byte time, then closes.
    srv = eddy("time=127.0.0.1:0")
    res = run_json(load_bin, "fixed", where(srv, "time"), "--request", "Now", "--reply-bytes", 26,
                   "--new-conn", "-n", 200, "-c", 4)
    assert_clean(res, 200)
    assert res["bytes_sent"] == 200 * 3 and res["bytes_received"] == 200 * 26


def test_open_loop_keeps_its_schedule(eddy, load_bin):
    # 100 requests at 500/s are due over 0.2 s, however fast the replies.
    srv = eddy("echo=127.0.0.1:0")
    res = run_json(load_bin, "echo", where(srv, "echo"), "-R", 500, "-n", 100, "-c", 2)
    assert_clean(res, 100)
    assert res["rate"] == 500 and res["duration_s"] >= 0.19 and res["unsent"] == 0


def test_open_loop_reports_a_rate_it_could_not_reach(load_bin):
    # One connection to a server that takes 20 ms a reply cannot carry
    # 1000 requests/s: the report says how many were due and never sent.
    def handle(conn):
        while data := conn.recv(65536):
            time.sleep(0.02)
            conn.sendall(data)

    with tcp_server(handle) as addr:
        res = run_json(load_bin, "echo", addr, "-R", 1000, "-d", "500ms", "-c", 1, "-s", 8)
        r = run_load(load_bin, "echo", addr, "-R", 1000, "-d", "500ms", "-c", 1, "-s", 8)
    assert res["errors_total"] == 0 and res["ok"] <= 30
    assert res["unsent"] >= 400, res
    assert r.returncode == 0 and "came due but found no connection free" in r.stdout, r.stdout


def test_source_addresses_spread_connections(eddy, load_bin):
    srv = eddy("echo=127.0.0.1:0")
    res = run_json(load_bin, "echo", where(srv, "echo"), "-n", 400, "-c", 8,
                   "--source-addrs", "127.0.0.2-5", "--new-conn")
    assert_clean(res, 400)
    assert res["connects"] == 400
    # eddy does not log its peers; a server of our own tells which source
    # addresses connected.
    peers = set()

    def handle(conn):
        peers.add(conn.getpeername()[0])
        conn.sendall(conn.recv(64))

    with tcp_server(handle) as addr:
        res = run_json(load_bin, "echo", addr, "-n", 40, "-c", 4, "-s", 4,
                       "--source-addrs", "127.0.0.2-127.0.0.5", "--new-conn")
    assert_clean(res, 40)
    assert peers == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}


# ---- errors, counted and reported ---------------------------------------------------


def test_corrupted_echo_counts_mismatches(load_bin):
    corrupted = threading.Event()

    def handle(conn):
        sent = 0
        while data := conn.recv(65536):
            out = bytearray(data)
            # Once: byte 150 of the stream (in the third 64-byte message).
            if sent <= 150 < sent + len(out) and not corrupted.is_set():
                out[150 - sent] ^= 0x20
                corrupted.set()
            sent += len(out)
            conn.sendall(out)

    with tcp_server(handle) as addr:
        r = run_load(load_bin, "echo", addr, "-n", 50, "-c", 1)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "mismatch 1" in r.stdout and "echo reply differs" in r.stdout, r.stdout
    # The connection is replaced, and the rest are answered on the new one.
    assert "49 ok, 1 failed" in r.stdout and "connections  2 opened" in r.stdout, r.stdout


def test_http_500_counts_status_errors(load_bin):
    reply = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!"
    with http_server(lambda i, head: (reply, False)) as addr:
        res = run_json(load_bin, "http", addr, "-n", 30, "-c", 3, rc=1)
    assert res["ok"] == 0 and res["failed"] == 30
    assert res["errors"]["status"] == 30 and res["errors_total"] == 30
    assert res["http_status"]["5xx"] == 30
    assert "HTTP status 500" in res["first_error"]


def test_http_framing_styles_all_accepted(load_bin):
    # Every way a response may end, including ones that close the
    # connection: the client reconnects and none of it is an error.
    styles = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n", False),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", True),
        (b"HTTP/1.0 200 OK\r\n\r\nbody until the close", True),
    ]
    count = [0]
    lock = threading.Lock()

    def respond(i, head):
        assert head.startswith(b"GET /styles HTTP/1.1\r\nHost: example\r\nX-A: b")
        with lock:
            count[0] += 1
            return styles[count[0] % len(styles)]

    with http_server(respond) as addr:
        res = run_json(load_bin, "http", addr, "--path", "/styles", "--host", "example",
                       "-H", "X-A: b", "-n", 300, "-c", 3)
    assert_clean(res, 300)
    assert res["http_status"]["2xx"] == 300
    assert res["connects"] >= 100  # two styles in six close the connection


def test_http_close_mid_pipeline_sends_the_rest_again(load_bin):
    # Every third response says Connection: close; the requests pipelined
    # behind it were never answered, so they go out again on a new
    # connection: nothing is lost and nothing is an error.
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    last = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

    def handle(conn):
        for i, _ in enumerate(http_requests(conn)):
            if i < 2:
                conn.sendall(ok)
                continue
            conn.sendall(last)
            # A graceful close: read what the client still sends, so the
            # close does not turn into a reset.
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
            return

    with tcp_server(handle) as addr:
        res = run_json(load_bin, "http", addr, "-n", 300, "-c", 2, "-P", 4)
    assert_clean(res, 300)
    assert res["connects"] >= 100


def test_pipeline_sends_the_next_batch_when_all_replies_are_in(load_bin):
    # -P 4: four requests in one batch; answering one of them brings no new
    # request (a sliding window would send one at once), answering the
    # other three brings the next batch of four.
    between = []

    def handle(conn):
        got = b""
        while len(got) < 4:
            got += conn.recv(64)
        assert got == b"RRRR"
        conn.sendall(b"x")
        between.append(select.select([conn], [], [], 0.5)[0] != [])
        conn.sendall(b"xxx")
        got = b""
        while len(got) < 4:
            got += conn.recv(64)
        conn.sendall(b"xxxx")
        conn.recv(64)  # eddy-load closes

    with tcp_server(handle) as addr:
        res = run_json(load_bin, "fixed", addr, "--request", "R", "--reply-bytes", 1, "-P", 4,
                       "-n", 8, "-c", 1)
    assert_clean(res, 8)
    assert between == [False], "a request came before the whole batch was answered"


@pytest.mark.parametrize("garbage", [
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"SSH-2.0-OpenSSH_9.2\r\n",
])
def test_http_bad_framing_is_an_error(load_bin, garbage):
    with http_server(lambda i, head: (garbage, False)) as addr:
        res = run_json(load_bin, "http", addr, "-n", 5, "-c", 1, rc=1)
    assert res["ok"] == 0 and res["failed"] == 5
    assert res["errors"]["framing"] == 5, res


@pytest.mark.parametrize("new_conn", [True, False])
def test_closed_port_counts_refusals(load_bin, new_conn):
    # A bound socket that does not listen: the port stays ours, and every
    # connect is refused.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        # Each connect that fails fails the request it would have carried,
        # so that -n ends against a server that is down.
        args = ["http", f"127.0.0.1:{port}", "-n", 50, "-c", 5]
        args += ["--new-conn"] if new_conn else []
        r = run_load(load_bin, *args)
        res = run_json(load_bin, *args, rc=1)
    assert r.returncode == 1
    assert "refused 50" in r.stdout and "Connection refused" in r.stdout, r.stdout
    assert res["errors"]["refused"] == 50 and res["failed"] == 50 and res["ok"] == 0
    assert res["connects"] == 0


def test_reset_connections_are_counted(load_bin):
    def handle(conn):
        conn.recv(64)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with tcp_server(handle) as addr:
        res = run_json(load_bin, "echo", addr, "-n", 10, "-c", 1, rc=1)
    assert res["errors"]["reset"] == 10 and res["failed"] == 10, res


def test_server_closing_early_is_an_eof_error(load_bin):
    def handle(conn):
        conn.recv(64)  # and close without a reply

    with tcp_server(handle) as addr:
        res = run_json(load_bin, "echo", addr, "-n", 10, "-c", 1, "-s", 8, rc=1)
    assert res["errors"]["eof"] + res["errors"]["reset"] == 10 and res["failed"] == 10, res


def test_silent_server_times_out(load_bin):
    # A listener that never accepts: the kernel completes the handshake, and
    # nothing ever answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        t0 = time.monotonic()
        res = run_json(load_bin, "echo", f"127.0.0.1:{s.getsockname()[1]}", "-n", 2, "-c", 1,
                       "--timeout", "200ms", rc=1)
    assert res["errors"]["timeout"] == 2 and res["failed"] == 2, res
    assert time.monotonic() - t0 >= 0.4


def test_open_loop_charges_a_stall_to_every_waiting_request(load_bin):
    # The server holds its first reply for 0.5 s. Closed loop, one request
    # waits; open loop, every request due during the stall waits too, and
    # the report says so (no coordinated omission).
    def handle(conn):
        first = True
        while data := conn.recv(65536):
            if first:
                time.sleep(0.5)
                first = False
            conn.sendall(data)

    with tcp_server(handle) as addr:
        closed = run_json(load_bin, "echo", addr, "-n", 200, "-c", 1, "-s", 8)
        opened = run_json(load_bin, "echo", addr, "-R", 100, "-n", 80, "-c", 1, "-s", 8)
    assert closed["latency_us"]["max"] >= 450e3 and closed["latency_us"]["p50"] < 50e3
    assert opened["latency_us"]["max"] >= 450e3 and opened["latency_us"]["p50"] >= 50e3, opened


# ---- the command line -----------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    ([], "missing MODE"),
    (["echo"], "missing ADDRESS"),
    (["ping", "127.0.0.1:7"], "unknown mode"),
    (["echo", "example.com:7"], "not a valid address"),
    (["echo", "127.0.0.1:0"], "port 0"),
    (["echo", "127.0.0.1:7", "-c", "0"], "--connections"),
    (["echo", "127.0.0.1:7", "-d", "soon"], "--duration"),
    (["echo", "127.0.0.1:7", "-R", "-5"], "--rate"),
    (["echo", "127.0.0.1:7", "--new-conn", "-P", "4"], "--pipeline"),
    (["echo", "127.0.0.1:7", "--path", "/x"], "--path is for http mode"),
    (["http", "127.0.0.1:7", "-s", "10"], "--size is for echo mode"),
    (["fixed", "127.0.0.1:7", "-r", "x"], "--reply-bytes"),
    (["fixed", "127.0.0.1:7", "-r", "\\q", "-k", "1"], "unknown escape"),
    (["echo", "[::1]:7", "--source-addrs", "127.0.0.2-9"], "IPv4 target"),
    (["echo", "127.0.0.1:7", "--source-addrs", "127.0.0.9-2"], "ends before"),
    (["echo", "127.0.0.1:7", "--bogus"], "unknown option"),
    (["echo", "127.0.0.1:7", "-n"], "needs a value"),
])
def test_bad_arguments_exit_2(load_bin, args, message):
    r = run_load(load_bin, *args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert message in r.stderr and r.stderr.startswith("eddy-load: "), r.stderr
    assert r.stdout == ""


def test_help_and_version(load_bin):
    r = run_load(load_bin, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: eddy-load")
    for opt in ("--connections", "--duration", "--requests", "--pipeline", "--rate",
                "--threads", "--json", "--new-conn", "--source-addrs", "--timeout"):
        assert opt in r.stdout
    r = run_load(load_bin, "--version")
    assert r.returncode == 0 and r.stdout.startswith("eddy-load ")


def test_json_has_every_figure(eddy, load_bin):
    srv = eddy("http=127.0.0.1:0")
    res = run_json(load_bin, "http", where(srv, "http"), "-d", "300ms", "-c", 2)
    for key in ("mode", "target", "connections", "threads", "pipeline", "rate", "new_conn",
                "duration_s", "interrupted", "requests", "ok", "failed", "requests_per_s",
                "bytes_sent", "bytes_received", "sent_bytes_per_s", "received_bytes_per_s",
                "latency_us", "connects", "unsent", "http_status", "errors", "errors_total",
                "first_error"):
        assert key in res, key
    assert set(res["latency_us"]) == {"count", "min", "mean", "p50", "p90", "p99", "p99_9", "max"}
    assert set(res["errors"]) == {"refused", "connect", "reset", "eof", "timeout", "mismatch",
                                  "status", "framing"}
    assert 0.299 <= res["duration_s"] < 5 and res["ok"] > 0 and res["interrupted"] is False
    assert res["requests_per_s"] == pytest.approx(res["ok"] / res["duration_s"], rel=0.01)


def test_text_summary(eddy, load_bin):
    srv = eddy("echo=127.0.0.1:0")
    r = run_load(load_bin, "echo", where(srv, "echo"), "-n", 100, "-c", 2)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stdout  # no progress line when stdout is not a terminal
    for word in ("100 ok, 0 failed", "p50", "p90", "p99", "p99.9", "max", "req/s",
                 "errors       none"):
        assert word in r.stdout, r.stdout


def read_pty(fd, until=None, timeout=10.0):
    """Reads the terminal's output until `until` appears in it (None: until
    the program has closed it)."""
    out = b""
    deadline = time.monotonic() + timeout
    while until is None or until not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {until!r} on the terminal within {timeout} s: {out!r}")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: every writer has closed the terminal
            data = b""
        if not data:
            if until is None:
                return out
            pytest.fail(f"terminal closed before {until!r}: {out!r}")
        out += data
    return out


def test_progress_on_a_terminal_and_interrupt(eddy, load_bin):
    srv = eddy("echo=127.0.0.1:0")
    master, slave = pty.openpty()
    p = subprocess.Popen([load_bin, "echo", where(srv, "echo"), "-d", "60", "-c", "2"],
                         stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        out = read_pty(master, b"req/s")
        assert b"\r[" in out and b" ok " in out
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
        out += read_pty(master)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    text = out.decode()
    assert "(interrupted)" in text and "errors       none" in text, text
