"""One natclient session across the NAT lab: stund (rendezvous + TURN, RFC
5780 on the server's two addresses) in the server namespace, `natclient
listen ID` on host a, `natclient connect ID` on host b, a line each way
through stdin/stdout. Shared by test_connect_matrix.py and
test_symmetric_traversal.py. Python 3 stdlib only; needs root."""
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lab as labmod  # noqa: E402
from harness import NATCLIENT, STUND, Proc  # noqa: E402

S1, S2 = labmod.TOPOLOGY["server"]["addrs"]
PORT, ALT = 3478, 3479
USER, PASSWORD = "lab", "lab-secret-pw"
PROBE = os.path.join(HERE, "stunprobe.py")


def start_stund(lab):
    """stund with rendezvous and TURN (relayed addresses on S1); -> Proc."""
    d = tempfile.mkdtemp(prefix="nkl-stund-")
    conf = os.path.join(d, "stund.conf")
    with open(conf, "w") as f:
        f.write("listening-ip = %s\nlistening-ip = %s\nlistening-port = %d\n"
                "alt-listening-port = %d\nno-tls\nno-dtls\nmetrics-listen = off\n"
                "realm = natkit.lab\nuser = %s:%s\nrelay-ip = %s\nmin-port = 49152\n"
                "max-port = 49400\nworkers = 1\n" % (S1, S2, PORT, ALT, USER, PASSWORD, S1))
    p = Proc(lab.cmd("server", [STUND, "-c", conf]))
    lab._procs.append(p.p)
    try:
        p.wait_line(r"stund ready", timeout=15)
    finally:
        os.unlink(conf)
        os.rmdir(d)
    return p


def env():
    return dict(os.environ, NATCLIENT_USER=USER, NATCLIENT_PASSWORD=PASSWORD,
                NATCLIENT_SERVER="%s:%d" % (S1, PORT))


def natclient(lab, host, args, pre=()):
    p = Proc(lab.cmd(host, [NATCLIENT, "--json"] + list(pre) + list(args)), env=env(),
             stdin=subprocess.PIPE)
    lab._procs.append(p.p)
    return p


@contextlib.contextmanager
def client_config(text):
    """A natclient config file holding text, for the time of the with block;
    -> ("--config", its path), natclient's global options (pre)."""
    f = tempfile.NamedTemporaryFile("w", prefix="nkl-natclient-", suffix=".conf")
    try:
        f.write(text)
        f.flush()
        yield ("--config", f.name)
    finally:
        f.close()


def _say(proc, text):
    proc.p.stdin.write(text.encode() + b"\n")
    proc.p.stdin.flush()


def _connected(proc, timeout):
    return json.loads(proc.wait_line(r'"event":"connected"', timeout=timeout).string)


def _upgraded(con, lst, settle):
    """After a relay fallback, natclient keeps checking and moves to a
    direct path when one opens (a second "connected" event): wait up to
    settle seconds for it; then data must flow both ways on the new path.
    -> the new connected event, or None."""
    try:
        m = con.wait_line(r'"event":"connected".*"path":"(direct|predicted)"', timeout=settle)
    except AssertionError:
        return None
    _say(con, "again from b")
    lst.wait_line(r"^again from b$", timeout=10)
    _say(lst, "again from a")
    con.wait_line(r"^again from a$", timeout=10)
    return json.loads(m.string)


def session(lab, extra=(), timeout=30, pid="m", settle=3.0, pre=()):
    """listen on a, connect from b, a line each way (extra: options of the
    command, pre: natclient's global options, both sides). -> dict with path (the
    path the session settles on: after a relay fallback, a move to a direct
    path within settle seconds counts), first_path, ttfb_ms (connect
    started -> its first line arrived at the listener), connect_ms
    (natclient's own "ms" of the first connected event), path_ms (of the
    final one). Raises AssertionError when something fails."""
    lst = natclient(lab, "a", ["listen", pid] + list(extra), pre)
    try:
        lst.wait_line(r'"event":"registered"', timeout=15)
        t0 = time.monotonic()
        con = natclient(lab, "b", ["connect", pid, "--timeout", str(timeout)] + list(extra), pre)
        try:
            _say(con, "ping from b")  # read by natclient once a path is open
            lst.wait_line(r"^ping from b$", timeout=timeout + 5)
            ttfb = (time.monotonic() - t0) * 1000.0
            ce = _connected(con, 5)
            le = _connected(lst, 5)
            _say(lst, "pong from a")
            con.wait_line(r"^pong from a$", timeout=10)
            assert ce["path"] == le["path"], (ce, le)
            first = ce
            if ce["path"] == "relay" and settle > 0:
                ce = _upgraded(con, lst, settle) or ce
            return {"path": ce["path"], "first_path": first["path"], "ttfb_ms": ttfb,
                    "connect_ms": first["ms"], "path_ms": ce["ms"], "connect": ce,
                    "listen": le, "con_lines": con.lines, "lst_lines": lst.lines}
        finally:
            con.stop()
    finally:
        lst.stop()
