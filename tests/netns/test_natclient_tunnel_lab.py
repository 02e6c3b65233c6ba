#!/usr/bin/env python3
"""natclient listen / connect between the two sites of the NAT lab, through
stund (rendezvous + TURN) in the server namespace: behind endpoint-
independent NATs the ICE checks open a direct path; behind two symmetric
NATs no direct pair works and the session runs over the TURN relay. Data
goes both ways through stdin/stdout. Needs root."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lab as labmod  # noqa: E402
from lab import Lab  # noqa: E402
from harness import NATCLIENT, STUND, Proc, test, run_tests  # noqa: E402

if os.geteuid() != 0:
    print("test_natclient_tunnel_lab: FAIL: needs root (network namespaces); run as root",
          file=sys.stderr)
    sys.exit(1)

PROBE = os.path.join(HERE, "stunprobe.py")
S1, S2 = labmod.TOPOLOGY["server"]["addrs"]
PORT = 3478


def start_stund(lab):
    d = tempfile.mkdtemp(prefix="nkl-stund-")
    conf = os.path.join(d, "stund.conf")
    with open(conf, "w") as f:
        f.write("listening-ip = %s\nlistening-ip = %s\nlistening-port = %d\n"
                "alt-listening-port = %d\nrelay-ip = %s\nno-tls\nno-dtls\n"
                "metrics-listen = off\nrealm = natkit.lab\nuser = alice:s3cret\n"
                % (S1, S2, PORT, PORT + 1, S1))
    log = tempfile.NamedTemporaryFile(prefix="nkl-stund-", suffix=".log")
    try:
        lab.popen("server", [STUND, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
        r = lab.run("server", ["python3", PROBE, "wait", "%s:%d" % (S1, PORT), "--timeout", "10"])
        assert json.loads(r.stdout.strip().splitlines()[-1])["ready"], "stund not ready"
    finally:  # read at start-up (and on SIGHUP, which nothing sends here)
        os.unlink(conf)
        os.rmdir(d)
    return log


def natclient(lab, node, *args):
    env = dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD="s3cret",
               NATCLIENT_SERVER="%s:%d" % (S1, PORT))
    return Proc(lab.cmd(node, [NATCLIENT, "--json"] + list(args)), env=env,
                stdin=subprocess.PIPE)


def session(lab, want_path, connect_args=(), command_args=()):
    lst = natclient(lab, "a", "listen", "lab-peer")
    lst.wait_line(r'"event":"registered"', timeout=15)
    con = natclient(lab, "b", *(list(connect_args) + ["connect", "lab-peer", "--timeout", "20"] +
                                list(command_args)))
    # the relay may carry the session first (relay fallback after 1.5 s)
    # while the hole punching goes on: wait for the path wanted
    pat = r'"event":"connected".*"path":"%s"' % want_path
    ce = json.loads(con.wait_line(pat, timeout=25).string)
    le = json.loads(lst.wait_line(pat, timeout=10).string)
    assert ce["path"] == want_path and le["path"] == want_path, (ce, le, lab.describe())
    for p, other, text in ((con, lst, "from b"), (lst, con, "from a")):
        p.p.stdin.write(text.encode() + b"\n")
        p.p.stdin.flush()
        other.wait_line(r"^%s$" % text, timeout=10)
    print("  %s <-> %s: %s path, b %s -> %s (%s -> %s), %d ms"
          % (lab.nat["a"], lab.nat["b"], ce["path"], ce["local"], ce["remote"],
             ce["local_type"], ce["remote_type"], ce["ms"]))
    ce["events"] = [json.loads(l)["path"] for l in con.lines if '"event":"connected"' in l]
    con.stop()
    lst.stop()
    return ce


def lab_case(want_path, connect_args=(), command_args=(), **kw):
    with Lab(**kw) as lab:
        log = start_stund(lab)
        try:
            return session(lab, want_path, connect_args, command_args)
        finally:
            log.close()


@test
def port_restricted_both_sides_direct():
    ce = lab_case("direct", site_a="port-restricted", site_b="port-restricted")
    # each host sits behind its NAT: the path is between server-reflexive
    # (or peer-reflexive) addresses, not host ones
    assert ce["remote_type"] in ("srflx", "prflx"), ce


@test
def symmetric_both_sides_relay():
    ce = lab_case("relay", site_a="symmetric-random", site_b="symmetric-random")
    assert "relay" in (ce["local_type"], ce["remote_type"]), ce
    # the default relay fallback: 1.5 s of direct checks first
    assert ce["ms"] >= 1400, ce


@test
def relay_fallback_is_configurable():
    conf = tempfile.NamedTemporaryFile("w", prefix="nkl-natclient-", suffix=".conf")
    conf.write("relay-fallback = 0.3\n")
    conf.flush()
    ce = lab_case("relay", ["--config", conf.name], site_a="symmetric-random",
                  site_b="symmetric-sequential")
    assert ce["ms"] < 1200, ce
    conf.close()


@test
def full_cone_and_symmetric_direct():
    # without port prediction (with it the path is "predicted": the
    # mapping the full cone sees is one of b's predicted candidates; see
    # test_connect_matrix.py)
    lab_case("direct", command_args=("--predict", "off"), site_a="full-cone",
             site_b="symmetric-sequential")


if __name__ == "__main__":
    run_tests()
