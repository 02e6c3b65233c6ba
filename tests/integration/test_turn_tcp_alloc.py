"""RFC 6062 TCP allocations: Allocate with REQUESTED-TRANSPORT TCP on a
control connection, Connect (with CONNECTION-ID, 446, 447), a peer's
connection to the relayed address (ConnectionAttempt, permission check),
ConnectionBind on a new connection and raw data both ways, including what
the peer sent before the bind, and the pairing of closes."""
import os
import select
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_tests, test  # noqa: E402
from turnlib import (CONNECT, CONNECTION_ATTEMPT, CONNECTION_BIND,  # noqa: E402
                     CONNECTION_ID, ERROR, EVEN_PORT, INDICATION, SUCCESS, TCP,
                     XOR_PEER_ADDRESS, XOR_RELAYED_ADDRESS, Msg, TurnClient,
                     turn_server)

SRV = {}


def server():
    if "s" not in SRV:
        SRV["s"] = turn_server(relay_ports=16)
    return SRV["s"]


def control():
    c = TurnClient(("127.0.0.1", server()[1]), transport="tcp", user="alice",
                   password="alice-pw")
    r = c.allocate(transport=TCP)
    assert r.cls == SUCCESS, r
    return c


def tcp_listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    return s


def connect(c, peer):
    tid = os.urandom(12)
    return c.request(CONNECT, [c.peer_attr(peer, tid)], tid)


def bind_data(cid, user="alice", pw="alice-pw"):
    d = TurnClient(("127.0.0.1", server()[1]), transport="tcp", user=user, password=pw)
    r = d.request(CONNECTION_BIND, [(CONNECTION_ID, struct.pack("!I", cid))])
    return d, r


def read_exact(sock, n, pre=b"", timeout=5.0):
    data = pre
    while len(data) < n:
        r, _, _ = select.select([sock], [], [], timeout)
        assert r, "timeout after %d of %d bytes" % (len(data), n)
        chunk = sock.recv(65536)
        assert chunk, "closed after %d of %d bytes" % (len(data), n)
        data += chunk
    return data


def closed(sock, timeout=5.0):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r) and sock.recv(1) == b""


@test
def allocate_tcp_rules():
    c = control()
    assert c.relayed[0] == "127.0.0.1"
    c.refresh(0)
    c.close()
    # RFC 6062 s5.1: not over UDP (400), no EVEN-PORT (400)
    u = TurnClient(("127.0.0.1", server()[1]), user="alice", password="alice-pw")
    r = u.allocate(transport=TCP)
    assert r.cls == ERROR and r.error == 400, r
    u.close()
    t = TurnClient(("127.0.0.1", server()[1]), transport="tcp", user="alice",
                   password="alice-pw")
    r = t.allocate(transport=TCP, extra=[(EVEN_PORT, b"\0")])
    assert r.cls == ERROR and r.error == 400, r
    t.close()


@test
def connect_then_bind_and_relay():
    c = control()
    lst = tcp_listener()
    peer_addr = lst.getsockname()
    r = connect(c, peer_addr)
    assert r.cls == SUCCESS and r.has(CONNECTION_ID), r
    cid = struct.unpack("!I", r.get(CONNECTION_ID))[0]
    p, src = lst.accept()
    assert src == c.relayed, (src, c.relayed)  # from the relayed address
    # s5.2: one connection per peer address
    r = connect(c, peer_addr)
    assert r.cls == ERROR and r.error == 446, r
    p.sendall(b"early bytes")  # before the bind: buffered (s5.4)
    d, r = bind_data(cid)
    assert r.cls == SUCCESS, r
    got = read_exact(d.sock, len(b"early bytes"), d._stream)
    assert got == b"early bytes", got
    d.sock.sendall(b"x" * 100000)
    assert read_exact(p, 100000) == b"x" * 100000
    p.sendall(b"y" * 50000)
    assert read_exact(d.sock, 50000) == b"y" * 50000
    # s5.5: the client data connection closing closes the peer's
    d.close()
    assert closed(p)
    c.refresh(0)
    c.close()


@test
def connect_failure_and_bad_bind():
    c = control()
    lst = tcp_listener()
    dead = lst.getsockname()
    lst.close()
    r = connect(c, dead)
    assert r.cls == ERROR and r.error == 447, r
    d, r = bind_data(0x12345678)
    assert r.cls == ERROR and r.error == 400, r
    d.close()
    # Connect on a UDP allocation: 400; without allocation: 437
    u = TurnClient(("127.0.0.1", server()[1]), transport="tcp", user="alice",
                   password="alice-pw")
    assert connect(u, ("127.0.0.1", 9)).error == 437
    assert u.allocate().cls == SUCCESS
    assert connect(u, ("127.0.0.1", 9)).error == 400
    u.refresh(0)
    u.close()
    c.refresh(0)
    c.close()


@test
def peer_connects_to_relayed_address():
    c = control()
    relayed = c.relayed
    # without a permission the connection is closed at once (s5.3)
    p0 = socket.create_connection(relayed, timeout=5)
    assert closed(p0)
    p0.close()
    assert c.create_permission(("127.0.0.1", 0)).cls == SUCCESS
    p = socket.create_connection(relayed, timeout=5)
    p.sendall(b"hello from the peer")
    ind = c.recv(timeout=5)
    assert isinstance(ind, Msg) and ind.method == CONNECTION_ATTEMPT and ind.cls == INDICATION, ind
    assert ind.xaddr(XOR_PEER_ADDRESS) == p.getsockname()
    cid = struct.unpack("!I", ind.get(CONNECTION_ID))[0]
    d, r = bind_data(cid)
    assert r.cls == SUCCESS, r
    assert read_exact(d.sock, 19, d._stream) == b"hello from the peer"
    d.sock.sendall(b"hello peer")
    assert read_exact(p, 10) == b"hello peer"
    # s5.5: the peer closing closes the client data connection
    p.close()
    assert closed(d.sock)
    d.close()
    # the allocation going away closes the rest
    c.refresh(0)
    c.close()


@test
def another_user_cannot_bind():
    c = control()
    lst = tcp_listener()
    r = connect(c, lst.getsockname())
    cid = struct.unpack("!I", r.get(CONNECTION_ID))[0]
    d, r = bind_data(cid, user="bob", pw="bob-pw")
    assert r.cls == ERROR and r.error == 441, r
    d.close()
    c.refresh(0)
    c.close()


if __name__ == "__main__":
    run_tests()
