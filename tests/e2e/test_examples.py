"""The examples: each tutorial's server rebuilt on the library, and the two
HTTP programs, driven with the tutorials' own client code and curl."""

import re

from conftest import (HttpConn, check_time_reply, connect, curl, http_request, recv_until_eof,
                      send_with_fin)


def test_seed_000_answers_the_tutorial_client(example):
    prog = example("seed-000-http-hello", "--port", "0")
    # The tutorial's client sends "client msg:N" and a blank line.
    with connect(prog.addr()) as s:
        s.sendall(b"client msg:0\n\n")
        reply = recv_until_eof(s)
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n")
    assert reply.endswith(b"\r\n\r\nHello, world!")
    r = curl("-s", "-0", f"http://127.0.0.1:{prog.addr()[1][1]}/")
    assert r.stdout == b"Hello, world!"


def conn_events(prog, mark):
    """The EPOLLIN events seed-001 traced for the connection it accepted
    (not for its listening socket), once the reply has been sent."""
    prog.wait_for(r"replying .* and shutting down", start=mark)
    fd = prog.wait_for(r"accepted \S+ as fd (\d+)", start=mark)[0][1]
    return [l for l in prog.since(mark) if re.search(rf"new event EPOLLIN\S* fd {fd}$", l)]


def test_seed_001_time_with_its_trace(example):
    prog = example("seed-001-time", "--port", "0")
    mark = prog.mark()
    with connect(prog.addr()) as s:
        s.send(b"Now")  # the tutorial's client, as typed into IPython
        check_time_reply(recv_until_eof(s))
    # Level-triggered, one byte per read: an EPOLLIN event per byte.
    assert len(conn_events(prog, mark)) >= 3


def test_seed_001_edge_mode_fires_once(example):
    prog = example("seed-001-time", "--port", "0", "--edge")
    mark = prog.mark()
    with connect(prog.addr()) as s:
        send_with_fin(s, b"Now")
        check_time_reply(recv_until_eof(s))
    # Edge-triggered: one event; the server reads until the socket is empty.
    assert len(conn_events(prog, mark)) == 1, "\n".join(prog.since(mark))


def test_seed_002_echo_and_upper(example):
    echo = example("seed-002-echo", "--port", "0")
    upper = example("seed-002-echo", "--port", "0", "--upper")
    for prog, want in ((echo, b"hello, epoll\n"), (upper, b"HELLO, EPOLL\n")):
        with connect(prog.addr()) as s:
            send_with_fin(s, b"hello, epoll\n")
            assert recv_until_eof(s) == want


def test_seed_004_logs_what_it_receives(example):
    prog = example("seed-004-edge-receiver", "--port", "0")
    mark = prog.mark()
    with connect(prog.addr()) as s:
        send_with_fin(s, b"it's\x00\n")
        assert recv_until_eof(s) == b""
    prog.wait_for(r"recv:b\"it's\\x00\\n\"", start=mark)
    prog.wait_for(r"---offline---", start=mark)


def test_http_hello(example):
    # http-hello is twenty lines and leaves SIGTERM to its default action.
    prog = example("http-hello", "127.0.0.1:0")
    prog.check_clean = False
    with HttpConn(prog.addr()) as c:
        for _ in range(2):  # keep-alive: one connection, two requests
            c.send(http_request())
            r = c.response()
            assert r.status == 200 and r.body == b"Hello, world!\n"


def test_http_routes(example):
    prog = example("http-routes", "--port", "0")
    base = f"http://127.0.0.1:{prog.addr()[1][1]}"
    assert curl("-s", f"{base}/hello/eddy").stdout == b"Hello, eddy!\n"
    assert curl("-s", "--data-binary", "stressed", f"{base}/reverse").stdout == b"desserts"
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", f"{base}/counter")
    assert r.stdout == b"405"
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/nope")
    assert r.stdout == b"404"
