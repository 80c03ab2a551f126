#!/usr/bin/env python3
"""bench.py - smtpd's benchmark suite; run it through bench/run.sh.

One run, one file system; BENCHMARKS.md explains the method.  In short:

  for each case (4 KB x 1 rcpt at concurrency 1, 8, 32; 4 KB x 4 rcpts at
  8; 1 MB x 1 rcpt at 4; connect/EHLO/QUIT at 8), for each server --
  smtpd's prefork supervisor, smtpd inetd-style (systemd-socket-activate
  --accept: fork+exec per connection) and Postfix (Debian's package, our
  own config directory, home_mailbox = Maildir/), in an order that
  rotates from case to case:
      start the server under bench/reaper.py, pilot (warm-up, sizing),
      ceiling  chunk  ceiling  chunk  ceiling  chunk  ceiling,  stop
  where "ceiling" is bench/ceiling.c (the bare durable Maildir steps, as
  many processes as the case's concurrency) and "chunk" a third of the
  measured messages from Postfix's smtp-source.  x ceiling is the mean over
  the chunks of chunk rate / mean of the ceiling runs around it.

A message counts when its file is in new/ of every recipient's Maildir:
a chunk ends when the count of files reaches the expected number (bounded
wait; Postfix delivers after its 250), and the count must then be exactly
that number, with tmp/ empty and Postfix's queue empty.  The reaper (a
child subreaper) yields the CPU time of the server's whole process tree;
the load generators are not part of it.  Nothing is deleted while
measuring (ext4 without a journal makes creates slow after deletions).

Then, without the network: one inetd-style session over a pipe with 200
pipelined 4 KB messages (16 x 1 MB) for peak RSS and CPU per message, and
with 0 and 100 messages under strace -f -c (system calls per message) and
valgrind --tool=callgrind (instructions per message, top functions).

Settings (environment): BENCH_DIR (/var/tmp/smtpd-bench), BENCH_SECS (6:
length of each measured run), BENCH_CEIL_SECS (2), BENCH_CASES (comma
list of case ids), BENCH_SERVERS (comma list), BENCH_SKIP (comma list of:
callgrind, strace, probe), BENCH_KEEP=1 (keep the Maildirs and spools),
BENCH_QUIET (65: seconds to wait after a mass deletion).
"""
import json
import os
import platform
import pwd
import re
import shutil
import signal
import threading
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SMTPD = os.path.join(ROOT, "smtpd")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import servers  # noqa: E402  Postfix's instance directory and master.cf
import smtptest as S  # noqa: E402  free ports, bounded waits, /proc
WORK = os.environ.get("BENCH_DIR", "/var/tmp/smtpd-bench")
SECS = float(os.environ.get("BENCH_SECS", "6"))
CEIL_SECS = float(os.environ.get("BENCH_CEIL_SECS", "2"))
SKIP = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
SMTP_SOURCE = "/usr/sbin/smtp-source"
SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
DOMAIN = "example.test"
# smtp-source -r N sends to "N<to>", ..., "2<to>", "<to>": these names are
# what it generates for -t smtpdbench@example.test (useradd --badname).
USERS = ["smtpdbench", "2smtpdbench", "3smtpdbench", "4smtpdbench"]
GECOS = "smtpd benchmark"
MB = 1048576
STAMP = WORK.rstrip("/") + ".deleted"	# when a run last deleted many files
QUIET_AFTER_DELETE = float(os.environ.get("BENCH_QUIET", "65"))

CASES = [
    dict(id="4k-c1", label="4KB x1 rcpt  c=1", size=4096, rcpt=1, conc=1),
    dict(id="4k-c8", label="4KB x1 rcpt  c=8", size=4096, rcpt=1, conc=8),
    dict(id="4k-c32", label="4KB x1 rcpt  c=32", size=4096, rcpt=1, conc=32),
    dict(id="4k-r4-c8", label="4KB x4 rcpts c=8", size=4096, rcpt=4, conc=8),
    dict(id="1m-c4", label="1MB x1 rcpt  c=4", size=MB, rcpt=1, conc=4),
    dict(id="conn-c8", label="connect+EHLO+QUIT c=8", conn=True, conc=8),
]
SERVERS = ["smtpd-sup", "smtpd-inetd", "postfix"]

LIVE = {}		# reaper pid -> Server, for cleanup
CLIENTS = set()		# load generators running now
POSTFIX_CONF = None	# set once configured, for an emergency abort


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check, **kw)


# ---------------------------------------------------------------- setup

def machine_facts():
    def mount_of(path):
        best = ("", "?", "?")
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                if (path + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev + " " + opts)
        return best
    mnt, fstype, devopts = mount_of(os.path.realpath(WORK))
    if fstype == "ext4":	# a journal changes what fsync costs
        dev = os.path.basename(os.path.realpath(devopts.split()[0]))
        try:
            with open("/sys/fs/ext4/%s/journal_task" % dev) as f:
                jt = f.read().strip()
            fstype += " (no journal)" if jt in ("", "<none>") else " (journal)"
        except OSError:
            pass
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        pf = sh(["postconf", "-d", "-h", "mail_version"], capture_output=True,
                text=True).stdout.strip()
    except Exception:
        pf = "?"
    rev = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False,
             capture_output=True, text=True).stdout.strip()
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
               check=False, capture_output=True, text=True).stdout.strip()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    load += psi()
    return {
        "cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "fs": fstype, "mount": mnt, "mount_opts": devopts,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "postfix": pf, "smtpd_rev": rev + ("+dirty" if dirty else ""),
        "loadavg_at_start": load, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def psi():
    """CPU and I/O pressure (share of time something waited), last 60 s"""
    out = ""
    for res in ("cpu", "io"):
        try:
            with open("/proc/pressure/" + res) as f:
                m = re.search(r"avg60=([\d.]+)", f.readline())
                out += ", %s pressure %s%%" % (res, m.group(1))
        except (OSError, AttributeError):
            pass
    return out


def build_tools():
    os.makedirs(os.path.join(WORK, "bin"), exist_ok=True)
    for name, extra in (("ceiling", []), ("smtpload", ["-pthread"])):
        sh(["cc", "-O2", "-Wall", "-o", os.path.join(WORK, "bin", name)] + extra +
           [os.path.join(HERE, name + ".c")])


def setup_users():
    """system accounts with homes (and Maildirs) in WORK/home"""
    home_base = os.path.join(WORK, "home")
    os.makedirs(home_base, exist_ok=True)
    os.chmod(home_base, 0o755)
    for u in USERS:
        home = os.path.join(home_base, u)
        try:
            pw = pwd.getpwnam(u)
            if pw.pw_gecos != GECOS:
                sys.exit("bench: account %s exists and is not ours (GECOS %r); "
                         "not touching it" % (u, pw.pw_gecos))
            if pw.pw_dir != home:
                sh(["usermod", "-d", home, u])
        except KeyError:
            sh(["useradd", "--system", "--badname", "-M", "-U", "-d", home,
                "-s", "/usr/sbin/nologin", "-c", GECOS, u])
        pw = pwd.getpwnam(u)
        for d in ("", "/Maildir", "/Maildir/new", "/Maildir/cur", "/Maildir/tmp"):
            p = home + d
            os.makedirs(p, exist_ok=True)
            os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(p, 0o700)


def maildir(u):
    return os.path.join(WORK, "home", u, "Maildir")


TRASH = [0]


def clear_maildirs():
    """give every user an empty Maildir.  The old one is renamed into
    WORK/trash, not deleted: on ext4 without a journal (this machine)
    every file created in the next ~30 s would otherwise pay for skipping
    the recently deleted inodes (ext4 find_inode_bit -> recently_deleted)."""
    for u in USERS:
        md = maildir(u)
        if any(os.listdir(os.path.join(md, sub)) for sub in ("new", "cur", "tmp")):
            TRASH[0] += 1
            os.makedirs(os.path.join(WORK, "trash"), exist_ok=True)
            os.rename(md, os.path.join(WORK, "trash", "%d-%s" % (TRASH[0], u)))
        pw = pwd.getpwnam(u)
        for d in ("", "/new", "/cur", "/tmp"):
            os.makedirs(md + d, exist_ok=True)
            os.chown(md + d, pw.pw_uid, pw.pw_gid)
            os.chmod(md + d, 0o700)


def count_new(users):
    return sum(len(os.listdir(os.path.join(maildir(u), "new"))) for u in users)


def count_tmp(users):
    return sum(len(os.listdir(os.path.join(maildir(u), "tmp"))) for u in users)


# -------------------------------------------------------------- postfix

# what every Postfix the benchmarks run has (bench/lmtp.py uses it too):
# loopback only, its own queue and log file, no aliases, no DNS lookups
POSTFIX_BASE = """\
compatibility_level = 3.6
queue_directory = {pf}/queue
data_directory = {pf}/data
myhostname = mx.test
mydomain = {domain}
myorigin = {domain}
mydestination = {domain}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
maillog_file = {pf}/maillog
biff = no
smtpd_peername_lookup = no
"""

# Postfix for bench/run.sh: Maildir delivery to system accounts, logging to
# a file (as smtpd -e does), otherwise defaults.
MAIN_CF = POSTFIX_BASE + """\
home_mailbox = Maildir/
message_size_limit = 52428800
mailbox_size_limit = 0
"""


def postfix_config(port, main_cf=None, work=WORK, **values):
    """a fresh config directory and queue for one Postfix instance below
    work, listening on port, main.cf from main_cf (default: MAIN_CF as it
    is now, which bench/milter.py extends) filled with values"""
    global POSTFIX_CONF
    main_cf = main_cf or MAIN_CF
    pf = os.path.join(work, "postfix")
    if os.path.exists(pf):
        shutil.rmtree(pf)
    POSTFIX_CONF = servers.postfix_instance(
        pf, main_cf.format(pf=pf, domain=DOMAIN, **values),
        "127.0.0.1:%d inet n - n - - smtpd\n" % port, os.path.join(pf, "conf"))
    return pf


def postfix_queue_files(pf):
    n = 0
    for d in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _, _, files in os.walk(os.path.join(pf, "queue", d)):
            n += len(files)
    return n


# --------------------------------------------------------------- servers

def smtpd_opts(spool):
    # the bench accounts are system accounts (uid < 1000): admit them
    low = min(pwd.getpwnam(u).pw_uid for u in USERS)
    return ["-e", "-o", "hostname=mx.test", "-o", "local_domains=" + DOMAIN,
            "-o", "min_uid=%d" % low,
            "-o", "maildir=Maildir", "-o", "postmaster=" + USERS[0],
            "-o", "spool_dir=" + spool, "-o", "queue_interval=0"]


class Server:
    """one server instance under bench/reaper.py"""

    def __init__(self, kind, conc, tag):
        self.kind, self.tag = kind, tag
        self.port = S.free_port()
        self.out = os.path.join(WORK, "runs", tag + ".json")
        self.logf = os.path.join(WORK, "runs", tag + ".log")
        self.pf = None
        reaper = [sys.executable, os.path.join(HERE, "reaper.py"), "--out", self.out]
        if kind == "smtpd-sup":
            spool = os.path.join(WORK, "spool-sup")
            workers = max(4, conc)
            cmd = reaper + ["--", SMTPD] + smtpd_opts(spool) + [
                "-o", "workers=%d" % workers, "-o", "max_sessions=%d" % max(100, 4 * conc),
                "-o", "max_per_addr=256", "-l", "127.0.0.1:%d" % self.port]
        elif kind == "smtpd-inetd":
            spool = os.path.join(WORK, "spool-inetd")
            cmd = reaper + ["--", SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % self.port,
                            "--accept", SMTPD] + smtpd_opts(spool)
        elif kind == "postfix":
            self.pf = postfix_config(self.port)
            conf = os.path.join(self.pf, "conf")
            cmd = reaper + ["--start", "postfix -c %s start" % conf,
                            "--stop", "postfix -c %s stop" % conf]
        else:
            raise ValueError(kind)
        with open(self.logf, "w") as lf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        LIVE[self.proc.pid] = self
        if not S.wait_listen(self.port, timeout=30):
            self.stop()
            raise RuntimeError("%s: nothing listens on port %d (see %s)" %
                               (kind, self.port, self.logf))

    def stop(self):
        """SIGTERM the reaper; its JSON report, or None"""
        stop_reaper(self.proc, self.tag)
        LIVE.pop(self.proc.pid, None)
        try:
            with open(self.out) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


def stop_reaper(proc, tag):
    """SIGTERM to a bench/reaper.py (it stops its server and writes its
    report); its process group killed if it has not finished in 90 s"""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        log("bench: reaper of %s did not finish; killing its group" % tag)
        S.kill_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class Reaped:
    """a process tree under reaper.py: argv, or a daemon started and stopped
    by shell commands; its output in WORK/TAG.log; stop() returns the
    tree's CPU seconds"""

    def __init__(self, work, tag, argv=None, start=None, stop=None):
        self.out, self.tag = os.path.join(work, tag + ".json"), tag
        cmd = [sys.executable, os.path.join(HERE, "reaper.py"), "--out", self.out]
        if start:
            cmd += ["--start", start, "--stop", stop]
        if argv:
            cmd += ["--"] + argv
        self.log = open(os.path.join(work, tag + ".log"), "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self):
        stop_reaper(self.proc, self.tag)
        self.log.close()
        with open(self.out) as f:
            return json.load(f)["cpu"]


def cleanup_live():
    for pid in list(CLIENTS):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        CLIENTS.discard(pid)
    for pid, srv in list(LIVE.items()):
        try:
            srv.stop()
        except Exception as e:	# keep stopping the others
            log("bench: cleanup of %s: %s" % (srv.tag, e))
    if POSTFIX_CONF:
        pidf = os.path.join(os.path.dirname(POSTFIX_CONF), "queue", "pid", "master.pid")
        try:
            with open(pidf) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            log("bench: a Postfix master (pid %d) is still running; aborting it" % pid)
            sh(["postfix", "-c", POSTFIX_CONF, "abort"], check=False, timeout=30)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass


# ------------------------------------------------------------ load tools

def spawn_wait(argv, outf, errf, limit):
    """run argv, bounded; (status, user+sys seconds, stdout text, stderr text)"""
    with open(outf, "w") as o, open(errf, "w") as e:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, o.fileno(), 1), (os.POSIX_SPAWN_DUP2, e.fileno(), 2)])
    CLIENTS.add(pid)
    end = time.monotonic() + limit
    while True:
        wpid, st, ru = os.wait4(pid, os.WNOHANG)
        if wpid:
            CLIENTS.discard(pid)
            break
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            wpid, st, ru = os.wait4(pid, 0)
            CLIENTS.discard(pid)
            st = -1
            break
        time.sleep(0.005)
    with open(outf) as o, open(errf) as e:
        return st, ru.ru_utime + ru.ru_stime, o.read(), e.read()


def smtp_source(port, case, count, tag):
    argv = [SMTP_SOURCE, "-s", str(case["conc"]), "-m", str(count), "-l", str(case["size"]),
            "-f", "bench@client.test", "-t", USERS[0] + "@" + DOMAIN]
    if case["rcpt"] > 1:
        argv[1:1] = ["-r", str(case["rcpt"])]
    argv.append("127.0.0.1:%d" % port)
    base = os.path.join(WORK, "runs", tag)
    return argv, base + ".out", base + ".err"


def deliver_run(srv, case, count, tag, expect_base, limit):
    """send `count` messages; wait until every copy is in new/"""
    users = USERS[:case["rcpt"]]
    argv, outf, errf = smtp_source(srv.port, case, count, tag)
    expected = expect_base + count * case["rcpt"]
    t0 = time.monotonic()
    st, ccpu, _, err = spawn_wait(argv, outf, errf, limit)
    t_client = time.monotonic()
    done = S.wait_until(lambda: count_new(users) >= expected, limit, 0.01)
    t_end = time.monotonic()
    problems = []
    if st != 0:
        problems.append("smtp-source status %s: %s" % (st, err.strip()[:200]))
    elif err.strip():
        problems.append("smtp-source: " + err.strip()[:200])
    if not done:
        problems.append("timeout: %d of %d files after %.0fs" %
                        (count_new(users) - expect_base, count * case["rcpt"], limit))
    if srv.pf:
        if not S.wait_until(lambda: postfix_queue_files(srv.pf) == 0, 30, 0.05):
            problems.append("postfix queue not empty")
    time.sleep(0.2)
    got = count_new(users)
    if got != expected:
        problems.append("%d files in new/, expected exactly %d" % (got, expected))
    if count_tmp(users):
        problems.append("%d files left in tmp/" % count_tmp(users))
    return {"secs": t_end - t0, "client_secs": t_client - t0, "client_cpu": ccpu,
            "count": count, "problems": problems, "got": got}


def conn_run(srv, conc, secs, tag):
    base = os.path.join(WORK, "runs", tag)
    argv = [os.path.join(WORK, "bin", "smtpload"), "-p", str(srv.port), "-c", str(conc),
            "-d", str(secs), "-m", "conn", "-w", "0"]
    st, ccpu, out, err = spawn_wait(argv, base + ".out", base + ".err", secs + 60)
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', out))
    return {"ops": int(kv.get("ops", 0)), "errors": int(kv.get("errors", 0)),
            "rate": float(kv.get("rate", 0)), "first_error": kv.get("first_error", ""),
            "status": st, "client_cpu": ccpu, "stderr": err.strip()[:200]}


CEIL_N = [0]


def ceiling(case):
    procs = case["conc"]
    size = case["size"]
    # Fresh directories each time, files kept until the end (see
    # clear_maildirs), each beside the Maildir it stands for: ext4 puts a new
    # directory near its parent's block group, so the ceiling's files and
    # the servers' come from the same inode groups.
    CEIL_N[0] += 1
    dirs = [os.path.join(WORK, "home", USERS[i], "ceiling-%d" % CEIL_N[0])
            for i in range(case["rcpt"])]
    out = sh([os.path.join(WORK, "bin", "ceiling"), "-k", "-p", str(procs), "-s", str(size),
              "-t", str(CEIL_SECS)] + dirs, capture_output=True, text=True,
             timeout=CEIL_SECS + 120).stdout
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', out))
    return {k: (float(v) if re.match(r"^[\d.]+$", v) else v) for k, v in kv.items()}


# ------------------------------------------------------------- analysis

def cpu_breakdown(kind, rep):
    """CPU seconds of the processes alive at the end, by role; the time of
    processes that had ended shows as "ended, reaped by <role>" """
    roles = {}
    for p in rep.get("procs", []):
        if kind == "smtpd-sup":
            role = {1: "supervisor", 2: "workers", 3: "deliverers"}.get(p["depth"], "other")
        elif kind == "postfix":
            role = p["comm"]
        else:
            role = "launcher" if p["depth"] == 1 else "sessions"
        roles[role] = roles.get(role, 0) + p.get("cpu_own", 0)
        if p.get("cpu_reaped", 0) > 0:
            k = "ended, reaped by " + role
            roles[k] = roles.get(k, 0) + p["cpu_reaped"]
    return roles


def rss_summary(kind, rep):
    """peak RSS (VmHWM, KiB) of the session processes, from the snapshot"""
    if not rep:
        return {}
    procs = rep.get("procs", [])
    if kind == "smtpd-sup":
        workers = [p for p in procs if p["depth"] == 2]
        delivs = [p for p in procs if p["depth"] == 3]
        sup = [p for p in procs if p["depth"] == 1]
        return {"session": max((p.get("VmHWM", 0) for p in workers), default=0),
                "session_anon": max((p.get("RssAnon", 0) for p in workers), default=0),
                "session_pss": max((p.get("Pss", 0) for p in workers), default=0),
                "deliverer": max((p.get("VmHWM", 0) for p in delivs), default=0),
                "deliverer_anon": max((p.get("RssAnon", 0) for p in delivs), default=0),
                "supervisor": max((p.get("VmHWM", 0) for p in sup), default=0),
                "nworkers": len(workers)}
    if kind == "postfix":
        out = {}
        for name in ("smtpd", "cleanup", "local", "qmgr", "master", "trivial-rewrite"):
            ps = [p for p in procs if p["comm"] == name]
            if ps:
                out[name] = max(p.get("VmHWM", 0) for p in ps)
                if name == "smtpd":
                    out["smtpd_anon"] = max(p.get("RssAnon", 0) for p in ps)
                    out["smtpd_pss"] = max(p.get("Pss", 0) for p in ps)
                out[name + "_n"] = len(ps)
        out["session"] = out.get("smtpd", 0)
        return out
    return {"tree_maxrss": rep.get("tree_maxrss_kb", 0)}


def run_case(case, idx, results):
    """every server for one case, in a rotating order; for message cases
    the measured run is CHUNKS pieces with a ceiling run before each and
    one after the last, so the ceiling is sampled across the same minutes
    as the server"""
    order = SERVERS[idx % len(SERVERS):] + SERVERS[:idx % len(SERVERS)]
    conn = case.get("conn")
    for kind in order:
        tag = "%s-%s" % (case["id"], kind)
        clear_maildirs()
        res = {"case": case["id"], "server": kind, "problems": []}
        srv = Server(kind, case["conc"], tag)
        try:
            if conn:
                pilot = conn_run(srv, case["conc"], 1, tag + "-pilot")
                main = conn_run(srv, case["conc"], SECS, tag)
                res.update(kind_of="conn", rate=main["rate"], ops=main["ops"],
                           pilot_ops=pilot["ops"], errors=main["errors"] + pilot["errors"],
                           first_error=main["first_error"], client_cpu=main["client_cpu"])
                if res["errors"]:
                    res["problems"].append("%d connection errors: %s" %
                                           (res["errors"], main["first_error"]))
            else:
                res.update(measure_messages(srv, case, tag))
        finally:
            rep = srv.stop()
        if rep is None:
            res["problems"].append("no CPU report from the reaper")
        else:
            units = (res["ops"] + res["pilot_ops"]) if conn else (res["count"] + res["pilot"])
            res["cpu_s"] = rep["cpu"]
            res["cpu_user_s"], res["cpu_sys_s"] = rep["cpu_user"], rep["cpu_sys"]
            res["cpu_ms_per"] = 1000 * rep["cpu"] / max(units, 1)
            res["rss"] = rss_summary(kind, rep)
            res["cpu_roles"] = cpu_breakdown(kind, rep)
            if rep.get("killed"):
                res["problems"].append("had to SIGKILL: " + " ".join(rep["killed"]))
        results.append(res)
        log("  %-12s %8.1f/s  x ceil %s  cpu %.2f ms  %s" % (
            kind, res.get("rate", 0),
            ("%.2f" % res["x_ceiling"]) if res.get("x_ceiling") else "-",
            res.get("cpu_ms_per", 0), "; ".join(res["problems"]) or "ok"))


CHUNKS = 3


def measure_messages(srv, case, tag):
    conc, big = case["conc"], case["size"] >= MB
    psize = 2 * conc if big else max(40, 5 * conc)
    p = deliver_run(srv, case, psize, tag + "-pilot", 0, 120)
    prate = psize / p["secs"] if p["secs"] > 0 else 100
    # a chunk of about SECS/CHUNKS seconds at the pilot's rate
    lo, cap = (2 * conc, 1000) if big else (max(40, 4 * conc), 20000)
    chunk = int(min(cap, max(lo, prate * SECS / CHUNKS)))
    chunk -= chunk % conc
    limit = max(60, 8 * chunk / max(prate, 1))
    problems = list(p["problems"])
    ceils, secs, csecs, ccpu, base = [], 0.0, 0.0, 0.0, p["got"]
    chunk_rates = []
    for i in range(CHUNKS):
        ceils.append(ceiling(case))
        m = deliver_run(srv, case, chunk, "%s-%d" % (tag, i), base, limit)
        base = m["got"]
        chunk_rates.append(chunk * case["rcpt"] / m["secs"])
        secs += m["secs"]
        csecs += m["client_secs"]
        ccpu += m["client_cpu"]
        problems += m["problems"]
    ceils.append(ceiling(case))
    n = chunk * CHUNKS
    rates = [c["rate"] for c in ceils]
    # each chunk against the mean of the two ceiling runs around it
    ratios = [chunk_rates[i] / ((rates[i] + rates[i + 1]) / 2) for i in range(CHUNKS)]
    return {"kind_of": "msg", "count": n, "pilot": psize, "secs": secs,
            "x_ceiling": sum(ratios) / CHUNKS, "chunk_ratios": ratios,
            "rate": n / secs, "client_secs": csecs, "client_cpu": ccpu,
            "ceiling": sum(rates) / len(rates), "ceiling_runs": ceils,
            "problems": problems}


# --------------------------------------------------------- pipe probes

def session_input(n, size, rcpts):
    """HELO, n pipelined messages of `size` payload octets, QUIT"""
    line = b"X" * 78 + b"\r\n"
    body = (b"From: <bench@client.test>\r\nTo: <%s@%s>\r\nSubject: probe\r\n\r\n"
            % (USERS[0].encode(), DOMAIN.encode()))
    body += line * (size // 80) + b"X" * max(0, size % 80 - 2) + b"\r\n"
    out = [b"HELO client.test\r\n"]
    for _ in range(n):
        out.append(b"MAIL FROM:<bench@client.test>\r\n")
        for u in USERS[:rcpts]:
            out.append(b"RCPT TO:<%s@%s>\r\n" % (u.encode(), DOMAIN.encode()))
        out.append(b"DATA\r\n" + body + b".\r\n")
    out.append(b"QUIT\r\n")
    return b"".join(out)


def pipe_session(n, size, rcpts, wrap=None, tag="probe", spool="spool-probe"):
    """one inetd-style session on pipes: HELO, n pipelined messages, then --
    with the session still open -- a look at /proc for the session's and
    its deliverer's peak RSS (VmHWM of their own address spaces: the
    rusage maxrss of an exec'd child also counts the image it replaced),
    then QUIT.  Returns (rusage of session + deliverer, accepted, status,
    {"session": status dict, "deliverer": status dict})."""
    d = os.path.join(WORK, "probe")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)	# the spool's parent: spooldir.c refuses one others can write
    data = session_input(n, size, rcpts)
    quit_ = b"QUIT\r\n"
    data = data[:-len(quit_)]
    argv = (wrap or []) + [SMTPD] + smtpd_opts(os.path.join(WORK, "probe", spool))
    argv[0] = shutil.which(argv[0]) or argv[0]
    rin, win = os.pipe()
    rout, wout = os.pipe()
    with open(os.path.join(d, tag + "-err"), "wb") as e:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, rin, 0), (os.POSIX_SPAWN_DUP2, wout, 1),
            (os.POSIX_SPAWN_DUP2, e.fileno(), 2),
            (os.POSIX_SPAWN_CLOSE, win), (os.POSIX_SPAWN_CLOSE, rout)])
    os.close(rin)
    os.close(wout)
    def feed():
        view = memoryview(data)
        try:
            while len(view):
                view = view[os.write(win, view[:65536]):]
        except OSError:
            pass	# the session ended early: the reply count says so
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    got, ok = b"", 0
    end = time.monotonic() + 300
    while (ok < n or b"\r\n250 " not in got) and time.monotonic() < end:
        chunk = os.read(rout, 65536)
        if not chunk:
            break
        got += chunk
        ok = got.count(b"250 2.0.0 Ok: queued") + got.count(b"250 Ok: queued")
    writer.join(timeout=60)
    mem = {}
    if not wrap:	# under strace or valgrind, /proc shows the tool
        target = pid
        for role in ("session", "deliverer"):
            st = S.proc_memory(target)
            if st:
                mem[role] = st
            kids = S.children(target)
            if not kids:
                break
            target = kids[0]
    os.write(win, quit_)
    os.close(win)
    while os.read(rout, 65536):
        pass
    os.close(rout)
    _, st, ru = os.wait4(pid, 0)
    return ru, ok, st, mem


def probes(res):
    clear_maildirs()
    out = {}
    if "probe" not in SKIP:
        for label, n, size in (("4k", 200, 4096), ("1m", 16, MB)):
            ru0, _, _, mem0 = pipe_session(0, size, 1, tag="p0")
            ru, ok, st, mem = pipe_session(n, size, 1, tag="p-" + label)
            if ok != n:
                log("probe %s: %d of %d accepted (status %s)" % (label, ok, n, st))
            cpu = (ru.ru_utime + ru.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
            usr = ru.ru_utime - ru0.ru_utime
            out["pipe_" + label] = {"n": n, "size": size, "accepted": ok, "mem": mem,
                                    "mem0": mem0, "cpu_ms_per_msg": 1000 * cpu / n,
                                    "user_ms_per_msg": 1000 * usr / n,
                                    "maxrss_kb": max((m.get("VmHWM", 0) for m in mem.values()),
                                                     default=0)}
            clear_maildirs()
    if "strace" not in SKIP and shutil.which("strace"):
        counts = {}
        for n in (0, 100):
            sf = os.path.join(WORK, "probe", "strace-%d.txt" % n)
            pipe_session(n, 4096, 1, wrap=["strace", "-f", "-c", "-w", "-o", sf],
                         tag="s%d" % n)
            counts[n] = parse_strace(sf)
        per = {}
        for name, (calls, secs) in counts[100].items():
            c0, s0 = counts[0].get(name, (0, 0))
            if calls - c0 > 0:
                per[name] = ((calls - c0) / 100, 1e6 * (secs - s0) / 100)
        out["strace_per_msg"] = per
        clear_maildirs()
    if "callgrind" not in SKIP and shutil.which("valgrind"):
        out["callgrind"] = callgrind()
        clear_maildirs()
    res["probes"] = out


def parse_strace(path):
    """strace -c table -> {syscall: (calls, seconds)}"""
    res = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and re.match(r"^[\d.]+$", p[0]) and p[-1] != "total":
                try:
                    calls = int(p[3])
                except ValueError:
                    continue
                res[p[-1]] = (calls, float(p[1]))
    return res


def callgrind():
    d = os.path.join(WORK, "probe", "cg")
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    os.chmod(d, 0o1777)	# the session writes its file as session_user
    # the unprivileged session's spool: its parent must be its own or root's, not 1777
    sp = os.path.join(WORK, "probe", "cgspool")
    os.makedirs(sp, exist_ok=True)
    pw = pwd.getpwnam(USERS[0])
    os.chown(sp, pw.pw_uid, pw.pw_gid)
    files = {}
    for n in (0, 100):
        pat = os.path.join(d, "cg-%d.%%p" % n)
        # as the mailbox owner, not root: a root session drops to
        # session_user and could not write the file callgrind made at start
        pipe_session(n, 4096, 1, tag="cg%d" % n, wrap=[
            "setpriv", "--reuid=" + USERS[0], "--regid=" + USERS[0], "--clear-groups",
            "valgrind", "--tool=callgrind", "--trace-children=no",
            "--callgrind-out-file=" + pat], spool="cgspool/spool")
        for f in os.listdir(d):
            if not f.startswith("cg-%d." % n):
                continue
            path = os.path.join(d, f)
            with open(path, errors="replace") as fh:
                text = fh.read()
            m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
            ir = int(m.group(1)) if m else 0
            # the deliverer is a fork of the session (no exec), so Valgrind
            # follows it whatever --trace-children says; its loop is serve()
            role = "deliverer" if re.search(r"^c?fn=\(\d+\) serve$", text, re.M) else "session"
            files[(n, role)] = (path, ir)
    out = {}
    for role in ("session", "deliverer"):
        if (0, role) in files and (100, role) in files:
            ir0, ir100 = files[(0, role)][1], files[(100, role)][1]
            ann = sh(["callgrind_annotate", "--threshold=95", files[(100, role)][0]],
                     capture_output=True, text=True, check=False).stdout
            out[role] = {"ir_per_msg": (ir100 - ir0) / 100, "ir0": ir0, "ir100": ir100,
                         "top": top_functions(ann, 12), "file": files[(100, role)][0]}
    return out


def top_functions(ann, n):
    rows = []
    for line in ann.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*)$", line)
        if m and ":" in m.group(2) and not m.group(2).startswith("PROGRAM"):
            rows.append((int(m.group(1).replace(",", "")), m.group(2).strip()))
        if len(rows) >= n:
            break
    return rows


# --------------------------------------------------------------- report

def fmt(v, spec):
    return (spec % v) if isinstance(v, (int, float)) else "-"


def bound_line(r, case, cores):
    """what the client's and the server's CPU allow, next to what was seen:
    at c=1 the client's CPU, smtpd's and the file system's time per message
    run in series (smtpd answers 250 after the Maildir fsyncs; Postfix
    delivers after its reply, so the model is not its); with more clients
    the client and the server share the cores"""
    if r.get("kind_of") != "msg" or not r.get("count") or not r.get("rate"):
        return None
    client = 1000.0 * (r.get("client_cpu") or 0) / r["count"]
    server = r.get("cpu_ms_per") or 0
    if case["conc"] == 1 and r.get("ceiling") and r["server"] != "postfix":
        fs = case["rcpt"] * 1000.0 / r["ceiling"]
        return ("in series at c=1: file system %.2f ms/msg (1/ceiling per copy), client "
                "CPU %.2f, server CPU %.2f: x ceil <= %.2f by this model (seen %s); a "
                "server taking no CPU: <= %.2f" % (
                    fs, client, server, fs / (fs + client + server),
                    fmt(r.get("x_ceiling"), "%.2f"), fs / (fs + client)))
    if case["conc"] == 1 or client + server <= 0:
        return None
    top = 1000.0 * cores / (client + server)
    return ("CPU bound: server %.2f + client %.2f ms/msg on %d cores: <= %.0f msgs/s "
            "(seen %.0f, %.0f%%); a server taking no CPU: <= %.0f/s" % (
                server, client, cores, top, r["rate"], 100 * r["rate"] / top,
                1000.0 * cores / client if client else float("inf")))


def report(results, probes_res, facts):
    lines = []
    P = lines.append
    P("smtpd benchmark  %s  (smtpd %s, Postfix %s)" % (facts["date"], facts["smtpd_rev"],
                                                     facts["postfix"]))
    P("machine: %s cores (%s), %s GiB, kernel %s, %s on %s (%s)" % (
        facts["cores"], facts["cpu"], facts["mem_gib"], facts["kernel"], facts["fs"],
        facts["mount"], facts["mount_opts"]))
    P("load: at start %s; at end %s" % (facts["loadavg_at_start"],
                                        facts.get("loadavg_at_end", "?")))
    P("")
    hdr = "%-22s %-12s %7s %9s %9s %7s %8s %7s %7s %8s  %s" % (
        "case", "server", "msgs", "deliv/s", "ceiling/s", "x ceil", "x postfix",
        "CPU ms", "fs ms", "RSS KiB", "check")
    P(hdr)
    P("-" * len(hdr))
    by = {(r["case"], r["server"]): r for r in results}
    probe = probes_res or {}
    for case in CASES:
        for kind in SERVERS:
            r = by.get((case["id"], kind))
            if not r:
                continue
            pf = by.get((case["id"], "postfix"))
            xpf = r.get("rate", 0) / pf["rate"] if pf and pf.get("rate") else None
            if kind == "postfix":
                xpf = None
            xc = r.get("x_ceiling")
            rss = r.get("rss", {}).get("session")
            if kind == "smtpd-inetd":
                pk = "pipe_1m" if case.get("size", 0) >= MB else "pipe_4k"
                rss = probe.get(pk, {}).get("maxrss_kb")
            n = r.get("ops") if r.get("kind_of") == "conn" else r.get("count")
            floor = None
            if r.get("ceiling_runs"):
                floor = case["rcpt"] * sum(c.get("cpu_ms", 0) for c in r["ceiling_runs"]) \
                    / len(r["ceiling_runs"])
            P("%-22s %-12s %7s %9s %9s %7s %8s %7s %7s %8s  %s" % (
                case["label"], kind, fmt(n, "%d"), fmt(r.get("rate"), "%.1f"),
                fmt(r.get("ceiling"), "%.0f"), fmt(xc, "%.2f"), fmt(xpf, "%.2f"),
                fmt(r.get("cpu_ms_per"), "%.2f"), fmt(floor, "%.2f"), fmt(rss, "%d"),
                "; ".join(r.get("problems", [])) or "ok"))
    P("")
    P("deliv/s: messages per second fully delivered (every copy in new/), from the")
    P("  start of smtp-source to the last file; conn rows: connect+220+EHLO+QUIT per s.")
    P("x ceil: delivered copies/s over the ceiling's files/s (bench/ceiling.c, same")
    P("  procs, same file system): the server's run is %d chunks, each preceded and" % CHUNKS)
    P("  followed by a ceiling run; mean over the chunks of chunk rate / mean of the")
    P("  two ceiling runs around it.  ceiling/s: mean of the %d ceiling runs." % (CHUNKS + 1))
    P("CPU ms: user+sys of the server's whole process tree per message (or per")
    P("  connection), pilot included; fs ms: the ceiling processes' own CPU for the")
    P("  same number of files (the file system's share, a floor); RSS: peak")
    P("  (VmHWM) of one session process --")
    P("  smtpd-sup: a worker; smtpd-inetd: the same session over a pipe (pipe probe")
    P("  below; max of session and deliverer); postfix: its smtpd(8) processes.")
    P("")
    # details
    P("details:")
    for r in results:
        rs = r.get("rss", {})
        extra = ""
        if r["server"] == "smtpd-sup" and rs:
            extra = "worker peak %s KiB (now: anon %s, Pss %s), deliverer %s KiB (anon %s), " \
                "supervisor %s KiB, %s workers" % (rs.get("session"), rs.get("session_anon"),
                                                    rs.get("session_pss"),
                                                    rs.get("deliverer"), rs.get("deliverer_anon"),
                                                    rs.get("supervisor"), rs.get("nworkers"))
        elif r["server"] == "postfix" and rs:
            extra = "peak " + ", ".join("%s %s KiB" % (k, v) for k, v in rs.items()
                                        if not k.endswith("_n") and k != "session")
        cc = r.get("client_cpu")
        span = r.get("secs")
        P("  %-9s %-12s %s%s client CPU %.2fs%s" % (
            r["case"], r["server"],
            ("%d msgs in %.2fs (client done %.2fs), " % (r["count"], span, r["client_secs"]))
            if r.get("kind_of") == "msg" else
            ("%d conns in %.1fs, " % (r["ops"], SECS)),
            "server CPU %.2fs (user %.2f, sys %.2f); " % (
                r.get("cpu_s", 0), r.get("cpu_user_s", 0), r.get("cpu_sys_s", 0)), cc or 0,
            ("; " + extra) if extra else ""))
        case = next((c for c in CASES if c["id"] == r["case"]), None)
        bl = bound_line(r, case, facts["cores"] or 1) if case else None
        if bl:
            P("            " + bl)
        if r.get("cpu_roles"):
            P("            CPU of processes alive at the end: " + ", ".join(
                "%s %.2fs" % kv for kv in sorted(r["cpu_roles"].items(), key=lambda kv: -kv[1])
                if kv[1] >= 0.005))
        if r.get("ceiling_runs"):
            cr = r["ceiling_runs"]
            k = len(cr)

            def mean(key):
                return sum(c[key] for c in cr) / k
            P("            x ceiling per chunk %s" % " ".join("%.2f" % x for x in r["chunk_ratios"]))
            P("            ceiling runs %s files/s; mean per file: open %.0f us, write %.0f, "
              "fsync %.0f, rename %.0f, fsync(new/) %.0f; CPU %.2f ms/file" % (
                  "/".join("%.0f" % c["rate"] for c in cr), mean("open_us"), mean("write_us"),
                  mean("fsync_us"), mean("rename_us"), mean("dirsync_us"), mean("cpu_ms")))
    if probe:
        P("")
        P("pipe probes (one inetd-style session on fd 0/1, no network):")
        for k in ("pipe_4k", "pipe_1m"):
            p = probe.get(k)
            if p:
                s_, d_ = p["mem"].get("session", {}), p["mem"].get("deliverer", {})
                P("  %d x %d octets: %d accepted, CPU %.3f ms/msg (user %.3f; session + "
                  "deliverer, empty session subtracted)" % (
                      p["n"], p["size"], p["accepted"], p["cpu_ms_per_msg"],
                      p["user_ms_per_msg"]))
                P("    peak RSS: session %s KiB (at the end, session open: anon %s, file %s, "
                  "Pss %s), deliverer %s KiB (anon %s, Pss %s); empty session %s KiB" % (
                      s_.get("VmHWM"), s_.get("RssAnon"), s_.get("RssFile"), s_.get("Pss"),
                      d_.get("VmHWM"), d_.get("RssAnon"), d_.get("Pss"),
                      p["mem0"].get("session", {}).get("VmHWM")))
        st = probe.get("strace_per_msg")
        if st:
            P("  system calls per 4 KB message (strace -f -c -w, session + deliverer; "
              "times are inflated by strace):")
            items = sorted(st.items(), key=lambda kv: -kv[1][0])
            P("    " + ", ".join("%s %.2f" % (k, v[0]) for k, v in items))
            tot = sum(v[0] for v in st.values())
            P("    total %.1f calls/msg; wall time in: " % tot + ", ".join(
                "%s %.0f us" % (k, v[1]) for k, v in sorted(st.items(), key=lambda kv: -kv[1][1])[:6]))
        cg = probe.get("callgrind")
        if cg:
            P("  callgrind, 100 pipelined 4 KB messages minus an empty session:")
            for role in ("session", "deliverer"):
                c = cg.get(role)
                if not c:
                    continue
                P("    %s: %.0f Ir per message (Ir total %d, empty session %d); top (exclusive Ir, "
                  "whole run):" % (role, c["ir_per_msg"], c["ir100"], c["ir0"]))
                for ir, fn in c["top"]:
                    P("      %12d  %s" % (ir, fn))
    P("")
    P("targets:")
    for line in targets(by, probe):
        P("  " + line)
    return "\n".join(lines)


def targets(by, probe):
    out = []

    def chk(name, ok, what):
        out.append("%-4s %s: %s" % ("MET" if ok else "MISS", name, what))

    for mode in ("smtpd-sup", "smtpd-inetd"):
        for cid, goal, label in (("4k-c1", 0.85, "4KB x1 c=1 >= 85% of 1-process ceiling"),
                                 ("4k-c8", 0.80, "4KB x1 c=8 >= 80% of 8-process ceiling"),
                                 ("4k-r4-c8", 0.70, "4KB x4 c=8 >= 70% of ceiling per copy")):
            r = by.get((cid, mode))
            if r and r.get("x_ceiling"):
                x = r["x_ceiling"]
                chk("%s %s" % (mode, label), x >= goal, "%.0f%%" % (100 * x))
        r = by.get(("1m-c4", mode))
        if r and "cpu_ms_per" in r:
            mb = r["cpu_ms_per"]	# 1 MB payload per message
            chk("%s 1MB CPU per MB < 5 ms" % mode, mb < 5, "%.2f ms" % mb)
    buffers = 64 + 8 + 64	# IN_BUF + OUT_BUF + SPOOL_BUF, KiB
    r = by.get(("4k-c8", "smtpd-sup"))
    if r and r.get("rss"):
        v = r["rss"]["session"]
        chk("supervisor session (worker) peak RSS < 1 MiB + %d KiB buffers" % buffers,
            v < 1024 + buffers, "VmHWM %d KiB, of which ~%d KiB shared file pages "
            "(libc, ld.so, smtpd text)" % (v, v - r["rss"].get("session_anon", 0)))
        a = r["rss"].get("session_anon", 0)
        chk("  same, private memory only (RssAnon at the end; Pss %d KiB)" %
            r["rss"].get("session_pss", 0), a < 1024 + buffers, "%d KiB" % a)
    p = probe.get("pipe_1m")
    if p:
        s_ = p["mem"].get("session", {})
        chk("inetd session (%d x 1 MB msgs) peak RSS < 1 MiB + buffers" % p["n"],
            p["maxrss_kb"] < 1024 + buffers, "VmHWM %d KiB (session open at the end: anon "
            "%s KiB, Pss %s KiB)" % (p["maxrss_kb"], s_.get("RssAnon"), s_.get("Pss")))
    s, pf = by.get(("conn-c8", "smtpd-sup")), by.get(("conn-c8", "postfix"))
    if s and pf and pf.get("rate"):
        x = s["rate"] / pf["rate"]
        chk("connections/s through the supervisor >= 1.5 x Postfix", x >= 1.5, "%.2fx" % x)
    return out


# ----------------------------------------------------------------- main

def main():
    if os.geteuid() != 0:
        sys.exit("bench: run as root (system users, Postfix, smtpd's deliverer)")
    for tool in (SMTPD, SMTP_SOURCE, SOCKET_ACTIVATE):
        if not os.access(tool, os.X_OK):
            sys.exit("bench: %s missing (bench/install-deps.sh, make)" % tool)
    global CASES, SERVERS
    if os.environ.get("BENCH_CASES"):
        want = os.environ["BENCH_CASES"].split(",")
        CASES = [c for c in CASES if c["id"] in want]
    if os.environ.get("BENCH_SERVERS"):
        want = os.environ["BENCH_SERVERS"].split(",")
        SERVERS = [s for s in SERVERS if s in want]

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    # ext4 without a journal (this machine) does not reuse an inode deleted
    # in the last 60 s (more while its table block is dirty): every create
    # then scans past them.  So nothing is deleted during a run, and a run
    # starts at least QUIET_AFTER_DELETE s after the last mass deletion.
    if os.path.exists(WORK):
        n = sum(len(f) for _, _, f in os.walk(WORK))
        shutil.rmtree(WORK)
        if n > 2000:
            with open(STAMP, "w") as f:
                f.write("%d\n" % n)
    try:
        wait = QUIET_AFTER_DELETE - (time.time() - os.stat(STAMP).st_mtime)
        if wait > 0:
            log("bench: waiting %.0f s: files were deleted on this file system lately, and "
                "ext4 without a journal makes creates skip recently deleted inodes" % wait)
            time.sleep(wait)
    except OSError:
        pass
    os.makedirs(os.path.join(WORK, "runs"))
    os.chmod(WORK, 0o755)
    facts = machine_facts()
    log("bench: work dir %s (%s), %s cores, kernel %s, load %s" % (
        WORK, facts["fs"], facts["cores"], facts["kernel"], facts["loadavg_at_start"]))
    build_tools()
    setup_users()
    results, pres = [], {}
    t0 = time.monotonic()
    try:
        for i, case in enumerate(CASES):
            log("case %s" % case["label"])
            run_case(case, i, results)
        if "smtpd-sup" in SERVERS or "smtpd-inetd" in SERVERS:
            log("probes (pipe session, strace, callgrind)")
            probes(pres)
    finally:
        cleanup_live()
        if not os.environ.get("BENCH_KEEP"):	# the bulk: every file delivered
            try:
                clear_maildirs()
            except OSError:
                pass
            for d in ["spool-sup", "spool-inetd", "probe/spool-probe", "probe/cgspool",
                      "trash"] + ["home/%s/ceiling-%d" % (USERS[i], n) for i in range(4)
                                  for n in range(CEIL_N[0] + 1)]:
                shutil.rmtree(os.path.join(WORK, d), ignore_errors=True)
            with open(STAMP, "w") as f:	# the next run waits for this one's deletions
                f.write("cleanup\n")
    with open("/proc/loadavg") as f:
        facts["loadavg_at_end"] = " ".join(f.read().split()[:3]) + psi()
    facts["bench_secs"] = round(time.monotonic() - t0)
    text = report(results, pres.get("probes"), facts)
    print(text)
    print("\n(%d s; raw results in %s/results.json, logs in %s/runs)" % (
        facts["bench_secs"], WORK, WORK))
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump({"facts": facts, "results": results, "probes": pres.get("probes")},
                  f, indent=1, default=str)
    with open(os.path.join(WORK, "report.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        cleanup_live()
        sys.exit("bench: interrupted (%s); everything started was stopped" % e)
