"""smtptest.py - the one library smtpd's Python tests and benchmarks share.

World: one test's temp world: Maildir owners' homes, a virtual users file,
a spool, a log file, the settings smtpd runs with; smtpd started inetd
style (a TCP listener that runs `smtpd -e` per connection with the socket
as stdin and stdout, or on pipes), as a prefork supervisor (`smtpd -l`),
or anything else (Proc: its own process group, stopped with its group).

Client: the one raw SMTP client: send bytes, read replies (pipelining,
raw bytes, half-close), nothing hidden.

Also: Maildir reading and the stored-message checks, log waits and the
log patterns every suite asserts (LOG, in one place: the log format
changes), free ports, /proc helpers, bounded waits.  Every wait is bounded;
only 127.0.0.1 and ::1.  Python 3 standard library only (pytest is used,
lazily, by need() alone).
"""
import email.utils
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid

HOST = "mx.test"
DOMAIN = "example.test"
TIMEOUT = 15            # seconds any single network wait may take

LIB_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(LIB_DIR)
ROOT_DIR = os.path.dirname(TESTS_DIR)
ETC_DIR = os.path.join(ROOT_DIR, "etc")
FAULTFS = os.path.join(TESTS_DIR, "faultfs.so")
SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"

IS_ROOT = os.geteuid() == 0
if IS_ROOT:
    # Maildir owners: a uid/gid that is not the session's (smtpd), so a
    # session that wrote Maildirs itself instead of through a deliverer
    # switching to the user's ids shows as a wrong owner.
    MAIL_UID, MAIL_GID = 64123, 64123
    # the dedicated session account (tests/install-deps.sh makes it);
    # smtpd -n refuses "nobody", which other daemons share
    SESSION_USER = "smtpd"
    SESSION_UID = pwd.getpwnam(SESSION_USER).pw_uid
    SESSION_GID = pwd.getpwnam(SESSION_USER).pw_gid
else:
    MAIL_UID, MAIL_GID = os.getuid(), os.getgid()
    SESSION_USER = None
    SESSION_UID, SESSION_GID = os.getuid(), os.getgid()


def smtpd_path():
    """the binary under test: $SMTPD (the Makefile passes $(B)/smtpd), else ./smtpd"""
    return os.path.abspath(os.environ.get("SMTPD") or os.path.join(ROOT_DIR, "smtpd"))


_sanitized = {}


def sanitized():
    """is the binary under test built with AddressSanitizer (make check-asan)?"""
    path = smtpd_path()
    if path not in _sanitized:
        try:
            with open(path, "rb") as f:
                _sanitized[path] = b"__asan_init" in f.read()
        except OSError:
            _sanitized[path] = False
    return _sanitized[path]


class TestFailure(AssertionError):
    __test__ = False
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


def which(name):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":") + ["/usr/sbin", "/sbin"]:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def need(*tools):
    """skip the test when a tool is missing (install-deps.sh installs them);
    the path of the last one"""
    path = None
    for t in tools:
        path = t if os.path.isabs(t) and os.access(t, os.X_OK) else which(t)
        if not path:
            import pytest
            pytest.skip("%s not installed (run tests/install-deps.sh)" % t)
    return path


def wait_until(pred, limit, step=0.02):
    """poll pred until it is true or limit seconds passed; its last value"""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------- log lines
# Every log line a test asserts on is written here, as a regex, so that a
# change of the log format is one edit.  (See smtpd(8) for the format.)

def _pattern(fmt):
    """a function of the values that fills fmt with them, regex-escaped"""
    return staticmethod(lambda *v: fmt % tuple(re.escape(str(x)) for x in v))


class LOG:
    """regexes (or plain words, where a test looks for a substring) of the
    log lines the suites wait for; smtpd writes "ID EVENT key=value ..."."""
    connect = _pattern(r" connect client=%s(?: |$)")
    refused = _pattern(r" refused client=%s reason=%s(?: |$)")
    proxy = _pattern(r" proxy client=%s via=%s(?: |$)")
    listening = _pattern(r" listen address=%s(?: |$)")
    lost = _pattern(r" lost client=%s reason=%s(?: |$)")
    disconnect = _pattern(r" disconnect client=%s helo=%s ")
    started_pid = _pattern(r"supervisor result=started pid=%s\b")
    worker_died = _pattern(r" worker pid=%s result=died status=%s\b")
    grace = _pattern(r" stopping grace=%s\b")
    STARTED = "supervisor result=started"
    STOPPED = r"supervisor result=stopped"
    LISTENING = " listen address="
    STOPPING = "stopping"
    RELOADED = r" reload result=ok"
    RELOAD_BAD = r" reload result=error"
    RELOAD_ANY = r" reload result=(ok|error)"
    MESSAGE_OK = r" message .* result=accepted reply=\"250 "
    DIED = "died"
    EOF = "reason=eof"
    LOST_IN_DATA = "stage=data"
    # a session's connect line in a log with smtpd's "smtpd[PID]: " prefix
    SESSION_PID = r"smtpd\[(\d+)\]: \S+ connect client="

    @staticmethod
    def file_name(fn):
        """a Maildir file name as a log value (log_escape: '=' is \\x3d)"""
        return fn.replace("=", "\\x3d")


# ---------------------------------------------------------------- ports, /proc

def free_port(v6=False, v4=True):
    """a TCP port free on 127.0.0.1 (and ::1 if v6; only ::1 if not v4) right now"""
    for _ in range(100):
        socks = []
        try:
            s = socket.socket(socket.AF_INET6 if (v6 and not v4) else socket.AF_INET)
            socks.append(s)
            s.bind(("::1" if (v6 and not v4) else "127.0.0.1", 0))
            port = s.getsockname()[1]
            if v6 and v4:
                s6 = socket.socket(socket.AF_INET6)
                socks.append(s6)
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s6.bind(("::1", port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise TestFailure("no free port found")


def listening_ports():
    """set of (family, port) in LISTEN state, from /proc/net/tcp{,6}"""
    out = set()
    for fam, path in ((4, "/proc/net/tcp"), (6, "/proc/net/tcp6")):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A":
                        out.add((fam, int(parts[1].rsplit(":", 1)[1], 16)))
        except OSError:
            pass
    return out


def wait_listen(port, fam=4, timeout=10, proc=None):
    """wait until something listens on port; fail early if proc died"""
    def ready():
        if proc is not None and proc.poll() is not None:
            return "dead"
        return (fam, port) in listening_ports()
    return wait_until(ready, timeout) is True


def proc_fields(pid):
    """(comm, [the fields after it]) of /proc/PID/stat, or None if gone:
    fields[0] the state, [1] ppid, [2] pgrp, [3] session, [11:15] utime,
    stime, cutime, cstime (clock ticks)"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rp = s.rindex(")")
    return s[s.index("(") + 1:rp], s[rp + 2:].split()


def proc_stat(pid):
    """(state, ppid, pgrp, session) of pid, or None if gone"""
    st = proc_fields(pid)
    if st is None:
        return None
    rest = st[1]
    return rest[0], int(rest[1]), int(rest[2]), int(rest[3])


def proc_status(pid, keys=None):
    """dict of /proc/PID/status fields (only keys, as kB numbers, if given)"""
    d = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if keys is None:
                    d[k] = v.strip()
                elif k in keys:
                    d[k] = int(v.split()[0])
    except OSError:
        return {} if keys is None else None
    return d


MEMORY_KEYS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")


def proc_memory(pid):
    """pid's memory in kB: MEMORY_KEYS from /proc/PID/status (VmHWM: its
    peak RSS) and Pss, Pss_Anon, Pss_File from smaps_rollup; None if gone"""
    res = proc_status(pid, MEMORY_KEYS)
    if res is None:
        return None
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Pss", "Pss_Anon", "Pss_File"):
                    res[k] = int(v.split()[0])
    except OSError:
        return None
    return res


def vm_hwm(pid):
    """peak RSS in kB, None when gone or a zombie"""
    v = proc_status(pid).get("VmHWM")
    return int(v.split()[0]) if v else None


def file_text(path):
    """a file's text (UTF-8, bad octets replaced); "" when it is not there"""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def children(pid):
    """direct children of pid (from /proc, every thread's children file)"""
    kids = set()
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return []
    for t in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return sorted(kids)


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for k in children(todo.pop()):
            if k not in out:
                out.append(k)
                todo.append(k)
    return out


def group_members(pgid, zombies=False):
    """processes whose process group or session is pgid (zombies if asked)"""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st and (st[2] == pgid or st[3] == pgid) and (zombies or st[0] != "Z"):
            out.append(p)
    return out


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def wait_gone(pids, timeout):
    return wait_until(lambda: not any(alive(p) for p in pids), timeout)


def kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
    for p in group_members(pgid):
        try:
            os.kill(p, sig)
        except OSError:
            pass


# ---------------------------------------------------------------- processes

_procs = []             # every Proc started and not yet stopped by stop_all
_groups = set()         # extra process groups / sessions to kill at the end
_lock = threading.Lock()


def add_group(pgid):
    """make stop_all() also kill this process group / session"""
    with _lock:
        _groups.add(pgid)


class Proc:
    """A child in its own process group; output goes to a log file."""

    def __init__(self, argv, log_path, env=None, cwd=None, pass_fds=(), name=None):
        self.argv = list(argv)
        self.name = name or os.path.basename(argv[0])
        self.logf = open(log_path, "ab")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                  stderr=self.logf, env=env, cwd=cwd,
                                  start_new_session=True, pass_fds=pass_fds,
                                  close_fds=True)
        self.pid = self.pgid = self.p.pid
        with _lock:
            _procs.append(self)

    @property
    def returncode(self):
        return self.p.returncode

    def poll(self):
        return self.p.poll()

    def kill(self, sig):
        try:
            os.kill(self.pid, sig)
        except OSError:
            pass

    def wait(self, timeout):
        """exit status, or None if still running after timeout"""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def members(self):
        return group_members(self.pgid)

    def running(self):
        return self.p.poll() is None or self.members()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """sig to the group, wait, then SIGKILL what is left; the members
        that were still there after the leader exited"""
        left = []
        if self.running():
            kill_group(self.pgid, sig)
            wait_until(lambda: self.p.poll() is not None, timeout)
            left = self.members()
            wait_until(lambda: not self.running(), max(0.1, timeout / 2))
            if self.running():
                kill_group(self.pgid, signal.SIGKILL)
                self.wait(5)
                wait_gone(self.members(), 5)
        self.p.poll()
        try:
            self.logf.close()
        except OSError:
            pass
        return left


def terminate(p, timeout=10, group=False):
    """end a subprocess.Popen: SIGTERM (to its process group if group),
    a bounded wait, then SIGKILL; reaped either way"""
    def signal_it(sig):
        try:
            os.killpg(p.pid, sig) if group else p.send_signal(sig)
        except OSError:
            pass
    if p.poll() is None:
        signal_it(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_it(signal.SIGKILL)
            p.wait(timeout=5)
    if group:
        kill_group(p.pid, signal.SIGKILL)       # leftovers (workers, children)


def stop_all(timeout=5):
    """end every process any test started; returns what had to be stopped"""
    with _lock:
        procs, groups = list(_procs), list(_groups)
        _procs.clear()
        _groups.clear()
    left = []
    for pr in procs:
        if pr.running():
            left.append("%s(pid %d)" % (pr.name, pr.pid))
        pr.stop(timeout=timeout)
    for g in groups:
        if group_members(g):
            left.append("group %d" % g)
            kill_group(g, signal.SIGTERM)
            if not wait_gone(group_members(g), timeout):
                kill_group(g, signal.SIGKILL)
                wait_gone(group_members(g), 5)
    return left


def run(argv, timeout=TIMEOUT, stdin=b""):
    """run argv to its end: (rc, stdout text, stderr text); bounded"""
    try:
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure("%s did not exit within %ds" % (" ".join(argv[:3]), timeout))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- replies

REPLY_LINE = re.compile(r"^(\d{3})([ -]|$)")


class Reply:
    def __init__(self, lines):
        self.lines = lines                  # list of str, without CRLF
        self.code = int(lines[-1][:3]) if lines and lines[-1][:3].isdigit() else -1

    @property
    def text(self):
        return "\n".join(self.lines)

    def enh(self):
        """enhanced status code of the last line, or None"""
        m = re.match(r"^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})(?:\s|$)", self.lines[-1])
        return m.group(1) if m else None

    def __repr__(self):
        return repr(self.text)


def expect(r, code=None, enh=None, what="", prefix=None):
    """r has code (and enhanced code enh; a first or last line starting prefix)"""
    if code is not None and r.code != code:
        raise TestFailure("%s: expected %d%s, got %r" % (what, code,
                          (" " + enh) if enh else "", r.text))
    if enh is not None and r.enh() != enh:
        raise TestFailure("%s: expected enhanced code %s, got %r" % (what, enh, r.text))
    if prefix and not (r.lines[0].startswith(prefix) or r.lines[-1].startswith(prefix)):
        raise TestFailure("%s: expected %s, got %r" % (what, prefix, r.lines))
    return r


def parse_replies(data):
    """split raw reply bytes into a list of (code, last line) per reply"""
    out = []
    for ln in data.split(b"\r\n"):
        if not ln:
            continue
        m = REPLY_LINE.match(ln.decode("latin-1"))
        if not m:
            out.append((None, ln.decode("latin-1")))
        elif m.group(2) != "-":
            out.append((int(m.group(1)), ln.decode("utf-8", "replace")))
    return out


# ---------------------------------------------------------------- the client

class Client:
    """A raw SMTP client: send bytes, read replies, nothing hidden.
    Client(port) connects to 127.0.0.1 (host "::1" for IPv6); sock= wraps
    a connected socket (after a PROXY header, say)."""

    def __init__(self, port=0, host="127.0.0.1", timeout=TIMEOUT, sock=None, rcvbuf=None,
                 src=None):
        if sock is None:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            if src:
                sock.bind((src, 0))
            sock.connect((host, port))
        self.sock = sock
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.esmtp = False          # EHLO done by helo(): expect enhanced codes

    def set_timeout(self, timeout):
        """every later wait (and send) of this client is bounded by timeout"""
        self.timeout = timeout
        self.sock.settimeout(timeout)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, timeout):
        """one recv into buf; False at EOF (a reset counts as EOF)"""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        finally:
            self.sock.settimeout(self.timeout)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line(self, timeout=None):
        """one CRLF-ended line (bytes, without CRLF); None at EOF"""
        end = time.time() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            if self.eof:
                return None
            left = end - time.time()
            try:
                if left <= 0:
                    raise socket.timeout()
                self._fill(left)
            except socket.timeout:
                raise TestFailure("timeout waiting for a reply line (have %r)" % self.buf[:200])
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def reply(self, timeout=None, eof_ok=False):
        """one (multi-line) reply; at EOF None if eof_ok, else TestFailure"""
        lines = []
        while True:
            ln = self.line(timeout)
            if ln is None:
                if eof_ok:
                    return None
                raise TestFailure("connection closed by smtpd while reading a reply "
                                  "(so far %r, partial %r)" % (lines, self.buf[:200]))
            text = ln.decode("utf-8", "replace")
            m = REPLY_LINE.match(text)
            if not m:
                raise TestFailure("malformed reply line %r" % text[:200])
            lines.append(text)
            if m.group(2) != "-":
                return Reply(lines)

    def expect(self, code=None, enh=None, what="", prefix=None, timeout=None):
        return expect(self.reply(timeout), code, enh, what, prefix)

    def cmd(self, line, code=None, enh=None, what=None, prefix=None):
        """send one command line (CRLF added), read its reply, check it"""
        self.send(line + ("\r\n" if isinstance(line, str) else b"\r\n"))
        what = what or (line if isinstance(line, str) else repr(line))[:60]
        r = self.expect(code, enh, what, prefix)
        verb = line[:5].upper() if isinstance(line, str) else ""
        if verb in ("EHLO ", "HELO ") and r.code == 250:
            self.esmtp = verb == "EHLO "     # enhanced codes offered or not
        return r

    def dialogue(self, script):
        """steps "COMMAND => CODE [ENHANCED]" separated by " | ", each checked"""
        for step in script.split(" | "):
            line, want = step.rsplit(" => ", 1)
            code, _, enh = want.partition(" ")
            self.cmd(line, int(code), enh or None)

    def greeting(self, code=220):
        return self.expect(code, what="greeting")

    def helo(self, name="client.test", verb="EHLO"):
        return self.cmd("%s %s" % (verb, name), 250)

    def read_to_eof(self, timeout=TIMEOUT):
        """everything unread until the server closes; TestFailure if it does not"""
        end = time.time() + timeout
        try:
            while not self.eof and time.time() < end:
                self._fill(max(0.05, end - time.time()))
        except socket.timeout:
            pass
        if not self.eof:
            raise TestFailure("smtpd did not close the connection (unread %r)" % self.buf[:200])
        got, self.buf = self.buf, b""
        return got

    def nothing_pending(self, wait=0.3):
        """True if nothing is unread and no byte (and no EOF) arrives within wait"""
        try:
            self._fill(wait)
        except socket.timeout:
            pass
        return self.buf == b"" and not self.eof

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def bye(self):
        """QUIT (221), then close"""
        self.cmd("QUIT", 221)
        self.close()

    # -- transactions
    def mail_rcpt(self, sender, rcpts, params="", enh=None):
        """MAIL, RCPTs, all accepted; enh: expect enhanced codes (default: after EHLO)"""
        enh = self.esmtp if enh is None else enh
        self.cmd("MAIL FROM:<%s>%s" % (sender, (" " + params) if params else ""), 250,
                 "2.1.0" if enh else None)
        for r in ([rcpts] if isinstance(rcpts, str) else rcpts):
            self.cmd("RCPT TO:<%s>" % r, 250, "2.1.5" if enh else None)

    def open_data(self, sender, rcpts, params="", enh=None):
        """mail_rcpt, then DATA (354)"""
        self.mail_rcpt(sender, rcpts, params, enh)
        self.cmd("DATA", 354)

    def end_data(self, body_crlf, code=250, enh=None, stuff=True, timeout=None):
        """the message (dot-stuffed unless stuff=False) and the end-of-data line"""
        data = dot_stuff(body_crlf) if stuff else body_crlf
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        self.send(data + b".\r\n")
        return self.expect(code, enh, "end of data", timeout=timeout)

    def send_message(self, sender, rcpts, body_crlf, params="", code=250, enh=None,
                     esmtp=None):
        """MAIL, RCPTs, DATA with dot-stuffing; returns the end-of-data reply"""
        self.open_data(sender, rcpts, params, esmtp)
        return self.end_data(body_crlf, code, enh)

    def transaction(self, sender, rcpts, body_crlf):
        """MAIL (250), each RCPT whatever its answer, then DATA and the
        message if one was accepted: (the RCPT replies, the end-of-data
        Reply, or None when no recipient was accepted)"""
        self.cmd("MAIL FROM:<%s>" % sender, 250)
        rr = [self.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        if not any(r.code == 250 for r in rr):
            return rr, None
        self.cmd("DATA", 354)
        return rr, self.end_data(body_crlf, code=None)

    def quit(self, enh="2.0.0"):
        self.cmd("QUIT", 221, enh if self.esmtp else None)


def connect(port, host="127.0.0.1", greet=True, ehlo="client.test", **kw):
    """a Client, greeted (220) and after EHLO unless told not to"""
    c = Client(port, host, **kw)
    if greet:
        c.greeting()
    if ehlo:
        c.helo(ehlo)
    return c


class Reader(threading.Thread):
    """reads a socket to EOF (or a deadline) in the background"""

    def __init__(self, sock, deadline):
        super().__init__(daemon=True)
        self.sock = sock
        self.deadline = deadline
        self.data = b""
        self.eof = False
        self.error = None
        self.start()

    def run(self):
        try:
            while time.time() < self.deadline:
                self.sock.settimeout(max(0.05, min(0.5, self.deadline - time.time())))
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    self.eof = True
                    return
                self.data += chunk
        except OSError as e:
            self.error = e
            self.eof = True


# ---------------------------------------------------------------- messages

def crlf(s):
    """text with LF line ends -> CRLF bytes"""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dot_stuff(b):
    """SMTP dot-stuffing of CRLF bytes"""
    lines = b.split(b"\r\n")
    return b"\r\n".join((b"." + ln) if ln.startswith(b".") else ln for ln in lines)


QID_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([A-Za-z0-9]+)$")
QID_NOENH_RE = re.compile(r"^250 (?:2\.0\.0 )?Ok: queued as ([A-Za-z0-9]+)$")


def qid_of(r, enh=True):
    """the QID of a success reply; enh=False (after HELO) lets the
    enhanced code be absent, since ENHANCEDSTATUSCODES was not offered"""
    m = (QID_RE if enh else QID_NOENH_RE).match(r.lines[-1])
    check(m is not None, "end-of-data reply is not '250 2.0.0 Ok: queued as QID': %r" % r.text)
    return m.group(1)


def token():
    return uuid.uuid4().hex[:16]


def message(tok, size=None, rcpt="alice@%s" % DOMAIN):
    """a CRLF message whose every line names tok; size pads the body"""
    lines = ["From: <sender@client.test>", "To: <%s>" % rcpt,
             "Subject: launch test %s" % tok, "Message-ID: <%s@client.test>" % tok,
             "", "token %s" % tok, ".dot line %s" % tok]
    body = "\r\n".join(lines) + "\r\n"
    if size:
        filler = "x%s %s\r\n" % (tok, "y" * 60)
        while len(body) < size:
            body += filler
    body += "end %s\r\n" % tok
    return body.encode()


def token_of(stored_body):
    """the token of a message(), from its stored body (after the trace headers)"""
    return stored_body.split(b"\n", 6)[5].split(b" ", 1)[1].decode()


# ---------------------------------------------------------------- stored mail

NAME_RE = re.compile(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)(?:_[A-Za-z0-9]+-[0-9a-f]{16})?\.%s,S=(\d+)$"
                     % re.escape(HOST))
# the trace headers smtpd adds; "for <rcpt>" only with one recipient
TRACE_RE = re.compile(
    rb"\AReturn-Path: <(?P<sender>[^>\n]*)>\n"
    rb"Delivered-To: (?P<rcpt>[^\n]+)\n"
    rb"Received: from (?P<helo>\S+) \(\[(?P<addr>[^\]\n]+)\]\)\n"
    rb"\tby (?P<by>\S+) \(smtpd\) with (?P<proto>\S+) id (?P<qid>[A-Za-z0-9]+)"
    rb"(?:\n\tfor <(?P<for>[^>\n]*)>)?; (?P<date>[^\n]+)\n")


class Trace:
    """the parsed trace headers of a stored message: groups as text"""

    def __init__(self, m):
        self.m = m

    def group(self, name):
        g = self.m.group(name)
        return None if g is None else g.decode("utf-8", "replace")


def parse_stored(data):
    """(Trace, rest) of a stored message; TestFailure if it lacks them"""
    m = TRACE_RE.match(data)
    if not m:
        raise TestFailure("stored message does not start with the trace headers: %r"
                          % data[:300])
    return Trace(m), data[m.end():]


def check_name(fn, data):
    """a Maildir file name as smtpd makes it, its S= the file's size"""
    m = NAME_RE.match(fn)
    check(m is not None, "Maildir file name %r not like 1732300000.M123456P4567Q1.%s,S=<size>"
          % (fn, HOST))
    eq(int(m.group(5)), len(data), "S= in file name vs file size")
    t = int(m.group(1))
    check(abs(t - time.time()) < 3600, "file name time %d far from now" % t)


def first_difference(got, want):
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            break
    else:
        i = min(len(got), len(want))
    return ("differs at offset %d: stored %r, want %r (stored %d bytes, want %d)" %
            (i, got[max(0, i - 20):i + 40], want[max(0, i - 20):i + 40], len(got), len(want)))


def check_trace(data, body, want):
    """data is the trace headers with the values in want (None: any) + body"""
    tr, rest = parse_stored(data)
    if rest != body:
        raise TestFailure("body " + first_difference(rest, body))
    for k, v in want.items():
        if v is not None:
            eq(tr.group(k), v, "%s in the trace headers" % k)
    date = tr.group("date")
    check(email.utils.parsedate_tz(date) is not None,
          "Received date %r is not an RFC 5322 date" % date)
    return tr


def check_token(data, tok, addr="127.0.0.1", by=HOST, size=None, rcpt="alice@%s" % DOMAIN):
    """a stored message() with tok, received from addr by `by`; its Trace"""
    return check_trace(data, message(tok, size, rcpt).replace(b"\r\n", b"\n"),
                       {"addr": addr, "by": by})


# ---------------------------------------------------------------- the world

class World:
    """One test's temp world: users, Maildirs, spool, log, settings; smtpd
    started inetd style (start()), as a supervisor, on pipes, or any argv."""

    def __init__(self, name, users=("alice", "bob"), opts=None, env=None, tcpremoteip=None,
                 make_spool=True, settings=None):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="smtpd-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.spool = self.path("spool")
        if make_spool:          # else smtpd makes it
            os.mkdir(self.spool, 0o700)
            if IS_ROOT:
                os.chown(self.spool, SESSION_UID, SESSION_GID)
        self.users_file = self.path("users")
        self.log_path = self.path("smtpd.log")
        open(self.log_path, "ab").close()
        self.users = {}
        self.add_users(users)
        self.settings = {"hostname": HOST, "local_domains": DOMAIN,
                         "virtual_users": self.users_file, "spool_dir": self.spool,
                         "postmaster": "alice",
                         # the checks at the door have their own suite
                         # (tests/door): no PTR queries to the machine's
                         # resolver, no held greeting
                         "rdns": "0", "greet_wait": "0"}
        if SESSION_USER:
            self.settings["session_user"] = SESSION_USER
        self.settings.update(settings or {})
        self.settings.update(opts or {})
        self.extra_env = dict(env or {})
        if tcpremoteip:
            self.extra_env["TCPREMOTEIP"] = tcpremoteip
        self.procs = []             # inetd sessions (Popen), in accept order
        self.clients = []
        self.lsock = self.thread = self.port = None
        self.stop_ev = threading.Event()
        self.spawn_errors = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write_file(self, name, text, mode=0o644):
        """a file in the world's directory holding text; its path"""
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    # -- users and Maildirs
    def add_users(self, names):
        home = self.path("home")
        os.makedirs(home, exist_ok=True)
        os.chmod(home, 0o755)
        for n in names:
            h = os.path.join(home, n)
            os.makedirs(h, exist_ok=True)
            os.chmod(h, 0o755)
            if IS_ROOT:
                os.chown(h, MAIL_UID, MAIL_GID)
            self.users[n] = os.path.join(h, "Maildir")
        self.write_users()

    def write_users(self):
        """the virtual users file from self.users (name -> Maildir)"""
        with open(self.users_file, "w") as f:
            for n, md in self.users.items():
                f.write("%s:%d:%d:%s\n" % (n, MAIL_UID, MAIL_GID, md))
        os.chmod(self.users_file, 0o644)

    def maildir(self, user="alice"):
        return self.users[user]

    def files(self, user="alice", sub="new"):
        d = os.path.join(self.users[user], sub)
        if not os.path.isdir(d):
            return []
        return sorted(os.listdir(d))

    def read_new(self, user="alice", skip=()):
        """(name, contents) of every file in user's new/ (but those named in
        skip), sorted by name"""
        out = []
        for fn in self.files(user, "new"):
            if fn in skip:
                continue
            with open(os.path.join(self.users[user], "new", fn), "rb") as f:
                out.append((fn, f.read()))
        return out

    def wait_files(self, n, user="alice", timeout=10):
        """poll until user's new/ holds at least n files (bounded); read_new"""
        wait_until(lambda: len(self.files(user)) >= n, timeout, 0.05)
        return self.read_new(user)

    def find_token(self, tok, user="alice", skip=()):
        """the stored files (but those named in skip) holding tok"""
        t = tok.encode()
        return [(fn, d) for fn, d in self.read_new(user, skip) if t in d]

    def spool_files(self):
        out = []
        for root, _dirs, files in os.walk(self.spool):
            for fn in files:
                out.append(os.path.relpath(os.path.join(root, fn), self.spool))
        return out

    def assert_nothing_stored(self, users=None):
        for u in (users or self.users.keys()):
            for sub in ("new", "tmp", "cur"):
                check(self.files(u, sub) == [], "%s: %s/ not empty: %r" %
                      (u, sub, self.files(u, sub)))

    def check_stored(self, user, qid, body, sender="s@remote.test", rcpt=None,
                     helo="client.test", with_="ESMTP", ip="127.0.0.1", single=True,
                     nfiles=1, delivered_to=None, check_owner=True):
        """user's new/ holds exactly nfiles files, one of them exactly the
        added headers (for rcpt, default user@DOMAIN; qid None: any) + body;
        returns (filename, bytes)"""
        rcpt = rcpt or "%s@%s" % (user, DOMAIN)
        if isinstance(body, str):
            body = body.encode("utf-8")
        got = self.wait_files(nfiles, user, 5)
        eq(len(got), nfiles, "number of files in %s's new/" % user)
        want = {"sender": sender, "rcpt": delivered_to or rcpt, "helo": helo, "addr": ip,
                "by": HOST, "proto": with_, "qid": qid, "for": rcpt if single else None}
        errs = []
        for fn, data in got:
            try:
                check_trace(data, body, want)
                if not single:
                    check(parse_stored(data)[0].group("for") is None,
                          "a 'for <rcpt>' in the Received of a message for several")
            except TestFailure as e:
                errs.append("%s: %s" % (fn, e))
                continue
            check_name(fn, data)
            if check_owner:
                st = os.stat(os.path.join(self.maildir(user), "new", fn))
                eq((st.st_uid, st.st_gid), (MAIL_UID, MAIL_GID), "owner of stored file")
                check(stat.S_IMODE(st.st_mode) & 0o077 == 0,
                      "stored file mode %o lets others read it" % stat.S_IMODE(st.st_mode))
            return fn, data
        raise TestFailure("; ".join(errs))

    # -- arguments and environment
    def option_args(self, extra=None, stderr_log=True):
        s = dict(self.settings)
        s.update(extra or {})
        a = ["-e"] if stderr_log else []
        for k, v in s.items():
            a += ["-o", "%s=%s" % (k, v)]
        return a

    def argv(self, extra=None, flags=("-e",)):
        """smtpd FLAGS -o k=v...: flags replace the default -e"""
        return [smtpd_path()] + list(flags) + self.option_args(extra, stderr_log=False)

    def write_config(self, fname="smtpd.conf", extra=None, log_stderr=True):
        """a -c file with every test setting; returns its path"""
        s = dict(self.settings)
        s.update(extra or {})
        if log_stderr:
            s["log"] = "stderr"
        p = self.path(fname)
        with open(p, "w") as f:
            for k, v in s.items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(p, 0o644)
        return p

    def environ(self, extra=None):
        """our environment without what would change smtpd's behaviour"""
        e = {k: v for k, v in os.environ.items()
             if k not in ("TCPREMOTEIP", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
                          "LD_PRELOAD") and not k.startswith("FAULTFS_")}
        e.update(self.extra_env)
        e.update(extra or {})
        return e

    # -- logs
    def log(self):
        return file_text(self.log_path)

    def log_tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def log_count(self, pattern):
        return len(re.findall(pattern, self.log(), re.M))

    def wait_log(self, pattern, timeout=10, count=1):
        """wait until pattern (regex) matches count times in the log"""
        rx = re.compile(pattern, re.M)
        found = wait_until(lambda: len(rx.findall(self.log())) >= count, timeout, 0.05)
        if not found:
            raise TestFailure("log never had %r (x%d) within %ss; tail:\n%s" %
                              (pattern, count, timeout, self.log_tail()))
        return rx.findall(self.log())

    # -- any process, the supervisor
    def spawn(self, argv, name=None, env=None, log_path=None, pass_fds=()):
        """a Proc in its own process group, logging to the world's log"""
        return Proc(argv, log_path or self.log_path, env=self.environ(env), cwd=self.dir,
                    pass_fds=pass_fds, name=name)

    def start_listening(self, make_argv, name, fam=4, retries=5, **kw):
        """spawn make_argv(port) and wait until the port listens; retry on collision"""
        for _ in range(retries):
            port = free_port(v6=(fam == 6), v4=(fam == 4))
            pr = self.spawn(make_argv(port), name=name, **kw)
            if wait_listen(port, fam, proc=pr) and pr.poll() is None:
                return pr, port
            pr.stop()
        raise TestFailure("%s did not start listening; log:\n%s" % (name, self.log_tail()))

    def supervisor(self, extra=None, listen=None, flags=("-e",), v6=False, name="supervisor",
                   retries=5):
        """smtpd -l 127.0.0.1:P [-l [::1]:P], started and logged so; (proc, port)"""
        for _ in range(retries):
            port = free_port(v6=v6)
            ls = listen or ["127.0.0.1:%d" % port] + (["[::1]:%d" % port] if v6 else [])
            args = []
            for a in ls:
                args += ["-l", a.replace("PORT", str(port))]
            pr = self.spawn(self.argv(extra, flags) + args, name=name)
            ok = wait_listen(port, 4 if not ls[0].startswith("[") else 6, proc=pr)
            if ok and v6:
                ok = wait_listen(port, 6, proc=pr)
            if ok and pr.poll() is None:
                self.wait_log(LOG.started_pid(pr.pid), 10)
                return pr, port
            pr.stop()
            if listen:
                break
        raise TestFailure("supervisor did not start; log:\n" + self.log_tail())

    def stop_supervisor(self, sup, timeout=10):
        """SIGTERM; exit status 0 within timeout; no process of its group left"""
        sup.kill(signal.SIGTERM)
        rc = sup.wait(timeout)
        check(rc is not None, "supervisor still running %ss after SIGTERM; log:\n%s" %
              (timeout, self.log_tail()))
        eq(rc, 0, "supervisor exit status")
        check(wait_gone(sup.members(), 5), "processes left after the supervisor exited: %r"
              % [(p, cmdline(p)[:1]) for p in sup.members()])
        self.wait_log(LOG.STOPPED, 5)

    # -- inetd style: one smtpd per accepted connection, socket on fd 0/1
    def start(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()
        return self

    def _accept_loop(self):
        while not self.stop_ev.is_set():
            try:
                conn, _addr = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                conn.setblocking(True)
                with open(self.log_path, "ab") as log:
                    p = subprocess.Popen(self.argv(), stdin=conn.fileno(),
                                         stdout=conn.fileno(), stderr=log,
                                         env=self.environ(), close_fds=True)
                self.procs.append(p)
            except Exception as e:                      # noqa: BLE001
                self.spawn_errors.append(repr(e))
            finally:
                conn.close()

    def client(self, greet=True, ehlo="client.test", **kw):
        """a Client of the inetd listener, greeted and after EHLO unless told not"""
        c = connect(self.port, greet=greet, ehlo=ehlo, **kw)
        self.clients.append(c)
        return c

    def next_session(self, n_before, timeout=5.0):
        """the Popen of the smtpd spawned for connection number n_before"""
        if not wait_until(lambda: len(self.procs) > n_before, timeout, 0.005):
            raise TestFailure("the listener spawned no smtpd (errors %r)" % self.spawn_errors)
        return self.procs[n_before]

    def wait_sessions(self, timeout=TIMEOUT):
        """wait until every smtpd spawned so far has exited; returns codes"""
        end = time.time() + timeout
        codes = []
        for p in list(self.procs):
            try:
                codes.append(p.wait(timeout=max(0.1, end - time.time())))
            except subprocess.TimeoutExpired:
                raise TestFailure("smtpd pid %d still running after %ds" % (p.pid, timeout))
        return codes

    def quit(self, c):
        """QUIT (221) on c; every session exits"""
        c.quit()
        self.wait_sessions()

    def quit_nothing_stored(self, c):
        """quit; no Maildir holds a file"""
        self.quit(c)
        self.assert_nothing_stored()

    def stop(self):
        for c in self.clients:
            c.close()
        self.stop_ev.set()
        if self.thread:
            self.thread.join(timeout=5)
        if self.lsock:
            self.lsock.close()
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    try:
                        p.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass

    def run_direct(self, data, extra_opts=None, flags=("-e",), timeout=TIMEOUT, env=None):
        """run smtpd on pipes: feed `data`, return (rc, stdout, stderr)"""
        p = subprocess.Popen(self.argv(extra_opts, flags), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.environ(env))
        try:
            out, err = p.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=5)
            raise TestFailure("smtpd on pipes did not exit within %ds; stdout %r" %
                              (timeout, out[-300:]))
        return p.returncode, out, err

    def run_queue(self, env_extra=None, timeout=TIMEOUT):
        """smtpd -q on this world's spool; must exit 0; returns its stderr"""
        rc, _out, err = self.run_direct(b"", flags=("-e", "-q"), env=env_extra,
                                        timeout=timeout)
        eq(rc, 0, "smtpd -q exit status (stderr %r)" % err[-400:])
        return err.decode("utf-8", "replace")

    def deliver_one(self, port, host="127.0.0.1", addr=None, by=HOST, sock=None,
                    helo="client.test", user="alice", timeout=TIMEOUT):
        """one session, one message to user; checks the 250, the one file
        holding it and its trace headers; returns (token, qid, filename)"""
        tok = token()
        rcpt = "%s@%s" % (user, DOMAIN)
        before = set(self.files(user))      # not read again: there may be thousands
        c = Client(port, host, sock=sock, timeout=timeout)
        try:
            c.greeting()
            c.cmd("EHLO " + helo, 250)
            c.open_data("sender@client.test", rcpt, enh=False)
            r = c.end_data(message(tok, rcpt=rcpt), code=None)
            check(r.code == 250 and "queued as" in r.text, "DATA reply %r" % r.text)
            c.cmd("QUIT", 221)
        finally:
            c.close()
        got = wait_until(lambda: self.find_token(tok, user, before), 10, 0.05) or []
        eq(len(got), 1, "files holding token %s" % tok)
        want = addr or (("IPv6:" + host) if ":" in host else host)
        tr = check_token(got[0][1], tok, addr=want, by=by, rcpt=rcpt)
        qid = r.text.rsplit(" ", 1)[1]
        eq(tr.group("qid"), qid, "Received id vs queued-as id")
        return tok, qid, got[0][0]

    def cleanup(self):
        subprocess.run(["rm", "-rf", self.dir], timeout=60)


def build_faultfs():
    """tests/faultfs.so (the storage fault shim), built when older than its
    source; None when it is there, else why not"""
    src = os.path.join(TESTS_DIR, "faultfs.c")
    so = FAULTFS
    if os.path.exists(so) and os.path.getmtime(so) >= os.path.getmtime(src):
        return None
    cc = which("cc") or which("gcc") or which("clang")
    if not cc:
        return "no C compiler to build tests/faultfs.so"
    p = subprocess.run([cc, "-shared", "-fPIC", "-o", so, src, "-ldl"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        return "building faultfs.so failed: %s" % p.stdout.decode(errors="replace")[-500:]
    return None


def faultfs_env(op, errno_name, match):
    """environment that makes `op` fail with errno_name under path match"""
    return {"LD_PRELOAD": FAULTFS, "FAULTFS_OP": op, "FAULTFS_MATCH": match,
            "FAULTFS_ERRNO": errno_name}
