#!/bin/sh
# run.sh - smtpd's benchmark suite, one command on a fresh Debian machine:
#
#     sudo sh bench/run.sh            (about 5-8 minutes)
#
# 1. bench/install-deps.sh: apt-installs what is missing (postfix for
#    smtp-source and as the comparison server -- its system daemons are
#    never started --, valgrind, gcc, make, python3, systemd's
#    socket-activate, strace);
# 2. make: builds ./smtpd;
# 3. bench/bench.py: in one run on one file system, the Maildir ceiling
#    (bench/ceiling.c), smtpd as prefork supervisor and inetd-style, and
#    Postfix on loopback, for every case; then pipe-session probes (peak
#    RSS, strace system call counts, callgrind instructions per message).
#    It prints one table (see BENCHMARKS.md for how to read it) and keeps
#    raw results and logs in $BENCH_DIR (default /var/tmp/smtpd-bench).
#
# It creates four system accounts (smtpdbench, 2smtpdbench, 3smtpdbench,
# 4smtpdbench: names smtp-source generates), homes under $BENCH_DIR/home,
# and leaves them for the next run.  Everything it starts it stops; every
# wait is bounded, the whole run by BENCH_TIMEOUT (1800 s).
# Environment: see bench/bench.py (BENCH_SECS, BENCH_CASES, BENCH_SERVERS,
# BENCH_SKIP, BENCH_DIR, BENCH_KEEP).  Loopback only.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -E sh "$0" "$@"
	fi
	echo "run.sh: needs root (system accounts, Postfix, smtpd's deliverer)" >&2
	exit 1
fi

sh "$HERE/install-deps.sh"
make -C "$ROOT" smtpd >/dev/null

# one benchmark at a time on this machine: they would measure each other
LOCK=/var/tmp/smtpd-bench.lock
exec 9>"$LOCK"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
	echo "run.sh: another bench/run.sh holds $LOCK" >&2
	exit 1
fi

# TERM first (bench.py stops its servers), KILL 60 s later if it must
exec timeout --signal=TERM --kill-after=60 "${BENCH_TIMEOUT:-1800}" \
	python3 "$HERE/bench.py" "$@"
