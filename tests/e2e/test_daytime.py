"""daytime (RFC 867): one human-readable date line on connect, then close."""

import datetime
import re
import socket

import pytest

from conftest import connect, recv_until_eof, run_tool

DAYTIME_RE = re.compile(
    rb"^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
    rb"(January|February|March|April|May|June|July|August|September|October|November|December) "
    rb"(\d{1,2}), (\d{4}) (\d\d):(\d\d):(\d\d) ([A-Z][A-Za-z0-9+-]*)\r\n$"
)


def check_daytime(line):
    m = DAYTIME_RE.match(line)
    assert m, f"not a daytime line: {line!r}"
    text = line.decode().rstrip("\r\n")
    zone = m[8].decode()
    when = datetime.datetime.strptime(text.rsplit(" ", 1)[0], "%A, %B %d, %Y %H:%M:%S")
    if zone in ("UTC", "GMT"):
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    else:
        now = datetime.datetime.now()
    assert abs((now - when).total_seconds()) < 5, f"{line!r} is not now ({now})"
    # The weekday must belong to the date (strptime does not check it).
    assert when.strftime("%A") == m[1].decode()


@pytest.fixture
def daytime(eddy, trigger):
    return eddy("--trigger", trigger, "daytime=127.0.0.1:0")


def test_raw_socket(daytime):
    with connect(daytime.addr("daytime")) as s:
        check_daytime(recv_until_eof(s))


def test_client_that_sends_still_gets_line_and_clean_eof(daytime):
    # Whatever the client sends is ignored; the lingering close keeps it from
    # turning into an RST that would destroy the line.
    with connect(daytime.addr("daytime")) as s:
        s.sendall(b"hello?\r\n" * 1000)
        check_daytime(recv_until_eof(s))


def test_half_closed_client(daytime):
    with connect(daytime.addr("daytime")) as s:
        s.shutdown(socket.SHUT_WR)
        check_daytime(recv_until_eof(s))


def test_socat(daytime):
    _, (host, port) = daytime.addr("daytime")
    r = run_tool(["socat", "-u", f"TCP4:{host}:{port}", "-"])
    assert r.returncode == 0, r.stderr
    check_daytime(r.stdout)


def test_many_clients(daytime):
    socks = [connect(daytime.addr("daytime")) for _ in range(50)]
    try:
        for s in socks:
            check_daytime(recv_until_eof(s))
    finally:
        for s in socks:
            s.close()
