#!/usr/bin/env python3
"""After a birthday hit (client/birthday: a random-port symmetric NAT facing
a port-restricted cone), the random side's server flows live on: the
socket a probe reached carries the session's checks and data, while the
first socket keeps the registration and the TURN allocation. In the NAT
lab (tests/netns/lab.py) with stund (rendezvous + TURN) and
`consent-timeout = 8` on both natclients:
  - the random side listens: a session on the birthday path ("predicted",
    the time from the hit to that path printed); then an nft rule on the
    random host drops everything between it and the peer's NAT: consent
    expires, `connect` restarts ICE with a new offer, which reaches the
    listener by its registration, and the session comes back over the
    random side's relay (the peer runs --relay never, so that relay is the
    only one); then a second `natclient connect` to the same ID after the
    first has gone reaches the listener too;
  - the random side connects: the same loss, and the session comes back
    over the random side's relay.
Before, the hit socket replaced the first one, and both failed (the offer
and the relayed datagrams went to a closed socket). Needs root."""
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import natpair  # noqa: E402
from lab import Lab  # noqa: E402
from harness import test, run_tests  # noqa: E402

if os.geteuid() != 0:
    print("test_birthday_recovery: FAIL: needs root (network namespaces); run as root",
          file=sys.stderr)
    sys.exit(1)


def ev(proc, name, after=0, timeout=20, **want):
    """The first JSON event `name` (with the fields in want) at line index
    >= after: -> (event, next index)."""
    deadline = time.monotonic() + timeout
    while True:
        for i in range(after, len(proc.lines)):
            line = proc.lines[i]
            if not line.startswith("{"):
                continue
            e = json.loads(line)
            if e["event"] == name and all(e.get(k) == v for k, v in want.items()):
                return e, i + 1
        if time.monotonic() > deadline:
            raise AssertionError("no %s %s event; output:\n%s"
                                 % (name, want, "\n".join(proc.lines[-40:])))
        if proc._pump(0.2) is None:
            raise AssertionError("%s exited; output:\n%s" % (proc.args[-3:], "\n".join(proc.lines[-40:])))


def say(proc, text):
    proc.p.stdin.write(text.encode() + b"\n")
    proc.p.stdin.flush()


def both_ways(con, lst, tag):
    say(con, "%s from connect" % tag)
    lst.wait_line(r"^%s from connect$" % tag, timeout=15)
    say(lst, "%s from listen" % tag)
    con.wait_line(r"^%s from listen$" % tag, timeout=15)


def stop(proc):
    """Stop a natclient; under ASan its exit report must be clean."""
    proc.stop()
    bad = [l for l in proc.lines if "Sanitizer" in l or "runtime error" in l]
    assert not bad, "\n".join(proc.lines[-60:])


def block(lab, host, peer_ip):
    """Drop every datagram between host and the peer's public address."""
    lab.nft(host, "table inet nkbday {\n chain out {\n  type filter hook output priority 0;\n"
            "  ip daddr %s meta l4proto udp drop\n }\n chain in {\n"
            "  type filter hook input priority 0;\n  ip saddr %s meta l4proto udp drop\n"
            " }\n}\n" % (peer_ip, peer_ip))


def birthday_session(lst, con, hard):
    """The first session: on the birthday path; -> (connect's, listen's next index)."""
    both_ways(con, lst, "one")
    hit, _ = ev(hard, "birthday", result="hit")
    ce, ci = ev(con, "connected", path="predicted", timeout=10)
    le, li = ev(lst, "connected", path="predicted", timeout=10)
    he = ce if hard is con else le
    print("  birthday hit at %d ms -> predicted path at %d ms: %d ms"
          % (hit["ms"], he["ms"], he["ms"] - hit["ms"]))
    return ci, li


def back_over_relay(con, lst, ci, li, relay_side):
    """After the block: consent lost, ICE restarted, the relay carries it."""
    t0 = time.monotonic()
    _, ci = ev(con, "disconnected", after=ci, timeout=20)
    ce, ci = ev(con, "connected", after=ci, timeout=25)
    le, li = ev(lst, "connected", after=li, timeout=10)
    print("  blocked -> connected again over %s in %.1f s" % (ce["path"], time.monotonic() - t0))
    assert ce["path"] == "relay" and le["path"] == "relay", (ce, le)
    side = ce if relay_side is con else le
    assert side["local_type"] == "relay", side  # the random side's own allocation
    both_ways(con, lst, "relayed")
    return ci, li


def config():
    f = tempfile.NamedTemporaryFile("w", prefix="nkl-natclient-", suffix=".conf")
    f.write("consent-timeout = 8\n")
    f.flush()
    return f


@test
def random_listener_keeps_registration_and_relay():
    conf = config()
    pre = ("--config", conf.name)
    try:
        with Lab(site_a="symmetric-random", site_b="port-restricted") as lab:
            natpair.start_stund(lab)
            lst = natpair.natclient(lab, "a", ["listen", "bd"], pre)
            ev(lst, "registered")
            con = natpair.natclient(lab, "b", ["connect", "bd", "--timeout", "40",
                                               "--relay", "never"], pre)
            ci, li = birthday_session(lst, con, lst)
            block(lab, "a", lab.router_ip["b"])
            ci, li = back_over_relay(con, lst, ci, li, lst)
            stop(con)
            # a second peer: the offer reaches the listener by its registration
            con2 = natpair.natclient(lab, "b", ["connect", "bd", "--timeout", "20",
                                                "--relay", "never"], pre)
            ce, _ = ev(con2, "connected", timeout=25)
            ev(lst, "offer", after=li)
            both_ways(con2, lst, "second")
            print("  second connect: %s path at %d ms" % (ce["path"], ce["ms"]))
            stop(con2)
            stop(lst)
    finally:
        conf.close()


@test
def random_connector_keeps_relay():
    conf = config()
    pre = ("--config", conf.name)
    try:
        with Lab(site_a="port-restricted", site_b="symmetric-random") as lab:
            natpair.start_stund(lab)
            lst = natpair.natclient(lab, "a", ["listen", "bd", "--relay", "never"], pre)
            ev(lst, "registered")
            con = natpair.natclient(lab, "b", ["connect", "bd", "--timeout", "40"], pre)
            ci, li = birthday_session(lst, con, con)
            block(lab, "b", lab.router_ip["a"])
            back_over_relay(con, lst, ci, li, con)
            stop(con)
            stop(lst)
    finally:
        conf.close()


if __name__ == "__main__":
    t = time.monotonic()
    try:
        run_tests()
    finally:
        print("%.1f s" % (time.monotonic() - t))
