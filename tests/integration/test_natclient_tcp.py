#!/usr/bin/env python3
"""natclient with its server over TCP and TLS (--server tcp://, tls://; RFC
8656 s3.1, stream framing s12.5, RFC 8489 s6.2.2) against a real stund on
loopback: the stream side offers only its relayed candidate, the other
side stays on UDP, and data goes both ways through the relay, in both
roles. TLS checks the server's certificate against --ca FILE and the host
name: a wrong CA or a wrong name fails with a clear message, --insecure
skips the check. A server that goes away is reported as a lost session."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NATCLIENT, Proc, json_events, run_tests, test, tmpdir  # noqa: E402
from turnlib import turn_server  # noqa: E402

D = tmpdir()
SRV = {}


def make_cert(name, cn):
    cert, key = os.path.join(D, name + ".crt"), os.path.join(D, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


CERT, KEY = make_cert("server", "127.0.0.1")  # the name natclient is given
OTHER_CA, _ = make_cert("other", "127.0.0.1")  # same name, another key


def server():
    if "s" not in SRV:
        tls_port = harness.free_port()
        srv, port, _ = turn_server(users=("alice:s3cret",), relay_ports=32,
                                   tls=(CERT, KEY, tls_port))
        SRV.update(s=srv, port=port, tls=tls_port)
    return SRV


def env():
    return dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD="s3cret")


def url(kind):
    s = server()
    if kind == "udp":
        return "127.0.0.1:%d" % s["port"]
    if kind == "tcp":
        return "tcp://127.0.0.1:%d" % s["port"]
    return "tls://127.0.0.1:%d" % s["tls"]


def peer_id():
    return "tcp%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)




def where(kind, how, extra):
    """The server: --server (how "arg"), NATCLIENT_SERVER ("env") or a
    config file's server and ca keys ("config"). -> (args, env)"""
    e = env()
    if how == "env":
        e["NATCLIENT_SERVER"] = url(kind)
        return list(extra), e
    if how == "config":
        conf = os.path.join(D, "natclient-%s.conf" % kind)
        with open(conf, "w") as f:
            f.write("server = %s\n" % url(kind))
            if "--ca" in extra:
                f.write("ca = %s\n" % extra[extra.index("--ca") + 1])
        return ["--config", conf], e
    return ["--server", url(kind)] + list(extra), e


def listen(pid, kind, *extra, how="arg"):
    args, e = where(kind, how, extra)
    p = Proc([NATCLIENT, "--json"] + args + ["listen", pid], env=e, stdin=subprocess.PIPE)
    p.wait_line(r'"event":"registered"', timeout=15)
    return p


def connect(pid, kind, *extra, how="arg"):
    args, e = where(kind, how, extra)
    return Proc([NATCLIENT, "--json"] + args + ["connect", pid], env=e, stdin=subprocess.PIPE)


def say(proc, text):
    proc.p.stdin.write(text.encode() + b"\n")
    proc.p.stdin.flush()


def connected(proc):
    return json.loads(proc.wait_line(r'"event":"connected"', timeout=20).string)


def both_ways(lst, con):
    ce, le = connected(con), connected(lst)
    assert ce["path"] == "relay" and le["path"] == "relay", (ce, le)
    say(con, "hello from connect")
    lst.wait_line(r"^hello from connect$", timeout=10)
    say(lst, "hello from listen")
    con.wait_line(r"^hello from listen$", timeout=10)
    # a few more, larger than one TCP segment's worth of small frames
    for i in range(20):
        say(con, "c%02d " % i + "x" * 900)
    lst.wait_line(r"^c19 x+$", timeout=10)
    return ce, le


def stream_side_is_relay_only(proc, kind):
    ev = json_events(proc)
    tr = [e for e in ev if e["event"] == "transport"]
    assert tr and tr[0]["transport"] == kind and "relay only" in tr[0]["candidates"], ev
    cands = [e["type"] for e in ev if e["event"] == "candidate"]
    assert cands and set(cands) == {"relay"}, cands


def udp_side_sees_relay(proc):
    ce = connected(proc)
    assert ce["remote_type"] == "relay", ce


@test
def connect_over_tcp_to_udp_listener():
    pid = peer_id()
    lst = listen(pid, "udp")
    con = connect(pid, "tcp")
    ce, le = both_ways(lst, con)
    assert ce["local_type"] == "relay", ce
    stream_side_is_relay_only(con, "tcp")
    udp_side_sees_relay(lst)
    sanitizer_clean(con, lst)


@test
def listen_over_tcp_udp_connects():
    pid = peer_id()
    lst = listen(pid, "tcp", how="env")  # NATCLIENT_SERVER=tcp://...
    con = connect(pid, "udp")
    ce, le = both_ways(lst, con)
    assert le["local_type"] == "relay", le
    stream_side_is_relay_only(lst, "tcp")
    udp_side_sees_relay(con)
    sanitizer_clean(con, lst)


@test
def connect_over_tls_with_ca():
    pid = peer_id()
    lst = listen(pid, "udp")
    con = connect(pid, "tls", "--ca", CERT, how="config")  # server = tls://, ca = FILE
    both_ways(lst, con)
    stream_side_is_relay_only(con, "tls")
    sanitizer_clean(con, lst)


@test
def listen_over_tls_insecure():
    pid = peer_id()
    lst = listen(pid, "tls", "--insecure")
    con = connect(pid, "udp")
    both_ways(lst, con)
    stream_side_is_relay_only(lst, "tls")
    sanitizer_clean(con, lst)


def sanitizer_clean(*procs):
    """With the ASan build: nothing reported on stopping."""
    for p in procs:
        p.stop()
        bad = [l for l in p.lines if "Sanitizer" in l or "runtime error" in l]
        assert not bad, bad


@test
def listen_expose_over_tcp_serves_two_peers():
    # one TCP connection, one allocation: two UDP peers, each its own
    # session (a channel each on the shared relay) and its own echoes
    import socket
    import threading
    svc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    svc.bind(("127.0.0.1", 0))
    svc.settimeout(0.2)
    stop = []

    def echo():
        while not stop:
            try:
                data, addr = svc.recvfrom(65535)
            except socket.timeout:
                continue
            svc.sendto(b"echo:" + data, addr)
    threading.Thread(target=echo, daemon=True).start()
    pid = peer_id()
    lst = Proc([NATCLIENT, "--json", "--server", url("tcp"), "listen", pid, "--expose",
                "127.0.0.1:%d" % svc.getsockname()[1]], env=env())
    lst.wait_line(r'"event":"registered"', timeout=15)
    cons, apps = [], []
    for k in range(2):
        lport = harness.free_port()
        con = Proc([NATCLIENT, "--json", "--server", url("udp"), "connect", pid, "--local",
                    "127.0.0.1:%d" % lport], env=env())
        connected(con)
        app = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        app.bind(("127.0.0.1", 0))
        app.settimeout(5)
        cons.append(con)
        apps.append((app, lport))
    for i in range(5):
        for k, (app, lport) in enumerate(apps):
            msg = b"peer %d datagram %d" % (k, i)
            app.sendto(msg, ("127.0.0.1", lport))
            data, _ = app.recvfrom(65535)
            assert data == b"echo:" + msg, data
    for k in range(2):
        le = json.loads(lst.wait_line(r'"event":"connected".*"session":%d,' % k, timeout=5).string)
        assert le["local_type"] == "relay", le
    stop.append(1)
    sanitizer_clean(*cons, lst)


def run_fail(args, timeout=30):
    t0 = time.monotonic()
    r = subprocess.run([NATCLIENT] + args, env=env(), capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r.stderr, time.monotonic() - t0


@test
def tls_wrong_ca_is_a_clear_error():
    err, took = run_fail(["--server", url("tls"), "--ca", OTHER_CA, "connect", "nobody"])
    assert "certificate was rejected" in err and "--ca" in err, err
    assert "not correctly signed" in err, err
    assert took < 10, took


@test
def tls_wrong_name_is_a_clear_error():
    wrong = url("tls").replace("127.0.0.1", "localhost")
    err, _ = run_fail(["--server", wrong, "--ca", CERT, "connect", "nobody"])
    assert "certificate was rejected" in err and "localhost" in err, err


@test
def tls_without_ca_says_what_to_do():
    # no --ca: the system's CAs, which do not know our test certificate
    err, _ = run_fail(["--server", url("tls"), "connect", "nobody"])
    assert "certificate was rejected" in err or "--ca FILE" in err, err


@test
def tls_to_a_plain_tcp_port_fails_clearly():
    err, took = run_fail(["--server", "tls://127.0.0.1:%d" % server()["port"], "--insecure",
                          "connect", "nobody"])
    assert "TLS" in err, err
    assert took < 15, took


@test
def refused_tcp_is_a_clear_error():
    port = harness.free_port()
    err, took = run_fail(["--server", "tcp://127.0.0.1:%d" % port, "connect", "nobody"])
    assert "cannot connect to the server over TCP" in err and "refused" in err, err
    assert took < 5, took


@test
def unknown_scheme_is_a_usage_error():
    err, _ = run_fail(["--server", "sctp://127.0.0.1", "connect", "x"])
    assert "udp://, tcp:// or tls://" in err, err
    # over TCP the relay is the only path: --relay never cannot work
    r = subprocess.run([NATCLIENT, "--server", url("tcp"), "connect", "x", "--relay", "never"],
                       env=env(), capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "exclude each other" in r.stderr, r
    # discover measures UDP mappings: not over TCP
    err, _ = run_fail(["--server", url("tcp"), "discover"])
    assert "discover measures UDP" in err, err


@test
def relay_command_over_tcp_with_odd_lengths():
    # natclient relay: Send/Data and ChannelData on the stream; 3- and
    # 5-byte payloads make ChannelData that must be padded (RFC 8656 s12.5)
    import socket
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    for extra, via in (([], "indication"), (["--channel"], "channel")):
        p = Proc([NATCLIENT, "--json", "--server", url("tcp"), "relay",
                  "127.0.0.1:%d" % peer.getsockname()[1]] + extra, env=env(),
                 stdin=subprocess.PIPE)
        p.wait_line(r'"event":"(permission|channel)"', timeout=10)
        for text in (b"abc", b"hello"):
            p.p.stdin.write(text + b"\n")
            p.p.stdin.flush()
            data, addr = peer.recvfrom(2000)
            assert data.rstrip(b"\n") == text, data
            peer.sendto(text[::-1], addr)
            m = p.wait_line(r'"event":"data".*"data":"%s"' % text[::-1].decode(), timeout=5)
            assert '"via":"%s"' % via in m.string, m.string
        sanitizer_clean(p)
    peer.close()


@test
def server_gone_is_a_lost_session():
    # a server of its own: this test kills it
    srv, port, _ = turn_server(users=("alice:s3cret",), relay_ports=8)
    pid = peer_id()
    lst = Proc([NATCLIENT, "--json", "--server", "127.0.0.1:%d" % port, "listen", pid],
               env=env(), stdin=subprocess.PIPE)
    lst.wait_line(r'"event":"registered"', timeout=15)
    con = Proc([NATCLIENT, "--json", "--server", "tcp://127.0.0.1:%d" % port, "connect", pid,
                "--timeout", "3"], env=env(), stdin=subprocess.PIPE)
    connected(con)
    srv.stop()
    m = con.wait_line(r'"event":"server-lost"', timeout=10)
    t0 = time.monotonic()
    lost = json.loads(m.string)
    assert "closed" in lost["reason"] and lost["reconnect_s"] == 3, lost
    # new connections are tried (refused: the server is gone) for --timeout
    con.wait_line(r'"event":"reconnect-failed".*refused', timeout=5)
    con.wait_line(r'"event":"error".*is gone.*did not come back within 3 s', timeout=10)
    assert con.p.wait(timeout=10) == 1
    assert 2.5 < time.monotonic() - t0 < 6, time.monotonic() - t0
    sanitizer_clean(con, lst)


if __name__ == "__main__":
    run_tests()
