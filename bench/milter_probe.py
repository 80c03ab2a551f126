#!/usr/bin/env python3
"""milter_probe.py - what the milter client costs smtpd per message, in
deterministic counts: one inetd-style session on pipes (HELO, N pipelined
4 KB messages, QUIT) with and without the rspamd milter, under
`strace -f -c` (system calls by name) and callgrind (instructions),
session + deliverer; minus the same session with 0 messages, divided by
N.  Uses tests/lib's temp World (no system accounts) and tests/filter's
offline rspamd.  Also times one cheap system call (getppid) here, to
turn the count into time on this machine, and takes the session's own
CPU and context switches (rusage, no tracer, median of 5 alternating
runs) with and without the milter.

Last, the client's own CPU like for like (split_cpu): the session and the
deliverer timed apart (/proc/PID/schedstat, nanoseconds), the messages
fed one every PACE seconds in both runs (without a milter the session
otherwise takes them back to back, and an idle gap between messages
alone costs the session more CPU than the milter client does), in two
placements: "free" (the scheduler's choice) and "apart" (smtpd pinned to
CPU 0, every rspamd process to CPU 1, so neither run pays for moving the
session between CPUs).  bench/wakeup.c measures the floor of any such
client on this machine: one request and one answer between two
processes, on one CPU and on two.

    sudo python3 bench/milter_probe.py [N]      (default N = 100)
"""
import glob
import os
import re
import resource
import select
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "filter"))
sys.dont_write_bytecode = True
os.environ.setdefault("SMTPD", os.path.join(ROOT, "smtpd"))

import smtptest as S    # noqa: E402
import daemons          # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
BODY = ("From: <s@example.org>\r\nTo: <alice@%s>\r\nSubject: probe\r\n\r\n" % S.DOMAIN
        + ("x" * 78 + "\r\n") * 50).encode()


def session_input(n):
    one = (b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@" + S.DOMAIN.encode() +
           b">\r\nDATA\r\n" + BODY + b".\r\n")
    return b"EHLO probe.example\r\n" + one * n + b"QUIT\r\n"


def run(w, milter, n, wrap):
    extra = {"milters": milter} if milter else {}
    argv = wrap + w.argv(extra)
    env = w.environ({"TCPREMOTEIP": "127.0.0.1"})
    r = subprocess.run(argv, input=session_input(n), capture_output=True, env=env,
                       timeout=600, cwd=w.dir)
    got = r.stdout.count(b"Ok: queued")
    if got != n:
        raise RuntimeError("%d of %d accepted: %r %r" % (got, n, r.stdout[-300:],
                                                          r.stderr[:600]))


def cpu_ms(w, milters, n, tries=5):
    """session + deliverer CPU and context switches per message (rusage
    of the children), no tracer: runs of n messages alternating between
    the settings in milters, `tries` each; per setting the median CPU
    (ms/msg) and the median of voluntary context switches per message"""
    got = {m: [] for m in milters}
    for _ in range(tries):
        for m in milters:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            run(w, m, n, [])
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            got[m].append((((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
                           * 1000 / n, (r1.ru_nvcsw - r0.ru_nvcsw) / n))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    return {m: (med([c for c, _ in v]), med([s for _, s in v])) for m, v in got.items()}


def syscalls(w, milter, n):
    """{name: calls} of session + deliverer"""
    out = os.path.join(w.dir, "strace.out")
    run(w, milter, n, ["strace", "-f", "-c", "-o", out])
    calls = {}
    for line in open(out):
        f = line.split()
        if len(f) >= 5 and f[-1] not in ("syscall", "total") and f[3].isdigit():
            calls[f[-1]] = int(f[3])
    return calls


def chown_tree(d, uid, gid):
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)


def instructions(w, milter, n):
    """Ir of session + deliverer (callgrind follows the fork).  As root
    the session would drop to session_user and could not write the file
    callgrind opened at start: so it runs as that account, which then
    owns the world (mailboxes included) for the run."""
    d = tempfile.mkdtemp(prefix="cg-", dir=w.dir)
    os.chmod(d, 0o1777)
    asuser, keep = [], dict(w.settings)
    if os.geteuid() == 0:
        w.settings.pop("session_user", None)
        chown_tree(w.dir, S.SESSION_UID, S.SESSION_GID)
        asuser = ["setpriv", "--reuid=%d" % S.SESSION_UID, "--regid=%d" % S.SESSION_GID,
                  "--clear-groups"]
    try:
        run(w, milter, n, asuser + ["valgrind", "--tool=callgrind", "--trace-children=yes",
                                    "--callgrind-out-file=%s/cg.%%p" % d])
    finally:
        if os.geteuid() == 0:
            w.settings = keep
            chown_tree(w.dir, S.MAIL_UID, S.MAIL_GID)
            os.chown(w.spool, S.SESSION_UID, S.SESSION_GID)
    total = 0
    for f in glob.glob(d + "/cg.*"):
        for line in open(f):
            m = re.match(r"(?:summary|totals): (\d+)", line)
            if m:
                total += int(m.group(1))
                break
    return total


def cpu_ns(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def paced_session(w, milter, n, pace, cpu):
    """session and deliverer CPU (ms/msg) over n messages fed one every
    pace seconds after EHLO; smtpd on CPU cpu unless None"""
    extra = {"milters": milter} if milter else {}
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    p = subprocess.Popen(pin + w.argv(extra), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=w.environ({"TCPREMOTEIP": "127.0.0.1"}), cwd=w.dir)
    try:
        p.stdin.write(b"EHLO probe.example\r\n")
        p.stdin.flush()
        if len(S.wait_until(lambda: S.children(p.pid), 15)) != 1:
            raise RuntimeError("no deliverer (alone) under the session")
        session, deliverer = p.pid, S.children(p.pid)[0]
        seen = b""
        while b"\r\n250 " not in seen:
            b = os.read(p.stdout.fileno(), 4096)
            if not b:
                raise RuntimeError("no EHLO reply: %r" % seen)
            seen += b
        one = session_input(1)[len(b"EHLO probe.example\r\n"):-len(b"QUIT\r\n")]

        def feed():
            for _ in range(n):
                p.stdin.write(one)
                p.stdin.flush()
                time.sleep(pace)
        s0, d0 = cpu_ns(session), cpu_ns(deliverer)
        t = threading.Thread(target=feed)
        t.start()
        out, end = b"", time.time() + 600
        while out.count(b"Ok: queued") < n and time.time() < end:
            if not select.select([p.stdout], [], [], max(0, end - time.time()))[0]:
                break
            b = os.read(p.stdout.fileno(), 65536)
            if not b:
                break
            out += b
        got = out.count(b"Ok: queued")     # the whole output: a reply may span two reads
        t.join()
        s1, d1 = cpu_ns(session), cpu_ns(deliverer)
        if got != n:
            raise RuntimeError("%d of %d accepted" % (got, n))
        p.stdin.write(b"QUIT\r\n")
        p.stdin.close()
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return (s1 - s0) / n / 1e6, (d1 - d0) / n / 1e6


def pin_all(pid, cpus):
    for p in [pid] + S.descendants(pid):
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(p)], capture_output=True)


def split_cpu(w, rspamd, n, pace=0.005, rounds=3):
    """{placement: (session without, with, deliverer without, with)}: medians
    of `rounds` alternating paced runs"""
    med = lambda xs: sorted(xs)[len(xs) // 2]    # noqa: E731
    res = {}
    for place, cpu, rcpus in (("free", None, "0-%d" % (os.cpu_count() - 1)),
                              ("apart", 0, "1")):
        pin_all(rspamd.procs[0].pid, rcpus)
        got = {None: [], rspamd.spec: []}
        for _ in range(rounds):
            for m in got:
                got[m].append(paced_session(w, m, n, pace, cpu))
        a, b = got[None], got[rspamd.spec]
        res[place] = (med([x[0] for x in a]), med([x[0] for x in b]),
                      med([x[1] for x in a]), med([x[1] for x in b]))
    pin_all(rspamd.procs[0].pid, "0-%d" % (os.cpu_count() - 1))
    return res


def wakeup_floor(tmp):
    """bench/wakeup.c: the requester's CPU per 4,457-octet request and
    one-octet answer (held back 2 ms, paced 5 ms), over loopback TCP, with
    the two processes where the scheduler puts them and on two CPUs"""
    exe = os.path.join(tmp, "wakeup")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "wakeup.c")], check=True)
    out = {}
    for place in ("free", "apart"):
        r = subprocess.run([exe, "1000", "2000", "4457", "tcp", "5000", place],
                           capture_output=True, text=True, timeout=120, check=True)
        out[place] = float(re.search(r"client_cpu_ms_per_exchange=([0-9.]+)", r.stdout).group(1))
    return out


def per_msg(a, b, n):
    return {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}


def syscall_cost():
    """microseconds per getppid() from Python's loop minus the loop alone"""
    k = 200000
    t = time.perf_counter()
    for _ in range(k):
        os.getppid()
    a = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(k):
        int(1)
    b = time.perf_counter() - t
    return (a - b) / k * 1e6


def main():
    rspamd = daemons.start_rspamd()
    w = S.World("milter-probe", users=("alice",))
    try:
        res = {}
        for name, milter in (("without", None), ("with rspamd", rspamd.spec)):
            sc = per_msg(syscalls(w, milter, 0), syscalls(w, milter, N), N)
            ir = (instructions(w, milter, N) - instructions(w, milter, 0)) / N
            res[name] = (sc, ir)
        cpu = cpu_ms(w, (None, rspamd.spec), 3 * N)
        print("per message, session + deliverer, %d pipelined 4 KB messages" % N)
        a, b = res["without"], res["with rspamd"]
        print("system calls: %.1f without, %.1f with rspamd (+%.1f)" % (
            sum(a[0].values()), sum(b[0].values()),
            sum(b[0].values()) - sum(a[0].values())))
        d = per_msg(a[0], b[0], 1)
        for k, v in sorted(d.items(), key=lambda kv: -abs(kv[1])):
            if abs(v) >= 0.05:
                print("  %-16s %+.2f" % (k, v))
        print("instructions: %.0f without, %.0f with rspamd (+%.0f)" % (a[1], b[1], b[1] - a[1]))
        print("getppid() here: %.2f us" % syscall_cost())
        (ca, sa), (cb, sb) = cpu[None], cpu[rspamd.spec]
        print("CPU (no tracer, %d messages, median of 5, alternating): %.3f ms/msg without, "
              "%.3f with rspamd: the client adds %.3f ms/msg" % (3 * N, ca, cb, cb - ca))
        print("voluntary context switches per message: %.2f without, %.2f with rspamd"
              % (sa, sb))
        split = split_cpu(w, rspamd, 2 * N)
        print("like for like (%d messages, one every 5 ms in both runs, medians of 3):" % (2 * N))
        for place, (sa, sb, da, db) in split.items():
            print("  %-5s session %.3f -> %.3f ms/msg (client +%.3f), deliverer %.3f -> %.3f "
                  "(%+.3f), both %+.3f" % (place, sa, sb, sb - sa, da, db, db - da,
                                           sb - sa + db - da))
        floor = wakeup_floor(w.dir)
        print("floor (bench/wakeup.c, one request and answer, TCP, paced): %.3f ms on the "
              "scheduler's CPUs, %.3f ms on two CPUs" % (floor["free"], floor["apart"]))
    finally:
        w.cleanup()
        rspamd.stop()


if __name__ == "__main__":
    main()
