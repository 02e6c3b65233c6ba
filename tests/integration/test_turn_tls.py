"""TURN over TLS and DTLS (RFC 8656 s3.1): an independent TLS client (Python's
ssl over turnlib) allocates, relays with Send/Data and with padded
ChannelData, and loses its allocation with its session; coturn's
turnutils_uclient -S relays over DTLS and over TLS (-t) with zero loss.
The certificate is made with `openssl req` at test time."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proc, free_port, run_tests, test, tmpdir  # noqa: E402
from turnlib import SUCCESS, TurnClient, turn_server, udp_peer  # noqa: E402

D = tmpdir()
CERT, KEY = os.path.join(D, "server.crt"), os.path.join(D, "server.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", KEY, "-out", CERT,
                "-days", "2", "-subj", "/CN=stund-turn-test"],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
SRV = {}


def server():
    if "s" not in SRV:
        tport = free_port()
        SRV["s"] = turn_server(relay_ports=40, tls=(CERT, KEY, tport),
                               extra="rfc5766-channels\n")
        SRV["tport"] = tport
    return SRV["s"]


def tls_client():
    server()
    return TurnClient(("127.0.0.1", SRV["tport"]), transport="tls", user="alice",
                      password="alice-pw")


@test
def relay_over_tls():
    c = tls_client()
    assert c.allocate().cls == SUCCESS
    peer = udp_peer()
    paddr = peer.getsockname()
    assert c.create_permission(paddr).cls == SUCCESS
    c.send_indication(paddr, b"over tls")
    data, src = peer.recvfrom(100)
    assert data == b"over tls" and src == c.relayed
    peer.sendto(b"back over tls", c.relayed)
    assert c.recv_data() == (paddr, b"back over tls")
    assert c.channel_bind(0x4321, paddr).cls == SUCCESS
    for n in (1, 3, 4, 301):
        c.send_channel(0x4321, b"c" * n)
        assert peer.recvfrom(1000)[0] == b"c" * n
        peer.sendto(b"p" * n, c.relayed)
        assert c.recv_data() == (0x4321, b"p" * n)
    assert c.refresh(0).cls == SUCCESS
    c.close()


@test
def allocation_ends_with_the_session():
    c = tls_client()
    assert c.allocate().cls == SUCCESS
    relayed = c.relayed
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(relayed)
        raise AssertionError("the relayed address is not bound")
    except OSError:
        pass
    c.close()
    # no Refresh: the session's end frees the relayed address (polled: the
    # server learns of the close asynchronously and says nothing)
    deadline = time.monotonic() + 5
    while True:
        try:
            s.bind(relayed)
            break
        except OSError:
            assert time.monotonic() < deadline, "relayed address still bound"
            time.sleep(0.02)
    s.close()


def uclient(*flags):
    server()
    pport = free_port()
    peer = Proc([shutil.which("turnutils_peer"), "-L", "127.0.0.1", "-p", str(pport)])
    want = "0100007F:%04X" % pport
    for _ in range(200):
        with open("/proc/net/udp") as f:
            if any(l.split()[1] == want for l in f.readlines()[1:]):
                break
        time.sleep(0.05)
    args = ["turnutils_uclient", "-S", "-p", str(SRV["tport"]), "-e", "127.0.0.1",
            "-r", str(pport), "-n", "30", "-m", "2", "-l", "200", "-z", "10",
            "-u", "alice", "-w", "alice-pw"] + list(flags) + ["127.0.0.1"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=90)
    out = r.stdout + r.stderr
    peer.stop()
    sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
    lost = re.search(r"Total lost packets (\d+)", out)
    assert sent and lost, "uclient did not finish: rc=%d\n%s" % (r.returncode, out[-3000:])
    tx, rx = map(int, sent[-1])
    assert tx >= 60 and tx == rx and lost.group(1) == "0", out[-3000:]


@test
def uclient_over_dtls():
    uclient()


@test
def uclient_over_tls():
    uclient("-t")


if __name__ == "__main__":
    run_tests()
