#!/usr/bin/env bash
# Where stund's CPU goes per Binding request. Starts stund (one worker, the
# same config as run_binding.sh) on 127.0.0.1 and loads it with
# bench/binding_load, then either:
#   callgrind  (default) instructions per request in stund's own code and
#              the libraries it calls, counted by valgrind --tool=callgrind
#              over a bounded run of -n requests: repeatable on a noisy
#              machine (user space only; the kernel is not counted);
#   perf       syscalls per request (perf stat on the tracepoints) and the
#              top symbols, kernel included (perf record), over -d seconds,
#              stund on CPU 0, binding_load on CPU 1.
#
#   bench/profile_binding.sh [callgrind|perf] [-n REQUESTS] [-d SECONDS]
#                            [--no-build] [--build-dir DIR] [--keep DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$src/build
mode=callgrind requests=100000 seconds=3 do_build=1 keep=""
while [ $# -gt 0 ]; do
	case "$1" in
	callgrind|perf) mode=$1 ;;
	-n) requests=$2; shift ;;
	-d) seconds=$2; shift ;;
	--no-build) do_build=0 ;;
	--build-dir) build=$(cd "$2" && pwd); do_build=0; shift ;;
	--keep) keep=$2; shift ;;
	-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "profile_binding: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
[[ $requests =~ ^[0-9]+$ && $seconds =~ ^[0-9]+$ ]] ||
	{ echo "profile_binding: -n and -d take whole numbers" >&2; exit 2; }
[ "$seconds" -le 30 ] || { echo "profile_binding: -d above 30 s is too long here" >&2; exit 2; }
command -v "$([ "$mode" = perf ] && echo perf || echo valgrind)" >/dev/null ||
	{ echo "profile_binding: $mode is not installed" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
spid=""
cleanup() {
	if [ -n "$spid" ]; then
		kill -TERM "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
	fi
	if [ -n "$keep" ]; then mkdir -p "$keep" && cp -r "$tmp"/. "$keep"/; fi
	rm -rf "$tmp"
}
bench_init profile_binding natkit-profile

if [ "$do_build" = 1 ]; then bench_build quiet; fi
port=$(free_port 2)
stund_conf "$tmp/stund.conf" "$port" "bench/profile_binding.sh: one worker, as run_binding.sh" </dev/null
load() { "$build/binding_load" -s "127.0.0.1:$port" "$@"; }
ready() { # wait for "stund ready" (valgrind is slow to start), then one answered Binding
	wait_line "$tmp/stund.log" "$spid" "stund ready" 20 || kill -0 "$spid" 2>/dev/null ||
		{ cat "$tmp/stund.log" >&2; exit 1; }
	load -p 20 >/dev/null
}

if [ "$mode" = callgrind ]; then
	valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out" \
		"$build/stund" -c "$tmp/stund.conf" >"$tmp/stund.log" 2>&1 &
	spid=$!
	ready
	callgrind_control -z "$spid" >/dev/null 2>&1   # count the load only
	load -n "$requests" -f 4 -w 32 -b 32 -t 5000
	callgrind_control -d "$spid" >/dev/null 2>&1
	dump=$(ls "$tmp"/callgrind.out.* | head -1)
	total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
	echo "instructions (user space) per request: $((total / requests)) ($total / $requests)"
	echo "self cost per request, top functions:"
	callgrind_annotate --threshold=100 --auto=no "$dump" 2>/dev/null |
		awk -v n="$requests" '/^ *[0-9,]+ \(/ && !/PROGRAM TOTALS|worker_main|clone.S|start_thread/ {
			c = $1; gsub(",", "", c); f = $0; sub(/.*%\) +/, "", f); sub(/ \[.*/, "", f)
			if (c / n >= 5) printf "  %6.0f  %s\n", c / n, f }' | head -25
	exit 0
fi

taskset -c 0 "$build/stund" -c "$tmp/stund.conf" >"$tmp/stund.log" 2>&1 &
spid=$!
ready
taskset -c 1 "$build/binding_load" -s "127.0.0.1:$port" -d $((seconds + 2)) -f 4 -w 32 -b 32 \
	>"$tmp/load.txt" &
lpid=$!
sleep 0.5
perf stat -x, -e task-clock,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_epoll_wait \
	-p "$spid" -- sleep "$seconds" 2>"$tmp/stat.csv"
perf record -q -g -p "$spid" -o "$tmp/perf.data" -- sleep 1 >/dev/null 2>&1 || true
wait "$lpid" || true
cat "$tmp/load.txt"
rps=$(grep -o 'rps=[0-9]*' "$tmp/load.txt" | cut -d= -f2)
awk -F, -v rps="$rps" -v s="$seconds" '
	$3 ~ /task-clock/ { printf "stund CPU: %.0f%% of a core\n", $1 / 10 / s }
	$3 ~ /sys_enter/ { n = $1 / s; sub(/.*sys_enter_/, "", $3);
		printf "%-10s %8.0f/s  %6.1f requests per call\n", $3, n, n ? rps / n : 0 }' "$tmp/stat.csv"
echo "top symbols (perf record, 1 s, kernel included):"
perf report -i "$tmp/perf.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null |
	grep -E '^ +[0-9]' | head -20
