"""RFC 5780 NAT behaviour discovery on 127.0.0.1 + 127.0.0.2: each
CHANGE-REQUEST combination arrives from the right address and port,
OTHER-ADDRESS and RESPONSE-ORIGIN, RESPONSE-PORT, bounded PADDING, the
redirect rate limit; with one address there is no OTHER-ADDRESS."""
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Stund, free_port, plain_addr, stun_attr, stun_parse, stun_request,
                     udp_transact, xor_addr, test, run_tests)
from stund_helpers import conf, error_code, metric, no_answer, wait_metric

P1 = free_port(count=2)
P2 = P1 + 1
MPORT = free_port(kind=socket.SOCK_STREAM)
A1, A2 = "127.0.0.1", "127.0.0.2"
srv = None


def server():
    global srv
    if srv is None:
        srv = Stund(conf(P1, (A1, A2), MPORT, "max-padding = 1000\nrate-limit-redirect = 1000\n"))
    return srv


def change(flags):
    return stun_attr(0x0003, struct.pack("!I", flags))


def client():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


# RFC 5780 s6.1 Table 1: (destination, flags) -> expected source.
CASES = [
    ((A1, P1), 0, (A1, P1)),
    ((A1, P1), 4, (A2, P1)),
    ((A1, P1), 2, (A1, P2)),
    ((A1, P1), 6, (A2, P2)),
    ((A2, P2), 0, (A2, P2)),
    ((A2, P2), 4, (A1, P2)),
    ((A2, P2), 2, (A2, P1)),
    ((A2, P2), 6, (A1, P1)),
    ((A1, P2), 6, (A2, P1)),
    ((A2, P1), 6, (A1, P2)),
]


@test
def change_request_every_combination():
    server()
    for dest, flags, want in CASES:
        s = client()
        req, tid = stun_request(attrs=change(flags))
        data, frm = udp_transact(s, dest, req)
        mtype, rtid, attrs = stun_parse(data)
        assert mtype == 0x0101 and rtid == tid, (dest, flags, hex(mtype))
        assert frm == want, "to %s flags %d: from %s, want %s" % (dest, flags, frm, want)
        assert plain_addr(attrs[0x802B][0]) == want, "RESPONSE-ORIGIN is the real source"
        other = ((A2 if dest[0] == A1 else A1), (P2 if dest[1] == P1 else P1))
        assert plain_addr(attrs[0x802C][0]) == other, "OTHER-ADDRESS is Ca:Cp"
        assert xor_addr(attrs[0x0020][0]) == s.getsockname()
        assert plain_addr(attrs[0x0001][0]) == s.getsockname(), "MAPPED-ADDRESS too"
        s.close()


@test
def plain_request_gets_other_address():
    server()
    s = client()
    req, tid = stun_request()
    data, frm = udp_transact(s, (A1, P1), req)
    attrs = stun_parse(data)[2]
    assert frm == (A1, P1)
    assert plain_addr(attrs[0x802C][0]) == (A2, P2)


@test
def classic_client_gets_changed_address():
    server()
    s = client()
    tid16 = os.urandom(16)
    req = struct.pack("!HH", 0x0001, 8) + tid16 + change(6)
    data, frm = udp_transact(s, (A1, P1), req)
    attrs = stun_parse(data)[2]
    assert frm == (A2, P2), frm
    assert plain_addr(attrs[0x0001][0]) == s.getsockname()
    assert plain_addr(attrs[0x0004][0]) == (A2, P2), "SOURCE-ADDRESS"
    assert plain_addr(attrs[0x0005][0]) == (A2, P2), "CHANGED-ADDRESS"


@test
def response_port():
    server()
    s, r = client(), client()
    port = r.getsockname()[1]
    req, tid = stun_request(attrs=stun_attr(0x0027, struct.pack("!HH", port, 0)))
    for _ in range(3):
        s.sendto(req, (A1, P1))
        rd, _, _ = select.select([r], [], [], 1.0)
        if rd:
            break
    data, frm = r.recvfrom(2048)
    mtype, rtid, attrs = stun_parse(data)
    assert mtype == 0x0101 and rtid == tid
    assert frm == (A1, P1)
    assert xor_addr(attrs[0x0020][0]) == s.getsockname(), "mapped address of the request's source"
    assert no_answer(s, 0.1), "nothing to the original port"


@test
def response_port_with_padding_is_400():
    server()
    s = client()
    req, tid = stun_request(attrs=stun_attr(0x0027, struct.pack("!HH", 9, 0)) +
                            stun_attr(0x0026, b"\0" * 64))
    data, frm = udp_transact(s, (A1, P1), req)
    mtype, _, attrs = stun_parse(data)
    assert mtype == 0x0111 and error_code(attrs) == 400


@test
def padding_mirrored_and_bounded():
    server()
    s = client()
    req, tid = stun_request(attrs=stun_attr(0x0026, b"\0" * 402))
    data, _ = udp_transact(s, (A1, P1), req)
    mtype, _, attrs = stun_parse(data)
    assert mtype == 0x0101
    assert len(attrs[0x0026][0]) == 404, "PADDING rounded up to a multiple of 4"
    assert len(data) <= 2 * len(req) + 160
    p0 = metric(MPORT, 'stund_dropped_total{reason="padding_too_large"}')
    req, tid = stun_request(attrs=stun_attr(0x0026, b"\0" * 1200))  # max-padding = 1000
    data, _ = udp_transact(s, (A1, P1), req)
    mtype, _, attrs = stun_parse(data)
    assert mtype == 0x0111 and error_code(attrs) == 400
    assert 0x0026 not in attrs and len(data) < 200
    wait_metric(MPORT, 'stund_dropped_total{reason="padding_too_large"}', lambda v: v == p0 + 1)


@test
def tcp_has_no_alternate():
    server()
    c = socket.create_connection((A1, P1), timeout=3)
    req, tid = stun_request(attrs=change(6))
    c.sendall(req)
    data = c.recv(4096)
    mtype, _, attrs = stun_parse(data)
    assert mtype == 0x0111 and error_code(attrs) == 420, "CHANGE-REQUEST cannot be honoured on TCP"
    c.close()


@test
def one_address_no_other_address_and_420():
    port = free_port(count=2)
    one = Stund(conf(port, (A1,)))
    try:
        s = client()
        req, tid = stun_request()
        data, _ = udp_transact(s, (A1, port), req)
        attrs = stun_parse(data)[2]
        assert 0x802C not in attrs, "no OTHER-ADDRESS with one address"
        assert plain_addr(attrs[0x802B][0]) == (A1, port)
        req, tid = stun_request(attrs=change(4))
        data, _ = udp_transact(s, (A1, port), req)
        mtype, _, attrs = stun_parse(data)
        assert mtype == 0x0111 and error_code(attrs) == 420  # RFC 5780 s6
        assert struct.unpack("!H", attrs[0x000A][0][:2])[0] == 0x0003
    finally:
        one.stop()


@test
def redirect_rate_limit():
    port = free_port(count=2)
    mport = free_port(kind=socket.SOCK_STREAM)
    lim = Stund(conf(port, (A1, A2), mport, "workers = 1\nrate-limit-redirect = 5\n"))
    try:
        s = client()
        for _ in range(40):
            req, _ = stun_request(attrs=change(6))
            s.sendto(req, (A1, port))
        got = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], 0.3)
            if not r:
                break
            s.recvfrom(2048)
            got += 1
        assert 1 <= got <= 10, "answered %d of 40 with a budget of 5/s" % got
        wait_metric(mport, 'stund_dropped_total{reason="redirect_rate_limit"}', lambda v: v >= 30)
        # Plain Binding requests are not limited by it.
        req, tid = stun_request()
        data, _ = udp_transact(s, (A1, port), req)
        assert stun_parse(data)[0] == 0x0101
    finally:
        lim.stop()


if __name__ == "__main__":
    run_tests()
