"""t_launch.py - smtpd's launch modes: the prefork supervisor (IPv4 and
IPv6, caps, signals, detach), systemd socket activation (Accept=yes and
Accept=no), tcpserver, xinetd, HAProxy and raw PROXY v1/v2 headers, and
every file in etc/.

Needs: tests/install-deps.sh (systemd-socket-activate, tcpserver,
xinetd, haproxy).  Runs as root (deliveries as another uid) or not.
Every process a test starts is stopped (its process group killed) after
the test, pass or fail; a test that leaves one running fails.
"""
import os
import re
import shlex
import signal
import smtplib
import struct
import socket
import subprocess
import threading
import time

import smtptest as S
from smtptest import LOG, TestFailure, check, eq

BOUND = 90              # seconds a test may take


# ---------------------------------------------------------------- helpers

def worker_pids(sup):
    """the supervisor's direct children that are workers (not the queue run)"""
    return [p for p in S.children(sup.pid) if S.alive(p)]


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
    for k in S.children(pid):
        st = S.proc_stat(k)
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


def smtplib_send(port, tok, host="127.0.0.1", conn=None, helo="client.test"):
    """one message via smtplib; returns (conn, code, text)"""
    if conn is None:
        conn = smtplib.SMTP(host, port, local_hostname=helo, timeout=30)
        conn.ehlo()
    conn.mail("sender@client.test")
    code, resp = conn.rcpt("alice@%s" % S.DOMAIN)
    if code != 250:
        return conn, code, resp.decode()
    code, resp = conn.data(S.message(tok))
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
    s.settimeout(S.TIMEOUT)
    if src:
        s.bind((src, 0))
    s.connect((host, port))
    if header:
        s.sendall(header)
    return s


def closed_without_greeting(sock, timeout=10):
    c = S.Client(0, sock=sock)
    data = c.read_to_eof(timeout)
    c.close()
    eq(data, b"", "bytes before the server closed")


# ---------------------------------------------------------------- supervisor

def test_supervisor_ipv4_and_ipv6(T):
    w = T.world("v4v6")
    sup, port = w.supervisor({"workers": 2}, v6=True)
    w.wait_log(LOG.listening("127.0.0.1:%d" % port))
    w.wait_log(LOG.listening("[::1]:%d" % port))
    w.deliver_one(port, "127.0.0.1")
    w.deliver_one(port, "::1")
    w.wait_log(LOG.connect("127.0.0.1"))
    w.wait_log(LOG.connect("::1"))
    eq(len(w.files()), 2, "files stored")
    w.stop_supervisor(sup)


def test_one_worker_wakes_per_connection(T):
    """two listeners: a connection wakes one idle worker, not all of them
    (EPOLLEXCLUSIVE; with poll() every idle worker woke and lost the race)"""
    w = T.world("herd")
    sup, port = w.supervisor({"workers": 6}, v6=True)
    wait_workers(sup, 6)
    time.sleep(0.5)     # each has reached its wait for a connection

    def switches():
        return {p: int(S.proc_status(p).get("voluntary_ctxt_switches", "0"))
                for p in worker_pids(sup)}
    before = switches()
    c = S.connect(port, host="::1")
    c.quit()
    c.close()
    w.wait_log(LOG.connect("::1"))
    time.sleep(0.3)
    after = switches()
    woke = [p for p in before if p in after and after[p] != before[p]]
    eq(len(woke), 1, "workers woken by one connection")
    w.stop_supervisor(sup)


def test_concurrent_50_clients_500_messages(T):
    w = T.world("c500")
    sup, port = w.supervisor({"max_sessions": 64, "max_per_addr": 64, "workers": 4})
    results, errors, busy421 = [], [], []
    lock = threading.Lock()

    def client(i):
        conn = None
        try:
            for j in range(10):
                tok = "c%02dm%d-%s" % (i, j, S.token())
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
    stopping = [l for l in w.log().splitlines() if LOG.STOPPING in l]
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
        m, rest = S.parse_stored(data)
        tok = S.token_of(rest)
        by_token.setdefault(tok, []).append((fn, data, m))
    qids = set()
    for tok, code, text in results:
        got = by_token.get(tok, [])
        eq(len(got), 1, "files holding %s" % tok)
        fn, data, m = got[0]
        S.check_token(data, tok)
        qid = text.rsplit(" ", 1)[1]
        eq(m.group("qid"), qid, "Received id of %s" % tok)
        qids.add(qid)
    eq(len(by_token), 500, "distinct tokens on disk")
    eq(len(qids), 500, "distinct queue ids")
    w.wait_log(LOG.MESSAGE_OK, count=500)
    check(LOG.DIED not in w.log(), "a worker died:\n" + w.log_tail())
    T.figs = ("500 messages in %.1f s" % (time.time() - t0))
    check(not busy421, "500 messages stored intact, but %d connections got a 421 with at "
          "most 50 sessions open (max_sessions=64, max_per_addr=64): %s" %
          (len(busy421), busy421[:2]))
    w.stop_supervisor(sup)


def test_per_address_cap(T):
    w = T.world("peraddr")
    # loopback is in trusted_networks by default, which has no cap: none here
    sup, port = w.supervisor({"max_per_addr": 2, "workers": 4, "trusted_networks": ""},
                             v6=True)
    a = S.Client(port)
    a.greeting()
    b = S.Client(port)
    b.greeting()
    c = S.Client(port)
    r = c.reply()
    eq(r.text, "421 4.7.0 Too many connections, try again later", "third session's reply")
    eq(c.read_to_eof(5), b"", "after the 421")
    c.close()
    w.wait_log(LOG.refused("127.0.0.1", "connection-limit"))
    # another address is not counted with 127.0.0.1
    v6 = S.Client(port, "::1")
    v6.greeting()
    v6.bye()
    # after one closes, a new one is served
    a.cmd("QUIT", 221)
    a.read_to_eof(5)
    a.close()
    # the worker tells the supervisor it is free only after closing the
    # client's socket, so wait for its log line before the strict check
    w.wait_log(LOG.disconnect("127.0.0.1", "-"), 5)
    end = time.time() + 5
    while True:
        d = S.Client(port)
        r = d.reply()
        if r.code == 220 or time.time() > end:
            break
        d.close()
        time.sleep(0.1)
    eq(r.code, 220, "greeting after one session closed (%s)" % r.text)
    d.bye()
    b.bye()
    w.stop_supervisor(sup)


def test_all_workers_busy_backlog(T):
    w = T.world("busy")
    sup, port = w.supervisor({"workers": 1, "max_sessions": 3, "max_per_addr": 10})
    held = []
    for i in range(3):
        c = S.Client(port)
        r = c.reply(timeout=5)
        eq(r.code, 220, "held session %d greeting" % i)
        held.append(c)
    wait_workers(sup, 3)
    fourth = S.Client(port)         # connect() completes: the kernel's backlog
    check(fourth.nothing_pending(1.5),
          "4th connection got %r while 3 sessions (max_sessions=3) are held" % fourth.buf)
    eq(len(worker_pids(sup)), 3, "workers (max_sessions caps them)")
    held[0].cmd("QUIT", 221)
    held[0].close()
    t0 = time.time()
    r = fourth.reply(timeout=5)
    eq(r.code, 220, "4th connection's greeting after one session closed")
    T.figs = ("4th served %.2f s after one closed" % (time.time() - t0))
    fourth.cmd("QUIT", 221)
    for c in held[1:] + [fourth]:
        c.close()
    w.stop_supervisor(sup)


def test_sigterm_during_burst(T):
    w = T.world("burst")
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
            tok = "b%02d-%d-%s" % (i, n, S.token())
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
    check(sup.poll() is None and LOG.STOPPING not in w.log(),
          "the supervisor was stopping before the test sent SIGTERM:\n" + w.log_tail())
    t0 = time.time()
    sup.kill(signal.SIGTERM)
    rc = sup.wait(grace + 8)
    took = time.time() - t0
    check(rc is not None, "supervisor still running %.1f s after SIGTERM" % took)
    eq(rc, 0, "exit status")
    check(took <= grace + 3, "supervisor took %.1f s to stop (grace %d)" % (took, grace))
    check(S.wait_gone(sup.members(), 3), "processes left: %r" % sup.members())
    stop.set()
    for t in threads:
        t.join(35)
    check(not any(t.is_alive() for t in threads), "clients still running")
    files = w.read_new()
    count = {}
    for fn, data in files:
        m, rest = S.parse_stored(data)
        tok = S.token_of(rest)
        count[tok] = count.get(tok, 0) + 1
    dup = [t for t, n in count.items() if n > 1]
    check(not dup, "messages stored twice: %r" % dup[:5])
    missing = [tok for tok, _c, _t in accepted if count.get(tok, 0) != 1]
    check(not missing, "%d messages got 250 but are not on disk: %r" %
          (len(missing), missing[:5]))
    stored = {}
    for fn, data in files:
        stored[S.token_of(S.parse_stored(data)[1])] = data
    for tok, _c, _t in accepted:
        S.check_token(stored[tok], tok)
    T.figs = ("%d accepted, %d refused/failed, %d files, stopped in %.1f s" %
          (len(accepted), len(other), len(files), took))


def test_sigterm_idle_session_gets_421(T):
    w = T.world("term421")
    sup, port = w.supervisor({"shutdown_grace": 2, "workers": 2})
    idle = S.Client(port)
    idle.greeting()
    idle.cmd("EHLO client.test", 250)
    busy = S.Client(port)           # mid-transaction: must be able to finish
    busy.greeting()
    busy.cmd("EHLO client.test", 250)
    busy.cmd("MAIL FROM:<s@client.test>", 250)
    busy.cmd("RCPT TO:<alice@%s>" % S.DOMAIN, 250)
    t0 = time.time()
    sup.kill(signal.SIGTERM)
    w.wait_log(LOG.grace(2), 3)
    tok = S.token()
    busy.cmd("DATA", 354)
    r = busy.end_data(S.message(tok), code=None)
    eq(r.code, 250, "DATA during the grace time (%s)" % r.text)
    r = idle.reply(timeout=6)
    took = time.time() - t0
    check(r.text.startswith("421 4.3.2 ") and r.text.endswith("Service shutting down"),
          "idle session got %r" % r.text)
    check(took <= 3.5, "421 came %.2f s after SIGTERM (grace 2)" % took)
    eq(idle.read_to_eof(5), b"", "after the 421")
    w.wait_log(LOG.lost("127.0.0.1", "shutdown"))
    rc = sup.wait(8)
    check(rc is not None, "supervisor still running")
    eq(rc, 0, "exit status")
    check(S.wait_gone(sup.members(), 3), "processes left: %r" % sup.members())
    eq(len(w.find_token(tok)), 1, "message finished in the grace time stored")
    T.figs = ("421 after %.2f s" % took)


def test_new_connection_during_grace_not_left_hanging(T):
    # SIGTERM means "stop accepting": a client connecting during the grace
    # time must be refused (or closed) at once, not be accepted by the
    # kernel and left without a greeting until the grace time is over.
    w = T.world("grace-new")
    grace = 4
    sup, port = w.supervisor({"shutdown_grace": grace, "workers": 2})
    held = S.Client(port)
    held.greeting()
    held.cmd("EHLO client.test", 250)
    sup.kill(signal.SIGTERM)
    w.wait_log(LOG.STOPPING, 3)
    time.sleep(0.2)
    t0 = time.time()
    how, waited = None, 0.0
    try:
        c = S.Client(port, timeout=grace + 4)
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


def test_killed_worker_is_replaced(T):
    w = T.world("kill")
    sup, port = w.supervisor({"workers": 2})
    ws = wait_workers(sup, 2)
    victim = ws[0]
    # the worker and its deliverer (forked once the worker runs)
    check(S.wait_until(lambda: S.descendants(victim), S.TIMEOUT), "no deliverer")
    family = [victim] + S.descendants(victim)
    os.kill(victim, signal.SIGKILL)
    w.wait_log(LOG.worker_died(victim, 9), 5)
    ws2 = wait_workers(sup, 2, exclude=(victim,))
    check(victim not in ws2, "victim still listed")
    check(S.wait_gone(family, 5), "the killed worker's deliverer lingers: %r" %
          [p for p in family if S.alive(p)])
    for _ in range(4):            # every worker, new ones included, serves
        w.deliver_one(port)
    check_no_zombies(sup)
    w.stop_supervisor(sup)


def test_sighup_reloads_without_dropping_sessions(T):
    w = T.world("hup")
    conf = w.write_config(extra={"hostname": "one.test", "workers": 2})
    sup, port = w.start_listening(lambda p: [S.smtpd_path(), "-c", conf, "-l", "127.0.0.1:%d" % p], "supervisor")
    w.wait_log(LOG.STARTED)
    old = S.Client(port)
    r = old.greeting()
    eq(r.text, "220 one.test ESMTP smtpd", "greeting before HUP")
    old.cmd("EHLO client.test", 250)
    old.cmd("MAIL FROM:<s@client.test>", 250)
    old.cmd("RCPT TO:<alice@%s>" % S.DOMAIN, 250)
    w.wait_log(LOG.connect("127.0.0.1"))
    before = wait_workers(sup, 2)     # 1 idle + the busy one
    w.write_config(extra={"hostname": "two.test", "workers": 2})
    sup.kill(signal.SIGHUP)
    w.wait_log(LOG.RELOADED, 5)
    # the old idle workers go; the busy one stays until its session ends
    end = time.time() + 5
    while time.time() < end and len([p for p in before if S.alive(p)]) > 1:
        time.sleep(0.05)
    left = [p for p in before if S.alive(p)]
    eq(len(left), 1, "old workers still alive after HUP (want only the busy one)")
    tok_new, _, _ = w.deliver_one(port, by="two.test")
    new = S.Client(port)
    eq(new.greeting().text, "220 two.test ESMTP smtpd", "greeting after HUP")
    new.bye()
    # the session from before the HUP completes
    tok = S.token()
    old.cmd("DATA", 354)
    r = old.end_data(S.message(tok), code=None)
    eq(r.code, 250, "DATA on the session opened before HUP (%s)" % r.text)
    old.bye()
    got = w.find_token(tok)
    eq(len(got), 1, "old session's message stored")
    S.check_token(got[0][1], tok, by="one.test")
    check(S.wait_gone(left, 5), "old busy worker %r did not exit after its session" % left)
    check_no_zombies(sup)
    check(LOG.DIED not in w.log(), "a worker died:\n" + w.log_tail())
    w.stop_supervisor(sup)


def test_sighup_with_bad_config_keeps_old(T):
    w = T.world("hupbad")
    conf = w.write_config(extra={"hostname": "one.test", "workers": 1})
    sup, port = w.start_listening(lambda p: [S.smtpd_path(), "-c", conf, "-l", "127.0.0.1:%d" % p], "supervisor")
    with open(conf, "a") as f:
        f.write("no_such_setting = 1\n")
    sup.kill(signal.SIGHUP)
    w.wait_log(LOG.RELOAD_BAD, 5)
    check(sup.poll() is None, "supervisor exited after a bad HUP")
    w.deliver_one(port, by="one.test")
    w.stop_supervisor(sup)


def test_sighup_with_o_settings(T):
    # -c FILE plus -o settings on the command line (as "make demo" and most
    # hand-started supervisors have): SIGHUP must still re-read FILE
    w = T.world("hup-o")
    conf = w.path("hup.conf")
    with open(conf, "w") as f:
        f.write("hostname = one.test\n")
    opts = ["-e"]
    for k, v in w.settings.items():
        if k != "hostname":
            opts += ["-o", "%s=%s" % (k, v)]
    sup, port = w.start_listening(lambda p: [S.smtpd_path(), "-c", conf] + opts + ["-l", "127.0.0.1:%d" % p],
        "supervisor")
    w.wait_log(LOG.STARTED)
    c = S.Client(port)
    eq(c.greeting().text, "220 one.test ESMTP smtpd", "greeting before HUP")
    c.close()
    with open(conf, "w") as f:
        f.write("hostname = two.test\n")
    sup.kill(signal.SIGHUP)
    try:
        w.wait_log(LOG.RELOAD_ANY, 5)
    finally:
        errs = [l for l in w.log().splitlines() if "bad setting" in l or "has errors" in l]
    check(not errs, "SIGHUP with -o settings: %s" % " / ".join(errs))
    time.sleep(0.3)
    w.deliver_one(port, by="two.test")
    w.stop_supervisor(sup)


def test_spare_workers_retired_under_churn(T):
    # Bursts of sessions make the supervisor fork workers (workers=1 kept
    # idle); when a burst ends it retires the spares with SIGTERM while new
    # connections arrive.  Every connection must get 220 (nothing is over
    # a cap) and the supervisor must keep running.
    w = T.world("churn")
    sup, port = w.supervisor({"workers": 1, "max_sessions": 64, "max_per_addr": 64})
    stats = {}

    def greet(c):
        if LOG.STOPPING in w.log():
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
                c = S.Client(port, timeout=5)
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
                news.append(S.Client(port, timeout=5))
            except OSError as e:
                stats["connect: %s" % e] = stats.get("connect: %s" % e, 0) + 1
        for c in held:
            c.close()
        for c in news:
            k = greet(c)
            stats[k] = stats.get(k, 0) + 1
            c.close()
        if sup.poll() is not None or LOG.STOPPING in w.log():
            break
    stopping = [l for l in w.log().splitlines() if LOG.STOPPING in l]
    check(not stopping, "the supervisor stopped by itself (no SIGTERM was sent): %r; "
          "replies: %r" % (stopping, stats))
    check(set(stats) == {"220"}, "replies while spares were retired: %r; log: %r" %
          (stats, [l for l in w.log().splitlines() if "refused" in l][:3]))
    w.stop_supervisor(sup)


def test_worker_retirement(T):
    w = T.world("retire")
    sup, port = w.supervisor({"workers": 1, "worker_connections": 2})
    for _ in range(5):
        w.deliver_one(port)
    eq(len(w.files()), 5, "files")
    pids = set(re.findall(LOG.SESSION_PID, w.log()))
    check(len(pids) >= 3, "5 sessions by %d workers with worker_connections=2" % len(pids))
    check(LOG.DIED not in w.log(), "a worker died:\n" + w.log_tail())
    check_no_zombies(sup)
    w.stop_supervisor(sup)


def test_workers_go_with_a_killed_supervisor(T):
    """SIGKILL to the supervisor: every worker (PR_SET_PDEATHSIG) and its
    deliverer exit on their own, and nothing accepts on the port"""
    w = T.world("orphans")
    sup, port = w.supervisor({"workers": 3})
    wait_workers(sup, 3)

    def whole_tree():   # each worker forks its deliverer once it runs itself
        t = S.descendants(sup.pid)
        return t if len(t) >= 6 else None
    tree = S.wait_until(whole_tree, S.TIMEOUT)
    check(tree, "3 workers and their deliverers: %r" % S.descendants(sup.pid))
    w.deliver_one(port)
    os.kill(sup.pid, signal.SIGKILL)
    check(S.wait_gone(tree, 10), "left after the supervisor died: %r" %
          [p for p in tree if S.alive(p)])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        check(False, "port %d still accepts with no supervisor" % port)
    except OSError:
        pass


def test_no_zombies(T):
    w = T.world("zombie")
    # -c only: a reload with -o settings fails (see sighup_with_o_settings)
    conf = w.write_config(extra={"workers": 2, "worker_connections": 1, "queue_interval": 1})
    sup, port = w.start_listening(lambda p: [S.smtpd_path(), "-c", conf, "-l", "127.0.0.1:%d" % p], "supervisor")
    for _ in range(6):
        w.deliver_one(port)
    for _ in range(50):           # a worker may exit on its own (worker_connections=1)
        try:
            victim = wait_workers(sup, 2)[0]
            os.kill(victim, signal.SIGKILL)
            break
        except ProcessLookupError:
            time.sleep(0.05)
    # a SIGKILLed worker blocked in accept() can still take the next
    # connection from the kernel's queue (accept checks the queue before
    # the signal) and then die with it: wait until it is dead
    check(S.wait_gone([victim], 10), "worker %d survived SIGKILL" % victim)
    sup.kill(signal.SIGHUP)
    w.wait_log(LOG.RELOADED)
    for _ in range(3):
        w.deliver_one(port)
    time.sleep(1.5)               # a queue run or two (queue_interval=1)
    check_no_zombies(sup, settle=1.5)
    w.stop_supervisor(sup)


def test_detach_pid_file(T):
    w = T.world("detach")
    pidf = w.path("smtpd.pid")
    port = S.free_port()
    pr = w.spawn(w.argv({"pid_file": pidf}, flags=("-d", "-e")) + ["-l", "127.0.0.1:%d" % port],
                 name="detach")
    rc = pr.wait(10)
    eq(rc, 0, "foreground process exit status")
    end = time.time() + 5
    while time.time() < end and not (os.path.exists(pidf) and open(pidf).read().endswith("\n")):
        time.sleep(0.05)
    check(os.path.exists(pidf), "no pid file; log:\n" + w.log_tail())
    pid = int(open(pidf).read())
    S.add_group(pid)              # setsid(): its own session, for cleanup
    check(pid != pr.pid and S.alive(pid), "pid file names %d" % pid)
    st = S.proc_stat(pid)
    eq(st[3], pid, "detached supervisor is a session leader")
    check(S.wait_listen(port), "not listening")
    w.wait_log(LOG.started_pid(pid))
    w.deliver_one(port)
    members = S.group_members(pid)
    os.kill(pid, signal.SIGTERM)
    check(S.wait_gone([pid] + members, 10), "still running after SIGTERM: %r" %
          [p for p in [pid] + members if S.alive(p)])
    end = time.time() + 3
    while time.time() < end and os.path.exists(pidf):
        time.sleep(0.05)
    check(not os.path.exists(pidf), "pid file not removed")


# ---------------------------------------------------------------- superservers

def test_systemd_socket_activate_accept_yes(T):
    S.need(S.SOCKET_ACTIVATE)
    w = T.world("sd-accept")
    sa, port = w.start_listening(lambda p: [S.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p, "--accept"] + w.argv(),
        "socket-activate")
    w.deliver_one(port)
    w.deliver_one(port)
    pids = set(re.findall(LOG.SESSION_PID + r"127\.0\.0\.1(?: |$)", w.log(), re.M))
    eq(len(pids), 2, "one smtpd process per connection")
    check(LOG.STARTED not in w.log(), "a supervisor started under Accept=yes")
    sa.stop()


def test_systemd_socket_activate_accept_no(T):
    S.need(S.SOCKET_ACTIVATE)
    w = T.world("sd-noaccept")
    sa, port = w.start_listening(lambda p: [S.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p] + w.argv({"workers": 2}),
        "socket-activate")
    # systemd-socket-activate execs smtpd on the first connection
    w.deliver_one(port)
    w.wait_log(LOG.started_pid(sa.pid))
    w.deliver_one(port)
    eq(len(w.files()), 2, "files")
    check(LOG.LISTENING not in w.log(), "supervisor opened its own socket")
    w.stop_supervisor(sa)


def tcpserver_argv(port, rest):
    return ["tcpserver", "-v", "-R", "-H", "-l", "localhost", "127.0.0.1", str(port)] + rest


def test_tcpserver_tcpremoteip(T):
    S.need("tcpserver")
    w = T.world("tcpserver")
    ts, port = w.start_listening(lambda p: tcpserver_argv(p, w.argv()), "tcpserver")
    w.deliver_one(port, addr="127.0.0.1")
    w.wait_log(LOG.connect("127.0.0.1"))
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
    S.need("/usr/sbin/xinetd")
    for _ in range(5):
        port = S.free_port()
        cfg = xinetd_config(w, port, attrs, S.smtpd_path(), server_args)
        pr = w.spawn(["/usr/sbin/xinetd", "-dontfork", "-f", cfg, "-pidfile",
                      w.path("xinetd.pid")], name="xinetd")
        if S.wait_listen(port, proc=pr) and pr.poll() is None:
            return pr, port
        pr.stop()
    raise TestFailure("xinetd did not start; log:\n" + w.log_tail())


def test_xinetd_delivery(T):
    w = T.world("xinetd")
    _name, attrs = parse_xinetd(os.path.join(S.ETC_DIR, "xinetd.smtpd"))
    # xinetd puts the socket on fds 0, 1 and 2: no -e (it would talk to the
    # client); smtpd logs to syslog there.
    args = " ".join(w.option_args(stderr_log=False))
    pr, port = run_xinetd(w, attrs, args)
    w.deliver_one(port, addr="127.0.0.1")
    w.deliver_one(port, addr="127.0.0.1")
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
    S.need("haproxy")
    r = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True,
                       timeout=20)
    eq(r.returncode, 0, "haproxy -c -f %s (%s)" % (cfg, (r.stdout + r.stderr)[-500:]))
    pr = w.spawn(["haproxy", "-f", cfg, "-db"], name="haproxy",
                 log_path=w.path("haproxy.log"))
    for p in ports:
        if not S.wait_listen(p, proc=pr):
            raise TestFailure("haproxy not listening on %d: %s" %
                              (p, open(w.path("haproxy.log")).read()[-800:]))
    return pr


def test_haproxy_send_proxy_v1_and_v2(T):
    S.need("haproxy")
    w = T.world("haproxy")
    sup, sport = w.supervisor({"proxy_trusted": "127.0.0.1", "workers": 2})
    p1, p2 = S.free_port(), S.free_port()
    while p2 == p1:
        p2 = S.free_port()
    cfg = haproxy_cfg(w, [(p1, sport, "send-proxy"), (p2, sport, "send-proxy-v2")])
    ha = run_haproxy(w, cfg, [p1, p2])
    w.deliver_one(p1, addr="127.0.0.1")
    w.deliver_one(p2, addr="127.0.0.1")
    w.wait_log(LOG.proxy("127.0.0.1", "127.0.0.1"), count=2)
    w.wait_log(LOG.connect("127.0.0.1"), count=2)
    check("refused" not in w.log(), "a connection was refused:\n" + w.log_tail())
    ha.stop()
    w.stop_supervisor(sup)


def test_proxy_raw_headers(T):
    w = T.world("proxyraw")
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
        n = w.log_count(LOG.connect(logaddr))
        try:
            w.deliver_one(port, sock=raw_conn(port, hdr), addr=rcvd)
            w.wait_log(LOG.connect(logaddr), count=n + 1)
        except TestFailure as e:
            raise TestFailure("%s: %s" % (what, e))
    w.wait_log(LOG.proxy("203.0.113.7", "127.0.0.1"))
    w.wait_log(LOG.proxy("198.51.100.9", "127.0.0.1"))
    # the header and the first command in one packet: the command is not lost
    s = raw_conn(port, proxy_v1("203.0.113.8") + b"EHLO pipelined.test\r\n")
    c = S.Client(0, sock=s)
    c.greeting()
    eq(c.reply().code, 250, "EHLO sent with the header")
    c.bye()
    w.stop_supervisor(sup)


def test_proxy_malformed_headers(T):
    w = T.world("proxybad")
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
            w.wait_log(LOG.refused("127.0.0.1", "bad-proxy-header"), 5, count=n0)
        except TestFailure as e:
            raise TestFailure("%s: %s" % (what, e))
    # a client that sends nothing: closed after cmd_timeout, no greeting
    t0 = time.time()
    closed_without_greeting(raw_conn(port, b""), 8)
    check(time.time() - t0 < 6, "silent client held %.1f s (cmd_timeout=2)" % (time.time() - t0))
    w.wait_log(LOG.refused("127.0.0.1", "bad-proxy-header"), 5, count=n0 + 1)
    check("connect client=" not in w.log(), "a session started:\n" + w.log_tail())
    eq(w.files(), [], "files stored")
    # the workers are still fine
    w.deliver_one(port, sock=raw_conn(port, proxy_v1("203.0.113.7")), addr="203.0.113.7")
    w.stop_supervisor(sup)


def test_proxy_untrusted_peer(T):
    w = T.world("proxyuntrusted")
    sup, port = w.supervisor({"proxy_trusted": "127.0.0.2", "workers": 2})
    s = raw_conn(port, proxy_v1("203.0.113.7") +
                 b"EHLO spoof.test\r\nMAIL FROM:<a@client.test>\r\n")
    closed_without_greeting(s)
    w.wait_log(LOG.refused("127.0.0.1", "untrusted-proxy-peer"))
    s = raw_conn(port, proxy_v2("198.51.100.9"))
    closed_without_greeting(s)
    w.wait_log(LOG.refused("127.0.0.1", "untrusted-proxy-peer"), count=2)
    check("203.0.113.7" not in w.log() and "198.51.100.9" not in w.log(),
          "spoofed address in the log:\n" + w.log_tail())
    eq(w.files(), [], "files stored")
    # the trusted address (127.0.0.2, a loopback source) is served
    w.deliver_one(port, sock=raw_conn(port, proxy_v1("203.0.113.7"), src="127.0.0.2"),
                addr="203.0.113.7")
    w.wait_log(LOG.proxy("203.0.113.7", "127.0.0.2"))
    w.stop_supervisor(sup)


def test_proxy_per_address_cap_uses_header_address(T):
    w = T.world("proxycap")
    sup, port = w.supervisor({"proxy_trusted": "127.0.0.1", "workers": 3,
                              "max_per_addr": 1})
    a = S.Client(0, sock=raw_conn(port, proxy_v1("203.0.113.7")))
    a.greeting()
    b = S.Client(0, sock=raw_conn(port, proxy_v1("203.0.113.7", sport=4001)))
    eq(b.reply().text, "421 4.7.0 Too many connections, try again later", "same source")
    b.close()
    w.wait_log(LOG.refused("203.0.113.7", "connection-limit"))
    c = S.Client(0, sock=raw_conn(port, proxy_v2("203.0.113.8")))
    eq(c.greeting().code, 220, "other source, same proxy")
    c.bye()
    a.bye()
    w.stop_supervisor(sup)


def test_proxy_pending_headers_do_not_block_others(T):
    # Two connections from the trusted proxy whose PROXY header has not
    # arrived yet occupy both workers (workers=2).  A third connection with
    # a header must still be served promptly (max_sessions=10 allows more
    # workers), not wait until the first two time out (cmd_timeout).
    w = T.world("proxypending")
    timeout = 6
    sup, port = w.supervisor({"proxy_trusted": "127.0.0.1", "workers": 2,
                              "max_sessions": 10, "cmd_timeout": timeout})
    silent = [raw_conn(port, b"") for _ in range(2)]
    time.sleep(0.3)
    t0 = time.time()
    c = S.Client(0, sock=raw_conn(port, proxy_v1("203.0.113.7")), timeout=timeout + 4)
    r = c.reply(timeout=timeout + 4)
    took = time.time() - t0
    eq(r.code, 220, "greeting")
    c.bye()
    for s in silent:
        s.close()
    check(took < 2, "greeting came after %.1f s: the two connections waiting for their "
          "header held both workers until cmd_timeout=%d (the supervisor counts them idle "
          "and forks no other worker)" % (took, timeout))
    w.stop_supervisor(sup)


# ---------------------------------------------------------------- etc/ files

def parse_unit(name):
    """{section: {key: value}} of a systemd unit file in etc/"""
    out, sec = {}, None
    for line in open(os.path.join(S.ETC_DIR, name)):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            sec = out.setdefault(line[1:-1], {})
        elif "=" in line and sec is not None:
            k, v = line.split("=", 1)
            sec[k.strip()] = v.strip()
    return out


def socket_units(socket_name, service_name, accept):
    """etc/'s socket unit (port 25, Accept=accept) and its service unit, parsed"""
    S.need(S.SOCKET_ACTIVATE)
    sock = parse_unit(socket_name)
    eq(sock["Socket"].get("Accept"), accept, "%s Accept" % socket_name)
    eq(sock["Socket"].get("ListenStream"), "25", "%s ListenStream" % socket_name)
    return parse_unit(service_name)


def etc_file(name, *snippets):
    """the text of etc/NAME, which holds every snippet the test rewrites"""
    with open(os.path.join(S.ETC_DIR, name)) as f:
        src = f.read()
    check(all(x in src for x in snippets), "unexpected etc/%s" % name)
    return src


def etc_config(w, log_stderr=True, extra=None):
    """etc/smtpd.conf with the test's values; returns its path"""
    vals = {"hostname": S.HOST, "local_domains": S.DOMAIN, "postmaster": "alice",
            "spool_dir": w.spool, "virtual_users": w.users_file,
            "queue_interval": "0"}
    if S.SESSION_USER:
        vals["session_user"] = S.SESSION_USER
    if log_stderr:
        vals["log"] = "stderr"
    vals.update(extra or {})
    out, done = [], set()
    for line in open(os.path.join(S.ETC_DIR, "smtpd.conf")):
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
    out, i = [S.smtpd_path()], 1
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
    check(S.wait_gone(pr.members(), 5), "left after main exited: %r" % pr.members())
    return time.time() - t0


def exec_reload(unit, pid):
    cmd = unit["Service"]["ExecReload"].replace("$MAINPID", str(pid))
    r = subprocess.run(shlex.split(cmd), timeout=10)
    eq(r.returncode, 0, "ExecReload %s" % cmd)


def test_etc_smtpd_conf(T):
    w = T.world("etc-conf")
    conf = etc_config(w)
    r = subprocess.run([S.smtpd_path(), "-c", conf, "-n"], capture_output=True, text=True, timeout=10)
    eq(r.returncode, 0, "smtpd -c etc-smtpd.conf -n (%s)" % r.stderr.strip())
    check("hostname = %s" % S.HOST in r.stdout, "-n output: %s" % r.stdout[:300])
    # the file as shipped parses too (its postmaster may not exist here)
    r = subprocess.run([S.smtpd_path(), "-c", os.path.join(S.ETC_DIR, "smtpd.conf"), "-n"],
                       capture_output=True, text=True, timeout=10)
    check("hostname = mx.example.org" in r.stdout and "bad setting" not in r.stderr and
          "usage" not in r.stderr, "etc/smtpd.conf: rc %d %s" % (r.returncode, r.stderr))


def test_etc_smtpd_socket_accept_yes(T):
    svc = socket_units("smtpd.socket", "smtpd@.service", "yes")
    w = T.world("etc-socket")
    argv = exec_argv(svc["Service"]["ExecStart"], etc_config(w))
    sa, port = w.start_listening(lambda p: [S.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p, "--accept"] + argv,
        "socket-activate")
    w.deliver_one(port)
    w.wait_log(LOG.connect("127.0.0.1"))
    sa.stop()


def test_etc_smtpd_activated_accept_no(T):
    svc = socket_units("smtpd-activated.socket", "smtpd-activated.service", "no")
    w = T.world("etc-activated")
    conf = etc_config(w)
    argv = exec_argv(svc["Service"]["ExecStart"], conf)
    sa, port = w.start_listening(lambda p: [S.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p] + argv, "socket-activate")
    w.deliver_one(port)
    w.wait_log(LOG.started_pid(sa.pid))
    # ExecReload with a changed hostname
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("hostname = %s" % S.HOST, "hostname = reloaded.test"))
    exec_reload(svc, sa.pid)
    w.wait_log(LOG.RELOADED)
    time.sleep(0.3)
    w.deliver_one(port, by="reloaded.test")
    took = mixed_stop(w, sa, int(svc["Service"].get("TimeoutStopSec", "60")))
    check(took < 5, "stop took %.1f s" % took)


def test_etc_smtpd_service_listens_itself(T):
    svc = parse_unit("smtpd.service")
    w = T.world("etc-service")
    conf = etc_config(w)
    sup, port = w.start_listening(lambda p: exec_argv(svc["Service"]["ExecStart"], conf,
                               ["127.0.0.1:%d" % p, "[::1]:%d" % p]),
        "smtpd.service")
    check(S.wait_listen(port, 6), "not listening on [::1]")
    w.wait_log(LOG.STARTED)
    w.deliver_one(port, "127.0.0.1")
    w.deliver_one(port, "::1")
    exec_reload(svc, sup.pid)
    w.wait_log(LOG.RELOADED)
    w.deliver_one(port)
    took = mixed_stop(w, sup, int(svc["Service"].get("TimeoutStopSec", "60")))
    check(took < 5, "stop took %.1f s" % took)


def test_etc_xinetd_smtpd(T):
    name, attrs = parse_xinetd(os.path.join(S.ETC_DIR, "xinetd.smtpd"))
    eq(name, "smtp", "service name")
    eq(attrs.get("server"), "/usr/local/sbin/smtpd", "server")
    w = T.world("etc-xinetd")
    args = attrs["server_args"].replace("/etc/smtpd.conf", etc_config(w, log_stderr=False))
    pr, port = run_xinetd(w, attrs, args)
    w.deliver_one(port)
    pr.stop()


def test_etc_inetd_conf(T):
    line = [l for l in open(os.path.join(S.ETC_DIR, "inetd.conf"))
            if l.strip() and not l.lstrip().startswith("#")]
    eq(len(line), 1, "service lines in inetd.conf")
    f = line[0].split()
    eq(f[:5], ["smtp", "stream", "tcp", "nowait", "root"], "inetd.conf fields")
    eq(f[5], "/usr/local/sbin/smtpd", "server path")
    eq(f[6], "smtpd", "argv[0]")
    w = T.world("etc-inetd")
    args = [a.replace("/etc/smtpd.conf", etc_config(w)) for a in f[7:]]
    inetd = "/usr/sbin/inetd"
    if os.path.exists(inetd) and os.path.exists("/usr/share/doc/openbsd-inetd"):
        def mk(p):
            cfg = w.path("inetd.conf")
            with open(cfg, "w") as c:
                c.write("127.0.0.1:%d\t%s\t%s\t%s\t%s\t%s\t%s\n" % (
                    p, f[1], f[2], f[3], f[4], S.smtpd_path(),
                    " ".join(["smtpd"] + [a.replace("/etc/smtpd.conf", etc_config(
                        w, log_stderr=False)) for a in f[7:]])))
            return [inetd, "-d", cfg]
        pr, port = w.start_listening(mk, "inetd")
    else:
        # no openbsd-inetd here (xinetd is the superserver installed): the
        # same argv under tcpserver, which also gives fd 0/1 per connection
        S.need("tcpserver")
        pr, port = w.start_listening(lambda p: tcpserver_argv(p, [S.smtpd_path()] + args),
                                   "tcpserver")
    w.deliver_one(port)
    pr.stop()


def test_etc_tcpserver_sh(T):
    S.need("tcpserver")
    src = etc_file("tcpserver.sh", "exec tcpserver", " 0.0.0.0 25 ")
    w = T.world("etc-tcpserver")
    conf = etc_config(w)

    def mk(p):
        s = (src.replace(" 0.0.0.0 25 ", " 127.0.0.1 %d " % p)
             .replace("/usr/local/sbin/smtpd", S.smtpd_path())
             .replace("/etc/smtpd.conf", conf))
        return ["sh", w.write_file("tcpserver.sh", s)]
    pr, port = w.start_listening(mk, "tcpserver.sh")
    w.deliver_one(port)
    w.wait_log(LOG.connect("127.0.0.1"))
    w.wait_log(r"tcpserver: status: ")
    pr.stop()


def test_etc_haproxy_cfg(T):
    S.need("haproxy")
    src = etc_file("haproxy.cfg", "bind :25", "127.0.0.1:2525")
    w = T.world("etc-haproxy")
    conf = etc_config(w, extra={"proxy_trusted": "127.0.0.1"})
    sup, sport = w.start_listening(lambda p: [S.smtpd_path(), "-c", conf, "-l", "127.0.0.1:%d" % p],
                                 "supervisor")
    fport = S.free_port()
    cfg = w.path("haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(src.replace("bind :25", "bind 127.0.0.1:%d" % fport)
                .replace("127.0.0.1:2525", "127.0.0.1:%d" % sport))
    r = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True, timeout=20)
    warn = [l for l in (r.stdout + r.stderr).splitlines() if "WARNING" in l]
    ha = run_haproxy(w, cfg, [fport])
    w.deliver_one(fport, addr="127.0.0.1")
    w.wait_log(LOG.proxy("127.0.0.1", "127.0.0.1"))
    ha.stop()
    w.stop_supervisor(sup)
    if warn:
        T.figs = ("haproxy -c warns: %s" % "; ".join(x.split(": ", 1)[-1] for x in warn))


