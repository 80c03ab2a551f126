#!/usr/bin/env python3
"""run.py - smtpd's launch-mode tests: the prefork supervisor (IPv4 and
IPv6, caps, signals, detach), systemd socket activation (Accept=yes and
Accept=no), tcpserver, xinetd, HAProxy and raw PROXY v1/v2 headers, and
every file in etc/.

Usage: python3 tests/launch/run.py ./smtpd [TEST-NAME-SUBSTRING...]
Needs: tests/install-deps.sh (systemd-socket-activate, tcpserver,
xinetd, haproxy).  Runs as root (deliveries use uid 65534) or not.
Prints one line per test and ends with "N passed, M failed" (plus
", K skipped" when a tool is missing); exit status 1 on any failure.
Every process a test starts is stopped (its process group killed) after
the test, pass or fail.
"""
import os
import re
import shlex
import signal
import smtplib
import struct
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import launchlib as L                                    # noqa: E402
from launchlib import (Client, TestFailure, Skip, World, check, eq,   # noqa: E402
                       deliver_one, token, message)

TEST_TIMEOUT = 90       # hard limit for one test, seconds
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---------------------------------------------------------------- helpers

def worker_pids(sup):
    """the supervisor's direct children that are workers (not the queue run)"""
    return [p for p in L.children(sup.pid) if L.alive(p)]


def wait_workers(sup, n, timeout=10, exclude=()):
    end = time.time() + timeout
    while time.time() < end:
        ws = [p for p in worker_pids(sup) if p not in exclude]
        if len(ws) >= n:
            return ws
        time.sleep(0.05)
    raise TestFailure("supervisor has %r children, want %d (excluding %r)" %
                      (worker_pids(sup), n, list(exclude)))


def zombies(pid):
    out = []
    for k in L.children(pid):
        st = L.proc_stat(k)
        if st and st[0] == "Z":
            out.append(k)
    return out


def check_no_zombies(sup, settle=1.0):
    """no <defunct> child of the supervisor, sampled for `settle` seconds"""
    end = time.time() + settle
    seen = set()
    while time.time() < end:
        z = zombies(sup.pid)
        # a child may be a zombie for a moment between exit and reaping;
        # one that stays a zombie across samples 0.3 s apart is not reaped
        for p in z:
            if p in seen:
                time.sleep(0.3)
                if p in zombies(sup.pid):
                    raise TestFailure("zombie child %d of the supervisor %d (ps: %s)" %
                                      (p, sup.pid, ps_children(sup.pid)))
            seen.add(p)
        time.sleep(0.1)


def ps_children(pid):
    try:
        return subprocess.run(["ps", "-o", "pid,stat,cmd", "--ppid", str(pid)],
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception as e:                                  # noqa: BLE001
        return repr(e)


def stop_supervisor(w, sup, timeout=10):
    """SIGTERM; exit status 0 within timeout; no process of its group left"""
    sup.kill(signal.SIGTERM)
    rc = sup.wait(timeout)
    check(rc is not None, "supervisor still running %ss after SIGTERM; log:\n%s" %
          (timeout, w.log_tail()))
    eq(rc, 0, "supervisor exit status")
    check(L.wait_gone(sup.members(), 5), "processes left after the supervisor exited: %r"
          % [(p, L.cmdline(p)[:1]) for p in sup.members()])
    w.wait_log(r"supervisor result=stopped", 5)


def smtplib_send(port, tok, host="127.0.0.1", conn=None, helo="client.test"):
    """one message via smtplib; returns (conn, code, text)"""
    if conn is None:
        conn = smtplib.SMTP(host, port, local_hostname=helo, timeout=30)
        conn.ehlo()
    conn.mail("sender@client.test")
    code, resp = conn.rcpt("alice@%s" % L.DOMAIN)
    if code != 250:
        return conn, code, resp.decode()
    code, resp = conn.data(message(tok))
    return conn, code, resp.decode()


def proxy_v1(src, dst="127.0.0.1", sport=4000, dport=25, fam="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, dst="127.0.0.1", sport=4000, dport=25, cmd=0x21, tlv=b""):
    if ":" in src:
        body = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        fam = 0x21
    else:
        body = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
        fam = 0x11
    body += struct.pack("!HH", sport, dport) + tlv
    return V2_SIG + bytes([cmd, fam]) + struct.pack("!H", len(body)) + body


def raw_conn(port, header, src=None, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(L.TIMEOUT)
    if src:
        s.bind((src, 0))
    s.connect((host, port))
    if header:
        s.sendall(header)
    return s


def closed_without_greeting(sock, timeout=10):
    c = Client(0, sock=sock)
    data = c.read_to_eof(timeout)
    c.close()
    eq(data, b"", "bytes before the server closed")


def start_with_port(w, make_argv, name, fam=4, retries=5, **kw):
    """start argv(port) and wait until the port listens; retry on collision"""
    for _ in range(retries):
        port = L.free_port(v6=(fam == 6), v4=(fam == 4))
        pr = w.start(make_argv(port), name=name, **kw)
        if L.wait_listen(port, fam, proc=pr) and pr.poll() is None:
            return pr, port
        pr.stop()
    raise TestFailure("%s did not start listening; log:\n%s" % (name, w.log_tail()))


# ---------------------------------------------------------------- supervisor

@test
def supervisor_ipv4_and_ipv6():
    w = World("v4v6")
    sup, port = w.supervisor({"workers": 2}, v6=True)
    w.wait_log(r"listen address=127\.0\.0\.1:%d" % port)
    w.wait_log(r"listen address=\[::1\]:%d" % port)
    deliver_one(w, port, "127.0.0.1")
    deliver_one(w, port, "::1")
    w.wait_log(r"connect client=127\.0\.0\.1$")
    w.wait_log(r"connect client=::1$")
    eq(len(w.files()), 2, "files stored")
    stop_supervisor(w, sup)


@test
def concurrent_50_clients_500_messages():
    w = World("c500")
    sup, port = w.supervisor({"max_sessions": 64, "max_per_addr": 64, "workers": 4})
    results, errors, busy421 = [], [], []
    lock = threading.Lock()

    def client(i):
        conn = None
        try:
            for j in range(10):
                tok = "c%02dm%d-%s" % (i, j, token())
                # even clients keep one session for 10 messages; odd ones
                # open a session per message.  A 421 at connect is retried
                # (as any SMTP client would) and counted: with 50 clients
                # and max_sessions=64 none is legitimate.
                for attempt in range(30):
                    try:
                        conn, code, text = smtplib_send(port, tok, conn=conn,
                                                        helo="c%d.client.test" % i)
                        break
                    except smtplib.SMTPConnectError as e:
                        with lock:
                            busy421.append("client %d: %s %s" % (i, e.smtp_code, e.smtp_error))
                        conn = None
                        time.sleep(0.1)
                else:
                    raise TestFailure("client %d: 30 refusals in a row" % i)
                with lock:
                    results.append((tok, code, text))
                if i % 2:
                    conn.quit()
                    conn = None
            if conn:
                conn.quit()
        except Exception as e:                              # noqa: BLE001
            with lock:
                errors.append("client %d: %r" % (i, e))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(50)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1, 120 - (time.time() - t0)))
    check(not any(t.is_alive() for t in threads), "clients still running after 120 s")
    stopping = [l for l in w.log().splitlines() if "stopping" in l]
    check(not stopping, "the supervisor stopped by itself during the run (no SIGTERM sent): "
          "%r; %d client errors, e.g. %s" % (stopping, len(errors), errors[:1]))
    check(not errors, "client errors: %s" % errors[:5])
    bad = [(tok, c, t) for tok, c, t in results if c != 250]
    check(not bad, "non-250 replies: %r" % bad[:5])
    eq(len(results), 500, "250 replies")
    files = w.wait_files(500, timeout=20)
    eq(len(files), 500, "files in new/")
    by_token = {}
    for fn, data in files:
        m, rest = L.parse_stored(data)
        tok = rest.split(b"\n", 6)[5].split(b" ", 1)[1].decode()     # "token TOK"
        by_token.setdefault(tok, []).append((fn, data, m))
    qids = set()
    for tok, code, text in results:
        got = by_token.get(tok, [])
        eq(len(got), 1, "files holding %s" % tok)
        fn, data, m = got[0]
        L.check_stored(data, tok)
        qid = text.rsplit(" ", 1)[1]
        eq(m.group("qid"), qid, "Received id of %s" % tok)
        qids.add(qid)
    eq(len(by_token), 500, "distinct tokens on disk")
    eq(len(qids), 500, "distinct queue ids")
    w.wait_log(r"result=accepted reply=\"250 ", count=500)
    check("died" not in w.log(), "a worker died:\n" + w.log_tail())
    print("    (500 messages in %.1f s)" % (time.time() - t0))
    check(not busy421, "500 messages stored intact, but %d connections got a 421 with at "
          "most 50 sessions open (max_sessions=64, max_per_addr=64): %s" %
          (len(busy421), busy421[:2]))
    stop_supervisor(w, sup)


@test
def per_address_cap():
    w = World("peraddr")
    sup, port = w.supervisor({"max_per_addr": 2, "workers": 4}, v6=True)
    a = Client(port)
    a.greeting()
    b = Client(port)
    b.greeting()
    c = Client(port)
    r = c.reply()
    eq(r.text, "421 4.7.0 Too many connections, try again later", "third session's reply")
    eq(c.read_to_eof(5), b"", "after the 421")
    c.close()
    w.wait_log(r"refused client=127\.0\.0\.1 reason=connection-limit$")
    # another address is not counted with 127.0.0.1
    v6 = Client(port, "::1")
    v6.greeting()
    v6.cmd("QUIT", 221)
    v6.close()
    # after one closes, a new one is served
    a.cmd("QUIT", 221)
    a.read_to_eof(5)
    a.close()
    # the worker tells the supervisor it is free only after closing the
    # client's socket, so wait for its log line before the strict check
    w.wait_log(r"disconnect client=127\.0\.0\.1 helo=-", 5)
    end = time.time() + 5
    while True:
        d = Client(port)
        r = d.reply()
        if r.code == 220 or time.time() > end:
            break
        d.close()
        time.sleep(0.1)
    eq(r.code, 220, "greeting after one session closed (%s)" % r.text)
    d.cmd("QUIT", 221)
    d.close()
    b.cmd("QUIT", 221)
    b.close()
    stop_supervisor(w, sup)


@test
def all_workers_busy_backlog():
    w = World("busy")
    sup, port = w.supervisor({"workers": 1, "max_sessions": 3, "max_per_addr": 10})
    held = []
    for i in range(3):
        c = Client(port)
        r = c.reply(timeout=5)
        eq(r.code, 220, "held session %d greeting" % i)
        held.append(c)
    wait_workers(sup, 3)
    fourth = Client(port)         # connect() completes: the kernel's backlog
    check(fourth.nothing_within(1.5),
          "4th connection got %r while 3 sessions (max_sessions=3) are held" % fourth.buf)
    eq(len(worker_pids(sup)), 3, "workers (max_sessions caps them)")
    held[0].cmd("QUIT", 221)
    held[0].close()
    t0 = time.time()
    r = fourth.reply(timeout=5)
    eq(r.code, 220, "4th connection's greeting after one session closed")
    print("    (4th served %.2f s after one closed)" % (time.time() - t0))
    fourth.cmd("QUIT", 221)
    for c in held[1:] + [fourth]:
        c.close()
    stop_supervisor(w, sup)


@test
def sigterm_during_burst():
    w = World("burst")
    grace = 3
    sup, port = w.supervisor({"workers": 4, "max_sessions": 32, "max_per_addr": 32,
                              "shutdown_grace": grace})
    accepted, other = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client(i):
        n = 0
        while not stop.is_set() and n < 200:
            n += 1
            tok = "b%02d-%d-%s" % (i, n, token())
            try:
                conn, code, text = smtplib_send(port, tok)
                try:
                    conn.quit()
                except Exception:                           # noqa: BLE001
                    pass
                with lock:
                    (accepted if code == 250 else other).append((tok, code, text))
            except (OSError, smtplib.SMTPException) as e:
                with lock:
                    other.append((tok, None, repr(e)))
                if isinstance(e, ConnectionRefusedError):
                    return
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(12)]
    for t in threads:
        t.start()
    end = time.time() + 10
    while time.time() < end and len(accepted) < 40:
        time.sleep(0.05)
    check(len(accepted) >= 40, "only %d messages accepted before SIGTERM" % len(accepted))
    check(sup.poll() is None and "stopping" not in w.log(),
          "the supervisor was stopping before the test sent SIGTERM:\n" + w.log_tail())
    t0 = time.time()
    sup.kill(signal.SIGTERM)
    rc = sup.wait(grace + 8)
    took = time.time() - t0
    check(rc is not None, "supervisor still running %.1f s after SIGTERM" % took)
    eq(rc, 0, "exit status")
    check(took <= grace + 3, "supervisor took %.1f s to stop (grace %d)" % (took, grace))
    check(L.wait_gone(sup.members(), 3), "processes left: %r" % sup.members())
    stop.set()
    for t in threads:
        t.join(35)
    check(not any(t.is_alive() for t in threads), "clients still running")
    files = w.read_new()
    count = {}
    for fn, data in files:
        m, rest = L.parse_stored(data)
        tok = rest.split(b"\n", 6)[5].split(b" ", 1)[1].decode()
        count[tok] = count.get(tok, 0) + 1
    dup = [t for t, n in count.items() if n > 1]
    check(not dup, "messages stored twice: %r" % dup[:5])
    missing = [tok for tok, _c, _t in accepted if count.get(tok, 0) != 1]
    check(not missing, "%d messages got 250 but are not on disk: %r" %
          (len(missing), missing[:5]))
    stored = {}
    for fn, data in files:
        stored[L.parse_stored(data)[1].split(b"\n", 6)[5].split(b" ", 1)[1].decode()] = data
    for tok, _c, _t in accepted:
        L.check_stored(stored[tok], tok)
    print("    (%d accepted, %d refused/failed, %d files, stopped in %.1f s)" %
          (len(accepted), len(other), len(files), took))


@test
def sigterm_idle_session_gets_421():
    w = World("term421")
    sup, port = w.supervisor({"shutdown_grace": 2, "workers": 2})
    idle = Client(port)
    idle.greeting()
    idle.cmd("EHLO client.test", 250)
    busy = Client(port)           # mid-transaction: must be able to finish
    busy.greeting()
    busy.cmd("EHLO client.test", 250)
    busy.cmd("MAIL FROM:<s@client.test>", 250)
    busy.cmd("RCPT TO:<alice@%s>" % L.DOMAIN, 250)
    t0 = time.time()
    sup.kill(signal.SIGTERM)
    w.wait_log(r"stopping grace=2", 3)
    tok = token()
    busy.cmd("DATA", 354)
    busy.send(message(tok).replace(b"\r\n.", b"\r\n..") + b".\r\n")
    r = busy.reply()
    eq(r.code, 250, "DATA during the grace time (%s)" % r.text)
    r = idle.reply(timeout=6)
    took = time.time() - t0
    check(r.text.startswith("421 4.3.2 ") and r.text.endswith("Service shutting down"),
          "idle session got %r" % r.text)
    check(took <= 3.5, "421 came %.2f s after SIGTERM (grace 2)" % took)
    eq(idle.read_to_eof(5), b"", "after the 421")
    w.wait_log(r"lost client=127\.0\.0\.1 reason=shutdown")
    rc = sup.wait(8)
    check(rc is not None, "supervisor still running")
    eq(rc, 0, "exit status")
    check(L.wait_gone(sup.members(), 3), "processes left: %r" % sup.members())
    eq(len(L.find_token(w, tok)), 1, "message finished in the grace time stored")
    print("    (421 after %.2f s)" % took)


@test
def new_connection_during_grace_not_left_hanging():
    # SIGTERM means "stop accepting": a client connecting during the grace
    # time must be refused (or closed) at once, not be accepted by the
    # kernel and left without a greeting until the grace time is over.
    w = World("grace-new")
    grace = 4
    sup, port = w.supervisor({"shutdown_grace": grace, "workers": 2})
    held = Client(port)
    held.greeting()
    held.cmd("EHLO client.test", 250)
    sup.kill(signal.SIGTERM)
    w.wait_log(r"stopping", 3)
    time.sleep(0.2)
    t0 = time.time()
    how, waited = None, 0.0
    try:
        c = Client(port, timeout=grace + 4)
    except ConnectionRefusedError:
        how = "refused"
    else:
        try:
            data = c.read_to_eof(grace + 4)
        except TestFailure:
            data = c.buf
        waited = time.time() - t0
        c.close()
        check(not data.startswith(b"220"), "a new session started during the grace time")
        how = "accepted by the kernel, then closed with %r after %.1f s" % (data[:60], waited)
    r = held.reply(timeout=grace + 3)
    check(r.text.startswith("421 4.3.2"), "held session got %r" % r.text)
    held.close()
    check(sup.wait(8) is not None, "supervisor still running")
    check(how == "refused" or waited < 1.0,
          "connection made during the grace time (shutdown_grace=%d) was %s" % (grace, how))


@test
def killed_worker_is_replaced():
    w = World("kill")
    sup, port = w.supervisor({"workers": 2})
    ws = wait_workers(sup, 2)
    victim = ws[0]
    family = [victim] + L.descendants(victim)      # the worker and its deliverer
    os.kill(victim, signal.SIGKILL)
    w.wait_log(r"worker pid=%d result=died status=9" % victim, 5)
    ws2 = wait_workers(sup, 2, exclude=(victim,))
    check(victim not in ws2, "victim still listed")
    check(L.wait_gone(family, 5), "the killed worker's deliverer lingers: %r" %
          [p for p in family if L.alive(p)])
    for _ in range(4):            # every worker, new ones included, serves
        deliver_one(w, port)
    check_no_zombies(sup)
    stop_supervisor(w, sup)


@test
def sighup_reloads_without_dropping_sessions():
    w = World("hup")
    conf = w.write_config(extra={"hostname": "one.test", "workers": 2})
    sup, port = start_with_port(
        w, lambda p: [L.SMTPD, "-c", conf, "-l", "127.0.0.1:%d" % p], "supervisor")
    w.wait_log(r"supervisor result=started")
    old = Client(port)
    r = old.greeting()
    eq(r.text, "220 one.test ESMTP smtpd", "greeting before HUP")
    old.cmd("EHLO client.test", 250)
    old.cmd("MAIL FROM:<s@client.test>", 250)
    old.cmd("RCPT TO:<alice@%s>" % L.DOMAIN, 250)
    w.wait_log(r"connect client=127\.0\.0\.1$")
    before = wait_workers(sup, 2)     # 1 idle + the busy one
    w.write_config(extra={"hostname": "two.test", "workers": 2})
    sup.kill(signal.SIGHUP)
    w.wait_log(r"reload result=ok", 5)
    # the old idle workers go; the busy one stays until its session ends
    end = time.time() + 5
    while time.time() < end and len([p for p in before if L.alive(p)]) > 1:
        time.sleep(0.05)
    left = [p for p in before if L.alive(p)]
    eq(len(left), 1, "old workers still alive after HUP (want only the busy one)")
    tok_new, _, _ = deliver_one(w, port, by="two.test")
    new = Client(port)
    eq(new.greeting().text, "220 two.test ESMTP smtpd", "greeting after HUP")
    new.cmd("QUIT", 221)
    new.close()
    # the session from before the HUP completes
    tok = token()
    old.cmd("DATA", 354)
    old.send(message(tok).replace(b"\r\n.", b"\r\n..") + b".\r\n")
    r = old.reply()
    eq(r.code, 250, "DATA on the session opened before HUP (%s)" % r.text)
    old.cmd("QUIT", 221)
    old.close()
    got = L.find_token(w, tok)
    eq(len(got), 1, "old session's message stored")
    L.check_stored(got[0][1], tok, by="one.test")
    check(L.wait_gone(left, 5), "old busy worker %r did not exit after its session" % left)
    check_no_zombies(sup)
    check("died" not in w.log(), "a worker died:\n" + w.log_tail())
    stop_supervisor(w, sup)


@test
def sighup_with_bad_config_keeps_old():
    w = World("hupbad")
    conf = w.write_config(extra={"hostname": "one.test", "workers": 1})
    sup, port = start_with_port(
        w, lambda p: [L.SMTPD, "-c", conf, "-l", "127.0.0.1:%d" % p], "supervisor")
    with open(conf, "a") as f:
        f.write("no_such_setting = 1\n")
    sup.kill(signal.SIGHUP)
    w.wait_log(r"reload result=error", 5)
    check(sup.poll() is None, "supervisor exited after a bad HUP")
    deliver_one(w, port, by="one.test")
    stop_supervisor(w, sup)


@test
def sighup_with_o_settings():
    # -c FILE plus -o settings on the command line (as "make demo" and most
    # hand-started supervisors have): SIGHUP must still re-read FILE
    w = World("hup-o")
    conf = w.path("hup.conf")
    with open(conf, "w") as f:
        f.write("hostname = one.test\n")
    opts = ["-e"]
    for k, v in w.settings.items():
        if k != "hostname":
            opts += ["-o", "%s=%s" % (k, v)]
    sup, port = start_with_port(
        w, lambda p: [L.SMTPD, "-c", conf] + opts + ["-l", "127.0.0.1:%d" % p],
        "supervisor")
    w.wait_log(r"supervisor result=started")
    c = Client(port)
    eq(c.greeting().text, "220 one.test ESMTP smtpd", "greeting before HUP")
    c.close()
    with open(conf, "w") as f:
        f.write("hostname = two.test\n")
    sup.kill(signal.SIGHUP)
    try:
        w.wait_log(r"reload result=(ok|error)", 5)
    finally:
        errs = [l for l in w.log().splitlines() if "bad setting" in l or "has errors" in l]
    check(not errs, "SIGHUP with -o settings: %s" % " / ".join(errs))
    time.sleep(0.3)
    deliver_one(w, port, by="two.test")
    stop_supervisor(w, sup)


@test
def spare_workers_retired_under_churn():
    # Bursts of sessions make the supervisor fork workers (workers=1 kept
    # idle); when a burst ends it retires the spares with SIGTERM while new
    # connections arrive.  Every connection must get 220 (nothing is over
    # a cap) and the supervisor must keep running.
    w = World("churn")
    sup, port = w.supervisor({"workers": 1, "max_sessions": 64, "max_per_addr": 64})
    stats = {}

    def greet(c):
        if "stopping" in w.log():
            return "(not read: supervisor stopping)"
        try:
            r = c.reply(timeout=5)
            return r.text if r.code != 220 else "220"
        except TestFailure as e:
            return "no greeting: " + str(e)[:60]
    for rnd in range(15):
        held = []
        for i in range(20):
            try:
                c = Client(port, timeout=5)
            except OSError as e:
                stats["connect: %s" % e] = stats.get("connect: %s" % e, 0) + 1
                break
            k = greet(c)
            stats[k] = stats.get(k, 0) + 1
            held.append(c)
        for c in held:
            try:
                c.send("QUIT\r\n")
            except OSError:
                pass
        news = []
        for i in range(10):
            try:
                news.append(Client(port, timeout=5))
            except OSError as e:
                stats["connect: %s" % e] = stats.get("connect: %s" % e, 0) + 1
        for c in held:
            c.close()
        for c in news:
            k = greet(c)
            stats[k] = stats.get(k, 0) + 1
            c.close()
        if sup.poll() is not None or "stopping" in w.log():
            break
    stopping = [l for l in w.log().splitlines() if "stopping" in l]
    check(not stopping, "the supervisor stopped by itself (no SIGTERM was sent): %r; "
          "replies: %r" % (stopping, stats))
    check(set(stats) == {"220"}, "replies while spares were retired: %r; log: %r" %
          (stats, [l for l in w.log().splitlines() if "refused" in l][:3]))
    stop_supervisor(w, sup)


@test
def worker_retirement():
    w = World("retire")
    sup, port = w.supervisor({"workers": 1, "worker_connections": 2})
    for _ in range(5):
        deliver_one(w, port)
    eq(len(w.files()), 5, "files")
    pids = set(re.findall(r"smtpd\[(\d+)\]: \S+ connect client=", w.log()))
    check(len(pids) >= 3, "5 sessions by %d workers with worker_connections=2" % len(pids))
    check("died" not in w.log(), "a worker died:\n" + w.log_tail())
    check_no_zombies(sup)
    stop_supervisor(w, sup)


@test
def no_zombies():
    w = World("zombie")
    # -c only: a reload with -o settings fails (see sighup_with_o_settings)
    conf = w.write_config(extra={"workers": 2, "worker_connections": 1, "queue_interval": 1})
    sup, port = start_with_port(
        w, lambda p: [L.SMTPD, "-c", conf, "-l", "127.0.0.1:%d" % p], "supervisor")
    for _ in range(6):
        deliver_one(w, port)
    for _ in range(50):           # a worker may exit on its own (worker_connections=1)
        try:
            os.kill(wait_workers(sup, 2)[0], signal.SIGKILL)
            break
        except ProcessLookupError:
            time.sleep(0.05)
    sup.kill(signal.SIGHUP)
    w.wait_log(r"reload result=ok")
    for _ in range(3):
        deliver_one(w, port)
    time.sleep(1.5)               # a queue run or two (queue_interval=1)
    check_no_zombies(sup, settle=1.5)
    stop_supervisor(w, sup)


@test
def detach_pid_file():
    w = World("detach")
    pidf = w.path("smtpd.pid")
    port = L.free_port()
    pr = w.start(w.argv({"pid_file": pidf}, flags=["-d"]) + ["-l", "127.0.0.1:%d" % port],
                 name="detach")
    rc = pr.wait(10)
    eq(rc, 0, "foreground process exit status")
    end = time.time() + 5
    while time.time() < end and not (os.path.exists(pidf) and open(pidf).read().endswith("\n")):
        time.sleep(0.05)
    check(os.path.exists(pidf), "no pid file; log:\n" + w.log_tail())
    pid = int(open(pidf).read())
    L.add_group(pid)              # setsid(): its own session, for cleanup
    check(pid != pr.pid and L.alive(pid), "pid file names %d" % pid)
    st = L.proc_stat(pid)
    eq(st[3], pid, "detached supervisor is a session leader")
    check(L.wait_listen(port), "not listening")
    w.wait_log(r"supervisor result=started pid=%d" % pid)
    deliver_one(w, port)
    members = L.group_members(pid)
    os.kill(pid, signal.SIGTERM)
    check(L.wait_gone([pid] + members, 10), "still running after SIGTERM: %r" %
          [p for p in [pid] + members if L.alive(p)])
    end = time.time() + 3
    while time.time() < end and os.path.exists(pidf):
        time.sleep(0.05)
    check(not os.path.exists(pidf), "pid file not removed")


# ---------------------------------------------------------------- superservers

@test
def systemd_socket_activate_accept_yes():
    L.need(L.SOCKET_ACTIVATE)
    w = World("sd-accept")
    sa, port = start_with_port(
        w, lambda p: [L.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p, "--accept"] + w.argv(),
        "socket-activate")
    deliver_one(w, port)
    deliver_one(w, port)
    pids = set(re.findall(r"smtpd\[(\d+)\]: \S+ connect client=127\.0\.0\.1$", w.log(), re.M))
    eq(len(pids), 2, "one smtpd process per connection")
    check("supervisor result=started" not in w.log(), "a supervisor started under Accept=yes")
    sa.stop()


@test
def systemd_socket_activate_accept_no():
    L.need(L.SOCKET_ACTIVATE)
    w = World("sd-noaccept")
    sa, port = start_with_port(
        w, lambda p: [L.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p] + w.argv({"workers": 2}),
        "socket-activate")
    # systemd-socket-activate execs smtpd on the first connection
    deliver_one(w, port)
    w.wait_log(r"supervisor result=started pid=%d " % sa.pid)
    deliver_one(w, port)
    eq(len(w.files()), 2, "files")
    check("listen address=" not in w.log(), "supervisor opened its own socket")
    stop_supervisor(w, sa)


def tcpserver_argv(port, rest):
    return ["tcpserver", "-v", "-R", "-H", "-l", "localhost", "127.0.0.1", str(port)] + rest


@test
def tcpserver_tcpremoteip():
    L.need("tcpserver")
    w = World("tcpserver")
    ts, port = start_with_port(w, lambda p: tcpserver_argv(p, w.argv()), "tcpserver")
    deliver_one(w, port, addr="127.0.0.1")
    w.wait_log(r"connect client=127\.0\.0\.1$")
    w.wait_log(r"tcpserver: ok \d+ ")
    ts.stop()


def xinetd_config(w, port, attrs, server, server_args):
    """an xinetd config for one service on 127.0.0.1:port from attrs"""
    a = dict(attrs)
    a.update({"type": "UNLISTED", "port": str(port), "bind": "127.0.0.1",
              "server": server, "server_args": server_args,
              "log_on_success": "PID HOST EXIT", "log_on_failure": "HOST"})
    if os.getuid() != 0:    # an ordinary user's xinetd cannot become root
        import pwd
        a["user"] = pwd.getpwuid(os.getuid()).pw_name
    p = w.path("xinetd.conf")
    with open(p, "w") as f:
        f.write("defaults\n{\n\tlog_type = FILE %s\n}\n" % w.path("xinetd.log"))
        f.write("service smtp\n{\n")
        for k, v in a.items():
            f.write("\t%-16s= %s\n" % (k, v))
        f.write("}\n")
    return p


def parse_xinetd(path):
    attrs, inside = {}, False
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line.startswith("service "):
            name = line.split()[1]
        elif line == "{":
            inside = True
        elif line == "}":
            inside = False
        elif inside and "=" in line:
            k, v = line.split("=", 1)
            attrs[k.strip()] = v.strip()
    return name, attrs


def run_xinetd(w, attrs, server_args):
    L.need("/usr/sbin/xinetd")
    for _ in range(5):
        port = L.free_port()
        cfg = xinetd_config(w, port, attrs, L.SMTPD, server_args)
        pr = w.start(["/usr/sbin/xinetd", "-dontfork", "-f", cfg, "-pidfile",
                      w.path("xinetd.pid")], name="xinetd")
        if L.wait_listen(port, proc=pr) and pr.poll() is None:
            return pr, port
        pr.stop()
    raise TestFailure("xinetd did not start; log:\n" + w.log_tail())


@test
def xinetd_delivery():
    w = World("xinetd")
    _name, attrs = parse_xinetd(os.path.join(L.ETC_DIR, "xinetd.smtpd"))
    # xinetd puts the socket on fds 0, 1 and 2: no -e (it would talk to the
    # client); smtpd logs to syslog there.
    args = " ".join(w.opts(stderr_log=False))
    pr, port = run_xinetd(w, attrs, args)
    deliver_one(w, port, addr="127.0.0.1")
    deliver_one(w, port, addr="127.0.0.1")
    pr.stop()


# ---------------------------------------------------------------- PROXY protocol

def haproxy_cfg(w, fronts):
    """fronts: [(listen_port, server_port, "send-proxy"|"send-proxy-v2")]"""
    p = w.path("haproxy.cfg")
    with open(p, "w") as f:
        f.write("global\n\tmaxconn 200\n\n"
                "defaults\n\tmode tcp\n\ttimeout connect 5s\n\ttimeout client 60s\n"
                "\ttimeout server 60s\n\n")
        for i, (lp, sp, kind) in enumerate(fronts):
            f.write("frontend f%d\n\tbind 127.0.0.1:%d\n\tdefault_backend b%d\n\n" % (i, lp, i))
            f.write("backend b%d\n\tserver s%d 127.0.0.1:%d %s\n\n" % (i, i, sp, kind))
    return p


def run_haproxy(w, cfg, ports):
    L.need("haproxy")
    r = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True,
                       timeout=20)
    eq(r.returncode, 0, "haproxy -c -f %s (%s)" % (cfg, (r.stdout + r.stderr)[-500:]))
    pr = w.start(["haproxy", "-f", cfg, "-db"], name="haproxy",
                 log_path=w.path("haproxy.log"))
    for p in ports:
        if not L.wait_listen(p, proc=pr):
            raise TestFailure("haproxy not listening on %d: %s" %
                              (p, open(w.path("haproxy.log")).read()[-800:]))
    return pr


@test
def haproxy_send_proxy_v1_and_v2():
    L.need("haproxy")
    w = World("haproxy")
    sup, sport = w.supervisor({"proxy_trusted": "127.0.0.1", "workers": 2})
    p1, p2 = L.free_port(), L.free_port()
    while p2 == p1:
        p2 = L.free_port()
    cfg = haproxy_cfg(w, [(p1, sport, "send-proxy"), (p2, sport, "send-proxy-v2")])
    ha = run_haproxy(w, cfg, [p1, p2])
    deliver_one(w, p1, addr="127.0.0.1")
    deliver_one(w, p2, addr="127.0.0.1")
    w.wait_log(r"proxy client=127\.0\.0\.1 via=127\.0\.0\.1$", count=2)
    w.wait_log(r"connect client=127\.0\.0\.1$", count=2)
    check("refused" not in w.log(), "a connection was refused:\n" + w.log_tail())
    ha.stop()
    stop_supervisor(w, sup)


@test
def proxy_raw_headers():
    w = World("proxyraw")
    sup, port = w.supervisor({"proxy_trusted": "127.0.0.1", "workers": 2})
    cases = [
        ("v1 TCP4", proxy_v1("203.0.113.7"), "203.0.113.7", "203.0.113.7"),
        ("v1 TCP6", proxy_v1("2001:db8::5", "2001:db8::1", fam="TCP6"), "2001:db8::5",
         "IPv6:2001:db8::5"),
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n", "127.0.0.1", "127.0.0.1"),
        ("v2 TCP4", proxy_v2("198.51.100.9"), "198.51.100.9", "198.51.100.9"),
        ("v2 TCP6", proxy_v2("2001:db8::9", "2001:db8::1"), "2001:db8::9",
         "IPv6:2001:db8::9"),
        ("v2 TCP4 with TLV", proxy_v2("198.51.100.10", tlv=b"\x04\x00\x03abc"),
         "198.51.100.10", "198.51.100.10"),
        ("v2 LOCAL", proxy_v2("198.51.100.11", cmd=0x20), "127.0.0.1", "127.0.0.1"),
    ]
    for what, hdr, logaddr, rcvd in cases:
        n = len(re.findall(r"connect client=%s$" % re.escape(logaddr), w.log(), re.M))
        try:
            deliver_one(w, port, sock=raw_conn(port, hdr), addr=rcvd)
            w.wait_log(r"connect client=%s$" % re.escape(logaddr), count=n + 1)
        except TestFailure as e:
            raise TestFailure("%s: %s" % (what, e))
    w.wait_log(r"proxy client=203\.0\.113\.7 via=127\.0\.0\.1$")
    w.wait_log(r"proxy client=198\.51\.100\.9 via=127\.0\.0\.1$")
    # the header and the first command in one packet: the command is not lost
    s = raw_conn(port, proxy_v1("203.0.113.8") + b"EHLO pipelined.test\r\n")
    c = Client(0, sock=s)
    c.greeting()
    eq(c.reply().code, 250, "EHLO sent with the header")
    c.cmd("QUIT", 221)
    c.close()
    stop_supervisor(w, sup)


@test
def proxy_malformed_headers():
    w = World("proxybad")
    sup, port = w.supervisor({"proxy_trusted": "127.0.0.1", "workers": 2,
                              "cmd_timeout": 2})
    bad = [
        ("bad port", proxy_v1("203.0.113.7", sport=99999)),
        ("bad address", b"PROXY TCP4 203.0.113.999 127.0.0.1 4000 25\r\n"),
        ("bad protocol", b"PROXY TCP5 203.0.113.7 127.0.0.1 4000 25\r\n"),
        ("family mismatch", b"PROXY TCP4 2001:db8::1 127.0.0.1 4000 25\r\n"),
        ("no CR", b"PROXY TCP4 203.0.113.7 127.0.0.1 4000 25\n" + b"x" * 80),
        ("too long", b"PROXY TCP4 " + b"1" * 120 + b"\r\n"),
        ("SMTP instead", b"EHLO client.test\r\nMAIL FROM:<a@b>\r\n"),
        ("v2 bad version", V2_SIG + b"\x11\x11\x00\x0c" + b"\0" * 12),
        ("v2 short body", V2_SIG + b"\x21\x11\x00\x04" + b"\0" * 4),
        ("v2 bad family", V2_SIG + b"\x21\x31\x00\x0c" + b"\0" * 12),
    ]
    n0 = 0
    for what, hdr in bad:
        try:
            closed_without_greeting(raw_conn(port, hdr), 8)
            n0 += 1
            w.wait_log(r"refused client=127\.0\.0\.1 reason=bad-proxy-header$", 5, count=n0)
        except TestFailure as e:
            raise TestFailure("%s: %s" % (what, e))
    # a client that sends nothing: closed after cmd_timeout, no greeting
    t0 = time.time()
    closed_without_greeting(raw_conn(port, b""), 8)
    check(time.time() - t0 < 6, "silent client held %.1f s (cmd_timeout=2)" % (time.time() - t0))
    w.wait_log(r"refused client=127\.0\.0\.1 reason=bad-proxy-header$", 5, count=n0 + 1)
    check("connect client=" not in w.log(), "a session started:\n" + w.log_tail())
    eq(w.files(), [], "files stored")
    # the workers are still fine
    deliver_one(w, port, sock=raw_conn(port, proxy_v1("203.0.113.7")), addr="203.0.113.7")
    stop_supervisor(w, sup)


@test
def proxy_untrusted_peer():
    w = World("proxyuntrusted")
    sup, port = w.supervisor({"proxy_trusted": "127.0.0.2", "workers": 2})
    s = raw_conn(port, proxy_v1("203.0.113.7") +
                 b"EHLO spoof.test\r\nMAIL FROM:<a@client.test>\r\n")
    closed_without_greeting(s)
    w.wait_log(r"refused client=127\.0\.0\.1 reason=untrusted-proxy-peer$")
    s = raw_conn(port, proxy_v2("198.51.100.9"))
    closed_without_greeting(s)
    w.wait_log(r"refused client=127\.0\.0\.1 reason=untrusted-proxy-peer$", count=2)
    check("203.0.113.7" not in w.log() and "198.51.100.9" not in w.log(),
          "spoofed address in the log:\n" + w.log_tail())
    eq(w.files(), [], "files stored")
    # the trusted address (127.0.0.2, a loopback source) is served
    deliver_one(w, port, sock=raw_conn(port, proxy_v1("203.0.113.7"), src="127.0.0.2"),
                addr="203.0.113.7")
    w.wait_log(r"proxy client=203\.0\.113\.7 via=127\.0\.0\.2$")
    stop_supervisor(w, sup)


@test
def proxy_per_address_cap_uses_header_address():
    w = World("proxycap")
    sup, port = w.supervisor({"proxy_trusted": "127.0.0.1", "workers": 3,
                              "max_per_addr": 1})
    a = Client(0, sock=raw_conn(port, proxy_v1("203.0.113.7")))
    a.greeting()
    b = Client(0, sock=raw_conn(port, proxy_v1("203.0.113.7", sport=4001)))
    eq(b.reply().text, "421 4.7.0 Too many connections, try again later", "same source")
    b.close()
    w.wait_log(r"refused client=203\.0\.113\.7 reason=connection-limit$")
    c = Client(0, sock=raw_conn(port, proxy_v2("203.0.113.8")))
    eq(c.greeting().code, 220, "other source, same proxy")
    c.cmd("QUIT", 221)
    c.close()
    a.cmd("QUIT", 221)
    a.close()
    stop_supervisor(w, sup)


@test
def proxy_pending_headers_do_not_block_others():
    # Two connections from the trusted proxy whose PROXY header has not
    # arrived yet occupy both workers (workers=2).  A third connection with
    # a header must still be served promptly (max_sessions=10 allows more
    # workers), not wait until the first two time out (cmd_timeout).
    w = World("proxypending")
    timeout = 6
    sup, port = w.supervisor({"proxy_trusted": "127.0.0.1", "workers": 2,
                              "max_sessions": 10, "cmd_timeout": timeout})
    silent = [raw_conn(port, b"") for _ in range(2)]
    time.sleep(0.3)
    t0 = time.time()
    c = Client(0, sock=raw_conn(port, proxy_v1("203.0.113.7")), timeout=timeout + 4)
    r = c.reply(timeout=timeout + 4)
    took = time.time() - t0
    eq(r.code, 220, "greeting")
    c.cmd("QUIT", 221)
    c.close()
    for s in silent:
        s.close()
    check(took < 2, "greeting came after %.1f s: the two connections waiting for their "
          "header held both workers until cmd_timeout=%d (the supervisor counts them idle "
          "and forks no other worker)" % (took, timeout))
    stop_supervisor(w, sup)


# ---------------------------------------------------------------- etc/ files

def parse_unit(name):
    """{section: {key: value}} of a systemd unit file in etc/"""
    out, sec = {}, None
    for line in open(os.path.join(L.ETC_DIR, name)):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            sec = out.setdefault(line[1:-1], {})
        elif "=" in line and sec is not None:
            k, v = line.split("=", 1)
            sec[k.strip()] = v.strip()
    return out


def etc_config(w, log_stderr=True, extra=None):
    """etc/smtpd.conf with the test's values; returns its path"""
    vals = {"hostname": L.HOST, "local_domains": L.DOMAIN, "postmaster": "alice",
            "spool_dir": w.spool, "virtual_users": w.users_file,
            "queue_interval": "0"}
    if L.SESSION_USER:
        vals["session_user"] = L.SESSION_USER
    if log_stderr:
        vals["log"] = "stderr"
    vals.update(extra or {})
    out, done = [], set()
    for line in open(os.path.join(L.ETC_DIR, "smtpd.conf")):
        s = line.strip()
        body = s.lstrip("#").strip()
        if "=" in body:
            k = body.split("=", 1)[0].strip()
            if k in vals:
                out.append("%s = %s\n" % (k, vals[k]))
                done.add(k)
                continue
        out.append(line)
    for k, v in vals.items():
        if k not in done:
            out.append("%s = %s\n" % (k, v))
    p = w.path("etc-smtpd.conf")
    with open(p, "w") as f:
        f.writelines(out)
    os.chmod(p, 0o644)
    return p


def exec_argv(execstart, conf, listen=None):
    """ExecStart with our binary and config; -l ADDRs replaced by listen"""
    a = shlex.split(execstart)
    check(a[0] == "/usr/local/sbin/smtpd", "ExecStart runs %s" % a[0])
    out, i = [L.SMTPD], 1
    ls = list(listen or [])
    while i < len(a):
        if a[i] == "-c":
            out += ["-c", conf]
            i += 2
        elif a[i] == "-l":
            check(ls, "ExecStart has more -l than expected: %r" % a)
            out += ["-l", ls.pop(0)]
            i += 2
        else:
            out.append(a[i])
            i += 1
    return out


def mixed_stop(w, pr, timeout):
    """KillMode=mixed: SIGTERM to the main process; the rest must follow"""
    t0 = time.time()
    pr.kill(signal.SIGTERM)
    rc = pr.wait(timeout)
    check(rc is not None, "main process still running %ds after SIGTERM" % timeout)
    check(L.wait_gone(pr.members(), 5), "left after main exited: %r" % pr.members())
    return time.time() - t0


def exec_reload(unit, pid):
    cmd = unit["Service"]["ExecReload"].replace("$MAINPID", str(pid))
    r = subprocess.run(shlex.split(cmd), timeout=10)
    eq(r.returncode, 0, "ExecReload %s" % cmd)


@test
def etc_smtpd_conf():
    w = World("etc-conf")
    conf = etc_config(w)
    r = subprocess.run([L.SMTPD, "-c", conf, "-n"], capture_output=True, text=True, timeout=10)
    eq(r.returncode, 0, "smtpd -c etc-smtpd.conf -n (%s)" % r.stderr.strip())
    check("hostname = %s" % L.HOST in r.stdout, "-n output: %s" % r.stdout[:300])
    # the file as shipped parses too (its postmaster may not exist here)
    r = subprocess.run([L.SMTPD, "-c", os.path.join(L.ETC_DIR, "smtpd.conf"), "-n"],
                       capture_output=True, text=True, timeout=10)
    check("hostname = mx.example.org" in r.stdout and "bad setting" not in r.stderr and
          "usage" not in r.stderr, "etc/smtpd.conf: rc %d %s" % (r.returncode, r.stderr))


@test
def etc_smtpd_socket_accept_yes():
    L.need(L.SOCKET_ACTIVATE)
    sock, svc = parse_unit("smtpd.socket"), parse_unit("smtpd@.service")
    eq(sock["Socket"].get("Accept"), "yes", "smtpd.socket Accept")
    eq(sock["Socket"].get("ListenStream"), "25", "smtpd.socket ListenStream")
    w = World("etc-socket")
    argv = exec_argv(svc["Service"]["ExecStart"], etc_config(w))
    sa, port = start_with_port(
        w, lambda p: [L.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p, "--accept"] + argv,
        "socket-activate")
    deliver_one(w, port)
    w.wait_log(r"connect client=127\.0\.0\.1$")
    sa.stop()


@test
def etc_smtpd_activated_accept_no():
    L.need(L.SOCKET_ACTIVATE)
    sock, svc = parse_unit("smtpd-activated.socket"), parse_unit("smtpd-activated.service")
    eq(sock["Socket"].get("Accept"), "no", "smtpd-activated.socket Accept")
    eq(sock["Socket"].get("ListenStream"), "25", "ListenStream")
    w = World("etc-activated")
    conf = etc_config(w)
    argv = exec_argv(svc["Service"]["ExecStart"], conf)
    sa, port = start_with_port(
        w, lambda p: [L.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p] + argv, "socket-activate")
    deliver_one(w, port)
    w.wait_log(r"supervisor result=started pid=%d " % sa.pid)
    # ExecReload with a changed hostname
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("hostname = %s" % L.HOST, "hostname = reloaded.test"))
    exec_reload(svc, sa.pid)
    w.wait_log(r"reload result=ok")
    time.sleep(0.3)
    deliver_one(w, port, by="reloaded.test")
    took = mixed_stop(w, sa, int(svc["Service"].get("TimeoutStopSec", "60")))
    check(took < 5, "stop took %.1f s" % took)


@test
def etc_smtpd_service_listens_itself():
    svc = parse_unit("smtpd.service")
    w = World("etc-service")
    conf = etc_config(w)
    sup, port = start_with_port(
        w, lambda p: exec_argv(svc["Service"]["ExecStart"], conf,
                               ["127.0.0.1:%d" % p, "[::1]:%d" % p]),
        "smtpd.service")
    check(L.wait_listen(port, 6), "not listening on [::1]")
    w.wait_log(r"supervisor result=started")
    deliver_one(w, port, "127.0.0.1")
    deliver_one(w, port, "::1")
    exec_reload(svc, sup.pid)
    w.wait_log(r"reload result=ok")
    deliver_one(w, port)
    took = mixed_stop(w, sup, int(svc["Service"].get("TimeoutStopSec", "60")))
    check(took < 5, "stop took %.1f s" % took)


@test
def etc_xinetd_smtpd():
    name, attrs = parse_xinetd(os.path.join(L.ETC_DIR, "xinetd.smtpd"))
    eq(name, "smtp", "service name")
    eq(attrs.get("server"), "/usr/local/sbin/smtpd", "server")
    w = World("etc-xinetd")
    args = attrs["server_args"].replace("/etc/smtpd.conf", etc_config(w, log_stderr=False))
    pr, port = run_xinetd(w, attrs, args)
    deliver_one(w, port)
    pr.stop()


@test
def etc_inetd_conf():
    line = [l for l in open(os.path.join(L.ETC_DIR, "inetd.conf"))
            if l.strip() and not l.lstrip().startswith("#")]
    eq(len(line), 1, "service lines in inetd.conf")
    f = line[0].split()
    eq(f[:5], ["smtp", "stream", "tcp", "nowait", "root"], "inetd.conf fields")
    eq(f[5], "/usr/local/sbin/smtpd", "server path")
    eq(f[6], "smtpd", "argv[0]")
    w = World("etc-inetd")
    args = [a.replace("/etc/smtpd.conf", etc_config(w)) for a in f[7:]]
    inetd = "/usr/sbin/inetd"
    if os.path.exists(inetd) and os.path.exists("/usr/share/doc/openbsd-inetd"):
        def mk(p):
            cfg = w.path("inetd.conf")
            with open(cfg, "w") as c:
                c.write("127.0.0.1:%d\t%s\t%s\t%s\t%s\t%s\t%s\n" % (
                    p, f[1], f[2], f[3], f[4], L.SMTPD,
                    " ".join(["smtpd"] + [a.replace("/etc/smtpd.conf", etc_config(
                        w, log_stderr=False)) for a in f[7:]])))
            return [inetd, "-d", cfg]
        pr, port = start_with_port(w, mk, "inetd")
    else:
        # no openbsd-inetd here (xinetd is the superserver installed): the
        # same argv under tcpserver, which also gives fd 0/1 per connection
        L.need("tcpserver")
        pr, port = start_with_port(w, lambda p: tcpserver_argv(p, [L.SMTPD] + args),
                                   "tcpserver")
    deliver_one(w, port)
    pr.stop()


@test
def etc_tcpserver_sh():
    L.need("tcpserver")
    src = open(os.path.join(L.ETC_DIR, "tcpserver.sh")).read()
    check("exec tcpserver" in src and " 0.0.0.0 25 " in src, "unexpected tcpserver.sh")
    w = World("etc-tcpserver")
    conf = etc_config(w)

    def mk(p):
        s = (src.replace(" 0.0.0.0 25 ", " 127.0.0.1 %d " % p)
             .replace("/usr/local/sbin/smtpd", L.SMTPD)
             .replace("/etc/smtpd.conf", conf))
        path = w.path("tcpserver.sh")
        with open(path, "w") as f:
            f.write(s)
        return ["sh", path]
    pr, port = start_with_port(w, mk, "tcpserver.sh")
    deliver_one(w, port)
    w.wait_log(r"connect client=127\.0\.0\.1$")
    w.wait_log(r"tcpserver: status: ")
    pr.stop()


@test
def etc_haproxy_cfg():
    L.need("haproxy")
    src = open(os.path.join(L.ETC_DIR, "haproxy.cfg")).read()
    check("bind :25" in src and "127.0.0.1:2525" in src, "unexpected haproxy.cfg")
    w = World("etc-haproxy")
    conf = etc_config(w, extra={"proxy_trusted": "127.0.0.1"})
    sup, sport = start_with_port(w, lambda p: [L.SMTPD, "-c", conf, "-l", "127.0.0.1:%d" % p],
                                 "supervisor")
    fport = L.free_port()
    cfg = w.path("haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(src.replace("bind :25", "bind 127.0.0.1:%d" % fport)
                .replace("127.0.0.1:2525", "127.0.0.1:%d" % sport))
    r = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True, timeout=20)
    warn = [l for l in (r.stdout + r.stderr).splitlines() if "WARNING" in l]
    ha = run_haproxy(w, cfg, [fport])
    deliver_one(w, fport, addr="127.0.0.1")
    w.wait_log(r"proxy client=127\.0\.0\.1 via=127\.0\.0\.1$")
    ha.stop()
    stop_supervisor(w, sup)
    if warn:
        print("    (haproxy -c warns: %s)" % "; ".join(x.split(": ", 1)[-1] for x in warn))


# ---------------------------------------------------------------- runner

class Timeout(Exception):
    pass


def on_alarm(_sig, _frame):
    raise Timeout("test exceeded %d s" % TEST_TIMEOUT)


def on_term(sig, _frame):
    left = L.stop_all(2)
    print("interrupted by signal %d; stopped %s" % (sig, ", ".join(left) or "nothing"),
          flush=True)
    sys.exit(128 + sig)


def leftovers(world_dirs):
    """live processes whose cwd is in a test's world (our children)"""
    out = []
    for p in L.all_pids():
        try:
            cwd = os.readlink("/proc/%d/cwd" % p)
        except OSError:
            continue
        if any(cwd == d or cwd.startswith(d + "/") for d in world_dirs) and L.alive(p):
            out.append(p)
    return out


def main(argv):
    if len(argv) < 2:
        print("usage: run.py ./smtpd [TEST...]", file=sys.stderr)
        return 2
    L.SMTPD = os.path.abspath(argv[1])
    if not os.access(L.SMTPD, os.X_OK):
        print("not executable: %s" % L.SMTPD, file=sys.stderr)
        return 2
    want = argv[2:]
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    passed = failed = skipped = 0
    t_all = time.time()
    worlds_before = set()
    for fn in TESTS:
        name = fn.__name__
        if want and not any(x in name for x in want):
            continue
        made = []
        orig = World.__init__

        def init(self, *a, **k):
            orig(self, *a, **k)
            made.append(self)
        World.__init__ = init
        t0 = time.time()
        err = None
        signal.alarm(TEST_TIMEOUT)
        try:
            fn()
        except Skip as e:
            err = ("skip", str(e))
        except (TestFailure, Timeout) as e:
            err = ("fail", str(e))
        except Exception:                                   # noqa: BLE001
            err = ("fail", traceback.format_exc())
        finally:
            signal.alarm(0)
            World.__init__ = orig
        killed = L.stop_all()
        dirs = [w.dir for w in made]
        rest = leftovers(dirs)
        if rest:
            for p in rest:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            killed.append("cwd-in-test pids %r" % rest)
        if killed and err is None:
            err = ("fail", "processes left running after the test: %s" % ", ".join(killed))
        dt = time.time() - t0
        if err is None:
            passed += 1
            print("ok    %-45s %5.1fs" % (name, dt), flush=True)
            for w in made:
                subprocess.run(["rm", "-rf", w.dir], timeout=30)
        elif err[0] == "skip":
            skipped += 1
            print("skip  %-45s %s" % (name, err[1]), flush=True)
        else:
            failed += 1
            msg = err[1].rstrip().replace("\n", "\n      ")
            print("FAIL  %-45s %5.1fs\n      %s" % (name, dt, msg), flush=True)
            for w in made:
                print("      (kept %s)" % w.dir, flush=True)
    print("(%.0f s)" % (time.time() - t_all))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
