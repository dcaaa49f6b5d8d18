"""time (seed 001): after 3 bytes, reply the local time, then close."""

import socket

from conftest import (check_time_reply, connect, count_epollin, readable, recv_until_eof,
                      TIMEOUT)

import pytest


@pytest.fixture
def timesrv(eddy, trigger):
    return eddy("--trigger", trigger, "time=127.0.0.1:0")


def test_tutorial_client(timesrv):
    # Seed 001's client, verbatim but for the address and a timeout.
    _, (host, port) = timesrv.addr("time")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 6)
    sock.settimeout(TIMEOUT)
    with sock:
        sock.connect((host, port))
        assert sock.send(b"Now") == 3
        reply = sock.recv(1024)
        check_time_reply(reply)
        assert sock.recv(1024) == b""  # then the server closes


def test_extra_bytes_in_one_packet_get_exactly_one_reply(timesrv):
    with connect(timesrv.addr("time")) as s:
        s.sendall(b"Now!!!")
        check_time_reply(recv_until_eof(s))


def test_lots_of_extra_bytes_no_reset(timesrv):
    # Bytes past the third are ignored; the lingering close means the client
    # still sees the reply and a clean EOF, not an RST that eats the reply.
    with connect(timesrv.addr("time")) as s:
        s.sendall(b"Now" + b"!" * 200_000)
        check_time_reply(recv_until_eof(s))


def test_bytes_one_at_a_time(timesrv):
    with connect(timesrv.addr("time"), nodelay=True) as s:
        s.sendall(b"N")
        assert not readable(s, 0.2), "replied after one byte"
        s.sendall(b"o")
        assert not readable(s, 0.2), "replied after two bytes"
        s.sendall(b"w")
        check_time_reply(recv_until_eof(s))


def test_half_close_after_request(timesrv):
    with connect(timesrv.addr("time")) as s:
        s.sendall(b"Now")
        s.shutdown(socket.SHUT_WR)
        check_time_reply(recv_until_eof(s))


def test_concurrent_clients(timesrv):
    socks = [connect(timesrv.addr("time")) for _ in range(100)]
    try:
        for s in socks:
            s.sendall(b"Now")
        for s in socks:
            check_time_reply(recv_until_eof(s))
    finally:
        for s in socks:
            s.close()


def ask_time(c):
    c.sendall(b"Now")
    check_time_reply(recv_until_eof(c))


def test_trace_level_fires_once_per_byte(eddy):
    srv = eddy("--trace", "--read-size", "1", "--workers", "1", "time=127.0.0.1:0")
    n, lines = count_epollin(srv, srv.addr("time"), ask_time)
    assert n >= 3, "level-triggered, 1-byte reads: one EPOLLIN per byte\n" + "\n".join(lines)


def test_trace_edge_fires_once(eddy):
    srv = eddy("--trace", "--read-size", "1", "--workers", "1", "--trigger", "edge",
               "time=127.0.0.1:0")
    n, lines = count_epollin(srv, srv.addr("time"), ask_time)
    assert n == 1, "edge-triggered: one EPOLLIN, read until EAGAIN\n" + "\n".join(lines)


def test_trace_line_shape(eddy):
    srv = eddy("--trace", "time=127.0.0.1:0")
    mark = srv.mark()
    with connect(srv.addr("time")) as s:
        s.sendall(b"Now")
        check_time_reply(recv_until_eof(s))
    m = srv.wait_for(r" - TRACE - epoll fd=\d+ EPOLL[A-Z]+(\|EPOLL[A-Z]+)*\b", start=mark)
    assert m
