#!/usr/bin/env python3
"""Relayed throughput through one TURN allocation shared by several
sessions, on loopback: stund (TURN + rendezvous, one worker), a UDP echo
(bench/udp_blast echo) behind `natclient listen ID --relay always
--expose`, and N `natclient connect ID --relay always --local` at once;
N `udp_blast send` run together for -d seconds, one per session. Prints
one line per session and the sum (packets/s, Mbit/s of echoed payload,
loss). Compare -c 1 with -c 3. See bench/README.md.

    bench/relay_share.py [-c SESSIONS] [-d SECONDS] [-l PAYLOAD] [-w WINDOW] [-R PPS]
                         [--build-dir DIR]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-c", type=int, default=3, help="sessions at once (1-8)")
    ap.add_argument("-d", type=float, default=5.0, help="seconds of load (at most 20)")
    ap.add_argument("-l", type=int, default=1000, help="payload bytes (24-1400)")
    ap.add_argument("-w", type=int, default=64, help="datagrams in flight per session")
    ap.add_argument("-R", type=int, default=0, help="datagrams/s per session (0: the window's)")
    ap.add_argument("--build-dir", default=os.path.join(SRC, "build"))
    a = ap.parse_args()
    if not 1 <= a.c <= 8 or not 0 < a.d <= 20 or not 24 <= a.l <= 1400:
        ap.error("-c 1-8, -d up to 20, -l 24-1400")
    os.environ["NATKIT_BUILD"] = os.path.abspath(a.build_dir)
    sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
    import harness
    from harness import NATCLIENT, Proc, Stund

    blast = os.path.join(a.build_dir, "udp_blast")
    port = harness.free_port(count=2)
    rmin = harness.free_port(count=32)
    srv = Stund("\n".join([
        "listening-ip = 127.0.0.1", "listening-port = %d" % port,
        "alt-listening-port = %d" % (port + 1), "relay-ip = 127.0.0.1",
        "min-port = %d" % rmin, "max-port = %d" % (rmin + 31), "workers = 1",
        "realm = natkit.bench", "no-tls", "no-dtls", "user = bench:bench-pw",
        "allow-loopback-peers", "metrics-listen = off"]) + "\n")
    env = dict(os.environ, NATCLIENT_USER="bench", NATCLIENT_PASSWORD="bench-pw",
               NATCLIENT_SERVER="127.0.0.1:%d" % port)
    echo_port = harness.free_port()
    procs = [srv]
    try:
        echo = Proc([blast, "echo", "-l", "127.0.0.1:%d" % echo_port])
        procs.append(echo)
        pid = "bench%d" % os.getpid()
        lst = Proc([NATCLIENT, "--json", "listen", pid, "--relay", "always", "--expose",
                    "127.0.0.1:%d" % echo_port], env=env)
        procs.append(lst)
        lst.wait_line(r'"event":"registered"', timeout=15)
        lports = []
        for _ in range(a.c):
            lp = harness.free_port()
            c = Proc([NATCLIENT, "--json", "connect", pid, "--relay", "always", "--local",
                      "127.0.0.1:%d" % lp], env=env)
            procs.append(c)
            lports.append(lp)
            c.wait_line(r'"event":"connected".*"path":"relay"', timeout=20)
        sends = [subprocess.Popen([blast, "send", "-s", "127.0.0.1:%d" % lp, "-l", str(a.l),
                                   "-w", str(a.w), "-R", str(a.R), "-d", str(a.d),
                                   "-L", "s%d" % k],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for k, lp in enumerate(lports)]
        tot_pps = tot_mbit = 0.0
        sent = lost = 0
        for k, s in enumerate(sends):
            out = s.communicate(timeout=a.d + 30)[0]
            line = [l for l in out.splitlines() if l.startswith("udp_blast mode=send")][-1]
            kv = dict(f.split("=", 1) for f in line.split()[1:])
            tot_pps += float(kv["pps"])
            tot_mbit += float(kv["mbps"])
            sent += int(kv["sent"])
            lost += int(kv["lost"])
            print("session %d: %s" % (k, line))
        print("relay_share sessions=%d payload=%d window=%d rate=%d seconds=%g pps=%.0f "
              "mbps=%.1f loss_pct=%.3f" % (a.c, a.l, a.w, a.R, a.d, tot_pps, tot_mbit,
                                 100.0 * lost / sent if sent else 0.0))
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    main()
