#!/usr/bin/env python3
"""The connect matrix: `natclient connect` between every unordered pair of
the lab's NAT types (same-type pairs included), plus both hosts behind one
NAT with hairpinning. For each pair a fresh lab (tests/netns/lab.py), stund
with rendezvous and TURN in the server namespace, `natclient listen` on
host a (first type), `natclient connect` on host b (second type), a line
each way through stdin/stdout. Every pair must connect, on the path that
EXPECTED (below) derives from the RFC 4787 behaviours; the path and the
time to first byte are recorded and the matrix is printed as a table.
Labs run a few at a time (NATKIT_MATRIX_JOBS, default 3). Needs root."""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lab as labmod  # noqa: E402
import natpair  # noqa: E402
from lab import Lab, NAT_TYPES  # noqa: E402
from harness import test, run_tests  # noqa: E402

if os.geteuid() != 0:
    print("test_connect_matrix: FAIL: needs root (network namespaces); run as root", file=sys.stderr)
    sys.exit(1)

# Short names for the table.
SHORT = {"none": "none", "full-cone": "full", "address-restricted": "addr",
         "port-restricted": "port", "masquerade": "masq", "symmetric-random": "sym-rnd",
         "symmetric-sequential": "sym-seq"}

# The expected path of every pair, from the RFC 4787 behaviours (lab.NAT_TYPES)
# and what natclient does about them:
#  - a side with no NAT or endpoint-independent filtering (none, full) accepts
#    the other's checks from whatever mapping they come: direct;
#  - both mappings endpoint-independent (addr, port, masq): each side's srflx
#    is the address the other's checks come from; each opens its filter by
#    checking the other: direct (classic hole punching);
#  - address-dependent filtering (addr) facing symmetric-random: addr has sent
#    to the symmetric NAT's IP, so the check from the new, unknown mapping
#    passes; it is learnt as peer-reflexive and answered: direct;
#  - symmetric-sequential facing any endpoint-independent mapping: its mapping
#    towards the peer is one of the window of predicted candidates it
#    offers (client/predict), the peer's checks to that port pass once the
#    sequential side has sent to the peer: "predicted". Needed facing port
#    and masq (address-and-port-dependent filtering admits only the port it
#    sent to); facing none, full and addr a direct path would open without
#    it too, but the address the peer sees is still a predicted one;
#  - address-and-port-dependent filtering (port, masq) facing symmetric-random:
#    the random port towards the peer cannot be known: the birthday approach
#    (client/birthday: many sockets on the random side, random probes from
#    the cone side; started when no direct pair has opened after 0.4 s):
#    "predicted";
#  - both symmetric and sequential: each side's mappings towards new
#    destinations are its window of predicted candidates, in order; before
#    any check each sends one datagram to each of the other's guesses in the
#    other's order (the crossing punch, client/predict_probe.c), so that its
#    i-th guess is its mapping towards the other's i-th, and the other's
#    i-th towards its own: the checks between guesses pass: "predicted";
#  - both symmetric, at least one random: both mappings endpoint-dependent,
#    both filters address-and-port-dependent, and the random port towards
#    the peer cannot be known, nor met by chance (the birthday approach needs
#    one stable mapping): relay.
# Both hosts behind one NAT (hairpinning on): their host candidates share a
# LAN: direct.
D, P, R = "direct", "predicted", "relay"
EXPECTED = {
    # site a \ site b: none  full  addr  port  masq  sym-rnd  sym-seq
    "none":               {"none": D, "full-cone": D, "address-restricted": D,
                           "port-restricted": D, "masquerade": D,
                           "symmetric-random": D, "symmetric-sequential": P},
    "full-cone":          {"full-cone": D, "address-restricted": D, "port-restricted": D,
                           "masquerade": D, "symmetric-random": D, "symmetric-sequential": P},
    "address-restricted": {"address-restricted": D, "port-restricted": D, "masquerade": D,
                           "symmetric-random": D, "symmetric-sequential": P},
    "port-restricted":    {"port-restricted": D, "masquerade": D,
                           "symmetric-random": P, "symmetric-sequential": P},
    "masquerade":         {"masquerade": D, "symmetric-random": P, "symmetric-sequential": P},
    "symmetric-random":   {"symmetric-random": R, "symmetric-sequential": R},
    "symmetric-sequential": {"symmetric-sequential": P},
}
SHARED = [("port-restricted", D), ("symmetric-random", D),
          ("symmetric-sequential", D)]  # hairpin on, both behind site a


def cases():
    types = list(NAT_TYPES)
    out = []
    for i, a in enumerate(types):
        for b in types[i:]:
            out.append((a, b, False, EXPECTED[a][b]))
    out += [(t, t, True, p) for t, p in SHARED]
    return out


def run_case(case):
    a, b, shared, want = case
    t = time.monotonic()
    kw = dict(site_a=a, site_b=b, hairpin=shared, shared=shared)
    try:
        with Lab(**kw) as lab:
            natpair.start_stund(lab)
            r = natpair.session(lab, timeout=20)
        r["error"] = None
    except Exception as e:  # reported with the table, asserted below
        r = {"path": "FAILED", "ttfb_ms": 0, "connect_ms": 0, "error": "%s: %s" % (
            type(e).__name__, str(e)[-1500:])}
    r["case"] = case
    r["wall_s"] = time.monotonic() - t
    return r


def name(case):
    a, b, shared, _ = case
    if shared:
        return "%s shared+hairpin" % SHORT[a]
    return "%s - %s" % (SHORT[a], SHORT[b])


def print_tables(results):
    print("\n%-24s %-10s %-10s %10s %10s %s" % ("pair (a listen, b connect)", "path", "expected",
                                                 "connect ms", "ttfb ms", "note"))
    for r in results:
        note = ""
        if r.get("first_path") and r["first_path"] != r["path"]:
            note = "%s first, %s at %d ms" % (r["first_path"], r["path"], r["path_ms"])
        print("%-24s %-10s %-10s %10d %10d %s" % (name(r["case"]), r["path"], r["case"][3],
                                                  r["connect_ms"], r["ttfb_ms"], note))
    types = list(NAT_TYPES)
    cell = {(r["case"][0], r["case"][1]): r for r in results if not r["case"][2]}
    print("\nmatrix (path / time to first byte, ms):")
    print("%-8s " % "" + " ".join("%-15s" % SHORT[t] for t in types))
    for a in types:
        row = []
        for b in types:
            r = cell.get((a, b)) or cell.get((b, a))
            row.append("%-15s" % ("%s %d" % (r["path"], r["ttfb_ms"]) if r else "-"))
        print("%-8s " % SHORT[a] + " ".join(row))
    sys.stdout.flush()


@test
def every_pair_connects_on_the_expected_path():
    labmod._install_handlers()  # signal handlers belong to the main thread
    todo = cases()
    only = os.environ.get("NATKIT_MATRIX_ONLY")  # e.g. "port-restricted" for a subset
    if only:
        todo = [c for c in todo if only in (c[0], c[1])]
    t = time.monotonic()
    with ThreadPoolExecutor(max_workers=int(os.environ.get("NATKIT_MATRIX_JOBS", "3"))) as ex:
        results = list(ex.map(run_case, todo))
    print_tables(results)
    print("%d pairs in %.1f s" % (len(results), time.monotonic() - t))
    bad = [r for r in results if r["error"] or r["path"] != r["case"][3]]
    for r in bad:
        print("\n%s: path %s, expected %s\n%s" % (name(r["case"]), r["path"], r["case"][3],
                                                 r["error"] or ""))
        for who in ("con_lines", "lst_lines"):
            print("  %s:\n    %s" % (who, "\n    ".join(r.get(who, []))))
    assert not bad, "%d of %d pairs failed or took an unexpected path: %s" % (
        len(bad), len(results), ", ".join(name(r["case"]) for r in bad))


if __name__ == "__main__":
    run_tests()
