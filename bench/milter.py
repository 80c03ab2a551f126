#!/usr/bin/env python3
"""milter.py - smtpd with the rspamd milter against Postfix with the same
rspamd milter, 4 KB messages at concurrency 8 (smtp-source), on loopback.

    sudo python3 bench/milter.py          (root: system accounts, Postfix)

Reuses bench/bench.py's machinery (accounts, Maildirs, servers under
bench/reaper.py, smtp-source runs, CPU by role) and tests/filter's rspamd
(proxy worker in milter mode, self-scan, offline).  Three kinds of run
with the same message count: smtpd without a milter (the baseline for the
client's cost), smtpd with rspamd, Postfix with rspamd.  Prints one table:
messages per second; smtpd's own CPU per message (supervisor + workers +
deliverers) and what the milter client adds to it; rspamd's CPU per
message, reported apart.  smtpd's two runs are repeated in
MILTER_BENCH_ROUNDS (3) alternating rounds; the table shows the median
run of each, and the client's own cost is given per round and as the
median, for the whole tree and for the workers alone (where the client
runs; the deliverers' CPU moves with how many files the previous run's
clean-up deleted).  Environment:
MILTER_BENCH_N (messages per run, default 1000), MILTER_BENCH_ROUNDS,
MILTER_BENCH_SOCKET (inet, the default: rspamd on 127.0.0.1:PORT; unix: the
same worker on its unix socket, for both servers), BENCH_DIR (default
/var/tmp/smtpd-milter-bench).
"""
import os
import sys

os.environ.setdefault("BENCH_DIR", "/var/tmp/smtpd-milter-bench")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "filter"))
sys.dont_write_bytecode = True

import bench as B       # noqa: E402
import daemons          # noqa: E402

N = int(os.environ.get("MILTER_BENCH_N", "1000"))
WARM = 100
ROUNDS = int(os.environ.get("MILTER_BENCH_ROUNDS", "3"))
SOCKET = os.environ.get("MILTER_BENCH_SOCKET", "inet")
CASE = dict(id="4k-c8", label="4KB x1 rcpt c=8", size=4096, rcpt=1, conc=8)


def rspamd_cpu():
    """user+system seconds of every rspamd process now alive"""
    total = 0
    for pid in B.S.all_pids():
        st = B.S.proc_fields(pid)
        if st and st[0].startswith("rspamd"):
            total += int(st[1][11]) + int(st[1][12])
    return total / os.sysconf("SC_CLK_TCK")


def run(kind, milter, tag):
    base_opts, base_main = B.smtpd_opts, B.MAIN_CF
    if kind == "smtpd-sup":
        extra = ["-o", "milters=" + milter] if milter else []
        B.smtpd_opts = lambda spool: base_opts(spool) + extra + [
            "-o", "worker_connections=100000"]
    else:
        B.MAIN_CF = base_main + ("smtpd_milters = %s\nmilter_default_action = tempfail\n"
                                 "milter_protocol = 6\n" % milter)
    try:
        B.clear_maildirs()
        srv = B.Server(kind, CASE["conc"], tag)
        warm = B.deliver_run(srv, CASE, WARM, tag + "-warm", 0, 300)
        r0 = rspamd_cpu()
        res = B.deliver_run(srv, CASE, N, tag, WARM, 900)
        rsp = rspamd_cpu() - r0
        rep = srv.stop()
    finally:
        B.smtpd_opts, B.MAIN_CF = base_opts, base_main
    cpu = B.cpu_breakdown(kind, rep or {})
    own = sum(cpu.values()) if cpu else None   # the server's own tree; rspamd apart
    # the milter client runs in the workers; the deliverers' CPU depends on
    # how many files the last clear_maildirs() deleted (ext4 looks for
    # recently deleted inodes), so the client's cost is taken without it
    sess = sum(v for k, v in cpu.items() if k != "deliverers") if cpu else None
    return {"kind": kind, "milter": bool(milter), "rate": N / res["secs"],
            "problems": warm["problems"] + res["problems"], "cpu": cpu,
            "own_ms": own * 1000 / (N + WARM) if own is not None else None,
            "sess_ms": sess * 1000 / (N + WARM) if sess is not None else None,
            "rspamd_ms": rsp * 1000 / N if milter else None}


def median(rounds, j):
    """the median run, by own CPU, of the jth kind in every round"""
    runs = sorted((r[j] for r in rounds), key=lambda x: x["own_ms"])
    return runs[len(runs) // 2]


def session_cpu(milter, n=300, tries=3):
    """smtpd's own CPU (session + deliverer) per message in one pipelined
    inetd-style session of n messages; the best of `tries`"""
    base_opts = B.smtpd_opts
    extra = ["-o", "milters=" + milter] if milter else []
    B.smtpd_opts = lambda spool: base_opts(spool) + extra
    best = None
    os.environ["TCPREMOTEIP"] = "127.0.0.1"   # a pipe has no peer; rspamd wants one
    try:
        for i in range(tries):
            B.clear_maildirs()
            ru, ok, st, _mem = B.pipe_session(n, 4096, 1, tag="cpu%d" % i, spool="spool-cpu")
            if ok != n:
                raise RuntimeError("pipe session: %d of %d accepted (status %s)" % (ok, n, st))
            cpu = (ru.ru_utime + ru.ru_stime) * 1000 / n
            best = cpu if best is None else min(best, cpu)
    finally:
        B.smtpd_opts = base_opts
        os.environ.pop("TCPREMOTEIP", None)
    return best


def main():
    if os.geteuid() != 0:
        sys.exit("milter.py: run as root (system accounts, Postfix, deliverer)")
    import shutil
    shutil.rmtree(os.path.join(B.WORK, "trash"), ignore_errors=True)
    os.makedirs(os.path.join(B.WORK, "runs"), exist_ok=True)
    B.setup_users()
    B.build_tools()
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    if SOCKET not in ("inet", "unix"):
        sys.exit("milter.py: MILTER_BENCH_SOCKET is inet or unix")
    rspamd = daemons.start_rspamd()
    spec = rspamd.unix_spec if SOCKET == "unix" else rspamd.spec
    rows, rounds = [], []
    try:
        for i in range(ROUNDS):     # alternating, for the client's cost
            rounds.append((run("smtpd-sup", None, "smtpd-nomilter%d" % i),
                           run("smtpd-sup", spec, "smtpd-rspamd%d" % i)))
        rows += [median(rounds, j) for j in range(2)]
        rows.append(run("postfix", spec, "postfix-rspamd"))
        seq = (session_cpu(None), session_cpu(spec))
    finally:
        B.cleanup_live()
        rspamd.stop()
    print("milter benchmark: %d x 4 KB messages, concurrency 8, loopback; milter "
          "on %s; load average before: %s" % (N, spec, load))
    print("%-22s %10s %16s %16s" % ("server", "msgs/s", "own CPU ms/msg", "rspamd ms/msg"))
    for r in rows:
        name = ("%s %s" % ("smtpd" if r["kind"] == "smtpd-sup" else "postfix",
                           "+ rspamd" if r["milter"] else "(no milter)"))
        print("%-22s %10.1f %16s %16s" % (
            name, r["rate"], "%.3f" % r["own_ms"] if r["own_ms"] is not None else "-",
            "%.2f" % r["rspamd_ms"] if r["rspamd_ms"] is not None else "-"))
        for p in r["problems"]:
            print("    problem: " + p)
    print("(smtpd rows: the median run of %d alternating rounds, by own CPU)" % ROUNDS)
    for key, what in (("own_ms", "whole tree"), ("sess_ms", "workers alone, no deliverers")):
        d = sorted(r[1][key] - r[0][key] for r in rounds)
        print("milter client's own cost, %s, per round: %s (median %.3f) ms/msg" % (
            what, " ".join("%.3f" % x for x in d), d[len(d) // 2]))
    print("one pipelined session, 300 messages, best of 3: smtpd %.3f ms/msg without a "
          "milter, %.3f with rspamd: the client adds %.3f ms/msg" % (seq[0], seq[1], seq[1] - seq[0]))
    print("smtpd CPU by role with rspamd: %s" % ", ".join(
        "%s %.2fs" % kv for kv in sorted(rows[1]["cpu"].items())))
    print("smtpd+rspamd / postfix+rspamd rate: %.2f" % (rows[1]["rate"] / rows[2]["rate"]))
    if rows[2]["own_ms"]:
        print("smtpd+rspamd / postfix+rspamd own CPU per message: %.2f"
              % (rows[1]["own_ms"] / rows[2]["own_ms"]))


if __name__ == "__main__":
    main()
