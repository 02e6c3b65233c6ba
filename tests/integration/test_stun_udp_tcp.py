"""Binding over UDP and TCP, IPv4 and IPv6, classic RFC 3489 clients, 420,
unknown methods, malformed input (counted; the server keeps serving),
stream framing, idle timeout and the connection cap."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import (MAGIC, Stund, free_port, stun_attr, stun_parse, stun_request, udp_transact,
                     xor_addr, plain_addr, test, run_tests)
from stund_helpers import (conf, error_code, fingerprint_ok, metric, no_answer, tcp_read_msg,
                           wait_closed, wait_metric, with_fingerprint)

PORT = free_port(count=2)
MPORT = free_port(kind=socket.SOCK_STREAM)
V6 = socket.has_ipv6
srv = None


def server():
    global srv
    if srv is None:
        ips = ("127.0.0.1", "::1") if V6 else ("127.0.0.1",)
        srv = Stund(conf(PORT, ips, MPORT, "idle-timeout = 2\nmax-connections = 4\n"))
    return srv


def udp(family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0) if family == socket.AF_INET else ("::1", 0))
    return s


@test
def udp_binding_ipv4():
    server()
    s = udp()
    req, tid = stun_request()
    data, frm = udp_transact(s, ("127.0.0.1", PORT), req)
    mtype, rtid, attrs = stun_parse(data)
    assert mtype == 0x0101 and rtid == tid, hex(mtype)
    assert frm == ("127.0.0.1", PORT)
    assert xor_addr(attrs[0x0020][0]) == s.getsockname(), attrs
    assert attrs[0x8022][0].startswith(b"natkit stund"), attrs
    assert 0x8028 not in attrs, "FINGERPRINT only when the request had one"
    assert 0x802C not in attrs, "one IPv4 address: no OTHER-ADDRESS"
    assert plain_addr(attrs[0x802B][0]) == ("127.0.0.1", PORT)  # RESPONSE-ORIGIN


@test
def udp_binding_fingerprint_mirrored():
    server()
    s = udp()
    req, tid = stun_request()
    data, _ = udp_transact(s, ("127.0.0.1", PORT), with_fingerprint(req))
    assert stun_parse(data)[0] == 0x0101
    assert fingerprint_ok(data)


@test
def udp_binding_ipv6():
    if not V6:
        print("skip: no IPv6")
        return
    server()
    s = udp(socket.AF_INET6)
    req, tid = stun_request()
    data, frm = udp_transact(s, ("::1", PORT), req)
    mtype, rtid, attrs = stun_parse(data)
    assert mtype == 0x0101
    assert xor_addr(attrs[0x0020][0], tid) == s.getsockname()[:2], attrs


@test
def classic_rfc3489_gets_mapped_address():
    server()
    s = udp()
    tid16 = os.urandom(16)
    req = struct.pack("!HH", 0x0001, 0) + tid16
    data, _ = udp_transact(s, ("127.0.0.1", PORT), req)
    mtype, _, attrs = stun_parse(data)
    assert mtype == 0x0101 and data[4:20] == tid16, "the 16-byte transaction ID is echoed"
    assert plain_addr(attrs[0x0001][0]) == s.getsockname(), attrs
    assert 0x0020 not in attrs, "no XOR-MAPPED-ADDRESS for RFC 3489 clients"


@test
def unknown_comprehension_required_attribute_420():
    server()
    s = udp()
    req, tid = stun_request(attrs=stun_attr(0x7F01, b"abcd") + stun_attr(0xC001, b"zz"))
    data, _ = udp_transact(s, ("127.0.0.1", PORT), req)
    mtype, _, attrs = stun_parse(data)
    assert mtype == 0x0111, hex(mtype)
    assert error_code(attrs) == 420
    assert struct.unpack("!H", attrs[0x000A][0][:2])[0] == 0x7F01, attrs
    # Comprehension-optional unknowns are ignored.
    req, tid = stun_request(attrs=stun_attr(0xC001, b"zz"))
    data, _ = udp_transact(s, ("127.0.0.1", PORT), req)
    assert stun_parse(data)[0] == 0x0101


@test
def unknown_method_400_and_indication_dropped():
    server()
    s = udp()
    req, tid = stun_request(method=0x00EF)  # an unassigned method
    data, _ = udp_transact(s, ("127.0.0.1", PORT), req)
    mtype, _, attrs = stun_parse(data)
    assert mtype & 0x0110 == 0x0110 and error_code(attrs) == 400, hex(mtype)
    before = metric(MPORT, 'stund_dropped_total{reason="indication"}')
    ind = struct.pack("!HHI", 0x00EF | 0x0010, 0, MAGIC) + os.urandom(12)  # its indication
    s.sendto(ind, ("127.0.0.1", PORT))
    wait_metric(MPORT, 'stund_dropped_total{reason="indication"}', lambda v: v == before + 1)
    assert no_answer(s, 0.1)


@test
def malformed_input_counted_and_server_keeps_serving():
    server()
    s = udp()
    m0 = metric(MPORT, 'stund_dropped_total{reason="malformed"}')
    n0 = metric(MPORT, 'stund_dropped_total{reason="not_stun"}')
    f0 = metric(MPORT, 'stund_dropped_total{reason="bad_fingerprint"}')
    req, tid = stun_request()
    bad = [
        req[:12],                                         # short header
        req[:2] + struct.pack("!H", 8) + req[4:],         # length past the end
        req + stun_attr(0x0020, b"\x00"),                 # XOR-MAPPED-ADDRESS too short, wrong length
        req[:2] + struct.pack("!H", 4) + req[4:] + struct.pack("!HH", 0x8022, 40),  # attr overrun
    ]
    for b in bad:
        s.sendto(b, ("127.0.0.1", PORT))
    s.sendto(b"\xff" * 40, ("127.0.0.1", PORT))
    fp = bytearray(with_fingerprint(req))
    fp[-1] ^= 1
    s.sendto(bytes(fp), ("127.0.0.1", PORT))
    wait_metric(MPORT, 'stund_dropped_total{reason="malformed"}', lambda v: v >= m0 + len(bad))
    wait_metric(MPORT, 'stund_dropped_total{reason="not_stun"}', lambda v: v == n0 + 1)
    wait_metric(MPORT, 'stund_dropped_total{reason="bad_fingerprint"}', lambda v: v == f0 + 1)
    assert no_answer(s, 0.1), "malformed input gets no answer"
    data, _ = udp_transact(s, ("127.0.0.1", PORT), req)
    assert stun_parse(data)[0] == 0x0101, "still serving"


@test
def rejected_packet_logs_are_rate_limited_per_source():
    p = server()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.3", 0))  # a source of its own: the budget is per address
    n0 = metric(MPORT, 'stund_dropped_total{reason="not_stun"}')
    for _ in range(30):
        s.sendto(b"\xee" * 24, ("127.0.0.1", PORT))
    wait_metric(MPORT, 'stund_dropped_total{reason="not_stun"}', lambda v: v == n0 + 30)
    src = "127.0.0.3:%d" % s.getsockname()[1]
    p.wait_line(src + ".*first byte 0xee")
    lines = [l for l in p.drain(0.2) if "first byte 0xee" in l]
    assert 1 <= len(lines) <= 5, "30 rejected packets, %d log lines" % len(lines)


def tcp(family=socket.AF_INET, host="127.0.0.1"):
    c = socket.create_connection((host, PORT), timeout=3)
    return c


@test
def tcp_binding_ipv4_with_framing():
    server()
    c = tcp()
    # Two requests in one write, then one split in three writes.
    r1, t1 = stun_request()
    r2, t2 = stun_request()
    c.sendall(r1 + r2)
    for tid in (t1, t2):
        data = tcp_read_msg(c)
        mtype, rtid, attrs = stun_parse(data)
        assert mtype == 0x0101 and rtid == tid
        assert xor_addr(attrs[0x0020][0]) == c.getsockname()
    r3, t3 = stun_request(attrs=stun_attr(0x8022, b"split client"))
    for part in (r3[:3], r3[3:21], r3[21:]):
        c.sendall(part)
    assert stun_parse(tcp_read_msg(c))[1] == t3
    c.close()


@test
def tcp_binding_ipv6():
    if not V6:
        print("skip: no IPv6")
        return
    server()
    c = socket.create_connection(("::1", PORT), timeout=3)
    req, tid = stun_request()
    c.sendall(req)
    mtype, rtid, attrs = stun_parse(tcp_read_msg(c))
    assert mtype == 0x0101
    assert xor_addr(attrs[0x0020][0], tid) == c.getsockname()[:2]
    c.close()


@test
def tcp_garbage_closes_connection_and_is_counted():
    server()
    b0 = metric(MPORT, 'stund_dropped_total{reason="bad_frame"}')
    c = tcp()
    c.sendall(b"\xff" * 24)  # neither STUN nor ChannelData
    assert wait_closed(c), "connection should be closed"
    wait_metric(MPORT, 'stund_dropped_total{reason="bad_frame"}', lambda v: v == b0 + 1)


@test
def tcp_idle_timeout():
    server()
    i0 = metric(MPORT, 'stund_dropped_total{reason="idle_timeout"}')
    c = tcp()
    req, tid = stun_request()
    c.sendall(req)
    tcp_read_msg(c)
    assert wait_closed(c, timeout=6), "idle connection not closed after idle-timeout"
    wait_metric(MPORT, 'stund_dropped_total{reason="idle_timeout"}', lambda v: v >= i0 + 1)


@test
def tcp_connection_cap():
    server()
    wait_metric(MPORT, "stund_active_connections", lambda v: v == 0)
    l0 = metric(MPORT, 'stund_dropped_total{reason="connection_limit"}')
    conns = [tcp() for _ in range(4)]
    wait_metric(MPORT, "stund_active_connections", lambda v: v == 4)
    extra = tcp()
    assert wait_closed(extra), "the fifth connection is refused (max-connections = 4)"
    wait_metric(MPORT, 'stund_dropped_total{reason="connection_limit"}', lambda v: v == l0 + 1)
    # The admitted ones still work.
    req, tid = stun_request()
    conns[0].sendall(req)
    assert stun_parse(tcp_read_msg(conns[0]))[1] == tid
    for c in conns:
        c.close()
    wait_metric(MPORT, "stund_active_connections", lambda v: v == 0)


@test
def per_source_rate_limit():
    port = free_port(count=2)
    mport = free_port(kind=socket.SOCK_STREAM)
    lim = Stund(conf(port, ("127.0.0.1",), mport, "workers = 1\nrate-limit = 5\n"))
    try:
        s = udp()
        for _ in range(40):
            s.sendto(stun_request()[0], ("127.0.0.1", port))
        wait_metric(mport, 'stund_dropped_total{reason="rate_limit"}', lambda v: v >= 30)
        got = 0
        while not no_answer(s, 0.2):
            s.recvfrom(2048)
            got += 1
        assert 1 <= got <= 10, "answered %d of 40 with a budget of 5/s" % got
        # Another source has its own budget.
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.4", 0))
        data, _ = udp_transact(other, ("127.0.0.1", port), stun_request()[0])
        assert stun_parse(data)[0] == 0x0101
    finally:
        lim.stop()


@test
def wildcard_listener_answers_from_the_address_reached():
    # No listening-ip: 0.0.0.0 and ::. IP_PKTINFO tells which address a
    # datagram reached; the answer leaves from it and RESPONSE-ORIGIN names it.
    port = free_port(count=2)
    w = Stund("listening-port = %d\nworkers = 1\n" % port)
    try:
        for dest in ("127.0.0.1", "127.0.0.5"):
            s = udp()
            req, tid = stun_request()
            data, frm = udp_transact(s, (dest, port), req)
            mtype, _, attrs = stun_parse(data)
            assert mtype == 0x0101 and frm == (dest, port), (dest, frm)
            assert plain_addr(attrs[0x802B][0]) == (dest, port), "RESPONSE-ORIGIN"
            assert 0x802C not in attrs
        c = socket.create_connection(("127.0.0.7", port), timeout=3)
        req, tid = stun_request()
        c.sendall(req)
        attrs = stun_parse(tcp_read_msg(c))[2]
        assert plain_addr(attrs[0x802B][0]) == ("127.0.0.7", port)
        c.close()
    finally:
        w.stop()


if __name__ == "__main__":
    run_tests()
