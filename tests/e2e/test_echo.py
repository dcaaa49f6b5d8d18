"""echo (RFC 862) and upper (seed 002's upper-case echo)."""

import os
import socket

import pytest

import time

from conftest import (connect, echo_stream, readable, recv_exact, recv_until_eof,
                      round_trip, run_tool, send_with_fin)


@pytest.fixture
def echo(eddy, trigger):
    return eddy("--trigger", trigger, "echo=127.0.0.1:0", "upper=127.0.0.1:0")


def test_echo_raw_socket(echo):
    # Seed 002's client side: send, read the same bytes back, several times
    # on one connection.
    with connect(echo.addr("echo")) as s:
        for msg in (b"hello\n", b"x", b"\x00\xffbinary\r\n", b"a" * 5000):
            s.sendall(msg)
            assert recv_exact(s, len(msg)) == msg


def test_upper_raw_socket(echo):
    with connect(echo.addr("upper")) as s:
        for msg in (b"hello World 123\n", b"abc\xff\x00xyz\xe4\xb8\xad"):
            s.sendall(msg)
            # Seed 002 uses bytes.upper(): ASCII letters only.
            assert recv_exact(s, len(msg)) == msg.upper()


def test_echo_half_close_gets_everything_then_eof(echo):
    data = os.urandom(200_000)
    with connect(echo.addr("echo")) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == data


def test_data_and_fin_in_one_segment(echo):
    # One event brings both the bytes and the EOF: in edge mode no second
    # event will come, so the server must read on until it sees the EOF.
    with connect(echo.addr("echo")) as s:
        send_with_fin(s, b"bytes and FIN together")
        assert recv_until_eof(s) == b"bytes and FIN together"


def test_upper_half_close(echo):
    assert round_trip(echo.addr("upper"), b"half close\n") == b"HALF CLOSE\n"


def test_echo_does_not_close_idle_connection(echo):
    # An echo connection with nothing sent stays open: no data, no EOF.
    with connect(echo.addr("echo")) as s:
        assert not readable(s, 0.2)
        s.sendall(b"still here")
        assert recv_exact(s, 10) == b"still here"


def test_echo_1mib_random_binary(echo):
    data = os.urandom(1 << 20)
    with connect(echo.addr("echo"), timeout=20) as s:
        assert echo_stream(s, data) == data


@pytest.mark.parametrize("service,expect", [("echo", str.encode), ("upper", lambda t: t.upper().encode())],
                         ids=["echo", "upper"])
def test_socat(echo, service, expect):
    _, (host, port) = echo.addr(service)
    text = "hello from socat\nline two\n"
    t0 = time.monotonic()
    r = run_tool(["socat", "-t", "5", "-", f"TCP4:{host}:{port}"], input=text.encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout == expect(text)
    # socat half-closes at the end of its input; eddy's close ends socat at
    # once, long before socat's own 5 s timeout.
    assert time.monotonic() - t0 < 3, "socat waited for its timeout: eddy did not close"


@pytest.mark.parametrize("service,expect", [("echo", str.encode), ("upper", lambda t: t.upper().encode())],
                         ids=["echo", "upper"])
def test_ncat(echo, service, expect):
    _, (host, port) = echo.addr(service)
    text = "hello from ncat\n"
    # ncat half-closes when its stdin ends, and exits when eddy closes.
    r = run_tool(["ncat", host, str(port)], input=text.encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout == expect(text)


def test_many_sequential_connections(echo):
    for i in range(50):
        msg = b"conn %d\n" % i
        assert round_trip(echo.addr("echo"), msg) == msg
