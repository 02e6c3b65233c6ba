#!/usr/bin/env python3
"""The NAT lab shows each NAT type's RFC 4787 behaviour to peers we did not
write: coturn's turnserver (RFC 5780 on two addresses) and
turnutils_natdiscovery, plus tests/netns/stunprobe.py (the harness's
independent STUN codec) for filtering, port allocation and hairpinning.
(natclient discover on the lab: test_natclient_discover_lab.py.) Also: the lab
leaves nothing behind, on close, on an exception, on SIGTERM, and
`lab.py cleanup` removes leftovers. Needs root.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lab as labmod  # noqa: E402
from lab import Lab, NAT_TYPES, seq_params  # noqa: E402
from harness import test, run_tests  # noqa: E402

if os.geteuid() != 0:
    print("test_lab_nat_types: FAIL: needs root (network namespaces, nftables); run as root",
          file=sys.stderr)
    sys.exit(1)

PROBE = os.path.join(HERE, "stunprobe.py")
S1, S2 = labmod.TOPOLOGY["server"]["addrs"]
PORT, ALT = 3478, 3479


class Coturn:
    """coturn's turnserver in the lab's server namespace, RFC 5780 on both
    addresses (primary port 3478, alternate 3479). Debian's
    /etc/turnserver.conf says no-rfc5780, so -n (no config file)."""

    def __init__(self, lab):
        self.log = tempfile.NamedTemporaryFile(prefix="nkl-turnserver-", suffix=".log")
        self.pidfile = self.log.name + ".pid"
        self.p = lab.popen("server", [
            "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--no-auth",
            "-L", S1, "-L", S2, "-p", str(PORT), "--alt-listening-port", str(ALT),
            "--log-file", "stdout", "--simple-log", "--pidfile", self.pidfile],
            stdout=self.log, stderr=subprocess.STDOUT)
        # ready when all four address:port pairs answer a Binding (bounded)
        r = probe(lab, "server", "wait", ["%s:%d" % (a, p) for a in (S1, S2) for p in (PORT, ALT)],
                  "--timeout", "10")
        if not r["ready"]:
            raise AssertionError("turnserver not answering on %s; log:\n%s" % (r["missing"], self.text()))

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()[-3000:]

    def close(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(timeout=5)
        self.log.close()
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)


def probe(lab, node, cmd, addrs, *extra):
    r = lab.run(node, ["python3", PROBE, cmd] + list(addrs) + list(extra), timeout=60)
    return json.loads(r.stdout.strip().splitlines()[-1])


def natdiscovery(lab, node, flags):
    r = lab.run(node, ["turnutils_natdiscovery"] + flags + [S1], timeout=60, check=False)
    return r.stdout


WORDS = {"Endpoint Independent": "endpoint-independent", "Address Dependent": "address-dependent",
         "Address and Port Dependent": "address-and-port-dependent"}


def discovered(lab, node):
    """turnutils_natdiscovery -m -f -> (mapping, filtering, [reflexive addrs])."""
    out = natdiscovery(lab, node, ["-m", "-f"])
    m = re.search(r"NAT with (.+?) Mapping!", out)
    f = re.search(r"NAT with (.+?) Filtering!", out)
    refl = re.findall(r"UDP reflexive addr: ([\d.]+):(\d+)", out)
    if not (m and f):
        raise AssertionError("natdiscovery gave no verdict:\n" + out)
    return WORDS[m.group(1)], WORDS[f.group(1)], [(a, int(p)) for a, p in refl]


def check_site(lab, site):
    """natdiscovery's verdict and the allocation pattern match the site's type."""
    nat = lab.nat[site]
    want_map, want_filt, alloc = NAT_TYPES[nat]
    mapping, filtering, refl = discovered(lab, site)
    if nat == "none":
        # no NAT: natdiscovery sees the host's own address (and says EIM/EIF)
        assert all(a == lab.host_ip[site] for a, _ in refl), refl
        assert (mapping, filtering) == ("endpoint-independent", "endpoint-independent")
    else:
        assert mapping == want_map.rstrip("*"), (nat, mapping)
        assert filtering == want_filt, (nat, filtering)
        assert all(a == lab.router_ip[site] for a, _ in refl), refl
    check_filtering(lab, site, filtering)
    # allocation: one socket to the server's four address:port pairs
    dests = ["%s:%d" % d for d in ((S1, PORT), (S2, PORT), (S2, ALT), (S1, ALT))]
    r = probe(lab, site, "mapping", dests)
    ports = [m[1] for m in r["mapped"]]
    assert None not in r["mapped"], r
    deltas = [b - a for a, b in zip(ports, ports[1:])]
    print("  site %s %-22s natdiscovery: %s mapping, %s filtering; local port %d -> %s"
          % (site, nat, mapping, filtering, r["local"], ports))
    if alloc in ("none", "preserving"):
        assert ports == [r["local"]] * 4, r
    elif alloc == "sequential":
        base, delta, count = seq_params(site)
        assert deltas == [delta] * 3, ports
        assert all(base <= p < base + count * delta for p in ports), ports
        r2 = probe(lab, site, "mapping", dests[:1])  # a new socket: the next port in turn
        assert r2["mapped"][0][1] == ports[-1] + delta, (ports, r2)
    elif alloc == "random":
        assert len(set(ports)) == 4 and r["local"] not in ports, r
        assert len(set(deltas)) > 1, ports  # not a fixed stride
    check_tcp(lab, site, dests)
    return mapping, filtering, ports


def check_tcp(lab, site, dests):
    """TCP gets the same mapping and allocation as UDP (one local port,
    four connections to the server's four address:port pairs)."""
    nat = lab.nat[site]
    alloc = NAT_TYPES[nat][2]
    r = probe(lab, site, "tcp-mapping", dests)
    assert None not in r["mapped"], r
    public = lab.host_ip[site] if nat == "none" else lab.router_ip[site]
    assert all(m[0] == public for m in r["mapped"]), r
    ports = [m[1] for m in r["mapped"]]
    deltas = [b - a for a, b in zip(ports, ports[1:])]
    if alloc in ("none", "preserving"):
        assert ports == [r["local"]] * 4, r
    elif alloc == "sequential":
        assert deltas == [seq_params(site)[1]] * 3, ports
    else:
        assert len(set(ports)) == 4 and r["local"] not in ports, r
    print("  site %s %-22s TCP: local port %d -> %s" % (site, nat, r["local"], ports))


FILTER_SEES = {"endpoint-independent": {"same-address", "other-address"},
               "address-dependent": {"same-address"}, "address-and-port-dependent": set()}


def check_filtering(lab, site, filtering):
    """Our own traffic, not coturn's: after the host's socket has sent to
    S1:3478, datagrams come from S1 at another port and from S2. Which get
    through must match the filtering behaviour natdiscovery reported."""
    p = lab.popen(site, ["python3", PROBE, "listen", "%s:%d" % (S1, PORT), "--wait", "30"],
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        mapped = json.loads(p.stdout.readline())["mapped"]
        assert mapped, "no mapping"
        for tag, src in (("same-address", "%s:0" % S1), ("other-address", "%s:0" % S2)):
            probe(lab, "server", "send", ["%s:%d" % tuple(mapped)], "--bind", src, "--data", tag)
        p.stdin.write("done\n")
        p.stdin.flush()
        got = json.loads(p.stdout.readline())["received"]
    finally:
        p.wait(timeout=10)
    seen = {d for d, _ in got}
    want = FILTER_SEES[filtering] if lab.nat[site] != "none" else {"same-address", "other-address"}
    assert seen == want, (site, lab.nat[site], filtering, got)


def check_hairpin(lab, site, want):
    r = probe(lab, site, "hairpin", ["%s:%d" % (S1, PORT)])
    assert r["received"] == want, (site, lab.nat[site], r)
    if want:  # RFC 4787 REQ-9: the source seen is the sender's external address
        assert r["from"][0] == lab.router_ip[site], r
    out = natdiscovery(lab, site, ["-H"])
    ok = "successful hairpinning" in out
    assert ok == want, "natdiscovery -H on %s (hairpin %s):\n%s" % (site, want, out)
    print("  site %s %-22s hairpinning %s (probe and natdiscovery -H)"
          % (site, lab.nat[site], "works" if want else "blocked"))


def both(fn, *args_list):
    """Run fn(*args) for each args in parallel threads (the sites are
    independent; most of the time goes to discovery timeouts); re-raise."""
    errors = []

    def wrap(args):
        try:
            fn(*args)
        except BaseException as e:  # noqa: B036 -- re-raised below
            errors.append(e)
    ts = [threading.Thread(target=wrap, args=(a,)) for a in args_list]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def lab_with_coturn(fn, **kw):
    with Lab(**kw) as lab:
        srv = Coturn(lab)
        try:
            fn(lab)
        finally:
            srv.close()


@test
def cone_types_and_hairpin_on():
    def body(lab):
        both(check_site, (lab, "a"), (lab, "b"))
        check_hairpin(lab, "b", True)
    lab_with_coturn(body, site_a="none", site_b="full-cone", hairpin=True)


@test
def restricted_cones_hairpin_per_site():
    def body(lab):
        both(check_site, (lab, "a"), (lab, "b"))
        both(check_hairpin, (lab, "a", False), (lab, "b", True))
    lab_with_coturn(body, site_a="address-restricted", site_b="port-restricted",
                    hairpin={"a": False, "b": True})


@test
def symmetric_types_and_hairpin_on():
    def body(lab):
        both(check_site, (lab, "a"), (lab, "b"))
        both(check_hairpin, (lab, "a", True), (lab, "b", True))
    lab_with_coturn(body, site_a="symmetric-random", site_b="symmetric-sequential", hairpin=True)


def collision(lab):
    """Hosts a and b behind one NAT, both on local port 40000: a maps first
    towards S1 (and keeps 40000). b's flow to S2 could keep 40000 too (that
    5-tuple is free), its flow to S1 could not. -> b's mappings [S2, S1]."""
    a = probe(lab, "a", "mapping", ["%s:%d" % (S1, PORT)], "--port", "40000")
    b = probe(lab, "b", "mapping", ["%s:%d" % (S2, PORT), "%s:%d" % (S1, PORT)], "--port", "40000")
    assert a["mapped"][0][1] == 40000, a
    return [tuple(m) for m in b["mapped"]]


@test
def masquerade_hairpin_off_and_not_truly_endpoint_independent():
    def body(lab):
        both(check_site, (lab, "a"))   # alone, masquerade looks EIM (port preservation)
        check_hairpin(lab, "a", False)
        b = collision(lab)
        assert b[0][1] == 40000 and b[1][1] != 40000, b
        print("  masquerade, port collision: b's mappings %s: address-dependent" % b)
    lab_with_coturn(body, site_a="masquerade", shared=True)


@test
def port_restricted_stays_endpoint_independent_on_collision():
    def body(lab):
        b = collision(lab)
        assert b[0] == b[1] and b[0][1] != 40000, b
        print("  port-restricted, port collision: b's mappings %s: endpoint-independent" % b)
        # both hosts behind the one NAT: a reaches b at b's public mapping
        p = lab.popen("b", ["python3", PROBE, "listen", "%s:%d" % (S1, PORT), "--wait", "30"],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            mb = json.loads(p.stdout.readline())["mapped"]
            probe(lab, "a", "send", ["%s:%d" % tuple(mb)], "--data", "from-a")
            p.stdin.write("done\n")
            p.stdin.flush()
            got = json.loads(p.stdout.readline())["received"]
        finally:
            p.wait(timeout=10)
        assert [d for d, _ in got] == ["from-a"], got
        assert got[0][1][0] == lab.router_ip["a"], got  # a's external address, not 10.1.0.10
        print("  shared NAT, hairpin: a -> b's mapping %s arrives from %s" % (mb, got[0][1]))
    lab_with_coturn(body, site_a="port-restricted", shared=True, hairpin=True)


@test
def low_ttl_opens_the_local_nat_only():
    """host -> own NAT -> inet -> far NAT: TTL 2 makes a mapping on the local
    NAT and dies at inet (ICMP time exceeded), never reaching the far NAT --
    what TTL-limited punching (Wei et al.) relies on; TTL 3 does reach it."""
    with Lab(site_a="port-restricted", site_b="port-restricted") as lab:
        code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, %d)\n"
                "s.sendto(b'punch', (%r, %d))\n")
        far = lab.router_ip["b"]

        def far_rx():  # packets the far NAT's wan received (it drops them: no mapping)
            return int(lab.run("rb", ["cat", "/sys/class/net/wan/statistics/rx_packets"]).stdout)
        before = far_rx()
        lab.run("a", ["python3", "-c", code % (2, far, 4000)])
        assert any("dst=%s" % far in l and "dport=4000" in l for l in lab.conntrack("a"))
        assert far_rx() == before, "a TTL-2 datagram reached the far NAT"
        lab.run("a", ["python3", "-c", code % (3, far, 4001)])
        assert far_rx() > before, "a TTL-3 datagram did not reach the far NAT"


# --- cleanup --------------------------------------------------------------

def ours(run_id):
    return labmod.list_namespaces("%s%s-" % (labmod.PREFIX, run_id))


def root_veths():
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True,
                         text=True).stdout
    return {l.split(":")[1].strip().split("@")[0] for l in out.splitlines()}


def assert_gone(run_id, veths_before):
    assert ours(run_id) == [], ours(run_id)
    new = root_veths() - veths_before
    assert not [v for v in new if v.startswith(("nkl", "wan", "lan", "srv", "eth0"))], new


@test
def nothing_left_after_close_or_exception():
    before = root_veths()
    lab = Lab(site_a="full-cone", site_b="symmetric-random")
    with lab:
        assert len(ours(lab.run_id)) == 6, ours(lab.run_id)
        sleeper = lab.popen("a", ["sleep", "60"])
        n = lab.run("inet", ["ip", "-o", "link", "show", "type", "veth"]).stdout.count("\n")
        assert n == 3, n
    assert sleeper.poll() is not None
    assert_gone(lab.run_id, before)
    lab2 = Lab(site_a="port-restricted")
    try:
        with lab2:
            raise KeyError("boom")
    except KeyError:
        pass
    assert_gone(lab2.run_id, before)


@test
def nothing_left_after_sigterm():
    before = root_veths()
    rid = "t" + os.urandom(2).hex()
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from lab import Lab\n"
            "lab = Lab(run_id=%r).up()\n"
            "lab.popen('server', ['sleep', '60'])\n"
            "print('ready', flush=True)\n"
            "import time; time.sleep(60)\n") % (HERE, rid)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        assert len(ours(rid)) == 6
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc != 0
    assert_gone(rid, before)


@test
def a_lab_whose_owner_was_killed_is_removed_by_the_next():
    rid = "t" + os.urandom(2).hex()
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from lab import Lab\n"
            "lab = Lab(run_id=%r).up()\n"
            "lab.popen('a', ['sleep', '60'])\n"
            "print('ready', flush=True)\n"
            "import time; time.sleep(60)\n") % (HERE, rid)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
    finally:
        p.kill()  # SIGKILL: no handler, no atexit -- as a ctest timeout does
        p.wait()
    assert len(ours(rid)) == 6
    with Lab() as other:  # a new lab removes the stale one, and only it
        assert ours(rid) == [], ours(rid)
        assert len(ours(other.run_id)) == 6
        assert not labmod.cleanup_stale()  # a live lab is not stale
        assert len(ours(other.run_id)) == 6


@test
def cleanup_command_removes_leftovers():
    rid = "t" + os.urandom(2).hex()
    names = ["%s%s-%s" % (labmod.PREFIX, rid, n) for n in ("x", "y")]
    for n in names:
        subprocess.run(["ip", "netns", "add", n], check=True)
    subprocess.run(["ip", "link", "add", "v0", "netns", names[0], "type", "veth",
                    "peer", "name", "v1", "netns", names[1]], check=True)
    sl = subprocess.Popen(["ip", "netns", "exec", names[0], "sleep", "60"])
    r = subprocess.run([sys.executable, os.path.join(HERE, "lab.py"), "cleanup", "--run-id", rid],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert sl.wait(timeout=5) != 0
    assert ours(rid) == [], ours(rid)


if __name__ == "__main__":
    t0 = time.monotonic()
    run_tests()
    print("netns lab tests: %.1fs" % (time.monotonic() - t0))
