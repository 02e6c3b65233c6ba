"""TURN authentication (RFC 8489 s9.2, RFC 8656 s5/s7.2): SHA-256 password
algorithm with MESSAGE-INTEGRITY-SHA256 and USERHASH, stale nonces, TURN
REST credentials from static-auth-secret (valid, expired, rotated: several
secrets at once), and the username binding of an allocation (441)."""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_tests, test  # noqa: E402
from turnlib import (ERROR, MESSAGE_INTEGRITY, MESSAGE_INTEGRITY_SHA256,  # noqa: E402
                     PASSWORD_ALGORITHMS, SUCCESS, TurnClient, check_integrity,
                     rest_credentials, turn_server)

OLD, NEW = "old-secret-1", "new-secret-2"
SRV = {}


def server():
    if "s" not in SRV:
        SRV["s"] = turn_server(extra="static-auth-secret = %s\nstatic-auth-secret = %s\n"
                               % (NEW, OLD))
    return SRV["s"]


def client(**kw):
    return TurnClient(("127.0.0.1", server()[1]), **kw)


@test
def sha256_with_userhash():
    c = client(user="alice", password="alice-pw", sha256=True, userhash=True)
    r = c.allocate()
    assert r.cls == SUCCESS, r
    assert c.alg == 2, "server did not offer SHA-256 in PASSWORD-ALGORITHMS"
    assert r.has(MESSAGE_INTEGRITY_SHA256), r
    assert check_integrity(r.raw, c.key)
    # a wrong SHA-256 key fails
    c2 = client(user="alice", password="wrong", sha256=True, userhash=True)
    r = c2.allocate()
    assert r.cls == ERROR and r.error == 401, r
    assert c.refresh(0).cls == SUCCESS
    c.close()
    c2.close()


@test
def challenge_offers_password_algorithms():
    c2 = client()
    m, tid = c2.build_request(3, [(0x19, struct.pack("!B3x", 17))])
    r = c2.transact(m, tid)
    assert r.error == 401 and r.has(PASSWORD_ALGORITHMS), r
    algs = r.get(PASSWORD_ALGORITHMS)
    offered = [struct.unpack("!H", algs[i:i + 2])[0] for i in range(0, len(algs), 4)]
    assert 1 in offered and 2 in offered, offered
    c2.close()


@test
def md5_user_signs_with_sha1():
    c = client(user="bob", password="bob-pw")
    r = c.allocate()
    assert r.cls == SUCCESS and r.has(MESSAGE_INTEGRITY), r
    assert check_integrity(r.raw, c.key)
    c.refresh(0)
    c.close()


@test
def rest_credentials_valid_and_rotated():
    for secret in (NEW, OLD):
        name, pw = rest_credentials(secret, "carol", ttl=600)
        c = client(user=name, password=pw)
        r = c.allocate()
        assert r.cls == SUCCESS, (secret, r)
        assert check_integrity(r.raw, c.key)
        assert c.refresh(0).cls == SUCCESS
        c.close()
    # a secret the server does not hold
    name, pw = rest_credentials("some-other-secret", "carol")
    c = client(user=name, password=pw)
    r = c.allocate()
    assert r.cls == ERROR and r.error == 401, r
    c.close()
    # a username without the user part is fine too
    name, pw = rest_credentials(NEW, "")
    c = client(user=name, password=pw)
    assert c.allocate().cls == SUCCESS
    c.refresh(0)
    c.close()


@test
def rest_credentials_expired():
    name, pw = rest_credentials(NEW, "dave", ttl=-60)
    c = client(user=name, password=pw)
    r = c.allocate()
    assert r.cls == ERROR and r.error == 401, r
    c.close()


@test
def no_credentials_is_challenged_everywhere():
    # every TURN request without integrity is challenged (s7.2 item 1)
    c = client()
    for method, attrs in ((3, [(0x19, struct.pack("!B3x", 17))]), (4, []), (8, []), (9, [])):
        m, tid = c.build_request(method, attrs)
        r = c.transact(m, tid)
        assert r.cls == ERROR and r.error == 401, (method, r)
    c.close()


@test
def stale_nonce_then_retry():
    c = client(user="alice", password="alice-pw")
    assert c.allocate().cls == SUCCESS
    c.nonce = b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA" + str(int(time.time())).encode()
    m, tid = c.build_request(4, [])
    r = c.transact(m, tid)
    assert r.error == 438 and r.has(0x15), r  # with a fresh NONCE
    r = c.refresh(0)  # turnlib retries with the new nonce
    assert r.cls == SUCCESS, r
    c.close()


if __name__ == "__main__":
    run_tests()
