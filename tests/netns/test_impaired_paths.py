#!/usr/bin/env python3
"""Delay and loss in the NAT lab, measured, and natclient over them.

- The impairments do what they say: a UDP echo (udpecho.py) from each host
  to the server, before and after lab.impair(): with a one-way delay D on a
  site's uplink the round trip rises by 2 D (the echo crosses it twice),
  never less, and the other site is untouched; with loss p on a site's
  uplink about 1 - (1 - p)^2 of the echoes are lost (the band allows
  several standard deviations), the other site loses none.
- natclient over impaired paths: 40 ms one-way on each site's uplink (so
  160 ms between the hosts) and 3 % loss on each (each way): for
  representative pairs of NAT types `natclient listen` on host a, `natclient
  connect` on host b through stund (natpair.py) must connect on the
  expected path and carry a line each way. Lines are datagrams and natclient
  does not retransmit data (a UDP tunnel), so each line is sent again every
  0.5 s until it arrives; the number of tries is printed. Prints path, time
  to connected and time to first byte per pair.
Needs root.
"""
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lab as labmod  # noqa: E402
import natpair  # noqa: E402
from lab import Lab  # noqa: E402
from harness import test, run_tests  # noqa: E402

if os.geteuid() != 0:
    print("test_impaired_paths: FAIL: needs root (network namespaces); run as root",
          file=sys.stderr)
    sys.exit(1)

ECHO = os.path.join(HERE, "udpecho.py")
ECHO_PORT = 7777
DELAY_MS, LOSS = 40, 0.03      # the natclient pairs' impairments, per site uplink
RESEND_S, TRIES = 0.5, 12      # a line is sent again every RESEND_S, at most TRIES times


def echo_server(lab):
    p = lab.popen("server", [sys.executable, ECHO, "serve", str(ECHO_PORT)],
                  stdout=subprocess.PIPE, text=True)
    lab._await_line(p, "udpecho ready", 10)


def probe(lab, host, n, gap_ms):
    r = lab.run(host, [sys.executable, ECHO, "probe", lab.server_ips[0], str(ECHO_PORT),
                       str(n), str(gap_ms)], timeout=n * gap_ms / 1000.0 + 20)
    return json.loads(r.stdout)


@test
def delay_and_loss_are_what_the_lab_says():
    with Lab(site_a="port-restricted", site_b="symmetric-random") as lab:
        echo_server(lab)
        base = {h: probe(lab, h, 50, 5) for h in ("a", "b")}
        for h in ("a", "b"):
            assert base[h]["loss"] == 0, base
        delay = {"a": 40, "b": 15}
        lab.impair(delay=delay)
        print("  " + lab.describe().replace("\n", "\n  "))
        for h in ("a", "b"):
            r = probe(lab, h, 50, 5)
            rise = r["rtt_ms"]["median"] - base[h]["rtt_ms"]["median"]
            print("  delay %s %d ms one-way: echo rtt median %.2f -> %.2f ms (+%.1f, min %.2f,"
                  " max %.2f)" % (h, delay[h], base[h]["rtt_ms"]["median"], r["rtt_ms"]["median"],
                                  rise, r["rtt_ms"]["min"], r["rtt_ms"]["max"]))
            assert r["loss"] == 0, r
            assert r["rtt_ms"]["min"] >= 2 * delay[h], r   # never earlier than due
            assert 2 * delay[h] - 1 <= rise <= 2 * delay[h] + 10, (h, rise, r)
        p = 0.1
        lab.impair(loss={"a": p})
        want = 1 - (1 - p) ** 2
        n = 1000
        ra, rb = probe(lab, "a", n, 1), probe(lab, "b", 200, 1)
        sd = (want * (1 - want) / n) ** 0.5
        print("  loss a %.2f each way: %d of %d echoes lost (%.3f, expected %.3f +- %.3f);"
              " site b: %d of %d" % (p, n - ra["received"], n, ra["loss"], want, sd,
                                     200 - rb["received"], 200))
        assert abs(ra["loss"] - want) <= 5 * sd, (ra, want)
        assert rb["loss"] == 0, rb
        assert ra["rtt_ms"]["median"] < 2 * base["a"]["rtt_ms"]["median"] + 5, ra  # no delay left
        lab.impair()
        assert probe(lab, "a", 50, 2)["loss"] == 0


# (site a: listens, site b: connects, expected path). The birthday case
# (port-restricted facing symmetric-random) is here both ways.
PAIRS = [
    ("port-restricted", "port-restricted", "direct"),
    ("port-restricted", "symmetric-sequential", "predicted"),
    ("symmetric-sequential", "port-restricted", "predicted"),
    ("port-restricted", "symmetric-random", "predicted"),
    ("symmetric-random", "port-restricted", "predicted"),
    ("symmetric-random", "symmetric-random", "relay"),
]


def deliver(src, dst, text):
    """Send "text N" from src's stdin until dst prints it; -> tries."""
    for k in range(1, TRIES + 1):
        natpair._say(src, "%s %d" % (text, k))
        try:
            dst.wait_line(r"^%s \d+$" % text, timeout=RESEND_S)
            return k
        except AssertionError:
            continue
    raise AssertionError("%r never arrived in %d tries" % (text, TRIES))


def connected(proc, timeout, path=None):
    rx = r'"event":"connected"' + ('.*"path":"%s"' % path if path else "")
    return json.loads(proc.wait_line(rx, timeout=timeout).string)


def last_connected(proc):
    proc.drain()
    ev = [json.loads(l) for l in proc.lines if '"event":"connected"' in l]
    return ev[-1]


def impaired_session(lab, want, timeout=20):
    """listen on a, connect from b; -> dict (path, ms, ttfb_ms, tries)."""
    lst = natpair.natclient(lab, "a", ["listen", "imp"])
    con = None
    try:
        lst.wait_line(r'"event":"registered"', timeout=15)
        t0 = time.monotonic()
        con = natpair.natclient(lab, "b", ["connect", "imp", "--timeout", str(timeout)])
        first = connected(con, timeout + 5)
        connected(lst, 10)
        tries = deliver(con, lst, "ping from b")
        ttfb = (time.monotonic() - t0) * 1000.0
        tries2 = deliver(lst, con, "pong from a")
        # On a relay, natclient moves to a direct pair when one opens (a
        # second "connected"); the two sides may report the relay and the
        # direct pair in either order, but must end on the same path.
        ce, le = last_connected(con), last_connected(lst)
        if want != "relay" and "relay" in (ce["path"], le["path"]):
            try:
                if ce["path"] == "relay":
                    ce = connected(con, 6, "(direct|predicted)")
                if le["path"] == "relay":
                    le = connected(lst, 6, "(direct|predicted)")
                deliver(con, lst, "again from b")
                deliver(lst, con, "again from a")
            except AssertionError:
                pass
        ce, le = last_connected(con), last_connected(lst)
        assert ce["path"] == le["path"], (ce, le)
        return {"path": ce["path"], "first_path": first["path"], "ms": first["ms"],
                "path_ms": ce["ms"], "ttfb_ms": ttfb, "tries": (tries, tries2)}
    finally:
        if con:
            con.stop()
        lst.stop()
        for who, p in (("connect", con), ("listen", lst)):
            if p:
                LOGS.setdefault(lab.run_id, []).append((who, p.lines))


LOGS = {}


def run_pair(case):
    a, b, want = case
    t = time.monotonic()
    with Lab(site_a=a, site_b=b, delay=DELAY_MS, loss=LOSS) as lab:
        try:
            natpair.start_stund(lab)
            r = impaired_session(lab, want)
            r["error"] = None
        except Exception as e:  # reported below with both sides' output
            r = {"path": "FAILED", "error": "%s: %s" % (type(e).__name__, str(e)[-1200:])}
        r["logs"] = LOGS.pop(lab.run_id, [])
    r["case"], r["wall_s"] = case, time.monotonic() - t
    return r


@test
def natclient_connects_over_delay_and_loss():
    labmod._install_handlers()  # signal handlers belong to the main thread
    t = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(run_pair, PAIRS))
    print("\n  %d ms one-way and %.0f %% loss (each way) on each site's uplink"
          % (DELAY_MS, LOSS * 100))
    print("  %-44s %-10s %-10s %9s %8s %6s" % ("a (listen) <- b (connect)", "path", "expected",
                                                "connected", "ttfb", "tries"))
    for r in results:
        a, b, want = r["case"]
        if r["error"]:
            print("  %-44s %-10s %-10s" % ("%s <- %s" % (a, b), "FAILED", want))
            continue
        note = "" if r["first_path"] == r["path"] else "  (%s first, %s at %d ms)" % (
            r["first_path"], r["path"], r["path_ms"])
        print("  %-44s %-10s %-10s %7d ms %5d ms %3d/%d%s" % (
            "%s <- %s" % (a, b), r["path"], want, r["ms"], r["ttfb_ms"], r["tries"][0],
            r["tries"][1], note))
    print("  %d pairs in %.1f s" % (len(results), time.monotonic() - t))
    bad = [r for r in results if r["error"] or r["path"] != r["case"][2]]
    for r in bad:
        print("\n%s <- %s: %s\n%s" % (r["case"][0], r["case"][1], r["path"], r["error"] or ""))
        for who, lines in r["logs"]:
            print("  %s:\n    %s" % (who, "\n    ".join(lines[-40:])))
    assert not bad, "%d of %d pairs failed or took an unexpected path" % (len(bad), len(results))
    ms = [r["ms"] for r in results]
    print("  median time to connected %.0f ms" % statistics.median(ms))


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        run_tests()
    finally:
        print("%.1f s" % (time.monotonic() - t0))
