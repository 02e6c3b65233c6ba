#!/usr/bin/env python3
"""Rendezvous round trip on loopback: RdvConnect sent -> Offer received by
the registered peer -> Answer -> RdvConnect response, over UDP against a real
stund (2 workers), with tests/integration/test_rendezvous.py's client.

    NATKIT_BUILD=build python3 bench/rdv_latency.py [RUNS]

Prints the median and p95 in milliseconds (Python on both ends dominates)."""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import test_rendezvous as t  # noqa: E402

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
a, b = t.peer("user1"), t.peer("user2")
t.expect_ok(t.register(a, "lat"), a)
t.learn(b)
lat = []
for _ in range(runs):
    t0 = time.monotonic()
    c = t.Connector(b, "lat")
    c.start()
    o = t.next_offer(a)
    t.expect_ok(t.answer(a, o), a)
    t.expect_ok(c.result(), b)
    lat.append((time.monotonic() - t0) * 1000)
lat.sort()
print("rendezvous RdvConnect->answer over UDP, %d runs: median %.2f ms, p95 %.2f ms"
      % (runs, statistics.median(lat), lat[int(runs * 0.95) - 1]))
t.SRV["main"][0].stop()
