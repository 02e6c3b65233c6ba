#!/usr/bin/env python3
"""A small STUN Binding prober run inside a lab namespace; prints one JSON line.

    stunprobe.py wait IP:PORT...               until every address answers (bounded)
    stunprobe.py mapping [--port P] IP:PORT... one socket, a Binding to each address in
                                               turn: {"local": port, "mapped": [[ip, port]...]}
    stunprobe.py hairpin IP:PORT               socket 1 learns its mapping from the server,
                                               socket 2 sends to that mapping: did socket 1
                                               receive it, and from which address?
    stunprobe.py listen IP:PORT [--wait S]     learn the mapping (printed at once), then
                                               print what arrives until a line on stdin
    stunprobe.py send --bind IP:PORT IP:PORT --data X   one datagram from a given source
    stunprobe.py tcp-mapping IP:PORT...        as mapping, over TCP: one connection per
                                               address, all from one local port
Uses the independent codec of tests/integration/harness.py.
"""
import argparse
import json
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import stun_request, stun_parse, xor_addr  # noqa: E402

XOR_MAPPED = 0x0020
BINDING_SUCCESS = 0x0101


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def binding(sock, dest, timeout=0.5, tries=4):
    """-> mapped (ip, port) from dest, or None after tries."""
    msg, tid = stun_request()
    for _ in range(tries):
        sock.sendto(msg, dest)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                break
            data, _src = sock.recvfrom(2048)
            if len(data) < 20:
                continue
            mtype, rtid, attrs = stun_parse(data)
            if rtid == tid and mtype == BINDING_SUCCESS and XOR_MAPPED in attrs:
                return xor_addr(attrs[XOR_MAPPED][0], tid)
    return None


def udp_socket(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    return s


def cmd_wait(a):
    deadline = time.monotonic() + a.timeout
    s = udp_socket()
    pending = [addr(x) for x in a.addrs]
    while pending and time.monotonic() < deadline:
        pending = [d for d in pending if binding(s, d, timeout=0.2, tries=1) is None]
    return {"ready": not pending, "missing": ["%s:%d" % d for d in pending]}


def cmd_mapping(a):
    s = udp_socket(a.port)
    out = [binding(s, addr(x)) for x in a.addrs]
    return {"local": s.getsockname()[1], "mapped": out}


def cmd_hairpin(a):
    s1, s2 = udp_socket(), udp_socket()
    mapped = binding(s1, addr(a.addrs[0]))
    if mapped is None:
        return {"error": "no mapping"}
    s2.sendto(b"hairpin", tuple(mapped))
    r, _, _ = select.select([s1], [], [], a.wait)
    got = s1.recvfrom(2048) if r else None
    return {"mapped": mapped, "received": got is not None and got[0] == b"hairpin",
            "from": list(got[1]) if got else None}


def cmd_listen(a):
    """Print the mapping, then collect datagrams until a line on stdin (or
    --wait seconds), plus a short grace for anything still in flight."""
    s = udp_socket()
    mapped = binding(s, addr(a.addrs[0]))
    print(json.dumps({"mapped": mapped}), flush=True)
    got = []
    end = time.monotonic() + a.wait
    stop = None
    while True:
        now = time.monotonic()
        if stop is None and now >= end:
            stop = now
        if stop is not None and now >= stop + 0.3:
            break
        waits = [s] if stop is not None else [s, sys.stdin]
        r, _, _ = select.select(waits, [], [], 0.05)
        if sys.stdin in r:
            sys.stdin.readline()
            stop = time.monotonic()
        if s in r:
            data, src = s.recvfrom(2048)
            got.append([data.decode(errors="replace"), list(src)])
    return {"received": got}


def tcp_binding(sock, timeout=2.0):
    """One Binding over a connected TCP socket (RFC 8489 s6.2.2: no framing)."""
    msg, tid = stun_request()
    sock.settimeout(timeout)
    sock.sendall(msg)
    data = b""
    while len(data) < 20 or len(data) < 20 + int.from_bytes(data[2:4], "big"):
        chunk = sock.recv(2048)
        if not chunk:
            return None
        data += chunk
    mtype, rtid, attrs = stun_parse(data)
    if rtid != tid or mtype != BINDING_SUCCESS or XOR_MAPPED not in attrs:
        return None
    return xor_addr(attrs[XOR_MAPPED][0], tid)


def cmd_tcp_mapping(a):
    port, out, socks = a.port, [], []
    for x in a.addrs:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        port = s.getsockname()[1]
        s.settimeout(3.0)
        s.connect(addr(x))
        out.append(tcp_binding(s))
        socks.append(s)
    for s in socks:
        s.close()
    return {"local": port, "mapped": out}


def cmd_send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(addr(a.bind))
    s.sendto(a.data.encode(), addr(a.addrs[0]))
    return {"sent": True}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["wait", "mapping", "hairpin", "listen", "send", "tcp-mapping"])
    ap.add_argument("addrs", nargs="+")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--wait", type=float, default=1.0)
    ap.add_argument("--bind", default="0.0.0.0:0")
    ap.add_argument("--data", default="x")
    a = ap.parse_args()
    res = {"wait": cmd_wait, "mapping": cmd_mapping, "hairpin": cmd_hairpin,
           "listen": cmd_listen, "send": cmd_send, "tcp-mapping": cmd_tcp_mapping}[a.cmd](a)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
