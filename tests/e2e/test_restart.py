"""Zero-downtime restart (SIGUSR2, eddy --upgrade) and socket activation:
listening sockets passed the systemd way, LISTEN_PID/LISTEN_FDS/
LISTEN_FDNAMES.

A restarted eddy is the child of the one it replaces, which then exits; this
test process becomes a child subreaper so those orphans are reparented to it
and their exit statuses can be checked."""

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import (HttpConn, START_TIMEOUT, TIMEOUT, eddy_path, http_request, round_trip,
                      run_eddy)

PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())
    yield


def our_children():
    """pids of the processes whose parent is this one (restarted eddys are
    reparented here when the process they replaced exits)."""
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


@pytest.fixture(autouse=True)
def no_successor_left():
    """After each test (autouse: set up before the eddy fixture, so torn down
    after it has stopped what it started), no restarted eddy may be left
    running: a test that fails half-way
    stops them here instead of leaving them behind."""
    yield
    left = []
    for pid in our_children():
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "eddy":
                continue
        left.append(pid)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert not left, f"restarted eddy processes left running: {left}"


def wait_pid_exit(pid, timeout=TIMEOUT * 2):
    """Exit status of pid, one of our children (or reparented to us)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Not ours yet: its parent has not exited, so it is not
            # reparented to us.
            time.sleep(0.02)
            continue
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    pytest.fail(f"process {pid} did not exit within {timeout} s")


def read_pid(path):
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.strip().isdigit() else None


def wait_new_pid(path, old, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_pid(path)
        if pid and pid != old:
            return pid
        time.sleep(0.01)
    pytest.fail(f"{path} still says {old} after {timeout} s")


def stop_pid(pid):
    os.kill(pid, signal.SIGTERM)
    return wait_pid_exit(pid)


# ---- a load that must not notice ---------------------------------------------------


class BadResponse(Exception):
    pass


class Load:
    """HTTP clients on threads until stopped: keep-alive ones reuse their
    connection; new-connection ones connect for every request (Connection:
    close). Anything but a whole 200 is an error. When the server closes a
    reused keep-alive connection before any byte of the response, the
    request is sent again on a new connection, as every HTTP client does
    (RFC 9112, 9.3.1), and counted apart: a draining eddy gives idle
    connections a grace, so a busy client should never need that."""

    def __init__(self, addr, keepalive=4, newconn=4):
        self.addr = addr
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.ok = {"keepalive": 0, "newconn": 0}
        self.retried = 0
        self.errors = []
        self.threads = [threading.Thread(target=self.keepalive, daemon=True)
                        for _ in range(keepalive)]
        self.threads += [threading.Thread(target=self.newconn, daemon=True)
                         for _ in range(newconn)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(TIMEOUT * 2)

    def count(self):
        with self.lock:
            return self.ok["keepalive"] + self.ok["newconn"]

    def error(self, what):
        with self.lock:
            self.errors.append(what)

    def wait_progress(self, n=50, timeout=TIMEOUT):
        start = self.count()
        deadline = time.monotonic() + timeout
        while self.count() < start + n:
            assert not self.errors, self.errors[:5]
            assert time.monotonic() < deadline, f"fewer than {n} requests in {timeout} s"
            time.sleep(0.01)

    @staticmethod
    def read_response(sock, buf):
        """One response off sock: (status, headers, what follows it).
        Raises EOFError when the server closes (or resets) before any byte
        of it, BadResponse for anything else that is wrong."""
        def more():
            try:
                b = sock.recv(65536)
            except ConnectionResetError:
                b = b""
            if not b and not buf:
                raise EOFError
            if not b:
                raise BadResponse(f"closed inside a response: {bytes(buf[:200])!r}")
            buf.extend(b)

        while b"\r\n\r\n" not in buf:
            more()
        head, _, _ = bytes(buf).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        length = int(headers["content-length"])
        while len(buf) < len(head) + 4 + length:
            more()
        body = bytes(buf[len(head) + 4:len(head) + 4 + length])
        if body != b"Hello, world!":
            raise BadResponse(f"wrong body {body!r}")
        return status, headers, buf[len(head) + 4 + length:]

    def keepalive(self):
        request = http_request()
        sock = None
        while not self.stop_flag.is_set():
            fresh = sock is None
            try:
                if fresh:
                    sock = socket.create_connection(self.addr, timeout=TIMEOUT)
                    buf = bytearray()
                try:
                    sock.sendall(request)
                except (BrokenPipeError, ConnectionResetError):
                    raise EOFError
                status, headers, buf = self.read_response(sock, buf)
            except EOFError:
                sock.close()
                sock = None
                if fresh:
                    self.error("keep-alive: closed before a response on a new connection")
                else:
                    with self.lock:
                        self.retried += 1
                continue
            except (OSError, BadResponse, ValueError, KeyError, IndexError) as exc:
                self.error(f"keep-alive: {exc!r}")
                if sock:
                    sock.close()
                sock = None
                continue
            if status != 200:
                self.error(f"keep-alive: status {status}")
            with self.lock:
                self.ok["keepalive"] += 1
            if headers.get("connection") == "close":
                sock.close()
                sock = None
        if sock:
            sock.close()

    def newconn(self):
        request = http_request(headers=[("Connection", "close")])
        while not self.stop_flag.is_set():
            try:
                with socket.create_connection(self.addr, timeout=TIMEOUT) as sock:
                    sock.sendall(request)
                    status, _, _ = self.read_response(sock, bytearray())
                    if status != 200:
                        raise BadResponse(f"status {status}")
                with self.lock:
                    self.ok["newconn"] += 1
            except (EOFError, OSError, BadResponse, ValueError, KeyError, IndexError) as exc:
                self.error(f"new connection: {exc!r}")


def eddy_load():
    """build/eddy-load next to the eddy under test, if it was built."""
    p = eddy_path().parent / "eddy-load"
    return str(p) if p.is_file() and os.access(p, os.X_OK) else None


# ---- restart -----------------------------------------------------------------------


def test_five_restarts_under_load_drop_nothing(eddy, tmp_path):
    pidfile = tmp_path / "eddy.pid"
    srv = eddy("--workers", "2", "--pid-file", pidfile, "http=127.0.0.1:0")
    family, addr = srv.addr("http")
    pids = [srv.pid]
    srv.wait_for(r"serving with 2 worker")  # then the pid file is written
    assert read_pid(pidfile) == srv.pid
    load_tool = eddy_load()
    loaders = {}
    if load_tool:
        # Two more, independent clients in C: one connection per request,
        # and keep-alive connections.
        for mode, flags in (("new connections", ["--new-conn"]), ("keep-alive", [])):
            loaders[mode] = subprocess.Popen(
                [load_tool, *flags, "-c", "8", "-d", "60s", "--json", "--timeout", "3s",
                 f"http://{addr[0]}:{addr[1]}/"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Load(addr) as load:
            load.wait_progress()
            for i in range(5):
                old = pids[-1]
                mark = srv.mark()
                os.kill(old, signal.SIGUSR2)
                new = wait_new_pid(pidfile, old)
                srv.wait_for(rf"INFO - process {new} is ready: no longer accepting", start=mark,
                             timeout=START_TIMEOUT)
                status = srv.proc.wait(TIMEOUT * 2) if old == srv.pid else wait_pid_exit(old)
                assert status == 0, f"process {old} exited with {status}"
                pids.append(new)
                load.wait_progress()  # the new process serves
            assert not load.errors, load.errors[:10]
            served = dict(load.ok)
        print(f"requests: {served}; keep-alive requests sent again: {load.retried}")
        assert served["keepalive"] > 100 and served["newconn"] > 100, served
        assert load.retried == 0, f"{load.retried} keep-alive connections closed under a request"
    finally:
        for p in loaders.values():
            p.send_signal(signal.SIGINT)
        outs = {mode: p.communicate(timeout=TIMEOUT * 2) for mode, p in loaders.items()}
        last = read_pid(pidfile)
        assert last == pids[-1]
        assert stop_pid(last) == 0
    assert len(set(pids)) == 6, pids
    assert not pidfile.exists(), "the last process left its pid file behind"
    for mode, (out, err) in outs.items():
        summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        print(f"eddy-load, {mode}:", out.strip()[-600:], err.strip()[-300:])
        assert summary, f"eddy-load ({mode}) printed no summary: {err!r}"
        assert summary["ok"] > 100, summary
        assert summary["failed"] == 0 and summary["errors_total"] == 0, summary


def test_upgrade_command_waits_for_the_new_process(eddy, eddy_bin, tmp_path):
    pidfile = tmp_path / "eddy.pid"
    sock = tmp_path / "echo.sock"
    srv = eddy("--workers", "1", "--pid-file", pidfile, f"echo=unix:{sock}", "http=127.0.0.1:0")
    srv.wait_for(r"serving with 1 worker")
    old = srv.pid
    r = run_eddy(eddy_bin, "--upgrade", "--pid-file", pidfile, timeout=START_TIMEOUT)
    assert r.returncode == 0, r.stderr
    new = read_pid(pidfile)
    assert new != old and f"process {new} replaced process {old}" in r.stdout
    assert srv.proc.wait(TIMEOUT) == 0
    # The Unix socket's file is the new process's now: still there, served.
    assert round_trip((socket.AF_UNIX, str(sock))) == b"ping\n"
    lines = srv.since()
    assert any(re.search(r"echo listening on unix:\S+ \(inherited\)", l) for l in lines)
    assert stop_pid(new) == 0


def test_upgrade_needs_a_pid_file_naming_eddy(eddy_bin, tmp_path):
    r = run_eddy(eddy_bin, "--upgrade")
    assert r.returncode == 2 and "--pid-file" in r.stderr
    pidfile = tmp_path / "other.pid"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        pidfile.write_text(f"{sleeper.pid}\n")
        r = run_eddy(eddy_bin, "--upgrade", "--pid-file", pidfile)
        assert r.returncode == 1
        assert "not eddy" in r.stderr
        assert sleeper.poll() is None, "--upgrade signalled a process that is not eddy"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_failed_restart_keeps_serving(eddy, tmp_path):
    """The new process cannot start (here: its static root is gone); the old
    one says why and keeps serving."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "index.html").write_text("hi\n")
    pidfile = tmp_path / "eddy.pid"
    srv = eddy("--workers", "1", "--pid-file", pidfile, "--root", root, "static=127.0.0.1:0",
               "echo=127.0.0.1:0")
    srv.check_clean = False  # the failure is logged as an ERROR
    srv.wait_for(r"serving with 1 worker")
    root.rename(tmp_path / "moved")
    mark = srv.mark()
    os.kill(srv.pid, signal.SIGUSR2)
    m = srv.wait_for(r"ERROR - restart failed: process (\d+) exited with status 1 before it "
                     r"was ready; still serving", start=mark, timeout=START_TIMEOUT)
    assert read_pid(pidfile) == srv.pid
    assert round_trip(srv.addr("echo")) == b"ping\n"
    # A later attempt may succeed.
    (tmp_path / "moved").rename(root)
    mark = srv.mark()
    os.kill(srv.pid, signal.SIGUSR2)
    new = wait_new_pid(pidfile, srv.pid)
    srv.wait_for(rf"process {new} is ready", start=mark)
    assert srv.proc.wait(TIMEOUT) == 0
    assert int(m[0][1]) != new
    assert stop_pid(new) == 0


# ---- socket activation -------------------------------------------------------------

# Binds the sockets a service manager would, puts them at fd 3.., sets the
# variables and execs eddy in the same process, so LISTEN_PID is eddy's pid.
# argv: PORTFILE SPEC... -- EDDY ARGS..., SPEC being NAME@HOST or 'pipe'
LAUNCHER = r"""
import os, socket, sys
sep = sys.argv.index("--")
portfile, specs, cmd = sys.argv[1], sys.argv[2:sep], sys.argv[sep + 1:]
fds, names, ports = [], [], []
for spec in specs:
    if spec == "pipe":
        r, w = os.pipe()
        fds.append(r); names.append("pipe"); ports.append(0)
        continue
    name, host = spec.split("@")
    s = socket.socket()
    s.bind((host, 0))
    s.listen(64)
    fds.append(s.detach()); names.append(name); ports.append(0)
    ports[-1] = socket.socket(fileno=os.dup(fds[-1])).getsockname()[1]
open(portfile, "w").write(" ".join(map(str, ports)))
moved = [os.dup(fd) for fd in fds]
for i, fd in enumerate(moved):
    os.dup2(fd, 3 + i)
env = dict(os.environ, LISTEN_FDS=str(len(fds)), LISTEN_PID=os.environ.get("FAKE_PID", str(os.getpid())),
           LISTEN_FDNAMES=":".join(names))
os.execve(cmd[0], cmd, env)
"""


def listening_ports():
    """{port: [socket inode, ...]} of the IPv4 TCP sockets listening now."""
    out = {}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                out.setdefault(int(fields[1].split(":")[1], 16), []).append(int(fields[9]))
    return out


def activate(eddy, tmp_path, specs, *args, expect=None):
    portfile = tmp_path / "ports"
    srv = eddy(*args, prefix=[sys.executable, "-c", LAUNCHER, portfile, *specs, "--"],
               expect=expect)
    ports = [int(p) for p in portfile.read_text().split()]
    return srv, ports


def test_socket_activation_serves_without_binding(eddy, tmp_path):
    srv, ports = activate(eddy, tmp_path, ["http@127.0.0.1"], "--workers", "2",
                          "http=127.0.0.1:0")
    name, text, (family, (host, port)) = srv.listeners[0]
    assert port == ports[0], "eddy bound a socket of its own"
    assert any(l.endswith(f"http listening on 127.0.0.1:{port} (inherited)") for l in srv.lines)
    # fd 3 is the launcher's socket, and eddy has no other TCP listener.
    inode = os.stat(f"/proc/{srv.pid}/fd/3").st_ino
    assert listening_ports()[port] == [inode]
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request())
        assert c.response().status == 200


def test_socket_activation_matches_by_address_and_closes_the_rest(eddy, tmp_path):
    # Two named sockets and one that is not a socket at all; eddy runs one
    # service, which claims the socket at its address.
    srv, ports = activate(eddy, tmp_path, ["echo@127.0.0.1", "http@127.0.0.2", "pipe"],
                          "--workers", "1", "http=127.0.0.2:0", expect=1)
    assert srv.listeners[0][0] == "http" and srv.port("http") == ports[1]
    srv.wait_for(r"WARNING - inherited fd 5 is not a socket")
    srv.wait_for(rf"WARNING - inherited socket 127\.0\.0\.1:{ports[0]} named echo \(fd 3\) "
                 r"matches no service: closing it")
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request())
        assert c.response().status == 200
    # Closed: nothing listens on the unclaimed socket's port any more.
    assert ports[0] not in listening_ports()


def test_sockets_for_another_pid_are_left_alone(eddy, tmp_path):
    os.environ["FAKE_PID"] = "1"
    try:
        srv, ports = activate(eddy, tmp_path, ["http@127.0.0.1"], "--workers", "1",
                              "http=127.0.0.1:0")
    finally:
        del os.environ["FAKE_PID"]
    assert srv.port("http") != ports[0]
    assert not any("(inherited)" in l for l in srv.lines)
    assert os.path.exists(f"/proc/{srv.pid}/fd/3"), "eddy closed an fd that was not its own"


def test_systemd_is_told_ready_and_the_new_main_pid(eddy, tmp_path):
    """With NOTIFY_SOCKET (systemd's Type=notify, NotifyAccess=all), each
    eddy says READY=1 with its MAINPID once it serves, so systemd follows a
    restart to the new process; SIGTERM says STOPPING=1."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(START_TIMEOUT)
        os.environ["NOTIFY_SOCKET"] = path
        try:
            srv = eddy("--workers", "1", "--pid-file", tmp_path / "pid", "echo=127.0.0.1:0")
        finally:
            del os.environ["NOTIFY_SOCKET"]
        assert notify.recv(256) == f"READY=1\nMAINPID={srv.pid}".encode()
        os.kill(srv.pid, signal.SIGUSR2)
        new = int(re.fullmatch(rb"READY=1\nMAINPID=(\d+)", notify.recv(256))[1])
        assert new != srv.pid and new == read_pid(tmp_path / "pid")
        assert srv.proc.wait(TIMEOUT) == 0
        os.kill(new, signal.SIGTERM)
        assert notify.recv(256) == b"STOPPING=1"
        assert wait_pid_exit(new) == 0
