#!/usr/bin/env python3
"""tls-bench.py - STARTTLS benchmark: smtpd's supervisor (engine per
STARTTLS) against Postfix's smtpd (smtpd_tls_security_level = may), same
certificate, same machine, same run.  Not a test.

    sudo python3 bench/tls-bench.py [SECONDS]      (default 15 per case)

Needs: make (smtpd, smtpd-tls), postfix, openssl, gcc + libtls-dev (for
bench/tlsload.c).  Loopback only; everything it starts it stops.

Cases, each at concurrency 8 (bench/tlsload.c, one process per client):
  hs     STARTTLS handshake + EHLO + QUIT per session: handshakes/s
  msg    STARTTLS + one 4 KB message per session: messages/s (every
         message is counted in the Maildir before the case ends)
  plain  EHLO + QUIT without STARTTLS, smtpd with and without tls_cert:
         what TLS costs sessions that never use it
TLS_BENCH_CASES=sup-hs,pf-hs,... runs only those (ids: sup-hs pf-hs sup-msg
pf-msg wrapper plain-tls plain; default all).
And "hs" once more with smtpd behind the smtpd-tls wrapper under
systemd-socket-activate --accept --inetd (an exec of the engine and of
smtpd per connection, as inetd, xinetd and tcpserver do).
CPU per session: user+system time of the server's whole process tree
(live processes and the children they reaped, from /proc) over the case,
divided by the sessions.  Engine RSS: the largest VmHWM of any smtpd-tls
process seen (sampled every 20 ms); for Postfix, of its smtpd processes.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import servers  # noqa: E402  Postfix's instance directory
import smtptest as S  # noqa: E402  free ports, bounded waits, process groups
SMTPD = os.path.join(ROOT, "smtpd")
ENGINE = os.path.join(ROOT, "smtpd-tls")
SECS = float(sys.argv[1]) if len(sys.argv) > 1 else 15
CONC = int(os.environ.get("TLS_BENCH_CONC", "8"))
TICK = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="smtpd-tls-bench-", dir="/var/tmp")
os.chmod(WORK, 0o755)


def run(*a, **kw):
    return subprocess.run(list(a), check=True, capture_output=True, timeout=120, **kw)


def wait_port(port):
    if not S.wait_listen(port, timeout=20):
        raise SystemExit("nothing listens on %d" % port)


# ---------------------------------------------------------------- /proc

def stat(pid):
    """(ppid, utime + stime + cutime + cstime) of pid, or None if gone"""
    st = S.proc_fields(pid)
    return st and (int(st[1][1]), sum(int(x) for x in st[1][11:15]))


def tree(root):
    kids = {}
    for pid in S.all_pids():
        st = stat(pid)
        if st:
            kids.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def cpu(root):
    """{pid: ticks} of root's tree: own time plus what each reaped"""
    return {p: (stat(p) or (0, 0))[1] for p in tree(root)}


def cpu_delta(before, after):
    return sum(t - before.get(p, 0) for p, t in after.items()) / TICK


class RSS(threading.Thread):
    """largest VmHWM (KB) of processes whose argv[0] ends with name"""

    def __init__(self, match):
        super().__init__(daemon=True)
        self.match, self.peak, self.stop = match, 0, False

    def run(self):
        while not self.stop:
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    cl = open("/proc/%s/cmdline" % d, "rb").read().split(b"\0")
                    if not self.match(cl):
                        continue
                    m = re.search(r"VmHWM:\s+(\d+)", open("/proc/%s/status" % d).read())
                except OSError:
                    continue
                if m:
                    self.peak = max(self.peak, int(m.group(1)))
            time.sleep(0.02)


# ---------------------------------------------------------------- setup

def pki():
    d = os.path.join(WORK, "pki")
    os.mkdir(d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", d + "/ca.key", "-out", d + "/ca.crt",
        "-days", "2", "-subj", "/CN=bench CA")
    run("openssl", "req", *ec, "-keyout", d + "/key.pem", "-out", d + "/req.csr",
        "-subj", "/CN=mx.test")
    with open(d + "/ext", "w") as f:
        f.write("subjectAltName=DNS:mx.test\n")
    run("openssl", "x509", "-req", "-in", d + "/req.csr", "-CA", d + "/ca.crt",
        "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile", d + "/ext",
        "-out", d + "/cert.pem")
    os.chmod(d + "/key.pem", 0o600)
    return d + "/ca.crt", d + "/cert.pem", d + "/key.pem"


def maildir_count(md):
    try:
        return len(os.listdir(os.path.join(md, "new")))
    except OSError:
        return 0


def smtpd_server(cert, key, tls=True, wrapper=False):
    d = tempfile.mkdtemp(dir=WORK, prefix="smtpd-")
    os.chmod(d, 0o755)
    md = os.path.join(d, "alice", "Maildir")
    os.makedirs(os.path.dirname(md))
    os.chown(os.path.dirname(md), 65534, 65534)
    with open(d + "/users", "w") as f:
        f.write("alice:65534:65534:%s\n" % md)
    os.chmod(d + "/users", 0o644)
    port = S.free_port()
    argv = [SMTPD, "-o", "hostname=mx.test", "-o", "local_domains=example.test",
            "-o", "virtual_users=%s/users" % d, "-o", "spool_dir=%s/spool" % d,
            "-o", "postmaster=alice", "-o", "queue_interval=0", "-o", "workers=8",
            "-o", "max_per_addr=1000",
            "-o", "log=stderr", "-l", "127.0.0.1:%d" % port]
    if wrapper:     # per connection: socket-activate, smtpd-tls -- smtpd
        argv = ["/usr/bin/systemd-socket-activate", "-a", "--inetd", "-l",
                "127.0.0.1:%d" % port, ENGINE, "-e", "-c", cert, "-k", key,
                "--"] + [a for a in argv if not a.startswith("127.0.0.1:") and a != "-l"]
    elif tls:
        argv += ["-o", "tls_cert=" + cert, "-o", "tls_key=" + key,
                 "-o", "tls_engine=" + ENGINE]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                         stderr=open(d + "/log", "w"), start_new_session=True)
    wait_port(port)
    time.sleep(0.5)
    return p, port, md


POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
myhostname = mx.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
virtual_mailbox_domains = example.test
virtual_mailbox_base = {d}/vmail
virtual_mailbox_maps = static:alice/Maildir/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_destination_concurrency_limit = 8
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 0
smtpd_tls_received_header = yes
default_process_limit = 100
smtpd_client_connection_rate_limit = 0
smtpd_client_connection_count_limit = 0
anvil_rate_time_unit = 60s
local_recipient_maps =
alias_maps =
maillog_file = {d}/postfix.log
maillog_file_prefixes = /var
"""

def postfix_server(cert, key):
    d = tempfile.mkdtemp(dir=WORK, prefix="postfix-")
    os.makedirs(d + "/vmail/alice")
    os.chown(d + "/vmail/alice", 65534, 65534)
    port = S.free_port()
    servers.postfix_instance(d, POSTFIX_MAIN.format(d=d, cert=cert, key=key),
                             "127.0.0.1:%d inet n - n - - smtpd\n" % port)
    run("postfix", "-c", d, "check")
    p = subprocess.Popen(["/usr/lib/postfix/sbin/master", "-c", d, "-d"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    wait_port(port)
    time.sleep(1)
    return p, port, d + "/vmail/alice/Maildir"


def stop(p):
    S.terminate(p, timeout=30, group=True)      # Postfix's children too


def load(port, mode, ca):
    out = subprocess.run(["/tmp/tlsload-bench", "127.0.0.1", str(port), str(CONC),
                          str(SECS), mode, ca], capture_output=True, text=True,
                         timeout=SECS + 120).stdout
    m = re.search(r"sessions (\d+) failures (\d+) seconds ([\d.]+)", out)
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


def case(name, start, mode, ca, rss_match):
    p, port, md = start()
    before_files = maildir_count(md)
    rss = RSS(rss_match)
    rss.start()
    before = cpu(p.pid)
    n, bad, secs = load(port, mode, ca)
    if mode == "msg":       # every message is in the Maildir before we stop
        end = time.time() + 120
        while time.time() < end and maildir_count(md) - before_files < n:
            time.sleep(0.1)
    after = cpu(p.pid)
    rss.stop = True
    rss.join()
    got = maildir_count(md) - before_files
    stop(p)
    c = cpu_delta(before, after)
    row = {"name": name, "mode": mode, "sessions": n, "failures": bad,
           "rate": n / secs, "cpu_ms": 1000 * c / max(n, 1), "rss_kb": rss.peak,
           "delivered": got if mode == "msg" else None}
    print("%-22s %-5s %7.1f/s  sessions %6d  failures %3d  cpu/session %6.2f ms  "
          "peak RSS %6d KB%s" % (name, mode, row["rate"], n, bad, row["cpu_ms"], rss.peak,
                                 "  delivered %d" % got if mode == "msg" else ""),
          flush=True)
    return row


def pressure():
    """PSI avg60 of cpu and io: how busy the shared machine was"""
    out = []
    for r in ("cpu", "io"):
        try:
            m = re.search(r"avg60=([\d.]+)", open("/proc/pressure/" + r).read())
            out.append("%s %s%%" % (r, m.group(1)))
        except (OSError, AttributeError):
            pass
    return ", ".join(out) or "n/a"


def main():
    if os.geteuid() != 0:
        raise SystemExit("tls-bench.py: run as root (deliveries as uid 65534, Postfix)")
    run("make", "-C", ROOT, "smtpd", "smtpd-tls")
    run("cc", "-O2", "-o", "/tmp/tlsload-bench", os.path.join(ROOT, "bench", "tlsload.c"),
        "-ltls")
    ca, cert, key = pki()
    is_engine = lambda cl: cl[0].endswith(b"smtpd-tls")                 # noqa: E731
    is_pf_smtpd = lambda cl: cl[0] == b"smtpd" and b"inet" in cl       # noqa: E731
    print("STARTTLS benchmark: concurrency %d, %g s per case, ECDSA P-256 certificate, "
          "%d CPUs" % (CONC, SECS, os.cpu_count()), flush=True)
    cases = [
        ("sup-hs", "smtpd supervisor", lambda: smtpd_server(cert, key), "hs", is_engine),
        ("pf-hs", "postfix smtpd", lambda: postfix_server(cert, key), "hs", is_pf_smtpd),
        ("sup-msg", "smtpd supervisor", lambda: smtpd_server(cert, key), "msg", is_engine),
        ("pf-msg", "postfix smtpd", lambda: postfix_server(cert, key), "msg", is_pf_smtpd),
        ("wrapper", "smtpd-tls wrapper", lambda: smtpd_server(cert, key, wrapper=True),
         "hs", is_engine),
        ("plain-tls", "smtpd, tls_cert set", lambda: smtpd_server(cert, key), "plain",
         is_engine),
        ("plain", "smtpd, no tls_cert", lambda: smtpd_server(cert, key, tls=False), "plain",
         is_engine)]
    want = os.environ.get("TLS_BENCH_CASES", "").split(",")
    rows = []
    load0 = pressure()
    for cid, name, start, mode, match in cases:
        if want == [""] or cid in want:
            rows.append(case(name, start, mode, ca, match))
    print("load (PSI some avg60): before %s; after %s" % (load0, pressure()))
    shutil.rmtree(WORK, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
