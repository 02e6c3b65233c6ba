#!/usr/bin/env python3
"""A UDP echo for measuring the lab's delay and loss (there is no ping here).

    udpecho.py serve PORT                  echo every datagram back; prints "udpecho ready"
    udpecho.py probe HOST PORT N GAP_MS    send N numbered probes GAP_MS apart, wait 1 s
                                           after the last; prints one JSON line:
        {"sent": N, "received": R, "loss": 1-R/N, "rtt_ms": {"min", "median", "max"}}
Python 3 stdlib only.
"""
import json
import select
import socket
import statistics
import struct
import sys
import time

LINGER = 1.0  # seconds to wait for echoes after the last probe


def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print("udpecho ready", flush=True)
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(data, addr)


def probe(host, port, n, gap):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.setblocking(False)
    sent, rtts, got = {}, [], set()
    nxt = time.monotonic()
    i = 0
    while True:
        now = time.monotonic()
        if i < n and now >= nxt:
            s.send(struct.pack("!I", i))
            sent[i] = now
            i += 1
            nxt += gap
        if i >= n and now - sent[n - 1] > LINGER:
            break
        wait = (nxt - now) if i < n else (sent[n - 1] + LINGER - now)
        if select.select([s], [], [], max(0.0, min(wait, 0.05)))[0]:
            try:
                k = struct.unpack("!I", s.recv(2048)[:4])[0]
            except (OSError, struct.error):
                continue
            if k in sent and k not in got:
                got.add(k)
                rtts.append((time.monotonic() - sent[k]) * 1000.0)
    out = {"sent": n, "received": len(rtts), "loss": 1.0 - len(rtts) / n}
    if rtts:
        out["rtt_ms"] = {"min": min(rtts), "median": statistics.median(rtts), "max": max(rtts)}
    print(json.dumps(out), flush=True)


def main(argv):
    if len(argv) == 2 and argv[0] == "serve":
        serve(int(argv[1]))
    elif len(argv) == 5 and argv[0] == "probe":
        probe(argv[1], int(argv[2]), int(argv[3]), float(argv[4]) / 1000.0)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
