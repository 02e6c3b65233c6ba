"""UDP answers leave through a send-only twin socket bound to the listening
address and port (server/listener_udp.c). The twin is connected to its own
address so the kernel never hands it a client's datagram; with two workers
(four sockets per address in one SO_REUSEPORT group) every one of many
client flows must still be answered, from the listening address and port,
over IPv4 and IPv6 -- a twin that took a share of the flows would swallow
their requests, retransmissions included (same 5-tuple, same socket)."""
import os
import select
import socket
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stund, free_port, stun_parse, stun_request, xor_addr, test, run_tests
from stund_helpers import conf, scrape

PORT = free_port(count=2)
MPORT = free_port(kind=socket.SOCK_STREAM)
V6 = socket.has_ipv6
FLOWS = 200
srv = None


def server():
    global srv
    if srv is None:
        ips = ("127.0.0.1", "::1") if V6 else ("127.0.0.1",)
        srv = Stund(conf(PORT, ips, MPORT))
    return srv


def answer_all(family, host):
    """FLOWS sockets (distinct source ports) send one Binding each; up to
    three rounds for the unanswered. Returns {sock: (reply, from, tid)}."""
    socks = []
    try:
        for _ in range(FLOWS):
            s = socket.socket(family, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind((host, 0))
        reqs = {s: stun_request() for s in socks}
        got = {}
        for _ in range(3):
            todo = [s for s in socks if s not in got]
            if not todo:
                break
            for s in todo:
                s.sendto(reqs[s][0], (host, PORT))
            waiting = set(todo)
            while waiting:
                r, _, _ = select.select(list(waiting), [], [], 1.0)
                if not r:
                    break
                for s in r:
                    data, frm = s.recvfrom(2048)
                    got[s] = (data, frm, reqs[s][1])
                    waiting.discard(s)
        missing = len([s for s in socks if s not in got])
        assert missing == 0, "%d of %d flows never answered" % (missing, FLOWS)
        return [(s.getsockname(),) + got[s] for s in socks]
    finally:
        for s in socks:
            s.close()


def check(family, host):
    server()
    for local, data, frm, tid in answer_all(family, host):
        mtype, rtid, attrs = stun_parse(data)
        assert mtype == 0x0101 and rtid == tid
        # from the listening address and port, not from a twin elsewhere
        assert frm[0] == host and frm[1] == PORT, frm
        assert xor_addr(attrs[0x0020][0], tid) == (local[0], local[1])


@test
def many_flows_ipv4_all_answered_from_listening_port():
    check(socket.AF_INET, "127.0.0.1")


@test
def many_flows_ipv6_all_answered_from_listening_port():
    if not V6:
        print("  (no IPv6: skipped)")
        return
    check(socket.AF_INET6, "::1")


@test
def counted_as_sent_nothing_dropped():
    server()
    values = scrape(MPORT)
    drops = {k: v for k, v in values.items() if k.startswith("stund_dropped_total") and v}
    assert not drops, drops
    # each flow's first request at least, both families: all sent back out
    flows = FLOWS * (2 if V6 else 1)
    assert values["stund_sent_packets_total"] >= flows, values["stund_sent_packets_total"]
    assert values["stund_sent_packets_total"] == values["stund_received_packets_total"]


if __name__ == "__main__":
    try:
        run_tests()
    finally:
        if srv:
            srv.stop()
