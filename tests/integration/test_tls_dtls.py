#!/usr/bin/env python3
"""STUN over TLS and DTLS (RFC 8489 s6.2.2) against a real stund on loopback.

TLS is checked with Python's ssl module, DTLS with tests/tools/dtls_stun_client
(mbedTLS; Python has no DTLS). Certificates are self-signed, made with
`openssl req` at test time. Covers IPv4 and IPv6, framing on the TLS stream,
metrics, SIGHUP certificate reload (new connections see the new certificate,
existing ones stay up; a broken certificate is rejected), the idle timeout
and the connection cap.
"""
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD, STUND, Proc, Stund, free_port, plain_addr, run_tests, stun_attr,  # noqa: E402
                     stun_parse, stun_request, test, tmpdir, xor_addr)

DTLS_CLIENT = os.path.join(BUILD, "dtls_stun_client")
XOR_MAPPED = 0x0020
SOFTWARE = 0x8022
RESPONSE_ORIGIN = 0x802B
BINDING_SUCCESS = 0x0101

D = tmpdir()


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


IPV6 = have_ipv6()


def make_cert(name, cn):
    cert, key = os.path.join(D, name + ".crt"), os.path.join(D, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


ONE = make_cert("one", "stund-one")
TWO = make_cert("two", "stund-two")
CERT, KEY = os.path.join(D, "server.crt"), os.path.join(D, "server.key")


def install(pair):
    """Put a certificate where the config points (as a renewal would)."""
    shutil.copyfile(pair[0], CERT + ".tmp")
    shutil.copyfile(pair[1], KEY + ".tmp")
    os.replace(CERT + ".tmp", CERT)
    os.replace(KEY + ".tmp", KEY)


def config(port, tls_port, metrics_port, extra=""):
    ips = "listening-ip = 127.0.0.1\n" + ("listening-ip = ::1\n" if IPV6 else "")
    return ("%slistening-port = %d\ntls-listening-port = %d\ncert = %s\npkey = %s\n"
            "metrics-listen = 127.0.0.1:%d\nworkers = 2\nlog-level = debug\n%s"
            % (ips, port, tls_port, CERT, KEY, metrics_port, extra))


def start(extra=""):
    port = free_port(count=2)
    tls_port = free_port()
    mport = free_port()
    srv = Stund(config(port, tls_port, mport, extra))
    srv.tls_port, srv.metrics_port = tls_port, mport
    return srv


# --- TLS with Python's ssl ----------------------------------------------------

CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE  # self-signed; the test checks the subject itself


def tls_connect(host, port):
    s = socket.create_connection((host, port), timeout=5)
    return CTX.wrap_socket(s)


def recv_exact(t, n):
    buf = b""
    while len(buf) < n:
        chunk = t.recv(n - len(buf))
        if not chunk:
            raise AssertionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def recv_stun(t):
    hdr = recv_exact(t, 20)
    length = struct.unpack("!H", hdr[2:4])[0]
    return hdr + recv_exact(t, length)


def check_binding(resp, tid, local, server=None):
    mtype, rtid, attrs = stun_parse(resp)
    assert mtype == BINDING_SUCCESS, "type 0x%04x" % mtype
    assert rtid == tid
    mapped = xor_addr(attrs[XOR_MAPPED][0], tid)
    assert mapped == local[:2], "mapped %s, local %s" % (mapped, local[:2])
    assert SOFTWARE in attrs
    if server and RESPONSE_ORIGIN in attrs:  # RFC 5780 s7.3: where it was sent from
        origin = plain_addr(attrs[RESPONSE_ORIGIN][0])
        assert origin == server[:2], "RESPONSE-ORIGIN %s, server %s" % (origin, server[:2])


def tls_binding(t):
    req, tid = stun_request()
    t.sendall(req)
    check_binding(recv_stun(t), tid, t.getsockname(), t.getpeername())


def peer_cn(t):
    der = t.getpeercert(binary_form=True)
    for cn in (b"stund-one", b"stund-two"):
        if cn in der:
            return cn.decode()
    return None


# --- DTLS with the mbedTLS test client -------------------------------------------

def dtls_binding(host, port):
    r = subprocess.run([DTLS_CLIENT, host, str(port)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "dtls_stun_client failed: %s %s" % (r.stdout, r.stderr)
    lines = dict(l.split(" ", 1) for l in r.stdout.splitlines() if " " in l)
    assert lines["mapped"] == lines["local"], r.stdout
    if "origin" in lines:
        want = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
        assert lines["origin"] == want, r.stdout
    return lines


def wait_count(proc, pattern, n, timeout=10.0):
    """Wait until pattern has matched n output lines of proc."""
    import re
    rx = re.compile(pattern)
    end = time.monotonic() + timeout
    while True:
        got = sum(1 for l in proc.lines if rx.search(l))
        if got >= n:
            return
        if time.monotonic() > end:
            raise AssertionError("%d of %d /%s/; output:\n%s"
                                 % (got, n, pattern, "\n".join(proc.lines[-20:])))
        proc._pump(0.2)


def metric(srv, name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % srv.metrics_port,
                                  timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no metric %s" % name)


# --- tests --------------------------------------------------------------------

install(ONE)
SRV = start()


@test
def tls_binding_ipv4():
    with tls_connect("127.0.0.1", SRV.tls_port) as t:
        assert peer_cn(t) == "stund-one"
        tls_binding(t)
        tls_binding(t)


@test
def tls_framing_several_and_split():
    """Two requests in one write, then one in three writes (RFC 8656 s12.5 framing)."""
    with tls_connect("127.0.0.1", SRV.tls_port) as t:
        r1, t1 = stun_request(attrs=stun_attr(SOFTWARE, b"test"))
        r2, t2 = stun_request()
        t.sendall(r1 + r2)
        check_binding(recv_stun(t), t1, t.getsockname())
        check_binding(recv_stun(t), t2, t.getsockname())
        r3, t3 = stun_request(attrs=stun_attr(SOFTWARE, b"split request"))
        for part in (r3[:3], r3[3:22], r3[22:]):
            t.sendall(part)
            time.sleep(0.01)  # separate records on purpose
        check_binding(recv_stun(t), t3, t.getsockname())


@test
def tls_binding_ipv6():
    if not IPV6:
        print("skip: no ::1")
        return
    with tls_connect("::1", SRV.tls_port) as t:
        tls_binding(t)


@test
def dtls_binding_ipv4_and_ipv6():
    hvr0 = metric(SRV, "stund_dtls_hello_verify_requests_total")
    lines = dtls_binding("127.0.0.1", SRV.tls_port)
    assert lines["subject"] == "CN=stund-one", lines
    if IPV6:
        dtls_binding("::1", SRV.tls_port)
    # Every association began with a HelloVerifyRequest (RFC 6347 s4.2.1).
    assert metric(SRV, "stund_dtls_hello_verify_requests_total") >= hvr0 + (2 if IPV6 else 1)


@test
def metrics_count_tls_and_dtls():
    tls0 = metric(SRV, 'stund_tls_handshakes_total{transport="tls"}')
    dtls0 = metric(SRV, 'stund_tls_handshakes_total{transport="dtls"}')
    req0 = metric(SRV, 'stund_messages_total{method="Binding",class="request"}')
    with tls_connect("127.0.0.1", SRV.tls_port) as t:
        tls_binding(t)
        assert metric(SRV, 'stund_tls_sessions{transport="tls"}') >= 1
    dtls_binding("127.0.0.1", SRV.tls_port)
    assert metric(SRV, 'stund_tls_handshakes_total{transport="tls"}') == tls0 + 1
    assert metric(SRV, 'stund_tls_handshakes_total{transport="dtls"}') == dtls0 + 1
    assert metric(SRV, 'stund_messages_total{method="Binding",class="request"}') == req0 + 2


@test
def sighup_reloads_certificate_keeps_sessions():
    old_tls = tls_connect("127.0.0.1", SRV.tls_port)
    assert peer_cn(old_tls) == "stund-one"
    tls_binding(old_tls)
    old_dtls = Proc([DTLS_CLIENT, "--stdin", "127.0.0.1", str(SRV.tls_port)],
                    stdin=subprocess.PIPE)
    old_dtls.wait_line(r"^subject CN=stund-one")
    wait_count(old_dtls, r"^mapped ", 1)

    install(TWO)
    SRV.signal(signal.SIGHUP)
    SRV.wait_line(r"certificate reloaded .*stund-two")

    with tls_connect("127.0.0.1", SRV.tls_port) as t:
        assert peer_cn(t) == "stund-two", "a new connection must see the new certificate"
        tls_binding(t)
    assert dtls_binding("127.0.0.1", SRV.tls_port)["subject"] == "CN=stund-two"
    # The connections made before the reload are still up and answered.
    tls_binding(old_tls)
    assert peer_cn(old_tls) == "stund-one"
    old_dtls.p.stdin.write(b"again\n")
    old_dtls.p.stdin.flush()
    wait_count(old_dtls, r"^mapped ", 2)
    old_tls.close()
    old_dtls.p.stdin.close()
    assert old_dtls.p.wait(timeout=10) == 0


@test
def sighup_with_broken_certificate_is_rejected():
    with open(CERT, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    SRV.signal(signal.SIGHUP)
    m = SRV.wait_line(r"reload rejected: cert .*server\.crt: ")
    assert "X509" in m.string or "PEM" in m.string, m.string
    with tls_connect("127.0.0.1", SRV.tls_port) as t:
        assert peer_cn(t) == "stund-two"  # the running certificate stays
        tls_binding(t)
    install(TWO)


@test
def idle_timeout_and_connection_cap():
    srv = start("idle-timeout = 1\nmax-connections = 2\n")
    try:
        a = tls_connect("127.0.0.1", srv.tls_port)
        b = tls_connect("127.0.0.1", srv.tls_port)
        tls_binding(a)
        tls_binding(b)
        # The third is over max-connections: closed before any handshake.
        try:
            c = tls_connect("127.0.0.1", srv.tls_port)
            c.close()
            raise AssertionError("third connection was accepted")
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        assert metric(srv, 'stund_tls_refused_total{transport="tls"}') >= 1
        # Silent connections are closed after idle-timeout, with close_notify.
        t0 = time.monotonic()
        a.settimeout(5)
        assert a.recv(100) == b""
        assert time.monotonic() - t0 < 4
        assert metric(srv, 'stund_tls_idle_timeouts_total{transport="tls"}') >= 1
        a.close()
        b.close()
    finally:
        srv.stop()


@test
def check_config_loads_the_certificate():
    bad = os.path.join(D, "bad.conf")
    with open(bad, "w") as f:
        f.write("listening-ip = 127.0.0.1\ncert = %s\npkey = %s\n" % (ONE[0], TWO[1]))
    r = subprocess.run([STUND, "--check-config", "-c", bad], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode != 0
    assert "does not match" in r.stderr and TWO[1] in r.stderr, r.stderr
    good = os.path.join(D, "good.conf")
    with open(good, "w") as f:
        f.write("listening-ip = 127.0.0.1\ncert = %s\npkey = %s\n" % ONE)
    r = subprocess.run([STUND, "--check-config", "-c", good], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr


@test
def sigterm_exits_cleanly():
    with tls_connect("127.0.0.1", SRV.tls_port) as t:
        tls_binding(t)
        assert SRV.stop() == 0


if __name__ == "__main__":
    run_tests()
