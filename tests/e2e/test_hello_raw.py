"""hello-raw (seeds 000 and 003): read until a blank line, answer a fixed
HTTP/1.0 'Hello, world!' response, close."""

import datetime
import email.utils
import http.client
import re
import socket

import pytest

from conftest import TIMEOUT, connect, readable, recv_until_eof, run_tool

RESPONSE_RE = re.compile(
    rb"^HTTP/1\.0 200 OK\r\n"
    rb"Date: ((Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    rb"\d{4} \d\d:\d\d:\d\d GMT)\r\n"
    rb"Content-Type: text/plain\r\n"
    rb"Content-Length: 13\r\n"
    rb"\r\n"
    rb"Hello, world!$"
)


def check_response(data):
    m = RESPONSE_RE.match(data)
    assert m, f"not the hello response: {data!r}"
    when = email.utils.parsedate_to_datetime(m[1].decode())
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 5, f"Date {m[1]!r} is not now"


@pytest.fixture
def hello(eddy, trigger):
    return eddy("--trigger", trigger, "hello-raw=127.0.0.1:0")


def ask(srv, request, nodelay=False):
    with connect(srv.addr("hello-raw"), nodelay=nodelay) as s:
        s.sendall(request)
        return recv_until_eof(s)


def test_curl(hello):
    port = hello.port("hello-raw")
    r = run_tool(["curl", "-s", "-0", "--max-time", "5", f"http://127.0.0.1:{port}/"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Hello, world!"


def test_curl_headers(hello):
    port = hello.port("hello-raw")
    r = run_tool(["curl", "-s", "-0", "-i", "--max-time", "5", f"http://127.0.0.1:{port}/"])
    assert r.returncode == 0, r.stderr
    check_response(r.stdout)


def test_http_client(hello):
    conn = http.client.HTTPConnection("127.0.0.1", hello.port("hello-raw"), timeout=TIMEOUT)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.version == 10
        assert resp.getheader("Content-Type") == "text/plain"
        assert resp.read() == b"Hello, world!"
    finally:
        conn.close()


@pytest.mark.parametrize("request_bytes", [
    b"client msg:0\n\n",                      # seed 000's client, EOL1
    b"GET / HTTP/1.0\n\n",                    # EOL1
    b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",     # EOL2 inside \r\n\r\n
    b"GET / HTTP/1.0\n\r\n",                  # EOL2 alone
], ids=["seed000", "lf-lf", "crlf-crlf", "lf-crlf-lf"])
def test_raw_request(hello, request_bytes):
    check_response(ask(hello, request_bytes))


def test_request_split_byte_by_byte(hello):
    with connect(hello.addr("hello-raw"), nodelay=True) as s:
        req = b"GET / HTTP/1.0\r\n\r\n"
        for i in range(len(req) - 1):
            s.sendall(req[i:i + 1])
        assert not readable(s, 0.2), "answered before the blank line"
        s.sendall(req[-1:])
        check_response(recv_until_eof(s))


def test_exactly_one_response_for_pipelined_requests(hello):
    check_response(ask(hello, b"GET / HTTP/1.0\r\n\r\n" * 3))


def test_large_request_under_limit(hello):
    req = b"GET / HTTP/1.0\r\nX-Pad: " + b"a" * 7000 + b"\r\n\r\n"
    check_response(ask(hello, req))


def test_oversize_request_is_closed(hello):
    # Over 8 KiB without a blank line: closed, with no hello response.
    with connect(hello.addr("hello-raw")) as s:
        s.sendall(b"GET / HTTP/1.0\r\nX-Pad: " + b"a" * 9000 + b"\r\n")
        try:
            data = recv_until_eof(s)
        except ConnectionResetError:
            data = b""
        assert b"Hello, world!" not in data


def test_no_blank_line_no_answer(hello):
    with connect(hello.addr("hello-raw")) as s:
        s.sendall(b"GET / HTTP/1.0\r\n")
        assert not readable(s, 0.2)


def test_half_close_after_request(hello):
    with connect(hello.addr("hello-raw")) as s:
        s.sendall(b"GET / HTTP/1.0\n\n")
        s.shutdown(socket.SHUT_WR)
        check_response(recv_until_eof(s))
