"""Peer refusals (RFC 8656 s21.2 policy; coturn's CVE-2020-26262 class):
with allow-loopback-peers off, every spelling of loopback, unspecified,
multicast, link-local, broadcast, the server's own address and the IPv4
embeddings in IPv6 (mapped, compatible, translated, 6to4, Teredo, NAT64)
is refused with 403 by CreatePermission and ChannelBind, and Send
indications to them are dropped; denied-peer-ip / allowed-peer-ip adjust
it; refusals are counted in the metrics."""
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, run_tests, test  # noqa: E402
from turnlib import (ERROR, REQUESTED_ADDRESS_FAMILY, SUCCESS, TurnClient,  # noqa: E402
                     turn_server, udp_peer)

V4_REFUSED = [
    "127.0.0.1", "127.0.0.2", "127.255.255.254",  # loopback
    "0.0.0.0", "0.1.2.3",                          # unspecified, this network
    "224.0.0.1", "239.255.255.250",                # multicast
    "169.254.1.1",                                 # link-local
    "255.255.255.255",                             # broadcast
    "240.0.0.1",                                   # reserved
]
V6_REFUSED = [
    "::1", "::",                                   # loopback, unspecified
    "::ffff:127.0.0.1", "::ffff:7f00:2",           # IPv4-mapped loopback
    "::127.0.0.1",                                 # IPv4-compatible
    "::ffff:0:127.0.0.1",                          # IPv4-translated
    "::ffff:0.0.0.0", "::ffff:169.254.0.1", "::ffff:224.0.0.1",
    "2002:7f00:1::1",                              # 6to4 of 127.0.0.1
    "2002:c000:201::1",                            # 6to4 itself (s21.4)
    "2001:0:4136:e378:8000:63bf:80ff:fffe",        # Teredo, client 127.0.0.1
    "64:ff9b::7f00:1",                             # NAT64 of 127.0.0.1
    "fe80::1", "ff02::1", "ff0e::1",               # link-local, multicast
]

SRV = {}


def server():
    if "s" not in SRV:
        mport = free_port()
        SRV["s"] = turn_server(v6=True, allow_loopback=False, extra=(
            "metrics-listen = 127.0.0.1:%d\n"
            "denied-peer-ip = 192.0.2.0-192.0.2.255\n"
            "allowed-peer-ip = 192.0.2.77\n" % mport))
        SRV["mport"] = mport
    return SRV["s"]


def client(v6=False):
    _, port, _ = server()
    c = TurnClient(("127.0.0.1", port), user="alice", password="alice-pw")
    extra = [(REQUESTED_ADDRESS_FAMILY, b"\x02\0\0\0")] if v6 else []
    r = c.allocate(extra=extra)
    assert r.cls == SUCCESS, r
    return c


def metrics():
    url = "http://127.0.0.1:%d/metrics" % SRV["mport"]
    return urllib.request.urlopen(url, timeout=5).read().decode()


def counter(text, name, **labels):
    total = 0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all('%s="%s"' % kv in line for kv in labels.items()):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


@test
def ipv4_spellings_refused():
    c = client()
    for ip in V4_REFUSED:
        r = c.create_permission((ip, 4000))
        assert r.cls == ERROR and r.error == 403, (ip, r)
        r = c.channel_bind(0x4000, (ip, 4000))
        assert r.cls == ERROR and r.error == 403, (ip, r)
    c.refresh(0)
    c.close()


@test
def ipv6_spellings_refused():
    c = client(v6=True)
    for ip in V6_REFUSED:
        r = c.create_permission((ip, 4000))
        assert r.cls == ERROR and r.error == 403, (ip, r)
        r = c.channel_bind(0x4001, (ip, 4000))
        assert r.cls == ERROR and r.error == 403, (ip, r)
    c.refresh(0)
    c.close()


@test
def own_listening_address_refused():
    _, port, _ = server()
    c = client()
    r = c.create_permission(("127.0.0.1", port))
    assert r.cls == ERROR and r.error == 403, r
    c.refresh(0)
    c.close()


@test
def denied_and_allowed_ranges():
    c = client()
    r = c.create_permission(("192.0.2.10", 1))
    assert r.cls == ERROR and r.error == 403, r  # denied-peer-ip
    r = c.create_permission(("192.0.2.77", 1))
    assert r.cls == SUCCESS, r                   # allowed-peer-ip overrides
    r = c.create_permission(("198.51.100.1", 1))
    assert r.cls == SUCCESS, r                   # an ordinary address
    c.refresh(0)
    c.close()


@test
def send_to_refused_peer_is_dropped_and_counted():
    before = counter(metrics(), "stund_turn_refusals_total", reason="403_forbidden")
    c = client()
    # a permission can only exist for an allowed address; the Send to a
    # refused one has none and is dropped
    c.send_indication(("127.0.0.1", 9), b"nope")
    r = c.create_permission(("127.0.0.1", 9))
    assert r.error == 403
    text = metrics()
    assert counter(text, "stund_turn_refusals_total", reason="403_forbidden") >= before + 1
    assert counter(text, "stund_turn_drops_total", reason="no_permission") >= 1
    assert counter(text, "stund_turn_peer_refusals_total", reason="loopback") >= 1
    assert counter(text, "stund_turn_allocations") >= 1
    c.refresh(0)
    c.close()


@test
def allow_loopback_peers_relays_to_loopback():
    srv = turn_server(allow_loopback=True)
    c = TurnClient(("127.0.0.1", srv[1]), user="alice", password="alice-pw")
    assert c.allocate().cls == SUCCESS
    peer = udp_peer()
    assert c.create_permission(peer.getsockname()).cls == SUCCESS
    c.send_indication(peer.getsockname(), b"ok")
    assert peer.recvfrom(100)[0] == b"ok"
    # still not the server's own listening port, nor the unspecified address
    assert c.create_permission(("127.0.0.1", srv[1])).error == 403
    assert c.create_permission(("0.0.0.0", 1)).error == 403
    c.refresh(0)
    c.close()
    srv[0].stop()


if __name__ == "__main__":
    run_tests()
