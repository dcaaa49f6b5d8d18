"""Running eddy as an operator would: connection limits, graceful shutdown
with a drain deadline, and dropping privileges."""

import grp
import os
import signal
import socket
import time

import pytest

from conftest import (HttpConn, connect, http_request, recv_until_eof, round_trip, run_eddy,
                      served_again, stopped, stuck_connection, TIMEOUT)


def test_max_connections_http_gets_503(eddy):
    srv = eddy("--max-connections", "2", "http=127.0.0.1:0")
    with HttpConn(srv.addr("http")) as a, HttpConn(srv.addr("http")) as b:
        for c in (a, b):
            c.send(http_request())
            assert c.response().status == 200
        mark = srv.mark()
        with connect(srv.addr("http")) as s:
            s.sendall(http_request())
            reply = recv_until_eof(s)
        assert reply.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"Connection: close\r\n" in reply
        srv.wait_for(r"WARNING - refused 1 connection\(s\): --max-connections 2", start=mark,
                     timeout=3)
        # The two admitted clients are still served.
        a.send(http_request())
        assert a.response().status == 200


def test_max_connections_tcp_closes_and_recovers(eddy):
    srv = eddy("--max-connections", "1", "echo=127.0.0.1:0")
    with connect(srv.addr("echo")) as first:
        first.sendall(b"one\n")
        assert first.recv(16) == b"one\n"
        with connect(srv.addr("echo")) as second:
            assert recv_until_eof(second) == b""
    # The first client has left: a new one is admitted.
    served_again(lambda: round_trip(srv.addr("echo"), b"again\n", timeout=1) == b"again\n")


def test_sigterm_finishes_requests_in_flight(eddy):
    srv = eddy("http=127.0.0.1:0")
    with HttpConn(srv.addr("http")) as idle, connect(srv.addr("http")) as busy:
        idle.send(http_request())
        assert idle.response().status == 200
        request = http_request()
        busy.sendall(request[:10])  # a request is under way
        mark = srv.mark()
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(r"SIGTERM received: no longer accepting", start=mark)
        # The idle keep-alive connection is closed (after a 1 s grace for a
        # request already on its way)...
        assert recv_until_eof(idle.sock) == b""
        # ...the one in flight is answered, told the connection ends, closed.
        busy.sendall(request[10:])
        reply = recv_until_eof(busy)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in reply
    assert srv.stop() == 0


@pytest.mark.parametrize("seconds", [1, None], ids=["--drain-timeout 1", "default"])
def test_drain_timeout_force_closes_and_says_how_many(eddy, seconds):
    limit = seconds or 10  # the default
    srv = eddy(*(("--drain-timeout", str(seconds)) if seconds else ()), "echo=127.0.0.1:0")
    with stuck_connection(srv.addr("echo")):
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(limit + TIMEOUT)
        took = time.monotonic() - t0
    assert srv.stop() == 0
    assert limit - 0.2 <= took < limit + 3, f"exited {took:.1f} s after SIGTERM, not {limit} s"
    srv.wait_for(r"WARNING - closed 1 connection\(s\) that did not finish in time")


def test_second_signal_closes_at_once(eddy):
    srv = eddy("--drain-timeout", "30", "echo=127.0.0.1:0")
    with stuck_connection(srv.addr("echo")):
        mark = srv.mark()
        srv.proc.send_signal(signal.SIGINT)
        srv.wait_for(r"SIGINT received", start=mark)
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(TIMEOUT)
    assert srv.stop() == 0


@pytest.mark.parametrize("service,request_", [("http", http_request()), ("echo", b"ping\n")])
def test_max_connections_refuses_with_a_clean_close(eddy, service, request_):
    """A client refused past --max-connections gets a FIN, not a reset, even
    though its request was there before eddy accepted it (eddy was busy):
    a reset could destroy the 503 before the client reads it."""
    srv = eddy("--max-connections", "1", f"{service}=127.0.0.1:0")
    with connect(srv.addr(service)) as held:
        held.sendall(request_)
        assert held.recv(100)
        mark = srv.mark()
        with stopped(srv.pid):
            refused = connect(srv.addr(service))
            refused.sendall(request_)
        with refused:
            # Said after eddy closed the socket: a reset has arrived by then.
            srv.wait_for(r"WARNING - refused 1 connection\(s\)", start=mark, timeout=3)
            err = refused.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            assert err == 0, f"refused with {os.strerror(err)}"
            reply = recv_until_eof(refused)
    if service == "http":
        assert reply.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    else:
        assert reply == b""


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_user_drops_root_after_binding(eddy):
    srv = eddy("--user", "nobody", "echo=127.0.0.1:0")
    srv.wait_for(r"INFO - running as user nobody")  # the listeners are opened first
    with open(f"/proc/{srv.pid}/status") as f:
        ids = {line.split(":")[0]: line.split()[1:] for line in f if line.startswith(("Uid", "Gid"))}
    assert ids["Uid"] == ["65534"] * 4
    assert "0" not in ids["Gid"]
    assert round_trip(srv.addr("echo")) == b"ping\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_user_with_group_replaces_every_group(eddy):
    """--user NAME:GROUP: the gid is GROUP's, and the supplementary groups
    are NAME's, none of those eddy was started with (setpriv gives it sudo's)."""
    adm = grp.getgrnam("adm").gr_gid
    srv = eddy("--user", "nobody:adm", "echo=127.0.0.1:0",
               prefix=("setpriv", "--groups", str(grp.getgrnam("sudo").gr_gid), "--"))
    srv.wait_for(rf"INFO - running as user nobody \(uid 65534, gid {adm}\)")
    with open(f"/proc/{srv.pid}/status") as f:
        ids = {line.split(":")[0]: line.split()[1:] for line in f
               if line.startswith(("Uid", "Gid", "Groups"))}
    assert ids["Uid"] == ["65534"] * 4
    assert ids["Gid"] == [str(adm)] * 4
    assert sorted(map(int, ids["Groups"])) == sorted(os.getgrouplist("nobody", adm))
    assert round_trip(srv.addr("echo")) == b"ping\n"


@pytest.mark.parametrize("spec,said", [("no-such-user-here", "no user 'no-such-user-here'"),
                                       ("nobody:no-such-group", "no group 'no-such-group'")])
def test_user_unknown_is_refused(eddy_bin, spec, said):
    r = run_eddy(eddy_bin, "--user", spec, "echo=127.0.0.1:0")
    assert r.returncode == 1
    assert said in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the warning is about running as root")
@pytest.mark.parametrize("user", [(), ("--user", "root")])
def test_static_as_root_warns(eddy, tmp_path, user):
    srv = eddy(*user, "--root", tmp_path, "static=127.0.0.1:0")
    srv.wait_for(r"WARNING - static is serving files as root")
