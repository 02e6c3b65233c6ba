#!/usr/bin/env python3
"""natclient discover behind each NAT type of the lab (tests/netns/lab.py):
against coturn's turnserver (RFC 5780 on the server's two addresses) in the
server namespace, `natclient --json discover` on each site's host must
report the mapping, filtering, port allocation (with the delta when
sequential), hairpinning and classic name that the site's NAT is built to
have (lab.NAT_TYPES). Both sites of a lab run at once. Needs root."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lab as labmod  # noqa: E402
from lab import Lab, NAT_TYPES, seq_params  # noqa: E402
from harness import NATCLIENT, STUND, test, run_tests  # noqa: E402

if os.geteuid() != 0:
    print("test_natclient_discover_lab: FAIL: needs root (network namespaces); run as root",
          file=sys.stderr)
    sys.exit(1)

PROBE = os.path.join(HERE, "stunprobe.py")
S1, S2 = labmod.TOPOLOGY["server"]["addrs"]
PORT, ALT = 3478, 3479

CLASSIC = {
    "none": "open internet",
    "full-cone": "full cone",
    "address-restricted": "restricted cone",
    "port-restricted": "port-restricted cone",
    "masquerade": "port-restricted cone",
    "symmetric-random": "symmetric",
    "symmetric-sequential": "symmetric",
}


def start_coturn(lab):
    log = tempfile.NamedTemporaryFile(prefix="nkl-turnserver-", suffix=".log")
    lab.popen("server", [
        "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--no-auth",
        "-L", S1, "-L", S2, "-p", str(PORT), "--alt-listening-port", str(ALT),
        "--log-file", "stdout", "--simple-log", "--pidfile", log.name + ".pid"],
        stdout=log, stderr=subprocess.STDOUT)
    r = lab.run("server", ["python3", PROBE, "wait"] +
                ["%s:%d" % (a, p) for a in (S1, S2) for p in (PORT, ALT)] + ["--timeout", "10"])
    assert json.loads(r.stdout.strip().splitlines()[-1])["ready"], "turnserver not ready"
    return log


def start_stund(lab):
    d = tempfile.mkdtemp(prefix="nkl-stund-")
    conf = os.path.join(d, "stund.conf")
    with open(conf, "w") as f:
        f.write("listening-ip = %s\nlistening-ip = %s\nlistening-port = %d\n"
                "alt-listening-port = %d\nno-tls\nno-dtls\nmetrics-listen = off\n"
                % (S1, S2, PORT, ALT))
    log = tempfile.NamedTemporaryFile(prefix="nkl-stund-", suffix=".log")
    lab.popen("server", [STUND, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    r = lab.run("server", ["python3", PROBE, "wait"] +
                ["%s:%d" % (a, p) for a in (S1, S2) for p in (PORT, ALT)] + ["--timeout", "10"])
    assert json.loads(r.stdout.strip().splitlines()[-1])["ready"], "stund not ready"
    os.unlink(conf)
    os.rmdir(d)
    return log


def discover_sites(lab):
    """Run discover on both hosts at once -> {site: json}."""
    procs = {s: lab.popen(s, [NATCLIENT, "--server", "%s:%d" % (S1, PORT), "--json", "discover"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in ("a", "b")}
    out = {}
    for s, p in procs.items():
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, (s, p.returncode, stdout, stderr)
        out[s] = json.loads(stdout)
    return out


def check(lab, site, j):
    nat = lab.nat[site]
    mapping, filtering, alloc = NAT_TYPES[nat]
    mapping = mapping.rstrip("*")  # masquerade: EIM while ports do not collide
    if nat == "none":  # no NAT: nothing filters, the port is the socket's own
        filtering, alloc = "endpoint-independent", "preserving"
    ip = j["public"].rsplit(":", 1)[0]
    want_ip = lab.host_ip[site] if nat == "none" else lab.router_ip[site]
    assert ip == want_ip, (site, nat, j)
    assert j["mapping"] == mapping, (site, nat, j)
    assert j["filtering"] == filtering, (site, nat, j)
    assert j["port_allocation"] == alloc, (site, nat, j)
    if alloc == "sequential":
        assert j["delta"] == seq_params(site)[1], (site, nat, j)
    else:
        assert "delta" not in j, j
    assert j["nat_type"] == CLASSIC[nat], (site, nat, j)
    # no NAT: a datagram to one's own address always comes back
    assert j["hairpinning"] is (lab.hairpin or nat == "none"), (site, nat, lab.hairpin, j)
    print("  site %s %-21s %s: %s mapping, %s filtering, %s ports%s, hairpin %s (%d ms)"
          % (site, nat, j["nat_type"], j["mapping"], j["filtering"], j["port_allocation"],
             " delta %d" % j["delta"] if "delta" in j else "", j["hairpinning"], j["ms"]))


def lab_case(server=start_coturn, **kw):
    with Lab(**kw) as lab:
        log = server(lab)
        try:
            res = discover_sites(lab)
            for site in ("a", "b"):
                check(lab, site, res[site])
        finally:
            log.close()
    if os.path.exists(log.name + ".pid"):  # coturn's --pidfile, once the lab stopped it
        os.unlink(log.name + ".pid")


@test
def none_and_full_cone_hairpin_on():
    lab_case(site_a="none", site_b="full-cone", hairpin=True)


@test
def restricted_cones_hairpin_off():
    lab_case(site_a="address-restricted", site_b="port-restricted", hairpin=False)


@test
def symmetric_random_and_sequential_hairpin_on():
    lab_case(site_a="symmetric-random", site_b="symmetric-sequential", hairpin=True)


@test
def masquerade_and_port_restricted_hairpin_on():
    lab_case(site_a="masquerade", site_b="port-restricted", hairpin=True)


@test
def against_stund_port_restricted_and_symmetric_sequential():
    lab_case(server=start_stund, site_a="port-restricted", site_b="symmetric-sequential",
             hairpin=False)


if __name__ == "__main__":
    run_tests()
