"""TURN over TCP (RFC 8656 s3.1, s12.5): the same methods on a stream, with
ChannelData padded to four bytes in both directions, Data indications on
the stream, and the allocation going away with its connection."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_tests, test  # noqa: E402
from turnlib import (ERROR, SUCCESS, XOR_MAPPED_ADDRESS, TurnClient,  # noqa: E402
                     check_integrity, turn_server, udp_peer)

SRV = {}


def server():
    if "s" not in SRV:
        SRV["s"] = turn_server(relay_ports=1, extra="total-quota = 0\n")  # 508, not 486
    return SRV["s"]


def client():
    return TurnClient(("127.0.0.1", server()[1]), transport="tcp", user="alice",
                      password="alice-pw")


@test
def allocate_over_tcp():
    c = client()
    r = c.allocate()
    assert r.cls == SUCCESS, r
    assert check_integrity(r.raw, c.key)
    assert r.xaddr(XOR_MAPPED_ADDRESS) == c.sock.getsockname()
    assert c.allocate().error == 437  # s7.2 item 2 on the same connection
    assert c.refresh(0).cls == SUCCESS
    c.close()


@test
def relay_over_tcp_send_data_and_channels():
    c = client()
    assert c.allocate().cls == SUCCESS
    peer = udp_peer()
    paddr = peer.getsockname()
    assert c.create_permission(paddr).cls == SUCCESS
    for n in (0, 1, 5, 1000):
        c.send_indication(paddr, b"s" * n)
        data, src = peer.recvfrom(65535)
        assert data == b"s" * n and src == c.relayed
        peer.sendto(b"d" * n, c.relayed)
        assert c.recv_data() == (paddr, b"d" * n)
    assert c.channel_bind(0x4abc, paddr).cls == SUCCESS
    # lengths that need 0..3 bytes of padding on the stream (s12.5)
    for n in (1, 2, 3, 4, 7, 100):
        c.send_channel(0x4abc, b"c" * n)
        assert peer.recvfrom(65535)[0] == b"c" * n
        peer.sendto(b"p" * n, c.relayed)
        assert c.recv_data() == (0x4abc, b"p" * n)
    # a request after padded frames still parses
    assert c.refresh(0).cls == SUCCESS
    c.close()


@test
def allocation_ends_with_the_connection():
    c = client()
    assert c.allocate().cls == SUCCESS
    # the only relay port is taken: another connection gets 508
    c2 = client()
    assert c2.allocate().error == 508
    c.close()  # no Refresh: the connection closing frees it
    for _ in range(50):
        r = c2.allocate()
        if r.cls == SUCCESS:
            break
        assert r.error == 508, r
    assert r.cls == SUCCESS, r
    c2.refresh(0)
    c2.close()


if __name__ == "__main__":
    run_tests()
