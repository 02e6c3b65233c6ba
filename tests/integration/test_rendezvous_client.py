"""client/rendezvous_client against a real stund, through the rdv_peer test
tool (tests/tools/rdv_peer.c): register and keep registered (RdvRefresh),
receive an Offer over the registration flow and answer it, connect and get
the answer; unknown ID, taken ID, wrong password, a refusal."""
import os
import re
import time
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, Proc, Stund, free_port, run_tests, test  # noqa: E402

RDV_PEER = os.path.join(BUILD, "rdv_peer")
USERS = {"user1": "pw-one", "user2": "pw-two"}
SRV = {}


def server():
    if "main" not in SRV:
        port = free_port()
        conf = "\n".join([
            "listening-ip = 127.0.0.1", "listening-port = %d" % port, "no-tls", "no-dtls",
            "workers = 2", "realm = natkit.test",
        ] + ["user = %s:%s" % kv for kv in USERS.items()]) + "\n"
        SRV["main"] = (Stund(conf), port)
    return SRV["main"]


def rdv_peer(user, *args, password=None):
    _, port = server()
    env = dict(os.environ, RDV_USER=user,
               RDV_PASSWORD=password if password is not None else USERS[user])
    return Proc([RDV_PEER, "127.0.0.1:%d" % port] + list(args), env=env)


def finish(p, timeout=15):
    p.p.wait(timeout=timeout)
    p.drain()
    return p.p.returncode


@test
def listen_connect_answer():
    a = rdv_peer("user1", "listen", "cli-a")
    try:
        m = a.wait_line(r"^registered cli-a mapped=(\S+) lifetime=(\d+)")
        assert m.group(1).startswith("127.0.0.1:") and m.group(2) == "120", m.group(0)
        a_addr = m.group(1)
        b = rdv_peer("user2", "connect", "cli-a")
        assert finish(b) == 0, b.lines
        ans = [l for l in b.lines if l.startswith("answer ")]
        assert ans, b.lines
        f = dict(kv.split("=", 1) for kv in ans[0].split()[1:])
        assert f["peer"] == a_addr, (f, a_addr)
        assert f["ufrag"] == "ansA" and f["pwd"] == "ansA0123456789abcdefghijk", f
        assert f["tie"] == "42" and f["cands"] == "1", f
        typ, caddr, prio, found = f["cand0"].split(",")
        assert typ == "host" and caddr == a_addr and prio == "2130706431" and found == "h1", f
        m = a.wait_line(r"^offer id=cli-a from=user2 peer=(\S+) cands=1 ufrag=offB tie=7$")
        assert m.group(1) == f["mapped"], (m.group(0), f)
        a.wait_line(r"^answered status=0$")
        # UDP retransmissions of the Offer reach the listener only once
        assert sum(l.startswith("offer ") for l in a.drain(0.3)) == 1, a.lines
        assert a.stop() == 0, a.lines  # SIGTERM: a clean exit (ASan: no leak)
    finally:
        a.stop()


@test
def refresh_keeps_the_registration():
    a = rdv_peer("user1", "listen", "cli-short", "10")
    try:
        a.wait_line(r"^registered cli-short .* lifetime=10$")
        # lifetime 10 s, refreshed every ~3.3 s: alive after 13 s; meanwhile
        # another user cannot take it
        deadline = time.monotonic() + 13
        while time.monotonic() < deadline:
            t = rdv_peer("user2", "listen", "cli-short")
            assert finish(t) == 1, t.lines
            assert any(l.startswith("register-error 409 ") for l in t.lines), t.lines
            a.drain(2.0)
        b = rdv_peer("user2", "connect", "cli-short")
        assert finish(b) == 0, b.lines
        a.wait_line(r"^answered status=0$")
    finally:
        a.stop()


@test
def errors():
    b = rdv_peer("user2", "connect", "cli-nobody")
    assert finish(b) == 2 and any(re.match(r"connect-error 404 Unknown Peer", l) for l in b.lines), b.lines
    w = rdv_peer("user1", "listen", "cli-pw", password="wrong")
    assert finish(w) == 1 and any(l.startswith("register-error 401") for l in w.lines), w.lines
    a = rdv_peer("user1", "listen", "cli-no", "60", "decline")
    try:
        a.wait_line(r"^registered cli-no ")
        b = rdv_peer("user2", "connect", "cli-no")
        assert finish(b) == 2, b.lines
        assert any(l.startswith("connect-error 480 Peer Declined") for l in b.lines), b.lines
        a.wait_line(r"^answered status=0$")
    finally:
        a.stop()


if __name__ == "__main__":
    run_tests()
