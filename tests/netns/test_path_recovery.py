#!/usr/bin/env python3
"""A lost path is re-established (issue 5). stund and two natclients on
loopback inside a network namespace this test creates; once the session
runs over the direct path, an nft rule in that namespace drops the
datagrams between the two natclients. With `consent-timeout = 10` the
consent checks (RFC 7675) find the path dead; `connect` restarts ICE (a new
offer through the rendezvous) instead of exiting, the listener takes the
new offer in place of its old session, the relayed pair (through stund, not
blocked) carries the data, and a new `connected` event reports it; data
written while the path was down comes through. Also, in the same
namespace, host candidates come from every usable interface address.
Needs root."""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import NATCLIENT, Proc, test, run_tests  # noqa: E402

NS = "nkrec%d" % os.getpid()


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def outer():
    if os.geteuid() != 0:
        print("test_path_recovery: FAIL: needs root (network namespaces)", file=sys.stderr)
        sys.exit(1)
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        r = subprocess.run(["ip", "netns", "exec", NS, sys.executable, os.path.abspath(__file__),
                            "--inner", NS], timeout=110)
        sys.exit(r.returncode)
    finally:
        sh("ip", "netns", "del", NS, check=False)


def ev(proc, name, timeout=15, after=0):
    """The first event `name` at index >= after: (event, index)."""
    deadline = time.monotonic() + timeout
    while True:
        for i in range(after, len(proc.lines)):
            line = proc.lines[i]
            if line.startswith("{") and '"event":"%s"' % name in line:
                return json.loads(line), i + 1
        if time.monotonic() > deadline:
            raise AssertionError("no %s event; output:\n%s" % (name, "\n".join(proc.lines[-30:])))
        proc._pump(0.2)


def say(proc, text):
    proc.p.stdin.write(text.encode() + b"\n")
    proc.p.stdin.flush()


def block(a, b):
    rule = ("table inet nkrec {\n chain out {\n  type filter hook output priority 0;\n"
            "  udp sport %d udp dport %d drop\n  udp sport %d udp dport %d drop\n }\n}"
            % (a, b, b, a))
    r = subprocess.run(["nft", "-f", "-"], input=rule + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@test
def lost_path_is_reestablished():
    from turnlib import turn_server
    _, port, _ = turn_server(users=("alice:s3cret",), relay_ports=16)
    d = tempfile.mkdtemp(prefix="nkrec-")
    conf = os.path.join(d, "natclient.conf")
    with open(conf, "w") as f:
        f.write("server = 127.0.0.1:%d\nuser = alice\npassword = s3cret\n"
                "consent-timeout = 10\n" % port)
    env = dict(os.environ)
    for k in ("NATCLIENT_USER", "NATCLIENT_PASSWORD", "NATCLIENT_SERVER"):
        env.pop(k, None)
    lst = Proc([NATCLIENT, "--json", "--config", conf, "listen", "rec"], env=env,
               stdin=subprocess.PIPE)
    ev(lst, "registered")
    con = Proc([NATCLIENT, "--json", "--config", conf, "connect", "rec", "--timeout", "40"],
               env=env, stdin=subprocess.PIPE)
    ce, ci = ev(con, "connected")
    le, li = ev(lst, "connected")
    assert ce["path"] == "direct", ce
    say(con, "before")
    lst.wait_line(r"^before$", timeout=10)
    pa, pb = int(ce["local"].rsplit(":", 1)[1]), int(ce["remote"].rsplit(":", 1)[1])
    block(pa, pb)
    t0 = time.monotonic()
    _, ci = ev(con, "disconnected", timeout=20, after=ci)
    lost = time.monotonic() - t0
    say(con, "while down")  # read once the new path is up
    ce2, ci = ev(con, "connected", timeout=20, after=ci)
    le2, li = ev(lst, "connected", timeout=10, after=li)
    took = time.monotonic() - t0
    print("blocked -> disconnected %.1f s, -> connected again %.1f s (%s)"
          % (lost, took, ce2["path"]))
    assert ce2["path"] == "relay" and le2["path"] == "relay", (ce2, le2)
    assert con.p.poll() is None, "connect exited"
    lst.wait_line(r"^while down$", timeout=10)
    say(lst, "after")
    con.wait_line(r"^after$", timeout=10)
    assert lost <= 12.5, lost
    con.stop()
    lst.stop()


@test
def host_candidates_from_every_usable_address():
    # in this namespace: veth d0 (up) with two addresses (and its IPv6
    # link-local one), veth d1 (down) with one; the server on d0's first address. Host
    # candidates: both of d0's addresses, not d1's, not loopback, not
    # link-local (RFC 8445 s5.1.1.1)
    for cmd in (["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d0p"],
                ["ip", "addr", "add", "10.99.0.1/24", "dev", "d0"],
                ["ip", "addr", "add", "10.99.0.2/24", "dev", "d0"],
                ["ip", "link", "set", "d0p", "up"],
                ["ip", "link", "set", "d0", "up"],
                ["ip", "link", "add", "d1", "type", "veth", "peer", "name", "d1p"],
                ["ip", "addr", "add", "10.98.0.1/24", "dev", "d1"]):
        sh(*cmd)
    from harness import Stund, free_port
    port = free_port(host="10.99.0.1", count=2)
    Stund("listening-ip = 10.99.0.1\nlistening-port = %d\nalt-listening-port = %d\n"
          "no-tls\nno-dtls\nrealm = natkit.test\nuser = alice:s3cret\n"
          "metrics-listen = off\n" % (port, port + 1))
    env = dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD="s3cret",
               NATCLIENT_SERVER="10.99.0.1:%d" % port)
    lst = Proc([NATCLIENT, "--json", "listen", "hc"], env=env, stdin=subprocess.PIPE)
    ev(lst, "registered")
    con = Proc([NATCLIENT, "--json", "connect", "hc", "--relay", "never"], env=env,
               stdin=subprocess.PIPE)
    ce, _ = ev(con, "connected")
    hosts = sorted(json.loads(x)["address"].rsplit(":", 1)[0] for x in con.lines
                   if '"event":"candidate"' in x and '"type":"host"' in x)
    assert hosts == ["10.99.0.1", "10.99.0.2"], hosts
    assert ce["path"] == "direct", ce
    say(con, "hi")
    lst.wait_line(r"^hi$", timeout=10)
    con.stop()
    lst.stop()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--inner":
        NS = sys.argv[2]
        sys.argv = sys.argv[:1]
        run_tests()
    else:
        outer()
