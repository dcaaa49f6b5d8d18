"""What a server owes its other users when one client misbehaves: bounded
memory under back-pressure, surviving resets, many connections, fd limits."""

import os
import re
import resource
import select
import socket
import threading
import time

import pytest

from conftest import (connect, cpu_seconds, recv_exact,
                      round_trip, rss_kib, rst_close, served_again)


def test_backpressure_bounds_memory(eddy):
    """A client sends 50 MiB to echo without reading: eddy must stop reading
    (the client blocks) instead of buffering it all, then deliver every byte
    once the client reads."""
    srv = eddy("echo=127.0.0.1:0")
    total = 50 << 20
    data = os.urandom(total)
    rss0 = rss_kib(srv.pid)
    s = connect(srv.addr("echo"), timeout=30)
    # A small receive buffer keeps the kernel from soaking up the test.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sent = [0]
    err = []

    def sender():
        view = memoryview(data)
        try:
            while sent[0] < total:
                sent[0] += s.send(view[sent[0]:sent[0] + 256 * 1024])
        except Exception as exc:
            err.append(exc)

    t = threading.Thread(target=sender, daemon=True)
    try:
        t.start()
        # Wait until the sender has made no progress for 0.5 s.
        deadline = time.monotonic() + 20
        last, since, peak = -1, time.monotonic(), rss0
        while True:
            now = time.monotonic()
            assert now < deadline, "sender never stalled"
            peak = max(peak, rss_kib(srv.pid))
            if sent[0] != last:
                last, since = sent[0], now
            elif now - since >= 0.5 or not t.is_alive():
                break
            time.sleep(0.05)
        assert not err, f"sender failed: {err[0]!r}"
        assert sent[0] < total, "the whole 50 MiB was accepted without the client reading"
        # While the client is blocked, other clients are still served.
        assert round_trip(srv.addr("echo"), b"meanwhile\n") == b"meanwhile\n"
        for _ in range(5):
            peak = max(peak, rss_kib(srv.pid))
            time.sleep(0.05)
        growth = (peak - rss0) / 1024
        assert growth < 64, f"RSS grew by {growth:.1f} MiB while the client was blocked"
        # Now read it all back, intact, while the sender finishes.
        got = recv_exact(s, total, timeout=30)
        t.join(10)
        assert not t.is_alive() and not err
        assert got == data
    finally:
        s.close()


def test_client_reset_mid_reply(eddy):
    srv = eddy("echo=127.0.0.1:0")
    bystander = connect(srv.addr("echo"))
    try:
        block = os.urandom(256 * 1024)
        for _ in range(5):
            s = connect(srv.addr("echo"))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.setblocking(False)
            # Send until the pipe is full: eddy then has echo output it
            # cannot deliver.
            deadline = time.monotonic() + 5
            sent = 0
            while time.monotonic() < deadline and sent < 64 << 20:
                try:
                    sent += s.send(block)
                except BlockingIOError:
                    _, w, _ = select.select([], [s], [], 0.2)
                    if not w:
                        break
            rst_close(s)
            assert srv.alive(), "eddy died after a client reset"
            bystander.sendall(b"still there\n")
            assert recv_exact(bystander, 12) == b"still there\n"
        assert round_trip(srv.addr("echo"), b"after\n") == b"after\n"
    finally:
        bystander.close()


def test_connect_and_reset_storm(eddy):
    srv = eddy("echo=127.0.0.1:0", "time=127.0.0.1:0", "daytime=127.0.0.1:0",
               "discard=127.0.0.1:0", "hello-raw=127.0.0.1:0", "sink=127.0.0.1:0")
    for service, _, addr in srv.listeners:
        for i in range(40):
            s = connect(addr)
            if i % 2:
                s.sendall(b"N")
            rst_close(s) if i % 4 < 2 else s.close()
    assert srv.alive()
    assert round_trip(srv.addr("echo"), b"ok\n") == b"ok\n"


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip(f"fd hard limit {hard} < {n}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def test_thousand_concurrent_connections(eddy, trigger):
    # The server keeps the default fd limit it inherits; only this process
    # raises its own afterwards, if it must, for the client ends.
    srv = eddy("--trigger", trigger, "echo=127.0.0.1:0")
    raise_nofile(1100)
    socks = []
    try:
        for _ in range(1000):
            socks.append(connect(srv.addr("echo"), timeout=10))
        for i, s in enumerate(socks):
            s.sendall(b"client %04d\n" % i)
        for i, s in enumerate(socks):
            assert recv_exact(s, 12, timeout=10) == b"client %04d\n" % i
    finally:
        for s in socks:
            s.close()


FD_WARNING_RE = r" - WARNING - .*(?i:EMFILE|too many open files|file descriptor|fd limit|nofile|descriptors|fds)"


def test_fd_exhaustion_does_not_spin(eddy):
    """Under a 64-fd limit, 200 clients at once: eddy must neither burn CPU
    retrying accept() nor flood the log, and recovers when they leave."""
    srv = eddy("echo=127.0.0.1:0", prefix=["prlimit", "--nofile=64:64"])
    with open(f"/proc/{srv.pid}/limits") as f:  # prlimit exec'd eddy itself
        assert re.search(r"^Max open files\s+64\s+64\b", f.read(), re.M)
    mark = srv.mark()
    t0 = time.monotonic()
    clients = []
    try:
        for _ in range(200):
            clients.append(connect(srv.addr("echo")))
        # The first client was accepted below the limit; it still works.
        clients[0].sendall(b"first\n")
        assert recv_exact(clients[0], 6) == b"first\n"
        srv.wait_for(FD_WARNING_RE, start=mark)
        cpu0 = cpu_seconds(srv.pid)
        time.sleep(2.0)
        cpu = cpu_seconds(srv.pid) - cpu0
        assert cpu < 0.5, f"eddy used {cpu:.2f} s of CPU in 2 s at the fd limit"
        assert srv.alive()
        elapsed = time.monotonic() - t0
        warnings = [l for l in srv.since(mark) if re.search(FD_WARNING_RE, l)]
        assert len(warnings) <= elapsed + 2, \
            f"{len(warnings)} fd-limit warnings in {elapsed:.1f} s:\n" + "\n".join(warnings[:10])
    finally:
        for s in clients:
            s.close()
    # Once eddy has seen the clients go, new ones are served again. Until
    # then a newcomer may still be shed: the other worker's listener can wake
    # before this one has read the departing clients' FINs.
    served_again(lambda: round_trip(srv.addr("echo"), b"after\n", timeout=2) == b"after\n")
