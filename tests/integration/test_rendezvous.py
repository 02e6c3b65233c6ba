"""The rendezvous in stund (docs/PROTOCOL.md), black-box: a real stund with
two workers, and this script playing both peers with turnlib's independent
STUN client. A registers an ID as user1; B (user2) connects to that ID with
an offer; A receives the Offer over its registration flow and answers; B
gets the answer. Errors: unknown ID, an ID taken by another user, expiry,
wrong password, no answer, a refusal; over UDP and TCP."""
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stund, free_port, run_tests, test, tmpdir  # noqa: E402
from turnlib import (ERROR, ERROR_CODE, FINGERPRINT, INDICATION, LIFETIME, MESSAGE_INTEGRITY,  # noqa: E402
                     SUCCESS, XOR_MAPPED_ADDRESS, XOR_PEER_ADDRESS, TurnClient, add_fingerprint,
                     build, check_integrity, rest_credentials)

# docs/PROTOCOL.md s2, s3
REGISTER, RDV_REFRESH, RDV_CONNECT, OFFER, ANSWER = 0x0C0, 0x0C1, 0x0C2, 0x0C3, 0x0C4
RDV_ID, CANDIDATE, UFRAG, PWD, TIE_BREAKER, OFFER_ID, FROM_USER = range(0xC001, 0xC008)
HOST, SRFLX, PRFLX, RELAY, PREDICTED = 1, 2, 3, 4, 5
MAGIC = 0x2112A442

USERS = {"user1": "pw-one", "user2": "pw-two"}
SRV = {}


def server():
    if "main" not in SRV:
        port, mport = free_port(), free_port()
        conf = "\n".join([
            "listening-ip = 127.0.0.1", "listening-port = %d" % port, "no-tls", "no-dtls",
            "workers = 2", "realm = natkit.test", "log-level = debug",
            "metrics-listen = 127.0.0.1:%d" % mport,
        ] + ["user = %s:%s" % kv for kv in USERS.items()]) + "\n"
        SRV["main"] = (Stund(conf), port)
        SRV["metrics"] = mport
    return SRV["main"]


def peer(user, transport="udp", password=None, timeout=3.0):
    _, port = server()
    return TurnClient(("127.0.0.1", port), transport=transport, user=user,
                      password=password if password is not None else USERS[user],
                      timeout=timeout)


def cand(ctype, ip, port, prio, foundation, transport=17):
    x = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
    return (CANDIDATE, struct.pack("!BBBBIHBBI", ctype, transport, 1, len(foundation), prio,
                                   port ^ (MAGIC >> 16), 1, 0, x) + foundation)


def decode_cand(v):
    ctype, tp, fam, flen, prio, xport, comp, _ = struct.unpack("!BBBBIHBB", v[:12])
    ip = socket.inet_ntoa(struct.pack("!I", struct.unpack("!I", v[12:16])[0] ^ MAGIC))
    return ctype, tp, ip, xport ^ (MAGIC >> 16), prio, v[16:16 + flen]


def session(ufrag, pwd, tie, cands):
    return list(cands) + [(UFRAG, ufrag), (PWD, pwd), (TIE_BREAKER, struct.pack("!Q", tie))]


OFFER_SESSION = session(b"ufB1", b"passwordofpeerB12345678", 0x1122334455667788, [
    cand(HOST, "192.168.7.2", 40000, 2130706431, b"1"),
    cand(SRFLX, "203.0.113.5", 61000, 1694498815, b"2"),
    cand(PREDICTED, "203.0.113.5", 61002, 1000, b"p"),
])
ANSWER_SESSION = session(b"ufA1", b"passwordofpeerA12345678", 0x99, [
    cand(HOST, "10.1.1.1", 5000, 2130706431, b"h1"),
    cand(RELAY, "198.51.100.9", 3479, 16777215, b"r1"),
])


def register(c, rid, lifetime=None, method=REGISTER):
    attrs = [(RDV_ID, rid.encode())]
    if lifetime is not None:
        attrs.append((LIFETIME, struct.pack("!I", lifetime)))
    return c.request(method, attrs)


def expect_ok(r, c=None):
    assert r.cls == SUCCESS, r
    if c is not None:
        assert check_integrity(r.raw, c.key), "response integrity"
    return r


def expect_err(r, code):
    assert r.cls == ERROR and r.error == code, (r, code)
    return r


def next_offer(a, timeout=5.0):
    """Next Offer indication on A's registration flow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = a.recv(deadline - time.monotonic())
        if m is None:
            break
        if not isinstance(m, tuple) and m.method == OFFER and m.cls == INDICATION:
            return m
    raise AssertionError("no Offer within %.1fs" % timeout)


class Connector(threading.Thread):
    """B's RdvConnect in a thread (the response waits for A's Answer)."""

    def __init__(self, b, rid, sess=OFFER_SESSION):
        super().__init__(daemon=True)
        self.b, self.rid, self.sess = b, rid, sess
        self.resp = self.err = None
        self.t0 = time.monotonic()

    def run(self):
        if self.b.transport == "tcp":
            self.b.timeout = 12.0  # one try on a stream: wait past 7.5 s
        try:
            self.resp = self.b.request(RDV_CONNECT, [(RDV_ID, self.rid.encode())] + self.sess)
            self.elapsed = time.monotonic() - self.t0
        except Exception as e:  # noqa: BLE001
            self.err = e

    def result(self, timeout=15):
        self.join(timeout)
        assert not self.is_alive(), "RdvConnect did not complete"
        if self.err:
            raise self.err
        return self.resp


def answer(a, offer, sess=ANSWER_SESSION, extra=()):
    return a.request(ANSWER, [(OFFER_ID, offer.get(OFFER_ID))] + list(sess) + list(extra))


def learn(c):
    """First contact: take the 401's realm and nonce (RFC 8489 s9.2.4)."""
    expect_err(c.request(RDV_REFRESH, [(RDV_ID, b"nobody-%d" % os.getpid())]), 404)


def full_exchange(ta, tb, rid):
    a, b = peer("user1", ta), peer("user2", tb)
    try:
        r = expect_ok(register(a, rid), a)
        assert r.get(RDV_ID) == rid.encode()
        assert r.lifetime == 120, r.lifetime
        assert r.xaddr(XOR_MAPPED_ADDRESS) == a.sock.getsockname(), r.xaddr(XOR_MAPPED_ADDRESS)
        learn(b)
        conn = Connector(b, rid)
        conn.start()
        o = next_offer(a)
        # the Offer is signed with A's key, so A knows it comes from the server
        assert o.has(MESSAGE_INTEGRITY) and check_integrity(o.raw, a.key), "offer integrity"
        assert o.has(FINGERPRINT)
        assert o.get(RDV_ID) == rid.encode()
        assert o.get(FROM_USER) == b"user2", o.get(FROM_USER)
        assert o.xaddr(XOR_PEER_ADDRESS) == b.sock.getsockname(), o.xaddr(XOR_PEER_ADDRESS)
        assert o.get(OFFER_ID) == o.tid
        assert o.attrs[CANDIDATE] == [v for t, v in OFFER_SESSION if t == CANDIDATE]
        assert decode_cand(o.get(CANDIDATE, 1)) == (SRFLX, 17, "203.0.113.5", 61000, 1694498815, b"2")
        assert o.get(UFRAG) == b"ufB1" and o.get(PWD) == b"passwordofpeerB12345678"
        assert struct.unpack("!Q", o.get(TIE_BREAKER))[0] == 0x1122334455667788
        expect_ok(answer(a, o), a)
        r = expect_ok(conn.result(), b)
        assert r.get(RDV_ID) == rid.encode()
        assert r.xaddr(XOR_PEER_ADDRESS) == a.sock.getsockname(), r.xaddr(XOR_PEER_ADDRESS)
        assert r.xaddr(XOR_MAPPED_ADDRESS) == b.sock.getsockname()
        assert r.attrs[CANDIDATE] == [v for t, v in ANSWER_SESSION if t == CANDIDATE]
        assert r.get(UFRAG) == b"ufA1" and r.get(PWD) == b"passwordofpeerA12345678"
        assert struct.unpack("!Q", r.get(TIE_BREAKER))[0] == 0x99
        assert conn.elapsed < 3.0, conn.elapsed
        expect_ok(register(a, rid, 0, RDV_REFRESH), a)
    finally:
        a.close()
        b.close()


@test
def udp_register_connect_answer():
    full_exchange("udp", "udp", "peer-a")


@test
def tcp_register_connect_answer():
    # two workers: over several connections both the same-worker and the
    # other-worker (mailbox) paths to A's connection are taken
    for i in range(4):
        full_exchange("tcp", "tcp", "tcp-a%d" % i)
    srv = server()[0]
    srv.drain()
    print("     offers handed to another worker: %d"
          % sum("handed to worker" in l for l in srv.lines))


@test
def mixed_transports():
    full_exchange("tcp", "udp", "mix-1")
    full_exchange("udp", "tcp", "mix-2")


@test
def udp_offer_retransmitted_until_answered():
    a, b = peer("user1"), peer("user2")
    try:
        expect_ok(register(a, "retx"), a)
        learn(b)
        conn = Connector(b, "retx")
        conn.start()
        o1 = next_offer(a)
        t1 = time.monotonic()
        o2 = next_offer(a)
        t2 = time.monotonic()
        o3 = next_offer(a)
        t3 = time.monotonic()
        assert o1.get(OFFER_ID) == o2.get(OFFER_ID) == o3.get(OFFER_ID)
        # RFC 8489 s6.2.1 with RTO 500 ms: 0.5 s then 1 s apart
        assert 0.3 < t2 - t1 < 0.9 and 0.7 < t3 - t2 < 1.5, (t2 - t1, t3 - t2)
        expect_ok(answer(a, o3), a)
        expect_ok(conn.result(), b)
        # a retransmitted Answer (same transaction) gets the same response
        msg, tid = a.build_request(ANSWER, [(OFFER_ID, o3.get(OFFER_ID))] + ANSWER_SESSION)
        r1 = a.transact(msg, tid)
        r2 = a.transact(msg, tid)
        assert r1.raw == r2.raw
    finally:
        a.close()
        b.close()


@test
def unknown_id():
    b = peer("user2")
    try:
        r = expect_err(b.request(RDV_CONNECT, [(RDV_ID, b"no-such-peer")] + OFFER_SESSION), 404)
        assert r.get(ERROR_CODE)[4:] == b"Unknown Peer", r.get(ERROR_CODE)
        assert check_integrity(r.raw, b.key)
        expect_err(register(b, "no-such-peer", 60, RDV_REFRESH), 404)
    finally:
        b.close()


@test
def id_taken_by_another_user():
    a, a2, b = peer("user1"), peer("user1"), peer("user2")
    try:
        expect_ok(register(a, "mine"), a)
        r = expect_err(register(b, "mine"), 409)
        assert r.get(ERROR_CODE)[4:] == b"ID Taken", r.get(ERROR_CODE)
        expect_err(register(b, "mine", 0, RDV_REFRESH), 409)
        # the owner may move it to another flow
        r = expect_ok(register(a2, "mine"), a2)
        assert r.xaddr(XOR_MAPPED_ADDRESS) == a2.sock.getsockname()
        learn(b)
        conn = Connector(b, "mine")
        conn.start()
        o = next_offer(a2)
        expect_ok(answer(a2, o), a2)
        expect_ok(conn.result(), b)
        assert a.recv(0.2) is None, "the old flow got an Offer"
        expect_ok(register(a2, "mine", 0, RDV_REFRESH), a2)
    finally:
        for c in (a, a2, b):
            c.close()


@test
def registration_expires_unless_refreshed():
    a, b = peer("user1"), peer("user2")
    try:
        t0 = time.monotonic()
        r = expect_ok(register(a, "short", 10), a)
        assert r.lifetime == 10, r.lifetime
        expect_ok(register(a, "gone", 10), a)
        while time.monotonic() - t0 < 6:
            a.recv(0.5)
        r = expect_ok(register(a, "short", 10, RDV_REFRESH), a)  # now until ~16 s
        while time.monotonic() - t0 < 11:
            a.recv(0.5)
        expect_err(register(b, "short"), 409)   # still held: refreshed
        expect_err(b.request(RDV_CONNECT, [(RDV_ID, b"gone")] + OFFER_SESSION), 404)
        expect_err(register(a, "gone", 10, RDV_REFRESH), 404)
        while time.monotonic() - t0 < 16.5:
            a.recv(0.5)
        r = expect_ok(register(b, "short", 10), b)   # expired: anyone may take it
        expect_ok(register(b, "short", 0, RDV_REFRESH), b)
    finally:
        a.close()
        b.close()


@test
def wrong_password_401():
    for tp in ("udp", "tcp"):
        c = peer("user1", tp, password="not-the-password")
        try:
            r = expect_err(register(c, "pw-test"), 401)
            assert not r.has(MESSAGE_INTEGRITY)
        finally:
            c.close()
        b = peer("user2", tp)
        try:
            expect_err(b.request(RDV_CONNECT, [(RDV_ID, b"pw-test")] + OFFER_SESSION), 404)
        finally:
            b.close()


@test
def no_answer_408():
    for tp in ("udp", "tcp"):
        a, b = peer("user1", tp), peer("user2", tp)
        try:
            expect_ok(register(a, "mute-" + tp), a)
            learn(b)
            conn = Connector(b, "mute-" + tp)
            conn.start()
            offers = [next_offer(a)]
            r = conn.result(timeout=20)
            while True:
                m = a.recv(0.2)
                if m is None:
                    break
                offers.append(m)
            expect_err(r, 408)
            assert r.get(ERROR_CODE)[4:] == b"Peer Did Not Answer"
            assert check_integrity(r.raw, b.key)
            # RFC 8489 s6.2.1 with Rc 4, Rm 8, RTO 0.5: gives up at 7.5 s
            assert 7.0 < conn.elapsed < 10.0, conn.elapsed
            assert len(offers) == (4 if tp == "udp" else 1), len(offers)
            # too late now
            expect_err(answer(a, offers[0]), 404)
        finally:
            a.close()
            b.close()


@test
def declined_and_wrong_answerer():
    a, b, b2 = peer("user1"), peer("user2"), peer("user2")
    try:
        expect_ok(register(a, "picky"), a)
        learn(b)
        conn = Connector(b, "picky")
        conn.start()
        o = next_offer(a)
        # only the user holding the ID may answer
        expect_err(b2.request(ANSWER, [(OFFER_ID, o.get(OFFER_ID))] + ANSWER_SESSION), 403)
        # a refusal: ERROR-CODE instead of a session
        expect_ok(a.request(ANSWER, [(OFFER_ID, o.get(OFFER_ID)),
                                     (ERROR_CODE, struct.pack("!HBB", 0, 6, 3) + b"Busy")]), a)
        r = expect_err(conn.result(), 480)
        assert r.get(ERROR_CODE)[4:] == b"Peer Declined"
        # missing parts of the offer: 400
        expect_err(b.request(RDV_CONNECT, [(RDV_ID, b"picky")]), 400)
        expect_err(b.request(REGISTER, [(RDV_ID, b"bad id")]), 400)
    finally:
        for c in (a, b, b2):
            c.close()


@test
def tcp_registration_ends_with_its_connection():
    a, b = peer("user1", "tcp"), peer("user2", "tcp", timeout=12.0)
    try:
        expect_ok(register(a, "tcp-gone"), a)
        a.close()
        # until the server has seen the close, the Offer may still go out
        # (and find no one: 408); then the ID is gone (404)
        deadline = time.monotonic() + 30
        while True:
            r = b.request(RDV_CONNECT, [(RDV_ID, b"tcp-gone")] + OFFER_SESSION)
            if r.cls == ERROR and r.error == 404:
                break
            expect_err(r, 408)
            assert time.monotonic() < deadline, r
    finally:
        b.close()


# --- TLS ---------------------------------------------------------------------

TLS = {}


def tls_server():
    """A stund with TLS on its own port (self-signed certificate)."""
    if "srv" not in TLS:
        d = tmpdir()
        cert, key = os.path.join(d, "c.crt"), os.path.join(d, "c.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=stund-rdv"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port, tls_port = free_port(), free_port()
        conf = "\n".join([
            "listening-ip = 127.0.0.1", "listening-port = %d" % port,
            "tls-listening-port = %d" % tls_port, "cert = %s" % cert, "pkey = %s" % key,
            "no-dtls", "workers = 2", "realm = natkit.test",
        ] + ["user = %s:%s" % kv for kv in USERS.items()]) + "\n"
        TLS["srv"] = (Stund(conf), port, tls_port)
    return TLS["srv"]


def tls_peer(user, timeout=3.0):
    """turnlib's stream client over a TLS connection."""
    _, port, tls_port = tls_server()
    c = TurnClient(("127.0.0.1", tls_port), transport="tcp", user=user, password=USERS[user],
                   timeout=timeout)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed, made above
    c.sock = ctx.wrap_socket(c.sock)
    return c


def udp_peer_of_tls_server(user):
    _, port, _ = tls_server()
    return TurnClient(("127.0.0.1", port), user=user, password=USERS[user], timeout=3.0)


def exchange(a, b, rid):
    expect_ok(register(a, rid), a)
    learn(b)
    conn = Connector(b, rid)
    conn.start()
    o = next_offer(a)
    assert check_integrity(o.raw, a.key), "offer integrity"
    assert o.get(FROM_USER) == b"user2"
    expect_ok(answer(a, o), a)
    r = expect_ok(conn.result(), b)
    assert r.get(UFRAG) == b"ufA1", r
    return r


@test
def tls_register_connect_answer():
    for i in range(3):
        a, b = tls_peer("user1"), udp_peer_of_tls_server("user2")
        try:
            r = exchange(a, b, "tls-a%d" % i)
            assert r.xaddr(XOR_PEER_ADDRESS) == a.sock.getsockname()
        finally:
            a.close()
            b.close()
    a, b = udp_peer_of_tls_server("user1"), tls_peer("user2")
    try:
        exchange(a, b, "tls-b")
    finally:
        a.close()
        b.close()
    a, b = tls_peer("user1"), tls_peer("user2")
    try:
        exchange(a, b, "tls-c")
        # the TLS session ends: so does the registration
        a.close()
        b.timeout = 12.0
        deadline = time.monotonic() + 30
        while True:
            r = b.request(RDV_CONNECT, [(RDV_ID, b"tls-c")] + OFFER_SESSION)
            if r.cls == ERROR and r.error == 404:
                break
            expect_err(r, 408)
            assert time.monotonic() < deadline, r
    finally:
        b.close()
    srv = tls_server()[0]
    assert srv.stop() == 0, srv.lines[-20:]
    assert not [l for l in srv.lines if "Sanitizer" in l or "runtime error" in l], srv.lines[-40:]
    TLS.clear()


@test
def rest_credentials_own_by_user_part():
    port = free_port()
    s = Stund("listening-ip = 127.0.0.1\nlistening-port = %d\nno-tls\nno-dtls\nworkers = 1\n"
              "realm = natkit.test\nstatic-auth-secret = rest-secret\n" % port)
    clients = []
    try:
        def rest(user, ttl):
            name, pw = rest_credentials("rest-secret", user, ttl=ttl)
            c = TurnClient(("127.0.0.1", port), user=name, password=pw, timeout=3.0)
            clients.append(c)
            return c
        a1, a2, b = rest("carol", 600), rest("carol", 900), rest("dave", 600)
        expect_ok(register(a1, "carol-id"), a1)
        # a renewed credential of the same user refreshes it; another user may not
        expect_ok(register(a2, "carol-id", 60, RDV_REFRESH), a2)
        expect_err(register(b, "carol-id"), 409)
    finally:
        for c in clients:
            c.close()
        s.stop()


@test
def without_credentials_configured():
    # As TURN: no users and no secret -> refused (403), no open rendezvous;
    # with no-auth (RFC 8656 s7.2 item 1) served without authentication
    port = free_port()
    conf = "listening-ip = 127.0.0.1\nlistening-port = %d\nno-tls\nno-dtls\nworkers = 1\n" % port
    s = Stund(conf)
    a = TurnClient(("127.0.0.1", port), timeout=3.0)
    r = register(a, "anon")
    assert r.cls == ERROR and r.error == 403, r
    a.close()
    assert s.stop() == 0
    s = Stund(conf + "no-auth\n")
    a = TurnClient(("127.0.0.1", port), timeout=3.0)
    b = TurnClient(("127.0.0.1", port), timeout=3.0)
    try:
        r = expect_ok(register(a, "anon"))
        assert not r.has(MESSAGE_INTEGRITY)
        conn = Connector(b, "anon")
        conn.start()
        o = next_offer(a)
        assert not o.has(MESSAGE_INTEGRITY) and not o.has(FROM_USER)
        expect_ok(answer(a, o))
        expect_ok(conn.result())
    finally:
        a.close()
        b.close()
        assert s.stop() == 0


@test
def registry_bounds_from_config():
    # rendezvous-user-quota and rendezvous-max-ids bound what one user and
    # everyone together can make the server hold (486 / 508).
    port = free_port()
    s = Stund("listening-ip = 127.0.0.1\nlistening-port = %d\nno-tls\nno-dtls\nworkers = 1\n"
              "realm = natkit.test\nuser = user1:pw-one\nuser = user2:pw-two\n"
              "rendezvous-user-quota = 2\nrendezvous-max-ids = 3\n" % port)
    a = TurnClient(("127.0.0.1", port), user="user1", password="pw-one", timeout=3.0)
    b = TurnClient(("127.0.0.1", port), user="user2", password="pw-two", timeout=3.0)
    try:
        expect_ok(register(a, "q1"))
        expect_ok(register(a, "q2"))
        expect_err(register(a, "q3"), 486)
        expect_ok(register(b, "q4"))
        expect_err(register(b, "q5"), 508)
    finally:
        a.close()
        b.close()
        assert s.stop() == 0


@test
def rendezvous_off():
    port = free_port()
    s = Stund("listening-ip = 127.0.0.1\nlistening-port = %d\nno-tls\nno-dtls\nworkers = 1\n"
              "rendezvous = off\nrealm = natkit.test\nuser = user1:pw-one\n" % port)
    try:
        c = TurnClient(("127.0.0.1", port), user="user1", password="pw-one")
        m, tid = build(REGISTER, 0, [(RDV_ID, b"x")])
        r = expect_err(c.transact(add_fingerprint(m), tid), 400)
        c.close()
    finally:
        s.stop()


def scrape():
    server()
    url = "http://127.0.0.1:%d/metrics" % SRV["metrics"]
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
            if l.startswith("stund_rdv_")}


@test
def metrics():
    m0 = scrape()
    a = peer("user1")
    try:
        expect_ok(register(a, "counted"), a)
        m1 = scrape()
        assert m1["stund_rdv_registrations"] == m0["stund_rdv_registrations"] + 1, (m0, m1)
        assert m1["stund_rdv_registered_total"] == m0["stund_rdv_registered_total"] + 1
        expect_ok(register(a, "counted", 0, RDV_REFRESH), a)
        m2 = scrape()
        assert m2["stund_rdv_registrations"] == m0["stund_rdv_registrations"]
        assert m2["stund_rdv_deleted_total"] == m0["stund_rdv_deleted_total"] + 1
    finally:
        a.close()
    # what the tests above did: answered, declined, no answer (UDP: 3
    # retransmissions), refusals
    assert m0["stund_rdv_answered_total"] >= 9, m0
    assert m0["stund_rdv_declined_total"] >= 1 and m0["stund_rdv_timeouts_total"] >= 2, m0
    assert m0["stund_rdv_offers_retransmitted_total"] >= 5, m0
    assert m0["stund_rdv_refused_total"] >= 5, m0
    assert m0["stund_rdv_pending_offers"] == 0, m0


@test
def clean_exit_with_offers_pending():
    srv, _ = server()
    a, b = peer("user1", "tcp"), peer("user2", "udp")
    try:
        expect_ok(register(a, "pending-at-exit"), a)
        learn(b)
        conn = Connector(b, "pending-at-exit")
        conn.start()
        next_offer(a)
        # SIGTERM while the offer waits: pending state, timers, the mailbox
        # and the registry are freed (ASan's leak check runs at exit)
        assert srv.stop() == 0, srv.lines[-20:]
        bad = [l for l in srv.lines if "Sanitizer" in l or "runtime error" in l]
        assert not bad, "\n".join(srv.lines[-40:])
        SRV.clear()
    finally:
        a.close()
        b.close()


if __name__ == "__main__":
    run_tests()
