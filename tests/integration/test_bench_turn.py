"""bench/: the TURN load generator (turn_load) and its driver (run_turn.sh)
count right. Correctness only: no figure of speed is asserted here.

- relay, ChannelData and Send/Data, against stund at a low rate: every
  packet reaches the peer and comes back, nothing lost or invalid, and
  stund's own metrics count the same packets each way;
- allocs: allocations made with long-term credentials and all deleted
  (stund's allocation gauge back to 0);
- hold: the steps are reported with the counts asked for, then deleted;
- against coturn (a server nobody here wrote): relay and allocs validate,
  so turn_load follows the RFC and not our server;
- a wrong password makes turn_load fail with the 401 it got;
- run_turn.sh runs briefly and prints its table.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, SRC, Proc, Stund, free_port, run_tests, test, tmpdir  # noqa: E402
from stund_helpers import metric, scrape, wait_metric  # noqa: E402

LOAD = os.path.join(BUILD, "turn_load")
SRV = {}


def figures(out, prefix="turn_load mode="):
    """The last 'turn_load k=v ...' line -> dict (numbers as floats)."""
    line = [ln for ln in out.splitlines() if ln.startswith(prefix)][-1]
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    return {k: (float(v) if v.replace(".", "", 1).isdigit() else v) for k, v in kv.items()}


def load(port, *args, user="u:p", timeout=60):
    r = subprocess.run([LOAD, "-s", "127.0.0.1:%d" % port, "-u", user] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def stund():
    """One stund for the file: one worker, realm r, user u:p, metrics."""
    if "stund" not in SRV:
        port, mport, rmin = free_port(count=2), free_port(), free_port(count=300)
        conf = "\n".join([
            "listening-ip = 127.0.0.1", "listening-port = %d" % port,
            "alt-listening-port = %d" % (port + 1), "workers = 1", "no-tls", "no-dtls",
            "relay-ip = 127.0.0.1", "min-port = %d" % rmin, "max-port = %d" % (rmin + 299),
            "realm = r", "user = u:p", "allow-loopback-peers", "total-quota = 1000", "user-quota = 1000",
            "rate-limit = 0", "metrics-listen = 127.0.0.1:%d" % mport]) + "\n"
        SRV["stund"] = (Stund(conf), port, mport)
    return SRV["stund"]


def coturn():
    if "coturn" not in SRV:
        if not shutil.which("turnserver"):
            raise AssertionError("turnserver missing: scripts/deps.sh installs coturn")
        port, rmin, d = free_port(count=2), free_port(count=300), tmpdir()
        p = Proc(["turnserver", "-n", "--listening-ip", "127.0.0.1", "-p", str(port),
                  "--relay-ip", "127.0.0.1", "--min-port", str(rmin), "--max-port", str(rmin + 299),
                  "--lt-cred-mech", "--user", "u:p", "--realm", "r", "--allow-loopback-peers",
                  "--no-tls", "--no-dtls", "--no-cli", "--relay-threads", "1",
                  "--log-file", os.path.join(d, "t.log"), "--simple-log", "--no-stdout-log",
                  "--pidfile", os.path.join(d, "t.pid"), "--userdb", os.path.join(d, "t.db")])
        r = subprocess.run([os.path.join(BUILD, "binding_load"), "-s", "127.0.0.1:%d" % port,
                            "-p", "10"], capture_output=True, timeout=20)
        assert r.returncode == 0, "coturn did not answer a Binding:\n" + "\n".join(p.drain(0.1))
        SRV["coturn"] = (p, port)
    return SRV["coturn"]


def relayed(mport, direction):
    return metric(mport, 'stund_turn_relayed_packets_total{worker="0",direction="%s"}' % direction)


def check_no_loss(f, clients, out):
    assert f["ready"] == clients and f["failed"] == 0, out
    assert f["sent"] > 0, out
    assert f["peer_rx"] == f["sent"] and f["peer_tx"] == f["sent"], out
    assert f["client_rx"] == f["sent"], out
    assert f["lost_out"] == 0 and f["lost_in"] == 0, out
    assert f["invalid"] == 0 and f["peer_invalid"] == 0 and f["late"] == 0, out
    assert f["relayed"] == 2 * f["sent"], out


def relay_no_loss(kind, size):
    _, port, mport = stund()
    to_peer, to_client = relayed(mport, "to_peer"), relayed(mport, "to_client")
    rc, out = load(port, "-m", "relay", "-k", kind, "-l", str(size), "-n", "10",
                   "-R", "1000", "-d", "2")
    f = figures(out)
    assert rc == 0, out
    check_no_loss(f, 10, out)
    assert f["kind"] == kind and f["payload"] == size, out
    # stund counted the same packets each way (the generator's counts are right)
    wait_metric(mport, 'stund_turn_relayed_packets_total{worker="0",direction="to_peer"}',
                lambda v: v == to_peer + f["sent"])
    assert relayed(mport, "to_client") == to_client + f["sent"], scrape(mport)
    # and the allocations were deleted at the end
    wait_metric(mport, 'stund_turn_allocations{worker="0"}', lambda v: v == 0)


@test
def relay_channeldata_no_loss_at_low_rate():
    relay_no_loss("chan", 100)


@test
def relay_send_data_no_loss_at_low_rate():
    relay_no_loss("send", 1000)


@test
def allocs_made_with_auth_and_deleted():
    _, port, mport = stund()
    created = metric(mport, 'stund_turn_allocations_created_total{worker="0"}')
    rc, out = load(port, "-m", "allocs", "-N", "300", "-n", "16", "-d", "20")
    f = figures(out)
    assert rc == 0, out
    assert f["allocs"] == 300 and f["deleted"] == 300 and f["failed"] == 0, out
    assert f["errors"] == 0 and f["stale"] == 0, out
    assert metric(mport, 'stund_turn_allocations_created_total{worker="0"}') == created + 300
    wait_metric(mport, 'stund_turn_allocations{worker="0"}', lambda v: v == 0)


@test
def hold_reports_each_step_then_deletes():
    _, port, mport = stund()
    p = Proc([LOAD, "-s", "127.0.0.1:%d" % port, "-u", "u:p", "-m", "hold", "-K", "20,120",
              "-H", "3"])
    p.wait_line(r"^turn_load hold_step .*want=20 allocs=20 failed=0")
    # held while the step is announced: the server has them all
    assert metric(mport, 'stund_turn_allocations{worker="0"}') == 20
    p.wait_line(r"^turn_load hold_step .*want=120 allocs=120 failed=0")
    assert metric(mport, 'stund_turn_allocations{worker="0"}') == 120
    p.wait_line(r"^turn_load mode=hold .*allocs=120 deleted=120 failed=0", timeout=30)
    assert p.stop() == 0
    wait_metric(mport, 'stund_turn_allocations{worker="0"}', lambda v: v == 0)


@test
def wrong_password_fails_with_401():
    _, port, _ = stund()
    rc, out = load(port, "-m", "relay", "-n", "2", "-d", "1", user="u:wrong")
    assert rc == 3, (rc, out)
    f = figures(out)
    assert f["ready"] == 0 and f["failed"] == 2 and f["sent"] == 0, out
    assert "last error 401" in out, out


@test
def coturn_validates():
    _, port = coturn()
    for kind, size in (("chan", 100), ("send", 1000)):
        rc, out = load(port, "-m", "relay", "-k", kind, "-l", str(size), "-n", "4",
                       "-R", "1000", "-d", "1")
        assert rc == 0, out
        check_no_loss(figures(out), 4, out)
    rc, out = load(port, "-m", "allocs", "-N", "100", "-n", "8", "-d", "20")
    f = figures(out)
    assert rc == 0 and f["allocs"] == 100 and f["deleted"] == 100 and f["failed"] == 0, out


@test
def driver_prints_the_table():
    r = subprocess.run([os.path.join(SRC, "bench", "run_turn.sh"), "--build-dir", BUILD,
                        "-d", "1", "-K", "50,100", "-a", "200", "-r", "1"],
                       capture_output=True, text=True, timeout=110)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    rows = [ln.split() for ln in r.stdout.splitlines()]
    for server in ("stund", "coturn"):
        relay = [x for x in rows if x[:3] == ["relay", "chan", "100B"] and x[3] == server]
        assert relay and int(relay[0][4]) > 0, out  # a rate was measured
        hold = [x for x in rows if x[:3] == ["hold", "100", "allocations"] and x[3] == server]
        assert hold and hold[0][4] == "100", out  # 100 held
        allocs = [x for x in rows if x[:2] == ["allocs", "(auth)"] and x[2] == server]
        assert allocs and allocs[0][-1] == "failed/200" and allocs[0][-2] == "0", out
    assert "packets per CPU-second" in out and "bytes per allocation" in out, out


if __name__ == "__main__":
    run_tests()
