"""A small TURN client (RFC 8656) for black-box tests, written from the RFC
with the standard library only: it extends harness.py's codec with
MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256, FINGERPRINT,
USERHASH, the long-term credential dance (401 / 438) and TCP framing. It is
independent of proto/ so the tests do not trust the code under test.
"""
import base64
import binascii
import hashlib
import hmac
import os
import select
import socket
import ssl
import struct
import time

from harness import MAGIC, stun_attr, stun_parse, xor_addr

# Methods (RFC 8656 s17) and classes.
ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 3, 4, 6, 7, 8, 9
CONNECT, CONNECTION_BIND, CONNECTION_ATTEMPT = 0xA, 0xB, 0xC
REQUEST, INDICATION, SUCCESS, ERROR = 0x000, 0x010, 0x100, 0x110

# Attributes.
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, UNKNOWN_ATTRIBUTES = 0x6, 0x8, 0x9, 0xA
CHANNEL_NUMBER, LIFETIME, XOR_PEER_ADDRESS, DATA_ATTR = 0xC, 0xD, 0x12, 0x13
REALM, NONCE, XOR_RELAYED_ADDRESS, REQUESTED_ADDRESS_FAMILY = 0x14, 0x15, 0x16, 0x17
EVEN_PORT, REQUESTED_TRANSPORT, DONT_FRAGMENT = 0x18, 0x19, 0x1A
MESSAGE_INTEGRITY_SHA256, PASSWORD_ALGORITHM, USERHASH = 0x1C, 0x1D, 0x1E
XOR_MAPPED_ADDRESS, RESERVATION_TOKEN, CONNECTION_ID = 0x20, 0x22, 0x2A
ADDITIONAL_ADDRESS_FAMILY, ADDRESS_ERROR_CODE, PASSWORD_ALGORITHMS = 0x8000, 0x8001, 0x8002
ICMP, SOFTWARE, FINGERPRINT = 0x8004, 0x8022, 0x8028

UDP, TCP = 17, 6


def readable(sock, timeout):
    """select() for one socket, without select()'s limit on fd numbers."""
    p = select.poll()
    p.register(sock, select.POLLIN)
    return bool(p.poll(max(timeout, 0) * 1000))


def msg_type(method, cls):
    m = method & 0xFFF
    return (m & 0xF) | ((m & 0x70) << 1) | ((m & 0xF80) << 2) | cls


def split_type(t):
    cls = t & 0x110
    m = (t & 0xF) | ((t >> 1) & 0x70) | ((t >> 2) & 0xF80)
    return m, cls


def xor_addr_attr(ip, port, tid):
    if ":" in ip:
        raw = socket.inet_pton(socket.AF_INET6, ip)
        key = struct.pack("!I", MAGIC) + tid
        x = bytes(a ^ b for a, b in zip(raw, key))
        return struct.pack("!BBH", 0, 2, port ^ (MAGIC >> 16)) + x
    ipn = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), ipn)


def long_term_key(user, realm, password, alg=1):
    s = ("%s:%s:%s" % (user, realm, password)).encode()
    return hashlib.md5(s).digest() if alg == 1 else hashlib.sha256(s).digest()


def rest_credentials(secret, user="", ttl=600, now=None):
    """TURN REST: username "<expiry>:<user>", password b64(HMAC-SHA1)."""
    expiry = int(now if now is not None else time.time()) + ttl
    name = "%d:%s" % (expiry, user) if user else "%d" % expiry
    pw = base64.b64encode(hmac.new(secret.encode(), name.encode(), hashlib.sha1).digest())
    return name, pw.decode()


def _with_length(body, extra):
    """body: header+attrs; set the length as if extra bytes followed."""
    return body[:2] + struct.pack("!H", len(body) - 20 + extra) + body[4:]


def add_integrity(msg, key, sha256=False):
    if sha256:
        m = _with_length(msg, 36)
        return m + stun_attr(MESSAGE_INTEGRITY_SHA256, hmac.new(key, m, hashlib.sha256).digest())
    m = _with_length(msg, 24)
    return m + stun_attr(MESSAGE_INTEGRITY, hmac.new(key, m, hashlib.sha1).digest())


def add_fingerprint(msg):
    m = _with_length(msg, 8)
    crc = (binascii.crc32(m) & 0xFFFFFFFF) ^ 0x5354554E
    return m + stun_attr(FINGERPRINT, struct.pack("!I", crc))


def build(method, cls, attrs, tid=None):
    """attrs: list of (type, value bytes). -> (bytes, tid)."""
    tid = tid or os.urandom(12)
    body = b"".join(stun_attr(t, v) for t, v in attrs)
    return struct.pack("!HHI", msg_type(method, cls), len(body), MAGIC) + tid + body, tid


def attr_offsets(data):
    """-> list of (type, offset of the attribute header)."""
    out = []
    length = struct.unpack("!H", data[2:4])[0]
    off = 20
    while off + 4 <= 20 + length:
        t, l = struct.unpack("!HH", data[off:off + 4])
        out.append((t, off))
        off += 4 + l + ((4 - l % 4) % 4)
    return out


def check_integrity(data, key):
    """Verify MESSAGE-INTEGRITY or -SHA256 of a response; True if valid."""
    for t, off in attr_offsets(data):
        if t in (MESSAGE_INTEGRITY, MESSAGE_INTEGRITY_SHA256):
            l = struct.unpack("!H", data[off + 2:off + 4])[0]
            head = data[:off]
            head = head[:2] + struct.pack("!H", off + 4 + l - 20) + head[4:]
            algo = hashlib.sha1 if t == MESSAGE_INTEGRITY else hashlib.sha256
            want = hmac.new(key, head, algo).digest()[:l]
            return hmac.compare_digest(want, data[off + 4:off + 4 + l])
    return False


class Msg:
    def __init__(self, data):
        self.raw = data
        t, self.tid, self.attrs = stun_parse(data)
        self.method, self.cls = split_type(t)

    def get(self, t, i=0):
        v = self.attrs.get(t)
        return v[i] if v and len(v) > i else None

    def has(self, t):
        return t in self.attrs

    @property
    def error(self):
        v = self.get(ERROR_CODE)
        if v is None:
            return None
        return (v[2] & 7) * 100 + v[3]

    def xaddr(self, t, i=0):
        v = self.get(t, i)
        return xor_addr(v, self.tid) if v is not None else None

    def xaddrs(self, t):
        return [xor_addr(v, self.tid) for v in self.attrs.get(t, [])]

    @property
    def lifetime(self):
        v = self.get(LIFETIME)
        return struct.unpack("!I", v)[0] if v else None

    def __repr__(self):
        return "<Msg method=%#x cls=%#x err=%s attrs=%s>" % (
            self.method, self.cls, self.error, sorted(hex(k) for k in self.attrs))


class TurnClient:
    """One 5-tuple to the server over UDP or TCP, with long-term credentials."""

    def __init__(self, server, transport="udp", user=None, password=None,
                 sha256=False, userhash=False, local=None, timeout=2.0):
        self.server = server
        fam = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(fam, kind)
        self.sock.bind(local or (server[0], 0))
        if transport in ("tcp", "tls"):
            self.sock.settimeout(timeout)
            self.sock.connect(server)
            if transport == "tls":  # a test certificate: no verification
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                self.sock = ctx.wrap_socket(self.sock)
            self.sock.settimeout(None)
            transport = "tcp"  # framing is the same (RFC 8656 s12.5)
        self.transport = transport
        self.user, self.password = user, password
        self.sha256, self.userhash = sha256, userhash
        self.realm = self.nonce = self.key = None
        self.alg = 1
        self.timeout = timeout
        self.inbox = []  # indications / ChannelData received while waiting
        self._stream = b""

    def close(self):
        self.sock.close()

    # -- raw I/O ---------------------------------------------------------
    def send_raw(self, data):
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            pad = (4 - len(data) % 4) % 4 if data[0] & 0xC0 == 0x40 else 0
            self.sock.sendall(data + b"\0" * pad)

    def _read_frame(self, timeout):
        if self.transport == "udp":
            if not readable(self.sock, timeout):
                return None
            return self.sock.recvfrom(65535)[0]
        deadline = time.monotonic() + timeout
        while True:
            f = self._pop_frame()
            if f is not None:
                return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            pending = self.sock.pending() if hasattr(self.sock, "pending") else 0
            if not pending and not readable(self.sock, left):
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._stream += chunk

    def _pop_frame(self):
        b = self._stream
        if len(b) < 4:
            return None
        if b[0] & 0xC0 == 0x40:
            n = struct.unpack("!H", b[2:4])[0] + 4
            full = (n + 3) & ~3
        else:
            n = full = struct.unpack("!H", b[2:4])[0] + 20
        if len(b) < full:
            return None
        self._stream = b[full:]
        return b[:n]

    def recv(self, timeout=None):
        """Next frame: Msg for STUN, (channel, data) for ChannelData."""
        if self.inbox:
            return self.inbox.pop(0)
        f = self._read_frame(self.timeout if timeout is None else timeout)
        if f is None:
            return None
        if f[0] & 0xC0 == 0x40:
            ch, n = struct.unpack("!HH", f[:4])
            return (ch, f[4:4 + n])
        return Msg(f)

    def transact(self, data, tid, tries=None):
        """Send a request; return the response Msg with this tid."""
        tries = tries or (4 if self.transport == "udp" else 1)
        for _ in range(tries):
            self.send_raw(data)
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                f = self._read_frame(left)
                if f is None:
                    break
                if f[0] & 0xC0 == 0x40:
                    ch, n = struct.unpack("!HH", f[:4])
                    self.inbox.append((ch, f[4:4 + n]))
                    continue
                m = Msg(f)
                if m.tid == tid and m.cls in (SUCCESS, ERROR):
                    return m
                self.inbox.append(m)
        raise AssertionError("no response from %s" % (self.server,))

    # -- requests with credentials ----------------------------------------
    def _auth_attrs(self):
        if self.user is None or self.realm is None:
            return []
        a = []
        if self.userhash:
            h = hashlib.sha256(("%s:%s" % (self.user, self.realm.decode())).encode()).digest()
            a.append((USERHASH, h))
        else:
            a.append((USERNAME, self.user.encode()))
        a.append((REALM, self.realm))
        a.append((NONCE, self.nonce))
        if self.alg == 2:
            # RFC 8489 s9.2.3.1: echo PASSWORD-ALGORITHMS, name the choice
            a.append((PASSWORD_ALGORITHMS, self.algs))
            a.append((PASSWORD_ALGORITHM, struct.pack("!HH", 2, 0)))
        return a

    def build_request(self, method, attrs, tid=None, fingerprint=True):
        msg, tid = build(method, REQUEST, list(attrs) + self._auth_attrs(), tid)
        if self.key is not None and self.realm is not None:
            msg = add_integrity(msg, self.key, sha256=self.sha256)
        if fingerprint:
            msg = add_fingerprint(msg)
        return msg, tid

    def _learn(self, r):
        self.realm = r.get(REALM)
        self.nonce = r.get(NONCE)
        algs = self.algs = r.get(PASSWORD_ALGORITHMS)
        self.alg = 1
        if self.sha256 and algs:
            offered = [struct.unpack("!H", algs[i:i + 2])[0] for i in range(0, len(algs), 4)]
            if 2 in offered:
                self.alg = 2
        if self.user is not None:
            self.key = long_term_key(self.user, self.realm.decode(), self.password, self.alg)

    def request(self, method, attrs=(), tid=None):
        """Send with credentials; redo once on 401 (first contact) or 438."""
        for _ in range(3):
            msg, tid2 = self.build_request(method, attrs, tid)
            r = self.transact(msg, tid2)
            if r.error in (401, 438) and self.user is not None and r.has(NONCE):
                if r.error == 401 and self.realm is not None and self.nonce == r.get(NONCE):
                    return r  # wrong credentials
                self._learn(r)
                tid = None
                continue
            return r
        return r

    # -- TURN --------------------------------------------------------------
    def allocate(self, transport=UDP, lifetime=None, extra=()):
        attrs = [(REQUESTED_TRANSPORT, struct.pack("!B3x", transport))]
        if lifetime is not None:
            attrs.append((LIFETIME, struct.pack("!I", lifetime)))
        attrs += list(extra)
        r = self.request(ALLOCATE, attrs)
        if r.cls == SUCCESS:
            self.relayed = r.xaddr(XOR_RELAYED_ADDRESS)
        return r

    def refresh(self, lifetime=None, extra=()):
        attrs = [] if lifetime is None else [(LIFETIME, struct.pack("!I", lifetime))]
        return self.request(REFRESH, attrs + list(extra))

    def peer_attr(self, peer, tid):
        return (XOR_PEER_ADDRESS, xor_addr_attr(peer[0], peer[1], tid))

    def create_permission(self, *peers):
        tid = os.urandom(12)
        return self.request(CREATE_PERMISSION, [self.peer_attr(p, tid) for p in peers], tid)

    def channel_bind(self, channel, peer):
        tid = os.urandom(12)
        return self.request(CHANNEL_BIND, [(CHANNEL_NUMBER, struct.pack("!H2x", channel)),
                                           self.peer_attr(peer, tid)], tid)

    def send_indication(self, peer, data, extra=()):
        tid = os.urandom(12)
        msg, _ = build(SEND, INDICATION, [self.peer_attr(peer, tid), (DATA_ATTR, data)]
                       + list(extra), tid)
        self.send_raw(msg)

    def send_channel(self, channel, data):
        self.send_raw(struct.pack("!HH", channel, len(data)) + data)

    def recv_data(self, timeout=None):
        """Next Data indication -> (peer, data) or ChannelData -> (channel, data)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            f = self.recv(left)
            if f is None:
                return None
            if isinstance(f, tuple):
                return f
            if f.method == DATA and f.cls == INDICATION:
                if f.has(ICMP):
                    return ("icmp", f.xaddr(XOR_PEER_ADDRESS), f.get(ICMP))
                return (f.xaddr(XOR_PEER_ADDRESS), f.get(DATA_ATTR))


def udp_peer(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def recv_from(sock, timeout=2.0):
    if not readable(sock, timeout):
        return None, None
    return sock.recvfrom(65535)


# ---------------------------------------------------------------------------
# A stund configured for TURN on loopback.

def turn_server(users=("alice:alice-pw", "bob:bob-pw"), v6=False, relay_ports=16,
                extra="", auth=True, allow_loopback=True, tls=None):
    """-> (Stund, port, (min_port, max_port)). UDP and TCP on 127.0.0.1
    (and ::1 with v6=True); relayed addresses from 127.0.0.1 (and ::1)."""
    from harness import Stund, free_port
    port = free_port(count=2)
    rmin = free_port(count=relay_ports)
    lines = ["listening-ip = 127.0.0.1", "listening-port = %d" % port,
             "alt-listening-port = %d" % (port + 1),
             "relay-ip = 127.0.0.1", "min-port = %d" % rmin,
             "max-port = %d" % (rmin + relay_ports - 1), "workers = 1",
             "realm = natkit.test", "log-level = debug"]
    if tls:  # (cert, key, port): TLS and DTLS on that port
        lines += ["cert = %s" % tls[0], "pkey = %s" % tls[1], "tls-listening-port = %d" % tls[2]]
    else:
        lines += ["no-tls", "no-dtls"]
    if v6:
        lines += ["listening-ip = ::1", "relay-ip = ::1"]
    if auth:
        lines += ["user = %s" % u for u in users]
    else:  # an open relay must be asked for (stund refuses TURN without credentials)
        lines.append("no-auth")
    if allow_loopback:
        lines.append("allow-loopback-peers")
    conf = "\n".join(lines) + "\n" + extra
    return Stund(conf), port, (rmin, rmin + relay_ports - 1)
