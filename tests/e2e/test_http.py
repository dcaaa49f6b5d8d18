"""http: the tutorials' "Hello, world!" server done right, on eddy's HTTP/1.1
layer. GET/HEAD answer the configured body, POST/PUT echo the request body,
anything else is 405; keep-alive, pipelining, limits and timeouts as a user
(curl, http.client, ab, wrk, or a raw socket) sees them."""

import http.client
import random
import re
import signal
import socket
import threading
import time

import pytest

from conftest import (TIMEOUT, HttpConn, check_http_date, connect, count_epollin, curl,
                      curl_response, fd_count, http_request, http_url, ports_free, run_tool,
                      wait_until)

HELLO = b"Hello, world!"


@pytest.fixture
def srv(eddy):
    return eddy("http=127.0.0.1:0")


def url(srv, path="/"):
    return http_url(srv, "http", path)


def check_hello(resp, version="HTTP/1.1"):
    assert (resp.version, resp.status, resp.reason) == (version, 200, "OK"), resp
    assert resp.header("Server") == "eddy"
    check_http_date(resp.header("Date"))
    assert resp.header("Content-Type") == "text/plain"
    assert resp.header("Content-Length") == "13"


# ---- curl ------------------------------------------------------------------------------


def test_curl_get(srv):
    r = curl("-i", url(srv, "/any/path?q=1"))
    assert r.returncode == 0, r.stderr
    status, headers, body = curl_response(r.stdout)
    assert status == "HTTP/1.1 200 OK"
    assert headers["server"] == "eddy"
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == "13"
    assert "connection" not in headers  # HTTP/1.1: keep-alive goes without saying
    check_http_date(headers["date"])
    assert body == HELLO


def test_curl_reuses_the_connection(srv):
    r = curl("-v", url(srv, "/a"), url(srv, "/b"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == HELLO * 2
    assert b"Re-using existing connection" in r.stderr, r.stderr.decode()
    r = curl("-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ",
             url(srv, "/a"), url(srv, "/b"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"1", b"0"]


def test_curl_http10_closes(srv):
    r = curl("-0", "-i", url(srv))
    assert r.returncode == 0, r.stderr
    status, headers, body = curl_response(r.stdout)
    assert status == "HTTP/1.0 200 OK"
    assert headers["connection"] == "close"
    assert body == HELLO
    r = curl("-0", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ",
             url(srv, "/a"), url(srv, "/b"))
    assert r.stdout.split() == [b"1", b"1"]


def test_curl_http10_keep_alive(srv):
    r = curl("-0", "-v", "-H", "Connection: keep-alive", url(srv, "/a"), url(srv, "/b"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == HELLO * 2
    err = r.stderr.decode()
    assert "< HTTP/1.0 200 OK" in err
    assert re.search(r"^< Connection: keep-alive\r?$", err, re.M | re.I), err
    assert "Re-using existing connection" in err, err


def test_curl_head(srv):
    r = curl("-I", url(srv))
    assert r.returncode == 0, r.stderr
    status, headers, _ = curl_response(r.stdout)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == "13"
    assert r.stdout.endswith(b"\r\n\r\n")  # headers only


def test_curl_post_form(srv):
    r = curl("-i", "--data", "name=eddy&x=1", url(srv, "/form"))
    assert r.returncode == 0, r.stderr
    status, headers, body = curl_response(r.stdout)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert body == b"name=eddy&x=1"


def test_curl_put_binary_file(srv, tmp_path):
    data = random.Random(1).randbytes(300_000)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    # "Content-Type:" with no value makes curl send none: eddy then says octet-stream.
    r = curl("-D", "-", "-o", str(tmp_path / "out"), "-X", "PUT", "-H", "Content-Type:",
             "--data-binary", f"@{f}", url(srv, "/put"))
    assert r.returncode == 0, r.stderr
    status, headers, _ = curl_response(r.stdout)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-length"] == str(len(data))
    assert (tmp_path / "out").read_bytes() == data


def test_curl_chunked_upload(srv, tmp_path):
    data = random.Random(2).randbytes(200_000)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    r = curl("-v", "-o", str(tmp_path / "out"), "-H", "Transfer-Encoding: chunked",
             "-H", "Content-Type: application/x-eddy", "--data-binary", f"@{f}", url(srv))
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "> Transfer-Encoding: chunked" in err
    assert "< HTTP/1.1 200 OK" in err
    assert "< Content-Type: application/x-eddy" in err
    assert (tmp_path / "out").read_bytes() == data


def test_curl_expect_100_continue(srv, tmp_path):
    data = random.Random(3).randbytes(800_000)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    r = curl("-v", "-o", str(tmp_path / "out"), "-H", "Expect: 100-continue",
             "--data-binary", f"@{f}", url(srv))
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "> Expect: 100-continue" in err
    assert "< HTTP/1.1 100 Continue" in err, err
    assert "< HTTP/1.1 200 OK" in err
    assert (tmp_path / "out").read_bytes() == data


def test_curl_expect_100_continue_too_big(eddy, tmp_path):
    srv = eddy("--max-body", "1000", "http=127.0.0.1:0")
    f = tmp_path / "upload.bin"
    f.write_bytes(b"x" * 200_000)
    r = curl("-v", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}",
             "-H", "Expect: 100-continue", "--data-binary", f"@{f}", url(srv))
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "100 Continue" not in err, err
    assert "< Connection: close" in err
    # The final status came instead of 100, so curl never sent the body.
    assert r.stdout.split() == [b"413", b"0"]


def test_curl_body_too_big(eddy):
    srv = eddy("--max-body", "1000", "http=127.0.0.1:0")
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "y" * 1000, url(srv))
    assert r.stdout == b"200"
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "y" * 1001, url(srv))
    assert r.stdout == b"413"


def test_curl_uri_too_long(srv):
    r = curl("-o", "/dev/null", "-w", "%{http_code}", url(srv, "/" + "a" * 9000))
    assert r.stdout == b"414"


def test_configured_body(eddy):
    srv = eddy("--body", "<p>Bonjour</p>", "--content-type", "text/html; charset=utf-8",
               "http=127.0.0.1:0")
    r = curl("-i", url(srv))
    _, headers, body = curl_response(r.stdout)
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-length"] == "14"
    assert body == b"<p>Bonjour</p>"


# ---- http.client -------------------------------------------------------------------------


def test_http_client_methods_on_one_connection(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http"), timeout=TIMEOUT)
    try:
        conn.request("GET", "/x")
        r = conn.getresponse()
        assert (r.status, r.version, r.read()) == (200, 11, HELLO)
        sock = conn.sock

        conn.request("HEAD", "/")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Length") == "13"
        assert r.read() == b""

        conn.request("POST", "/echo", body=b'{"a": 1}',
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == "application/json"
        assert r.read() == b'{"a": 1}'

        conn.request("PUT", "/echo", body=b"")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == "application/octet-stream"
        assert r.read() == b""

        conn.request("POST", "/chunked", body=iter([b"abc", b"", b"defg" * 1000]),
                     encode_chunked=True)
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"abc" + b"defg" * 1000

        for method in ("DELETE", "OPTIONS", "PATCH", "BREW"):
            conn.request(method, "/")
            r = conn.getresponse()
            assert r.status == 405, method
            assert r.getheader("Allow") == "GET, HEAD, POST, PUT"
            r.read()

        assert conn.sock is sock, "the connection was not kept alive"
    finally:
        conn.close()


# ---- raw sockets: framing -----------------------------------------------------------------


def test_every_response_has_date_server_and_length(srv):
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET") + http_request("POST", body=b"x") +
               http_request("DELETE") + http_request("HEAD"))
        for head in (False, False, False, True):
            r = c.response(head=head)
            assert r.header("Server") == "eddy"
            check_http_date(r.header("Date"))
            assert r.header("Content-Length") is not None, r


def test_head_then_get_on_one_connection(srv):
    # If HEAD sent a body, the GET's response would not parse.
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("HEAD") + http_request("GET"))
        r = c.response(head=True)
        check_hello(r)
        check_hello(c.response())
        assert c.idle(0.1)


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_pipelining_50_requests(eddy, trigger):
    srv = eddy("--trigger", trigger, "http=127.0.0.1:0")
    reqs = []
    for i in range(50):
        if i % 3 == 0:
            reqs.append(http_request("POST", f"/{i}", body=f"request {i}".encode()))
        elif i % 3 == 1:
            reqs.append(http_request("GET", f"/{i}"))
        else:
            reqs.append(http_request("HEAD", f"/{i}"))
    with HttpConn(srv.addr("http")) as c:
        c.send(b"".join(reqs))
        for i in range(50):
            r = c.response(head=(i % 3 == 2))
            assert r.status == 200, (i, r)
            if i % 3 == 0:
                assert r.body == f"request {i}".encode(), i
            elif i % 3 == 1:
                assert r.body == HELLO
            else:
                assert r.header("Content-Length") == "13"
        assert c.idle(0.1), "more responses than requests"


def test_pipelining_big_bodies_with_back_pressure(srv):
    # 100 echoes of 32 KiB sent in one go while the answers are read: the
    # server has to stop reading while its output is congested and resume.
    bodies = [random.Random(i).randbytes(32 * 1024) for i in range(100)]
    data = b"".join(http_request("POST", f"/{i}", body=b) for i, b in enumerate(bodies))
    with HttpConn(srv.addr("http"), timeout=20) as c:
        err = []

        def send():
            try:
                c.send(data)
            except Exception as exc:  # reported below
                err.append(exc)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        for i, body in enumerate(bodies):
            r = c.response()
            assert r.status == 200 and r.body == body, i
        t.join(TIMEOUT)
        assert not t.is_alive() and not err, err


def test_pipelined_request_split_across_reads(srv):
    second = http_request("POST", "/2", body=b"second body")
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET", "/1") + second[:20])
        check_hello(c.response())
        assert c.idle(0.1)
        c.send(second[20:-5])
        assert c.idle(0.1)
        c.send(second[-5:])
        assert c.response().body == b"second body"


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_header_end_split_across_reads(srv, cut):
    # A 12 KiB header whose blank line arrives in two pieces: the parser,
    # which resumes where it stopped searching, must still find the end.
    req = http_request("GET", headers=[("X-Pad", "p" * 12000)])
    with HttpConn(srv.addr("http")) as c:
        c.send(req[:6000])
        assert c.idle(0.05)
        c.send(req[6000:-cut])
        assert c.idle(0.1), "answered before the blank line"
        c.send(req[-cut:])
        check_hello(c.response())


def test_interleaved_connections_keep_their_own_requests(srv):
    # A's header is parsed, then B's whole request, then A's body arrives:
    # A's answer must still carry A's Content-Type and body.
    addr = srv.addr("http")
    with HttpConn(addr) as a, HttpConn(addr) as b:
        a.send(http_request("POST", "/a", headers=[("Content-Type", "text/x-a"),
                                                     ("Content-Length", "6")]) + b"aaa")
        assert a.idle(0.1)
        b.send(http_request("PUT", "/b", headers=[("Content-Type", "text/x-b")],
                            body=b"bbbbbbbbbb"))
        r = b.response()
        assert (r.header("Content-Type"), r.body) == ("text/x-b", b"bbbbbbbbbb")
        a.send(b"AAA")
        r = a.response()
        assert (r.header("Content-Type"), r.body) == ("text/x-a", b"aaaAAA")


def test_pipelined_valid_requests_then_a_bad_one(srv):
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET") + http_request("POST", body=b"ok") +
               b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n" + http_request("GET"))
        check_hello(c.response())
        assert c.response().body == b"ok"
        r = c.response()
        assert r.status == 400 and r.header("Connection") == "close"
        c.expect_eof()


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_one_byte_at_a_time(eddy, trigger):
    srv = eddy("--trigger", trigger, "http=127.0.0.1:0")
    req = http_request("POST", "/slow", headers=[("Content-Type", "text/x-slow")],
                       body=b"abcdef")
    with HttpConn(srv.addr("http")) as c:
        for i in range(len(req) - 1):
            c.send(req[i:i + 1])
            time.sleep(0.001)  # pacing, so most bytes arrive in reads of their own
        assert c.idle(0), "answered before the request was complete"
        c.send(req[-1:])
        r = c.response()
        assert r.status == 200 and r.body == b"abcdef"
        assert r.header("Content-Type") == "text/x-slow"


def test_read_size_1(eddy):
    # The server reads one byte per read(): every split of the header and
    # the chunked body is seen by the parser.
    srv = eddy("--read-size", "1", "http=127.0.0.1:0")
    body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
    req = http_request("POST", headers=[("Transfer-Encoding", "chunked")], body=body)
    with HttpConn(srv.addr("http")) as c:
        c.send(req + http_request("GET"))
        assert c.response().body == b"Wikipedia"
        check_hello(c.response())


def get_hello(sock):
    sock.sendall(http_request("GET"))
    reply = b""
    while not reply.endswith(b"Hello, world!"):
        b = sock.recv(4096)
        assert b, f"closed after {reply!r}"
        reply += b


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_trigger_and_read_size_hold_for_http(eddy, trigger):
    """--trigger and --read-size apply to HTTP connections as to the TCP
    services: with 1-byte reads, level-triggered epoll reports the request
    once per byte, edge-triggered once (eddy reads until EAGAIN)."""
    srv = eddy("--trace", "--read-size", "1", "--workers", "1", "--trigger", trigger,
               "http=127.0.0.1:0")
    n, lines = count_epollin(srv, srv.addr("http"), get_hello)
    if trigger == "edge":
        assert n == 1, "edge-triggered: one EPOLLIN\n" + "\n".join(lines)
    else:
        assert n >= len(http_request("GET")) // 2, \
            "level-triggered, 1-byte reads: an EPOLLIN per byte\n" + "\n".join(lines)


def test_http10_keep_alive(srv):
    with HttpConn(srv.addr("http")) as c:
        for _ in range(2):
            c.send(http_request("GET", version="1.0", host=None,
                                headers=[("Connection", "keep-alive")]))
            r = c.response()
            check_hello(r, "HTTP/1.0")
            assert r.header("Connection") == "keep-alive"
        assert c.idle(0.1)
        c.send(http_request("GET", version="1.0", host=None))
        r = c.response()
        check_hello(r, "HTTP/1.0")
        assert r.header("Connection") == "close"
        c.expect_eof()


def test_connection_close(srv):
    with HttpConn(srv.addr("http")) as c:
        # The request after the one that says "close" is never answered.
        c.send(http_request("GET", headers=[("Connection", "close")]) + http_request("GET"))
        r = c.response()
        check_hello(r)
        assert r.header("Connection") == "close"
        c.expect_eof()


def test_connection_close_frees_the_socket_without_waiting_for_the_client(srv):
    # A client that asked to close sends nothing more, so eddy closes its
    # socket with the reply sent, rather than half-closing and waiting up to
    # 2 s for the client's FIN: the EOF the client reads is that close.
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET"))
        check_hello(c.response())
        with_conn = fd_count(srv.pid)
        c.send(http_request("GET", headers=[("Connection", "close")]))
        check_hello(c.response())
        c.expect_eof()
        assert fd_count(srv.pid) == with_conn - 1, "eddy still holds the connection the client asked to close"


@pytest.mark.parametrize("req", [
    b"GET / HTTP/1.1\nHost: x\n\n",                   # bare LF line ends
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",     # empty lines first (RFC 9112, 2.2)
    b"GET http://x/abs HTTP/1.1\r\nHost: x\r\n\r\n",  # absolute-form
    b"GET / HTTP/1.1\r\nhOsT: x\r\nX-Empty:\r\nX-Sp:   v  \r\n\r\n",
], ids=["lf", "leading-crlf", "absolute-form", "header-case-and-space"])
def test_tolerated_requests(srv, req):
    with HttpConn(srv.addr("http")) as c:
        c.send(req)
        check_hello(c.response())


def test_post_without_length_has_empty_body(srv):
    with HttpConn(srv.addr("http")) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n" + http_request("GET"))
        r = c.response()
        assert r.status == 200 and r.body == b""
        check_hello(c.response())


def test_expect_100_continue_raw(srv):
    with HttpConn(srv.addr("http")) as c:
        c.send(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\n")
        r = c.response()
        assert (r.version, r.status, r.reason) == ("HTTP/1.1", 100, "Continue")
        assert r.headers == []
        c.send(b"hello")
        r = c.response()
        assert r.status == 200 and r.body == b"hello"
        # No body, nothing to continue: the final answer at once.
        c.send(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
               b"Expect: 100-continue\r\n\r\n")
        r = c.response()
        assert r.status == 200 and r.body == b""


def test_no_100_continue_for_http10(srv):
    # RFC 9110, 10.1.1: a server must not send 100 to an HTTP/1.0 client.
    with HttpConn(srv.addr("http")) as c:
        c.send(b"POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert c.idle(0.2)
        c.send(b"hello")
        r = c.response()
        assert (r.version, r.status, r.body) == ("HTTP/1.0", 200, b"hello")
        c.expect_eof()


# ---- malformed and smuggling attempts: one answer, then EOF -----------------------------

REASONS = {400: "Bad Request", 417: "Expectation Failed", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

MALFORMED = [
    ("cl-and-te", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-and-cl", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                       b"Content-Length: 5\r\n\r\n0\r\n\r\n"),
    ("two-cl", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                    b"Content-Length: 40\r\n\r\n"),
    ("cl-list", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("cl-sign", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello"),
    ("cl-hex", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello"),
    ("cl-huge", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"),
    ("te-chunked-twice", 400, b"POST / HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("te-chunked-not-last", 400, b"POST / HTTP/1.1\r\nHost: x\r\n"
                                 b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("te-identity", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n"),
    ("te-xchunked", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"),
    ("te-unknown-coding", 501, b"POST / HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("te-in-http10", 400, b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("space-before-colon", 400, b"POST / HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    ("obs-fold", 400, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
    ("no-host", 400, b"GET / HTTP/1.1\r\nX-A: a\r\n\r\n"),
    ("two-hosts", 400, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("bad-host", 400, b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    ("bare-cr", 400, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\n\r\n"),
    ("nul-in-value", 400, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("bad-name", 400, b"GET / HTTP/1.1\r\nHost: x\r\nX@A: a\r\n\r\n"),
    ("no-colon", 400, b"GET / HTTP/1.1\r\nHost: x\r\nX-A a\r\n\r\n"),
    ("bad-chunk-size", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-overflow", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                 b"\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("chunk-without-crlf", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                b"\r\n5\r\nhelloXX0\r\n\r\n"),
    ("chunk-lf-only", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\n5\nhello\n0\n\n"),
    ("http2", 505, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
    ("http09", 505, b"GET / HTTP/0.9\r\nHost: x\r\n\r\n"),
    ("lowercase-version", 400, b"GET / http/1.1\r\nHost: x\r\n\r\n"),
    ("no-version", 400, b"GET /\r\nHost: x\r\n\r\n"),
    ("double-space", 400, b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad-method", 400, b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("ctl-in-target", 400, b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad-percent", 400, b"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("binary-garbage", 400, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"),
    ("expect-other", 417, b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n"
                          b"Content-Length: 1\r\n\r\nx"),
]


@pytest.mark.parametrize("status,req", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_gets_one_answer_then_eof(srv, status, req):
    with HttpConn(srv.addr("http")) as c:
        c.send(req + SMUGGLED)
        r = c.response()
        assert r.head.startswith(f"HTTP/1.1 {status} {REASONS[status]}\r\n".encode()), r
        assert r.header("Connection") == "close"
        assert r.body == f"{status} {REASONS[status]}\n".encode()
        c.expect_eof()  # and /smuggled is never answered
    # The server is still fine.
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET"))
        check_hello(c.response())


# ---- limits --------------------------------------------------------------------------------


def test_body_limit(eddy):
    srv = eddy("--max-body", "1000", "http=127.0.0.1:0")
    addr = srv.addr("http")
    with HttpConn(addr) as c:
        c.send(http_request("POST", body=b"a" * 1000))
        assert c.response().body == b"a" * 1000
    with HttpConn(addr) as c:
        # Refused from the header alone, before any body byte is sent.
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
        r = c.response()
        assert r.status == 413 and r.header("Connection") == "close"
        c.expect_eof()
    with HttpConn(addr) as c:
        chunks = b"".join(b"64\r\n" + b"c" * 100 + b"\r\n" for _ in range(11)) + b"0\r\n\r\n"
        c.send(http_request("POST", headers=[("Transfer-Encoding", "chunked")], body=chunks))
        r = c.response()
        assert r.status == 413 and r.header("Connection") == "close"
        c.expect_eof()
    with HttpConn(addr) as c:
        chunks = b"".join(b"64\r\n" + b"c" * 100 + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
        c.send(http_request("POST", headers=[("Transfer-Encoding", "chunked")], body=chunks))
        assert c.response().body == b"c" * 1000


def test_request_line_limit(srv):
    # 8 KiB, CRLF included, is allowed; one byte more is 414.
    fixed = len(b"GET / HTTP/1.1\r\n")
    for extra, status in ((8192 - fixed, 200), (8193 - fixed, 414)):
        with HttpConn(srv.addr("http")) as c:
            c.send(f"GET /{'a' * extra} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            r = c.response()
            assert r.status == status, (extra, r)
            if status != 200:
                assert r.header("Connection") == "close"
                c.expect_eof()


def test_request_line_limit_before_the_line_ends(srv):
    with HttpConn(srv.addr("http")) as c:
        c.send(b"GET /" + b"a" * 9000)  # no line end yet: known too long already
        r = c.response()
        assert r.status == 414
        c.expect_eof()


def test_header_bytes_limit(srv):
    pad = [(f"X-Pad-{i}", "p" * 1000) for i in range(15)]  # about 15.3 KiB
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET", headers=pad))
        check_hello(c.response())
    pad = [(f"X-Pad-{i}", "p" * 1000) for i in range(17)]  # over 16 KiB
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET", headers=pad))
        r = c.response()
        assert r.status == 431 and r.header("Connection") == "close"
        c.expect_eof()


def test_header_count_limit(srv):
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET", headers=[(f"X-{i}", "v") for i in range(99)]))  # + Host: 100
        check_hello(c.response())
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET", headers=[(f"X-{i}", "v") for i in range(100)]))
        r = c.response()
        assert r.status == 431 and r.header("Connection") == "close"
        c.expect_eof()


# ---- timeouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("flag,part", [
    ("--header-timeout", b"GET / HTTP/1.1\r\nHost: x\r\n"),
    ("--body-timeout", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"),
], ids=["header", "body"])
def test_part_of_a_request_gets_408(eddy, flag, part):
    srv = eddy(flag, "1", "http=127.0.0.1:0")
    with HttpConn(srv.addr("http")) as c:
        t0 = time.monotonic()
        c.send(part)
        r = c.response(timeout=4)
        took = time.monotonic() - t0
        assert r.status == 408 and r.header("Connection") == "close"
        c.expect_eof()
        assert 0.8 <= took < 3, f"408 after {took:.2f} s"


def test_slowloris_trickle_does_not_extend_the_deadline(eddy):
    srv = eddy("--header-timeout", "1", "http=127.0.0.1:0")
    req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100
    with HttpConn(srv.addr("http")) as c:
        t0 = time.monotonic()
        for i in range(len(req)):
            c.send(req[i:i + 1])
            if not c.idle(0.1):  # one byte every 0.1 s until the server speaks
                break
        else:
            pytest.fail("no answer to a header trickled over 10 s")
        took = time.monotonic() - t0
        r = c.response()
        assert r.status == 408
        c.expect_eof()
        assert 0.8 <= took < 3, f"408 after {took:.2f} s"


def test_silent_connection_is_closed_without_answer(eddy):
    srv = eddy("--header-timeout", "1", "http=127.0.0.1:0")
    with HttpConn(srv.addr("http")) as c:
        took = c.expect_eof(timeout=4)
        assert 0.8 <= took < 3, f"closed after {took:.2f} s"


def test_send_timeout_lets_go_of_a_client_that_stopped_reading(eddy):
    # 200 pipelined requests for 100 kB each, and nothing read: once no byte
    # has moved for --send-timeout, eddy closes the connection.
    srv = eddy("--send-timeout", "1", "--body", "z" * 100_000, "http=127.0.0.1:0")
    base = fd_count(srv.pid)
    with connect(srv.addr("http")) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        s.sendall(http_request() * 200)
        t0 = time.monotonic()
        wait_until(lambda: fd_count(srv.pid) > base, what="eddy accepted the client")
        wait_until(lambda: fd_count(srv.pid) <= base, what="eddy let go of the client")
        took = time.monotonic() - t0
        assert 0.8 <= took < 4, f"closed after {took:.2f} s"
        got = 0
        try:
            while chunk := s.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < 200 * 100_000, "every response arrived though the connection timed out"


def test_send_timeout_spares_idle_keepalive_connections(eddy):
    # The send timeout runs only while a response waits to be taken: an idle
    # keep-alive connection lasts its --keepalive-timeout.
    srv = eddy("--send-timeout", "1", "--keepalive-timeout", "5", "http=127.0.0.1:0")
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request())
        check_hello(c.response())
        assert c.idle(2.0), "an idle keep-alive connection was closed at the send timeout"
        c.send(http_request())
        check_hello(c.response())


def test_keepalive_timeout(eddy):
    srv = eddy("--keepalive-timeout", "1", "http=127.0.0.1:0")
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET"))
        check_hello(c.response())
        took = c.expect_eof(timeout=4)
        assert 0.8 <= took < 3, f"idle connection closed after {took:.2f} s"


def test_keepalive_timeout_restarts_with_each_request(eddy):
    srv = eddy("--keepalive-timeout", "1", "http=127.0.0.1:0")
    with HttpConn(srv.addr("http")) as c:
        for _ in range(4):  # 4 requests 0.5 s apart outlive a 1 s timeout
            c.send(http_request("GET"))
            check_hello(c.response())
            assert c.idle(0.5)


def test_keepalive_idle_is_not_a_header_timeout(eddy):
    srv = eddy("--header-timeout", "1", "--keepalive-timeout", "2", "http=127.0.0.1:0")
    with HttpConn(srv.addr("http")) as c:
        c.send(http_request("GET"))
        check_hello(c.response())
        t0 = time.monotonic()
        assert c.idle(1.4), "idle keep-alive connection cut at the header timeout"
        c.expect_eof(timeout=4)
        took = time.monotonic() - t0
        assert 1.8 <= took < 4, f"closed after {took:.2f} s"


# ---- graceful stop --------------------------------------------------------------------------


def test_sigterm_finishes_requests_in_progress_and_closes_idle_after_a_grace(srv):
    addr = srv.addr("http")
    with HttpConn(addr) as idle, HttpConn(addr) as late, HttpConn(addr) as busy:
        for c in (idle, late):
            c.send(http_request("GET"))
            check_hello(c.response())
        busy.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        assert busy.idle(0.1)
        mark = srv.mark()
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(r"SIGTERM received", start=mark)
        # An idle keep-alive connection may still send one request (its
        # client may have sent it already): it is answered, then closed.
        late.send(http_request("GET"))
        r = late.response()
        check_hello(r)
        assert r.header("Connection") == "close"
        late.expect_eof()
        busy.send(b"world")
        r = busy.response()
        assert r.status == 200 and r.body == b"helloworld"
        assert r.header("Connection") == "close"
        busy.expect_eof()
        # One that stays idle is closed after the grace (1 s), long before
        # the drain timeout (10 s) would force it.
        assert idle.expect_eof(timeout=4) < 4
    assert srv.stop() == 0


# ---- load tools ----------------------------------------------------------------------------


def test_ab_keepalive(srv):
    r = run_tool(["ab", "-q", "-k", "-n", "2000", "-c", "20", "-s", "5", url(srv)], timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    fields = dict(re.findall(r"^([A-Za-z0-9 -]+):\s+(\S+)", out, re.M))
    assert fields.get("Complete requests") == "2000", out
    assert fields.get("Failed requests") == "0", out
    assert fields.get("Non-2xx responses", "0") == "0", out
    assert fields.get("Keep-Alive requests") == "2000", out
    assert re.search(r"^Document Length:\s+13 bytes$", out, re.M), out


def test_wrk(srv):
    r = run_tool(["wrk", "-t1", "-c20", "-d2s", "--timeout", "2s", url(srv)], timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    m = re.search(r"^\s*(\d+) requests in ", out, re.M)
    assert m and int(m[1]) > 0, out
    assert "Non-2xx or 3xx responses" not in out, out
    assert "Socket errors" not in out, out


# ---- the built-in default set ---------------------------------------------------------------

DEFAULT_PORTS = (8888, 9090, 7788, 8080)


def test_default_run_serves_http_on_8080(eddy):
    if not ports_free(DEFAULT_PORTS):
        pytest.skip("a default port (8888/9090/7788/8080) is busy")
    srv = eddy()
    assert ("http", "127.0.0.1:8080") in [(s, a) for s, a, _ in srv.listeners], srv.listeners
    assert "hello-raw" not in [s for s, _, _ in srv.listeners]
    # The HTTP/1.1 service, not the tutorials' close-after-one server.
    with HttpConn(srv.addr("http")) as c:
        for _ in range(2):
            c.send(http_request("GET"))
            check_hello(c.response())


# ---- the header limits from the command line -------------------------------------------


def raw_status(srv, request):
    with HttpConn(srv.addr("http")) as c:
        c.send(request)
        return c.response().status


def test_header_limits_are_configurable(eddy):
    srv = eddy("--max-request-line", "100", "--max-header-bytes", "300", "--max-headers", "3",
               "http=127.0.0.1:0")
    ok = http_request(headers=[("A", "1"), ("B", "2")])
    assert raw_status(srv, ok) == 200
    assert raw_status(srv, http_request(target="/" + "x" * 120)) == 414
    many = http_request(headers=[("A", "1"), ("B", "2"), ("C", "3")])  # and Host: four
    assert raw_status(srv, many) == 431
    big = http_request(headers=[("A", "y" * 300)])
    assert raw_status(srv, big) == 431
