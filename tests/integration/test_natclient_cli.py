"""natclient's command line: --help is complete, --version, usage errors
say what to do next."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NATCLIENT, test, run_tests  # noqa: E402


def natclient(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATCLIENT_")}
    return subprocess.run([NATCLIENT] + list(args), capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL, env=env)


@test
def help_is_complete():
    r = natclient("--help")
    assert r.returncode == 0
    for word in ("--server HOST[:PORT]", "--config FILE", "--json", "-v", "discover",
                 "--lifetime", "listen ID", "--expose HOST:PORT", "connect ID",
                 "--local HOST:PORT", "--relay auto|always|never", "--timeout SECONDS",
                 "NATCLIENT_SERVER", "NATCLIENT_USER", "NATCLIENT_PASSWORD"):
        assert word in r.stdout, word


@test
def version():
    r = natclient("--version")
    assert r.returncode == 0 and r.stdout.startswith("natclient "), r.stdout


@test
def usage_errors():
    r = natclient()
    assert r.returncode == 2 and "no command" in r.stderr and "--help" in r.stderr, r.stderr
    r = natclient("frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr, r.stderr
    r = natclient("--bogus", "discover")
    assert r.returncode == 2 and "--bogus" in r.stderr, r.stderr
    r = natclient("--server")
    assert r.returncode == 2 and "needs a value" in r.stderr, r.stderr
    r = natclient("--server", "127.0.0.1", "discover", "--what")
    assert r.returncode == 2 and "--what" in r.stderr, r.stderr
    r = natclient("connect")
    assert r.returncode == 2 and "needs an ID" in r.stderr, r.stderr


@test
def tunnel_option_errors():
    r = natclient("--server", "127.0.0.1", "connect", "x", "--relay", "sometimes")
    assert r.returncode == 2 and "auto, always or never" in r.stderr, r.stderr
    r = natclient("--server", "127.0.0.1", "connect", "x", "--timeout", "soon")
    assert r.returncode == 2 and "--timeout" in r.stderr, r.stderr
    r = natclient("--server", "127.0.0.1", "listen", "x", "--expose", "nowhere")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr, r.stderr
    r = natclient("--server", "127.0.0.1", "listen", "x", "--local", "127.0.0.1:5")
    assert r.returncode == 2 and "--local" in r.stderr, r.stderr
    r = natclient("connect", "x")
    assert r.returncode == 1 and "NATCLIENT_SERVER" in r.stderr, r.stderr


if __name__ == "__main__":
    run_tests()
