#!/bin/sh
# launch-bench.sh - how fast smtpd takes connections and messages in its
# two launch styles, measured in one run on loopback:
#   supervisor : smtpd -l 127.0.0.1:P (prefork workers)
#   inetd      : systemd-socket-activate --accept (fork+exec per connection,
#                as systemd Accept=yes, inetd, xinetd or tcpserver do)
# Workloads (bench/smtpload.c, C threads, C concurrent clients, D seconds):
#   connect : connect, 220, EHLO, QUIT, close
#   msg4k   : one 4 KB message to one recipient per connection
# Prints a table with the rates, latencies, errors, the client's CPU use
# (to show the client is not the bottleneck), the machine's CPU use, and
# the ratio supervisor/inetd.  NOT a test: it never fails on a number.
#
# Usage: sh bench/launch-bench.sh [./smtpd]
# Env:   BENCH_SECS (5) BENCH_CONC (8) BENCH_SIZE (4096) BENCH_WARMUP (1)
#        BENCH_WORKERS (16: prefork idle workers, >= BENCH_CONC so that no
#        spare worker is retired during the run)
# Needs: cc, python3 (free ports), systemd-socket-activate
#        (tests/launch/install-deps.sh installs it).  Loopback only.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SMTPD=${1:-$ROOT/smtpd}
case $SMTPD in /*) ;; *) SMTPD=$(pwd)/$SMTPD ;; esac
SECS=${BENCH_SECS:-5}
CONC=${BENCH_CONC:-8}
SIZE=${BENCH_SIZE:-4096}
WARM=${BENCH_WARMUP:-1}
WORKERS=${BENCH_WORKERS:-16}
SA=/usr/bin/systemd-socket-activate

[ -x "$SA" ] || { echo "launch-bench: $SA missing (tests/launch/install-deps.sh)" >&2; exit 1; }
if [ "${1:-}" = "" ]; then
	make -C "$ROOT" smtpd >/dev/null
fi
[ -x "$SMTPD" ] || { echo "launch-bench: no binary $SMTPD" >&2; exit 1; }

WORK=$(mktemp -d /tmp/smtpd-bench-XXXXXX)
chmod 755 "$WORK"
PGIDS=""
cleanup() {
	# (dash's kill takes no "--": a negative number after the signal is a group)
	for g in $PGIDS; do kill -TERM "-$g" 2>/dev/null || true; done
	i=0
	while [ $i -lt 50 ]; do
		left=""
		for g in $PGIDS; do
			if kill -0 "-$g" 2>/dev/null; then left=1; fi
		done
		[ -z "$left" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	for g in $PGIDS; do kill -KILL "-$g" 2>/dev/null || true; done
	if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -pthread -o "$WORK/smtpload" "$HERE/smtpload.c"

# world: two Maildir users (one per mode), spool made by smtpd itself
mkdir -p "$WORK/home/sup" "$WORK/home/inetd"
chmod 755 "$WORK/home" "$WORK/home/sup" "$WORK/home/inetd"
if [ "$(id -u)" -eq 0 ]; then
	U=65534 G=65534 SESSION="-o session_user=nobody"
	chown $U:$G "$WORK/home/sup" "$WORK/home/inetd"
else
	U=$(id -u) G=$(id -g) SESSION=""
fi
printf 'sup:%s:%s:%s/home/sup/Maildir\ninetd:%s:%s:%s/home/inetd/Maildir\n' \
	"$U" "$G" "$WORK" "$U" "$G" "$WORK" >"$WORK/users"
chmod 644 "$WORK/users"
OPTS="-e -o hostname=mx.test -o local_domains=example.test -o virtual_users=$WORK/users
 -o postmaster=sup -o queue_interval=0 $SESSION"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_listen() {	# port
	i=0
	while [ $i -lt 100 ]; do
		hex=$(printf '%04X' "$1")
		if grep -q ":$hex 00000000:0000 0A" /proc/net/tcp 2>/dev/null; then return 0; fi
		sleep 0.05
		i=$((i + 1))
	done
	echo "launch-bench: nothing listens on $1" >&2
	return 1
}
start() {	# log, command... : run in a new session (process group)
	log=$1
	shift
	setsid "$@" >"$log" 2>&1 </dev/null &
	PGIDS="$PGIDS $!"
}

P_SUP=$(free_port)
# shellcheck disable=SC2086
start "$WORK/sup.log" "$SMTPD" $OPTS -o spool_dir="$WORK/spool-sup" \
	-o workers="$WORKERS" -o max_sessions=256 -o max_per_addr=256 -l 127.0.0.1:"$P_SUP"
P_INETD=$(free_port)
while [ "$P_INETD" = "$P_SUP" ]; do P_INETD=$(free_port); done
# shellcheck disable=SC2086
start "$WORK/inetd.log" "$SA" -l 127.0.0.1:"$P_INETD" --accept \
	"$SMTPD" $OPTS -o spool_dir="$WORK/spool-inetd"
wait_listen "$P_SUP"
wait_listen "$P_INETD"
sleep 0.5

cpu_busy() {	# busy and total jiffies of the machine
	awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat
}

RESULTS="$WORK/results"
: >"$RESULTS"
run() {	# mode port workload rcpt
	b0=$(cpu_busy)
	if [ "$3" = msg4k ]; then m=msg; else m=conn; fi
	out=$("$WORK/smtpload" -p "$2" -c "$CONC" -d "$SECS" -w "$WARM" -m $m -s "$SIZE" \
		-r "$4@example.test")
	b1=$(cpu_busy)
	machine=$(echo "$b0 $b1" | awk '{t=$4-$2; printf "%.0f", t ? 100*($3-$1)/t : 0}')
	echo "$1 $3 $machine $out" >>"$RESULTS"
	echo "  $1 $3: $out machine_cpu=${machine}%" >&2
}

echo "smtpd launch benchmark: $SECS s per run (+${WARM} s warm-up), $CONC clients," \
	"${SIZE}-octet messages, $(nproc) CPUs, spool and Maildirs in $WORK" \
	"($(df -T "$WORK" | awk 'NR==2{print $2}'))" >&2
run supervisor "$P_SUP" connect sup
run inetd "$P_INETD" connect inetd
run supervisor "$P_SUP" msg4k sup
run inetd "$P_INETD" msg4k inetd

# sanity: stored files, and the supervisor did not stop by itself
n_sup=$(find "$WORK/home/sup/Maildir/new" -type f 2>/dev/null | wc -l)
n_inetd=$(find "$WORK/home/inetd/Maildir/new" -type f 2>/dev/null | wc -l)
if grep -q "stopping" "$WORK/sup.log"; then
	echo "WARNING: the supervisor stopped by itself during the run (see the test" \
		"spare_workers_retired_under_churn); figures are not valid" >&2
fi

echo
python3 - "$RESULTS" "$SECS" "$CONC" "$n_sup" "$n_inetd" <<'EOF'
import re, sys
path, secs, conc, n_sup, n_inetd = sys.argv[1:]
rows = {}
for line in open(path):
    mode, work, machine, rest = line.split(" ", 3)
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', rest))
    kv["machine"] = machine
    rows[(mode, work)] = kv
hdr = "%-11s %-8s %9s %8s %8s %8s %7s %11s %8s" % (
    "mode", "workload", "ops", "ops/s", "p50 ms", "p99 ms", "errors", "client CPU", "all CPU")
print(hdr)
print("-" * len(hdr))
for work in ("connect", "msg4k"):
    for mode in ("supervisor", "inetd"):
        r = rows.get((mode, work))
        if not r:
            continue
        ccpu = 100 * (float(r["cpu_user"]) + float(r["cpu_sys"])) / float(r["wall"])
        print("%-11s %-8s %9s %8.0f %8s %8s %7s %10.0f%% %7s%%" % (
            mode, work, r["ops"], float(r["rate"]), r["p50_ms"], r["p99_ms"], r["errors"],
            ccpu, r["machine"]))
print()
for work in ("connect", "msg4k"):
    s, i = rows.get(("supervisor", work)), rows.get(("inetd", work))
    if s and i and float(i["rate"]) > 0:
        print("ratio supervisor/inetd, %-8s %.2fx" % (work + ":", float(s["rate"]) / float(i["rate"])))
print()
print("client CPU = smtpload's user+sys time / run time (100% = one of the CPUs);")
print("all CPU = the machine's busy share over the run (client + server + kernel).")
print("files stored: supervisor %s, inetd %s" % (n_sup, n_inetd))
for (mode, work), r in sorted(rows.items()):
    if r["errors"] != "0":
        print("%s %s first error: %s" % (mode, work, r["first_error"]))
EOF
