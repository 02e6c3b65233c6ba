"""TURN limits and operations: the per-allocation bandwidth cap (max-bps,
RFC 8656 s5: excess application data is discarded), live metrics of
allocations, permissions, channels and relayed packets and bytes by
direction, DONT-FRAGMENT, max-allocate-lifetime, and a SIGHUP reload under
live allocations."""
import os
import signal
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import STUND, free_port, run_tests, test  # noqa: E402
from turnlib import (DONT_FRAGMENT, SUCCESS, TurnClient, recv_from,  # noqa: E402
                     turn_server, udp_peer)


def scrape(mport):
    return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5).read().decode()


def value(text, name, **labels):
    total = 0
    for line in text.splitlines():
        if line.startswith(name + "{") and all('%s="%s"' % kv in line for kv in labels.items()):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


@test
def max_bps_caps_an_allocation():
    # 1000 bytes/s (coturn's unit), a burst of one second's worth
    srv, port, _ = turn_server(extra="max-bps = 1000\n")
    c = TurnClient(("127.0.0.1", port), user="alice", password="alice-pw")
    assert c.allocate().cls == SUCCESS
    peer = udp_peer()
    assert c.create_permission(peer.getsockname()).cls == SUCCESS
    for _ in range(20):  # 4000 bytes at once: about a quarter passes
        c.send_indication(peer.getsockname(), b"x" * 200)
    got = 0
    while recv_from(peer, 0.5)[0] is not None:
        got += 1
    assert 1 <= got <= 7, got
    c.refresh(0)
    c.close()
    srv.stop()


@test
def metrics_count_relayed_traffic():
    mport = free_port()
    srv, port, _ = turn_server(extra="metrics-listen = 127.0.0.1:%d\n" % mport)
    c = TurnClient(("127.0.0.1", port), user="alice", password="alice-pw")
    assert c.allocate().cls == SUCCESS
    peer = udp_peer()
    paddr = peer.getsockname()
    assert c.create_permission(paddr).cls == SUCCESS
    assert c.channel_bind(0x4000, paddr).cls == SUCCESS
    t = scrape(mport)
    assert value(t, "stund_turn_allocations") == 1
    assert value(t, "stund_turn_permissions") == 1
    assert value(t, "stund_turn_channels") == 1
    for i in range(5):
        c.send_channel(0x4000, b"a" * 10)
        peer.recvfrom(100)
    for i in range(3):
        peer.sendto(b"b" * 20, c.relayed)
        assert c.recv_data() == (0x4000, b"b" * 20)
    c.send_channel(0x4321, b"unbound")  # dropped: no channel
    c.refresh(0)
    t = scrape(mport)
    assert value(t, "stund_turn_relayed_packets_total", direction="to_peer") == 5, t
    assert value(t, "stund_turn_relayed_bytes_total", direction="to_peer") == 50
    assert value(t, "stund_turn_relayed_packets_total", direction="to_client") == 3
    # ChannelData towards the client: 4-byte header + 20
    assert value(t, "stund_turn_relayed_bytes_total", direction="to_client") == 3 * 24
    assert value(t, "stund_turn_drops_total", reason="no_channel") == 1
    assert value(t, "stund_turn_allocations") == 0
    assert value(t, "stund_turn_allocations_deleted_total") == 1
    assert value(t, "stund_turn_refusals_total", reason="401_unauthorized") >= 1
    c.close()
    srv.stop()


@test
def dont_fragment_is_supported():
    srv, port, _ = turn_server()
    c = TurnClient(("127.0.0.1", port), user="alice", password="alice-pw")
    # s7.2 item 4: supported, so not treated as an unknown attribute
    assert c.allocate(extra=[(DONT_FRAGMENT, b"")]).cls == SUCCESS
    peer = udp_peer()
    assert c.create_permission(peer.getsockname()).cls == SUCCESS
    c.send_indication(peer.getsockname(), b"df", extra=[(DONT_FRAGMENT, b"")])
    assert peer.recvfrom(100)[0] == b"df"
    c.send_indication(peer.getsockname(), b"no df")
    assert peer.recvfrom(100)[0] == b"no df"
    c.refresh(0)
    c.close()
    srv.stop()


@test
def reload_keeps_allocations_and_takes_new_users():
    srv, port, _ = turn_server()
    c = TurnClient(("127.0.0.1", port), user="alice", password="alice-pw")
    assert c.allocate().cls == SUCCESS
    peer = udp_peer()
    paddr = peer.getsockname()
    assert c.channel_bind(0x4002, paddr).cls == SUCCESS
    carol = TurnClient(("127.0.0.1", port), user="carol", password="carol-pw")
    assert carol.allocate().error == 401
    # SIGHUP with carol added and bob gone
    with open(srv.conf_path) as f:
        conf = f.read().replace("user = bob:bob-pw", "user = carol:carol-pw")
    with open(srv.conf_path, "w") as f:
        f.write(conf)
    srv.signal(signal.SIGHUP)
    srv.wait_line(r"worker 0: new configuration in use")
    c.send_channel(0x4002, b"after reload")
    assert peer.recvfrom(100)[0] == b"after reload"
    peer.sendto(b"back", c.relayed)
    assert c.recv_data() == (0x4002, b"back")
    assert c.refresh().cls == SUCCESS  # alice's nonce still good
    assert carol.allocate().cls == SUCCESS
    bob = TurnClient(("127.0.0.1", port), user="bob", password="bob-pw")
    assert bob.allocate().error == 401
    for x in (c, carol):
        assert x.refresh(0).cls == SUCCESS
        x.close()
    bob.close()
    srv.stop()


@test
def max_allocate_lifetime_is_configurable():
    srv, port, _ = turn_server(extra="max-allocate-lifetime = 1200\n")
    c = TurnClient(("127.0.0.1", port), user="alice", password="alice-pw")
    r = c.allocate(lifetime=86400)
    assert r.cls == SUCCESS and r.lifetime == 1200, r.lifetime
    assert c.refresh(5000).lifetime == 1200
    assert c.refresh(900).lifetime == 900
    assert c.refresh(0).cls == SUCCESS
    c.close()
    srv.stop()
    # a value out of range is a config error naming the key
    r = subprocess.run([STUND, "--check-config", "--max-allocate-lifetime", "10"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "max-allocate-lifetime" in r.stdout + r.stderr, r


if __name__ == "__main__":
    run_tests()
