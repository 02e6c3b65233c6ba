"""natclient discover against real servers on loopback (no NAT there):
coturn's turnserver (RFC 5780 on 127.0.0.1 + 127.0.0.2), and stund once it
does RFC 5780. Also the errors a person sees."""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NATCLIENT, test, run_tests  # noqa: E402
from coturn import Coturn, free_pair, stun_ready  # noqa: E402

servers = {}


def natclient(*args, timeout=60, env=None):
    e = dict(os.environ)
    for k in ("NATCLIENT_SERVER", "NATCLIENT_USER", "NATCLIENT_PASSWORD"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([NATCLIENT] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=e, stdin=subprocess.DEVNULL)


def coturn():
    if "coturn" not in servers:
        servers["coturn"] = Coturn()
    return servers["coturn"]


def check_no_nat(server, label):
    r = natclient("--server", server, "--json", "discover")
    assert r.returncode == 0, (label, r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, lines
    j = json.loads(lines[0])
    for key in ("public", "mapping", "filtering", "port_allocation", "hairpinning", "nat_type"):
        assert key in j, (key, j)
    ip, port = j["public"].rsplit(":", 1)
    assert ip == "127.0.0.1", j
    assert 0 < int(port) < 65536
    # no NAT: the public address is the socket's own
    assert j["public"] == j["local"], j
    assert j["mapping"] == "none", j
    assert j["filtering"] == "endpoint-independent", j
    assert j["hairpinning"] is True, j
    assert j["port_allocation"] == "preserving", j
    assert "delta" not in j
    assert j["nat_type"] == "open internet", j
    return j


@test
def coturn_json_no_nat():
    j = check_no_nat(coturn().server, "coturn")
    assert j["other_address"] == "127.0.0.2:%d" % (coturn().port + 1), j


@test
def coturn_text_for_a_person():
    r = natclient("--server", coturn().server, "discover")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Public address:    127.0.0.1:" in out, out
    assert "Mapping:           none" in out, out
    assert "Filtering:         endpoint-independent" in out, out
    assert "Hairpinning:       yes" in out, out
    assert "NAT type:          open internet" in out, out


@test
def server_from_env_and_config():
    r = natclient("--json", "discover", env={"NATCLIENT_SERVER": coturn().server})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["mapping"] == "none"
    conf = os.path.join(harness.tmpdir(), "natclient.conf")
    with open(conf, "w") as f:
        f.write("# test\nserver = %s\n" % coturn().server)
    r = natclient("--config", conf, "--json", "discover",
                  env={"NATCLIENT_SERVER": "127.0.0.1:1"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["filtering"] == "endpoint-independent"


@test
def binding_lifetime_bounded():
    t0 = time.monotonic()
    r = natclient("--server", coturn().server, "--json", "discover", "--lifetime-max", "2")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    # loopback never expires a binding: alive at the bound, not seen expiring
    assert j["lifetime"] == {"alive_s": 2, "expired_s": None}, j
    assert time.monotonic() - t0 < 20


@test
def silent_server_is_a_clear_error():
    # something holds the port but never answers: retransmit, then give up
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    t0 = time.monotonic()
    r = natclient("--server", "127.0.0.1:%d" % silent.getsockname()[1], "discover", timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "no answer from the server" in r.stderr, r.stderr
    assert r.stdout == ""
    assert 5 < time.monotonic() - t0 < 15
    silent.close()


@test
def icmp_unreachable_fails_fast():
    # RFC 8489 s6.2.1: a hard ICMP error ends the transaction at once
    port = harness.free_port()  # nobody listens there
    t0 = time.monotonic()
    r = natclient("--server", "127.0.0.1:%d" % port, "discover", timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "unreachable" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 3


@test
def no_server_says_what_to_do():
    r = natclient("discover")
    assert r.returncode != 0
    assert "--server" in r.stderr and "NATCLIENT_SERVER" in r.stderr, r.stderr
    r = natclient("--server", "127.0.0.1:notaport", "discover")
    assert r.returncode != 0 and "HOST[:PORT]" in r.stderr, r.stderr
    r = natclient("--config", "/nonexistent.conf", "discover")
    assert r.returncode == 2 and "/nonexistent.conf" in r.stderr, r.stderr


def stund_has_rfc5780():
    return os.path.exists(os.path.join(harness.SRC, "server", "binding.c")) and \
        os.path.exists(harness.STUND)


@test
def stund_json_no_nat():
    if not stund_has_rfc5780():
        print("skip: stund has no Binding/RFC 5780 yet")
        return
    p = free_pair()
    harness.Stund("listening-ip = 127.0.0.1\nlistening-ip = 127.0.0.2\n"
                  "listening-port = %d\nalt-listening-port = %d\n" % (p, p + 1))
    stun_ready("127.0.0.1", p)
    j = check_no_nat("127.0.0.1:%d" % p, "stund")
    assert j["other_address"] == "127.0.0.2:%d" % (p + 1), j


if __name__ == "__main__":
    run_tests()
