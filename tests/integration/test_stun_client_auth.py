"""client/stun_client's long-term credential handling (RFC 8489 s9.2)
against a scripted server on loopback (coturn offers only MD5 and plain
USERNAME): a nonce cookie with the "Password algorithms" and "Username
anonymity" features must bring PASSWORD-ALGORITHMS/-ALGORITHM echoed,
a SHA-256 key, MESSAGE-INTEGRITY-SHA256 and USERHASH; a 438 a retry with
the new nonce; a cookie promising PASSWORD-ALGORITHMS without them no retry
at all. Driven through `natclient relay` (a TURN Allocate)."""
import base64
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NATCLIENT, MAGIC, stun_attr, stun_parse, test, run_tests  # noqa: E402

USER, PASSWORD, REALM = "alice", "s3cret", "natkit.test"
A_USERNAME, A_MI, A_ERR, A_LIFETIME, A_XPEER, A_REALM, A_NONCE = 6, 8, 9, 0x0D, 0x12, 0x14, 0x15
A_XRELAYED, A_MI256, A_PWALG, A_USERHASH, A_XMAPPED, A_PWALGS = 0x16, 0x1C, 0x1D, 0x1E, 0x20, 0x8002


def cookie_nonce(features, rest="f00dfeed"):
    return b"obMatJos2" + base64.b64encode(struct.pack("!I", features)[1:]) + rest.encode()


def header(mtype, length, tid):
    return struct.pack("!HHI", mtype, length, MAGIC) + tid


def xor_addr(host, port, tid):
    ip = struct.unpack("!I", socket.inet_aton(host))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), ip)


def with_mi256(mtype, tid, attrs, key):
    """attrs + MESSAGE-INTEGRITY-SHA256 (s14.6): HMAC over the message with
    the length field already counting the integrity attribute."""
    pre = header(mtype, len(attrs) + 36, tid) + attrs
    mac = hmac.new(key, pre, hashlib.sha256).digest()
    return pre + stun_attr(A_MI256, mac)


def check_mi256(data, key):
    """Verify the MESSAGE-INTEGRITY-SHA256 of a received message."""
    off = 20
    length = struct.unpack("!H", data[2:4])[0]
    while off < 20 + length:
        t, l = struct.unpack("!HH", data[off:off + 4])
        if t == A_MI256:
            pre = bytearray(data[:off])
            pre[2:4] = struct.pack("!H", off - 20 + 4 + l)
            want = hmac.new(key, bytes(pre), hashlib.sha256).digest()
            return hmac.compare_digest(want[:l], data[off + 4:off + 4 + l])
        off += 4 + l + (4 - l % 4) % 4
    return False


class Server(threading.Thread):
    """Answers Allocate/CreatePermission on loopback from a script."""

    def __init__(self, mode):
        super().__init__(daemon=True)
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen = []      # (method, attrs) of every request
        self.problems = []  # what the client got wrong
        self.stop = False
        self.nonce = cookie_nonce(0xC00000)  # both features: bits 0 and 1
        self.stale_sent = False
        self.start()

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            try:
                self.handle(data, addr)
            except Exception as e:  # report, don't die silently
                self.problems.append("server crashed: %r" % e)

    def send_error(self, addr, method, tid, code, extra=b""):
        reason = b"Unauthenticated" if code == 401 else b"Stale Nonce"
        attrs = stun_attr(A_ERR, struct.pack("!HBB", 0, code // 100, code % 100) + reason)
        attrs += stun_attr(A_REALM, REALM.encode()) + stun_attr(A_NONCE, self.nonce) + extra
        self.sock.sendto(header(method | 0x0110, len(attrs), tid) + attrs, addr)

    def handle(self, data, addr):
        mtype, tid, attrs = stun_parse(data)
        method = mtype & 0x3EEF
        self.seen.append((method, attrs))
        pwalgs = stun_attr(A_PWALGS, struct.pack("!HHHH", 2, 0, 1, 0))  # SHA-256, MD5
        if A_MI256 not in attrs and A_MI not in attrs:
            extra = b"" if self.mode == "no-pwalgs" else pwalgs
            if self.mode == "no-pwalgs":
                self.nonce = cookie_nonce(0x800000)
            return self.send_error(addr, method, tid, 401, extra)
        key = hashlib.sha256(("%s:%s:%s" % (USER, REALM, PASSWORD)).encode()).digest()
        self.check(attrs, data, key, pwalgs)
        if self.mode == "stale" and not self.stale_sent:
            self.stale_sent = True
            self.nonce = cookie_nonce(0xC00000, "n3wn0nce")
            return self.send_error(addr, method, tid, 438, pwalgs)
        if attrs[A_NONCE][0] != self.nonce:
            self.problems.append("old nonce %r after 438" % attrs[A_NONCE][0])
        out = b""
        if method == 0x003:
            out = stun_attr(A_XRELAYED, xor_addr("127.0.0.1", 40000, tid))
            out += stun_attr(A_XMAPPED, xor_addr(addr[0], addr[1], tid))
            out += stun_attr(A_LIFETIME, struct.pack("!I", 600))
        self.sock.sendto(with_mi256(method | 0x0100, tid, out, key), addr)

    def check(self, attrs, data, key, pwalgs):
        want_hash = hashlib.sha256(("%s:%s" % (USER, REALM)).encode()).digest()
        if attrs.get(A_USERHASH) != [want_hash]:
            self.problems.append("USERHASH missing or wrong: %r" % attrs.get(A_USERHASH))
        if A_USERNAME in attrs:
            self.problems.append("USERNAME sent although the nonce asks for anonymity")
        if attrs.get(A_PWALGS) != [pwalgs[4:]]:
            self.problems.append("PASSWORD-ALGORITHMS not echoed: %r" % attrs.get(A_PWALGS))
        if attrs.get(A_PWALG) != [struct.pack("!HH", 2, 0)]:
            self.problems.append("PASSWORD-ALGORITHM not SHA-256: %r" % attrs.get(A_PWALG))
        if A_MI in attrs:
            self.problems.append("MESSAGE-INTEGRITY (SHA-1) sent; s9.2.5 wants SHA-256 only")
        if attrs.get(A_REALM) != [REALM.encode()]:
            self.problems.append("REALM not copied")
        if not check_mi256(data, key):
            self.problems.append("MESSAGE-INTEGRITY-SHA256 does not verify with the SHA-256 key")


def relay(server, password=PASSWORD):
    env = dict(os.environ, NATCLIENT_USER=USER, NATCLIENT_PASSWORD=password)
    env.pop("NATCLIENT_SERVER", None)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    p = subprocess.Popen([NATCLIENT, "--server", "127.0.0.1:%d" % server.port, "--json", "-vv",
                          "relay", "127.0.0.1:%d" % peer.getsockname()[1]],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    harness._procs.append(p)
    return p


@test
def sha256_userhash():
    s = Server("sha256")
    p = relay(s)
    first = p.stdout.readline()
    assert b'"event":"allocated"' in first, (first, p.stderr.read() if p.poll() else "")
    assert b'"relayed":"127.0.0.1:40000"' in first, first
    assert b'"event":"permission"' in p.stdout.readline()
    p.stdin.close()
    assert p.wait(timeout=10) == 0
    s.stop = True
    assert not s.problems, s.problems
    methods = [m for m, _ in s.seen]
    # unauthenticated first (s9.2.3.1), then authenticated, then the permission
    assert methods[:3] == [0x003, 0x003, 0x008], methods
    assert A_USERHASH not in s.seen[0][1] and A_NONCE not in s.seen[0][1]


@test
def stale_nonce_retried_with_the_new_one():
    s = Server("stale")
    p = relay(s)
    first = p.stdout.readline()
    assert b'"event":"allocated"' in first, first
    p.stdin.close()
    p.wait(timeout=10)
    s.stop = True
    assert s.stale_sent
    assert not s.problems, s.problems
    err = p.stderr.read().decode()
    assert "<- 438: retrying" in err, err


@test
def cookie_without_password_algorithms_is_not_retried():
    s = Server("no-pwalgs")
    p = relay(s)
    rc = p.wait(timeout=15)
    s.stop = True
    err = p.stderr.read().decode()
    assert rc == 1, (rc, err)
    assert "Allocate" in err and "Unauthenticated" in err, err
    # s9.2.5: "MUST NOT retry": one request only
    assert [m for m, _ in s.seen] == [0x003], s.seen


if __name__ == "__main__":
    run_tests()
