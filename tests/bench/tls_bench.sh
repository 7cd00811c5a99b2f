#!/bin/bash
# tls_bench.sh - the cost of a STARTTLS session on mxd, against OpenSSL.
#
#   tests/bench/tls_bench.sh [-d SECONDS] [-c PROCS] [-k]
#
# One command, about 2.5 minutes with the default 10 s per measurement.
# It builds tests/bench/starttls_load.c and starttls_sink.c with cc (not
# meson; needs libssl-dev), makes an ECDSA P-256 and an RSA-2048
# certificate with openssl in a temporary directory, and for each one
# starts three servers, pinned to CPU 0, with that certificate:
#
#   mxd            build/server/mxd (or $MXD_BINARY), -o log_level=warn,
#                  its defaults otherwise (tickets on, no session cache)
#   s_server       openssl s_server -tls1_2 (session cache and tickets on)
#   starttls_sink  the cheapest STARTTLS server we could write (OpenSSL,
#                  blocking, nothing else): the load client's ceiling
#
# Then, for full handshakes and for resumed sessions, with the load pinned
# to CPU 1:
#
#   mxd, sink   starttls_load -d SECONDS -c PROCS [-r]: connect, 220, EHLO,
#               STARTTLS, 220, TLS 1.2, EHLO, QUIT.  Full: no session is
#               offered (the ticket extension is, as s_time does, so
#               servers issue a ticket each time).  Resumed: each session
#               offers the previous one's ticket (SSL_set_session).
#   s_server    openssl s_time -new | -reuse -time SECONDS: bare TLS, no
#               SMTP around it, one connection after another.
#
# Server CPU per session is utime+stime of the server's pid from
# /proc/PID/stat, before and after, over the sessions completed: it does
# not depend on the load's latency, so it is the fairer comparison on a
# shared machine.  Sessions/s depend on round trips between the two CPUs
# as much as on the server when PROCS is 1 (the "srv busy" column says
# how much of the wall time the server was running).  "noise" is what
# else ran on CPU 0 meanwhile (from /proc/stat, steal included).
#
# PROCS > 1 runs that many load processes at once against mxd and the
# sink (s_time stays one connection at a time): it gets mxd nearer to
# saturation, but the sink serves one session at a time, so the ceiling
# table means something only with -c 1.
#
# All three servers of a certificate run at once, and the measurements
# alternate mxd, s_server, sink, so drift in the machine's load hits all
# of them alike.  Only the ratios of one run mean anything.  Every
# process started is stopped on exit; the directory is removed unless -k.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MXD=${MXD_BINARY:-$ROOT/build/server/mxd}
DUR=10
PROCS=1
KEEP=0
SRV_CPU=0
LOAD_CPU=1

while getopts d:c:k opt; do
	case $opt in
	d) DUR=$OPTARG ;;
	c) PROCS=$OPTARG ;;
	k) KEEP=1 ;;
	*) echo "usage: $0 [-d SECONDS] [-c PROCS] [-k]" >&2; exit 2 ;;
	esac
done

die() { echo "tls_bench: $*" >&2; exit 1; }

[ -x "$MXD" ] || die "no mxd binary at $MXD (meson compile -C build)"
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v ss >/dev/null || die "ss not found (apt-get install iproute2)"
[ -f /usr/include/openssl/ssl.h ] || die "no OpenSSL headers (apt-get install libssl-dev)"
[ "$(nproc)" -ge 2 ] || die "needs two CPUs"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tls_bench.XXXXXX")
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	if [ "$KEEP" = 1 ]; then
		echo "kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HZ=$(getconf CLK_TCK)

# ---- build and certificates ----------------------------------------------

for prog in starttls_load starttls_sink; do
	cc -O2 -Wall -Wextra -std=c11 -o "$TMP/$prog" \
	    "$ROOT/tests/bench/$prog.c" -lssl -lcrypto ||
	    die "cannot build $prog"
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$TMP/ecdsa.key" -out "$TMP/ecdsa.crt" -subj /CN=localhost \
    -days 2 2>/dev/null || die "cannot make the ECDSA certificate"
openssl req -x509 -newkey rsa:2048 -nodes \
    -keyout "$TMP/rsa.key" -out "$TMP/rsa.crt" -subj /CN=localhost \
    -days 2 2>/dev/null || die "cannot make the RSA certificate"

# ---- helpers -------------------------------------------------------------

# utime+stime of a process in ticks (field 14 and 15 after "(comm)").
proc_ticks() {
	local s
	s=$(cat "/proc/$1/stat") || return 1
	s=${s##*) }
	set -- $s
	echo $(( ${12} + ${13} ))
}

# Non-idle ticks of CPU n, steal included.
cpu_ticks() {
	awk -v c="cpu$1" '$1 == c { print $2+$3+$4+$7+$8+$9 }' /proc/stat
}

now() { date +%s.%N; }

# wait_port NAME PID OUTFILE: the port from "listening ADDR:PORT".
wait_listening() {
	local i port
	for i in $(seq 100); do
		port=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$3" | head -1)
		if [ -n "$port" ]; then
			echo "$port"
			return 0
		fi
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	echo "tls_bench: $1 did not start:" >&2
	cat "$3" "$3.err" >&2 2>/dev/null
	return 1
}

# The port s_server bound (it prints none with -quiet).
wait_ss_port() {
	local i port
	for i in $(seq 100); do
		port=$(ss -Hltnp 2>/dev/null | grep "pid=$1," |
		    sed -n 's/.*127\.0\.0\.1:\([0-9]*\) .*/\1/p' | head -1)
		if [ -n "$port" ]; then
			echo "$port"
			return 0
		fi
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	echo "tls_bench: s_server did not start:" >&2
	cat "$TMP/s_server.err" >&2 2>/dev/null
	return 1
}

start_servers() {
	local k=$1

	mkdir -p "$TMP/mxd-$k"
	(cd "$TMP/mxd-$k" && exec taskset -c $SRV_CPU "$MXD" \
	    --listen 127.0.0.1:0 --maildir "$TMP/mxd-$k/mail" \
	    --tls-cert "$TMP/$k.crt" --tls-key "$TMP/$k.key" \
	    -o log_level=warn -o max_connections=5000 \
	    -o max_connections_per_ip=0 \
	    >"$TMP/mxd-$k.out" 2>"$TMP/mxd-$k.out.err") &
	MXD_PID=$!
	PIDS+=("$MXD_PID")
	MXD_PORT=$(wait_listening mxd "$MXD_PID" "$TMP/mxd-$k.out") || exit 1

	taskset -c $SRV_CPU openssl s_server -accept 127.0.0.1:0 \
	    -cert "$TMP/$k.crt" -key "$TMP/$k.key" -tls1_2 -quiet \
	    -naccept 100000000 </dev/null >/dev/null 2>"$TMP/s_server.err" &
	SS_PID=$!
	PIDS+=("$SS_PID")
	SS_PORT=$(wait_ss_port "$SS_PID") || exit 1

	taskset -c $SRV_CPU "$TMP/starttls_sink" -p 0 -c "$TMP/$k.crt" \
	    -k "$TMP/$k.key" >"$TMP/sink-$k.out" 2>"$TMP/sink-$k.out.err" &
	SINK_PID=$!
	PIDS+=("$SINK_PID")
	SINK_PORT=$(wait_listening sink "$SINK_PID" "$TMP/sink-$k.out") ||
	    exit 1
}

stop_servers() {
	local p
	for p in "$MXD_PID" "$SS_PID" "$SINK_PID"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}

# Results go to R_<key>_<field> variables.
record() {
	printf -v "R_${1}_$2" '%s' "$3"
}
get() {
	local v="R_${1}_$2"
	echo "${!v:-}"
}

# measure_load KEY PID PORT [starttls_load args]
measure_load() {
	local key=$1 pid=$2 port=$3 t0 t1 c0 c1 l0 l1 out f
	shift 3
	t0=$(proc_ticks "$pid"); c0=$(cpu_ticks $SRV_CPU); l0=$(cpu_ticks $LOAD_CPU)
	out=$(taskset -c $LOAD_CPU "$TMP/starttls_load" -p "$port" \
	    -d "$DUR" -c "$PROCS" "$@" 2>"$TMP/$key.err")
	t1=$(proc_ticks "$pid"); c1=$(cpu_ticks $SRV_CPU); l1=$(cpu_ticks $LOAD_CPU)
	[ -n "$out" ] || { cat "$TMP/$key.err" >&2; out="sessions=0"; }
	for f in sessions resumed errors wall rate client_cpu \
	    client_us_per_session; do
		record "$key" "$f" "$(echo "$out" |
		    sed -n "s/.*\b$f=\([0-9.]*\).*/\1/p")"
	done
	record "$key" srv_ticks $((t1 - t0))
	record "$key" cpu0_ticks $((c1 - c0))
	record "$key" cpu1_ticks $((l1 - l0))
	record "$key" note "$(grep -m1 'error' "$TMP/$key.err")"
}

# measure_stime KEY PID PORT -new|-reuse
measure_stime() {
	local key=$1 pid=$2 port=$3 mode=$4 t0 t1 c0 c1 l0 l1 w0 w1 w n r ct
	t0=$(proc_ticks "$pid"); c0=$(cpu_ticks $SRV_CPU); l0=$(cpu_ticks $LOAD_CPU)
	w0=$(now)
	(
		taskset -c $LOAD_CPU openssl s_time -connect "127.0.0.1:$port" \
		    "$mode" -time "$DUR" >"$TMP/$key.out" 2>&1
		times >"$TMP/$key.times"
	)
	w1=$(now); t1=$(proc_ticks "$pid"); c1=$(cpu_ticks $SRV_CPU)
	l1=$(cpu_ticks $LOAD_CPU)
	n=$(sed -n 's/^\([0-9]*\) connections in [0-9]* real seconds.*/\1/p' \
	    "$TMP/$key.out" | tail -1)
	n=${n:-0}
	# s_time prints one character per connection: r when resumed.
	r=$(grep -E '^[*rt3]+$' "$TMP/$key.out" | tr -cd 'r' | wc -c)
	# times: the second line is the children's user and system time.
	ct=$(sed -n 2p "$TMP/$key.times" |
	    awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/);
	        s += a[1] * 60 + a[2] } print s }')
	record "$key" sessions "$n"
	record "$key" resumed "$r"
	record "$key" errors "$(grep -ci 'error' "$TMP/$key.out")"
	w=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
	record "$key" wall "$w"
	record "$key" rate "$(awk -v n="$n" -v w="$w" \
	    'BEGIN { printf "%.1f", n / w }')"
	record "$key" client_us_per_session "$(awk -v c="$ct" -v n="$n" \
	    'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / n }')"
	record "$key" client_cpu "$ct"
	record "$key" srv_ticks $((t1 - t0))
	record "$key" cpu0_ticks $((c1 - c0))
	record "$key" cpu1_ticks $((l1 - l0))
}

# Derived: server us/session, server busy %, noise % on CPU 0.
derive() {
	local key=$1
	record "$key" srv_us "$(awk -v t="$(get "$key" srv_ticks)" -v hz="$HZ" \
	    -v n="$(get "$key" sessions)" \
	    'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }')"
	record "$key" busy "$(awk -v t="$(get "$key" srv_ticks)" -v hz="$HZ" \
	    -v w="$(get "$key" wall)" \
	    'BEGIN { if (w > 0) printf "%.0f", t / hz / w * 100 }')"
	record "$key" noise "$(awk -v t="$(get "$key" srv_ticks)" \
	    -v c="$(get "$key" cpu0_ticks)" -v hz="$HZ" \
	    -v w="$(get "$key" wall)" \
	    'BEGIN { if (w > 0) { x = (c - t) / hz / w * 100;
	        printf "%.0f", x < 0 ? 0 : x } }')"
	record "$key" noise1 "$(awk -v t="$(get "$key" client_cpu)" \
	    -v c="$(get "$key" cpu1_ticks)" -v hz="$HZ" \
	    -v w="$(get "$key" wall)" \
	    'BEGIN { if (w > 0) { x = (c / hz - t) / w * 100;
	        printf "%.0f", x < 0 ? 0 : x } }')"
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0)
	    printf "%.2f", a / b; else print "-" }'
}

# ---- the run -------------------------------------------------------------

echo "tls_bench: mxd $("$MXD" -V 2>/dev/null | sed 's/^mxd //'), $(openssl version),"\
" ${DUR}s per measurement, $PROCS load process(es); server on CPU $SRV_CPU,"\
" load on CPU $LOAD_CPU; load average $(cut -d' ' -f1-3 /proc/loadavg)"

SCEN=()
for k in ecdsa rsa; do
	start_servers "$k"
	# What each one negotiates, for the record.
	for s in mxd sink; do
		p=$([ $s = mxd ] && echo "$MXD_PORT" || echo "$SINK_PORT")
		taskset -c $LOAD_CPU "$TMP/starttls_load" -p "$p" -n 1 -v \
		    2>&1 >/dev/null | sed -n "s/.*first session: /  $k $s: /p"
	done
	echo "  $k s_server: $(openssl s_client -connect 127.0.0.1:$SS_PORT \
	    -tls1_2 </dev/null 2>/dev/null | sed -n \
	    's/^ *Cipher *: *\(.*\)/\1/p; s/^Server Temp Key: \(.*\)/kx=\1/p' |
	    tr '\n' ' ')"
	for m in full resumed; do
		s="${k}_$m"
		SCEN+=("$s")
		r=; [ $m = resumed ] && r=-r
		echo "  measuring $s: mxd" >&2
		measure_load "${s}_mxd" "$MXD_PID" "$MXD_PORT" $r
		echo "  measuring $s: s_server" >&2
		measure_stime "${s}_ossl" "$SS_PID" "$SS_PORT" \
		    "$([ $m = full ] && echo -new || echo -reuse)"
		echo "  measuring $s: sink" >&2
		measure_load "${s}_sink" "$SINK_PID" "$SINK_PORT" $r
		for x in mxd ossl sink; do
			derive "${s}_$x"
		done
	done
	stop_servers
done

echo
echo "mxd (starttls_load, STARTTLS+EHLO+QUIT) against openssl s_server (s_time, bare TLS 1.2)"
printf '%-15s | %8s %8s %6s | %9s %9s %6s | %7s %7s | %5s %5s | %6s %6s | %9s %9s\n' \
    scenario "mxd/s" "ossl/s" ratio "mxd us/s" "ossl us/s" ratio \
    "mxd max" "ossl max" "busy" "busy" noise noise "mxd res" "ossl res"
printf '%-15s | %8s %8s %6s | %9s %9s %6s | %7s %7s | %5s %5s | %6s %6s | %9s %9s\n' \
    "" "sess/s" "conn/s" "" "srv cpu" "srv cpu" "" "/s" "/s" "mxd%" "ossl%" \
    "mxd%" "ossl%" "/sessions" "/conns"
for s in "${SCEN[@]}"; do
	a=${s}_mxd; b=${s}_ossl
	printf '%-15s | %8s %8s %6s | %9s %9s %6s | %7s %7s | %5s %5s | %6s %6s | %9s %9s\n' \
	    "$s" "$(get $a rate)" "$(get $b rate)" \
	    "$(ratio "$(get $a rate)" "$(get $b rate)")" \
	    "$(get $a srv_us)" "$(get $b srv_us)" \
	    "$(ratio "$(get $a srv_us)" "$(get $b srv_us)")" \
	    "$(awk -v u="$(get $a srv_us)" 'BEGIN { if (u > 0) printf "%.0f", 1e6 / u }')" \
	    "$(awk -v u="$(get $b srv_us)" 'BEGIN { if (u > 0) printf "%.0f", 1e6 / u }')" \
	    "$(get $a busy)" "$(get $b busy)" "$(get $a noise)" "$(get $b noise)" \
	    "$(get $a resumed)/$(get $a sessions)" \
	    "$(get $b resumed)/$(get $b sessions)"
done
echo "  us/s = server CPU microseconds per session; max/s = 1e6 / that, the rate one"
echo "  whole CPU would give; busy = server CPU time / wall time; res = resumed."

echo
echo "Load client ceiling: starttls_load against mxd and against starttls_sink (OpenSSL, same protocol)"
fmt='%-15s | %8s %9s %9s | %8s %9s %9s | %7s %7s | %9s | %12s | %12s | %s\n'
printf "$fmt" scenario "mxd/s" "client us" "mxd us" "sink/s" "client us" \
    "sink us" "mxd/sink" "mxd/sink" "s_time" "client busy%" "CPU1 other%" \
    errors
printf "$fmt" "" "sess/s" "/session" "/session" "sess/s" "/session" \
    "/session" "rate" "cpu" "client us" "mxd/sink" "mxd/ossl/sink" \
    "mxd/ossl/sink"
for s in "${SCEN[@]}"; do
	a=${s}_mxd; c=${s}_sink; b=${s}_ossl
	printf "$fmt" \
	    "$s" "$(get $a rate)" "$(get $a client_us_per_session)" \
	    "$(get $a srv_us)" "$(get $c rate)" \
	    "$(get $c client_us_per_session)" "$(get $c srv_us)" \
	    "$(ratio "$(get $a rate)" "$(get $c rate)")" \
	    "$(ratio "$(get $a srv_us)" "$(get $c srv_us)")" \
	    "$(get $b client_us_per_session)" \
	    "$(awk -v a="$(get $a client_cpu)" -v aw="$(get $a wall)" \
	        -v c="$(get $c client_cpu)" -v cw="$(get $c wall)" \
	        'BEGIN { printf "%.0f/%.0f", a / aw * 100, c / cw * 100 }')" \
	    "$(get $a noise1)/$(get $b noise1)/$(get $c noise1)" \
	    "$(get $a errors)/$(get $b errors)/$(get $c errors)"
done
echo "  client us = CPU of the load processes per session (s_time: user+sys of"
echo "  openssl s_time); client busy = that CPU time / wall time; CPU1 other ="
echo "  what else ran on the load's CPU (kernel softirqs included)."

# Say what went wrong, if anything.
status=0
for s in "${SCEN[@]}"; do
	for x in mxd ossl sink; do
		k=${s}_$x
		n=$(get $k sessions); r=$(get $k resumed); e=$(get $k errors)
		if [ "${n:-0}" -eq 0 ]; then
			echo "WARNING: $k: no session completed" >&2; status=1
			continue
		fi
		if [ "${e:-0}" != 0 ]; then
			echo "WARNING: $k: $e errors $(get $k note)" >&2
		fi
		case $s in
		*_resumed)
			if [ $((r * 10)) -lt $((n * 9)) ]; then
				echo "WARNING: $k: only $r of $n sessions resumed" >&2
				status=1
			fi ;;
		*_full)
			if [ "$r" != 0 ]; then
				echo "WARNING: $k: $r of $n full sessions resumed" >&2
				status=1
			fi ;;
		esac
	done
done
exit $status
