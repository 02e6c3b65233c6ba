"""Debian's coturn `turnserver` as a reference STUN/TURN server on loopback.

Listens on 127.0.0.1 and 127.0.0.2, each on port P and P+1 (RFC 5780
OTHER-ADDRESS = 127.0.0.2:P+1), UDP only, long-term credentials u:p in
realm r. Ready when it answers a STUN Binding (polled, bounded).
"""
import os
import shutil
import socket
import time

import harness

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


def free_pair():
    """A port P with P and P+1 free on both loopback addresses."""
    for _ in range(50):
        p = harness.free_port(count=2)
        try:
            for host in ("127.0.0.2",):
                for off in (0, 1):
                    for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                        s = socket.socket(socket.AF_INET, k)
                        try:
                            s.bind((host, p + off))
                        finally:
                            s.close()
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair on 127.0.0.1/127.0.0.2")


def stun_ready(host, port, timeout=10.0):
    """Poll with Binding requests until the server answers (bounded)."""
    deadline = time.monotonic() + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        while time.monotonic() < deadline:
            msg, tid = harness.stun_request()
            try:
                data, _ = harness.udp_transact(s, (host, port), msg, timeout=0.2, tries=1)
            except AssertionError:
                continue
            mtype, rtid, _ = harness.stun_parse(data)
            if rtid == tid and mtype == 0x0101:
                return
    finally:
        s.close()
    raise AssertionError("no STUN answer from %s:%d within %.0fs" % (host, port, timeout))


class Coturn(harness.Proc):
    def __init__(self, user="u", password="p", realm="r", extra=()):
        self.port = free_pair()
        d = harness.tmpdir()
        args = [TURNSERVER, "-n", "--listening-ip", "127.0.0.1", "--listening-ip", "127.0.0.2",
                "--listening-port", str(self.port), "--alt-listening-port", str(self.port + 1),
                "--relay-ip", "127.0.0.1",
                "--no-tls", "--no-dtls", "--no-tcp", "--no-cli", "--lt-cred-mech",
                "--user", "%s:%s" % (user, password), "--realm", realm,
                "--allow-loopback-peers", "--pidfile", os.path.join(d, "turnserver.pid"),
                "--log-file", "stdout", "--simple-log"] + list(extra)
        super().__init__(args)
        stun_ready("127.0.0.1", self.port)
        self.server = "127.0.0.1:%d" % self.port
