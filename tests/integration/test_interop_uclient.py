"""Interop with a TURN client nobody here wrote: coturn's turnutils_uclient
against stund, with turnutils_peer (coturn's UDP echo peer) as the far end.
Over UDP and TCP, with channels (uclient's default) and with Send/Data
indications (-s), with long-term credentials and with a TURN REST secret,
and RFC 6062 TCP relaying between two uclients (-T).
Zero loss is required at a modest rate on loopback. uclient picks channel
numbers from RFC 5766's range, so the server runs with rfc5766-channels."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proc, free_port, run_tests, test  # noqa: E402
from turnlib import turn_server  # noqa: E402

UCLIENT = shutil.which("turnutils_uclient")
PEER = shutil.which("turnutils_peer")
SECRET = "rest-secret-for-uclient"
STATE = {}


def udp_bound(port, host_hex="0100007F", timeout=10.0):
    """Wait until something is bound to 127.0.0.1:port over UDP, by
    reading /proc/net/udp (turnutils_peer prints no readiness line)."""
    want = "%s:%04X" % (host_hex, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/udp") as f:
            if any(l.split()[1] == want for l in f.readlines()[1:]):
                return
        time.sleep(0.05)
    raise AssertionError("nothing bound to UDP port %d" % port)


def setup():
    if STATE:
        return STATE
    # uclient picks channel numbers in RFC 5766's 0x4000-0x7FFF
    srv, port, _ = turn_server(relay_ports=64, extra="static-auth-secret = %s\n"
                               "rfc5766-channels\n" % SECRET)
    pport = free_port()
    peer = Proc([PEER, "-L", "127.0.0.1", "-p", str(pport)])
    udp_bound(pport)
    STATE.update(srv=srv, port=port, pport=pport, peer=peer)
    return STATE


def uclient(*flags, n=50, clients=2):
    s = setup()
    args = [UCLIENT, "-p", str(s["port"]), "-e", "127.0.0.1", "-r", str(s["pport"]),
            "-n", str(n), "-m", str(clients), "-l", "200", "-z", "10"] + list(flags)
    args.append("127.0.0.1")
    r = subprocess.run(args, capture_output=True, text=True, timeout=90)
    out = r.stdout + r.stderr
    sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
    lost = re.search(r"Total lost packets (\d+)", out)
    assert sent and lost, "uclient did not finish: rc=%d\n%s" % (r.returncode, out[-3000:])
    tx, rx = map(int, sent[-1])
    assert tx > 0 and tx == rx and lost.group(1) == "0", \
        "sent %d received %d lost %s\n%s" % (tx, rx, lost.group(1), out[-3000:])
    return tx


LT = ["-u", "alice", "-w", "alice-pw"]
REST = ["-u", "uclient", "-W", SECRET]


@test
def udp_channels_long_term():
    assert uclient(*LT) >= 100


@test
def udp_send_indications_long_term():
    assert uclient("-s", *LT) >= 100


@test
def udp_channels_rest_secret():
    assert uclient(*REST) >= 100


@test
def udp_send_indications_rest_secret():
    assert uclient("-s", *REST) >= 100


@test
def tcp_channels_long_term():
    assert uclient("-t", *LT) >= 100


@test
def tcp_send_indications_long_term():
    assert uclient("-t", "-s", *LT) >= 100


@test
def tcp_channels_rest_secret():
    assert uclient("-t", *REST) >= 100


@test
def udp_no_rtcp_dual_clients():
    # -c: no RTCP allocations (so no EVEN-PORT R / RESERVATION-TOKEN pair)
    assert uclient("-c", *LT, clients=4) >= 200


@test
def tcp_relay_rfc6062_client_to_client():
    # -T: RFC 6062 TCP allocations, two uclients connecting through their
    # relayed addresses (Connect, ConnectionAttempt, ConnectionBind)
    assert uclient("-T", *LT, n=20) >= 40


if __name__ == "__main__":
    if not UCLIENT or not PEER:
        print("coturn's turnutils_uclient/turnutils_peer not installed (scripts/deps.sh)")
        sys.exit(1)
    run_tests()
