"""discard (RFC 863) and sink (seed 004: discard that logs what it gets)."""

import os
import socket

import pytest

from conftest import connect, readable, recv_until_eof, send_with_fin


@pytest.fixture
def discard(eddy, trigger):
    return eddy("--trigger", trigger, "discard=127.0.0.1:0")


def test_discard_sends_nothing_and_closes_on_eof(discard):
    with connect(discard.addr("discard")) as s:
        s.sendall(b"drop me\n")
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""


def test_discard_closes_on_fin_that_came_with_data(discard):
    with connect(discard.addr("discard")) as s:
        send_with_fin(s, b"last words")
        assert recv_until_eof(s) == b""


def test_discard_never_closes_while_client_sends(discard):
    block = os.urandom(64 * 1024)
    with connect(discard.addr("discard")) as s:
        for _ in range(128):  # 8 MiB in 64 KiB writes
            s.sendall(block)
            assert not readable(s, 0), "discard sent data or closed while the client was sending"
        # Still open after the sending stops, too.
        assert not readable(s, 0.2)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""


def test_discard_many_clients(discard):
    socks = [connect(discard.addr("discard")) for _ in range(50)]
    try:
        for s in socks:
            s.sendall(b"x" * 1000)
        for s in socks:
            s.shutdown(socket.SHUT_WR)
        for s in socks:
            assert recv_until_eof(s) == b""
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def sink(eddy, trigger):
    return eddy("--trigger", trigger, "sink=127.0.0.1:0")


def test_sink_logs_chunk(sink):
    mark = sink.mark()
    with connect(sink.addr("sink")) as s:
        port = s.getsockname()[1]
        s.sendall(b"hello")
        sink.wait_for(r" - INFO - .*recv: b'hello'(\s|$)", start=mark)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""
    lines = sink.since(mark)
    recv_at = next(i for i, l in enumerate(lines) if "recv: b'hello'" in l)
    # Connection open and close lines name the client (its port).
    opened = [l for l in lines[:recv_at] if " - INFO - " in l and f":{port}" in l]
    assert opened, "no INFO line about the connection opening:\n" + "\n".join(lines)
    sink.wait_for(rf" - INFO - .*:{port}\b", start=mark + recv_at + 1)


def test_sink_logs_python_repr(sink):
    mark = sink.mark()
    with connect(sink.addr("sink")) as s:
        s.sendall(b"a\x00\x01\n\t\\z")
        sink.wait_for(r" - INFO - .*recv: b'a\\x00\\x01\\n\\t\\\\z'(\s|$)", start=mark)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""
