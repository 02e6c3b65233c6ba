#!/usr/bin/env python3
"""The NAT lab: network namespaces, veth pairs and nftables NAT routers.

One description (TOPOLOGY, NAT_TYPES, SYSCTLS below) drives both the
namespace lab built here and docker/docker-compose.yml (`lab.py compose`).
See tests/netns/README.md for how each NAT type is made and why it shows
the RFC 4787 behaviour it claims.

    with Lab(site_a="port-restricted", site_b="symmetric-sequential") as lab:
        lab.run("a", ["ip", "addr"])           # a command in host a's namespace
        p = lab.popen("server", [...])         # a process, stopped at close
        lab.server_ips, lab.host_ip["a"], lab.router_ip["b"]

Command line (as root):
    lab.py up [--site-a T] [--site-b T] [--hairpin] [--shared]   build, wait for Ctrl-C
              [--delay [LINK=]MS]... [--loss [LINK=]P]...           with delay / loss (LINK: a, b, server)
    lab.py rules --nat T [--site a] [--hairpin]                  print a router's ruleset
    lab.py compose [-o FILE]                                     write the compose file
    lab.py cleanup [--run-id ID | --stale]                       remove leftover nkl- namespaces
Nodes: inet (the internet router), server, ra/rb (NAT routers), a/b (hosts).
Python 3 stdlib only.
"""
import argparse
import atexit
import ipaddress
import os
import secrets
import select
import signal
import subprocess
import sys
import time

# ---------------------------------------------------------------------------
# The description. Public side: documentation ranges (RFC 5737). Inside the
# sites: private ranges (RFC 1918). No address ends in .1 so that docker's
# bridge gateways (always .1 of a subnet) never collide with the lab's.

PREFIX = "nkl-"

TOPOLOGY = {
    "server": {
        "net": "192.0.2.0/24",          # the server's link to the internet router
        "inet": "192.0.2.254",          # the internet router's address on it
        "addrs": ["192.0.2.10", "192.0.2.11"],  # two addresses: RFC 5780
    },
    "sites": {
        "a": {
            "wan_net": "198.51.100.0/25", "wan_inet": "198.51.100.126",
            "wan_router": "198.51.100.2",
            "lan_private": "10.1.0.0/24",         # LAN when the site has a NAT
            "lan_public": "198.51.100.128/25",    # LAN when the site has none
            "seq": (20000, 1),                    # symmetric-sequential: base, delta
        },
        "b": {
            "wan_net": "203.0.113.0/25", "wan_inet": "203.0.113.126",
            "wan_router": "203.0.113.2",
            "lan_private": "10.2.0.0/24",
            "lan_public": "203.0.113.128/25",
            "seq": (30000, 2),
        },
    },
    # Inside a LAN: the router is the last usable address, hosts start at +10.
    "lan_router_from_end": 1,
    "lan_host_offset": 10,
    # Namespace / container roles.
    "nodes": {"inet": "inet", "server": "srv", "ra": "ra", "rb": "rb", "a": "a", "b": "b"},
}

# RFC 4787 behaviour of each type: mapping (s4.1), filtering (s5),
# port allocation (s4.2.1). README.md explains how each is made.
NAT_TYPES = {
    "none":                 ("none", "none", "none"),
    "full-cone":            ("endpoint-independent", "endpoint-independent", "preserving"),
    "address-restricted":   ("endpoint-independent", "address-dependent", "preserving"),
    "port-restricted":      ("endpoint-independent", "address-and-port-dependent", "preserving"),
    "masquerade":           ("endpoint-independent*", "address-and-port-dependent", "preserving"),
    "symmetric-random":     ("address-and-port-dependent", "address-and-port-dependent", "random"),
    "symmetric-sequential": ("address-and-port-dependent", "address-and-port-dependent", "sequential"),
}

# Sequential allocation: per site a base port and the delta between
# consecutive new flows (TOPOLOGY sites' "seq"; they differ so that a test
# between two sequential NATs tells the two windows apart), and the size of
# the cycle before it wraps.
SEQ_COUNT = 1024


def seq_params(site):
    """(base port, delta, count) of site's symmetric-sequential NAT."""
    base, delta = TOPOLOGY["sites"][site]["seq"]
    return base, delta, min(SEQ_COUNT, (65535 - base) // delta)
# Mapping lifetime of the dynamic sets (refreshed by outbound traffic).
MAP_TIMEOUT = "120s"

# Set explicitly in every namespace: a new namespace copies some of these
# from the root namespace (net.core.devconf_inherit_init_net), so the lab
# must not depend on the machine's values.
SYSCTLS_COMMON = {
    "net.ipv4.conf.all.rp_filter": 1,
    "net.ipv4.conf.default.rp_filter": 1,
    "net.ipv4.conf.all.accept_redirects": 0,
    "net.ipv4.conf.default.accept_redirects": 0,
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
}
SYSCTLS = {
    "router": dict(SYSCTLS_COMMON, **{
        "net.ipv4.ip_forward": 1,
        # a hairpinned packet leaves by the interface it came in on: no redirect
        "net.ipv4.conf.all.send_redirects": 0,
        "net.ipv4.conf.default.send_redirects": 0,
    }),
    "host": dict(SYSCTLS_COMMON, **{"net.ipv4.ip_forward": 0}),
}
# Conntrack lifetimes on the NAT routers (per namespace once conntrack runs).
SYSCTLS_CONNTRACK = {
    "net.netfilter.nf_conntrack_udp_timeout": 30,
    "net.netfilter.nf_conntrack_udp_timeout_stream": 120,
}


def lan_addrs(site, nat):
    """(lan network, router's LAN address, [host addresses]) of a site."""
    s = TOPOLOGY["sites"][site]
    net = ipaddress.ip_network(s["lan_public"] if nat == "none" else s["lan_private"])
    router = net.broadcast_address - TOPOLOGY["lan_router_from_end"]
    hosts = [net.network_address + TOPOLOGY["lan_host_offset"] + i for i in range(2)]
    return net, str(router), [str(h) for h in hosts]


# ---------------------------------------------------------------------------
# Router rulesets. Interface names are "wan" and "lan" in both the lab and
# the containers (the container entrypoint renames its interfaces).

def _snat_stmts(site, nat, pub):
    """The source-NAT statements of a type, in order (first match wins)."""
    if nat in ("full-cone", "address-restricted", "port-restricted"):
        # Endpoint-independent mapping made explicit: reuse the mapping this
        # internal address:port already has; a new one never takes an
        # external port another internal endpoint holds (random instead);
        # else the kernel keeps the source port (when the 5-tuple is free).
        return ["snat ip to ip saddr . meta l4proto . th sport map @m_out",
                "meta l4proto . th sport @m_fwd snat ip to %s:1024-65535 random" % pub,
                "snat ip to %s" % pub]
    if nat == "masquerade":
        return ["oifname \"wan\" masquerade", "snat ip to %s" % pub]
    if nat == "symmetric-random":
        return ["snat ip to %s:1024-65535 fully-random" % pub]
    if nat == "symmetric-sequential":
        # "numgen inc mod N offset BASE" as a port puts the number in host
        # byte order (nft 1.0.6: port 20000 comes out as 8270, delta 256),
        # so the counter indexes a map whose values are typed ports.
        base, delta, n = seq_params(site)
        elems = ["%d : %d" % (i, base + i * delta) for i in range(n)]
        rows = [", ".join(elems[i:i + 8]) for i in range(0, n, 8)]
        return ["snat ip to %s : numgen inc mod %d map {\n\t\t\t%s }"
                % (pub, n, ",\n\t\t\t".join(rows))]
    raise ValueError("unknown NAT type %r" % nat)


def router_rules(site, nat, hairpin):
    """The nftables ruleset of site's router for a NAT type (text)."""
    if nat not in NAT_TYPES:
        raise ValueError("unknown NAT type %r (known: %s)" % (nat, ", ".join(NAT_TYPES)))
    pub = TOPOLOGY["sites"][site]["wan_router"]
    lan, _, _ = lan_addrs(site, nat)
    out = ["# natkit lab: router of site %s, NAT type %s, hairpinning %s"
           % (site, nat, "on" if hairpin else "off"),
           "table ip natkit", "delete table ip natkit", "table ip natkit {"]
    if nat == "none":
        out += ["\tchain filter_fwd { type filter hook forward priority filter; policy accept; }", "}"]
        return "\n".join(out) + "\n"
    tcpudp = "meta l4proto { tcp, udp }"
    for name, typ in (("m_out", "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"),
                      ("m_fwd", "inet_proto . inet_service : ipv4_addr . inet_service")):
        out.append("\tmap %s { type %s; flags dynamic, timeout; timeout %s; }" % (name, typ, MAP_TIMEOUT))
    out.append("\tset s_adf { type inet_proto . inet_service . ipv4_addr; flags dynamic, timeout; timeout %s; }"
               % MAP_TIMEOUT)
    # Inbound: new flows from outside, and hairpinned flows from inside.
    out.append("\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;")
    fwd = "dnat ip to meta l4proto . th dport map @m_fwd"
    if nat == "full-cone":
        out.append("\t\tiifname \"wan\" ip daddr %s %s %s" % (pub, tcpudp, fwd))
    if nat == "address-restricted":
        out.append("\t\tiifname \"wan\" ip daddr %s %s meta l4proto . th dport . ip saddr @s_adf %s"
                   % (pub, tcpudp, fwd))
    if hairpin:
        out.append("\t\tiifname \"lan\" ip daddr %s %s %s" % (pub, tcpudp, fwd))
    out.append("\t}")
    # Outbound (and hairpinned: from the LAN back into the LAN).
    out.append("\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;")
    # Back into the LAN only what `pre` hairpinned (ct status dnat): traffic
    # between two hosts of a shared LAN is bridged, and the bridge hands it
    # to these hooks too (br_netfilter), but a NAT never sees it.
    for oif in ("oifname \"wan\"", "oifname \"lan\" ct status dnat"):
        for st in _snat_stmts(site, nat, pub):
            out.append("\t\tip saddr %s %s %s %s" % (lan, oif, tcpudp, st))
    out.append("\t\tip saddr %s oifname \"wan\" snat ip to %s" % (lan, pub))
    out.append("\t}")
    # Record every outbound mapping after NAT chose it (reply tuple = mapped).
    out.append("\tchain rec {\n\t\ttype filter hook postrouting priority srcnat + 10; policy accept;")
    rec = "oifname \"wan\" ct direction original %s" % tcpudp
    if nat in ("full-cone", "address-restricted", "port-restricted"):
        out.append("\t\t%s update @m_out { ct original ip saddr . meta l4proto . "
                   "ct original proto-src : ct reply ip daddr . ct reply proto-dst }" % rec)
    out.append("\t\t%s update @m_fwd { meta l4proto . ct reply proto-dst : "
               "ct original ip saddr . ct original proto-src }" % rec)
    if nat == "address-restricted":
        out.append("\t\t%s update @s_adf { meta l4proto . ct reply proto-dst . ip daddr }" % rec)
    out.append("\t}")
    # Nothing unsolicited passes the NAT unless a rule above translated it.
    out += ["\tchain filter_fwd {", "\t\ttype filter hook forward priority filter; policy accept;",
            "\t\tiifname \"wan\" ct state new ct status dnat accept",
            "\t\tiifname \"wan\" ct state new drop", "\t}",
            "\tchain filter_in {", "\t\ttype filter hook input priority filter; policy accept;",
            "\t\tct state new %s drop" % tcpudp, "\t}", "}"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# Impairments: one-way delay and random loss on inet's links (a site's
# uplink, or the server's link), applied in the inet namespace to every
# packet crossing the link, in each direction. This kernel has no netem (nor
# fq/etf for the tstamp model): loss is an nftables rule (numgen random);
# delay holds each packet in an NFQUEUE queue inside the kernel and
# nfqdelay.py releases it DELAY ms later (README.md, "Delay and loss").
# Lab-only: compose() does not carry them (the containers have no
# impairments; see README.md).

NFQDELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nfqdelay.py")
LOSS_SCALE = 1000000     # loss resolution: parts per million
IMPAIR_PRIORITY = -300   # before anything else in inet (iptables' filter is 0)


def impair_links(p):
    """{link name: inet's interface} of a plan: the sites' uplinks and the server's link."""
    out = {}
    for left, lif, right, _rif, _net in p["links"]:
        if left == "inet":  # right: "server", or a site's router "ra" / "rb"
            out["server" if right == "server" else right[1:]] = lif
    return out


def per_link(value, links, what, upper=None):
    """value: None, a number for every site, or {link: number}; -> {link: float} of
    the nonzero ones. links: the valid link names (impair_links)."""
    if value is None:
        return {}
    d = dict(value) if isinstance(value, dict) else {k: value for k in links if k != "server"}
    out = {}
    for k, v in d.items():
        if k not in links:
            raise ValueError("%s: no link %r (have %s)" % (what, k, ", ".join(sorted(links))))
        v = float(v)
        if v < 0 or (upper is not None and v >= upper):
            raise ValueError("%s of %s: %r out of range" % (what, k, v))
        if v:
            out[k] = v
    return out


def loss_rules(loss, links):
    """nftables text for inet: drop each packet entering or leaving an
    impaired link with its loss probability (each direction on its own)."""
    out = ["# natkit lab: loss on inet's links", "table ip impair", "delete table ip impair",
           "table ip impair {"]
    for hook, dirs in (("forward", ("iifname", "oifname")), ("input", ("iifname",)),
                       ("output", ("oifname",))):
        out.append("\tchain %s {\n\t\ttype filter hook %s priority %d; policy accept;"
                   % (hook, hook, IMPAIR_PRIORITY))
        for link, p in sorted(loss.items()):
            for d in dirs:
                out.append("\t\t%s \"%s\" numgen random mod %d < %d counter drop"
                           % (d, links[link], LOSS_SCALE, round(p * LOSS_SCALE)))
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


def delay_rules(delay, links):
    """-> (iptables-restore text for inet, {queue number: ms}). A packet
    forwarded from link L1 to L2 waits delay[L1] + delay[L2] in one queue
    (one queue per distinct total, so each queue is FIFO); packets to or
    from inet itself wait their one link's delay."""
    queues = {}

    def q(ms):
        return queues.setdefault(ms, len(queues) + 1)

    rules = []
    for l1 in sorted(links):
        for l2 in sorted(links):
            ms = delay.get(l1, 0) + delay.get(l2, 0)
            if l1 != l2 and ms:
                rules.append("-A FORWARD -i %s -o %s -j NFQUEUE --queue-num %d"
                             % (links[l1], links[l2], q(ms)))
        if delay.get(l1):
            rules.append("-A INPUT -i %s -j NFQUEUE --queue-num %d" % (links[l1], q(delay[l1])))
            rules.append("-A OUTPUT -o %s -j NFQUEUE --queue-num %d" % (links[l1], q(delay[l1])))
    text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    text += "".join(r + "\n" for r in rules) + "COMMIT\n"
    return text, {n: ms for ms, n in queues.items()}


# ---------------------------------------------------------------------------
# The plan: namespaces, links, addresses and routes, derived from the
# description. Used by Lab (ip netns) and by compose().

def hairpin_of(hairpin, site):
    """hairpin is a bool for both sites or a dict {site: bool}."""
    return bool(hairpin.get(site, False)) if isinstance(hairpin, dict) else bool(hairpin)


def plan(site_a, site_b, hairpin, shared):
    """-> dict with nodes {role: kind}, links, addrs {role: [(ifname, cidr)]},
    routes {role: [(dst, via)]}, rules {router role: text}, sites."""
    sites = {"a": site_a} if shared else {"a": site_a, "b": site_b}
    srv = TOPOLOGY["server"]
    snet = ipaddress.ip_network(srv["net"])
    p = {"nodes": {"inet": "router", "server": "host"}, "links": [], "addrs": {}, "routes": {},
         "rules": {}, "sites": sites, "host_ip": {}, "router_ip": {}, "lan": {}}
    p["links"].append(("inet", "srv", "server", "eth0", str(snet)))
    p["addrs"]["inet"] = [("srv", "%s/%d" % (srv["inet"], snet.prefixlen))]
    p["addrs"]["server"] = [("eth0", "%s/%d" % (a, snet.prefixlen)) for a in srv["addrs"]]
    p["routes"]["server"] = [("default", srv["inet"])]
    p["routes"]["inet"] = []
    for site, nat in sites.items():
        s = TOPOLOGY["sites"][site]
        r = "r" + site
        wnet = ipaddress.ip_network(s["wan_net"])
        lan, rlan, hosts = lan_addrs(site, nat)
        p["nodes"][r] = "router"
        p["links"].append(("inet", "wan" + site, r, "wan", str(wnet)))
        p["addrs"]["inet"].append(("wan" + site, "%s/%d" % (s["wan_inet"], wnet.prefixlen)))
        p["addrs"][r] = [("wan", "%s/%d" % (s["wan_router"], wnet.prefixlen)),
                         ("lan", "%s/%d" % (rlan, lan.prefixlen))]
        p["routes"][r] = [("default", s["wan_inet"])]
        if nat == "none":
            p["routes"]["inet"].append((str(lan), s["wan_router"]))
        p["rules"][r] = router_rules(site, nat, hairpin_of(hairpin, site))
        p["router_ip"][site] = s["wan_router"] if nat != "none" else None
        p["lan"][site] = str(lan)
        members = ["a", "b"] if shared else [site]
        for i, h in enumerate(members):
            p["nodes"][h] = "host"
            # shared: both hosts' veths are ports of a bridge "lan" (see Lab._build)
            p["links"].append((r, "lanp%d" % i if shared else "lan", h, "eth0", str(lan)))
            p["addrs"][h] = [("eth0", "%s/%d" % (hosts[i], lan.prefixlen))]
            p["routes"][h] = [("default", rlan)]
            p["host_ip"][h] = hosts[i]
    if shared:
        p["router_ip"]["b"] = p["router_ip"]["a"]
    return p


# ---------------------------------------------------------------------------
# Running commands.

def _sh(argv, check=True, input=None, timeout=30):
    r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r


def list_namespaces(prefix=PREFIX):
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def remove_namespace(name):
    """Kill what runs in a lab namespace (only lab processes run there), then delete it."""
    pids = _sh(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    for pid in pids:  # reap / wait until gone (bounded)
        deadline = time.monotonic() + 2
        while os.path.exists("/proc/%s" % pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    _sh(["ip", "netns", "delete", name], check=False)


def cleanup_all(prefix=PREFIX):
    """Remove every leftover lab namespace (their veths go with them)."""
    names = list_namespaces(prefix)
    for n in names:
        remove_namespace(n)
    return names


# Each live lab leaves an owner file: OWNERS/<run id> = "<pid> <start time>".
# A lab whose owner died without closing it (SIGKILL, e.g. a test timeout)
# is stale; every new lab removes stale ones first. Live labs of other runs
# are never touched.
OWNERS = "/run/natkit-lab"


def _proc_start(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(text):
    try:
        pid, start = text.split()
        return _proc_start(int(pid)) == start
    except ValueError:
        return False


def cleanup_stale():
    """Remove labs whose owning process is gone; -> namespaces removed."""
    removed = []
    try:
        ids = os.listdir(OWNERS)
    except FileNotFoundError:
        return removed
    for rid in ids:
        path = os.path.join(OWNERS, rid)
        try:
            with open(path) as f:
                alive = _owner_alive(f.read())
        except OSError:
            continue
        if not alive:
            removed += cleanup_all("%s%s-" % (PREFIX, rid))
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return removed


_live_labs = []
_handlers_installed = False


def _close_all_labs():
    for lab in list(_live_labs):
        lab.close()


def _on_signal(signum, frame):
    _close_all_labs()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    sys.exit(128 + signum)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_close_all_labs)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


class Lab:
    """The namespace lab. Use as a context manager; close() is idempotent and
    also runs at exit and on SIGINT/SIGTERM/SIGHUP."""

    def __init__(self, site_a="port-restricted", site_b="port-restricted", hairpin=False,
                 shared=False, run_id=None, delay=None, loss=None):
        """delay: one-way ms, loss: probability (0 <= p < 1), each either one
        number for every site's uplink or a dict {link: value} with links
        "a", "b" (the sites' uplinks) and "server"; applied to every packet
        crossing the link, in each direction (see impair())."""
        for t in (site_a, site_b):
            if t not in NAT_TYPES:
                raise ValueError("unknown NAT type %r (known: %s)" % (t, ", ".join(NAT_TYPES)))
        self.run_id = run_id or secrets.token_hex(3)
        self.hairpin, self.shared = hairpin, shared
        # per host: does its NAT hairpin? (shared: both behind site a's)
        self.hairpin_at = {h: hairpin_of(hairpin, "a" if shared else h) for h in ("a", "b")}
        self.plan = plan(site_a, site_b, hairpin, shared)
        self.nat = {"a": site_a, "b": site_a if shared else site_b}
        self.server_ips = list(TOPOLOGY["server"]["addrs"])
        self.host_ip = dict(self.plan["host_ip"])
        self.router_ip = dict(self.plan["router_ip"])
        self._procs = []
        self._made = []
        self._closed = False
        self.links = impair_links(self.plan)
        self.delay = per_link(delay, self.links, "delay")
        self.loss = per_link(loss, self.links, "loss", 1)
        self._delayd = None
        self._lossy = False

    # -- names and commands
    def ns(self, node):
        if node not in self.plan["nodes"]:
            raise KeyError("no node %r in this lab (have %s)" % (node, ", ".join(self.plan["nodes"])))
        return "%s%s-%s" % (PREFIX, self.run_id, TOPOLOGY["nodes"][node])

    def cmd(self, node, argv):
        return ["ip", "netns", "exec", self.ns(node)] + list(argv)

    def run(self, node, argv, check=True, timeout=60, input=None):
        """Run argv in node's namespace; -> CompletedProcess (text output)."""
        r = subprocess.run(self.cmd(node, argv), capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise RuntimeError("[%s] %s: exit %d\n%s%s" % (node, " ".join(argv), r.returncode,
                                                          r.stdout, r.stderr))
        return r

    def popen(self, node, argv, **kw):
        """Start argv in node's namespace; stopped when the lab closes."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(self.cmd(node, argv), **kw)
        self._procs.append(p)
        return p

    def nft(self, node, text):
        return self.run(node, ["nft", "-f", "-"], input=text)

    # -- build and tear down
    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def up(self):
        _install_handlers()
        cleanup_stale()
        _live_labs.append(self)
        os.makedirs(OWNERS, exist_ok=True)
        with open(os.path.join(OWNERS, self.run_id), "w") as f:
            f.write("%d %s\n" % (os.getpid(), _proc_start(os.getpid())))
        try:
            self._build()
            self._apply_impairments()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self):
        p = self.plan
        for node, kind in p["nodes"].items():
            name = self.ns(node)
            if os.path.exists("/run/netns/" + name):
                raise RuntimeError("namespace %s exists already (run id clash?)" % name)
            self._made.append(name)
            _sh(["ip", "netns", "add", name])
            for k, v in SYSCTLS[kind].items():
                _sh(["ip", "netns", "exec", name, "sysctl", "-q", "-w", "%s=%s" % (k, v)])
            _sh(["ip", "-n", name, "link", "set", "lo", "up"])
        for left, lif, right, rif, _net in p["links"]:
            # created directly inside the namespaces: nothing ever sits in the root namespace
            _sh(["ip", "link", "add", lif, "netns", self.ns(left), "type", "veth",
                 "peer", "name", rif, "netns", self.ns(right)])
        for left, lif, _right, _rif, _net in p["links"]:
            if lif.startswith("lanp"):  # shared mode: a bridged LAN
                ns = self.ns(left)
                if subprocess.run(["ip", "-n", ns, "link", "show", "lan"],
                                  capture_output=True).returncode != 0:
                    _sh(["ip", "-n", ns, "link", "add", "lan", "type", "bridge"])
                _sh(["ip", "-n", ns, "link", "set", lif, "master", "lan", "up"])
        for node, addrs in p["addrs"].items():
            for ifname, cidr in addrs:
                _sh(["ip", "-n", self.ns(node), "addr", "add", cidr, "dev", ifname])
            for ifname in sorted({a[0] for a in addrs}):
                _sh(["ip", "-n", self.ns(node), "link", "set", ifname, "up"])
        for node, routes in p["routes"].items():
            for dst, via in routes:
                _sh(["ip", "-n", self.ns(node), "route", "add", dst, "via", via])
        for router, text in p["rules"].items():
            self.nft(router, text)
            if self.nat[router[1]] != "none":
                for k, v in SYSCTLS_CONNTRACK.items():
                    self.run(router, ["sysctl", "-q", "-w", "%s=%s" % (k, v)])

    # -- delay and loss
    def impair(self, delay=None, loss=None):
        """Replace the lab's impairments (same forms as the constructor;
        None: none) on a running lab."""
        self.delay = per_link(delay, self.links, "delay")
        self.loss = per_link(loss, self.links, "loss", 1)
        self._apply_impairments()

    def _apply_impairments(self):
        if self.loss:
            self.nft("inet", loss_rules(self.loss, self.links))
        elif self._lossy:
            self.nft("inet", "delete table ip impair\n")
        self._lossy = bool(self.loss)
        if self._delayd is not None:
            # no rules while the delay line restarts: packets pass, none is stranded
            self.run("inet", ["iptables-restore", "-w", "5"], input=delay_rules({}, self.links)[0])
            self._delayd.terminate()
            self._delayd.wait(timeout=5)
            self._procs.remove(self._delayd)
            self._delayd = None
        if not self.delay:
            return
        text, queues = delay_rules(self.delay, self.links)
        self._delayd = self.popen("inet", [sys.executable, NFQDELAY] +
                                  ["%d:%g" % q for q in sorted(queues.items())],
                                  stdout=subprocess.PIPE, text=True)
        self._await_line(self._delayd, "nfqdelay ready", 10)
        self.run("inet", ["iptables-restore", "-w", "5"], input=text)

    @staticmethod
    def _await_line(p, want, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([p.stdout], [], [], deadline - time.monotonic())[0]:
                break
            line = p.stdout.readline()
            if not line:
                break
            if line.strip() == want:
                return
        raise RuntimeError("no %r within %g s (exit %s)" % (want, timeout, p.poll()))

    def close(self):
        if self._closed:
            return
        self._closed = True
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 3
        for p in self._procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for name in reversed(self._made):
            remove_namespace(name)
        try:
            os.unlink(os.path.join(OWNERS, self.run_id))
        except FileNotFoundError:
            pass
        if self in _live_labs:
            _live_labs.remove(self)

    # -- inspection
    def conntrack(self, site):
        """The router's conntrack table (conntrack -L lines)."""
        return self.run("r" + site, ["conntrack", "-L"], check=False).stdout.splitlines()

    def describe(self):
        lines = ["lab %s: server %s" % (self.run_id, " ".join(self.server_ips))]
        for site in sorted(self.plan["sites"]):
            lines.append("site %s: %s%s, router public %s, LAN %s" % (
                site, self.nat[site], " +hairpin" if self.hairpin_at[site] else "", self.router_ip[site],
                self.plan["lan"][site]))
        for what, d, unit in (("delay", self.delay, " ms one-way"), ("loss", self.loss, "")):
            if d:
                lines.append("%s: %s" % (what, ", ".join("%s %g%s" % (k, v, unit)
                                                         for k, v in sorted(d.items()))))
        for h in sorted(self.host_ip):
            lines.append("host %s: %s (namespace %s)" % (h, self.host_ip[h], self.ns(h)))
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# docker-compose.yml, generated from the same plan and the same rulesets.

COMPOSE_DEFAULTS = {"site_a": "port-restricted", "site_b": "symmetric-sequential", "hairpin": False}


STUND_LAB_CONF = """# stund in the lab: RFC 5780 on the server's two addresses
%s
listening-port = 3478
alt-listening-port = 3479
no-tls
no-dtls
realm = natkit
# A lab-only credential so TURN and the rendezvous serve (no open relay):
# natclient uses it via NATCLIENT_USER=lab NATCLIENT_PASSWORD=natkit-lab.
user = lab:natkit-lab
log-file = stderr
"""


def _entrypoint(role, p):
    """The shell run first in a container: rename interfaces to the lab's
    names (found by subnet), add addresses, routes, the NAT rules and the
    conntrack sysctls, then exec the service."""
    sh = ["set -e"]
    addrs = p["addrs"].get(role, [])
    for ifname, cidr in addrs:
        if role == "server" and cidr != addrs[0][1]:
            sh.append("ip addr add %s dev %s" % (cidr, ifname))
            continue
        net = str(ipaddress.ip_interface(cidr).network)
        sh.append("d=$(ip -o -4 addr show to %s | awk '{print $2}' | head -n1)" % net)
        sh.append("[ \"$d\" = %s ] || { ip link set \"$d\" down; ip link set \"$d\" name %s; "
                  "ip link set %s up; }" % (ifname, ifname, ifname))
    for dst, via in p["routes"].get(role, []):
        sh.append("ip route replace %s via %s" % (dst, via))
    if role in p["rules"]:
        sh.append("nft -f /dev/stdin <<'EOF'\n%sEOF" % p["rules"][role])
        if p["sites"][role[1]] != "none":
            sh += ["sysctl -q -w %s=%s" % kv for kv in SYSCTLS_CONNTRACK.items()]
    if role == "server":
        conf = STUND_LAB_CONF % "\n".join("listening-ip = %s" % c.split("/")[0] for _, c in addrs)
        sh.append("cat > /etc/natkit/lab.conf <<'EOF'\n%sEOF" % conf)
        sh.append("exec stund -c /etc/natkit/lab.conf")
    else:
        sh.append("exec sleep infinity")
    return "\n".join(sh) + "\n"


def compose(site_a=None, site_b=None, hairpin=None):
    """The docker-compose.yml text for the lab (same plan, same rules)."""
    site_a = site_a or COMPOSE_DEFAULTS["site_a"]
    site_b = site_b or COMPOSE_DEFAULTS["site_b"]
    hairpin = COMPOSE_DEFAULTS["hairpin"] if hairpin is None else hairpin
    p = plan(site_a, site_b, hairpin, False)
    y = ["# GENERATED by `tests/netns/lab.py compose` from the lab's description: do not",
         "# edit; edit lab.py and regenerate. NAT types: site a %s, site b %s,"
         % (site_a, site_b),
         "# hairpinning %s. See docker/README.md." % ("on" if hairpin else "off"),
         "version: \"2.4\"", "", "networks:"]
    nets = {}
    for left, lif, right, rif, net in p["links"]:
        name = "%s_%s" % (TOPOLOGY["nodes"][left], lif)
        nets[(left, lif)] = nets[(right, rif)] = name
        y += ["  %s:" % name, "    internal: true", "    ipam:", "      config:",
              "        - subnet: %s" % net]
    y += ["", "services:"]
    for role, kind in p["nodes"].items():
        svc = TOPOLOGY["nodes"][role]
        y += ["  %s:" % svc, "    build:", "      context: ..", "      dockerfile: docker/Dockerfile",
              "    image: natkit:lab", "    hostname: %s" % svc, "    cap_add: [NET_ADMIN]",
              "    sysctls:"]
        y += ["      %s: \"%s\"" % kv for kv in SYSCTLS[kind].items()]
        y.append("    networks:")
        done = set()
        for ifname, cidr in p["addrs"][role]:  # a second address on a link: ip addr add
            key = nets.get((role, ifname))
            if key is not None and key not in done:
                done.add(key)
                y += ["      %s:" % key, "        ipv4_address: %s" % cidr.split("/")[0]]
        y += ["    entrypoint: [\"/bin/sh\", \"-c\"]", "    command:", "      - |"]
        y += [("        " + l).rstrip() for l in _entrypoint(role, p).replace("$", "$$").splitlines()]
        if role in ("a", "b"):
            y.append("    depends_on: [r%s]" % role)
        elif kind == "router" and role != "inet":
            y.append("    depends_on: [inet]")
    return "\n".join(y) + "\n"


# ---------------------------------------------------------------------------

def _link_args(items):
    """["40"] -> 40.0 (every site); ["a=40", "server=5"] -> {"a": 40.0, "server": 5.0}."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        return float(items[0])
    return {k: float(v) for k, v in (i.split("=", 1) for i in items)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="lab.py", description="natkit NAT lab (network namespaces)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build a lab and keep it until Ctrl-C")
    up.add_argument("--site-a", default="port-restricted", choices=list(NAT_TYPES))
    up.add_argument("--site-b", default="port-restricted", choices=list(NAT_TYPES))
    up.add_argument("--hairpin", action="store_true")
    up.add_argument("--shared", action="store_true", help="host b behind site a's NAT too")
    up.add_argument("--delay", action="append", metavar="[LINK=]MS",
                    help="one-way delay on a link (a, b, server; default both sites); repeatable")
    up.add_argument("--loss", action="append", metavar="[LINK=]P",
                    help="loss probability on a link (a, b, server; default both sites)")
    ru = sub.add_parser("rules", help="print a router's nftables ruleset")
    ru.add_argument("--nat", required=True, choices=list(NAT_TYPES))
    ru.add_argument("--site", default="a", choices=["a", "b"])
    ru.add_argument("--hairpin", action="store_true")
    co = sub.add_parser("compose", help="write the docker-compose.yml")
    co.add_argument("-o", "--output", help="file (default: docker/docker-compose.yml; - for stdout)")
    co.add_argument("--site-a", choices=list(NAT_TYPES))
    co.add_argument("--site-b", choices=list(NAT_TYPES))
    co.add_argument("--hairpin", action="store_true", default=None)
    cl = sub.add_parser("cleanup", help="remove leftover %s namespaces" % PREFIX)
    cl.add_argument("--run-id", help="only this lab run's namespaces (%sRUNID-*)" % PREFIX)
    cl.add_argument("--stale", action="store_true",
                    help="only labs whose owning process is gone (safe beside running labs)")
    a = ap.parse_args(argv)
    if a.cmd == "rules":
        sys.stdout.write(router_rules(a.site, a.nat, a.hairpin))
        return 0
    if a.cmd == "compose":
        text = compose(a.site_a, a.site_b, a.hairpin)
        out = a.output or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       "..", "..", "docker", "docker-compose.yml")
        if out == "-":
            sys.stdout.write(text)
        else:
            with open(out, "w") as f:
                f.write(text)
        return 0
    if os.geteuid() != 0:
        print("lab.py: %s needs root (network namespaces)" % a.cmd, file=sys.stderr)
        return 2
    if a.cmd == "cleanup":
        if a.stale:
            names = cleanup_stale()
        else:
            names = cleanup_all(PREFIX + a.run_id + "-" if a.run_id else PREFIX)
        for n in names:
            print("removed", n)
        return 0
    with Lab(a.site_a, a.site_b, a.hairpin, a.shared, delay=_link_args(a.delay),
             loss=_link_args(a.loss)) as lab:
        print(lab.describe())
        print("ip netns exec %s bash   # a shell on host a; Ctrl-C here removes the lab" % lab.ns("a"))
        sys.stdout.flush()
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
