"""natclient listen ID / connect ID against a real stund on loopback
(rendezvous + TURN): data both ways through stdin/stdout over a direct path
and over a forced relay, --expose to a real UDP echo service with --local
on the other side (two local clients sharing one path), and the errors a person must understand: unknown ID,
wrong password, an ID taken by another user, a peer that died."""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NATCLIENT, Proc, json_events, udp_echo_service, test, run_tests  # noqa: E402
from turnlib import turn_server  # noqa: E402

SRV = {}


def server():
    if "s" not in SRV:
        srv, port, _ = turn_server(users=("alice:s3cret", "bob:b0bpw"), relay_ports=32)
        SRV["s"] = "127.0.0.1:%d" % port
    return SRV["s"]


def env(user="alice", pw="s3cret"):
    e = dict(os.environ, NATCLIENT_USER=user, NATCLIENT_PASSWORD=pw, NATCLIENT_SERVER=server())
    return e


def peer_id():
    return "t%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)




def connected_event(proc, timeout=15):
    m = proc.wait_line(r'"event":"connected"', timeout=timeout)
    return json.loads(m.string)


def listen(pid, *args, user="alice", pw="s3cret"):
    p = Proc([NATCLIENT, "--json", "listen", pid] + list(args), env=env(user, pw),
             stdin=subprocess.PIPE)
    p.wait_line(r'"event":"registered"', timeout=15)
    return p


def connect(pid, *args, user="alice", pw="s3cret"):
    return Proc([NATCLIENT, "--json", "connect", pid] + list(args), env=env(user, pw),
                stdin=subprocess.PIPE)


def say(proc, text):
    proc.p.stdin.write(text.encode() + b"\n")
    proc.p.stdin.flush()


def both_ways(lst, con, path):
    ce = connected_event(con)
    le = connected_event(lst)
    assert ce["path"] == path and le["path"] == path, (ce, le)
    assert ce["local"] == le["remote"] and ce["remote"] == le["local"], (ce, le)
    assert ce["ms"] >= 0
    say(con, "hello from connect")
    lst.wait_line(r"^hello from connect$", timeout=10)
    say(lst, "hello from listen")
    con.wait_line(r"^hello from listen$", timeout=10)
    return ce, le


@test
def direct_path_both_ways():
    pid = peer_id()
    lst = listen(pid)
    con = connect(pid)
    ce, le = both_ways(lst, con, "direct")
    assert ce["local_type"] != "relay" and le["local_type"] != "relay"
    ev = [e["event"] for e in json_events(con)]
    assert "candidate" in ev and "checking" in ev, ev
    assert [e for e in json_events(lst) if e["event"] == "offer"][0]["from"] == "alice"
    con.stop()
    lst.stop()


@test
def forced_relay_both_ways():
    pid = peer_id()
    lst = listen(pid)
    con = connect(pid, "--relay", "always")
    ce, le = both_ways(lst, con, "relay")
    assert ce["local_type"] == "relay" and le["remote_type"] == "relay", (ce, le)
    cands = [e for e in json_events(con) if e["event"] == "candidate"]
    assert [c["type"] for c in cands] == ["relay"], cands
    con.stop()
    lst.stop()




@test
def expose_and_local_forward_udp():
    port, stop, sources = udp_echo_service()
    pid = peer_id()
    lst = listen(pid, "--expose", "127.0.0.1:%d" % port)
    lport = harness.free_port()
    con = connect(pid, "--local", "127.0.0.1:%d" % lport)
    connected_event(con)
    connected_event(lst)
    # two NAT-oblivious clients, each from its own source port, share the
    # one path; the service sees them as two clients (two source ports)
    apps = []
    for _ in range(2):
        app = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        app.bind(("127.0.0.1", 0))
        app.settimeout(5)
        apps.append(app)
    for i in range(5):
        for k, app in enumerate(apps):
            msg = b"client %d datagram %d" % (k, i)
            app.sendto(msg, ("127.0.0.1", lport))
            data, src = app.recvfrom(65535)
            assert data == b"echo:" + msg, data
            assert src == ("127.0.0.1", lport), src
    assert len(sources) == 2, sources
    stop.append(1)
    con.stop()
    lst.stop()


@test
def unknown_id_is_a_clear_error():
    t0 = time.monotonic()
    r = subprocess.run([NATCLIENT, "connect", "nobody-" + peer_id()], env=env(),
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r
    assert "no peer is registered as" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 10


@test
def wrong_password_is_a_clear_error():
    r = subprocess.run([NATCLIENT, "connect", "x"], env=env(pw="wrong"),
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r
    assert "rejected" in r.stderr and "password" in r.stderr, r.stderr


@test
def taken_id_is_a_clear_error():
    pid = peer_id()
    lst = listen(pid)
    r = subprocess.run([NATCLIENT, "listen", pid], env=env("bob", "b0bpw"),
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r
    assert "taken by another user" in r.stderr, r.stderr
    lst.stop()


@test
def dead_peer_is_a_clear_error():
    pid = peer_id()
    lst = listen(pid)
    lst.p.kill()  # gone without unregistering: the server still has the ID
    lst.p.wait()
    t0 = time.monotonic()
    r = subprocess.run([NATCLIENT, "connect", pid], env=env(), capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r
    assert "did not answer" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 20


if __name__ == "__main__":
    run_tests()
