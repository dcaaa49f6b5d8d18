"""static: serves the files under --root over HTTP/1.1 with sendfile: MIME
types, index.html, redirects for directories, conditional and range
requests, optional listings, and confinement to the root against every
escape a client can try."""

import calendar
import html.parser
import http.client
import os
import random
import re
import time

import pytest

from conftest import (TIMEOUT, HttpConn, check_http_date, curl, curl_response, http_request,
                      http_url, run_eddy)

BIG = random.Random(7).randbytes(1 << 20)
SECRET = b"TOP SECRET, outside the root\n"
HELLO = b"hello, static\n"
MTIME = calendar.timegm((2020, 1, 1, 0, 0, 0))
MTIME_TEXT = "Wed, 01 Jan 2020 00:00:00 GMT"
NASTY = "<b>&.txt"


@pytest.fixture
def root(tmp_path):
    """tmp_path/root, the directory served, and tmp_path/outside next to it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    r = tmp_path / "root"
    r.mkdir()
    (r / "index.html").write_bytes(b"<!doctype html><h1>home</h1>\n")
    (r / "hello.txt").write_bytes(HELLO)
    os.utime(r / "hello.txt", (MTIME, MTIME))
    for name, data in {"style.css": b"p{}", "app.js": b"1;", "data.json": b"{}",
                       "pic.png": b"\x89PNG\r\n\x1a\n", "SHOUT.PNG": b"\x89PNG\r\n\x1a\n",
                       "noext": b"?", "a.tar.gz": b"\x1f\x8b", "a b.txt": b"space\n",
                       "empty.txt": b""}.items():
        (r / name).write_bytes(data)
    (r / "big.bin").write_bytes(BIG)
    (r / "sub").mkdir()
    (r / "sub" / "index.html").write_bytes(b"<h1>sub</h1>\n")
    (r / "nodir").mkdir()
    (r / "nodir" / NASTY).write_bytes(b"nasty\n")
    (r / "nodir" / "plain.txt").write_bytes(b"plain\n")
    (r / "nodir" / ".hidden").write_bytes(b"hidden\n")
    (r / "nodir" / "inner").mkdir()
    os.symlink("hello.txt", r / "link_in")
    os.symlink("sub", r / "link_dir_in")
    os.symlink("../outside/secret.txt", r / "link_out")
    os.symlink("../outside", r / "dirlink_out")
    os.mkfifo(r / "fifo")
    return r


@pytest.fixture
def srv(eddy, root):
    return eddy("--root", root, "static=127.0.0.1:0")


def url(srv, path="/"):
    return http_url(srv, "static", path)


def get(srv, target, headers=(), method="GET"):
    """One request on a fresh connection; returns the response."""
    with HttpConn(srv.addr("static")) as c:
        c.send(http_request(method, target, headers=headers))
        return c.response(head=(method == "HEAD"))


# ---- files -------------------------------------------------------------------------------


def test_index_at_root(srv):
    r = get(srv, "/")
    assert r.status == 200
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    assert r.body == b"<!doctype html><h1>home</h1>\n"
    assert r.header("Server") == "eddy"
    check_http_date(r.header("Date"))
    r = get(srv, "/", method="HEAD")
    assert r.status == 200 and r.header("Content-Length") == "29" and r.body == b""


@pytest.mark.parametrize("path,ctype", [
    ("/hello.txt", "text/plain; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/data.json", "application/json"),
    ("/pic.png", "image/png"),
    ("/SHOUT.PNG", "image/png"),
    ("/a.tar.gz", "application/gzip"),
    ("/noext", "application/octet-stream"),
    ("/big.bin", "application/octet-stream"),
    ("/sub/", "text/html; charset=utf-8"),
])
def test_mime_types(srv, path, ctype):
    r = get(srv, path)
    assert r.status == 200, r
    assert r.header("Content-Type") == ctype


def test_file_headers(srv):
    r = get(srv, "/hello.txt")
    assert r.body == HELLO
    assert r.header("Content-Length") == str(len(HELLO))
    assert r.header("Last-Modified") == MTIME_TEXT
    assert r.header("Accept-Ranges") == "bytes"
    assert re.fullmatch(r'"[^"]+"', r.header("ETag") or ""), r


def test_binary_1mib_with_curl(srv, tmp_path):
    out = tmp_path / "out.bin"
    r = curl("-D", "-", "-o", out, url(srv, "/big.bin"))
    assert r.returncode == 0, r.stderr
    status, headers, _ = curl_response(r.stdout)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == str(1 << 20)
    assert out.read_bytes() == BIG


def test_binary_1mib_with_http_client(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("static"), timeout=TIMEOUT)
    try:
        conn.request("GET", "/big.bin")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == BIG
        sock = conn.sock
        conn.request("GET", "/hello.txt")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == HELLO
        assert conn.sock is sock, "the connection was not kept alive"
    finally:
        conn.close()


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_pipelined_files(eddy, root, trigger):
    srv = eddy("--trigger", trigger, "--root", root, "static=127.0.0.1:0")
    with HttpConn(srv.addr("static"), timeout=10) as c:
        c.send(http_request("GET", "/big.bin") + http_request("HEAD", "/big.bin") +
               http_request("GET", "/hello.txt") + http_request("GET", "/big.bin"))
        assert c.response().body == BIG
        r = c.response(head=True)
        assert r.header("Content-Length") == str(1 << 20)
        assert c.response().body == HELLO
        assert c.response().body == BIG
        assert c.idle(0.1)


def test_empty_file(srv):
    r = get(srv, "/empty.txt")
    assert r.status == 200 and r.header("Content-Length") == "0" and r.body == b""


def test_percent_encoded_name(srv):
    r = get(srv, "/a%20b.txt")
    assert r.status == 200 and r.body == b"space\n"


def test_query_is_ignored(srv):
    r = get(srv, "/hello.txt?v=2&x=%2f..")
    assert r.status == 200 and r.body == HELLO


def test_changed_file_is_served_fresh(srv, root):
    old = get(srv, "/hello.txt")
    (root / "hello.txt").write_bytes(b"changed!\n")
    r = get(srv, "/hello.txt", headers=[("If-None-Match", old.header("ETag"))])
    assert r.status == 200 and r.body == b"changed!\n"
    assert r.header("ETag") != old.header("ETag")


def test_keep_alive_across_files_with_curl(srv):
    r = curl("-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ",
             url(srv, "/hello.txt"), url(srv, "/big.bin"), url(srv, "/sub/"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"1", b"0", b"0"]


def test_http10_with_curl(srv):
    r = curl("-0", "-D", "-", url(srv, "/hello.txt"))
    assert r.returncode == 0, r.stderr
    status, headers, body = curl_response(r.stdout)
    assert status == "HTTP/1.0 200 OK"
    assert headers["connection"] == "close"
    assert body == HELLO


def test_keepalive_timer_waits_for_the_response_to_be_sent(eddy, root):
    # A response still being sent is not an idle connection: a client that
    # reads an 8 MiB file slowly must still be able to reuse the connection.
    (root / "big8.bin").write_bytes(BIG * 8)  # more than the kernel buffers on both sides
    srv = eddy("--keepalive-timeout", "1", "--root", root, "static=127.0.0.1:0")
    with HttpConn(srv.addr("static"), timeout=10) as c:
        c.send(http_request("GET", "/big8.bin"))
        time.sleep(1.5)  # the slow client: eddy is blocked sending, past the 1 s timeout
        r = c.response()
        assert r.status == 200 and len(r.body) == 8 << 20
        assert r.header("Connection") is None
        c.send(http_request("GET", "/hello.txt"))
        assert c.response().body == HELLO


# ---- directories ---------------------------------------------------------------------------


def test_directory_redirect(srv):
    r = get(srv, "/sub")
    assert r.status == 301 and r.header("Location") == "/sub/"
    r = get(srv, "/sub?x=1")
    assert r.status == 301 and r.header("Location") == "/sub/?x=1"
    r = get(srv, "/nodir")
    assert r.status == 301 and r.header("Location") == "/nodir/"
    r = curl("-L", "-w", " %{http_code} %{num_redirects}", url(srv, "/sub"))
    assert r.stdout == b"<h1>sub</h1>\n 200 1"


def test_directory_index(srv):
    r = get(srv, "/sub/")
    assert r.status == 200 and r.body == b"<h1>sub</h1>\n"


def test_directory_without_index_is_forbidden(srv):
    r = get(srv, "/nodir/")
    assert r.status == 403
    assert NASTY.encode() not in r.body and b"plain.txt" not in r.body


class Links(html.parser.HTMLParser):
    """(href, text) of every <a> in a page."""

    def __init__(self):
        super().__init__()
        self.links, self.href, self.text = [], None, ""

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.href, self.text = dict(attrs).get("href"), ""

    def handle_data(self, data):
        if self.href is not None:
            self.text += data

    def handle_endtag(self, tag):
        if tag == "a" and self.href is not None:
            self.links.append((self.href, self.text))
            self.href = None


def test_listing_escapes_names(eddy, root):
    srv = eddy("--listing", "--root", root, "static=127.0.0.1:0")
    r = get(srv, "/nodir/")
    assert r.status == 200
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    page = r.body.decode()
    # The name is escaped as text, never markup...
    assert "<b>&" not in page
    assert "&lt;b&gt;&amp;.txt" in page
    # ...inside a page whose own markup is markup: a browser shows links.
    assert page.lstrip().lower().startswith("<!doctype html>"), page[:200]
    p = Links()
    p.feed(page)
    assert sorted(p.links) == [("%3Cb%3E%26.txt", NASTY), ("inner/", "inner/"),
                               ("plain.txt", "plain.txt")], page
    # The link leads to the file.
    assert get(srv, "/nodir/%3Cb%3E%26.txt").body == b"nasty\n"


def test_listing_still_prefers_index(eddy, root):
    srv = eddy("--listing", "--root", root, "static=127.0.0.1:0")
    assert get(srv, "/sub/").body == b"<h1>sub</h1>\n"


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nosuch", "/sub/nosuch.html", "/hello.txt/x", "/nosuch/"])
def test_missing_is_404(srv, path):
    assert get(srv, path).status == 404


def test_fifo_is_forbidden(srv):
    with HttpConn(srv.addr("static")) as c:
        c.send(http_request("GET", "/fifo"))
        assert c.response(timeout=2).status == 403  # and no wait for a writer
        c.send(http_request("GET", "/hello.txt"))
        assert c.response().body == HELLO


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_forbidden(srv, root):
    (root / "hello.txt").chmod(0)
    assert get(srv, "/hello.txt").status == 403


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_405(srv, method):
    with HttpConn(srv.addr("static")) as c:
        c.send(http_request(method, "/hello.txt", body=b"payload") + http_request("GET", "/"))
        r = c.response()
        assert r.status == 405 and r.header("Allow") == "GET, HEAD"
        assert c.response().status == 200  # the body was consumed, not taken as a request


def test_missing_root_is_refused(eddy_bin, tmp_path):
    r = run_eddy(eddy_bin, "--root", tmp_path / "nosuch", "static=127.0.0.1:0")
    assert r.returncode != 0
    assert "nosuch" in r.stderr, r.stderr


# ---- symlinks and escapes ---------------------------------------------------------------------


def test_symlinks_inside_the_root_work(srv):
    assert get(srv, "/link_in").body == HELLO
    assert get(srv, "/link_dir_in/").body == b"<h1>sub</h1>\n"


@pytest.mark.parametrize("path", ["/link_out", "/dirlink_out/secret.txt", "/dirlink_out/"])
def test_symlinks_out_of_the_root_are_forbidden(srv, path):
    r = get(srv, path)
    assert r.status == 403
    assert SECRET not in r.body


ESCAPES = [
    ("/../outside/secret.txt", 403),
    ("/sub/../../outside/secret.txt", 403),
    ("/..", 403),
    ("/sub/..", 403),
    ("/./hello.txt", 403),
    ("/%2e%2e/outside/secret.txt", 403),
    ("/%2E%2E/outside/secret.txt", 403),
    ("/.%2e/outside/secret.txt", 403),
    ("/sub/%2e%2e/hello.txt", 403),
    ("http://x/../outside/secret.txt", 403),
    ("/..%2foutside%2fsecret.txt", 400),
    ("/%2e%2e%2foutside%2fsecret.txt", 400),
    ("/sub%2F..%2F..%2Foutside%2Fsecret.txt", 400),
    ("/hello.txt%00.png", 400),
    ("/%00", 400),
]


@pytest.mark.parametrize("target,status", ESCAPES, ids=[t for t, _ in ESCAPES])
def test_escape_attempts(srv, target, status):
    with HttpConn(srv.addr("static")) as c:
        c.send(http_request("GET", target))
        r = c.response()
        assert r.status == status, r
        assert SECRET not in r.body
        # A refused path is an answer like any other: the connection lives on.
        c.send(http_request("GET", "/hello.txt"))
        assert c.response().body == HELLO


def test_curl_path_as_is_escape(srv):
    r = curl("--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
             url(srv, "/sub/../../outside/secret.txt"))
    assert r.stdout == b"403"


# ---- conditional requests -----------------------------------------------------------------------


def etag_of(srv, path="/hello.txt"):
    r = curl("-D", "-", "-o", "/dev/null", url(srv, path))
    _, headers, _ = curl_response(r.stdout)
    return headers["etag"]


def test_if_none_match(srv):
    etag = etag_of(srv)
    for value, status in ((etag, 304), ("W/" + etag, 304), ("*", 304),
                          (f'"nope", {etag}', 304), ('"nope"', 200)):
        r = curl("-D", "-", "-H", f"If-None-Match: {value}", url(srv, "/hello.txt"))
        line, headers, body = curl_response(r.stdout)
        assert line.split()[1] == str(status), (value, line)
        if status == 304:
            assert body == b""
            assert headers["etag"] == etag
        else:
            assert body == HELLO


def test_if_modified_since_with_curl_z(srv):
    def code(*args):
        return curl("-o", "/dev/null", "-w", "%{http_code}", *args, url(srv, "/hello.txt")).stdout

    assert code("-z", MTIME_TEXT) == b"304"
    assert code("-z", "Sat, 01 Jan 2022 00:00:00 GMT") == b"304"
    assert code("-z", "Tue, 31 Dec 2019 23:59:59 GMT") == b"200"


def test_if_none_match_wins_over_if_modified_since(srv):
    # RFC 9110, 13.1.3. (Not with curl -z: curl itself reports 304 for a 200
    # whose Last-Modified does not meet its time condition.)
    r = get(srv, "/hello.txt", headers=[("If-Modified-Since", MTIME_TEXT),
                                        ("If-None-Match", '"nope"')])
    assert r.status == 200 and r.body == HELLO
    r = get(srv, "/hello.txt", headers=[("If-Modified-Since", "Tue, 31 Dec 2019 23:59:59 GMT"),
                                        ("If-None-Match", etag_of(srv))])
    assert r.status == 304


# ---- ranges --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,first,last", [
    ("0-99", 0, 99),
    ("1048000-", 1048000, (1 << 20) - 1),
    ("-500", (1 << 20) - 500, (1 << 20) - 1),
    ("1000-9999999", 1000, (1 << 20) - 1),
    ("5-5", 5, 5),
])
def test_range(srv, spec, first, last):
    r = curl("-D", "-", "-r", spec, url(srv, "/big.bin"))
    line, headers, body = curl_response(r.stdout)
    assert line == "HTTP/1.1 206 Partial Content"
    assert headers["content-range"] == f"bytes {first}-{last}/{1 << 20}"
    assert headers["content-length"] == str(last - first + 1)
    assert body == BIG[first:last + 1]


@pytest.mark.parametrize("spec", ["2000000-", "1048576-1048577"])
def test_range_unsatisfiable(srv, spec):
    r = get(srv, "/big.bin", headers=[("Range", f"bytes={spec}")])
    assert r.status == 416
    assert r.header("Content-Range") == f"bytes */{1 << 20}"


def test_range_on_empty_file(srv):
    r = get(srv, "/empty.txt", headers=[("Range", "bytes=0-0")])
    assert r.status == 416 and r.header("Content-Range") == "bytes */0"


@pytest.mark.parametrize("value", ["bytes=0-1,5-6", "bytes=5-1", "lines=1-2", "bytes=x-y"])
def test_range_ignored(srv, value):
    r = get(srv, "/hello.txt", headers=[("Range", value)])
    assert r.status == 200 and r.body == HELLO and r.header("Content-Range") is None


def test_multiple_ranges_with_curl(srv):
    r = curl("-r", "0-1,5-6", "-w", " %{http_code}", url(srv, "/hello.txt"))
    assert r.stdout == HELLO + b" 200"


def test_if_range(srv):
    etag = etag_of(srv)
    r = get(srv, "/hello.txt", headers=[("Range", "bytes=0-4"), ("If-Range", etag)])
    assert r.status == 206 and r.body == HELLO[:5]
    r = get(srv, "/hello.txt", headers=[("Range", "bytes=0-4"), ("If-Range", '"old"')])
    assert r.status == 200 and r.body == HELLO


def test_head_range(srv):
    r = get(srv, "/big.bin", headers=[("Range", "bytes=10-19")], method="HEAD")
    assert r.status == 206 and r.header("Content-Length") == "10"
    assert r.header("Content-Range") == f"bytes 10-19/{1 << 20}"
