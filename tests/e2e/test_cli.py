"""The eddy command line: arguments, addresses, logging, signals, exits."""

import datetime
import os
import re
import signal
import socket
import tempfile
import time

import pytest

from conftest import (LOG_RE, check_time_reply, connect, ports_free, recv_until_eof, round_trip,
                      run_eddy, run_tool)

# ---- help, version, bad arguments --------------------------------------------


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(eddy_bin, flag):
    r = run_eddy(eddy_bin, flag)
    assert r.returncode == 0, r.stderr
    for word in ("echo", "upper", "time", "daytime", "discard", "sink", "hello-raw",
                 "--trigger", "--trace", "--read-size", "--idle-timeout"):
        assert word in r.stdout, f"{word} missing from --help:\n{r.stdout}"


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(eddy_bin, flag):
    r = run_eddy(eddy_bin, flag)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"eddy \d+\.\d+\.\d+\n?", r.stdout), repr(r.stdout)


@pytest.mark.parametrize("args", [
    ["nosuch=127.0.0.1:0"],
    ["nosuch"],
    ["--no-such-option", "echo=127.0.0.1:0"],
    ["echo=127.0.0.1:70000"],
    ["-p", "70000", "echo"],
    ["echo=127.0.0.1:port"],
    ["echo=[::1:0"],
    ["--trigger", "foo", "echo=127.0.0.1:0"],
    ["--log-level", "loud", "echo=127.0.0.1:0"],
    ["--port", "0", "echo", "time"],
    ["--read-size", "lots", "echo=127.0.0.1:0"],
    ["--body-timeout", "0", "http=127.0.0.1:0"],
    ["--send-timeout", "3601", "http=127.0.0.1:0"],
    ["echo=127.0.0.1:0", "--trigger"],
], ids=lambda a: " ".join(a))
def test_bad_arguments_exit_2(eddy_bin, args):
    r = run_eddy(eddy_bin, *args)
    assert r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert r.stderr.startswith("eddy: "), f"stderr does not start with 'eddy: ': {r.stderr!r}"


def test_busy_port_exits_1_naming_address(eddy_bin):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_eddy(eddy_bin, f"echo=127.0.0.1:{port}")
    assert r.returncode == 1, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert f"127.0.0.1:{port}" in r.stderr


# ---- signals -------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_0(eddy, sig):
    srv = eddy("echo=127.0.0.1:0")
    assert round_trip(srv.addr("echo")) == b"ping\n"
    assert srv.stop(sig) == 0


def test_sigterm_with_open_connections_exits_0(eddy):
    srv = eddy("echo=127.0.0.1:0", "time=127.0.0.1:0")
    idle = connect(srv.addr("echo"))
    half = connect(srv.addr("time"))
    half.sendall(b"N")
    try:
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        idle.close()
        half.close()


# ---- logging --------------------------------------------------------------------


def test_log_lines_have_seed001_shape(eddy):
    srv = eddy("echo=127.0.0.1:0", "time=127.0.0.1:0")
    with connect(srv.addr("time")) as s:
        s.sendall(b"Now")
        check_time_reply(recv_until_eof(s))
    srv.stop()
    lines = srv.since()
    assert lines
    for line in lines:
        m = LOG_RE.match(line)
        assert m, f"log line not in seed 001's shape: {line!r}"
        t = datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f")
        assert abs((datetime.datetime.now() - t).total_seconds()) < 30, line
    listening = [l for l in lines if " listening on " in l]
    assert len(listening) == 2
    assert all(" - INFO - " in l for l in listening)


def test_listening_line_reports_real_port(eddy):
    srv = eddy("echo=127.0.0.1:0")
    service, text, (family, (host, port)) = srv.listeners[0]
    assert (service, family, host) == ("echo", socket.AF_INET, "127.0.0.1")
    assert port != 0 and text == f"127.0.0.1:{port}"
    assert round_trip(srv.addr("echo")) == b"ping\n"


def test_log_level_debug_still_starts(eddy):
    srv = eddy("-l", "debug", "echo=127.0.0.1:0")
    assert round_trip(srv.addr("echo")) == b"ping\n"


# ---- addresses --------------------------------------------------------------------


def test_ipv6_and_unix_listeners(eddy):
    with tempfile.TemporaryDirectory(prefix="eddy-e2e-", dir="/tmp") as d:
        path = os.path.join(d, "echo.sock")
        srv = eddy("echo=[::1]:0", f"upper=unix:{path}", "time=[::1]:0")
        fam, (host, _) = srv.addr("echo")
        assert (fam, host) == (socket.AF_INET6, "::1")
        assert srv.addr("upper") == (socket.AF_UNIX, path)
        assert round_trip(srv.addr("echo"), b"v6\n") == b"v6\n"
        assert round_trip(srv.addr("upper"), b"unix\n") == b"UNIX\n"
        with connect(srv.addr("time")) as s:
            s.sendall(b"Now")
            check_time_reply(recv_until_eof(s))
        # Real clients on the same addresses.
        r = run_tool(["socat", "-t", "5", "-", f"UNIX-CONNECT:{path}"], input=b"socat\n")
        assert (r.returncode, r.stdout) == (0, b"SOCAT\n"), r.stderr
        r = run_tool(["ncat", "-U", path], input=b"ncat\n")
        assert (r.returncode, r.stdout) == (0, b"NCAT\n"), r.stderr
        r = run_tool(["socat", "-t", "5", "-", f"TCP6:[::1]:{srv.port('echo')}"], input=b"six\n")
        assert (r.returncode, r.stdout) == (0, b"six\n"), r.stderr
        srv.stop()


def test_ipv6_hello_with_curl(eddy):
    srv = eddy("hello-raw=[::1]:0")
    r = run_tool(["curl", "-s", "-0", "-g", "--max-time", "5",
                  f"http://[::1]:{srv.port('hello-raw')}/"])
    assert (r.returncode, r.stdout) == (0, b"Hello, world!"), r.stderr


def listening_addresses(port):
    """The local addresses of the IPv4 and IPv6 sockets listening on port."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in list(f)[1:]:
                local, state = row.split()[1], row.split()[3]
                addr, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == port:
                    found.append(addr)
    return found


@pytest.mark.parametrize("args", [("echo=0",), ("-p", "0", "echo")], ids=["PORT", "--port"])
def test_default_host_is_loopback(eddy, args):
    """Without --host or a host in the address, eddy is reachable from this
    machine only: it binds 127.0.0.1, not every interface."""
    srv = eddy(*args)
    fam, (host, port) = srv.addr("echo")
    assert (fam, host) == (socket.AF_INET, "127.0.0.1")
    assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1, as the kernel writes it


def test_port_only_address_uses_host_option(eddy):
    srv = eddy("--host", "::1", "echo=0")
    fam, (host, port) = srv.addr("echo")
    assert (fam, host) == (socket.AF_INET6, "::1") and port != 0
    assert round_trip(srv.addr("echo")) == b"ping\n"


def test_port_option_with_one_service(eddy):
    srv = eddy("-H", "127.0.0.1", "-p", "0", "upper")
    fam, (host, port) = srv.addr("upper")
    assert (fam, host) == (socket.AF_INET, "127.0.0.1") and port != 0
    assert round_trip(srv.addr("upper"), b"abc") == b"ABC"


def test_reuseport_lets_two_servers_share_a_port(eddy):
    a = eddy("--reuseport", "echo=127.0.0.1:0")
    b = eddy("--reuseport", f"echo=127.0.0.1:{a.port('echo')}")
    assert b.port("echo") == a.port("echo")
    for _ in range(10):
        assert round_trip(a.addr("echo")) == b"ping\n"


def test_backlog_option(eddy):
    srv = eddy("--backlog", "16", "echo=127.0.0.1:0")
    assert round_trip(srv.addr("echo")) == b"ping\n"


def test_idle_timeout_closes_idle_connection(eddy):
    srv = eddy("--idle-timeout", "1", "echo=127.0.0.1:0")
    with connect(srv.addr("echo")) as busy, connect(srv.addr("echo")) as idle:
        t0 = time.monotonic()
        # busy keeps talking for ~1.5 s and must not be closed meanwhile.
        while time.monotonic() - t0 < 1.5:
            busy.sendall(b"x")
            assert busy.recv(1) == b"x"
            time.sleep(0.1)
        assert recv_until_eof(idle, timeout=5) == b""
        waited = time.monotonic() - t0
        assert 0.8 <= waited < 4.5, f"idle connection closed after {waited:.1f} s"
        busy.sendall(b"y")
        assert busy.recv(1) == b"y"


# ---- the built-in default ---------------------------------------------------------------

DEFAULTS = {"echo": 8888, "time": 9090, "discard": 7788, "http": 8080}


def test_default_services(eddy):
    if not ports_free(DEFAULTS.values()):
        pytest.skip("a default port (8888/9090/7788/8080) is busy")
    srv = eddy()
    got = {service: text for service, text, _ in srv.listeners}
    assert got == {s: f"127.0.0.1:{p}" for s, p in DEFAULTS.items()}
    assert round_trip(srv.addr("echo")) == b"ping\n"
    with connect(srv.addr("time")) as s:
        s.sendall(b"Now")
        check_time_reply(recv_until_eof(s))
