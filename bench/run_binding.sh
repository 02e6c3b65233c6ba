#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions are called indirectly (start_$name, trap)
# Binding over UDP, side by side: the bare recvmmsg/sendmmsg responder (the
# ceiling), stund and coturn's turnserver, each with one worker pinned to one
# core while bench/binding_load runs on the other core. Prints requests/s,
# per worker, loss, server CPU, peak RSS and the ratios. See bench/README.md.
# -d is the load time per server (default 10 s), cut into -r interleaved
# rounds (default 5); each figure is the best round.
#
#   bench/run_binding.sh [-d SECONDS] [-r ROUNDS] [-f FLOWS] [-w WINDOW]
#                        [-b BATCH] [-F] [-s "bare stund coturn"]
#                        [--server-cpu N] [--client-cpu N] [--no-build]
#                        [--build-dir DIR] [--long]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$src/build

seconds=10 rounds=5 flows=4 window=32 batch=32 fp="" servers="bare stund coturn"
server_cpu=0 client_cpu=1 do_build=1 long=0
usage() {
	sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'
	echo "defaults: -d $seconds -r $rounds -f $flows -w $window -b $batch -s \"$servers\""
	echo "          --server-cpu $server_cpu --client-cpu $client_cpu;"
	echo "          load above 60 s in total needs --long"
}
while [ $# -gt 0 ]; do
	case "$1" in
	-d) seconds=$2; shift ;;
	-r) rounds=$2; shift ;;
	-f) flows=$2; shift ;;
	-w) window=$2; shift ;;
	-b) batch=$2; shift ;;
	-F) fp=-F ;;
	-s) servers=$2; shift ;;
	--server-cpu) server_cpu=$2; shift ;;
	--client-cpu) client_cpu=$2; shift ;;
	--no-build) do_build=0 ;;
	--build-dir) build=$(cd "$2" && pwd); do_build=0; shift ;;
	--long) long=1 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "run_binding: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
for v in "$seconds" "$rounds" "$flows" "$window" "$batch" "$server_cpu" "$client_cpu"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "run_binding: '$v' is not a whole number" >&2; exit 2; }
done
nserv=$(wc -w <<<"$servers")
total=$((seconds * nserv))
[ "$rounds" -ge 1 ] || { echo "run_binding: -r needs at least 1 round" >&2; exit 2; }
# -d is the load time per server, cut into ROUNDS interleaved rounds.
round_secs=$(awk -v d="$seconds" -v r="$rounds" 'BEGIN { printf "%.3f", d / r }')
if [ "$total" -gt 60 ] && [ "$long" = 0 ]; then
	echo "run_binding: $total s of load in total; more than 60 s needs --long" >&2
	exit 2
fi
if [ "$(nproc)" -lt 2 ]; then
	echo "run_binding: one CPU only: server and load generator share it" >&2
	server_cpu=0 client_cpu=0
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
declare -A pid port
cleanup() {
	stop_pids "${pid[@]}"
	rm -rf "$tmp"
}
bench_init run_binding

probe() { # name: wait until it answers one Binding
	"$build/binding_load" -s "127.0.0.1:${port[$1]}" -p 10 >/dev/null
}

start_bare() {
	taskset -c "$server_cpu" "$build/bare_responder" -l "127.0.0.1:${port[bare]}" >"$tmp/bare.log" 2>&1 &
	pid[bare]=$!
	wait_line "$tmp/bare.log" "${pid[bare]}" "bare_responder ready" 10
}

start_stund() {
	stund_conf "$tmp/stund.conf" "${port[stund]}" \
		"bench/run_binding.sh: one worker, UDP Binding on loopback" </dev/null
	[ -x "$build/stund" ] || return 1
	local rc=0
	stund_start "$server_cpu" "$tmp/stund.conf" "$tmp/stund.log" || rc=$?
	pid[stund]=$stund_pid
	return $rc
}

# coturn with the same shape: one listening IP/port, one relay thread, no
# TLS/DTLS, no CLI, anonymous (Binding needs no auth either way), SOFTWARE
# left on as stund sends one, logs and db in the temp dir.
start_coturn() {
	command -v turnserver >/dev/null || return 1
	taskset -c "$server_cpu" turnserver -n --listening-ip 127.0.0.1 --listening-port "${port[coturn]}" \
		--relay-ip 127.0.0.1 --no-auth --no-tls --no-dtls --relay-threads 1 \
		--no-cli --log-file "$tmp/coturn.log" --simple-log --no-stdout-log \
		--pidfile "$tmp/coturn.pid" --userdb "$tmp/coturn.db" \
		>"$tmp/coturn.out" 2>&1 &
	pid[coturn]=$!
}

start() { # name
	port[$1]=$(free_port 2)
	# taskset execs the server: the pid is the server's, and every thread
	# it creates inherits the one-core affinity.
	if "start_$1" && probe "$1"; then
		return 0
	fi
	local why="did not answer a Binding on 127.0.0.1:${port[$1]}"
	[ -n "${pid[$1]:-}" ] && ! kill -0 "${pid[$1]}" 2>/dev/null && why="exited before answering"
	[ "$1" = stund ] && [ ! -f "$src/server/listener_udp.c" ] &&
		why="not built yet (no server/listener_udp.c on this branch)"
	[ "$1" = coturn ] && ! command -v turnserver >/dev/null && why="turnserver not installed"
	echo "run_binding: SKIPPING $1: $why" >&2
	local log
	for log in "$tmp/$1".log "$tmp/$1".out; do
		[ -s "$log" ] && tail -n 5 "$log" | sed "s/^/  $1: /" >&2
	done
	if [ -n "${pid[$1]:-}" ]; then kill -TERM "${pid[$1]}" 2>/dev/null || true; fi
	unset "pid[$1]"
}


# Best round per server for the rates; loss and invalid summed over rounds.
declare -A rps cpu gen_cpu sent lost invalid died
measure() { # name round
	local name=$1 before after line r
	before=$(cpu_ticks "${pid[$name]}")
	line=$(timeout $((seconds + 15)) taskset -c "$client_cpu" "$build/binding_load" \
		-s "127.0.0.1:${port[$name]}" -d "$round_secs" -f "$flows" -w "$window" \
		-b "$batch" $fp -L "$name") || true
	after=$(cpu_ticks "${pid[$name]}")
	echo "  round $2: ${line:-no figures from binding_load}"
	if [ -z "$after" ]; then
		echo "run_binding: $name DIED during round $2; dropped from the table" >&2
		unset "pid[$name]" "rps[$name]"
		died[$name]="died in round $2"
		return 0
	fi
	[ -n "$line" ] || return 0
	sent[$name]=$((${sent[$name]:-0} + $(field "$line" sent)))
	lost[$name]=$((${lost[$name]:-0} + $(field "$line" lost)))
	invalid[$name]=$((${invalid[$name]:-0} + $(field "$line" invalid)))
	r=$(field "$line" rps)
	if [ -n "${rps[$name]:-}" ] && [ "$r" -le "${rps[$name]}" ]; then return 0; fi
	rps[$name]=$r
	gen_cpu[$name]=$(field "$line" cpu_pct)
	cpu[$name]=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
		-v s="$(field "$line" seconds)" 'BEGIN { printf "%.0f", 100 * t / hz / s }')
}

if [ "$do_build" = 1 ]; then bench_build; fi
for s in $servers; do
	case "$s" in bare|stund|coturn) start "$s" || true ;;
	*) echo "run_binding: unknown server $s (bare, stund, coturn)" >&2; exit 2 ;;
	esac
done

echo "load: binding_load -f $flows -w $window -b $batch ${fp:+$fp }-d $round_secs," \
	"$rounds interleaved round(s) per server; server on CPU $server_cpu," \
	"load generator on CPU $client_cpu"
for r in $(seq "$rounds"); do
	for s in $servers; do
		if [ -n "${pid[$s]:-}" ]; then measure "$s" "$r"; fi
	done
done

rss() { awk -v k="$(peak_rss_kb "$1")" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
per_cpu() { awk -v r="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.0f", r * 100 / c; else printf "0" }'; }
printf '\n%-7s %7s %9s %12s %5s %8s %12s %7s %7s %8s %9s %8s\n' server workers "req/s" \
	"req/s/worker" "cpu%" "gen_cpu%" "lost/sent" invalid "rss_MB" "vs_bare" "req/cpu-s" \
	"vs_bare"
bare_pc=0
if [ -n "${rps[bare]:-}" ]; then bare_pc=$(per_cpu "${rps[bare]}" "${cpu[bare]}"); fi
for s in $servers; do
	if [ -z "${rps[$s]:-}" ]; then printf '%-7s %s\n' "$s" "${died[$s]:-skipped}"; continue; fi
	pc=$(per_cpu "${rps[$s]}" "${cpu[$s]}")
	printf '%-7s %7d %9d %12d %5s %8s %12s %7s %7s %8s %9s %8s\n' "$s" 1 "${rps[$s]}" \
		"${rps[$s]}" "${cpu[$s]}" "${gen_cpu[$s]}" "${lost[$s]}/${sent[$s]}" "${invalid[$s]}" \
		"$(rss "${pid[$s]}")" "$(ratio "${rps[$s]}" "${rps[bare]:-0}")" "$pc" \
		"$(ratio "$pc" "$bare_pc")"
done
if [ -n "${rps[stund]:-}" ] && [ -n "${rps[coturn]:-}" ]; then
	echo "stund/coturn: $(ratio "${rps[stund]}" "${rps[coturn]}") (req/s)," \
		"$(ratio "$(per_cpu "${rps[stund]}" "${cpu[stund]}")" \
			"$(per_cpu "${rps[coturn]}" "${cpu[coturn]}")") (req/cpu-s)"
fi
if [ "$rounds" -gt 1 ]; then
	echo "(rates: the best of $rounds rounds of $round_secs s; lost/sent and invalid: all rounds)"
fi
exit 0
