"""Shared helpers for integration tests: real processes on loopback.

- Binaries come from $NATKIT_BUILD (set by ctest), else ./build.
- Ports are picked free at run time, so tests can run side by side.
- Processes are awaited on a readiness line, never on a sleep, and are
  stopped at exit (also when a test fails).
- A test file is a plain script: it calls check()/run_tests() and exits
  non-zero on the first failure.
"""
import atexit
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SRC = os.environ.get("NATKIT_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("NATKIT_BUILD") or os.path.join(SRC, "build")
STUND = os.path.join(BUILD, "stund")
NATCLIENT = os.path.join(BUILD, "natclient")

_procs = []
_tmpdirs = []


def tmpdir():
    d = tempfile.mkdtemp(prefix="natkit-test-")
    _tmpdirs.append(d)
    return d


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout=5)
            except Exception:
                p.kill()
    for d in _tmpdirs:
        subprocess.run(["rm", "-rf", d])


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


def free_port(kind=socket.SOCK_DGRAM, host="127.0.0.1", count=1):
    """A port free for both UDP and TCP on host (and port+1..count-1 too)."""
    for _ in range(200):
        base = random.randint(20000, 59000)
        ok = True
        for off in range(count):
            for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, k)
                try:
                    s.bind((host, base + off))
                except OSError:
                    ok = False
                finally:
                    s.close()
        if ok:
            return base
    raise RuntimeError("no free port")


class Proc:
    """A child process whose stderr+stdout lines are collected."""

    def __init__(self, args, env=None, stdin=subprocess.DEVNULL, merge=True):
        self.args = args
        self.p = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                                  env=env)
        _procs.append(self.p)
        self.lines = []
        self._buf = b""

    def _pump(self, timeout):
        if self.p.stdout.closed:
            return None
        # poll, not select: a long run may hold descriptors above FD_SETSIZE
        pl = select.poll()
        pl.register(self.p.stdout, select.POLLIN)
        if not pl.poll(max(0, timeout) * 1000.0):
            return False
        chunk = os.read(self.p.stdout.fileno(), 65536)
        if not chunk:
            return None
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self.lines.append(line.decode(errors="replace"))
        return True

    def wait_line(self, pattern, timeout=10.0):
        """Wait for an output line matching regex pattern; return the match."""
        rx = re.compile(pattern)
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            for i in range(seen, len(self.lines)):
                m = rx.search(self.lines[i])
                if m:
                    return m
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timeout waiting for /%s/ from %s; output:\n%s"
                                     % (pattern, self.args[0], "\n".join(self.lines[-30:])))
            if self._pump(min(left, 0.5)) is None:
                if self.p.poll() is not None and not any(rx.search(l) for l in self.lines[seen:]):
                    raise AssertionError("%s exited (%s) before /%s/; output:\n%s"
                                         % (self.args[0], self.p.returncode, pattern,
                                            "\n".join(self.lines[-30:])))

    def drain(self, timeout=0.0):
        while self._pump(timeout):
            pass
        return self.lines

    def signal(self, sig):
        self.p.send_signal(sig)

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.terminate()
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.drain()
        for f in (self.p.stdout, self.p.stdin, self.p.stderr):
            if f and not f.closed:
                try:
                    f.close()  # the pipes go with the process
                except OSError:  # stdin: what was left unsent has nowhere to go
                    pass
        return self.p.returncode


def json_events(proc):
    """The JSON objects among proc's output lines (natclient --json)."""
    out = []
    for line in proc.lines:
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def udp_echo_service():
    """A UDP service on 127.0.0.1 that answers each datagram with "echo:"
    and the datagram, in a thread. -> (port, stop, sources): append to the
    list stop to end it; sources collects the addresses it heard from."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    stop = []
    sources = set()

    def run():
        while not stop:
            try:
                data, addr = s.recvfrom(65535)
            except socket.timeout:
                continue
            sources.add(addr)
            s.sendto(b"echo:" + data, addr)
    threading.Thread(target=run, daemon=True).start()
    return s.getsockname()[1], stop, sources


class Stund(Proc):
    """stund started with a generated config; waits for its ready line.

    stund prints a line containing 'stund ready' once every listener is bound.
    """

    def __init__(self, conf_text, extra_args=(), ready_timeout=10.0, env=None):
        d = tmpdir()
        self.conf_path = os.path.join(d, "stund.conf")
        with open(self.conf_path, "w") as f:
            f.write(conf_text)
        super().__init__([STUND, "-c", self.conf_path] + list(extra_args), env=env)
        self.wait_line(r"stund ready", timeout=ready_timeout)


# ---------------------------------------------------------------------------
# A minimal independent STUN encoder/decoder for black-box checks. It is
# deliberately separate from proto/ so tests do not trust the code under test.

MAGIC = 0x2112A442


def stun_request(method=0x001, attrs=b"", tid=None, cookie=MAGIC):
    tid = tid or os.urandom(12)
    return struct.pack("!HHI", method & 0x3EEF, len(attrs), cookie) + tid + attrs, tid


def stun_attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def stun_parse(data):
    """-> (msg_type, tid, {attr_type: [values]})"""
    mtype, length, cookie = struct.unpack("!HHI", data[:8])
    tid = data[8:20]
    attrs = {}
    off = 20
    while off + 4 <= 20 + length:
        t, l = struct.unpack("!HH", data[off:off + 4])
        attrs.setdefault(t, []).append(data[off + 4:off + 4 + l])
        off += 4 + l + ((4 - l % 4) % 4)
    return mtype, tid, attrs


def xor_addr(v, tid=b""):
    fam, xport = struct.unpack("!xBH", v[:4])
    port = xport ^ (MAGIC >> 16)
    if fam == 1:
        ip = struct.unpack("!I", v[4:8])[0] ^ MAGIC
        return socket.inet_ntoa(struct.pack("!I", ip)), port
    key = struct.pack("!I", MAGIC) + tid
    raw = bytes(a ^ b for a, b in zip(v[4:20], key))
    return socket.inet_ntop(socket.AF_INET6, raw), port


def plain_addr(v):
    fam, port = struct.unpack("!xBH", v[:4])
    if fam == 1:
        return socket.inet_ntoa(v[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, v[4:20]), port


def udp_transact(sock, dest, msg, timeout=2.0, tries=3):
    """Send msg, return (reply bytes, from address) or raise."""
    for _ in range(tries):
        sock.sendto(msg, dest)
        r, _, _ = select.select([sock], [], [], timeout)
        if r:
            return sock.recvfrom(65535)
    raise AssertionError("no answer from %s" % (dest,))


# ---------------------------------------------------------------------------

_tests = []


def test(fn):
    _tests.append(fn)
    return fn


def run_tests():
    """Run every @test in order (NATKIT_ONLY=a,b: only those whose name
    contains a or b); exit 1 on the first failure."""
    passed = 0
    only = [w for w in os.environ.get("NATKIT_ONLY", "").split(",") if w]
    for fn in _tests:
        if only and not any(w in fn.__name__ for w in only):
            continue
        t0 = time.monotonic()
        try:
            fn()
        except Exception:
            traceback.print_exc()
            print("FAIL %s (%.2fs)" % (fn.__name__, time.monotonic() - t0))
            print("%d passed, 1 failed" % passed)
            sys.exit(1)
        passed += 1
        print("ok   %s (%.2fs)" % (fn.__name__, time.monotonic() - t0))
    print("%d passed, 0 failed" % passed)
