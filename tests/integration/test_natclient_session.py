"""natclient sessions on loopback against a real stund (credentials on):
the relayed set-up is not held up by a lost first check (RFC 8445
s7.3.1.4: a check from the peer on an In-Progress pair triggers a new
check at once instead of waiting for the retransmission, RTO >= 500 ms)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NATCLIENT, Proc, test, run_tests  # noqa: E402
from turnlib import turn_server  # noqa: E402

SRV = {}


def server():
    if "s" not in SRV:
        srv, port, _ = turn_server(users=("alice:s3cret",), relay_ports=32, v6=True)
        SRV["s"] = "127.0.0.1:%d" % port
        SRV["s6"] = "[::1]:%d" % port
    return SRV["s"]


def server6():
    server()
    return SRV["s6"]


def env(srv=None):
    return dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD="s3cret",
                NATCLIENT_SERVER=srv or server())


def peer_id():
    return "s%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)


def ev(proc, name, timeout=15):
    return json.loads(proc.wait_line(r'"event":"%s"' % name, timeout=timeout).string)


def listen(pid, *args, srv=None):
    p = Proc([NATCLIENT, "--json", "listen", pid] + list(args), env=env(srv),
             stdin=subprocess.PIPE)
    ev(p, "registered")
    return p


def connect(pid, *args, srv=None):
    return Proc([NATCLIENT, "--json", "connect", pid] + list(args), env=env(srv),
                stdin=subprocess.PIPE)


def say(proc, text):
    proc.p.stdin.write(text.encode() + b"\n")
    proc.p.stdin.flush()


@test
def relayed_setup_not_held_by_retransmission():
    # the first check towards a relayed candidate is dropped by the TURN
    # server (no permission yet); the peer's check on that In-Progress
    # pair must trigger a new one now, not after RTO (500 ms)
    worst = 0
    for _ in range(3):
        pid = peer_id()
        lst = listen(pid)
        con = connect(pid, "--relay", "always")
        try:
            offer = ev(lst, "offer")
            le = ev(lst, "connected")
            ce = ev(con, "connected")
            assert le["path"] == "relay" and ce["path"] == "relay", (le, ce)
            worst = max(worst, le["ms"] - offer["ms"])
        finally:
            con.stop()
            lst.stop()
    print("listen offer->connected over the relay, worst of 3: %d ms" % worst)
    assert worst < 400, worst


@test
def ipv6_end_to_end_over_loopback():
    # the server on ::1: candidates, checks, relay and data all over IPv6
    for relay in ("never", "always"):
        pid = peer_id()
        lst = listen(pid, srv=server6())
        con = connect(pid, "--relay", relay, srv=server6())
        try:
            cands = []
            ce = ev(con, "connected")
            le = ev(lst, "connected")
            cands = [json.loads(x) for x in con.lines if '"event":"candidate"' in x]
            assert cands and all(c["address"].startswith("[") for c in cands), cands
            for e in (ce, le):
                assert e["local"].startswith("[") and e["remote"].startswith("["), e
            assert ce["path"] == ("relay" if relay == "always" else "direct"), ce
            say(con, "v6 hello")
            lst.wait_line(r"^v6 hello$", timeout=10)
            say(lst, "v6 back")
            con.wait_line(r"^v6 back$", timeout=10)
        finally:
            con.stop()
            lst.stop()


if __name__ == "__main__":
    run_tests()
