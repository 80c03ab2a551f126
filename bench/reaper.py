#!/usr/bin/env python3
"""reaper.py - run a server as a process tree whose whole CPU time we get.

    reaper.py --out FILE [--start 'SHELL CMD'] [--stop 'SHELL CMD'] [-- ARGV...]

The reaper makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER),
so every process of the server tree ends up waited for by us or by one of
its own ancestors inside the tree, even when it daemonizes (Postfix's
master) or its parent dies first.  The kernel adds a waited-for child's
user+system time, and everything that child had waited for, to the
waiter: after the last process of the tree is gone, our
getrusage(RUSAGE_CHILDREN) is the CPU time of the whole tree -- the
supervisor, every worker and every deliverer, or Postfix's master and all
its services -- at microsecond resolution, including processes that lived
for one connection.  The one-shot --start and --stop commands (e.g.
"postfix start", "postfix stop") are also our children; their own rusage,
from wait4(), is subtracted, so only the server itself is counted.

ARGV, if given, is the server, started at once (no shell).  --start runs
before it (or alone, for a daemonizing server) and is waited for.

SIGTERM to the reaper ends the measurement:
  1. a memory snapshot of every live process of the tree (/proc/PID/status:
     VmHWM = its peak RSS, RssAnon, RssFile; and its place in the tree);
  2. --stop runs, or SIGTERM goes to ARGV's process;
  3. the reaper waits for every descendant (--grace seconds at most, then
     SIGKILL to whatever is left, and waits again, bounded);
  4. FILE gets one JSON object; the reaper exits 0.
"""
import argparse
import ctypes
import json
import os
import resource
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "lib"))
import smtptest as S  # noqa: E402  /proc helpers

PR_SET_CHILD_SUBREAPER = 36
TICK = os.sysconf("SC_CLK_TCK")


def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("reaper: prctl(PR_SET_CHILD_SUBREAPER) failed")


def proc_table():
    """pid -> (ppid, comm) for every process we can see"""
    table = {}
    for pid in S.all_pids():
        st = S.proc_fields(pid)
        if st:
            table[pid] = (int(st[1][1]), st[0])
    return table


def descendants(root):
    """[(pid, ppid, depth, comm)] of every live descendant of root"""
    table = proc_table()
    kids = {}
    for pid, (ppid, comm) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [(root, 0)]
    while todo:
        pid, depth = todo.pop()
        for k in kids.get(pid, []):
            out.append((k, pid, depth + 1, table[k][1]))
            todo.append((k, depth + 1))
    return out


def status_of(pid):
    """pid's memory (smtptest.proc_memory), CPU time and command line; None if gone"""
    res = S.proc_memory(pid)
    st = S.proc_fields(pid)
    cmd = S.cmdline(pid)
    if res is None or st is None or not cmd:
        return None
    fields = st[1]
    cmd = b" ".join(cmd).decode(errors="replace").strip()[:160]
    res["cpu_own"] = (int(fields[11]) + int(fields[12])) / TICK	# utime+stime
    res["cpu_reaped"] = (int(fields[13]) + int(fields[14])) / TICK	# its waited children
    res["cmd"] = cmd
    return res


def ru_sum(a, b, sign=1):
    return (a[0] + sign * b[0], a[1] + sign * b[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--start")
    ap.add_argument("--stop")
    ap.add_argument("--grace", type=float, default=30.0)
    ap.add_argument("argv", nargs="*")
    a = ap.parse_args()

    set_subreaper()
    me = os.getpid()
    term = []
    signal.signal(signal.SIGTERM, lambda s, f: term.append(s))
    signal.signal(signal.SIGINT, lambda s, f: term.append(s))
    excluded = (0.0, 0.0)	# rusage (user, sys) of --start/--stop
    oneshots = set()
    exits = {}

    def reap(block=False):
        nonlocal excluded
        got = 0
        while True:
            try:
                pid, st, ru = os.wait4(-1, 0 if block and not got else os.WNOHANG)
            except ChildProcessError:
                return -1
            except InterruptedError:
                continue
            if pid == 0:
                return got
            got += 1
            if pid in oneshots:
                excluded = ru_sum(excluded, (ru.ru_utime, ru.ru_stime))
                oneshots.discard(pid)
                exits[pid] = st

    def run_oneshot(cmd, limit):
        pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", cmd], os.environ)
        oneshots.add(pid)
        deadline = time.time() + limit
        while pid in oneshots and time.time() < deadline:
            reap()
            time.sleep(0.02)
        if pid in oneshots:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            while pid in oneshots and reap(block=True) != -1:
                pass
        return exits.get(pid, -1)

    t_start = time.time()
    if a.start:
        st = run_oneshot(a.start, 60)
        if st != 0:
            print("reaper: start command failed (status %s)" % st, file=sys.stderr)
    server = None
    if a.argv:
        server = os.posix_spawnp(a.argv[0], a.argv, os.environ)
    while not term:
        reap()
        time.sleep(0.05)

    # 1. memory snapshot of the live tree, before anything is stopped
    procs = []
    for pid, ppid, depth, comm in descendants(me):
        s = status_of(pid)
        if s:
            s.update(pid=pid, ppid=ppid, depth=depth, comm=comm)
            procs.append(s)
    # 2. stop the server
    t_stop = time.time()
    if a.stop:
        run_oneshot(a.stop, 60)
    if server:
        try:
            os.kill(server, signal.SIGTERM)
        except OSError:
            pass
    # 3. wait for every descendant, bounded; then kill what is left
    deadline = time.time() + a.grace
    killed = []
    while time.time() < deadline:
        if reap() == -1 and not descendants(me):
            break
        time.sleep(0.02)
    else:
        for pid, _, _, comm in descendants(me):
            killed.append("%d(%s)" % (pid, comm))
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        end = time.time() + 10
        while time.time() < end and reap() != -1:
            time.sleep(0.02)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, sys_ = ru_sum((ru.ru_utime, ru.ru_stime), excluded, -1)
    res = {
        "cpu_user": user, "cpu_sys": sys_, "cpu": user + sys_,
        "excluded_cpu": excluded[0] + excluded[1],
        "tree_maxrss_kb": ru.ru_maxrss, "procs": procs,
        "secs": t_stop - t_start, "stop_secs": time.time() - t_stop,
        "killed": killed,
    }
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f)
    os.rename(tmp, a.out)


if __name__ == "__main__":
    main()
