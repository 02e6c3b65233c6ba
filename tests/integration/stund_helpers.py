"""Helpers shared by the stund tests (on top of harness.py): metrics
scraping, TCP framing, FINGERPRINT, standard configs."""
import re
import select
import socket
import struct
import time
import urllib.request
import zlib

from harness import MAGIC, stun_attr, stun_parse, stun_request


def conf(port, ips=("127.0.0.1",), metrics_port=None, extra=""):
    text = "".join("listening-ip = %s\n" % ip for ip in ips)
    text += "listening-port = %d\nalt-listening-port = %d\nworkers = 2\n" % (port, port + 1)
    text += "metrics-listen = %s\n" % ("127.0.0.1:%d" % metrics_port if metrics_port else "off")
    return text + extra


def with_fingerprint(msg):
    """Append FINGERPRINT (RFC 8489 s14.7) to an encoded message."""
    length = struct.unpack("!H", msg[2:4])[0] + 8
    msg = msg[:2] + struct.pack("!H", length) + msg[4:]
    crc = (zlib.crc32(msg) ^ 0x5354554E) & 0xFFFFFFFF
    return msg + struct.pack("!HHI", 0x8028, 4, crc)


def fingerprint_ok(data):
    mtype, tid, attrs = stun_parse(data)
    if 0x8028 not in attrs:
        return False
    crc = (zlib.crc32(data[:-8]) ^ 0x5354554E) & 0xFFFFFFFF
    return struct.unpack("!I", attrs[0x8028][0])[0] == crc


def error_code(attrs):
    v = attrs[0x0009][0]
    return (v[2] & 7) * 100 + v[3]


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, val = line.rsplit(" ", 1)
        values[name] = float(val)
    return values


def metric(port, name):
    return scrape(port).get(name, 0.0)


def wait_metric(port, name, pred, timeout=5.0):
    """Poll the endpoint until pred(value) holds (the counter is live)."""
    deadline = time.monotonic() + timeout
    while True:
        v = metric(port, name)
        if pred(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError("metric %s stuck at %s" % (name, v))
        time.sleep(0.05)


_pending = {}


def tcp_read_msg(sock, timeout=3.0):
    """Read one STUN message from a stream (bytes after it are kept)."""
    buf = _pending.pop(sock.fileno(), b"")
    sock.settimeout(timeout)
    need = None
    while True:
        if need is None and len(buf) >= 20:
            need = 20 + struct.unpack("!H", buf[2:4])[0]
        if need is not None and len(buf) >= need:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed")
        buf += chunk
    if len(buf) > need:
        _pending[sock.fileno()] = buf[need:]
    return buf[:need]


def wait_closed(sock, timeout=5.0):
    """True when the peer closes the connection within timeout."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def no_answer(sock, timeout=0.3):
    r, _, _ = select.select([sock], [], [], timeout)
    return not r
