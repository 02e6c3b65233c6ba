#!/usr/bin/env bash
# The main job: install what is missing, build, start stund with
# conf/stund.conf, show it answering a Binding request (RFC 5780 too), then
# keep stund in the foreground until Ctrl-C (or SIGTERM).
#   STUND_CONF=path   another config file; extra arguments go to stund.
# Works without a terminal (stdin is never read).
set -euo pipefail
cd "$(dirname "$0")/.."
conf=${STUND_CONF:-conf/stund.conf}

if [ "$(id -u)" = 0 ]; then
  scripts/deps.sh
else
  echo "run.sh: not root: skipping scripts/deps.sh (run as root on a fresh machine)"
fi
scripts/build.sh normal
build/stund --check-config -c "$conf" "$@"

log=$(mktemp /tmp/stund-run.XXXXXX)
build/stund -c "$conf" "$@" > >(tee "$log") 2>&1 </dev/null &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap 'echo; echo "run.sh: stopping stund"; stop; exit 0' INT TERM
trap 'rm -f "$log"' EXIT

# Wait for the readiness line (bounded), or for stund to die.
for _ in $(seq 100); do
  grep -q "stund ready" "$log" && break
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit 1; }
  sleep 0.1
done
grep -q "stund ready" "$log" || { echo "run.sh: stund did not become ready" >&2; stop; exit 1; }

port=$(sed -n 's/^[[:space:]]*listening-port[[:space:]]*=*[[:space:]]*\([0-9]*\).*/\1/p' "$conf" | tail -1)
port=${port:-3478}
echo
echo "=== a Binding request to 127.0.0.1:$port (python, stdlib only)"
python3 - "$port" <<'PY'
import os, socket, struct, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
tid = os.urandom(12)
s.sendto(struct.pack("!HHI", 1, 0, 0x2112A442) + tid, ("127.0.0.1", port))
data, frm = s.recvfrom(2048)
off, n = 20, 20 + struct.unpack("!H", data[2:4])[0]
names = {0x0020: "XOR-MAPPED-ADDRESS", 0x0001: "MAPPED-ADDRESS", 0x802B: "RESPONSE-ORIGIN",
         0x802C: "OTHER-ADDRESS", 0x8022: "SOFTWARE"}
print("answer from %s:%d" % frm)
while off < n:
    t, l = struct.unpack("!HH", data[off:off + 4]); v = data[off + 4:off + 4 + l]
    if t in (0x0020, 0x0001, 0x802B, 0x802C):
        p = struct.unpack("!H", v[2:4])[0]; ip = bytearray(v[4:8])
        if t == 0x0020:
            p ^= 0x2112; ip = bytearray(a ^ b for a, b in zip(ip, b"\x21\x12\xa4\x42"))
        print("  %-18s %s:%d" % (names[t], socket.inet_ntoa(bytes(ip)), p))
    elif t in names:
        print("  %-18s %s" % (names[t], v.decode(errors="replace")))
    off += 4 + l + (-l % 4)
PY
if command -v turnutils_natdiscovery >/dev/null; then
  echo
  echo "=== coturn's turnutils_natdiscovery -m -f against it"
  turnutils_natdiscovery -m -f -p "$port" 127.0.0.1 2>&1 | grep -E "NAT with|reflexive|Other addr" | sort -u || true
fi
echo
echo "run.sh: stund is running (pid $pid); metrics: curl http://127.0.0.1:9641/metrics; Ctrl-C stops it"
wait "$pid"
