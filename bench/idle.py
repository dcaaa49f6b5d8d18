#!/usr/bin/python3
"""bench/idle.py: hold many idle keep-alive HTTP connections to a server.

    bench/idle.py PORT COUNT

Opens COUNT connections to 127.0.0.1:PORT, sends one HTTP/1.1 request on
each, reads its whole response (so the server has done one request/response
cycle on every connection, as a real idle keep-alive client leaves it), then
prints "ready COUNT" on standard output and holds them, silent, until it gets
SIGTERM or SIGINT or its standard input closes. bench/scale.sh uses it to
measure memory per idle connection and throughput next to idle connections.

Source addresses are spread over 127.0.0.10-127.0.0.59: one source address
has only ~28,000 ephemeral ports, and the TIME_WAIT left by earlier runs
uses them up. A process may hold at most PER_PROCESS connections (the open
file limit here is a hard 20,000 per process), so larger counts are split
over forked worker processes. Everything is bounded: at most IN_FLIGHT
connects at a time (so the server's listen backlog does not overflow) and
TIMEOUT seconds in all; past it, the holder fails and says how far it got.
"""

import errno
import os
import resource
import selectors
import signal
import socket
import stat
import sys
import time

IN_FLIGHT = 200
PER_PROCESS = 10000
TIMEOUT = 120.0
SOURCES = ["127.0.0.%d" % i for i in range(10, 60)]
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"Hello, world!"


def fail(msg):
    sys.stderr.write("idle.py: %s\n" % msg)
    sys.stderr.flush()
    os._exit(1)


def open_connections(port, count, first):
    """Returns COUNT connected sockets, each past one request and response."""
    sel = selectors.DefaultSelector()
    done = []
    started = 0
    pending = {}  # socket -> bytes of response read so far
    deadline = time.monotonic() + TIMEOUT

    def start_one(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        # Port 0 with IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect
        # time for the whole 4-tuple, so ports in TIME_WAIT towards another
        # server port can be used again.
        s.bind((SOURCES[(first + i) % len(SOURCES)], 0))
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            fail("connect #%d: %s" % (first + i, os.strerror(err)))
        pending[s] = None  # None: connect in progress
        sel.register(s, selectors.EVENT_WRITE)

    while len(done) < count:
        while started < count and len(pending) < IN_FLIGHT:
            start_one(started)
            started += 1
        if time.monotonic() > deadline:
            fail("only %d of %d connections ready after %.0f s" % (len(done), count, TIMEOUT))
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            if pending[s] is None:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail("connect: %s" % os.strerror(err))
                # The request is tiny: one send takes it whole.
                s.send(REQUEST)
                pending[s] = b""
                sel.modify(s, selectors.EVENT_READ)
                continue
            data = s.recv(4096)
            if not data:
                fail("the server closed a connection before answering: %r" % pending[s][:200])
            data = pending[s] + data
            if not data.endswith(BODY):
                pending[s] = data
                continue
            if not data.startswith(b"HTTP/1.1 200"):
                fail("unexpected response: %r" % data[:200])
            sel.unregister(s)
            del pending[s]
            done.append(s)
    sel.close()
    return done


def wait_for_stop():
    """Sleeps until SIGTERM/SIGINT or until standard input closes."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    # Only a pipe or a terminal can close under us; /dev/null (a background
    # job's usual stdin) reads as closed at once, so it is not watched.
    mode = os.fstat(0).st_mode
    if stat.S_ISFIFO(mode) or os.isatty(0):
        sel.register(0, selectors.EVENT_READ)
    while not stop:
        for key, _ in sel.select(timeout=1.0):
            if not os.read(0, 4096):
                return


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: idle.py PORT COUNT\n")
        sys.exit(2)
    port, count = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per = min(PER_PROCESS, hard - 100)
    shares = [min(per, count - i) for i in range(0, count, per)] or [0]

    # One worker process per share; each reports on its own pipe.
    workers = []

    def stop_workers(*_):
        for pid, _ in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, lambda *_: (stop_workers(), os._exit(0)))
    signal.signal(signal.SIGINT, lambda *_: (stop_workers(), os._exit(0)))
    for n, share in enumerate(shares):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.close(r)
            try:
                held = open_connections(port, share, n * per)
                os.write(w, b"%d\n" % len(held))
                wait_for_stop()
            except Exception as e:  # any failure must end the worker loudly
                fail("worker %d: %s" % (n, e))
            os._exit(0)
        os.close(w)
        workers.append((pid, r))
    total = 0
    for pid, r in workers:
        line = os.read(r, 64)
        if not line:
            stop_workers()
            fail("a worker failed (its message is above)")
        total += int(line)
    print("ready %d" % total, flush=True)
    wait_for_stop()
    stop_workers()
    for pid, _ in workers:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
