"""client/turn_client against coturn's turnserver and stund on loopback, through the
`natclient relay PEER` diagnostic: Allocate with long-term credentials,
data to and from a UDP peer both ways with Send/Data indications and with a
channel, refreshes that outlive a short lifetime and a stale nonce, and a
wrong password as a clear error."""
import json
import os
import select
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NATCLIENT, test, run_tests  # noqa: E402
from coturn import Coturn  # noqa: E402

servers = {}


def stund():
    """stund's TURN (SHA-256 and USERHASH offered, unlike coturn)."""
    if "stund" not in servers:
        from turnlib import turn_server
        srv, port, _ = turn_server(users=("alice:s3cret",))
        servers["stund"] = srv
        srv.server = "127.0.0.1:%d" % port
    return servers["stund"]


def stund_has_turn():
    return os.path.exists(os.path.join(harness.SRC, "server", "turn_methods.c"))


def coturn(kind="plain"):
    if kind not in servers:
        extra = []
        if kind == "short":
            # a nonce that goes stale after 2 s: refreshes meet 438s
            extra = ["--stale-nonce=2"]
        servers[kind] = Coturn(user="alice", password="s3cret", realm="natkit.test",
                               extra=extra)
    return servers[kind]


class Relay:
    def __init__(self, server, peer, args=(), password="s3cret", verbose=()):
        env = dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD=password)
        env.pop("NATCLIENT_SERVER", None)
        self.p = subprocess.Popen([NATCLIENT, "--server", server, "--json"] + list(verbose) +
                                  ["relay", "%s:%d" % peer] + list(args),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        harness._procs.append(self.p)
        self.buf = b""

    def event(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "no event from natclient relay; stderr: %s" % self.stderr()
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                assert chunk, "natclient relay exited (%s): %s" % (self.p.poll(), self.stderr())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, text):
        self.p.stdin.write(text.encode() + b"\n")
        self.p.stdin.flush()

    def stderr(self):
        if self.p.poll() is None:
            return "(running)"
        return self.p.stderr.read().decode(errors="replace")

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=10)
        return rc, self.p.stderr.read().decode(errors="replace")


def peer_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


def exchange(relay, peer, relayed, via, rounds=3):
    for i in range(rounds):
        msg = "to peer %d" % i
        relay.send(msg)
        ev = relay.event()
        assert ev == {"event": "sent", "via": via, "len": len(msg)}, ev
        data, src = peer.recvfrom(2000)
        assert data == msg.encode(), data
        # the peer sees the relayed address, not the client's
        assert src == relayed, (src, relayed)
        back = "from peer %d \"quoted\"" % i
        peer.sendto(back.encode(), src)
        ev = relay.event()
        assert ev["event"] == "data" and ev["via"] == via, ev
        assert ev["data"] == back and ev["len"] == len(back), ev
        assert ev["from"] == "127.0.0.1:%d" % peer.getsockname()[1], ev


def allocate(relay, kind="plain"):
    ev = relay.event()
    assert ev["event"] == "allocated", ev
    host, port = ev["relayed"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0, ev
    assert ev["mapped"].startswith("127.0.0.1:"), ev
    assert ev["lifetime"] > 0
    return (host, int(port)), ev


@test
def send_and_data_indications():
    peer = peer_socket()
    relay = Relay(coturn().server, peer.getsockname())
    relayed, _ = allocate(relay)
    ev = relay.event()
    assert ev["event"] == "permission" and ev["channel"] == 0, ev
    exchange(relay, peer, relayed, "indication")
    # permissions are per IP (RFC 8656 s9): a peer on another IP is dropped
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.3", 0))
    other.sendto(b"stranger", relayed)
    relay.send("ping")
    assert relay.event()["event"] == "sent"
    peer.recvfrom(2000)
    peer.sendto(b"after stranger", relayed)
    ev = relay.event()
    assert ev["data"] == "after stranger", ev
    rc, err = relay.close()
    assert rc == 0, err


@test
def channel_data_both_ways():
    peer = peer_socket()
    relay = Relay(coturn().server, peer.getsockname(), ["--channel"])
    relayed, _ = allocate(relay)
    ev = relay.event()
    assert ev["event"] == "channel" and 0x4000 <= ev["channel"] <= 0x4FFF, ev
    exchange(relay, peer, relayed, "channel")
    rc, err = relay.close()
    assert rc == 0, err


@test
def refreshes_go_on_through_stale_nonces():
    peer = peer_socket()
    relay = Relay(coturn("short").server, peer.getsockname(),
                  ["--channel", "--refresh", "1"], verbose=["-vv"])
    relayed, ev = allocate(relay)
    assert relay.event()["event"] == "channel"
    exchange(relay, peer, relayed, "channel", rounds=1)
    # 5 s of refreshing every second, with the nonce stale every 2 s
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        select.select([], [], [], deadline - time.monotonic())
    assert relay.p.poll() is None, relay.stderr()
    exchange(relay, peer, relayed, "channel", rounds=1)
    rc, err = relay.close()
    assert rc == 0, err
    assert err.count("-> Refresh request") >= 3, err
    assert err.count("-> ChannelBind request") >= 3, err
    assert "<- 438: retrying" in err, err
    assert "error" not in err.replace("<- 438", ""), err


@test
def stund_indications_and_channel():
    if not stund_has_turn():
        print("skip: stund has no TURN yet")
        return
    for args, via, ev_name in (([], "indication", "permission"), (["--channel"], "channel", "channel")):
        peer = peer_socket()
        relay = Relay(stund().server, peer.getsockname(), args, verbose=["-vv"])
        relayed, _ = allocate(relay)
        assert relay.event()["event"] == ev_name
        exchange(relay, peer, relayed, via)
        rc, err = relay.close()
        assert rc == 0, err
        # stund offers SHA-256 and username anonymity: the client used both
        assert "(SHA-256, USERHASH)" in err, err


@test
def stund_wrong_password():
    if not stund_has_turn():
        return
    relay = Relay(stund().server, ("127.0.0.1", 9), password="wrong")
    rc = relay.p.wait(timeout=30)
    err = relay.p.stderr.read().decode()
    assert rc == 1 and "rejected user \"alice\"" in err, (rc, err)


@test
def wrong_password_is_a_clear_error():
    peer = peer_socket()
    t0 = time.monotonic()
    relay = Relay(coturn().server, peer.getsockname(), password="wrong")
    rc = relay.p.wait(timeout=30)
    err = relay.p.stderr.read().decode()
    assert rc == 1, (rc, err)
    assert "rejected user \"alice\"" in err and "password" in err, err
    assert relay.p.stdout.read() == b""
    assert time.monotonic() - t0 < 10


@test
def unreachable_server_is_a_clear_error():
    port = harness.free_port()
    t0 = time.monotonic()
    relay = Relay("127.0.0.1:%d" % port, ("127.0.0.1", 9))
    rc = relay.p.wait(timeout=30)
    err = relay.p.stderr.read().decode()
    assert rc == 1 and "unreachable" in err, (rc, err)
    assert time.monotonic() - t0 < 3


@test
def no_credentials_says_where_to_put_them():
    env = dict(os.environ)
    for k in ("NATCLIENT_SERVER", "NATCLIENT_USER", "NATCLIENT_PASSWORD"):
        env.pop(k, None)
    r = subprocess.run([NATCLIENT, "--server", coturn().server, "relay", "127.0.0.1:9"],
                       capture_output=True, text=True, timeout=10, env=env,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    assert r.returncode == 1, r
    assert "NATCLIENT_PASSWORD" in r.stderr and "--config" in r.stderr, r.stderr


if __name__ == "__main__":
    run_tests()
