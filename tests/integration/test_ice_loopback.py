"""client/ice.c: two ICE sessions on loopback (tests/tools/ice_pair.c, one
process, two real UDP sockets, candidates handed over in memory): checks
with short-term credentials, nomination, data both ways; role conflict
(both controlling) settled by the tie-breaker with 487; a dead candidate
skipped; a peer learnt as peer-reflexive through triggered checks; a wrong
password never connects; RFC 7675 consent kept by answered checks, and
lost (no more sending) when the peer goes away; a relayed candidate
(TURN on coturn and on stund): checks, answers and data through the relay;
relay fallback while direct checks go on, then the move to the direct path."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, SRC, test, run_tests  # noqa: E402

ICE_PAIR = os.path.join(BUILD, "ice_pair")


def ice_pair(*args, timeout=30, env=None):
    r = subprocess.run([ICE_PAIR] + list(args), capture_output=True, text=True, timeout=timeout,
                       env=env)
    lines = r.stdout.strip().splitlines()
    assert lines, (r.returncode, r.stderr)
    return r.returncode, json.loads(lines[-1]), r.stderr


def connected(j):
    a, b = j["a"], j["b"]
    for s in (a, b):
        assert s["state"] == "connected", j
        assert s["data"] is True, j
    # each side's selected pair is the mirror of the other's
    assert a["local"] == b["remote"] and a["remote"] == b["local"], j
    assert {a["role"], b["role"]} == {"controlling", "controlled"}, j
    return a, b


@test
def host_pair_connects_and_carries_data():
    rc, j, err = ice_pair()
    assert rc == 0, (j, err)
    a, b = connected(j)
    assert a["role"] == "controlling" and a["remote_type"] == "host", j
    assert a["role_conflicts"] == 0 and b["role_conflicts"] == 0, j


@test
def role_conflict_settled_by_tie_breaker():
    rc, j, err = ice_pair("--conflict")
    assert rc == 0, (j, err)
    a, b = connected(j)
    # both started controlling: exactly one switched (s7.3.1.1 / s7.2.5.1)
    assert a["role_conflicts"] + b["role_conflicts"] >= 1, j


@test
def dead_candidate_is_skipped():
    rc, j, err = ice_pair("--dead-candidate")
    assert rc == 0, (j, err)
    a, _ = connected(j)
    assert not a["remote"].endswith(":1"), j


@test
def peer_reflexive_through_triggered_checks():
    rc, j, err = ice_pair("--prflx")
    assert rc == 0, (j, err)
    a, _ = connected(j)
    assert a["remote_type"] == "prflx" and a["prflx"] == 1 and a["triggered"] >= 1, j


@test
def wrong_password_never_connects():
    rc, j, err = ice_pair("--bad-password", "--timeout", "12")
    assert rc == 1, j
    assert j["a"]["state"] == "failed", j
    assert j["b"]["state"] != "connected", j
    # b rejected a's checks: MESSAGE-INTEGRITY made with the wrong password
    assert j["b"]["bad_auth"] >= 1, j


@test
def consent_keeps_the_pair():
    # consent checks every 4-6 s (RFC 7675 s5.1): within 9 s at least one each way
    rc, j, err = ice_pair("--hold", "9", "--timeout", "20")
    assert rc == 0, (j, err)
    a, b = connected(j)
    assert a["consent_ok"] >= 1 and b["consent_ok"] >= 1, j
    assert a["disconnected_ms"] == -1 and b["disconnected_ms"] == -1, j


@test
def consent_expires_when_the_peer_is_gone():
    rc, j, err = ice_pair("--kill-b", "--consent-timeout", "6000", "--timeout", "20")
    a = j["a"]
    assert a["state"] == "disconnected" and a["data"] is True, j
    assert a["consent_ok"] == 0, j
    # expires 6 s after the last answer (the nominating check), not later
    lost_after = a["disconnected_ms"] - a["ms"]
    assert 5800 <= lost_after <= 7000, j


def relayed(server, user, password):
    env = dict(os.environ, NATCLIENT_USER=user, NATCLIENT_PASSWORD=password)
    rc, j, err = ice_pair("--relay-a", server, "--timeout", "15", env=env)
    assert rc == 0, (j, err)
    a, b = connected(j)
    # a offered only its relayed candidate: everything went through TURN
    assert a["local_type"] == "relay" and b["remote_type"] == "relay", j
    assert b["local_type"] == "host", j
    assert a["local"] == b["remote"] and a["local"] != b["local"], j


@test
def relayed_candidate_through_coturn():
    from coturn import Coturn
    srv = Coturn(user="alice", password="s3cret", realm="natkit.test")
    relayed(srv.server, "alice", "s3cret")
    srv.stop()


@test
def relayed_candidate_through_stund():
    if not os.path.exists(os.path.join(SRC, "server", "turn_methods.c")):
        print("skip: stund has no TURN yet")
        return
    from turnlib import turn_server
    srv, port, _ = turn_server(users=("alice:s3cret",))
    relayed("127.0.0.1:%d" % port, "alice", "s3cret")
    srv.stop()


@test
def relay_first_then_direct():
    from coturn import Coturn
    srv = Coturn(user="alice", password="s3cret", realm="natkit.test")
    e = dict(os.environ, NATCLIENT_USER="alice", NATCLIENT_PASSWORD="s3cret")
    # the direct path is blocked for 2.5 s: the relay carries the session
    # after the fallback time (1.5 s), then the direct pair takes over
    rc, j, err = ice_pair("--relay-a", srv.server, "--host-a", "--drop-direct-ms", "2500",
                          "--hold", "4", "--timeout", "15", env=e)
    assert rc == 0, (j, err)
    a, b = connected(j)
    assert a["paths"] == "relay,direct" and b["paths"] == "relay,direct", j
    assert a["local_type"] == "host" and a["remote_type"] == "host", j
    assert 1400 <= a["ms"] < 2500, j  # first connected: on the relay, at the fallback
    srv.stop()


if __name__ == "__main__":
    run_tests()
