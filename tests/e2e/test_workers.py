"""Worker threads: one event loop per thread, all accepting from the same
listening sockets; limits, draining and logs that stay whole across them."""

import os
import re
import signal
import socket
import threading
import time

import pytest

from conftest import (HttpConn, connect, http_request, recv_until_eof, round_trip, run_eddy,
                      stuck_connection,
                      TIMEOUT)


def tasks(pid):
    """{tid: thread name} of a process."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            out[int(tid)] = f.read().strip()
    return out


def spread_connections(srv, service, n):
    """Opens n connections (each proven served with an echo round trip) and
    returns them with the worker that logged each one's arrival."""
    socks = []
    for i in range(n):
        s = connect(srv.addr(service))
        s.sendall(b"x\n")
        assert s.recv(16) == b"x\n"
        socks.append(s)
    lines = srv.wait_for(r" - (worker-\d+) - DEBUG - " + service + r": new client", count=n)
    return socks, [m[1] for m in lines]


@pytest.mark.parametrize("flag", ["--workers", "-w"])
def test_two_workers_serve_from_two_threads(eddy, flag):
    srv = eddy(flag, "2", "echo=127.0.0.1:0", "http=127.0.0.1:0")
    srv.wait_for(r"INFO - process \d+ serving with 2 worker\(s\)")
    names = sorted(tasks(srv.pid).values())
    # The main thread (signals, sockets, restarts) and one per worker.
    assert names == ["eddy", "eddy-w1", "eddy-w2"], names
    assert round_trip(srv.addr("echo")) == b"ping\n"
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request())
        assert c.response().body == b"Hello, world!"


def test_default_is_one_worker_per_cpu(eddy):
    srv = eddy("echo=127.0.0.1:0")
    cpus = len(os.sched_getaffinity(0))
    srv.wait_for(rf"serving with {cpus} worker\(s\)")
    assert len(tasks(srv.pid)) == cpus + 1


def test_both_workers_accept(eddy):
    """Connections that arrive one at a time would all land on whichever
    worker is idle; a worker holding more than its share leaves the next
    ones to the other, so both get some."""
    srv = eddy("--workers", "2", "-l", "debug", "echo=127.0.0.1:0")
    socks, workers = spread_connections(srv, "echo", 20)
    try:
        counts = {w: workers.count(w) for w in set(workers)}
        assert set(counts) == {"worker-1", "worker-2"}, counts
        assert min(counts.values()) >= 6, counts
    finally:
        for s in socks:
            s.close()


def test_max_connections_is_global(eddy):
    # Six connections, one after another, land on both workers (one holds
    # back past its share plus a little).
    srv = eddy("--workers", "2", "--max-connections", "6", "-l", "debug", "echo=127.0.0.1:0")
    socks, workers = spread_connections(srv, "echo", 6)
    try:
        assert len(set(workers)) == 2, f"all six on one worker: {workers}"
        mark = srv.mark()
        # Whichever worker takes it, the seventh is one too many.
        for _ in range(3):
            with connect(srv.addr("echo")) as extra:
                assert recv_until_eof(extra) == b""
        srv.wait_for(r"WARNING - refused \d connection\(s\): --max-connections 6", start=mark,
                     timeout=3)
        refused = sum(int(m[1]) for m in srv.wait_for(r"refused (\d) connection", start=mark))
        assert refused == 3
    finally:
        for s in socks:
            s.close()
    # Their places come back, whichever worker held them.
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            with connect(srv.addr("echo")) as s:
                s.sendall(b"back\n")
                if s.recv(16) == b"back\n":
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "no place freed after the clients left"
        time.sleep(0.05)


def test_sigterm_drains_every_worker(eddy):
    srv = eddy("--workers", "2", "-l", "debug", "http=127.0.0.1:0", "echo=127.0.0.1:0")
    # Echo connections show which worker holds what; the HTTP ones are
    # spread the same way.
    socks, workers = spread_connections(srv, "echo", 8)
    assert len(set(workers)) == 2
    busy = [connect(srv.addr("http")) for _ in range(4)]
    request = http_request()
    for b in busy:
        b.sendall(request[:10])  # requests under way
    for s in socks:
        s.close()
    time.sleep(0.2)  # the echo closes reach the server
    mark = srv.mark()
    srv.proc.send_signal(signal.SIGTERM)
    m = srv.wait_for(r"SIGTERM received: no longer accepting; (\d+) connection\(s\) to finish",
                     start=mark)
    assert int(m[0][1]) == 4
    # No worker accepts any more, so the sockets are closed: refused at once.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(srv.addr("http")[1], timeout=TIMEOUT).close()
    per_worker = srv.wait_for(r" - (worker-\d) - DEBUG - no longer accepting; (\d+) connection",
                              start=mark, count=2)
    assert sorted(w[1] for w in per_worker) == ["worker-1", "worker-2"]
    for b in busy:
        b.sendall(request[10:])
        reply = recv_until_eof(b)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in reply
        b.close()
    assert srv.stop() == 0
    assert srv.since(mark)[-1].endswith(" - INFO - stopped")


def test_drain_timeout_counts_across_workers(eddy):
    srv = eddy("--workers", "2", "--drain-timeout", "1", "-l", "debug", "echo=127.0.0.1:0")
    socks = []
    # Keep opening until both workers hold one that cannot finish.
    while True:
        socks.append(stuck_connection(srv.addr("echo")))
        holders = {m[1] for m in srv.wait_for(r" - (worker-\d) - DEBUG - echo: new client",
                                              count=len(socks))}
        if len(holders) == 2:
            break
        assert len(socks) < 10, "every connection went to one worker"
    try:
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(TIMEOUT)
    finally:
        for s in socks:
            s.close()
    assert srv.stop() == 0
    srv.wait_for(rf"WARNING - closed {len(socks)} connection\(s\) that did not finish in time")


def test_second_signal_stops_every_worker_at_once(eddy):
    srv = eddy("--workers", "2", "--drain-timeout", "30", "echo=127.0.0.1:0")
    socks = [stuck_connection(srv.addr("echo")) for _ in range(4)]
    try:
        mark = srv.mark()
        srv.proc.send_signal(signal.SIGINT)
        srv.wait_for(r"SIGINT received", start=mark)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(TIMEOUT)
        assert time.monotonic() - t0 < 2
    finally:
        for s in socks:
            s.close()
    assert srv.stop() == 0
    srv.wait_for(r"closed 4 connection\(s\) that did not finish in time")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_cpu_affinity_pins_each_worker(eddy):
    srv = eddy("--workers", "2", "--cpu-affinity", "echo=127.0.0.1:0")
    srv.wait_for(r"serving with 2 worker\(s\), pinned to CPUs")  # the threads are named
    cpus = sorted(os.sched_getaffinity(0))
    pinned = {}
    for tid, name in tasks(srv.pid).items():
        if name.startswith("eddy-w"):
            pinned[name] = sorted(os.sched_getaffinity(tid))
    assert pinned == {"eddy-w1": [cpus[0]], "eddy-w2": [cpus[1]]}
    assert round_trip(srv.addr("echo")) == b"ping\n"


CLF_RE = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /(\d+) HTTP/1\.1" 200 13$')


def test_access_log_lines_stay_whole_across_workers(eddy, tmp_path):
    log = tmp_path / "access.log"
    srv = eddy("--workers", "2", "--access-log", log, "http=127.0.0.1:0")
    per_thread, nthreads = 150, 6
    errors = []

    def client(k):
        try:
            with HttpConn(srv.addr("http")) as c:
                for i in range(per_thread):
                    c.send(http_request(target=f"/{k * 1000 + i}"))
                    assert c.response().status == 200
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[0]
    assert srv.stop() == 0
    lines = log.read_text().splitlines()
    bad = [l for l in lines if not CLF_RE.match(l)]
    assert not bad, bad[:5]
    seen = sorted(int(CLF_RE.match(l)[1]) for l in lines)
    assert seen == sorted(k * 1000 + i for k in range(nthreads) for i in range(per_thread))


def test_open_file_limit_is_raised_and_logged(eddy):
    srv = eddy("echo=127.0.0.1:0", prefix=["prlimit", "--nofile=256:4096"])
    srv.wait_for(r"INFO - open-file limit raised from 256 to 4096")
    with open(f"/proc/{srv.pid}/limits") as f:
        assert re.search(r"^Max open files\s+4096\s+4096\b", f.read(), re.M)


@pytest.mark.parametrize("value", ["0", "-1", "two", "", "1025", "1.5"])
def test_bad_worker_counts_exit_2(eddy_bin, value):
    r = run_eddy(eddy_bin, "--workers", value, "echo=127.0.0.1:0")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("eddy: --workers: "), r.stderr
