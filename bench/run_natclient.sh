#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions are called indirectly (trap)
# natclient's tunnel on loopback: stund (TURN + rendezvous), a UDP echo
# service (udp_blast echo) behind `natclient listen ID --expose`, and
# `natclient connect ID --local` with --relay never (direct), --relay always
# (relay), or --server tcp:// (tcp: relayed, the server flow over TCP).
# Measures, per path: set-up time (connect's process start to the first
# datagram echoed through --local, and the "ms" of its "connected" event)
# over -n runs: median, min, max; then forwarded throughput with udp_blast
# send at each payload size (packets/s, Mbit/s, loss, round trip) and the
# CPU of both natclients and of stund.
# See bench/README.md.
#
#   bench/run_natclient.sh [-n RUNS] [-d SECONDS] [-w WINDOW] [-R PPS] [-l "100 1000"]
#                          [-p "direct relay tcp"] [--tunnel-cpu N] [--load-cpu N]
#                          [--no-build] [--build-dir DIR] [--long] [-v]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$src/build
# shellcheck source=bench/lib.sh
. bench/lib.sh

runs=7 seconds=5 window=64 pps=0 sizes="100 1000" paths="direct relay"
tunnel_cpu=0 load_cpu=1 do_build=1 long=0 verbose=()
usage() {
	sed -n '13,15p' "$0" | sed 's/^# \{0,1\}//'
	echo "defaults: -n $runs -d $seconds -w $window -R $pps (0: as fast as the window lets)"
	echo "          -l \"$sizes\" -p \"$paths\" --tunnel-cpu $tunnel_cpu --load-cpu $load_cpu;"
	echo "          more than 60 s of throughput load in total needs --long"
}
while [ $# -gt 0 ]; do
	case "$1" in
	-n) runs=$2; shift ;;
	-d) seconds=$2; shift ;;
	-w) window=$2; shift ;;
	-R) pps=$2; shift ;;
	-l) sizes=$2; shift ;;
	-p) paths=$2; shift ;;
	--tunnel-cpu) tunnel_cpu=$2; shift ;;
	--load-cpu) load_cpu=$2; shift ;;
	--no-build) do_build=0 ;;
	--build-dir) build=$(cd "$2" && pwd); do_build=0; shift ;;
	--long) long=1 ;;
	-v) verbose=(-v -v) ;; # natclient's packet-level progress, shown when a run fails
	-h|--help) usage; exit 0 ;;
	*) echo "run_natclient: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
for v in "$runs" "$seconds" "$window" "$pps" "$tunnel_cpu" "$load_cpu" $sizes; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "run_natclient: '$v' is not a whole number" >&2; exit 2; }
done
for s in $sizes; do
	if [ "$s" -lt 24 ] || [ "$s" -gt 1400 ]; then
		echo "run_natclient: payload $s: 24 to 1400 bytes" >&2; exit 2
	fi
done
for p in $paths; do
	case "$p" in direct|relay|tcp) ;; *) echo "run_natclient: path $p: direct, relay or tcp" >&2; exit 2 ;; esac
done
total=$((seconds * $(wc -w <<<"$sizes") * $(wc -w <<<"$paths")))
bench_check_long run_natclient "$total" 60 "throughput load"
if bench_one_cpu run_natclient "tunnel and load generator"; then tunnel_cpu=0 load_cpu=0; fi

pids=() lst_pid="" con_pid=""
cleanup() {
	# the long-lived ones and the tunnel running now (stopped ones are reaped)
	[ -z "$con_pid" ] || pids+=("$con_pid")
	[ -z "$lst_pid" ] || pids+=("$lst_pid")
	stop_pids "${pids[@]}"
	rm -rf "$tmp"
}
bench_init run_natclient

stop_pid() { # pid: TERM, then KILL after 5 s; reaped
	stop_pids "$1"
	wait "$1" 2>/dev/null || true
}

hz=$(getconf CLK_TCK)
cpu_pct() { # pid ticks-before seconds (a process gone counts 0 ticks)
	local now
	now=$(cpu_ticks "$1")
	awk -v d="$((${now:-0} - ${2:-0}))" -v hz="$hz" -v t="$3" \
		'BEGIN { printf "%.0f", (t > 0 ? 100 * d / hz / t : 0) }'
}
json_num() { grep -o "\"$2\":[0-9.]*" <<<"$1" | head -n 1 | cut -d: -f2; }
json_str() { grep -o "\"$2\":\"[^\"]*\"" <<<"$1" | head -n 1 | cut -d'"' -f4; }

if [ "$do_build" = 1 ]; then bench_build; fi
for b in stund natclient udp_blast; do
	[ -x "$build/$b" ] || { echo "run_natclient: $build/$b missing (build first)" >&2; exit 1; }
done

# ---- stund: TURN + rendezvous on 127.0.0.1, one worker ---------------------
port=$(free_port 2) rmin=$(free_port 64)
stund_conf "$tmp/stund.conf" "$port" "bench/run_natclient.sh: TURN + rendezvous on loopback" <<EOF
relay-ip = 127.0.0.1
min-port = $rmin
max-port = $((rmin + 63))
realm = bench
user = bench:bench-pw
rendezvous = on
# natclient's peers and relayed addresses are all on 127.0.0.1
allow-loopback-peers
log-file = $tmp/stund.log
EOF
stund_pid=""
if ! stund_start "$tunnel_cpu" "$tmp/stund.conf" "$tmp/stund.out"; then
	pids+=("$stund_pid")
	echo "run_natclient: stund did not start:" >&2
	tail -n 5 "$tmp/stund.out" "$tmp/stund.log" >&2 2>/dev/null || true
	exit 1
fi
pids+=("$stund_pid")
export NATCLIENT_SERVER=127.0.0.1:$port NATCLIENT_USER=bench NATCLIENT_PASSWORD=bench-pw

# ---- the UDP service behind --expose -----------------------------------------
echo_port=$(free_port)
taskset -c "$load_cpu" "$build/udp_blast" echo -l "127.0.0.1:$echo_port" >"$tmp/echo.out" 2>&1 &
echo_pid=$!
pids+=("$echo_pid")
wait_line "$tmp/echo.out" "$echo_pid" "echo ready" 10 || { cat "$tmp/echo.out" >&2; exit 1; }

# ---- one tunnel: listen (registered), then connect --------------------------
relay_flag() { case "$1" in relay) echo always ;; tcp) echo auto ;; *) echo never ;; esac; }
path_of() { [ "$1" = tcp ] && echo relay || echo "$1"; } # the "path" connect reports
server_of() { [ "$1" = tcp ] && echo "tcp://$NATCLIENT_SERVER" || echo "$NATCLIENT_SERVER"; }
seq_id=0 con_t0="" local_port=""
start_listener() { # -> lst_pid; output in $tmp/lst.out
	seq_id=$((seq_id + 1))
	tid="bench-$$-$seq_id"
	# emptied here, not by the child's redirection: that may come after
	# the parent's first look, which would see the last run's lines
	: >"$tmp/lst.out"
	taskset -c "$tunnel_cpu" "$build/natclient" --json "${verbose[@]}" listen "$tid" \
		--expose "127.0.0.1:$echo_port" >"$tmp/lst.out" 2>&1 </dev/null &
	lst_pid=$!
	wait_line "$tmp/lst.out" "$lst_pid" '"event":"registered"' 10
}
start_connect() { # path: -> con_pid, con_t0, local_port; output in $tmp/con.out
	local_port=$(free_port)
	: >"$tmp/con.out"
	con_t0=$EPOCHREALTIME
	taskset -c "$tunnel_cpu" "$build/natclient" --json "${verbose[@]}" --server "$(server_of "$1")" \
		connect "$tid" \
		--local "127.0.0.1:$local_port" --relay "$(relay_flag "$1")" --timeout 10 \
		>"$tmp/con.out" 2>&1 </dev/null &
	con_pid=$!
}
stop_tunnel() {
	[ -n "$con_pid" ] && stop_pid "$con_pid"
	[ -n "$lst_pid" ] && stop_pid "$lst_pid"
	con_pid="" lst_pid=""
}
tunnel_failed() { # what
	local st=running
	kill -0 "$con_pid" 2>/dev/null || st=exited
	echo "run_natclient: $1 (connect $st, ${SECONDS}s into the run)" >&2
	sed 's/^/  connect: /' "$tmp/con.out" >&2 2>/dev/null || true
	sed 's/^/  listen: /' "$tmp/lst.out" >&2 2>/dev/null || true
}

# ---- set-up time ---------------------------------------------------------
declare -A echo_ms conn_ms lst_ms fails
setup_run() { # path
	local path=$1 line ev lev off
	if ! start_listener; then
		tunnel_failed "listen did not register"
		fails[$path]=$((${fails[$path]:-0} + 1)); stop_tunnel; return
	fi
	start_connect "$path"
	# probes every 2 ms to --local from the moment connect starts
	line=$(taskset -c "$load_cpu" "$build/udp_blast" probe -s "127.0.0.1:$local_port" \
		-T "$con_t0" -i 2 -d 12) || true
	wait_line "$tmp/con.out" "$con_pid" '"event":"connected"' 2 || true
	ev=$(grep -m 1 '"event":"connected"' "$tmp/con.out" || true)
	# the listener's own "connected", counted from the offer it got
	lev=$(grep -m 1 '"event":"connected"' "$tmp/lst.out" || true)
	off=$(grep -m 1 '"event":"offer"' "$tmp/lst.out" || true)
	lev=$(awk -v a="$(json_num "$lev" ms)" -v b="$(json_num "$off" ms)" \
		'BEGIN { if (a != "" && b != "") print a - b }')
	echo "  $path: $line; connected: path=$(json_str "$ev" path) ms=$(json_num "$ev" ms)" \
		"listen_after_offer_ms=${lev:--}"
	if [ "$(field "$line" echoed)" != 1 ] || [ "$(json_str "$ev" path)" != "$(path_of "$path")" ]; then
		tunnel_failed "$path set-up run failed"
		fails[$path]=$((${fails[$path]:-0} + 1))
	else
		echo_ms[$path]="${echo_ms[$path]:-} $(field "$line" first_echo_ms)"
		conn_ms[$path]="${conn_ms[$path]:-} $(json_num "$ev" ms)"
		[ -z "$lev" ] || lst_ms[$path]="${lst_ms[$path]:-} $lev"
	fi
	stop_tunnel
}
stats() { # values...: "median min max" (or "- - -")
	[ $# -gt 0 ] || { echo "- - -"; return; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}

# ---- throughput ------------------------------------------------------------
declare -A t_line t_ccpu t_lcpu t_scpu
throughput() { # path: one tunnel, every size through it
	local path=$1 size line c0 l0 s0 secs
	if ! start_listener; then
		tunnel_failed "listen did not register"; stop_tunnel; return
	fi
	start_connect "$path"
	if ! wait_line "$tmp/con.out" "$con_pid" '"event":"connected"' 12 ||
	   ! grep -q "\"event\":\"connected\",.*\"path\":\"$(path_of "$path")\"" "$tmp/con.out"; then
		tunnel_failed "$path tunnel did not connect"; stop_tunnel; return
	fi
	wait_line "$tmp/lst.out" "$lst_pid" '"event":"connected"' 12 || true
	for size in $sizes; do
		c0=$(cpu_ticks "$con_pid") l0=$(cpu_ticks "$lst_pid") s0=$(cpu_ticks "$stund_pid")
		line=$(taskset -c "$load_cpu" "$build/udp_blast" send -s "127.0.0.1:$local_port" \
			-l "$size" -w "$window" -R "$pps" -d "$seconds" -t 500 -L "$path.$size") || true
		echo "  $line"
		secs=$(field "$line" seconds)
		[ -n "$secs" ] || continue
		t_line[$path.$size]=$line
		t_ccpu[$path.$size]=$(cpu_pct "$con_pid" "$c0" "$secs")
		t_lcpu[$path.$size]=$(cpu_pct "$lst_pid" "$l0" "$secs")
		t_scpu[$path.$size]=$(cpu_pct "$stund_pid" "$s0" "$secs")
	done
	stop_tunnel
}

echo "stund on 127.0.0.1:$port, natclients and stund on CPU $tunnel_cpu, udp_blast on CPU $load_cpu"
echo "set-up: $runs run(s) per path, a fresh listen + connect each; probe every 2 ms through --local"
for _ in $(seq "$runs"); do
	for p in $paths; do setup_run "$p"; done
done
echo "throughput: udp_blast send, $window outstanding, ${seconds} s per size, echo behind --expose"
for p in $paths; do throughput "$p"; done

# ---- the tables ------------------------------------------------------------
echo
printf '%-8s %5s %6s | %-26s | %-26s | %s\n' path runs failed "first echo ms med/min/max" \
	"connected ms med/min/max" "listen: offer->connected ms"
for p in $paths; do
	# shellcheck disable=SC2086  # the lists are whitespace-separated numbers
	read -r em emin emax <<<"$(stats ${echo_ms[$p]:-})"
	# shellcheck disable=SC2086
	read -r cm cmin cmax <<<"$(stats ${conn_ms[$p]:-})"
	# shellcheck disable=SC2086
	read -r lm lmin lmax <<<"$(stats ${lst_ms[$p]:-})"
	printf '%-8s %5s %6s | %8s %8s %8s | %8s %8s %8s | %8s %8s %8s\n' "$p" "$runs" \
		"${fails[$p]:-0}" "$em" "$emin" "$emax" "$cm" "$cmin" "$cmax" "$lm" "$lmin" "$lmax"
done
echo
printf '%-7s %5s %9s %9s %8s %16s %8s %9s %9s %7s\n' path bytes "pkt/s" "Mbit/s" "loss%" \
	"lost/sent" "rtt_ms" "connect%" "listen%" "stund%"
for p in $paths; do
	for s in $sizes; do
		line=${t_line[$p.$s]:-}
		if [ -z "$line" ]; then
			printf '%-7s %5s %9s\n' "$p" "$s" "-"
			continue
		fi
		printf '%-7s %5s %9s %9s %8s %16s %8s %9s %9s %7s\n' "$p" "$s" "$(field "$line" pps)" \
			"$(field "$line" mbps)" "$(field "$line" loss_pct)" \
			"$(field "$line" lost)/$(field "$line" sent)" \
			"$(awk -v u="$(field "$line" rtt_avg_us)" 'BEGIN { printf "%.2f", u / 1000 }')" \
			"${t_ccpu[$p.$s]}" "${t_lcpu[$p.$s]}" "${t_scpu[$p.$s]}"
	done
done
echo "(pkt/s: datagrams echoed per second, each forwarded by both natclients both ways;"
echo " Mbit/s: their payload one way; cpu%: of one core over the run, 100 = a whole core)"
exit 0
