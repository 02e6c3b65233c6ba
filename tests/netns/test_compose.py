#!/usr/bin/env python3
"""docker/docker-compose.yml is generated from the lab's description and
agrees with it: regenerating gives the committed file byte for byte;
Debian's docker-compose validates it offline; every router container loads
exactly the ruleset the namespace lab loads; services, networks and
addresses are the lab's. No Docker engine is needed (none runs here).
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("NATKIT_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lab as labmod  # noqa: E402
from harness import test, run_tests  # noqa: E402

COMPOSE = os.path.join(SRC, "docker", "docker-compose.yml")
DEFAULTS = labmod.COMPOSE_DEFAULTS


def committed():
    with open(COMPOSE) as f:
        return f.read()


def scripts(text):
    """{service: its entrypoint script} from the block scalars of the file."""
    out, svc, buf = {}, None, None
    for line in text.splitlines():
        if buf is not None:
            if line.startswith("        ") or line == "":
                buf.append(line[8:])
                continue
            out[svc] = "\n".join(buf).replace("$$", "$") + "\n"
            buf = None
        m = re.match(r"^  ([a-z]+):$", line)
        if m:
            svc = m.group(1)
        if line == "      - |":
            buf = []
    if buf is not None:
        out[svc] = "\n".join(buf).replace("$$", "$") + "\n"
    return out


@test
def compose_file_is_generated_from_the_lab_description():
    fresh = labmod.compose()
    assert fresh == committed(), ("docker/docker-compose.yml is stale: run "
                                  "`python3 tests/netns/lab.py compose` and commit it")


@test
def routers_load_the_same_rules_as_the_namespace_lab():
    sc = scripts(committed())
    nodes = labmod.TOPOLOGY["nodes"]
    assert set(sc) == set(nodes.values()), sorted(sc)
    for site, nat in (("a", DEFAULTS["site_a"]), ("b", DEFAULTS["site_b"])):
        rules = labmod.router_rules(site, nat, DEFAULTS["hairpin"])
        s = sc[nodes["r" + site]]
        assert "nft -f /dev/stdin <<'EOF'\n" + rules + "EOF\n" in s, (site, s[:400])
        for k, v in labmod.SYSCTLS_CONNTRACK.items():
            assert "sysctl -q -w %s=%s\n" % (k, v) in s
    srv = sc[nodes["server"]]
    for a in labmod.TOPOLOGY["server"]["addrs"]:
        assert "listening-ip = %s\n" % a in srv, srv
    assert srv.rstrip().endswith("exec stund -c /etc/natkit/lab.conf")


@test
def docker_compose_validates_offline():
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not installed (Debian package docker-compose; scripts/deps.sh)"
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent.sock")  # prove no engine is used
    r = subprocess.run([exe, "-f", COMPOSE, "config", "-q"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([exe, "-f", COMPOSE, "config", "--services"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) == set(labmod.TOPOLOGY["nodes"].values()), r.stdout
    r = subprocess.run([exe, "-f", COMPOSE, "config"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    # the addresses compose will assign are exactly the lab's
    plan = labmod.plan(DEFAULTS["site_a"], DEFAULTS["site_b"], DEFAULTS["hairpin"], False)
    want = set()
    for role, addrs in plan["addrs"].items():
        for ifname, cidr in addrs:
            if not (role == "server" and cidr != addrs[0][1]):  # 2nd server address: ip addr add
                want.add(cidr.split("/")[0])
    got = set(re.findall(r"ipv4_address: ([\d.]+)", r.stdout))
    assert got == want, (sorted(got), sorted(want))
    subnets = set(re.findall(r"subnet: ([\d./]+)", r.stdout))
    assert subnets == {l[4] for l in plan["links"]}, subnets
    # compose must not have eaten a shell variable ($ must be written $$)
    assert "{print $$2}" in r.stdout, r.stdout[:2000]


@test
def dockerfile_builds_with_the_project_scripts():
    with open(os.path.join(SRC, "docker", "Dockerfile")) as f:
        df = f.read()
    assert re.search(r"^FROM debian:12", df, re.M), "Debian 12 base"
    assert "scripts/deps.sh" in df and "scripts/build.sh normal" in df
    for b in ("stund", "natclient"):
        assert "/src/build/%s" % b in df


if __name__ == "__main__":
    run_tests()
