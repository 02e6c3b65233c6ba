"""natclient listen ID --expose serves several peers at once: each
connecting peer (its own offer and ICE credentials) gets its own session
and its own socket towards the service, so a real UDP echo service sees
them as distinct clients and each peer gets only its own echoes; beyond
max-sessions (config key) the offer is declined with a clear error."""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NATCLIENT, Proc, udp_echo_service, test, run_tests  # noqa: E402
from turnlib import turn_server  # noqa: E402

SRV = {}


def server():
    if "s" not in SRV:
        srv, port, _ = turn_server(users=("alice:s3cret",), relay_ports=32)
        SRV["s"] = "127.0.0.1:%d" % port
    return SRV["s"]


def env():
    return dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD="s3cret",
                NATCLIENT_SERVER=server())




def app_socket():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    a.settimeout(5)
    return a


@test
def two_peers_at_once_third_declined():
    port, stop, sources = udp_echo_service()
    conf = os.path.join(harness.tmpdir(), "multi.conf")
    with open(conf, "w") as f:
        f.write("max-sessions = 2\n")
    pid = "m%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)
    lst = Proc([NATCLIENT, "--json", "--config", conf, "listen", pid, "--expose",
                "127.0.0.1:%d" % port], env=env())
    procs = [lst]
    try:
        lst.wait_line(r'"event":"registered"', timeout=15)
        cons, lports = [], []
        for _ in range(2):  # both connecting at the same time
            lp = harness.free_port()
            c = Proc([NATCLIENT, "--json", "connect", pid, "--local", "127.0.0.1:%d" % lp],
                     env=env())
            procs.append(c)
            cons.append(c)
            lports.append(lp)
        for c in cons:
            c.wait_line(r'"event":"connected"', timeout=20)
        # two sessions on the listen side, each with its own slot
        lst.wait_line(r'"event":"connected".*"session":0', timeout=20)
        lst.wait_line(r'"event":"connected".*"session":1', timeout=20)
        apps = [app_socket() for _ in cons]
        for i in range(5):
            for k, app in enumerate(apps):
                msg = b"peer %d datagram %d" % (k, i)
                app.sendto(msg, ("127.0.0.1", lports[k]))
            for k, app in enumerate(apps):
                data, src = app.recvfrom(65535)
                assert data == b"echo:peer %d datagram %d" % (k, i), (k, data)
                assert src == ("127.0.0.1", lports[k]), src
        assert len(sources) == 2, sources  # one upstream socket per session
        r = subprocess.run([NATCLIENT, "connect", pid, "--timeout", "20"], env=env(),
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 1, r
        assert "declined" in r.stderr and "max-sessions" in r.stderr, r.stderr
        lst.wait_line(r'"event":"busy"', timeout=5)
        # the two sessions still carry data after the refusal
        for k, app in enumerate(apps):
            app.sendto(b"again %d" % k, ("127.0.0.1", lports[k]))
            assert app.recvfrom(65535)[0] == b"echo:again %d" % k
        for a in apps:
            a.close()
    finally:
        stop.append(1)
        for p in procs:
            p.stop()


if __name__ == "__main__":
    run_tests()
