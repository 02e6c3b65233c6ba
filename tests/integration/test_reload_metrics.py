"""Operations: SIGHUP reload (a good config takes effect without dropping a
TCP client; a bad one is rejected with the reason and the old one keeps
running), live metrics counters, log-file without secrets, SIGTERM exit."""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Stund, free_port, stun_attr, stun_parse, stun_request, tmpdir,
                     udp_transact, test, run_tests)
from stund_helpers import conf, metric, scrape, tcp_read_msg, wait_closed, wait_metric

PORT = free_port(count=2)
MPORT = free_port(kind=socket.SOCK_STREAM)
BASE = conf(PORT, ("127.0.0.1",), MPORT)
srv = None


def server():
    global srv
    if srv is None:
        srv = Stund(BASE + "user = alice:sekrit-pw\n")
    return srv


def binding(s):
    req, tid = stun_request()
    data, _ = udp_transact(s, ("127.0.0.1", PORT), req)
    return stun_parse(data)


def rewrite(text):
    with open(srv.conf_path, "w") as f:
        f.write(text)


@test
def metrics_counters_move_live():
    server()
    name = 'stund_messages_total{method="Binding",class="request"}'
    before = metric(MPORT, name)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3):
        binding(s)
    wait_metric(MPORT, name, lambda v: v == before + 3)
    e0 = metric(MPORT, 'stund_error_responses_total{code="420"}')
    req, tid = stun_request(attrs=stun_attr(0x7FFE, b"x"))
    udp_transact(s, ("127.0.0.1", PORT), req)
    wait_metric(MPORT, 'stund_error_responses_total{code="420"}', lambda v: v == e0 + 1)
    # Active connections: a gauge that follows open TCP clients.
    wait_metric(MPORT, "stund_active_connections", lambda v: v == 0)
    c = socket.create_connection(("127.0.0.1", PORT), timeout=3)
    wait_metric(MPORT, "stund_active_connections", lambda v: v == 1)
    c.close()
    wait_metric(MPORT, "stund_active_connections", lambda v: v == 0)
    m = scrape(MPORT)
    assert m["stund_workers"] == 2
    assert 'stund_dropped_total{reason="rate_limit"}' in m


@test
def reload_good_config_keeps_clients():
    server()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert 0x8022 in binding(s)[2], "SOFTWARE before the reload"
    c = socket.create_connection(("127.0.0.1", PORT), timeout=3)
    req, tid = stun_request()
    c.sendall(req)
    assert 0x8022 in stun_parse(tcp_read_msg(c))[2]
    rewrite(BASE + "no-software-attribute\n")
    srv.signal(signal.SIGHUP)
    srv.wait_line(r"configuration reloaded")
    wait_metric(MPORT, 'stund_config_reloads_total{result="ok"}', lambda v: v == 1)
    assert 0x8022 not in binding(s)[2], "new config in effect"
    req, tid = stun_request()
    c.sendall(req)
    mtype, rtid, attrs = stun_parse(tcp_read_msg(c))
    assert rtid == tid and 0x8022 not in attrs, "the TCP client survived the reload"
    c.close()


@test
def reload_bad_config_rejected_old_keeps_running():
    server()
    rewrite(BASE + "\nworkers = many\n")
    srv.signal(signal.SIGHUP)
    m = srv.wait_line(r"reload rejected: (.*)")
    assert "%s:7: workers" % srv.conf_path in m.group(1), m.group(1)
    wait_metric(MPORT, 'stund_config_reloads_total{result="rejected"}', lambda v: v == 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert 0x8022 not in binding(s)[2], "still the last good config"


@test
def logs_never_contain_passwords():
    server()
    for line in srv.drain():
        assert "sekrit" not in line, line


@test
def log_file_and_sigterm():
    port = free_port(count=2)
    log = os.path.join(tmpdir(), "stund.log")
    p = Stund(conf(port, ("127.0.0.1",), None,
                   "log-file = %s\nlog-level = debug\nuser = bob:hunter2-pw\n" % log))
    # Log rotation: move the file away, SIGHUP reopens the configured path.
    os.rename(log, log + ".1")
    p.signal(signal.SIGHUP)
    p.wait_line(r"stund ready")  # (stderr copy of the ready line came earlier)
    deadline = time.monotonic() + 5
    while not os.path.exists(log) or "configuration reloaded" not in open(log).read():
        assert time.monotonic() < deadline, "log file not reopened on SIGHUP"
        time.sleep(0.05)
    c = socket.create_connection(("127.0.0.1", port), timeout=3)
    p.signal(signal.SIGTERM)
    assert wait_closed(c), "SIGTERM closes the connections"
    assert p.p.wait(timeout=10) == 0, "exit status 0"
    with open(log + ".1") as f:
        text = f.read()
    assert "stund ready" in text, text
    with open(log) as f:
        text += f.read()
    assert "draining" in text and "stund stopped" in text, text
    assert "hunter2" not in text


if __name__ == "__main__":
    run_tests()
