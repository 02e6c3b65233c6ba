#!/usr/bin/env python3
"""A delay line for the NAT lab: the kernel holds packets in NFQUEUE queues
(nfnetlink_queue), this process only decides when to release each one.

This kernel has no netem, fq, etf or BPF qdisc (and no modules), so no
qdisc honours skb->tstamp and a constant per-packet delay cannot be made by
the kernel alone (tests/netns/README.md). Instead an iptables NFQUEUE rule
(`-j NFQUEUE --queue-num N`) hands each packet to queue N, where it stays
in the kernel; this process gets only its id (copy mode META, no payload),
and gives the verdict NF_ACCEPT DELAY ms after it was queued. The packet
then continues through the stack unchanged, in order (one delay per queue).

    nfqdelay.py N:MS [N:MS ...]    e.g. nfqdelay.py 1:40 2:80

Prints "nfqdelay ready" once every queue is bound; runs until SIGTERM or
SIGINT (the kernel drops what is still queued when the socket closes).
Python 3 stdlib only; needs CAP_NET_ADMIN in the namespace.
"""
import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_ACCEPT = 1
QUEUE_MAXLEN = 8192


def _attr(typ, data):
    n = 4 + len(data)
    return struct.pack("=HH", n, typ) + data + b"\0" * ((4 - n % 4) % 4)


def _msg(msg, queue, attrs, flags=NLM_F_REQUEST, seq=0):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq,
                       0) + body


def _attrs(buf):
    out, off = {}, 0
    while off + 4 <= len(buf):
        n, typ = struct.unpack_from("=HH", buf, off)
        if n < 4:
            break
        out[typ & 0x7fff] = buf[off + 4:off + n]
        off += (n + 3) & ~3
    return out


def _messages(data):
    off = 0
    while off + 16 <= len(data):
        n, typ, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
        if n < 16:
            break
        yield typ, seq, data[off + 16:off + n]
        off += (n + 3) & ~3


def _config(sock, queue, seq):
    """Bind queue, copy metadata only, room for QUEUE_MAXLEN packets; wait for the ACKs."""
    reqs = [_attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, 0)),
            _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
            _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))]
    for i, a in enumerate(reqs):
        sock.send(_msg(NFQNL_MSG_CONFIG, queue, [a], NLM_F_REQUEST | NLM_F_ACK, seq + i))
        _await_ack(sock, seq + i)
    return seq + len(reqs)


def _await_ack(sock, seq):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for typ, s, body in _messages(sock.recv(65536)):
            if typ == NLMSG_ERROR and s == seq:
                err = struct.unpack_from("=i", body)[0]
                if err:
                    raise OSError(-err, "nfqueue config: %s" % os.strerror(-err))
                return
    raise TimeoutError("nfqueue config: no ack")


def run(delays):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: bursts of probes
    sock.bind((0, 0))
    seq = 1
    for q in sorted(delays):
        seq = _config(sock, q, seq)
    print("nfqdelay ready", flush=True)
    pending = []  # heap of (release time, arrival order, queue, packet id)
    n = 0
    while True:
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        if select.select([sock], [], [], timeout)[0]:
            now = time.monotonic()
            try:
                data = sock.recv(1 << 20)
            except OSError as e:  # ENOBUFS: the kernel dropped what did not fit
                print("nfqdelay: %s" % e, file=sys.stderr, flush=True)
                continue
            for typ, _s, body in _messages(data):
                if typ != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    continue
                queue = socket.ntohs(struct.unpack_from("=H", body, 2)[0])
                hdr = _attrs(body[4:]).get(NFQA_PACKET_HDR)
                if hdr is None or queue not in delays:
                    continue
                pid = struct.unpack_from("!I", hdr)[0]
                n += 1
                heapq.heappush(pending, (now + delays[queue], n, queue, pid))
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _t, _n, queue, pid = heapq.heappop(pending)
            sock.send(_msg(NFQNL_MSG_VERDICT, queue,
                           [_attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))]))


def main(argv):
    delays = {}
    for a in argv:
        q, ms = a.split(":")
        delays[int(q)] = float(ms) / 1000.0
    if not delays:
        print(__doc__, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run(delays)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
