#!/bin/sh
# fuzz/run.sh - run the harnesses built by fuzz/fuzz.mk (from the repo root).
#   sh fuzz/run.sh fuzz SECONDS TARGET...   fuzz each on a copy of its corpus
#   sh fuzz/run.sh regress 0 TARGET...      run regress/ and corpus/ files once
# Prints one line per target; exits 1 if any target crashed, leaked, hit
# UBSan or a CHECK (its log: fuzz/build/TARGET.log).
mode=$1 secs=$2
shift 2
B=fuzz/build failed= npass=0 nfail=0
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
# the harnesses' temp dirs (spool, Maildir) go here, gone even after a crash
base=/tmp
[ -w /dev/shm ] && base=/dev/shm
TMPDIR=$(mktemp -d "$base/smtpd-fuzz-run.XXXXXX") || exit 1
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
for t in "$@"; do
	log=$B/$t.log
	if [ "$mode" = fuzz ]; then
		work=$B/corpus/$t art=$B/artifacts/$t/
		rm -rf "$work" && mkdir -p "$work" "$art" &&
		cp fuzz/corpus/$t/* "$work"/ || exit 1
		dict=
		[ -f fuzz/$t.dict ] && dict=-dict=fuzz/$t.dict
		$B/fuzz_$t -max_len=65536 -max_total_time="$secs" -timeout=30 \
		    -print_final_stats=1 -artifact_prefix="$art" $dict "$work" \
		    >"$log" 2>&1
		rc=$?
		printf '%-9s %s\n' "$t" "$(grep -E '^#[0-9]+' "$log" | tail -n 1)"
	else
		: >"$log"
		rc=0 n=0
		for f in $(find fuzz/regress/$t fuzz/corpus/$t -type f 2>/dev/null | sort); do
			n=$((n + 1))
			$B/fuzz_$t "$f" >>"$log" 2>&1 || { rc=1; echo "    FAILS: $f"; }
		done
		printf '%-9s %s inputs\n' "$t" "$n"
	fi
	if [ $rc -eq 0 ]; then
		npass=$((npass + 1))
	else
		nfail=$((nfail + 1))
		failed="$failed $t"
		grep -E 'ERROR|SUMMARY|runtime error|CHECK failed|left behind|Test unit written| #[0-3] ' \
		    "$log" | head -n 14 | sed 's/^/    /'
	fi
done
echo "$npass passed, $nfail failed (fuzz targets, $mode)"
[ -z "$failed" ] || { echo "fuzz: FAILED:$failed (logs: $B/<target>.log)"; exit 1; }
