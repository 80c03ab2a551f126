#!/bin/sh
# install-deps.sh - what bench/run.sh needs, on Debian (12):
#   postfix     /usr/sbin/smtp-source (load generator) and the comparison
#               server; bench/run.sh runs its own instance with its own
#               config directory, never the system one
#   valgrind    callgrind instruction counts
#   gcc make libc6-dev   build smtpd, bench/ceiling.c, bench/smtpload.c
#   python3     the harness (bench/bench.py, bench/reaper.py)
#   systemd     /usr/bin/systemd-socket-activate (inetd-style launcher;
#               systemd need not be booted)
#   procps passwd strace   ps, useradd, the syscall profile
#   libtls-dev openssl pkg-config   smtpd-tls and bench/tlsload.c, the
#               certificates of bench/tls-bench.py
# The installing itself (policy-rc.d, debconf, stopping a system Postfix)
# is tests/install-deps.sh's.
set -eu
exec sh "$(dirname "$0")/../tests/install-deps.sh" postfix valgrind gcc make libc6-dev \
	python3 systemd procps passwd strace libtls-dev openssl pkg-config
