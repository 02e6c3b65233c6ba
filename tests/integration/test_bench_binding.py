"""bench/: the Binding load generator, the bare responder and the driver do
what they claim. Correctness only: no figure of speed is asserted here.

- binding_load against bare_responder: every request answered and valid,
  with and without FINGERPRINT, bounded by a count;
- binding_load against coturn's turnserver (a server nobody here wrote):
  answers validate, so our checks follow the RFC and not our own responder;
- binding_load counts as invalid what a wrong responder sends (wrong
  XOR-MAPPED-ADDRESS, unknown transaction ID, wrong FINGERPRINT), and as
  lost what is never answered;
- the probe fails when nothing answers;
- run_binding.sh runs briefly and prints its table.
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD, MAGIC, SRC, Proc, free_port, run_tests, stun_attr,  # noqa: E402
                     stun_parse, test, tmpdir, xor_addr)

LOAD = os.path.join(BUILD, "binding_load")
BARE = os.path.join(BUILD, "bare_responder")


def figures(out):
    """'binding_load k=v k=v ...' -> dict of the numeric fields."""
    line = [l for l in out.splitlines() if l.startswith("binding_load ")][-1]
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    return {k: float(v) for k, v in kv.items() if k not in ("label", "server")}


def load(port, *args, timeout=60):
    r = subprocess.run([LOAD, "-s", "127.0.0.1:%d" % port] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def start_bare():
    port = free_port()
    p = Proc([BARE, "-l", "127.0.0.1:%d" % port])
    p.wait_line(r"bare_responder ready 127\.0\.0\.1:%d" % port)
    return p, port


@test
def bare_answers_every_request():
    p, port = start_bare()
    rc, out = load(port, "-n", "20000", "-d", "20", "-f", "3", "-w", "16")
    f = figures(out)
    assert rc == 0, out
    assert f["sent"] == 20000 and f["answered"] == 20000, out
    assert f["lost"] == 0 and f["invalid"] == 0 and f["late"] == 0, out
    p.stop()
    assert any("answered=20000" in l for l in p.lines), p.lines


@test
def bare_answers_over_ipv6():
    port = free_port(host="::1")
    p = Proc([BARE, "-l", "[::1]:%d" % port])
    p.wait_line(r"bare_responder ready \[::1\]:%d" % port)
    r = subprocess.run([LOAD, "-s", "[::1]:%d" % port, "-n", "3000", "-F"],
                       capture_output=True, text=True, timeout=60)
    f = figures(r.stdout)
    assert r.returncode == 0 and f["answered"] == 3000 and f["invalid"] == 0, r.stdout
    p.stop()


@test
def bare_answers_with_fingerprint():
    p, port = start_bare()
    rc, out = load(port, "-n", "5000", "-F", "-j")
    assert rc == 0, out
    assert '"answered":5000' in out and '"invalid":0' in out, out
    # and its response is right to an independent decoder
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    tid = os.urandom(12)
    req = struct.pack("!HHI", 1, 8, MAGIC) + tid
    req += struct.pack("!HHI", 0x8028, 4, (zlib.crc32(req) ^ 0x5354554E))
    s.sendto(req, ("127.0.0.1", port))
    data, _ = s.recvfrom(2048)
    mtype, rtid, attrs = stun_parse(data)
    assert mtype == 0x0101 and rtid == tid
    assert xor_addr(attrs[0x0020][0], tid) == s.getsockname()
    fp = struct.unpack("!I", attrs[0x8028][0])[0]
    assert fp == zlib.crc32(data[:-8]) ^ 0x5354554E
    # a wrong FINGERPRINT is not STUN: dropped (RFC 8489 s14.7)
    bad = req[:-4] + struct.pack("!I", fp ^ 1)
    s.sendto(bad, ("127.0.0.1", port))
    s.settimeout(0.3)
    try:
        s.recvfrom(2048)
        raise AssertionError("answered a request with a wrong FINGERPRINT")
    except socket.timeout:
        pass
    s.close()
    p.stop()


@test
def coturn_answers_validate():
    if not shutil.which("turnserver"):
        raise AssertionError("turnserver missing: scripts/deps.sh installs coturn")
    port = free_port(count=2)
    d = tmpdir()
    p = Proc(["turnserver", "-n", "--listening-ip", "127.0.0.1", "--listening-port", str(port),
              "--relay-ip", "127.0.0.1", "--no-auth", "--no-tls", "--no-dtls",
              "--relay-threads", "1", "--no-cli", "--log-file", os.path.join(d, "t.log"),
              "--simple-log", "--pidfile", os.path.join(d, "t.pid"),
              "--userdb", os.path.join(d, "t.db")])
    rc, out = load(port, "-p", "10")  # readiness: one Binding answered
    assert rc == 0, out + "\n".join(p.drain(0.1))
    rc, out = load(port, "-n", "5000", "-F")
    f = figures(out)
    assert rc == 0 and f["answered"] == 5000 and f["invalid"] == 0, out
    p.stop()


class WrongResponder(threading.Thread):
    """Answers Binding requests in a chosen wrong way, or not at all."""

    def __init__(self, mode):
        super().__init__(daemon=True)
        self.mode = mode
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.stop = False
        self.start()

    def answer(self, req, peer):
        tid = req[8:20]
        ip, port = peer
        if self.mode == "wrong-address":
            port ^= 1
        if self.mode == "unknown-tid":
            tid = bytes(12)
        xip = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
        v = struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), xip)
        attrs = stun_attr(0x0020, v)
        msg = struct.pack("!HHI", 0x0101, len(attrs), MAGIC) + tid + attrs
        if self.mode == "wrong-fingerprint":
            msg = struct.pack("!HHI", 0x0101, len(attrs) + 8, MAGIC) + tid + attrs
            msg += struct.pack("!HHI", 0x8028, 4, zlib.crc32(msg) ^ 0x5354554E ^ 1)
        return msg

    def run(self):
        n = 0
        while not self.stop:
            try:
                req, peer = self.s.recvfrom(2048)
            except socket.timeout:
                continue
            n += 1
            if self.mode == "silent" or (self.mode == "half" and n % 2):
                continue
            self.s.sendto(self.answer(req, peer), peer)


def run_wrong(mode, count=20):
    w = WrongResponder(mode)
    try:
        return load(w.port, "-n", str(count), "-f", "1", "-w", "4", "-t", "300")
    finally:
        w.stop = True
        w.join()


@test
def wrong_answers_count_as_invalid():
    for mode in ("wrong-address", "unknown-tid", "wrong-fingerprint"):
        rc, out = run_wrong(mode)
        f = figures(out)
        assert f["invalid"] == 20 and f["answered"] == 0, (mode, out)
        assert rc == 3, (mode, rc, out)  # nothing answered rightly
    rc, out = run_wrong("correct")
    f = figures(out)
    assert rc == 0 and f["answered"] == 20 and f["invalid"] == 0, out


@test
def unanswered_requests_count_as_lost():
    rc, out = run_wrong("half", count=40)
    f = figures(out)
    assert f["sent"] == 40 and f["answered"] == 20 and f["lost"] == 20, out
    assert f["invalid"] == 0, out
    rc, out = run_wrong("silent", count=8)
    f = figures(out)
    assert rc == 3 and f["lost"] == 8, out


@test
def probe_fails_when_nothing_answers():
    port = free_port()
    rc, out = load(port, "-p", "0.5")
    assert rc == 1, (rc, out)


@test
def driver_prints_the_table():
    # One short round; servers the driver cannot start are skipped, not fatal.
    r = subprocess.run([os.path.join(SRC, "bench", "run_binding.sh"), "--build-dir", BUILD,
                        "-d", "1", "-w", "8"], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    rows = {l.split()[0]: l.split() for l in r.stdout.splitlines()
            if l.split() and l.split()[0] in ("bare", "stund", "coturn")}
    assert rows["bare"][9] == "1.00" and rows["bare"][-1] == "1.00", out  # vs_bare of itself
    assert rows["coturn"][1] == "1" and int(rows["coturn"][2]) > 0, out
    if os.path.exists(os.path.join(SRC, "server", "listener_udp.c")):
        assert rows["stund"][1] != "skipped" and "stund/coturn:" in r.stdout, out
    else:
        assert rows["stund"][1] == "skipped" and "SKIPPING stund" in out, out


if __name__ == "__main__":
    run_tests()
