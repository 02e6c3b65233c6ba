"""Several relayed sessions through one TURN allocation: `natclient listen ID
--relay always --expose` has one allocation (one relayed address) and
every session runs through it, while each `connect --relay always` has its
own. stund hands out relayed addresses from 127.0.0.1 and 127.0.0.2 in
turn, so the listener's peers (the connectors' relayed addresses) sit on
two IPs, two of them on the same one (peers behind one NAT): one
permission per peer IP, one channel per peer (RFC 8656 s9, s12), each
session gets only its own echoes. A session that ends (its connect exits,
the listener sees consent expire) leaves the others and the allocation
alone, and a new session through the same relayed address works; the
listener keeps giving new peers channels long after its first sessions
are gone (the peers it no longer uses are released)."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NATCLIENT, Proc, Stund, udp_echo_service, test, run_tests  # noqa: E402
import stund_helpers as sh  # noqa: E402

SRV = {}


def server():
    """stund: TURN with relayed addresses on two loopback IPs, metrics."""
    if "s" not in SRV:
        port = harness.free_port(count=2)
        rmin = harness.free_port(count=48)
        mport = harness.free_port(kind=socket.SOCK_STREAM)
        conf = "\n".join([
            "listening-ip = 127.0.0.1", "listening-port = %d" % port,
            "alt-listening-port = %d" % (port + 1),
            "relay-ip = 127.0.0.1", "relay-ip = 127.0.0.2",
            "min-port = %d" % rmin, "max-port = %d" % (rmin + 47), "workers = 1",
            "realm = natkit.test", "no-tls", "no-dtls", "user = alice:s3cret",
            "allow-loopback-peers", "metrics-listen = 127.0.0.1:%d" % mport]) + "\n"
        SRV["proc"] = Stund(conf)
        SRV["s"] = "127.0.0.1:%d" % port
        SRV["metrics"] = mport
    return SRV["s"]


def env():
    return dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD="s3cret",
                NATCLIENT_SERVER=server())


def turn_metric(name):
    server()
    return sh.metric(SRV["metrics"], 'stund_turn_%s{worker="0"}' % name)


def wait_turn_metric(name, want, timeout=5.0):
    return sh.wait_metric(SRV["metrics"], 'stund_turn_%s{worker="0"}' % name,
                          lambda v: v == want, timeout)




def peer_id():
    return "r%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)


def listener(pid, echo_port, conf_lines=()):
    conf = os.path.join(harness.tmpdir(), "share-%s.conf" % pid)
    with open(conf, "w") as f:
        f.write("".join(l + "\n" for l in conf_lines))
    p = Proc([NATCLIENT, "--json", "-v", "--config", conf, "listen", pid, "--relay", "always",
              "--expose", "127.0.0.1:%d" % echo_port], env=env())
    p.wait_line(r'"event":"registered"', timeout=15)
    return p


class Peer:
    """natclient connect --relay always --local PORT, and a UDP client of it."""

    def __init__(self, pid, relay="always"):
        self.lport = harness.free_port()
        self.proc = Proc([NATCLIENT, "--json", "connect", pid, "--relay", relay,
                          "--local", "127.0.0.1:%d" % self.lport], env=env())
        self.app = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.app.bind(("127.0.0.1", 0))
        self.app.settimeout(5)

    def connected(self):
        return json.loads(self.proc.wait_line(r'"event":"connected"', timeout=20).string)

    def send(self, data):
        self.app.sendto(data, ("127.0.0.1", self.lport))

    def recv(self):
        data, src = self.app.recvfrom(65535)
        assert src == ("127.0.0.1", self.lport), src
        return data

    def close(self):
        self.app.close()
        return self.proc.stop()


def sanitizer_clean(*procs):
    """No ASan/UBSan report from the natclients (the ASan build's run)."""
    for p in procs:
        p.stop()
        bad = [l for l in p.lines if "Sanitizer" in l or "runtime error" in l]
        assert not bad, bad


def exchange(peers, rounds, tag):
    """Interleaved datagrams from every peer; each gets only its own echoes,
    in order."""
    for i in range(rounds):
        for k, p in enumerate(peers):
            p.send(b"%s peer %d datagram %d" % (tag, k, i))
        for k, p in enumerate(peers):
            data = p.recv()
            assert data == b"echo:%s peer %d datagram %d" % (tag, k, i), (k, i, data)


def held(lst, after):
    """The listener's last -v relay-held event after a session's `after`
    (connected / end): what its sessions hold on the allocation."""
    ev = [json.loads(l) for l in lst.lines
          if '"event":"relay-held"' in l and '"after":"%s"' % after in l]
    assert ev, "\n".join(lst.lines[-30:])
    return ev[-1]


def ip_of(addr):
    return addr.rsplit(":", 1)[0]


def listen_connected(lst, n_before):
    """The listener's connected events after the first n_before."""
    ev = [json.loads(l) for l in lst.lines if '"event":"connected"' in l]
    return ev[n_before:]


def wait_listen_connected(lst, count, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        ev = listen_connected(lst, 0)
        if len(ev) >= count:
            return ev
        left = deadline - time.monotonic()
        assert left > 0, "listener: %d connected events, wanted %d:\n%s" % (
            len(ev), count, "\n".join(lst.lines[-30:]))
        lst._pump(min(left, 0.5))


@test
def three_relayed_sessions_share_one_allocation():
    port, stop, sources = udp_echo_service()
    pid = peer_id()
    allocs0 = turn_metric("allocations")
    perms0, chans0 = turn_metric("permissions"), turn_metric("channels")
    deleted0 = turn_metric("allocations_deleted_total")
    lst = listener(pid, port, ["consent-timeout = 10"])
    peers = []
    try:
        peers = [Peer(pid) for _ in range(3)]  # all three at once
        for p in peers:
            ce = p.connected()
            assert ce["path"] == "relay" and ce["local_type"] == "relay", ce
        ev = wait_listen_connected(lst, 3)
        relayed = {e["local"] for e in ev}
        remotes = [e["remote"] for e in ev]
        # one relayed address (the listener's one allocation) for every session
        assert len(relayed) == 1 and all(e["local_type"] == "relay" for e in ev), ev
        assert sorted(e["session"] for e in ev) == [0, 1, 2], ev
        assert len(set(remotes)) == 3, remotes
        ips = {ip_of(r) for r in remotes}
        assert ips == {"127.0.0.1", "127.0.0.2"}, remotes  # two peers share an IP
        h = held(lst, "connected")  # the listener's side: one per IP, one per peer
        assert (h["permissions"], h["channels"]) == (2, 3), h
        exchange(peers, 20, b"a")
        assert len(sources) == 3, sources  # one socket towards the service per session
        # on the server: the listener's allocation + one per connect; the
        # listener's has a permission per peer IP (2) and a channel per peer
        # (3), each connect's one permission and one channel
        wait_turn_metric("allocations", allocs0 + 4)
        wait_turn_metric("permissions", perms0 + 2 + 3)
        wait_turn_metric("channels", chans0 + 3 + 3)

        # one session ends: its connect exits (and deallocates); the
        # listener's consent checks go unanswered and it drops the session
        gone = peers.pop(0)
        gone.close()
        wait_turn_metric("allocations", allocs0 + 3)
        m = lst.wait_line(r'"event":"disconnected".*"session":(\d+)', timeout=20)
        lst.wait_line(r'"event":"relay-held".*"after":"end"', timeout=5)
        # it gave back its channel and its permission unless the other
        # peer on its IP still uses that one
        left = [e["remote"] for e in ev if e["session"] != int(m.group(1))]
        h = held(lst, "end")
        assert (h["permissions"], h["channels"]) == (len({ip_of(r) for r in left}), 2), (h, left)
        exchange(peers, 10, b"b")  # the two others are unaffected
        assert turn_metric("allocations_deleted_total") == deleted0 + 1  # not the listener's

        # a new session through the same relayed address
        n = len(listen_connected(lst, 0))
        peers.append(Peer(pid))
        assert peers[-1].connected()["path"] == "relay"
        ev = wait_listen_connected(lst, n + 1)[n:]
        assert ev[0]["local"] in relayed, (ev, relayed)
        lst.wait_line(r'"event":"relay-held".*"session":%d,"after":"connected"'
                      % ev[0]["session"], timeout=5)
        h = held(lst, "connected")
        want = len({ip_of(r) for r in left + [ev[0]["remote"]]})
        assert (h["permissions"], h["channels"]) == (want, 3), h
        exchange(peers, 10, b"c")
        assert len(sources) == 4, sources
        assert turn_metric("allocations_deleted_total") == deleted0 + 1
        assert turn_metric("allocations_expired_total") == 0
        sanitizer_clean(lst, gone.proc, *[p.proc for p in peers])
    finally:
        stop.append(1)
        for p in peers:
            p.close()
        lst.stop()


@test
def ten_sessions_each_with_its_own_channel():
    """Ten peers one after the other, each offering a host and a relayed
    candidate (twenty peer addresses on two IPs): every one of them gets a
    channel of its own on the listener's allocation (there used to be room
    for 16 peer addresses in all, so the ninth went without), and then all
    ten exchange data at once."""
    port, stop, sources = udp_echo_service()
    pid = peer_id()
    chans0 = turn_metric("channels")
    lst = listener(pid, port)
    peers = []
    try:
        want = chans0
        for k in range(10):
            peers.append(Peer(pid, relay="auto"))
            assert peers[-1].connected()["path"] == "relay"
            ev = wait_listen_connected(lst, k + 1)[k]
            # a channel on the listener's allocation, one on the peer's too
            # when its relayed candidate is on the path
            want += 1 + (ev["remote_type"] == "relay")
            exchange(peers[-1:], 1, b"%d" % k)
            wait_turn_metric("channels", want)
        relayed = {e["local"] for e in listen_connected(lst, 0)}
        assert len(relayed) == 1, relayed
        exchange(peers, 5, b"all")
        assert len(sources) == 10, sources
        sanitizer_clean(lst, *[p.proc for p in peers])
    finally:
        stop.append(1)
        for p in peers:
            p.close()
        lst.stop()


if __name__ == "__main__":
    run_tests()
