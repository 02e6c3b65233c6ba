"""bench/: the UDP load tool (udp_blast) and the natclient driver
(run_natclient.sh) count right. Correctness only: no figure of speed is
asserted here.

- udp_blast send against its own echo: every datagram comes back, counted
  once, at the paced rate's count;
- against an independent echo written here that drops every 10th datagram
  and answers every other one twice: exactly those losses and duplicates,
  and garbage is counted invalid, not echoed;
- probe: nothing echoed while nobody listens (exit 3), and once an echo
  starts later, the first echo is timed from the given start;
- run_natclient.sh runs briefly (one set-up run per path, 1 s of load per
  size) and prints its tables: both paths connected with the path asked
  for, set-up times measured, datagrams went through natclient both ways,
  direct and relayed.
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, SRC, Proc, free_port, run_tests, test  # noqa: E402

BLAST = os.path.join(BUILD, "udp_blast")


def figures(out, mode):
    """The last 'udp_blast mode=MODE k=v ...' line -> dict (numbers as floats)."""
    lines = [ln for ln in out.splitlines() if ln.startswith("udp_blast mode=%s " % mode)]
    assert lines, out
    kv = dict(f.split("=", 1) for f in lines[-1].split()[1:])
    out = {}
    for k, v in kv.items():
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


def blast(*args, timeout=30):
    r = subprocess.run([BLAST] + list(args), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def own_echo():
    port = free_port()
    p = Proc([BLAST, "echo", "-l", "127.0.0.1:%d" % port, "-d", "60"])
    p.wait_line(r"^udp_blast echo ready addr=127\.0\.0\.1:%d$" % port)
    return p, port


def odd_echo(stop):
    """Drops every 10th datagram, echoes every other one twice, and sends
    one datagram of garbage after the first."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.1)

    def run():
        n = 0
        while not stop:
            try:
                data, addr = s.recvfrom(65535)
            except socket.timeout:
                continue
            n += 1
            if n == 1:
                s.sendto(b"not a udp_blast datagram", addr)
            if n % 10 == 0:
                continue
            s.sendto(data, addr)
            if n % 2:
                s.sendto(data, addr)
    threading.Thread(target=run, daemon=True).start()
    return s.getsockname()[1]


@test
def send_counts_every_echo_once():
    p, port = own_echo()
    rc, out = blast("send", "-s", "127.0.0.1:%d" % port, "-l", "1000", "-R", "2000",
                    "-n", "1000", "-d", "10")
    f = figures(out, "send")
    assert rc == 0, out
    assert f["sent"] == 1000 and f["echoed"] == 1000 and f["lost"] == 0, out
    assert f["dup"] == 0 and f["invalid"] == 0, out
    # paced: 1000 at 2000/s is about half a second, not as fast as it can
    assert f["seconds"] > 0.4, out  # (no upper bound: a loaded CI machine may be slow)
    assert f["pps"] > 0 and f["mbps"] > 0 and f["payload"] == 1000, out
    p.stop()
    e = figures("\n".join(p.lines), "echo")
    assert e["echoed"] == 1000 and e["bytes"] == 1000 * 1000, p.lines


@test
def send_counts_losses_duplicates_and_garbage():
    stop = []
    port = odd_echo(stop)
    rc, out = blast("send", "-s", "127.0.0.1:%d" % port, "-l", "100", "-w", "8",
                    "-n", "200", "-d", "10", "-t", "300")
    stop.append(1)
    f = figures(out, "send")
    assert rc == 0, out
    assert f["sent"] == 200, out
    assert f["lost"] == 20 and f["echoed"] == 180, out  # every 10th dropped
    assert f["dup"] == 100, out  # odd ones twice (never a 10th)
    assert f["invalid"] == 1, out
    assert abs(f["loss_pct"] - 10.0) < 0.01, out


@test
def probe_times_the_first_echo():
    port = free_port()
    rc, out = blast("probe", "-s", "127.0.0.1:%d" % port, "-d", "0.3")
    f = figures(out, "probe")
    assert rc == 3 and f["echoed"] == 0 and f["probes"] > 10, out
    start = time.time()
    pr = Proc([BLAST, "probe", "-s", "127.0.0.1:%d" % port, "-T", "%.6f" % start, "-d", "10"])
    time.sleep(0.3)  # the delay being measured: the echo starts late on purpose
    ep = Proc([BLAST, "echo", "-l", "127.0.0.1:%d" % port, "-d", "30"])
    m = pr.wait_line(r"^udp_blast mode=probe .*echoed=1 first_echo_ms=([0-9.]+)$")
    assert 300 <= float(m.group(1)) < 5000, m.string
    assert pr.stop() == 0
    ep.stop()


def table_rows(out):
    return [ln.split() for ln in out.splitlines() if ln.strip()]


@test
def driver_measures_both_paths():
    r = subprocess.run([os.path.join(SRC, "bench", "run_natclient.sh"), "--build-dir", BUILD,
                        "-n", "1", "-d", "1"], capture_output=True, text=True, timeout=110)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    rows = table_rows(r.stdout)
    for path in ("direct", "relay"):
        # set-up: "PATH runs failed | med min max | med min max | med min max"
        setup = [x for x in rows if x[0] == path and len(x) == 15 and x[3] == "|"]
        assert setup and setup[0][2] == "0", out  # no failed run
        first_echo, connected = float(setup[0][4]), float(setup[0][8])
        assert 0 < connected <= first_echo < 10000, out
        # the probe's line and the connected event's path, per run
        assert ("  %s: udp_blast mode=probe" % path) in out, out
        assert ("connected: path=%s" % path) in out, out
        for size in ("100", "1000"):
            row = [x for x in rows if x[:2] == [path, size]]
            assert row and len(row[0]) == 10, out
            pps, mbps = float(row[0][2]), float(row[0][3])
            lost, sent = (int(v) for v in row[0][5].split("/"))
            assert pps > 0 and mbps > 0 and sent > 0 and lost < sent, out
            assert float(row[0][7]) > 0, out  # natclient connect used CPU
            raw = figures("\n".join(ln.strip() for ln in out.splitlines()
                                    if "label=%s.%s " % (path, size) in ln), "send")
            assert raw["echoed"] > 0 and raw["invalid"] == 0, out  # data came back intact
    relay = [x for x in rows if x[:2] == ["relay", "100"]][0]
    assert float(relay[9]) > 0, out  # relayed: stund did the relaying


if __name__ == "__main__":
    run_tests()
