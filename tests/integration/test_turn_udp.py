"""TURN over UDP (RFC 8656): every method and every error code of Allocate,
Refresh, CreatePermission and ChannelBind, against a real stund, with an
independent client (turnlib.py)."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_tests, test  # noqa: E402
from turnlib import (ADDITIONAL_ADDRESS_FAMILY, ADDRESS_ERROR_CODE, ALLOCATE,  # noqa: E402
                     CHANNEL_BIND, CHANNEL_NUMBER, ERROR, EVEN_PORT, LIFETIME, NONCE,
                     REALM, REFRESH, REQUESTED_ADDRESS_FAMILY, REQUESTED_TRANSPORT,
                     RESERVATION_TOKEN, SOFTWARE, SUCCESS, UNKNOWN_ATTRIBUTES,
                     XOR_MAPPED_ADDRESS, XOR_RELAYED_ADDRESS, TurnClient, build,
                     check_integrity, turn_server, udp_peer)

SRV = {}


def server():
    if "main" not in SRV:
        SRV["main"] = turn_server(v6=True, relay_ports=24)
    return SRV["main"]


def client(user="alice", pw="alice-pw", **kw):
    _, port, _ = server()
    return TurnClient(("127.0.0.1", port), user=user, password=pw, **kw)


RT_UDP = (REQUESTED_TRANSPORT, struct.pack("!B3x", 17))


@test
def allocate_challenge_then_success():
    _, port, (lo, hi) = server()
    c = client()
    # s7.2 item 1 / RFC 8489 s9.2.4: the first request is challenged
    m, tid = build(ALLOCATE, 0, [RT_UDP])
    r = c.transact(m, tid)
    assert r.cls == ERROR and r.error == 401, r
    assert r.get(REALM) == b"natkit.test" and r.get(NONCE), r
    r = c.allocate()
    assert r.cls == SUCCESS, r
    ip, rport = r.xaddr(XOR_RELAYED_ADDRESS)
    assert ip == "127.0.0.1" and lo <= rport <= hi, (ip, rport)
    assert r.lifetime == 600, r.lifetime
    assert r.xaddr(XOR_MAPPED_ADDRESS) == c.sock.getsockname(), r.xaddr(XOR_MAPPED_ADDRESS)
    assert r.has(SOFTWARE)
    assert check_integrity(r.raw, c.key), "response integrity"
    # the relayed address is really bound
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", rport))
        raise AssertionError("relayed port %d not bound" % rport)
    except OSError:
        pass
    s.close()
    c.refresh(0)
    c.close()


@test
def wrong_password_is_401():
    c = client(pw="nope")
    r = c.allocate()
    assert r.cls == ERROR and r.error == 401, r
    c.close()


@test
def retransmission_gets_the_same_answer():
    c = client()
    # learn realm and nonce on this 5-tuple without allocating: 437 (s5)
    r = c.refresh()
    assert r.cls == ERROR and r.error == 437, r
    msg, tid = c.build_request(ALLOCATE, [RT_UDP])
    r1 = c.transact(msg, tid)
    assert r1.cls == SUCCESS, r1
    r2 = c.transact(msg, tid)
    assert r2.raw == r1.raw, "retransmitted Allocate answered differently"
    # a new transaction on the same 5-tuple: 437 (s7.2 item 2)
    r3 = c.allocate()
    assert r3.cls == ERROR and r3.error == 437, r3
    c.refresh(0)
    c.close()


@test
def allocate_error_codes():
    c = client()
    c.allocate()
    c.refresh(0)
    cases = [
        ("no REQUESTED-TRANSPORT", [], 400),
        ("transport 99", [(REQUESTED_TRANSPORT, struct.pack("!B3x", 99))], 442),
        ("TCP over UDP (RFC 6062 s5.1)", [(REQUESTED_TRANSPORT, struct.pack("!B3x", 6))], 400),
        ("both family attributes", [RT_UDP, (REQUESTED_ADDRESS_FAMILY, b"\x01\0\0\0"),
                                    (ADDITIONAL_ADDRESS_FAMILY, b"\x02\0\0\0")], 400),
        ("additional family IPv4", [RT_UDP, (ADDITIONAL_ADDRESS_FAMILY, b"\x01\0\0\0")], 400),
        ("EVEN-PORT R with additional family",
         [RT_UDP, (EVEN_PORT, b"\x80"), (ADDITIONAL_ADDRESS_FAMILY, b"\x02\0\0\0")], 400),
        ("token with EVEN-PORT", [RT_UDP, (RESERVATION_TOKEN, b"12345678"),
                                  (EVEN_PORT, b"\x00")], 400),
        ("unknown token", [RT_UDP, (RESERVATION_TOKEN, b"nosuchtk")], 508),
        ("family 0x07", [RT_UDP, (REQUESTED_ADDRESS_FAMILY, b"\x07\0\0\0")], None),
    ]
    for name, attrs, code in cases:
        msg, tid = c.build_request(ALLOCATE, attrs)
        r = c.transact(msg, tid)
        assert r.cls == ERROR, (name, r)
        if code is None:
            assert r.error in (400, 440), (name, r.error)
        else:
            assert r.error == code, (name, r.error, code)
        assert check_integrity(r.raw, c.key), name
    # 420: an unknown comprehension-required attribute
    msg, tid = c.build_request(ALLOCATE, [RT_UDP, (0x0031, b"\0\0\0\0")])
    r = c.transact(msg, tid)
    assert r.error == 420 and struct.unpack("!H", r.get(UNKNOWN_ATTRIBUTES)[:2])[0] == 0x31, r
    c.close()


@test
def address_family_440_without_ipv6_relay():
    srv = turn_server(v6=False)
    c = TurnClient(("127.0.0.1", srv[1]), user="alice", password="alice-pw")
    r = c.allocate(extra=[(REQUESTED_ADDRESS_FAMILY, b"\x02\0\0\0")])
    assert r.cls == ERROR and r.error == 440, r
    # dual-stack asked, only IPv4 served: success with ADDRESS-ERROR-CODE 440
    r = c.allocate(extra=[(ADDITIONAL_ADDRESS_FAMILY, b"\x02\0\0\0")])
    assert r.cls == SUCCESS, r
    assert len(r.xaddrs(XOR_RELAYED_ADDRESS)) == 1
    aec = r.get(ADDRESS_ERROR_CODE)
    assert aec and aec[0] == 2 and (aec[2] & 7) * 100 + aec[3] == 440, aec
    c.refresh(0)
    c.close()
    srv[0].stop()


@test
def ipv6_and_dual_stack():
    c = client()
    r = c.allocate(extra=[(REQUESTED_ADDRESS_FAMILY, b"\x02\0\0\0")])
    assert r.cls == SUCCESS and r.xaddr(XOR_RELAYED_ADDRESS)[0] == "::1", r
    # s8.2: Refresh with another family: 443
    r = c.refresh(extra=[(REQUESTED_ADDRESS_FAMILY, b"\x01\0\0\0")])
    assert r.cls == ERROR and r.error == 443, r
    c.refresh(0)
    c.close()
    c = client()
    r = c.allocate(extra=[(ADDITIONAL_ADDRESS_FAMILY, b"\x02\0\0\0")])
    assert r.cls == SUCCESS, r
    fams = sorted(a[0] for a in r.xaddrs(XOR_RELAYED_ADDRESS))
    assert fams == ["127.0.0.1", "::1"], fams
    assert not r.has(ADDRESS_ERROR_CODE)
    c.refresh(0)
    c.close()


@test
def even_port_and_reservation_token():
    c = client()
    r = c.allocate(extra=[(EVEN_PORT, b"\x00")])
    assert r.cls == SUCCESS and r.xaddr(XOR_RELAYED_ADDRESS)[1] % 2 == 0, r
    assert not r.has(RESERVATION_TOKEN)
    c.refresh(0)
    r = c.allocate(extra=[(EVEN_PORT, b"\x80")])
    assert r.cls == SUCCESS, r
    port = r.xaddr(XOR_RELAYED_ADDRESS)[1]
    token = r.get(RESERVATION_TOKEN)
    assert port % 2 == 0 and token and len(token) == 8, r
    # another 5-tuple takes the reserved N+1 with the token (s7.2)
    c2 = client()
    r2 = c2.allocate(extra=[(RESERVATION_TOKEN, token)])
    assert r2.cls == SUCCESS and r2.xaddr(XOR_RELAYED_ADDRESS)[1] == port + 1, r2
    # used once: a third client gets 508
    c3 = client()
    r3 = c3.allocate(extra=[(RESERVATION_TOKEN, token)])
    assert r3.cls == ERROR and r3.error == 508, r3
    for x in (c, c2):
        x.refresh(0)
    for x in (c, c2, c3):
        x.close()


@test
def lifetimes_and_refresh():
    c = client()
    r = c.allocate(lifetime=30)
    assert r.lifetime == 600, r.lifetime  # never below the default (s7.2)
    r = c.refresh(1200)
    assert r.cls == SUCCESS and r.lifetime == 1200, r
    r = c.refresh(999999)
    assert r.lifetime == 3600, r.lifetime  # the maximum
    r = c.refresh()
    assert r.lifetime == 600, r.lifetime
    r = c.refresh(0)  # s8.2: zero deletes
    assert r.cls == SUCCESS and r.lifetime == 0, r
    r = c.refresh()
    assert r.cls == ERROR and r.error == 437, r
    # a CreatePermission without an allocation: 437 too (s5)
    r = c.create_permission(("127.0.0.1", 9))
    assert r.cls == ERROR and r.error == 437, r
    c.close()


@test
def wrong_credentials_441():
    c = client()
    c.allocate()
    # the same 5-tuple, another valid user (s5): 441
    c.user, c.password = "bob", "bob-pw"
    c.key = None
    c.realm = None
    r = c.refresh()
    assert r.cls == ERROR and r.error == 441, r
    c.user, c.password, c.realm, c.key = "alice", "alice-pw", None, None
    assert c.refresh(0).cls == SUCCESS
    c.close()


@test
def create_permission_errors():
    c = client()
    c.allocate()
    r = c.request(8, [])  # no XOR-PEER-ADDRESS
    assert r.cls == ERROR and r.error == 400, r
    r = c.create_permission(("::1", 5000))  # IPv6 peer, IPv4 allocation
    assert r.cls == ERROR and r.error == 443, r
    r = c.create_permission(("127.0.0.1", 5000), ("127.0.0.2", 1))
    assert r.cls == SUCCESS, r
    assert check_integrity(r.raw, c.key)
    c.refresh(0)
    c.close()


@test
def channel_bind_rules():
    c = client()
    c.allocate()
    a, b = ("127.0.0.1", 40001), ("127.0.0.1", 40002)
    assert c.channel_bind(0x3FFF, a).error == 400
    assert c.channel_bind(0x5000, a).error == 400
    r = c.request(CHANNEL_BIND, [(CHANNEL_NUMBER, struct.pack("!H2x", 0x4000))])
    assert r.error == 400, r  # no XOR-PEER-ADDRESS
    r = c.channel_bind(0x4000, a)
    assert r.cls == SUCCESS, r
    assert c.channel_bind(0x4000, a).cls == SUCCESS  # refresh
    assert c.channel_bind(0x4000, b).error == 400  # number bound elsewhere
    assert c.channel_bind(0x4001, a).error == 400  # address bound elsewhere
    assert c.channel_bind(0x4001, ("::1", 1)).error == 443
    assert c.channel_bind(0x4001, b).cls == SUCCESS
    c.refresh(0)
    c.close()


@test
def stale_nonce_438():
    c = client()
    assert c.allocate().cls == SUCCESS
    good = c.nonce
    # a nonce the server never issued (tampered) is stale: 438 with a new one
    c.nonce = good[:-2] + (b"AA" if good[-2:] != b"AA" else b"BB")
    msg, tid = c.build_request(REFRESH, [])
    r = c.transact(msg, tid)
    assert r.cls == ERROR and r.error == 438, r
    assert r.get(NONCE) and r.get(REALM), r
    c.nonce = r.get(NONCE)
    assert c.refresh(0).cls == SUCCESS
    c.close()


@test
def quotas_and_capacity():
    srv = turn_server(relay_ports=4, extra="user-quota = 2\ntotal-quota = 3\n")
    port = srv[1]
    cs = [TurnClient(("127.0.0.1", port), user=u, password=u + "-pw")
          for u in ("alice", "alice", "alice", "bob", "bob")]
    assert cs[0].allocate().cls == SUCCESS
    assert cs[1].allocate().cls == SUCCESS
    cs[2].refresh()  # learn the nonce (437)
    m, tid = cs[2].build_request(ALLOCATE, [RT_UDP])
    r = cs[2].transact(m, tid)
    assert r.cls == ERROR and r.error == 486, r  # per user
    assert cs[3].allocate().cls == SUCCESS
    r = cs[4].allocate()
    assert r.cls == ERROR and r.error == 486, r  # total
    cs[0].refresh(0)
    # a retransmission gets the same answer, though room was made since
    assert cs[2].transact(m, tid).error == 486
    assert cs[2].allocate().cls == SUCCESS  # a new transaction succeeds
    for x in cs:
        x.close()
    srv[0].stop()
    # capacity: two relay ports and no quotas (total-quota defaults to the
    # port range: 0 lifts it) -> the third gets 508
    srv = turn_server(relay_ports=2, extra="total-quota = 0\n")
    cs = [TurnClient(("127.0.0.1", srv[1]), user="alice", password="alice-pw")
          for _ in range(3)]
    assert cs[0].allocate().cls == SUCCESS
    assert cs[1].allocate().cls == SUCCESS
    r = cs[2].allocate()
    assert r.cls == ERROR and r.error == 508, r
    for x in cs:
        x.close()
    srv[0].stop()


@test
def relay_send_and_data():
    c = client()
    c.allocate()
    relayed = c.relayed
    peer = udp_peer()
    paddr = peer.getsockname()
    # without a permission nothing is relayed either way
    c.send_indication(paddr, b"early")
    assert c.create_permission(paddr).cls == SUCCESS
    c.send_indication(paddr, b"hello peer")
    data, src = peer.recvfrom(65535)
    assert data == b"hello peer" and src == relayed, (data, src)
    peer.sendto(b"hello client", relayed)
    got = c.recv_data()
    assert got == (paddr, b"hello client"), got
    # zero-length DATA is relayed too (s11.2)
    c.send_indication(paddr, b"")
    data, src = peer.recvfrom(65535)
    assert data == b"" and src == relayed
    # a peer without permission is silently dropped; a permitted one passes
    other = udp_peer("127.0.0.2")
    other.sendto(b"unpermitted", relayed)
    peer.sendto(b"marker", relayed)
    got = c.recv_data()
    assert got == (paddr, b"marker"), got
    # sizes: 1 .. 1200 bytes, padding of DATA
    for n in (1, 2, 3, 5, 1200):
        peer.sendto(b"x" * n, relayed)
        assert c.recv_data() == (paddr, b"x" * n)
        c.send_indication(paddr, b"y" * n)
        assert peer.recvfrom(65535)[0] == b"y" * n
    c.refresh(0)
    c.close()


@test
def relay_channels():
    c = client()
    c.allocate()
    relayed = c.relayed
    peer = udp_peer()
    paddr = peer.getsockname()
    assert c.channel_bind(0x4001, paddr).cls == SUCCESS
    c.send_channel(0x4001, b"via channel")
    data, src = peer.recvfrom(65535)
    assert data == b"via channel" and src == relayed
    # s12.5: the server MUST use the channel towards the client
    peer.sendto(b"back", relayed)
    got = c.recv_data()
    assert got == (0x4001, b"back"), got
    # an unbound channel is dropped; the bound one still works
    c.send_channel(0x4002, b"nobody")
    c.send_channel(0x4001, b"second")
    assert peer.recvfrom(65535)[0] == b"second"
    # a short datagram (length says more than there is) is dropped
    c.send_raw(struct.pack("!HH", 0x4001, 100) + b"short")
    c.send_channel(0x4001, b"third")
    assert peer.recvfrom(65535)[0] == b"third"
    # Send indications still work with a channel bound
    c.send_indication(paddr, b"ind")
    assert peer.recvfrom(65535)[0] == b"ind"
    c.refresh(0)
    c.close()


@test
def icmp_from_peer():
    c = client()
    c.allocate()
    closed = udp_peer()
    dead = closed.getsockname()
    closed.close()  # nothing listens there now: ICMP port unreachable
    assert c.create_permission(dead).cls == SUCCESS
    c.send_indication(dead, b"anyone?")
    got = c.recv_data(timeout=3)
    assert got and got[0] == "icmp", got
    _, addr, icmp = got
    assert addr[0] == "127.0.0.1", addr
    assert icmp[2] == 3 and icmp[3] == 3, icmp  # destination / port unreachable
    c.refresh(0)
    c.close()


@test
def ipv6_client_transports():
    """UDP and TCP from [::1]: RFC 6156 relaying IPv6 client to IPv4 peer."""
    _, port, _ = server()
    peer = udp_peer()
    for transport in ("udp", "tcp"):
        c = TurnClient(("::1", port), transport=transport, user="alice", password="alice-pw")
        r = c.allocate()
        assert r.cls == SUCCESS, (transport, r)
        assert r.xaddr(XOR_MAPPED_ADDRESS)[0] == "::1"
        assert c.relayed[0] == "127.0.0.1"
        assert c.channel_bind(0x4100, peer.getsockname()).cls == SUCCESS
        c.send_channel(0x4100, transport.encode())
        data, src = peer.recvfrom(100)
        assert data == transport.encode() and src == c.relayed
        peer.sendto(b"to " + transport.encode(), c.relayed)
        assert c.recv_data() == (0x4100, b"to " + transport.encode())
        assert c.refresh(0).cls == SUCCESS
        c.close()


if __name__ == "__main__":
    run_tests()
