#!/usr/bin/env python3
"""lmtp.py - smtpd (delivery = lmtp) against Postfix (local_transport =
lmtp) delivering to the same private Dovecot over LMTP (issue 15).

    sudo python3 bench/lmtp.py            (about 2 minutes; make first)

4 KB messages, one recipient, Postfix's smtp-source at concurrency 8.
For each round and each server (order alternates): a fresh Dovecot
(IMAP off, LMTP on a unix socket, Maildir in one system user's home) and
the server, each under bench/reaper.py (CPU of the whole process tree);
a warm-up of WARM messages, then COUNT messages timed from the first
connection until the last file is in the Maildir's new/ (Postfix answers
250 before it delivers, so the wait counts).  Exactly WARM + COUNT files
must be there.  Prints messages/s, server CPU ms/message and Dovecot CPU
ms/message for each run, and the medians.
Environment: BENCH_DIR (/var/tmp/smtpd-lmtp-bench), BENCH_COUNT (2000),
BENCH_ROUNDS (3).  Loopback only; everything started is stopped.
"""
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SMTPD = os.path.join(ROOT, "smtpd")
WORK = os.environ.get("BENCH_DIR", "/var/tmp/smtpd-lmtp-bench")
COUNT = int(os.environ.get("BENCH_COUNT", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARM = 100
CONC = 8
SIZE = 4096
USER = "lmtpbench"
DOMAIN = "example.test"
sys.path.insert(0, HERE)
from bench import POSTFIX_BASE, Reaped, S, postfix_config, servers  # noqa: E402

# LMTP only, on a unix socket; every delivery fsynced
DOVECOT_BODY = """\
auth_username_format = %Ln
mail_location = maildir:~/Maildir
mail_fsync = always
service lmtp {
""" + servers.LMTP_SOCKET + """\
  process_min_avail = 8
}
"""

POSTFIX_MAIN = POSTFIX_BASE + """\
local_transport = lmtp:unix:{sock}
local_recipient_maps =
lmtp_destination_recipient_limit = 1000
"""



def user_setup():
    home = os.path.join(WORK, "home", USER)
    if subprocess.run(["getent", "passwd", USER], capture_output=True).returncode:
        os.makedirs(os.path.dirname(home), exist_ok=True)
        subprocess.run(["useradd", "-M", "-d", home, "-s", "/usr/sbin/nologin", USER],
                       check=True)
    pw = pwd.getpwnam(USER)
    return pw


def fresh_maildir(pw):
    if os.path.exists(pw.pw_dir):
        shutil.rmtree(pw.pw_dir)
    for sub in ("", "/Maildir", "/Maildir/new", "/Maildir/cur", "/Maildir/tmp"):
        os.makedirs(pw.pw_dir + sub)
        os.chown(pw.pw_dir + sub, pw.pw_uid, pw.pw_gid)
        os.chmod(pw.pw_dir + sub, 0o700)


def count_new(pw):
    try:
        return len(os.listdir(os.path.join(pw.pw_dir, "Maildir", "new")))
    except OSError:
        return 0


def dovecot(pw, tag):
    d = os.path.join(WORK, "dovecot")
    if os.path.exists(d):
        shutil.rmtree(d)
    passwd = "%s:{PLAIN}x:%d:%d::%s::\n" % (USER, pw.pw_uid, pw.pw_gid, pw.pw_dir)
    conf = servers.dovecot_conf(d, "smtpd-lmtp-bench", "lmtp", os.path.join(d, "passwd"),
                                DOVECOT_BODY, first_valid_uid=1000, user_format="%Ln")
    dv = servers.Dovecot(d, conf, {"passwd": passwd})
    sock = os.path.join(d, "run", "lmtp")
    r = Reaped(WORK, "dovecot-" + tag, dv.argv())
    if not S.wait_until(lambda: servers.unix_connectable(sock), 30):
        r.stop()
        raise RuntimeError("dovecot did not start (%s)" % d)
    return r, sock


def server(kind, sock, tag):
    port = S.free_port()
    if kind == "smtpd":
        spool = os.path.join(WORK, "spool")
        argv = [SMTPD, "-e", "-o", "hostname=mx.test", "-o", "local_domains=" + DOMAIN,
                "-o", "spool_dir=" + spool, "-o", "queue_interval=0",
                "-o", "postmaster=" + USER, "-o", "delivery=lmtp:unix:" + sock,
                "-o", "workers=%d" % CONC, "-o", "max_per_addr=256",
                "-l", "127.0.0.1:%d" % port]
        r = Reaped(WORK, kind + "-" + tag, argv)
    else:
        pf = postfix_config(port, POSTFIX_MAIN, WORK, sock=sock)
        conf = os.path.join(pf, "conf")
        r = Reaped(WORK, kind + "-" + tag, start="postfix -c %s start" % conf,
                   stop="postfix -c %s stop" % conf)
    if not S.wait_listen(port, timeout=30):
        r.stop()
        raise RuntimeError("%s did not listen" % kind)
    return r, port


def load(port, count):
    argv = ["smtp-source", "-s", str(CONC), "-m", str(count), "-l", str(SIZE),
            "-f", "bench@client.test", "-t", "%s@%s" % (USER, DOMAIN),
            "127.0.0.1:%d" % port]
    subprocess.run(argv, check=True, timeout=600, stdout=subprocess.DEVNULL)


def one_run(kind, pw, tag):
    fresh_maildir(pw)
    dv, sock = dovecot(pw, tag)
    srv = None
    try:
        srv, port = server(kind, sock, tag)
        load(port, WARM)
        if not S.wait_until(lambda: count_new(pw) >= WARM, 120):
            raise RuntimeError("%s: warm-up not delivered" % kind)
        t0 = time.monotonic()
        load(port, COUNT)
        ok = S.wait_until(lambda: count_new(pw) >= WARM + COUNT, 600, 0.005)
        secs = time.monotonic() - t0
        time.sleep(0.5)
        got = count_new(pw)
        if not ok or got != WARM + COUNT:
            raise RuntimeError("%s: %d files, expected exactly %d" % (kind, got, WARM + COUNT))
    finally:
        scpu = srv.stop() if srv else 0.0
        dcpu = dv.stop()
    n = WARM + COUNT
    return {"kind": kind, "rate": COUNT / secs, "cpu_ms": 1000 * scpu / n,
            "dovecot_ms": 1000 * dcpu / n}


def main():
    if os.geteuid() != 0:
        sys.exit("lmtp.py: needs root (a system user, Dovecot, Postfix)")
    os.makedirs(WORK, exist_ok=True)
    os.chmod(WORK, 0o755)
    pw = user_setup()
    runs = []
    for rnd in range(ROUNDS):
        order = ("smtpd", "postfix") if rnd % 2 == 0 else ("postfix", "smtpd")
        for kind in order:
            r = one_run(kind, pw, "%s-%d" % (kind, rnd))
            runs.append(r)
            print("%-8s round %d: %7.1f msg/s  server %.2f ms CPU/msg  dovecot %.2f ms CPU/msg"
                  % (kind, rnd, r["rate"], r["cpu_ms"], r["dovecot_ms"]), flush=True)
    print("\nmedians over %d rounds, %d x 4 KB messages at concurrency %d, LMTP to Dovecot:"
          % (ROUNDS, COUNT, CONC))
    for kind in ("smtpd", "postfix"):
        rs = [r for r in runs if r["kind"] == kind]
        print("%-8s %7.1f msg/s  server %.2f ms CPU/msg  dovecot %.2f ms CPU/msg" % (
            kind, statistics.median(r["rate"] for r in rs),
            statistics.median(r["cpu_ms"] for r in rs),
            statistics.median(r["dovecot_ms"] for r in rs)))


if __name__ == "__main__":
    main()
