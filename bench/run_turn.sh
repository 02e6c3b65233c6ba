#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions are called indirectly (start_$name, trap)
# The TURN relay over UDP, side by side: stund and coturn's turnserver, each
# with one worker pinned to one core while bench/turn_load runs on the
# other. Measures, per server: resident memory per allocation with 1,000
# and 10,000 allocations held; relayed packets/s, Mbit/s and loss at 100-
# and 1,000-byte payloads (ChannelData and Send/Data, a peer echoing back);
# allocations per second with long-term authentication. Prints one table
# with the ratios against the targets of issue 4. See bench/README.md.
#
#   bench/run_turn.sh [-d SECONDS] [-R ROUNDS] [-n CLIENTS] [-w WINDOW] [-K "1000,10000"]
#                     [-a ALLOCS] [-r ALLOC_ROUNDS] [-s "stund coturn"]
#                     [--ports LO-HI] [--server-cpu N] [--client-cpu N]
#                     [--no-build] [--build-dir DIR] [--long]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$src/build

seconds=4 rounds=2 clients=4 window=32 steps=1000,10000 allocs=5000 alloc_rounds=5
servers="stund coturn" ports=4000-19999 server_cpu=0 client_cpu=1 do_build=1 long=0
usage() {
	sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'
	echo "defaults: -d $seconds -R $rounds -n $clients -w $window -K $steps -a $allocs -r $alloc_rounds"
	echo "          -s \"$servers\" --ports $ports --server-cpu $server_cpu --client-cpu $client_cpu;"
	echo "          more than 120 s of relay load in total needs --long"
}
while [ $# -gt 0 ]; do
	case "$1" in
	-d) seconds=$2; shift ;;
	-R) rounds=$2; shift ;;
	-n) clients=$2; shift ;;
	-w) window=$2; shift ;;
	-K) steps=$2; shift ;;
	-a) allocs=$2; shift ;;
	-r) alloc_rounds=$2; shift ;;
	-s) servers=$2; shift ;;
	--ports) ports=$2; shift ;;
	--server-cpu) server_cpu=$2; shift ;;
	--client-cpu) client_cpu=$2; shift ;;
	--no-build) do_build=0 ;;
	--build-dir) build=$(cd "$2" && pwd); do_build=0; shift ;;
	--long) long=1 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "run_turn: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
for v in "$seconds" "$rounds" "$clients" "$window" "$allocs" "$alloc_rounds" "$server_cpu" "$client_cpu"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "run_turn: '$v' is not a whole number" >&2; exit 2; }
done
[[ $steps =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "run_turn: -K wants counts like 1000,10000" >&2; exit 2; }
[[ $ports =~ ^([0-9]+)-([0-9]+)$ ]] || { echo "run_turn: --ports wants LO-HI" >&2; exit 2; }
min_port=${BASH_REMATCH[1]} max_port=${BASH_REMATCH[2]}
biggest=${steps##*,}
quota=$((biggest + 2000))
if [ $((max_port - min_port + 1)) -lt $((biggest + 1000)) ]; then
	echo "run_turn: --ports $ports is too narrow for $biggest allocations (+1000 spare)" >&2
	exit 2
fi
nserv=$(wc -w <<<"$servers")
total=$((seconds * rounds * 4 * nserv))
if [ "$total" -gt 120 ] && [ "$long" = 0 ]; then
	echo "run_turn: $total s of relay load in total; more than 120 s needs --long" >&2
	exit 2
fi
if [ "$(nproc)" -lt 2 ]; then
	echo "run_turn: one CPU only: server and load generator share it" >&2
	server_cpu=0 client_cpu=0
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
declare -A pid port
cleanup() {
	stop_pids "${pid[@]}"
	rm -rf "$tmp"
}
bench_init run_turn

# Both servers: one worker / relay thread, UDP and TCP on 127.0.0.1, relayed
# addresses on 127.0.0.1 from the same port range (stund frees a port at
# once, coturn about a second after the deletion), long-term credentials u:p
# in realm r, loopback peers allowed, quotas above the largest hold step.
start_stund() {
	stund_conf "$tmp/stund.conf" "${port[stund]}" \
		"bench/run_turn.sh: one worker, TURN over UDP on loopback" <<-EOF
	relay-ip = 127.0.0.1
	min-port = $min_port
	max-port = $max_port
	realm = r
	user = u:p
	allow-loopback-peers
	total-quota = $quota
	user-quota = $quota
	log-file = $tmp/stund.log
	EOF
	[ -x "$build/stund" ] || return 1
	local rc=0
	stund_start "$server_cpu" "$tmp/stund.conf" "$tmp/stund.out" || rc=$?
	pid[stund]=$stund_pid
	return $rc
}

start_coturn() {
	command -v turnserver >/dev/null || return 1
	taskset -c "$server_cpu" turnserver -n --listening-ip 127.0.0.1 -p "${port[coturn]}" \
		--relay-ip 127.0.0.1 --min-port "$min_port" --max-port "$max_port" \
		--lt-cred-mech --user u:p --realm r --allow-loopback-peers \
		--no-tls --no-dtls --no-cli --relay-threads 1 \
		--total-quota "$quota" --user-quota "$quota" \
		--log-file "$tmp/coturn.log" --simple-log --no-stdout-log \
		--pidfile "$tmp/coturn.pid" --userdb "$tmp/coturn.db" >"$tmp/coturn.out" 2>&1 &
	pid[coturn]=$!
	# ready once it answers a Binding
	"$build/binding_load" -s "127.0.0.1:${port[coturn]}" -p 10 >/dev/null
}

start() { # name
	port[$1]=$(free_port 2)
	# taskset execs the server: the pid is the server's, and its threads
	# inherit the one-core affinity.
	if "start_$1"; then
		return 0
	fi
	echo "run_turn: SKIPPING $1: did not start on 127.0.0.1:${port[$1]}" >&2
	local log
	for log in "$tmp/$1".log "$tmp/$1".out; do
		[ -s "$log" ] && tail -n 5 "$log" | sed "s/^/  $1: /" >&2
	done
	if [ -n "${pid[$1]:-}" ]; then kill -TERM "${pid[$1]}" 2>/dev/null || true; fi
	unset "pid[$1]"
	return 1
}

hz=$(getconf CLK_TCK)
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
load() { # name args...: turn_load on the client CPU against server name
	local name=$1; shift
	timeout 120 taskset -c "$client_cpu" "$build/turn_load" -s "127.0.0.1:${port[$name]}" \
		-u u:p -L "$name" "$@"
}
# Until the server's descriptors are back to $2 (+ a few), at most 10 s:
# coturn closes a deleted allocation's sockets about a second later.
settle_fds() {
	local deadline=$((SECONDS + 10))
	while [ "$(fds "$1")" -gt $(($2 + 8)) ] && [ "$SECONDS" -le "$deadline" ]; do sleep 0.1; done
}
# Every server back to its idle descriptors: the servers share the relayed
# port range, and ports a server still holds cost the other bind retries.
settle_all() {
	local s
	for s in $running; do settle_fds "${pid[$s]}" "${fd0[$s]}"; done
}

# ---- memory: RSS with K allocations held, against the fresh baseline ----
declare -A base_kb held rss_at
hold() { # name
	local name=$1 line want
	base_kb[$name]=$(rss_kb "${pid[$name]}")
	while read -r line; do
		echo "  $line"
		case "$line" in
		"turn_load hold_step "*)
			want=$(field "$line" want)
			held[$name.$want]=$(field "$line" allocs)
			rss_at[$name.$want]=$(rss_kb "${pid[$name]}") ;;
		esac
	done < <(load "$name" -m hold -K "$steps" -H 1 -d 60 || true)
	settle_all
}

# ---- relay: packets both ways through the server -------------------------
declare -A r_secs r_pkts r_bits r_relayed r_ticks r_lost r_sent
add() { awk -v a="${1:-0}" -v b="$2" 'BEGIN { printf "%.6f", a + b }'; }
relay() { # name kind payload: one run, added to the sums of the rounds
	local name=$1 k="$1.$2.$3" before after line t
	before=$(cpu_ticks "${pid[$name]}")
	line=$(load "$name" -m relay -k "$2" -l "$3" -n "$clients" -w "$window" -d "$seconds") || true
	after=$(cpu_ticks "${pid[$name]}")
	echo "  $line"
	[ -n "$line" ] || return 0
	t=$(field "$line" seconds)
	r_secs[$k]=$(add "${r_secs[$k]:-}" "$t")
	r_pkts[$k]=$(add "${r_pkts[$k]:-}" "$(awk -v r="$(field "$line" pps)" -v t="$t" 'BEGIN { print r * t }')")
	r_bits[$k]=$(add "${r_bits[$k]:-}" "$(awk -v r="$(field "$line" mbps)" -v t="$t" 'BEGIN { print r * t }')")
	# every relayed packet of the run (setup and drain included) per
	# server CPU-second of the run
	r_relayed[$k]=$((${r_relayed[$k]:-0} + $(field "$line" relayed)))
	r_ticks[$k]=$((${r_ticks[$k]:-0} + after - before))
	r_lost[$k]=$((${r_lost[$k]:-0} + $(field "$line" lost_out) + $(field "$line" lost_in)))
	r_sent[$k]=$((${r_sent[$k]:-0} + $(field "$line" sent) + $(field "$line" peer_tx)))
}
declare -A rate mbps lost cpu_pct per_cpu
relay_figures() { # key
	local k=$1
	[ -n "${r_secs[$k]:-}" ] || return 0
	rate[$k]=$(awk -v n="${r_pkts[$k]}" -v t="${r_secs[$k]}" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')
	mbps[$k]=$(awk -v n="${r_bits[$k]}" -v t="${r_secs[$k]}" 'BEGIN { printf "%.1f", (t > 0 ? n / t : 0) }')
	cpu_pct[$k]=$(awk -v d="${r_ticks[$k]}" -v hz="$hz" -v t="${r_secs[$k]}" \
		'BEGIN { printf "%.0f", (t > 0 ? 100 * d / hz / t : 0) }')
	per_cpu[$k]=$(awk -v n="${r_relayed[$k]}" -v d="${r_ticks[$k]}" -v hz="$hz" \
		'BEGIN { printf "%.0f", (d > 0 ? n * hz / d : 0) }')
	lost[$k]="${r_lost[$k]}/${r_sent[$k]}"
}

# ---- allocations per second with authentication --------------------------
declare -A a_n a_s a_ticks a_failed
allocs_round() { # name
	local name=$1 before after line
	settle_all
	before=$(cpu_ticks "${pid[$name]}")
	line=$(load "$name" -m allocs -N "$allocs" -n 64 -d 10) || true
	after=$(cpu_ticks "${pid[$name]}")
	echo "  $line"
	[ -n "$line" ] || return 0
	a_n[$name]=$((${a_n[$name]:-0} + $(field "$line" allocs)))
	a_failed[$name]=$((${a_failed[$name]:-0} + $(field "$line" failed)))
	a_s[$name]=$(awk -v a="${a_s[$name]:-0}" -v b="$(field "$line" seconds)" 'BEGIN { print a + b }')
	a_ticks[$name]=$((${a_ticks[$name]:-0} + after - before))
}

if [ "$do_build" = 1 ]; then bench_build; fi
running=""
declare -A fd0
for s in $servers; do
	case "$s" in stund|coturn) if start "$s"; then running="$running $s"; fi ;;
	*) echo "run_turn: unknown server $s (stund, coturn)" >&2; exit 2 ;;
	esac
done
[ -n "$running" ] || { echo "run_turn: no server started" >&2; exit 1; }
for s in $running; do fd0[$s]=$(fds "${pid[$s]}"); done

echo "servers on CPU $server_cpu, turn_load on CPU $client_cpu; relayed ports $ports"
# Memory first, on fresh servers: allocation churn leaves coturn's heap large.
echo "hold: allocations $steps, each step held 1 s while RSS is read"
for s in $running; do hold "$s"; done
echo "relay: $clients clients x $window packets outstanding, peer echoes, $rounds round(s) of $seconds s"
for r in $(seq "$rounds"); do
	for kind in chan send; do
		for size in 100 1000; do
			for s in $running; do relay "$s" "$kind" "$size"; done
		done
	done
done
for k in "${!r_secs[@]}"; do relay_figures "$k"; done
echo "allocs: $alloc_rounds round(s) of $allocs allocations (401, Allocate, Refresh 0), 64 outstanding"
for r in $(seq "$alloc_rounds"); do
	for s in $running; do allocs_round "$s"; done
done

# ---- the table -----------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else printf "-" }'; }
verdict() { # value op target
	awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
		if (v == "-" || v == "") { print "n/a"; exit }
		ok = op == ">=" ? v >= t : v <= t
		print ok ? "met" : "NOT met" }'
}
both() { [ -n "${pid[stund]:-}" ] && [ -n "${pid[coturn]:-}" ]; }
row() { printf '%-22s %-7s %12s %9s %6s %12s %16s\n' "$@"; }

echo
row workload server "rate/s" "Mbit/s" "cpu%" "per-cpu-s" "lost/sent"
for kind in chan send; do
	for size in 100 1000; do
		w="relay $kind ${size}B"
		for s in $running; do
			k=$s.$kind.$size
			row "$w" "$s" "${rate[$k]:--}" "${mbps[$k]:--}" "${cpu_pct[$k]:--}" \
				"${per_cpu[$k]:--}" "${lost[$k]:--}"
		done
		if both; then
			r=$(ratio "${per_cpu[stund.$kind.$size]:-}" "${per_cpu[coturn.$kind.$size]:-}")
			echo "  stund/coturn: rate $(ratio "${rate[stund.$kind.$size]:-}" "${rate[coturn.$kind.$size]:-}")," \
				"packets per CPU-second $r (target >= 1.6: $(verdict "$r" ">=" 1.6))"
		fi
	done
done
declare -A aps apc per_alloc all_in
for s in $running; do
	aps[$s]=$(awk -v n="${a_n[$s]:-0}" -v t="${a_s[$s]:-0}" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')
	apc[$s]=$(awk -v n="${a_n[$s]:-0}" -v d="${a_ticks[$s]:-0}" -v hz="$hz" 'BEGIN { printf "%.0f", (d > 0 ? n * hz / d : 0) }')
	cpu=$(awk -v d="${a_ticks[$s]:-0}" -v hz="$hz" -v t="${a_s[$s]:-0}" 'BEGIN { printf "%.0f", (t > 0 ? 100 * d / hz / t : 0) }')
	row "allocs (auth)" "$s" "${aps[$s]}" "-" "$cpu" "${apc[$s]}" "${a_failed[$s]:-0} failed/${a_n[$s]:-0}"
done
if both; then
	r=$(ratio "${aps[stund]}" "${aps[coturn]}")
	echo "  stund/coturn: allocations/s $r (target >= 2: $(verdict "$r" ">=" 2))," \
		"per CPU-second $(ratio "${apc[stund]}" "${apc[coturn]}")"
fi
echo
printf '%-22s %-7s %7s %12s %10s %12s %12s\n' "memory" server held "base RSS kB" "RSS kB" \
	"B/alloc" "all-in B/a"
IFS=, read -r -a ks <<<"$steps"
for k in "${ks[@]}"; do
	for s in $running; do
		h=${held[$s.$k]:-0}
		per=$(awk -v a="${rss_at[$s.$k]:-0}" -v b="${base_kb[$s]}" -v h="$h" \
			'BEGIN { printf "%.0f", (h > 0 ? (a - b) * 1024 / h : 0) }')
		all=$(awk -v a="${rss_at[$s.$k]:-0}" -v h="$h" \
			'BEGIN { printf "%.0f", (h > 0 ? a * 1024 / h : 0) }')
		printf '%-22s %-7s %7s %12s %10s %12s %12s\n' "hold $k allocations" "$s" "$h" \
			"${base_kb[$s]}" "${rss_at[$s.$k]:--}" "$per" "$all"
		per_alloc[$s.$k]=$per
		all_in[$s.$k]=$all
	done
	if [ -n "${pid[stund]:-}" ]; then
		echo "  stund at $k: ${per_alloc[stund.$k]} bytes per allocation" \
			"(target <= 2048: $(verdict "${per_alloc[stund.$k]}" "<=" 2048));" \
			"all-in (RSS / allocations) ${all_in[stund.$k]}"
	fi
done
exit 0
