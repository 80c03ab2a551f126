"""t_robust.py - smtpd's robustness tests: crashes, abusive clients, load, memory.

Each test's figures (times, peak RSS, counts) are printed at the end of
the run.  The inetd-style listener and the temp world are the shared
library's (tests/lib/smtptest.py); the prefork supervisor runs in its own
process group, so the whole tree can be stopped by that group id.

Memory figures are VmHWM (peak RSS) read from /proc while the process is
alive: ru_maxrss of a child spawned from Python is useless, since Linux
carries the parent's (Python's) high-water mark across fork/vfork + exec.
test_memory_bound is marked `memory` (make check-asan leaves it out); under
ASan the per-session RSS limit is not applied either (the figures are shown).
"""
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import traceback

import pytest

import smtptest as S
from smtptest import (DOMAIN, MAIL_GID, MAIL_UID, SESSION_GID, SESSION_UID,
                      TestFailure, check, eq, parse_replies, Reader)

MEM_LIMIT_KB = 8 * 1024     # peak RSS allowed for a session or its deliverer
# crash_durability streams for this long (and at least 500 messages)
STREAM_SECONDS = float(os.environ.get("ROBUST_STREAM_SECONDS", "30"))
SUITE_SEED = int(os.environ.get("ROBUST_SEED", str(int(time.time()))))


# ---------------------------------------------------------------- memory watch

class HwmSampler(threading.Thread):
    """samples VmHWM of a session process and of its children (the
    deliverer) every 20 ms until the session is gone or stop() is called"""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.session_kb = 0
        self.deliverer_kb = 0
        self.ev = threading.Event()

    def sample(self):
        h = S.vm_hwm(self.pid)
        if h is None:
            return False
        self.session_kb = max(self.session_kb, h)
        for c in S.children(self.pid):
            hc = S.vm_hwm(c)
            if hc is not None:
                self.deliverer_kb = max(self.deliverer_kb, hc)
        return True

    def run(self):
        while not self.ev.is_set() and self.sample():
            self.ev.wait(0.02)

    def stop(self):
        self.sample()
        self.ev.set()
        self.join(timeout=2)

    def figures(self):
        return "rss session=%dkB deliverer=%dkB%s" % (
            self.session_kb, self.deliverer_kb, " (ASan: no limit)" if S.sanitized() else "")

    def check(self, limit=MEM_LIMIT_KB):
        check(self.session_kb > 0, "no VmHWM sample of the session was taken")
        if S.sanitized():
            return      # ASan's shadow memory: the RSS limit means nothing
        check(self.session_kb < limit, "session peak RSS %d kB >= %d kB" %
              (self.session_kb, limit))
        check(self.deliverer_kb < limit, "deliverer peak RSS %d kB >= %d kB" %
              (self.deliverer_kb, limit))


# ---------------------------------------------------------------- messages

def make_message(token, rcpts, size, rnd):
    """a message whose Subject and every body line carry the token; the
    last line is "END <token>".  Returns CRLF bytes (no line starts with '.')"""
    lines = ["From: <robust@client.test>",
             "To: " + ", ".join("<%s>" % r for r in rcpts),
             "Subject: robust %s" % token,
             "Message-ID: <%s@client.test>" % token,
             ""]
    n = 0
    filler = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(60))
    total = sum(len(x) + 2 for x in lines)
    while total < size:
        ln = "%s %06d %s" % (token, n, filler)
        lines.append(ln)
        total += len(ln) + 2
        n += 1
    lines.append("END %s" % token)
    return ("\r\n".join(lines) + "\r\n").encode()


SUBJ_RE = re.compile(rb"^Subject: robust (\S+)$", re.M)


def honest_delivery(env, user="alice", limit=5.0):
    """a well-behaved client delivers one message; returns seconds taken"""
    t0 = time.time()
    env.deliver_one(env.port, user=user, timeout=limit + 5)
    dt = time.time() - t0
    check(dt < limit, "honest client took %.1fs (limit %.0fs)" % (dt, limit))
    return dt


# ---------------------------------------------------------------- inetd sessions

def wait_exit(p, timeout, what="session"):
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure("%s pid %d still running after %.0fs" % (what, p.pid, timeout))


class Abusive:
    """one inetd-style session under watch: connect, find its process,
    sample its memory; end() checks exit, memory, an honest client next"""

    def __init__(self, env, rcvbuf=None, timeout=15.0, greet=True, ehlo=None):
        self.env = env
        n = len(env.procs)
        self.conn = S.Client(env.port, timeout=timeout, rcvbuf=rcvbuf)
        self.proc = env.next_session(n)
        self.sampler = HwmSampler(self.proc.pid)
        self.sampler.start()
        self.t0 = time.time()
        if greet:
            self.conn.greeting()
            # one sample now, while the session waits for our next line: a
            # session that then ends within a millisecond (test_half_close)
            # may be gone before the sampler thread first runs on a busy CPU
            self.sampler.sample()
        if ehlo:
            self.conn.helo(ehlo)

    def end(self, exit_within=10.0, honest=True):
        rc = wait_exit(self.proc, exit_within)
        self.sampler.stop()
        self.conn.close()
        eq(rc, 0, "session exit status")
        self.sampler.check()
        figs = self.sampler.figures()
        if honest:
            figs += " honest=%.2fs" % honest_delivery(self.env)
        return figs


def slow_env(T, **kw):
    opts = {"cmd_timeout": "2", "data_timeout": "2"}
    opts.update(kw.pop("opts", {}))
    return T.env(opts=opts, **kw)


def spool_clean(env):
    eq(env.spool_files(), [], "spool files left")


@pytest.mark.bound(30)
def test_silent_client(T):
    """connect and say nothing: 421 4.4.2 after cmd_timeout; same in DATA"""
    env = slow_env(T)
    a = Abusive(env)
    t0 = time.time()
    # before EHLO no enhanced codes are offered, so none is sent
    lines = a.conn.expect(421, prefix="421 mx.test Timeout", timeout=8, what="idle client")
    dt = time.time() - t0
    check(1.5 <= dt <= 4.0, "idle timeout after %.2fs, want ~2s" % dt)
    a.conn.read_to_eof(5)
    figs = "cmd_timeout_after=%.2fs " % dt + a.end()
    # silent after EHLO: 421 4.4.2
    a = Abusive(env, ehlo="quiet.test")
    t0 = time.time()
    lines = a.conn.expect(421, prefix="421 4.4.2", timeout=8, what="idle client after EHLO")
    dt = time.time() - t0
    check(1.5 <= dt <= 4.0, "idle timeout after %.2fs, want ~2s" % dt)
    a.conn.read_to_eof(5)
    a.end(honest=False)
    # silent in the middle of DATA: data_timeout, nothing stored
    a = Abusive(env, ehlo="slow.test")
    c = a.conn
    c.open_data("s@client.test", "bob@" + DOMAIN)
    c.send(b"Subject: stalled\r\n\r\nhalf a messa")
    t0 = time.time()
    c.expect(421, prefix="421 4.4.2", timeout=8, what="client silent in DATA")
    dt = time.time() - t0
    check(1.5 <= dt <= 4.0, "data timeout after %.2fs, want ~2s" % dt)
    c.read_to_eof(5)
    figs += " data_timeout_after=%.2fs " % dt + a.end(honest=False)
    env.assert_nothing_stored(["bob"])
    spool_clean(env)
    T.figs = figs + " " + lines.lines[-1]


@pytest.mark.bound(40)
def test_trickle(T):
    """a command trickled at 1 byte/0.5 s is served (the timeout is per
    read); trickling slower than cmd_timeout gets 421 4.4.2"""
    env = slow_env(T)
    a = Abusive(env, ehlo="slow.test")
    c = a.conn
    t0 = time.time()
    for b in b"NOOP\r\n":
        c.send(bytes([b]))
        time.sleep(0.5)
    c.expect(250, prefix="250 2.0.0", timeout=5, what="trickled NOOP")
    took = time.time() - t0
    c.send(b"NO")
    time.sleep(2.6)                     # slower than cmd_timeout=2
    t1 = time.time()
    try:
        c.send(b"O")
    except OSError:
        pass
    lines = c.expect(421, prefix="421 4.4.2", timeout=5, what="trickle slower than the timeout")
    c.read_to_eof(5)
    check(time.time() - t1 < 1.0, "421 came late")
    figs = "noop_trickled_over=%.1fs " % took + a.end()
    T.figs = figs


@pytest.mark.bound(40)
def test_pipelining_5000(T):
    """5000 NOOPs pipelined without waiting: 5000 replies in order"""
    env = slow_env(T)
    a = Abusive(env, greet=False)
    n = 5000
    deadline = time.time() + 25
    rd = Reader(a.conn.sock, deadline)
    payload = b"EHLO pipe.test\r\n" + b"NOOP\r\n" * n + b"QUIT\r\n"
    a.conn.sock.settimeout(20)
    a.conn.sock.sendall(payload)
    rd.join(timeout=max(0.1, deadline - time.time()))
    check(rd.eof, "session did not end after QUIT (got %d bytes)" % len(rd.data))
    reps = parse_replies(rd.data)
    codes = [c for c, _ in reps]
    check(codes[:2] == [220, 250], "start of replies %r" % reps[:3])
    noops = reps[2:2 + n]
    eq(sum(1 for c, l in noops if c == 250 and l == "250 2.0.0 Ok"), n, "NOOP replies")
    eq(reps[2 + n:], [(221, "221 2.0.0 mx.test closing connection")], "after the NOOPs")
    T.figs = "replies=%d " % len(reps) + a.end()


@pytest.mark.bound(60)
def test_unread_replies(T):
    """a client that pipelines a lot and never reads the replies: the
    session must still end within a bounded time (cmd_timeout 2 s), not
    block in write(2) forever holding a process"""
    env = slow_env(T)
    a = Abusive(env, rcvbuf=4096, greet=False)
    s = a.conn.sock
    s.setblocking(False)
    chunk = b"NOOP\r\n" * 2000
    sent = 0
    end = time.time() + 10
    stalled_since = None
    while time.time() < end and sent < 32 * 1024 * 1024:
        try:
            sent += s.send(chunk)
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = time.time()
            elif time.time() - stalled_since > 1.0:
                break               # both directions are full
            time.sleep(0.01)
        except OSError:
            break                   # the session ended
    t0 = time.time()
    try:
        rc = a.proc.wait(timeout=12)
    except subprocess.TimeoutExpired:
        rc = None
    waited = time.time() - t0
    st = S.proc_status(a.proc.pid).get("State", "gone")
    wchan = ""
    try:
        with open("/proc/%d/wchan" % a.proc.pid) as f:
            wchan = f.read()
    except OSError:
        pass
    a.sampler.stop()
    check(rc is not None, "session still running %.0fs after the client stopped reading "
          "(sent %d bytes of NOOPs; session state %s, wchan %s): no write timeout" %
          (waited, sent, st, wchan))
    T.figs = "sent=%dB ended_after=%.1fs " % (sent, waited) + a.end()


@pytest.mark.bound(30)
def test_nul_bytes(T):
    """NUL octets in commands: 500 5.5.2, the session stays in step"""
    env = slow_env(T)
    a = Abusive(env, ehlo="nul.test")
    c = a.conn
    for bad in (b"NOOP\x00\r\n", b"\x00\r\n", b"MAIL FROM:<a\x00@b.test>\r\n",
                b"EHLO x\x00y\r\n", b"QUIT\x00\r\n"):
        c.send(bad)
        c.expect(500, prefix="500 5.5.2", what=repr(bad))
    c.cmd("MAIL FROM:<a@b.test>", 250, prefix="250 2.1.0", what="MAIL after the NULs")
    c.quit()
    c.read_to_eof(5)
    T.figs = a.end()


@pytest.mark.bound(40)
def test_binary_garbage(T):
    """1 MB of random bytes: error replies, 421 4.7.0 after error_limit (20)"""
    env = slow_env(T)
    a = Abusive(env, ehlo="garbage.test")
    c = a.conn
    rng = random.Random(SUITE_SEED)
    garbage = bytes(rng.getrandbits(8) for _ in range(1 << 20))
    deadline = time.time() + 20
    rd = Reader(c.sock, deadline)
    c.sock.settimeout(15)
    sent_err = None
    try:
        c.sock.sendall(garbage)
    except OSError as e:
        sent_err = e.__class__.__name__
    rd.join(timeout=max(0.1, deadline - time.time()))
    check(rd.eof, "connection not closed after the garbage (%d reply bytes)" % len(rd.data))
    reps = parse_replies(rd.data)
    check(reps and reps[-1][0] == 421 and reps[-1][1].startswith("421 4.7.0"),
          "last reply %r, want 421 4.7.0" % (reps[-1:],))
    errs = reps[:-1]
    check(all(code is not None and 400 <= code < 600 for code, _ in errs),
          "non-error reply to garbage: %r" % [r for r in errs if not r[0] or r[0] < 400][:3])
    eq(len(errs), 20, "error replies before the 421")
    T.figs = "errors=%d then %r sender=%s " % (len(errs), reps[-1][1][:40], sent_err) + a.end()


@pytest.mark.bound(30)
def test_lone_cr(T):
    """lone CRs never split or end a command: one 5xx reply per line;
    a lone CR in DATA rejects the message (554 5.6.0)"""
    env = slow_env(T)
    a = Abusive(env, ehlo="cr.test")
    c = a.conn
    bad = [b"NOOP\rQUIT\r\n", b"RSET\r\r\n", b"\r\r\r\n", b"QUIT\rNOOP\r\n",
           b"MAIL FROM:<a@b.test>\r SIZE=10\r\n", b"\rQUIT\r\n", b"HELO x\ry\r\n"]
    codes = []
    for b in bad:
        c.send(b)
        r = c.reply(timeout=5, eof_ok=True)
        check(r is not None, "session closed after %r" % b)
        codes.append(r.code)
        check(500 <= r.code < 600, "%r got %r, want a 5xx" % (b, r.lines))
    c.cmd("NOOP", 250, what="NOOP after the lone CRs")
    # all of it pipelined in one write: exactly one reply per CR LF
    c.send(b"".join(bad) + b"NOOP\r\n")
    for b in bad:
        r = c.reply(timeout=5, eof_ok=True)
        check(r is not None and 500 <= r.code < 600, "pipelined %r got %r" % (b, r))
    c.expect(250, what="pipelined NOOP")
    c.open_data("s@client.test", "bob@" + DOMAIN)
    c.send(b"Subject: cr\r\n\r\nline one\rstill line one\r\n.\r\n")
    c.expect(554, prefix="554 5.6.0", what="lone CR in DATA")
    c.quit()
    c.read_to_eof(5)
    env.assert_nothing_stored(["bob"])
    spool_clean(env)
    T.figs = "codes=%s " % codes + a.end()


@pytest.mark.bound(40)
def test_endless_line(T):
    """10 MB without LF: 500 5.5.2 Line too long when the LF comes, memory bounded"""
    env = slow_env(T)
    a = Abusive(env, ehlo="long.test")
    c = a.conn
    t0 = time.time()
    block = b"A" * 65536
    c.sock.settimeout(20)
    for _ in range(160):                # 10 MiB
        c.sock.sendall(block)
    c.send(b"\r\n")
    c.expect(500, prefix="500 5.5.2 Line too long", timeout=10, what="10 MB line")
    dt = time.time() - t0
    c.cmd("NOOP", 250, what="NOOP after the long line")
    c.quit()
    c.read_to_eof(5)
    T.figs = "10MB_in=%.1fs " % dt + a.end()


@pytest.mark.bound(30)
def test_half_close(T):
    """EHLO, MAIL, then SHUT_WR: both replied to, clean end, spool empty"""
    env = slow_env(T)
    a = Abusive(env)
    c = a.conn
    c.send(b"EHLO half.test\r\nMAIL FROM:<a@b.test>\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    c.expect(250, prefix="250-mx.test", what="EHLO")
    c.expect(250, prefix="250 2.1.0", what="MAIL")
    rest = c.read_to_eof(5)
    eq(rest, b"", "bytes after the MAIL reply")
    figs = a.end()
    spool_clean(env)
    check(S.LOG.EOF in env.log(), "no 'lost ... reason=eof' log line")
    T.figs = figs


@pytest.mark.bound(30)
def test_half_close_in_data(T):
    """SHUT_WR in the middle of DATA: no 250, nothing in new/, spool empty"""
    env = slow_env(T)
    a = Abusive(env, ehlo="half.test")
    c = a.conn
    c.open_data("a@b.test", "bob@" + DOMAIN)
    c.send(b"Subject: cut\r\n\r\n" + b"x" * 100000 + b"\r\nthe end is not com")
    c.sock.shutdown(socket.SHUT_WR)
    rest = c.read_to_eof(5)
    check(b"250" not in rest, "got %r after a half-closed DATA" % rest)
    figs = a.end(honest=False)
    env.assert_nothing_stored(["bob"])
    spool_clean(env)
    check(S.LOG.LOST_IN_DATA in env.log(), "no 'lost ... during data' log line")
    T.figs = figs + " honest=%.2fs" % honest_delivery(env)


# ---------------------------------------------------------------- supervisor

def has_setting(name):
    """does this smtpd know the setting? (the code base moves)"""
    rc, out, err = S.run([S.smtpd_path(), "-h"], timeout=10)
    return re.search(r"^\s+%s\s" % name, out + err, re.M) is not None


def start_supervisor(env, opts):
    """the prefork supervisor on a free port, serving (a greeting, QUIT)"""
    p, port = env.supervisor(opts)
    c = S.connect(port, ehlo=None, timeout=5)
    c.cmd("QUIT", 221)
    c.close()
    return p, port


def term_supervisor(p, timeout):
    """SIGTERM to the supervisor alone; its exit status (None: still running)
    and the processes of its group (zombies too) left right after it exited"""
    p.kill(signal.SIGTERM)
    rc = p.wait(timeout)
    return rc, S.group_members(p.pid, zombies=True) if rc is not None else []


@pytest.mark.bound(90)
def test_idle_connections_supervisor(T):
    """300 idle connections; a new client is still served in seconds"""
    env = T.env(start=False)
    p, port = start_supervisor(env, {"max_sessions": "400", "max_per_addr": "400",
                                        "cmd_timeout": "30", "workers": "4",
                                        "queue_interval": "0", "shutdown_grace": "2"})
    base = len(S.children(p.pid))
    conns = []
    t0 = time.time()
    try:
        for _ in range(300):
            conns.append(S.Client(port, timeout=30))
        greeted = 0
        end = time.time() + 45
        for c in conns:
            c.expect(220, timeout=max(0.5, end - time.time()), what="greeting %d" % greeted)
            greeted += 1
        t_greet = time.time() - t0
        peak = len(S.children(p.pid))
        env.port = port
        dt = honest_delivery(env, limit=5.0)
    finally:
        for c in conns:
            c.close()
    end = time.time() + 15
    n = len(S.children(p.pid))
    while n > 4 and time.time() < end:
        time.sleep(0.2)
        n = len(S.children(p.pid))
    t_settle = time.time()
    rc, left = term_supervisor(p, 10)
    check(rc == 0, "supervisor exit status %r after SIGTERM" % rc)
    check(not left, "processes of the supervisor's group left after it exited: %r" % left)
    T.figs = ("idle=300 greeted_in=%.1fs workers_before=%d peak_workers=%d honest=%.2fs "
            "workers_after_close=%d (settled in %.1fs)" %
            (t_greet, base, peak, dt, n, t_settle - (end - 15)))


# ---------------------------------------------------------------- crash durability

class Attempt:
    __slots__ = ("token", "msg", "rcpts", "digest", "length", "result", "qid", "t")

    def __init__(self, token, msg, rcpts, data_lf):
        self.token = token
        self.msg = msg
        self.rcpts = rcpts
        self.digest = hashlib.sha256(data_lf).hexdigest()
        self.length = len(data_lf)
        self.result = "unsent"
        self.qid = None


class Broken(Exception):
    pass


def smtp_send(c, a, data):
    """one transaction on an open Conn; returns the end-of-data reply line"""
    def cmd(line):
        c.send(line + "\r\n")
        r = c.reply(eof_ok=True)
        if r is None:
            raise Broken("eof after %s" % line.split()[0])
        return r.code, r.lines[-1]
    code, l = cmd("MAIL FROM:<robust@client.test>")
    if code != 250:
        return l
    for r in a.rcpts:
        code, l = cmd("RCPT TO:<%s>" % r)
        if code != 250:
            cmd("RSET")
            return l
    code, l = cmd("DATA")
    if code != 354:
        return l
    c.send(data + b".\r\n")
    r = c.reply(eof_ok=True)
    if r is None:
        raise Broken("eof after the data")
    return r.lines[-1]


QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([A-Za-z0-9]+)$")


class Stream:
    """client threads streaming messages through the supervisor until
    both `seconds` have passed and at least `min_msgs` messages were
    taken on; never past `deadline`.  At most `rate` new messages a second
    (retries aside): unpaced, a fast machine took 20,000 messages in 30 s,
    and removing their 36,000 files outlasted the clean-up's bound"""

    def __init__(self, port, users, min_msgs, seconds, nthreads, seed, deadline,
                 max_attempts=10, rate=150):
        self.port = port
        self.users = users
        self.min_msgs = min_msgs
        self.rate = rate
        self.t0 = time.time()
        self.until = self.t0 + seconds
        self.deadline = deadline
        self.max_attempts = max_attempts
        self.attempts = {}          # token -> Attempt
        self.lock = threading.Lock()
        self.next_msg = 0
        self.gave_up = 0
        self.errors = []
        self.threads = [threading.Thread(target=self.client, args=(k, seed + k),
                                         daemon=True) for k in range(nthreads)]

    def take(self, rnd):
        """the next message to send: (number, rcpts, size), or None"""
        with self.lock:
            if time.time() > self.deadline or \
                    (time.time() > self.until and self.next_msg >= self.min_msgs):
                return None
            i = self.next_msg
            self.next_msg += 1
        wait = min(self.t0 + i / self.rate, self.deadline) - time.time()
        if wait > 0:
            time.sleep(wait)
        if rnd.random() < 0.4:
            rcpts = ["%s@%s" % (u, DOMAIN) for u in self.users]
        else:
            rcpts = ["%s@%s" % (rnd.choice(self.users), DOMAIN)]
        size = rnd.randint(200, 8000) if rnd.random() < 0.92 else rnd.randint(70000, 200000)
        return i, rcpts, size

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.deadline = 0
        self.join(15)

    def join(self, timeout):
        end = time.time() + timeout
        for t in self.threads:
            t.join(timeout=max(0.1, end - time.time()))
        return not any(t.is_alive() for t in self.threads)

    def connect(self):
        c = S.Client(self.port, timeout=10)
        for line, code in ((None, 220), ("EHLO robust.test", 250)):
            if line:
                c.send(line + "\r\n")
            r = c.reply(eof_ok=True)
            if r is None or r.code != code:
                c.close()
                raise Broken("%s %r" % (line or "greeting", r))
        return c

    def client(self, k, seed):
        rnd = random.Random(seed)
        conn, left_on_conn = None, 0
        try:
            while True:
                job = self.take(rnd)
                if job is None:
                    return
                i, rcpts, size = job
                for attempt in range(1, self.max_attempts + 1):
                    if time.time() > self.deadline:
                        return
                    token = "M%04dA%02dX%06x" % (i, attempt, rnd.getrandbits(24))
                    data = make_message(token, rcpts, size, rnd)
                    a = Attempt(token, i, rcpts, data.replace(b"\r\n", b"\n"))
                    with self.lock:
                        self.attempts[token] = a
                    try:
                        if conn is None:
                            conn, left_on_conn = self.connect(), rnd.randint(1, 8)
                        a.result = smtp_send(conn, a, data)
                    except (Broken, OSError, TestFailure) as e:
                        a.result = "broken: %s" % (str(e)[:60] or e.__class__.__name__)
                        if conn:
                            conn.close()
                        conn = None
                        continue
                    m = QUEUED_RE.match(a.result)
                    if m:
                        a.qid = m.group(1)
                        left_on_conn -= 1
                        if left_on_conn <= 0:
                            try:
                                conn.send("QUIT\r\n")
                                conn.reply(timeout=2)
                            except (OSError, TestFailure):
                                pass
                            conn.close()
                            conn = None
                        break
                    # 4xx/5xx: a fresh connection (the worker may be broken)
                    conn.close()
                    conn = None
                else:
                    with self.lock:
                        self.gave_up += 1
        except Exception as e:          # noqa: BLE001
            self.errors.append("client %d: %s" % (k, traceback.format_exc()[-400:]))
        finally:
            if conn:
                conn.close()


class Killer(threading.Thread):
    """SIGKILLs a random worker or deliverer of the supervisor every 20-100 ms"""

    def __init__(self, sup_pid, seed):
        super().__init__(daemon=True)
        self.sup = sup_pid
        self.rnd = random.Random(seed)
        self.ev = threading.Event()
        self.kills = {"worker": 0, "deliverer": 0}
        self.errors = []

    def run(self):
        try:
            while not self.ev.wait(self.rnd.uniform(0.02, 0.1)):
                workers = S.children(self.sup)
                cands = [(w, "worker", self.sup) for w in workers]
                for w in workers:
                    cands += [(d, "deliverer", w) for d in S.children(w)]
                if not cands:
                    continue
                pid, kind, parent = self.rnd.choice(cands)
                if pid == self.sup or (S.proc_stat(pid) or (0, 0))[1] != parent:
                    continue            # gone (or a recycled pid): skip
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.kills[kind] += 1
                except ProcessLookupError:
                    pass
        except Exception:                # noqa: BLE001
            self.errors.append(traceback.format_exc()[-400:])

    def stop(self):
        self.ev.set()
        self.join(timeout=5)


NAME_SIZE_RE = re.compile(r",S=(\d+)$")


def scan_maildirs(env, users, attempts):
    """{(user, token): [filenames]}, plus a list of problems found"""
    found, problems = {}, []
    for u in users:
        d = os.path.join(env.maildir(u), "new")
        for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, fn), "rb") as f:
                data = f.read()
            m = NAME_SIZE_RE.search(fn)
            if not m or int(m.group(1)) != len(data):
                problems.append("%s/new/%s: S= does not match size %d" % (u, fn, len(data)))
            sm = SUBJ_RE.search(data)
            if not sm:
                problems.append("%s/new/%s: no robust Subject (partial? %d bytes, starts %r)"
                                % (u, fn, len(data), data[:80]))
                continue
            tok = sm.group(1).decode()
            a = attempts.get(tok)
            if a is None:
                problems.append("%s/new/%s: unknown token %s" % (u, fn, tok))
                continue
            if not data.endswith(("END %s\n" % tok).encode()):
                problems.append("%s/new/%s: partial, ends %r" % (u, fn, data[-60:]))
                continue
            body = data[-a.length:]
            if len(data) < a.length or hashlib.sha256(body).hexdigest() != a.digest:
                problems.append("%s/new/%s: content differs from what was sent (%s)" %
                                (u, fn, tok))
                continue
            head = data[:-a.length]
            rcpt = "%s@%s" % (u, DOMAIN)
            if ("\nDelivered-To: %s\n" % rcpt).encode() not in head or \
                    not head.startswith(b"Return-Path: <robust@client.test>\n"):
                problems.append("%s/new/%s: added headers wrong: %r" % (u, fn, head[:200]))
            if rcpt not in a.rcpts:
                problems.append("%s/new/%s: %s was not a recipient of %s" % (u, fn, u, tok))
            found.setdefault((u, tok), []).append(fn)
    return found, problems


def spool_leftovers(spool):
    names = os.listdir(spool)
    envs = {n[:-4] for n in names if n.endswith(".env")}
    data = [n for n in names if "." not in n and n not in envs]
    tmps = [n for n in names if n.endswith(".tmp")]
    queued = [n for n in names if n.endswith(".env")]
    return data, tmps, queued


@pytest.mark.bound(200)
def test_crash_durability(T):
    """stream messages while workers and deliverers are SIGKILLed at
    random; every 250 must be in each recipient's new/ exactly once
    (after smtpd -q), nothing partial or unknown; then leftovers go"""
    users = ("alice", "bob", "carol")
    env = T.env(start=False, users=users,
                opts={"queue_retry": "1", "data_timeout": "1", "cmd_timeout": "1"})
    sup_opts = {"workers": "4", "max_sessions": "64", "max_per_addr": "64",
                "queue_interval": "0", "shutdown_grace": "2"}
    if has_setting("spool_memory"):
        # messages over 64 KiB are spooled on disk: both spool paths get killed
        sup_opts["spool_memory"] = "65536"
    p, port = start_supervisor(env, sup_opts)
    seed = SUITE_SEED
    t0 = time.time()
    stream = Stream(port, users, min_msgs=500, seconds=STREAM_SECONDS, nthreads=6, seed=seed,
                    deadline=t0 + 100)
    killer = Killer(p.pid, seed + 1000)
    T.on_finish += [killer.stop, stream.stop]
    stream.start()
    killer.start()
    done = stream.join(timeout=125)
    killer.stop()
    t_stream = time.time() - t0
    fails = []
    check(done, "client threads still running after the deadline")
    check(not stream.errors, "client thread crashed: %s" % stream.errors[:1])
    check(not killer.errors, "killer crashed: %s" % killer.errors[:1])
    check(p.poll() is None, "the supervisor died during the run (status %r)" % p.returncode)
    # an honest session after the storm, while nothing is killed any more
    try:
        c = stream.connect()
        c.cmd("QUIT", 221)
        c.close()
    except (Broken, OSError, TestFailure) as e:
        fails.append("supervisor did not serve a session after the kills: %s" % e)

    # stop the supervisor; its whole group must be gone
    if term_supervisor(p, 20)[0] is None:
        raise TestFailure("supervisor still running 20 s after SIGTERM")
    time.sleep(0.5)
    left = S.group_members(p.pid)
    if left:
        fails.append("processes left in the supervisor's group after it exited: %r" % left)
    t_stop = time.time()

    attempts = stream.attempts
    got250 = [a for a in attempts.values() if a.qid]
    msgs = {a.msg for a in attempts.values()}
    msgs250 = {a.msg for a in got250}
    before, _ = scan_maildirs(env, users, attempts)
    data_left, tmp_left, queued = spool_leftovers(env.spool)
    # plant one stale leftover of each kind, so the clean-up is always exercised
    old = time.time() - 60
    planted = ["00000001000000p1s1", "00000001000001p1s1.tmp"]
    for n in planted:
        path = os.path.join(env.spool, n)
        with open(path, "wb") as f:
            f.write(b"Return-Path: <x@y>\nleftover\n")
        if S.IS_ROOT:
            os.chown(path, SESSION_UID, SESSION_GID)
        os.utime(path, (old, old))

    # queue runs: past queue_retry (1 s) and past 2*data_timeout+cmd_timeout (3 s)
    time.sleep(max(0.0, 4.2 - (time.time() - t_stop)))
    for run in range(3):
        rc, _out, err = env.run_direct(b"", flags=("-e", "-q"), timeout=60)
        with open(env.log_path, "ab") as f:      # keep the queue runs' log with the rest
            f.write(b"--- smtpd -q\n" + err)
        eq(rc, 0, "smtpd -q exit status (stderr %r)" % err[-300:])
        if not spool_leftovers(env.spool)[2]:
            break
        time.sleep(2.5)                 # a retry failed: wait out the back-off
    after, problems = scan_maildirs(env, users, attempts)
    d2, t2, q2 = spool_leftovers(env.spool)

    missing, dup, only_after = [], [], 0
    for a in got250:
        for r in a.rcpts:
            u = r.split("@")[0]
            n = len(after.get((u, a.token), []))
            if n == 0:
                missing.append((a, u))
            elif n > 1:
                dup.append((a, u))
            elif (u, a.token) not in before:
                only_after += 1
    dup_no250 = [(tok, u) for (u, tok), f in after.items()
                 if len(f) > 1 and not attempts[tok].qid]
    delivered_no250 = sum(1 for (u, tok) in after if not attempts[tok].qid)
    rcpt250 = sum(len(a.rcpts) for a in got250)
    found250 = sum(1 for a in got250 for r in a.rcpts
                   if (r.split("@")[0], a.token) in after)
    T.figs = ("seed=%d " % seed) + ("msgs=%d attempts=%d got250=%d(msgs %d, rcpt-copies %d) found=%d "
              "found_only_after_q=%d delivered_without_250=%d gave_up=%d "
              "kills=%d+%d(worker+deliverer) stream=%.0fs spool_before_q: data=%d tmp=%d "
              "queued=%d" %
              (len(msgs), len(attempts), len(got250), len(msgs250), rcpt250, found250,
               only_after, delivered_no250, stream.gave_up, killer.kills["worker"],
               killer.kills["deliverer"], t_stream, len(data_left), len(tmp_left),
               len(queued)))
    if dup or dup_no250:
        T.figs += " duplicated: with250=%d without250=%d" % (len(dup), len(dup_no250))
    if len(attempts) < 500:
        fails.append("only %d attempts were sent" % len(attempts))
    if problems:
        fails.append("%d bad files in new/: %s" % (len(problems), "; ".join(problems[:3])))
    if missing:
        fails.append("%d accepted copies MISSING: %s" % (
            len(missing), ", ".join("%s->%s (qid %s)" % (a.token, u, a.qid)
                                    for a, u in missing[:5])) +
            describe_qid(env, missing[0][0].qid))
    if dup:
        fails.append("%d accepted copies delivered twice: %s" % (
            len(dup), ", ".join("%s->%s (qid %s)" % (a.token, u, a.qid) for a, u in dup[:3])) +
            describe_dups(env, dup, after))
    if d2 or t2 or q2:
        fails.append("spool after the queue runs: data=%r tmp=%r env=%r" % (d2, t2, q2))
    for u in users:
        if env.files(u, "cur"):
            fails.append("%s's cur/ not empty" % u)

    # Maildir tmp/ leftovers: aged 37 h, removed by a fresh deliverer's first delivery
    env.start()
    aged_total = 0
    for u in users:
        tmpd = os.path.join(env.maildir(u), "tmp")
        plant = os.path.join(tmpd, "1.M1P1Q1.crashed")
        young = os.path.join(tmpd, "2.M2P2Q2.young")
        for path in (plant, young):
            with open(path, "wb") as f:
                f.write(b"partial")
            if S.IS_ROOT:
                os.chown(path, MAIL_UID, MAIL_GID)
        aged = [n for n in os.listdir(tmpd) if n != os.path.basename(young)]
        then = time.time() - 37 * 3600
        for n in aged:
            os.utime(os.path.join(tmpd, n), (then, then))
        aged_total += len(aged)
        honest_delivery(env, u)
        got = sorted(os.listdir(tmpd))
        if got != [os.path.basename(young)]:
            fails.append("%s's tmp/ after a fresh session's first delivery: %r (want only "
                         "the young file)" % (u, got[:5]))
        if os.path.exists(young):
            os.unlink(young)
    T.figs += " maildir_tmp_leftovers=%d(+%d planted)" % (aged_total - len(users), len(users))
    if fails:
        # the kept directory would hold every message: keep only the evidence
        keep = {(u, a.token) for a, u in dup + missing}
        for (u, tok), fns in after.items():
            if (u, tok) not in keep:
                for fn in fns:
                    os.unlink(os.path.join(env.maildir(u), "new", fn))
    check(not fails, " ## ".join(fails))


def describe_qid(env, qid):
    lines = [ln for ln in env.log().splitlines() if qid in ln]
    return " | log for %s: %s" % (qid, " / ".join(lines[:12]))


def describe_dups(env, dup, after):
    """how the duplicates came about: a copy whose name no 'delivery' log
    line mentions was published by a deliverer killed before it could log
    and answer; the session then kept the recipient for smtpd -q"""
    log = env.log()
    unlogged = 0
    for a, u in dup:
        if any(S.LOG.file_name(fn) not in log for fn in after[(u, a.token)]):
            unlogged += 1
    a, u = dup[0]
    return (" | %d of %d duplicated copies have a file no delivery log line names "
            "(writer killed after publishing, before replying); first one: %s/new: %s"
            % (unlogged, len(dup), u, " ".join(after[(u, a.token)])) +
            describe_qid(env, a.qid))


# ---------------------------------------------------------------- memory

def measured_delivery(env, size, rnd):
    """one session delivering a size-octet message; (session kB, deliverer kB)"""
    n = len(env.procs)
    token = "MEM%d" % size
    msg = make_message(token, ["alice@%s" % DOMAIN], size, rnd)
    c = S.Client(env.port, timeout=60)
    p = env.next_session(n)
    sampler = HwmSampler(p.pid)
    sampler.start()
    try:
        c.expect(220)
        c.cmd("EHLO mem.test", 250)
        c.cmd("MAIL FROM:<m@client.test> SIZE=%d" % len(msg), 250)
        c.cmd("RCPT TO:<alice@%s>" % DOMAIN, 250)
        c.cmd("DATA", 354)
        c.sock.settimeout(60)
        c.sock.sendall(msg + b".\r\n")
        c.expect(250, prefix="250 2.0.0 Ok: queued as", timeout=60, what="end of %d-octet data" % size)
        sampler.sample()                # final figures: before QUIT, both alive
        dkids = S.children(p.pid)
        check(dkids, "session has no deliverer child to measure")
        c.cmd("QUIT", 221)
        wait_exit(p, 10)
    finally:
        sampler.stop()
        c.close()
    files = [f for f in env.files("alice")]
    sizes = [os.path.getsize(os.path.join(env.maildir("alice"), "new", f)) for f in files]
    check(any(s >= len(msg) - msg.count(b"\r\n") for s in sizes),
          "the %d-octet message is not in new/ (sizes %r)" % (size, sizes))
    return sampler.session_kb, sampler.deliverer_kb, len(msg)


@pytest.mark.memory
@pytest.mark.bound(90)
def test_memory_bound(T):
    """peak RSS with a 50 MB message is within 1 MB of a 4 KB message's"""
    env = T.env(opts={"size_limit": "100000000"})
    rnd = random.Random(SUITE_SEED)
    s_small, d_small, n_small = measured_delivery(env, 4096, rnd)
    s_big, d_big, n_big = measured_delivery(env, 50 * 1000 * 1000, rnd)
    figs = ("4KB(%d): session=%dkB deliverer=%dkB  50MB(%d): session=%dkB deliverer=%dkB" %
            (n_small, s_small, d_small, n_big, s_big, d_big))
    T.figs = figs
    check(s_big - s_small <= 1024, "session peak RSS grew by %d kB with a 50 MB message" %
          (s_big - s_small))
    check(d_big - d_small <= 1024, "deliverer peak RSS grew by %d kB with a 50 MB message" %
          (d_big - d_small))


