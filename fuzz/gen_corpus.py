#!/usr/bin/python3
"""Writes the seed corpora and dictionaries of the connection-cycle fuzzers
(fuzz_http_conn, fuzz_tcp_services): fuzz/corpus/{http_conn,tcp_services}/
and fuzz/{http_conn,tcp_services}.dict. The script format is documented in
fuzz/fakesock.h; the header bytes in each target's opening comment.

    fuzz/gen_corpus.py            write them
    fuzz/gen_corpus.py --decode F print a script in words (also: run the
                                  target on it with FAKESOCK_TRACE=1)
"""
import os
import sys

OPS = ["CONNECT", "SEND", "SHUT", "CLOSE", "RESET", "ROOM", "ACK", "RFAULT", "WFAULT",
       "AFAULT", "EPOLL", "EINTR", "RUN", "SLEEP", "ADVANCE", "ROTATE", "TRUNCATE"]
ARGS = {"CONNECT": 1, "SHUT": 1, "CLOSE": 1, "RESET": 1, "ROOM": 2, "ACK": 2, "RFAULT": 3,
        "WFAULT": 3, "AFAULT": 1, "EPOLL": 2, "EINTR": 0, "RUN": 0, "SLEEP": 0, "ADVANCE": 1,
        "ROTATE": 1, "TRUNCATE": 1}
HTTP_OPS = ["DRAIN", "CLOSE-ALL", "PAUSE", "STOP"]
TCP_OPS = ["SHUTDOWN-ALL", "CLOSE-ALL", "PAUSE", "STOP"]
FAULTS = {"none": 0, "EINTR": 1, "EAGAIN": 2, "short": 3, "RST": 4, "EOF": 5}
ALL = 255  # room(255): unlimited
HERE = os.path.dirname(os.path.abspath(__file__))


def op(name, *args, run=True):
    """One step; run=False sets bit 7: the loop does not run after it."""
    if name in OPS:
        code = OPS.index(name)
    else:
        code = len(OPS) + (HTTP_OPS + TCP_OPS).index(name) % 4
    return bytes([code | (0 if run else 0x80)] + list(args))


def send(k, data, run=True):
    """Sends data on connection k, in steps of at most 255 bytes; only the
    last runs the loop (when run)."""
    if isinstance(data, str):
        data = data.encode()
    out = b""
    while True:
        piece, data = data[:255], data[255:]
        out += op("SEND", k, len(piece), run=run and not data) + piece
        if not data:
            return out


def trickle(k, data, step=1):
    """Sends data in pieces of `step` bytes, running the loop after each."""
    if isinstance(data, str):
        data = data.encode()
    return b"".join(send(k, data[i:i + step]) for i in range(0, len(data), step))


def connect(room=ALL):
    return op("CONNECT", room)


GET = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def req(method="GET", target="/", body=None, headers="", version="1.1"):
    s = f"{method} {target} HTTP/{version}\r\nHost: a\r\n{headers}"
    if body is not None:
        s += f"Content-Length: {len(body)}\r\n\r\n{body}"
    else:
        s += "\r\n"
    return s


def chunked(target, chunks, headers=""):
    s = f"POST {target} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n{headers}\r\n"
    for c in chunks:
        s += f"{len(c):x}\r\n{c}\r\n"
    return s + "0\r\n\r\n"


def http_seeds():
    """Header: option bits, read-size byte (see fuzz_http_conn.c)."""
    L, E, SMALL_READ, LIMITS, TIMEOUTS, REUSE = 0, 1, 4, 8, 16, 2
    s = {}
    s["get"] = bytes([L, 0]) + connect() + send(0, GET) + op("SHUT", 0)
    s["get-edge"] = bytes([E, 0]) + connect() + send(0, GET) + op("SHUT", 0)
    s["keepalive-two"] = bytes([L, 0]) + connect() + send(0, GET) + send(0, GET)
    s["pipelined-three"] = bytes([L, 0]) + connect() + send(
        0, GET + req("POST", "/p", "hello") + req("HEAD", "/h"))
    s["pipelined-edge-small-reads"] = bytes([E | SMALL_READ, 6]) + connect() + send(
        0, GET + req("POST", "/p", "hello") + GET)
    s["trickled"] = bytes([L, 0]) + connect() + trickle(0, req("POST", "/x", "abc"), 3)
    s["trickled-edge"] = bytes([E, 0]) + connect() + trickle(0, GET, 1)
    s["http10"] = bytes([L, 0]) + connect() + send(0, "GET / HTTP/1.0\r\n\r\n")
    s["http10-keepalive"] = bytes([L, 0]) + connect() + send(
        0, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET)
    s["close"] = bytes([L, 0]) + connect() + send(
        0, req(headers="Connection: close\r\n") + GET)
    s["file"] = bytes([L, 0]) + connect() + send(0, req(target="/file"))
    s["file-small-room"] = bytes([L, 0]) + connect(3) + send(0, req(target="/file/x")) + \
        op("ACK", 0, 4) + op("ACK", 0, 10)
    s["file-truncated"] = bytes([L, 0]) + connect(2) + send(0, req(target="/file/long")) + \
        op("TRUNCATE", 3) + op("ACK", 0, ALL)
    s["file-edge-pipelined"] = bytes([E, 0]) + connect(5) + send(
        0, req(target="/f1") + req(target="/f2") + GET) + op("ACK", 0, 8) + op("ACK", 0, 20)
    s["big-backpressure"] = bytes([L, 0]) + connect(20) + send(0, req(target="/big")) + \
        op("ACK", 0, 30) + op("ACK", 0, 60)
    s["big-edge-backpressure"] = bytes([E, 0]) + connect(20) + send(
        0, req(target="/big") + GET) + op("ACK", 0, 60) + op("ACK", 0, ALL)
    s["no-answer"] = bytes([L, 0]) + connect() + send(0, req(target="/none") + GET)
    s["twice"] = bytes([L, 0]) + connect() + send(0, req(target="/twice"))
    s["204-304"] = bytes([L, 0]) + connect() + send(0, req(target="/e") + req(target="/m"))
    s["head"] = bytes([L, 0]) + connect() + send(0, req("HEAD", "/big") + req("HEAD", "/f"))
    s["continue"] = bytes([L, 0]) + connect() + send(
        0, "POST /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n") + \
        send(0, "hello")
    s["continue-body-in-pieces"] = bytes([E, 0]) + connect() + send(
        0, "PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n") + \
        send(0, "he") + send(0, "ll") + send(0, "o!")
    s["chunked"] = bytes([L, 0]) + connect() + send(0, chunked("/c", ["abc", "defgh"]))
    s["chunked-trickled-edge"] = bytes([E, 0]) + connect() + trickle(
        0, chunked("/c", ["abc", "de"]) + GET, 4)
    s["chunked-continue"] = bytes([L, 0]) + connect() + send(
        0, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
        "Transfer-Encoding: chunked\r\n\r\n") + send(0, "3\r\nabc\r\n0\r\n\r\n")
    s["limits-414"] = bytes([LIMITS, 0]) + connect() + send(0, "GET /" + "a" * 80 + " HTTP/1.1\r\n")
    s["limits-431"] = bytes([LIMITS, 0]) + connect() + send(
        0, "GET / HTTP/1.1\r\nHost: a\r\n" + "X: y\r\n" * 10 + "\r\n")
    s["limits-413"] = bytes([LIMITS, 0]) + connect() + send(0, req("POST", "/", "x" * 70))
    s["limits-413-chunked"] = bytes([LIMITS, 0]) + connect() + send(
        0, chunked("/", ["x" * 40, "y" * 40]))
    s["bad-request"] = bytes([L, 0]) + connect() + send(0, "GET / HTTP/1.1\r\nHost: a\r\nBad\r\n\r\n")
    s["bad-version"] = bytes([L, 0]) + connect() + send(0, "GET / HTTP/2.0\r\n\r\n")
    s["header-timeout"] = bytes([TIMEOUTS, 0]) + connect() + send(0, "GET / HT") + op("SLEEP") + \
        op("SLEEP")
    s["body-timeout"] = bytes([TIMEOUTS, 0]) + connect() + send(
        0, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nab") + op("ADVANCE", 99) + \
        op("ADVANCE", 99) + op("ADVANCE", 99) + op("RUN")
    s["keepalive-timeout"] = bytes([TIMEOUTS, 0]) + connect() + send(0, GET) + op("SLEEP") + \
        op("SLEEP") + send(0, GET)
    s["write-timeout"] = bytes([TIMEOUTS, 0]) + connect(5) + send(0, req(target="/big")) + \
        op("SLEEP") + op("SLEEP") + op("SLEEP")
    s["reset-mid-request"] = bytes([L, 0]) + connect() + send(0, "GET / HTTP/1.1\r\n") + \
        op("RESET", 0) + send(0, "Host: a\r\n\r\n")
    s["reset-mid-response"] = bytes([L, 0]) + connect(10) + send(0, req(target="/big")) + \
        op("RESET", 0) + op("ACK", 0, ALL)
    s["half-close-pipelined"] = bytes([E, 0]) + connect() + send(0, GET + GET, run=False) + \
        op("SHUT", 0)
    s["client-closes-early"] = bytes([L, 0]) + connect(4) + send(0, req(target="/big")) + \
        op("CLOSE", 0) + op("ACK", 0, 50)
    s["read-faults"] = bytes([L, 0]) + connect() + op("RFAULT", 0, FAULTS["EINTR"], 0) + \
        send(0, GET) + op("RFAULT", 0, FAULTS["short"], 5, run=False) + send(0, GET) + \
        op("RFAULT", 0, FAULTS["EAGAIN"], 0) + send(0, GET)
    s["write-faults"] = bytes([L, 0]) + connect() + op("WFAULT", 0, FAULTS["short"], 7) + \
        send(0, GET) + op("WFAULT", 0, FAULTS["EINTR"], 0) + send(0, GET) + \
        op("WFAULT", 0, FAULTS["RST"], 0) + send(0, GET)
    s["epoll-spurious"] = bytes([E, 0]) + connect() + op("EPOLL", 0, 3) + op("RUN") + \
        send(0, GET) + op("EPOLL", 0, 4) + op("RUN")
    s["epoll-err"] = bytes([L, 0]) + connect() + send(0, "GET / HTTP/1.1\r\n") + \
        op("EPOLL", 0, 16)
    s["accept-faults"] = bytes([L, 0]) + op("AFAULT", 3) + connect() + op("SLEEP") + \
        op("AFAULT", 1) + connect() + op("RUN") + send(0, GET) + send(1, GET)
    s["two-conns-interleaved"] = bytes([E, 0]) + connect() + connect() + \
        send(0, "GET /a HTTP/1.1\r\n", run=False) + send(1, "GET /b HTTP/1.1\r\n") + \
        send(1, "Host: b\r\n\r\n", run=False) + send(0, "Host: a\r\n\r\n") + op("ROTATE", 1)
    s["reused-fds"] = bytes([REUSE, 0]) + connect() + send(0, req(headers="Connection: close\r\n")) + \
        op("SHUT", 0) + connect() + send(1, GET)
    s["drain"] = bytes([L, 0]) + connect() + connect() + send(0, GET) + \
        send(1, "GET / HTTP/1.1\r\n") + op("DRAIN", 0) + send(1, "Host: a\r\n\r\n")
    s["drain-in-handler"] = bytes([L, 0]) + connect() + connect() + send(1, GET) + \
        send(0, req(target="/drain") + GET)
    s["close-all-in-handler"] = bytes([L, 0]) + connect() + connect() + send(
        0, req(target="/close") + GET) + send(1, GET)
    s["close-all"] = bytes([L, 0]) + connect(5) + send(0, req(target="/big")) + \
        op("CLOSE-ALL", 0)
    s["pause-resume"] = bytes([L, 0]) + op("PAUSE", 0) + connect() + op("RUN") + \
        op("PAUSE", 1) + send(0, GET)
    s["stop-wakeup"] = bytes([L, 0]) + connect() + op("STOP", 0) + send(0, GET) + op("EINTR") + \
        op("RUN")
    return s


def tcp_seeds():
    """Header: service, option bits, parameter byte (see fuzz_tcp_services.c)."""
    ECHO, UPPER, TIME, DAYTIME, DISCARD, SINK, HELLO = range(7)
    E, REUSE, SMALL_READ, WATER, IDLE, LINGER, BUDGET, MAXIN = 1, 2, 4, 8, 16, 32, 64, 128
    s = {}
    for name, svc in (("echo", ECHO), ("upper", UPPER), ("discard", DISCARD), ("sink", SINK)):
        s[f"{name}"] = bytes([svc, 0, 0]) + connect() + send(0, "hello, World\n") + op("SHUT", 0)
        s[f"{name}-edge-pieces"] = bytes([svc, E | SMALL_READ, 3]) + connect() + \
            send(0, "abcdefgh", run=False) + send(0, "ijk") + op("SHUT", 0)
    s["echo-backpressure"] = bytes([ECHO, WATER, 0]) + connect(8) + send(0, "x" * 100) + \
        send(0, "y" * 100) + op("ACK", 0, 10) + op("ACK", 0, ALL)
    s["echo-backpressure-edge"] = bytes([ECHO, E | WATER | SMALL_READ, 16]) + connect(8) + \
        send(0, "x" * 200, run=False) + op("SHUT", 0) + op("ACK", 0, 10) + op("ACK", 0, ALL)
    s["echo-budget-edge"] = bytes([ECHO, E | SMALL_READ | BUDGET, 2]) + connect() + \
        send(0, "0123456789" * 5) + connect() + send(1, "abc")
    s["echo-eof-behind-data-edge"] = bytes([ECHO, E, 0]) + connect() + \
        send(0, "abc", run=False) + op("SHUT", 0)
    s["echo-reset"] = bytes([ECHO, 0, 0]) + connect(2) + send(0, "abcdef") + op("RESET", 0)
    s["echo-client-close"] = bytes([ECHO, 0, 0]) + connect(2) + send(0, "abcdef") + \
        op("CLOSE", 0) + op("ACK", 0, 3)
    s["echo-faults"] = bytes([ECHO, 0, 0]) + connect() + op("RFAULT", 0, 1, 0) + send(0, "ab") + \
        op("WFAULT", 0, 3, 1) + send(0, "cd") + op("WFAULT", 0, 2, 0) + send(0, "ef") + \
        op("RFAULT", 0, 5, 0) + send(0, "gh")
    s["echo-idle"] = bytes([ECHO, IDLE, 0]) + connect() + send(0, "a") + op("SLEEP") + send(0, "b")
    s["echo-max-input"] = bytes([ECHO, MAXIN | SMALL_READ, 63]) + connect() + send(0, "z" * 200)
    s["echo-reused-fds"] = bytes([ECHO, REUSE, 0]) + connect() + send(0, "a") + op("SHUT", 0) + \
        connect() + send(1, "b") + op("SHUT", 1)
    s["echo-shutdown-all"] = bytes([ECHO, 0, 0]) + connect() + connect() + send(0, "abc") + \
        op("SHUTDOWN-ALL", 0) + send(1, "def") + op("SHUT", 0)
    s["echo-close-all"] = bytes([ECHO, 0, 0]) + connect(1) + send(0, "abc") + op("CLOSE-ALL", 0)
    s["echo-accept-emfile"] = bytes([ECHO, 0, 0]) + op("AFAULT", 3, run=False) + connect() + \
        connect() + op("SLEEP") + send(1, "a")
    s["echo-pause"] = bytes([ECHO, 0, 0]) + op("PAUSE", 0) + connect() + op("PAUSE", 1) + send(0, "x")
    s["echo-epoll-events"] = bytes([ECHO, E, 0]) + connect() + op("EPOLL", 0, 1) + op("RUN") + \
        send(0, "a") + op("EPOLL", 0, 4) + op("EPOLL", 0, 2)
    s["echo-epoll-hup"] = bytes([ECHO, 0, 0]) + connect() + send(0, "a") + op("EPOLL", 0, 8)
    s["echo-stop"] = bytes([ECHO, 0, 0]) + connect() + op("STOP", 0) + op("EINTR") + send(0, "a")
    s["time"] = bytes([TIME, 0, 0]) + connect() + send(0, "abc")
    s["time-trickled"] = bytes([TIME, E, 0]) + connect() + trickle(0, "abcd")
    s["time-short"] = bytes([TIME, 0, 0]) + connect() + send(0, "ab") + op("SHUT", 0)
    s["time-linger"] = bytes([TIME, LINGER, 0]) + connect() + send(0, "abc") + send(0, "more") + \
        op("SLEEP") + op("SLEEP")
    s["daytime"] = bytes([DAYTIME, 0, 0]) + connect() + op("RUN") + op("SHUT", 0)
    s["daytime-small-room"] = bytes([DAYTIME, E, 0]) + connect(2) + op("ACK", 0, 3) + \
        op("ACK", 0, 5) + send(0, "ignored") + op("SHUT", 0)
    s["hello"] = bytes([HELLO, 0, 0]) + connect() + send(0, "GET / HTTP/1.0\r\n\r\n")
    s["hello-lf"] = bytes([HELLO, E | SMALL_READ, 1]) + connect() + trickle(0, "GET /\n\n", 2)
    s["hello-split-terminator"] = bytes([HELLO, 0, 0]) + connect() + send(0, "GET /\r\n") + \
        send(0, "\r") + send(0, "\n")
    s["hello-max-input"] = bytes([HELLO, MAXIN, 0]) + connect() + send(0, "a" * 200)
    s["hello-eof"] = bytes([HELLO, 0, 0]) + connect() + send(0, "GET /") + op("SHUT", 0)
    s["sink-many"] = bytes([SINK, E, 0]) + b"".join(connect() for _ in range(4)) + \
        b"".join(send(k, "data %d" % k) for k in range(4)) + op("SHUT", 2) + op("RESET", 3)
    return s


def dict_lines(ops, extra):
    lines = ["# Generated by fuzz/gen_corpus.py: the script's steps (fuzz/fakesock.h)."]
    for i, name in enumerate(OPS + ops):
        lines.append(f'op_{name.lower().replace("-", "_")}="\\x{i:02x}"')
        lines.append(f'op_{name.lower().replace("-", "_")}_norun="\\x{i | 0x80:02x}"')
    lines += [
        'connect_all="\\x00\\xff"', 'connect_small="\\x00\\x03"',
        'ack_all="\\x06\\x00\\xff"', 'shut0="\\x02\\x00"', 'reset0="\\x04\\x00"',
        'rfault_eagain="\\x07\\x00\\x02"', 'rfault_short="\\x07\\x00\\x03\\x01"',
        'wfault_short="\\x08\\x00\\x03\\x01"', 'sleep="\\x0d"', 'run="\\x0c"',
        'advance_big="\\x0e\\xc8"',
    ]
    for name, text in extra:
        enc = "".join(c if 0x20 <= ord(c) < 0x7f and c not in '"\\' else f"\\x{ord(c):02x}"
                      for c in text)
        lines.append(f'{name}="{enc}"')
    return "\n".join(lines) + "\n"


def write():
    for corpus, seeds in (("http_conn", http_seeds()), ("tcp_services", tcp_seeds())):
        d = os.path.join(HERE, "corpus", corpus)
        os.makedirs(d, exist_ok=True)
        # The directory is this script's: a seed dropped here is dropped there.
        for old in os.listdir(d):
            os.unlink(os.path.join(d, old))
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    http_extra = [
        ("send_get", "\x01\x00\x1aGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("get", GET), ("crlf", "\r\n"), ("end", "\r\n\r\n"), ("host", "Host: a\r\n"),
        ("cl", "Content-Length: "), ("te", "Transfer-Encoding: chunked\r\n"),
        ("close", "Connection: close\r\n"), ("ka", "Connection: keep-alive\r\n"),
        ("expect", "Expect: 100-continue\r\n"), ("last_chunk", "0\r\n\r\n"),
        ("post", "POST "), ("head", "HEAD "), ("v10", " HTTP/1.0\r\n"), ("v11", " HTTP/1.1\r\n"),
        ("t_file", "/file"), ("t_big", "/big"), ("t_none", "/none"), ("t_twice", "/twice"),
        ("t_204", "/e"), ("t_304", "/m"), ("t_drain", "/drain"), ("t_close", "/close"),
    ]
    with open(os.path.join(HERE, "http_conn.dict"), "w") as f:
        f.write(dict_lines(HTTP_OPS, http_extra))
    tcp_extra = [("blank", "\r\n\r\n"), ("lf2", "\n\n"), ("abc", "abc")]
    with open(os.path.join(HERE, "tcp_services.dict"), "w") as f:
        f.write(dict_lines(TCP_OPS, tcp_extra))


def room(b):
    return "unlimited" if b == 255 else b * b


def ms(b):
    return b if b < 100 else (b - 99) ** 2 * 100


def decode(path, target_ops):
    data = open(path, "rb").read()
    hlen = 3 if target_ops is TCP_OPS else 2
    print("header:", data[:hlen].hex(" "))
    p = hlen
    npeers = 0
    names = OPS + target_ops

    def arg(i):
        return data[p + i] if p + i < len(data) else 0

    def conn(i):
        return f"conn {arg(i) % npeers}" if npeers else "(no connection: skipped)"

    while p < len(data):
        code = data[p]
        p += 1
        name = names[(code & 0x7F) % len(names)]
        run = "" if code & 0x80 or name in ("RUN", "SLEEP") else "  (then run)"
        nargs = ARGS.get(name, 1)
        if name == "SEND":
            n = arg(1)
            print(f"SEND {conn(0)} {data[p + 2:p + 2 + n]!r}{run}")
            p += 2 + n
            continue
        if name == "CONNECT":
            what = f"CONNECT conn {npeers}, room {room(arg(0))}"
            npeers += 1
        elif name in ("ROOM", "ACK"):
            what = f"{name} {conn(0)} {room(arg(1))}"
        elif name in ("RFAULT", "WFAULT"):
            fault = list(FAULTS)[arg(1) % len(FAULTS)]
            what = f"{name} {conn(0)} {fault} {arg(2)}"
        elif name == "ADVANCE":
            what = f"ADVANCE {ms(arg(0))} ms"
        elif name in ("SHUT", "CLOSE", "RESET", "EPOLL"):
            what = f"{name} {conn(0)}" + (f" bits {arg(1)}" if name == "EPOLL" else "")
        else:
            what = " ".join([name] + [str(arg(i)) for i in range(nargs)])
        p += nargs
        print(what + run)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--decode":
        decode(sys.argv[2], TCP_OPS if "tcp_services" in sys.argv[2] else HTTP_OPS)
    else:
        write()
