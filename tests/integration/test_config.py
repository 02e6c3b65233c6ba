"""stund's configuration: errors name file, line and key; --check-config;
command-line overrides; --help and --version."""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import (STUND, SRC, Stund, free_port, stun_request, stun_parse, udp_transact,
                     xor_addr, tmpdir, test, run_tests)


def run(args, conf=None):
    if conf is not None:
        path = os.path.join(tmpdir(), "stund.conf")
        with open(path, "w") as f:
            f.write(conf)
        args = ["-c", path] + args
    else:
        path = None
    p = subprocess.run([STUND] + args, capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr, path


@test
def unknown_key_names_file_line_key():
    rc, out, path = run(["--check-config"], "# a comment\nlistening-ip = 127.0.0.1\nlisten-port = 3478\n")
    assert rc == 1, (rc, out)
    assert "%s:3" % path in out, out
    assert "listen-port" in out and "unknown key" in out, out


@test
def bad_value_names_key_and_what_is_accepted():
    rc, out, path = run(["--check-config"], "listening-ip = 127.0.0.1\n\n\nworkers = lots\n")
    assert rc == 1, (rc, out)
    assert "%s:4: workers: 'lots' is not accepted" % path in out, out
    assert "auto or a number" in out, out
    rc, out, path = run(["--check-config"], "listening-ip = 127.0.0.1\nmin-port = 60000\nmax-port = 50000\n")
    assert rc == 1 and "%s:2: min-port" % path in out, out


@test
def secrets_are_not_echoed():
    rc, out, _ = run(["--check-config"], "user = hunter2hunter2\n")
    assert rc == 1 and "user" in out and "hunter2" not in out, out
    rc, out, _ = run(["--check-config"], "user = a:topsecret\nstatic-auth-secret = restsecret\n")
    assert rc == 0, out
    assert "topsecret" not in out and "restsecret" not in out, out


@test
def check_config_accepts_shipped_default():
    rc, out, _ = run(["--check-config", "-c", os.path.join(SRC, "conf", "stund.conf")])
    assert rc == 0, out
    assert "configuration OK" in out and "127.0.0.2" in out, out


@test
def check_config_with_cli_override():
    conf = "listening-ip = 127.0.0.1\nlistening-port = 4000\nworkers = 1\n"
    rc, out, _ = run(["--check-config", "--listening-port", "4100", "--workers=3"], conf)
    assert rc == 0, out
    assert "ports 4100/4101" in out and "workers 3" in out, out
    # A bad value on the command line is named as such.
    rc, out, _ = run(["--check-config", "--listening-port=0"], conf)
    assert rc == 1 and "command line: listening-port" in out, out
    # An unknown option says what to do next.
    rc, out, _ = run(["--frobnicate"])
    assert rc == 2 and "--help" in out, out


@test
def cli_override_applies_to_a_running_server():
    file_port = free_port(count=2)
    cli_port = free_port(count=2)
    conf = "listening-ip = 127.0.0.1\nlistening-port = %d\nworkers = 1\n" % file_port
    srv = Stund(conf, extra_args=["--listening-port", str(cli_port), "--no-software-attribute"])
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        req, tid = stun_request()
        data, frm = udp_transact(s, ("127.0.0.1", cli_port), req)
        mtype, rtid, attrs = stun_parse(data)
        assert mtype == 0x0101 and rtid == tid and frm[1] == cli_port
        assert 0x8022 not in attrs, "--no-software-attribute applied"
        assert "127.0.0.1:%d" % cli_port in "\n".join(srv.lines)
        assert "127.0.0.1:%d" % file_port not in "\n".join(srv.lines)
    finally:
        srv.stop()


@test
def bind_failure_is_reported():
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    rc, out, _ = run([], "listening-ip = 127.0.0.1\nlistening-port = %d\nworkers = 1\n" % port)
    assert rc == 1 and "cannot listen" in out and "127.0.0.1:%d" % port in out, out
    busy.close()


@test
def missing_file_is_an_error():
    rc, out, _ = run(["--check-config", "-c", "/nonexistent/stund.conf"])
    assert rc == 1 and "/nonexistent/stund.conf" in out, out


@test
def help_lists_every_key_and_version():
    rc, out, _ = run(["--help"])
    assert rc == 0
    for key in ("listening-ip", "listening-port", "alt-listening-port", "tls-listening-port",
                "relay-ip", "external-ip", "min-port", "max-port", "realm", "user", "userdb",
                "static-auth-secret", "cert", "pkey", "allow-loopback-peers", "denied-peer-ip",
                "allowed-peer-ip", "user-quota", "total-quota", "max-bps", "log-file",
                "workers", "log-level", "metrics-listen", "rendezvous", "--check-config"):
        assert key in out, key
    rc, out, _ = run(["--version"])
    assert rc == 0 and out.startswith("stund "), out


if __name__ == "__main__":
    run_tests()
