#!/usr/bin/env python3
"""natclient across the NAT lab when one site's network blocks UDP: site
b's router drops every UDP datagram it would forward (an nft rule added
here, as a corporate firewall would), so natclient on b cannot even reach
the server over UDP (shown first: it fails). With --server tcp:// (and
tls://) its server flow runs over one TCP (TLS) connection, it offers its
relayed candidate only, and the session with a listener at site a (on
plain UDP) runs through the relay: data both ways, in both roles. A
connection killed (reset) is replaced at once: connect offers again over a
new relay, listen registers again. When the firewall silently drops TCP
too, the loss shows after 30 s, and once TCP passes again natclient is
back. Needs root."""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lab as labmod  # noqa: E402
from lab import Lab  # noqa: E402
from harness import NATCLIENT, STUND, Proc, test, run_tests, tmpdir  # noqa: E402

if os.geteuid() != 0:
    print("test_natclient_tcp_lab: FAIL: needs root (network namespaces); run as root",
          file=sys.stderr)
    sys.exit(1)

PROBE = os.path.join(HERE, "stunprobe.py")
S1, S2 = labmod.TOPOLOGY["server"]["addrs"]
PORT, TLS_PORT = 3478, 5349
D = tmpdir()
CERT, KEY = os.path.join(D, "server.crt"), os.path.join(D, "server.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", KEY, "-out", CERT,
                "-days", "2", "-subj", "/CN=" + S1],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

# site b's router: every UDP datagram it would forward is dropped (both ways)
BLOCK_UDP = """table inet nkl_block_udp {
	chain block {
		type filter hook forward priority -10; policy accept;
		meta l4proto udp counter drop
	}
}
"""


def start_stund(lab):
    conf = os.path.join(D, "stund.conf")
    with open(conf, "w") as f:
        f.write("listening-ip = %s\nlistening-ip = %s\nlistening-port = %d\n"
                "alt-listening-port = %d\nrelay-ip = %s\ntls-listening-port = %d\n"
                "cert = %s\npkey = %s\nno-dtls\nmetrics-listen = off\nrealm = natkit.lab\n"
                "user = alice:s3cret\n" % (S1, S2, PORT, PORT + 1, S1, TLS_PORT, CERT, KEY))
    log = tempfile.NamedTemporaryFile(prefix="nkl-stund-", suffix=".log")
    lab.popen("server", [STUND, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    r = lab.run("server", ["python3", PROBE, "wait", "%s:%d" % (S1, PORT), "--timeout", "10"])
    assert json.loads(r.stdout.strip().splitlines()[-1])["ready"], "stund not ready"
    return log


def natclient(lab, node, server, *args):
    env = dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD="s3cret",
               NATCLIENT_SERVER=server)
    p = Proc(lab.cmd(node, [NATCLIENT, "--json"] + list(args)), env=env,
             stdin=subprocess.PIPE)
    lab._procs.append(p.p)
    return p


def wait_nth(proc, pattern, n, timeout):
    """The n-th output line matching pattern (1-based), as JSON."""
    import re
    rx = re.compile(pattern)
    end = time.monotonic() + timeout
    while True:
        hits = [l for l in proc.lines if rx.search(l)]
        if len(hits) >= n:
            return json.loads(hits[n - 1])
        assert time.monotonic() < end, "no %d x /%s/:\n%s" % (n, pattern,
                                                             "\n".join(proc.lines[-30:]))
        proc._pump(0.2)


def exchange(con, lst, tag):
    for p, other, text in ((con, lst, "%s from con" % tag), (lst, con, "%s from lst" % tag)):
        p.p.stdin.write(text.encode() + b"\n")
        p.p.stdin.flush()
        other.wait_line(r"^%s$" % text, timeout=10)


def comes_back(con, lst, n):
    """After server-lost: a new connection, a new relay, the n-th connected."""
    con.wait_line(r'"event":"reconnected"', timeout=30)
    ce = wait_nth(con, r'"event":"connected"', n, 20)
    le = wait_nth(lst, r'"event":"connected"', n, 10)
    assert ce["path"] == "relay" and le["path"] == "relay", (ce, le)
    exchange(con, lst, "again%d" % n)
    return ce


def lst_id(lst):
    return wait_nth(lst, r'"event":"registered"', 1, 1)["id"]


def udp(port=PORT):
    return "%s:%d" % (S1, port)


def session(lab, lst_node, lst_server, con_node, con_server, extra=(), keep=False, timeout=20):
    pid = "tcp-lab-%d" % (int(time.monotonic() * 1000) % 100000)
    lst = natclient(lab, lst_node, lst_server, *extra, "listen", pid)
    lst.wait_line(r'"event":"registered"', timeout=20)
    t0 = time.monotonic()
    con = natclient(lab, con_node, con_server, *extra, "connect", pid, "--timeout", str(timeout))
    pat = r'"event":"connected"'
    ce = json.loads(con.wait_line(pat, timeout=25).string)
    took = time.monotonic() - t0
    le = json.loads(lst.wait_line(pat, timeout=10).string)
    assert ce["path"] == "relay" and le["path"] == "relay", (ce, le)
    for p, other, text in ((con, lst, "from %s" % con_node), (lst, con, "from %s" % lst_node)):
        p.p.stdin.write(text.encode() + b"\n")
        p.p.stdin.flush()
        other.wait_line(r"^%s$" % text, timeout=10)
    print("  %s over %s -> %s over %s: %s (%s -> %s), connected in %d ms (%.2f s from start)"
          % (con_node, con_server.split("://")[0] if "://" in con_server else "udp", lst_node,
             lst_server.split("://")[0] if "://" in lst_server else "udp", ce["path"],
             ce["local_type"], ce["remote_type"], ce["ms"], took))
    if keep:
        return ce, le, con, lst
    for p in (con, lst):
        p.stop()
        bad = [l for l in p.lines if "Sanitizer" in l or "runtime error" in l]
        assert not bad, bad
    return ce, le, con


@test
def udp_blocked_site_connects_over_tcp_and_tls():
    with Lab(site_a="port-restricted", site_b="port-restricted") as lab:
        log = start_stund(lab)
        try:
            lab.nft("rb", BLOCK_UDP)
            # without the feature: b cannot reach the server at all
            t0 = time.monotonic()
            r = subprocess.run(lab.cmd("b", [NATCLIENT, "connect", "anyone"]),
                               env=dict(os.environ, NATCLIENT_USER="alice",
                                        NATCLIENT_PASSWORD="s3cret", NATCLIENT_SERVER=udp()),
                               capture_output=True, text=True, timeout=90,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == 1 and "no answer from the server" in r.stderr, r
            assert "tcp://" in r.stderr, r.stderr  # the hint: what to do here
            print("  b over udp: fails after %.1f s: %s" % (time.monotonic() - t0,
                                                            r.stderr.strip()))
            counters = lab.run("rb", ["nft", "list", "table", "inet", "nkl_block_udp"]).stdout
            assert "packets 0 " not in counters, counters  # the rule did drop b's UDP
            # over TCP: a's listener stays on UDP and sees b's relay
            ce, le, con, lst = session(lab, "a", udp(), "b", "tcp://" + udp(), keep=True)
            assert ce["local_type"] == "relay" and le["remote_type"] == "relay", (ce, le)
            cands = [json.loads(l)["type"] for l in con.lines if '"event":"candidate"' in l]
            assert cands == ["relay"], cands
            # the connection is killed (a reset, as a proxy or firewall may):
            # natclient connects again, allocates again, offers again
            lab.run("b", ["ss", "-K", "dst", S1, "dport", "=", ":%d" % PORT])
            t0 = time.monotonic()
            lost = json.loads(con.wait_line(r'"event":"server-lost"', timeout=10).string)
            ce2 = comes_back(con, lst, 2)
            assert ce2["local"] != ce["local"], (ce, ce2)  # a new allocation
            print("  b's TCP connection killed (%s): connected again over a new relay in "
                  "%.2f s" % (lost["reason"], time.monotonic() - t0))
            for p in (con, lst):
                p.stop()
            # the reverse roles: b listens over TCP, a connects over UDP
            ce, le, con, lst = session(lab, "b", "tcp://" + udp(), "a", udp(), keep=True)
            assert le["local_type"] == "relay" and ce["remote_type"] == "relay", (ce, le)
            # the listener's connection killed: it registers again over a new
            # one and a new connect from a gets through
            con.stop()
            lab.run("b", ["ss", "-K", "dst", S1, "dport", "=", ":%d" % PORT])
            lst.wait_line(r'"event":"server-lost"', timeout=10)
            wait_nth(lst, r'"event":"registered"', 2, 30)
            con = natclient(lab, "a", udp(), "connect", lst_id(lst), "--timeout", "20")
            ce = json.loads(con.wait_line(r'"event":"connected"', timeout=25).string)
            le = wait_nth(lst, r'"event":"connected"', 2, 10)
            assert ce["path"] == "relay" and le["local_type"] == "relay", (ce, le)
            exchange(con, lst, "relisten")
            print("  b's listening TCP connection killed: registered again, a connects")
            for p in (con, lst):
                p.stop()
            # TLS (the certificate checked against its CA and the name); then
            # the firewall drops TCP too, silently (no FIN, no RST): the data
            # left unacknowledged (consent checks, keepalives) times the
            # connection out (30 s) and the session is reported lost; once
            # TCP passes again, natclient is back
            _, _, con, lst = session(lab, "a", udp(), "b", "tls://%s:%d" % (S1, TLS_PORT),
                                     extra=("--ca", CERT), keep=True, timeout=60)
            lab.nft("rb", BLOCK_UDP.replace("udp", "tcp"))
            t0 = time.monotonic()
            m = con.wait_line(r'"event":"server-lost"', timeout=70)
            reason = json.loads(m.string)["reason"]
            print("  TCP under TLS dropped silently: server-lost after %.1f s: %s"
                  % (time.monotonic() - t0, reason))
            assert "timed out" in reason and "30 s" in reason, reason
            lab.run("rb", ["nft", "delete", "table", "inet", "nkl_block_tcp"])
            t0 = time.monotonic()
            comes_back(con, lst, 2)
            print("  TCP passes again: connected again in %.1f s" % (time.monotonic() - t0))
            for p in (con, lst):
                p.stop()
                bad = [l for l in p.lines if "Sanitizer" in l or "runtime error" in l]
                assert not bad, "\n".join(p.lines[-60:])
        finally:
            log.close()


if __name__ == "__main__":
    run_tests()
