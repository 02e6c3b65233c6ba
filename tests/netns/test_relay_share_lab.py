#!/usr/bin/env python3
"""Three relayed sessions through one TURN allocation in the NAT lab, where
only the relay works (both sites symmetric-random): `natclient listen ID
--relay always --expose` on host a (a UDP echo beside it), three `natclient
connect ID` at once from host b, so all three peers come from one public
IP (site b's NAT) with three ports. The listener's one allocation carries
every session: one permission for that IP and a channel per peer
(RFC 8656 s9, s12), three source ports on the relay; each connect gets
only its own echoes. One connect ends: the listener drops its session and
gives back its channel but not the shared permission, the others go on,
and a new connect from b works through the same relayed address. Also two
peers behind one sequential NAT, where one's predicted window lists the
other's address: each gets its own data. Needs root."""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from lab import Lab  # noqa: E402
import harness  # noqa: E402
from harness import BUILD, test, run_tests  # noqa: E402
import natpair  # noqa: E402

if os.geteuid() != 0:
    print("test_relay_share_lab: FAIL: needs root (network namespaces); run as root",
          file=sys.stderr)
    sys.exit(1)

ECHO_PORT = 7000
B_IP = "203.0.113.2"  # site b's NAT router, the peers' public IP


def say(proc, text):
    proc.p.stdin.write(text.encode() + b"\n")
    proc.p.stdin.flush()


def connect(lab, pid):
    c = natpair.natclient(lab, "b", ["connect", pid, "--timeout", "20"])
    ce = json.loads(c.wait_line(r'"event":"connected"', timeout=25).string)
    assert ce["path"] == "relay", ce
    return c


def exchange(cons, rounds, tag):
    """Lines from every connect at once; each reads back only its own."""
    for i in range(rounds):
        for k, c in enumerate(cons):
            say(c, "%s %d line %d" % (tag, k, i))
        for k, c in enumerate(cons):
            c.wait_line(r"^%s %d line %d$" % (tag, k, i), timeout=10)
    for k, c in enumerate(cons):
        mine = "%s %d " % (tag, k)
        other = [l for l in c.lines if l.startswith(tag + " ") and not l.startswith(mine)]
        assert not other, (k, other)


def held(lst, after):
    ev = [json.loads(l) for l in lst.lines
          if '"event":"relay-held"' in l and '"after":"%s"' % after in l]
    assert ev, "\n".join(lst.lines[-30:])
    return ev[-1]


def events(proc, name, after=None):
    return [json.loads(l) for l in proc.lines if '"event":"%s"' % name in l and
            (after is None or '"after":"%s"' % after in l)]


def wait_events(proc, name, count, after=None, timeout=20):
    deadline = time.monotonic() + timeout
    while len(events(proc, name, after)) < count:
        left = deadline - time.monotonic()
        assert left > 0, "%d %s events wanted:\n%s" % (count, name, "\n".join(proc.lines[-30:]))
        proc._pump(min(left, 0.5))
    return events(proc, name, after)


@test
def three_peers_behind_one_nat_share_the_listeners_relay():
    with Lab(site_a="symmetric-random", site_b="symmetric-random") as lab:
        natpair.start_stund(lab)
        lab.popen("a", [os.path.join(BUILD, "udp_blast"), "echo", "-l",
                        "127.0.0.1:%d" % ECHO_PORT], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
        conf = os.path.join(harness.tmpdir(), "listen.conf")
        with open(conf, "w") as f:
            f.write("consent-timeout = 10\n")
        pid = "share"
        lst = natpair.natclient(lab, "a", ["listen", pid, "--relay", "always", "--expose",
                                           "127.0.0.1:%d" % ECHO_PORT],
                                pre=["-v", "--config", conf])
        lst.wait_line(r'"event":"registered"', timeout=15)
        cons = []
        for _ in range(3):  # started together, checked after
            cons.append(natpair.natclient(lab, "b", ["connect", pid, "--timeout", "20"]))
        for c in cons:
            ce = json.loads(c.wait_line(r'"event":"connected"', timeout=25).string)
            assert ce["path"] == "relay", ce
        wait_events(lst, "relay-held", 3, "connected")
        ev = events(lst, "connected")
        assert len(ev) == 3, ev
        assert len({e["local"] for e in ev}) == 1, ev  # the one relayed address
        remotes = [e["remote"] for e in ev]
        assert {r.rsplit(":", 1)[0] for r in remotes} == {B_IP}, remotes
        assert len(set(remotes)) == 3, remotes  # three ports on b's NAT
        h = held(lst, "connected")
        assert h["channels"] == 3, h
        # a permission per IP among the peers' candidates (host, srflx,
        # relayed) and paths: b's NAT's one for all three, not one each
        ips = {e["address"].rsplit(":", 1)[0] for c in cons for e in events(c, "candidate")}
        perms = h["permissions"]
        assert B_IP in ips and perms == len(ips | {B_IP}), (h, ips)
        exchange(cons, 10, "a")

        # one ends: its channel goes, the permission for b's IP stays
        gone = cons.pop(0)
        gone.stop()
        lst.wait_line(r'"event":"disconnected"', timeout=20)
        lst.wait_line(r'"event":"relay-held".*"after":"end"', timeout=5)
        h = held(lst, "end")
        assert (h["permissions"], h["channels"]) == (perms, 2), (h, perms)
        exchange(cons, 5, "b")

        cons.append(connect(lab, pid))
        ev = wait_events(lst, "connected", 4)
        assert ev[-1]["local"] == ev[0]["local"], ev
        h = wait_events(lst, "relay-held", 4, "connected")[-1]
        assert (h["permissions"], h["channels"]) == (perms, 3), (h, perms)
        exchange(cons, 5, "c")
        print("  listener %s: peers %s, then %s; %d permissions, 3 channels held"
              % (ev[0]["local"], remotes, ev[-1]["remote"], perms))
        for c in cons + [gone, lst]:
            c.stop()
            bad = [l for l in c.lines if "Sanitizer" in l or "runtime error" in l]
            assert not bad, bad


@test
def two_peers_behind_one_sequential_nat_get_their_own_data():
    """Site b sequential (delta 2): the first connect's predicted window
    holds the port the second one's path comes from, so the listener's
    first session lists the second's address among its remote candidates;
    data goes to the session whose path it is on (before: to the first
    session that listed it, and the first connect got both echoes)."""
    with Lab(site_a="port-restricted", site_b="symmetric-sequential") as lab:
        natpair.start_stund(lab)
        lab.popen("a", [os.path.join(BUILD, "udp_blast"), "echo", "-l",
                        "127.0.0.1:%d" % ECHO_PORT], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
        lst = natpair.natclient(lab, "a", ["listen", "seq", "--expose",
                                           "127.0.0.1:%d" % ECHO_PORT])
        lst.wait_line(r'"event":"registered"', timeout=15)
        cons = []
        for _ in range(2):  # one after the other: consecutive windows
            c = natpair.natclient(lab, "b", ["connect", "seq", "--timeout", "20"])
            c.wait_line(r'"event":"connected"', timeout=25)
            cons.append(c)
        ev = wait_events(lst, "connected", 2)
        first_window = [e["address"] for e in events(cons[0], "candidate")
                        if e["type"] == "predicted"]
        second = [e["remote"] for e in ev if e["session"] == 1][-1]
        assert second in first_window, (second, first_window)  # the case at hand
        exchange(cons, 5, "d")
        print("  second peer's path %s is in the first one's window %s"
              % (second, ",".join(a.rsplit(":", 1)[1] for a in first_window)))
        for c in cons + [lst]:
            c.stop()
            bad = [l for l in c.lines if "Sanitizer" in l or "runtime error" in l]
            assert not bad, bad


if __name__ == "__main__":
    run_tests()
