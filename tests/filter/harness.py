"""harness.py - the filter suite's copy of the former tests/e2e harness.

Env: one test's world: a temp dir with Maildir owners' homes, a virtual
users file, a spool, a log file, and an inetd-style TCP listener that
runs `smtpd -e -o ...` for each accepted connection with the socket as
its stdin and stdout.

Client: a raw SMTP client over a socket, for byte-exact conversations.

Everything that waits is bounded by a timeout.
"""
import email.utils
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

HOST = "mx.test"
DOMAIN = "example.test"
TIMEOUT = 15            # seconds any single wait may take

IS_ROOT = os.geteuid() == 0
if IS_ROOT:
    # Maildir owners: a uid/gid that is not the session's (nobody), so a
    # session that wrote Maildirs itself instead of through a deliverer
    # switching to the user's ids shows as a wrong owner.
    MAIL_UID, MAIL_GID = 64123, 64123
    SESSION_USER = "nobody"
    SESSION_UID, SESSION_GID = 65534, 65534
else:
    MAIL_UID, MAIL_GID = os.getuid(), os.getgid()
    SESSION_USER = None
    SESSION_UID, SESSION_GID = os.getuid(), os.getgid()

SMTPD = None            # set by run.py: absolute path of the binary
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULTFS = os.path.join(TESTS_DIR, "faultfs.so")
FAULTFS_ERROR = None    # set by run.py when the shim cannot be built


class TestFailure(Exception):
    pass


TESTS = []


def test(fn):
    """register a test function taking the runner's context object"""
    TESTS.append(fn)
    return fn


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


class Skip(Exception):
    pass


# ---------------------------------------------------------------- replies

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


class Client:
    """A raw SMTP client: send bytes, read replies, nothing hidden."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def readline(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise TestFailure("connection closed by smtpd while reading a reply "
                                  "(partial %r)" % self.buf[:200])
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            try:
                line = self.readline()
            except socket.timeout:
                raise TestFailure("timeout waiting for a reply (so far %r)" % lines)
            lines.append(line)
            if not re.match(r"^\d{3}[ -]", line) and not re.match(r"^\d{3}$", line):
                raise TestFailure("malformed reply line %r" % line)
            if len(line) < 4 or line[3] == " ":
                return Reply(lines)

    def cmd(self, line, code=None, enh=None, what=None):
        """send one command line (CRLF added), read its reply, check it"""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        r = self.reply()
        expect(r, code, enh, what or (line if isinstance(line, str) else repr(line))[:60])
        return r

    def expect_eof(self, timeout=TIMEOUT):
        """the server must close the connection (after any pending data)"""
        self.sock.settimeout(timeout)
        end = time.time() + timeout
        try:
            while time.time() < end:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return self.buf
                self.buf += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            return self.buf
        raise TestFailure("smtpd did not close the connection (unread %r)" % self.buf[:200])

    def nothing_pending(self, wait=0.3):
        """no unsolicited reply arrives within `wait` seconds"""
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
            self.buf += chunk
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(TIMEOUT)
        return self.buf == b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def expect(r, code=None, enh=None, what=""):
    if code is not None and r.code != code:
        raise TestFailure("%s: expected %d%s, got %r" % (what, code,
                          (" " + enh) if enh else "", r.text))
    if enh is not None and r.enh() != enh:
        raise TestFailure("%s: expected enhanced code %s, got %r" % (what, enh, r.text))


# ---------------------------------------------------------------- world

class Env:
    """One test's temp world and its inetd-style listener."""

    def __init__(self, name, users=("alice", "bob"), opts=None, env=None,
                 tcpremoteip=None):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="smtpd-e2e-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool, 0o700)
        if IS_ROOT:
            os.chown(self.spool, SESSION_UID, SESSION_GID)
        self.users_file = os.path.join(self.dir, "users")
        self.log_path = os.path.join(self.dir, "smtpd.log")
        self.users = {}
        self.add_users(users)
        self.opts = {
            "hostname": HOST,
            "local_domains": DOMAIN,
            "virtual_users": self.users_file,
            "spool_dir": self.spool,
            "postmaster": "alice",
        }
        if SESSION_USER:
            self.opts["session_user"] = SESSION_USER
        self.opts.update(opts or {})
        self.extra_env = dict(env or {})
        if tcpremoteip:
            self.extra_env["TCPREMOTEIP"] = tcpremoteip
        self.procs = []
        self.clients = []
        self.lsock = None
        self.thread = None
        self.stop_ev = threading.Event()
        self.port = None
        self.spawn_errors = []

    # -- users and Maildirs
    def add_users(self, names):
        for n in names:
            home = os.path.join(self.dir, "home", n)
            os.makedirs(home, exist_ok=True)
            os.chmod(os.path.join(self.dir, "home"), 0o755)
            os.chmod(home, 0o755)
            if IS_ROOT:
                os.chown(home, MAIL_UID, MAIL_GID)
            self.users[n] = os.path.join(home, "Maildir")
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

    def read_new(self, user="alice"):
        """the contents of every file in user's new/, sorted by name"""
        out = []
        for fn in self.files(user, "new"):
            with open(os.path.join(self.users[user], "new", fn), "rb") as f:
                out.append((fn, f.read()))
        return out

    def spool_files(self):
        out = []
        for root, _dirs, files in os.walk(self.spool):
            for fn in files:
                out.append(os.path.relpath(os.path.join(root, fn), self.spool))
        return out

    def assert_nothing_stored(self, users=None):
        for u in (users or self.users.keys()):
            check(self.files(u, "new") == [], "%s: new/ not empty: %r" % (u, self.files(u, "new")))
            check(self.files(u, "tmp") == [], "%s: tmp/ not empty: %r" % (u, self.files(u, "tmp")))
            check(self.files(u, "cur") == [], "%s: cur/ not empty: %r" % (u, self.files(u, "cur")))

    # -- running smtpd
    def argv(self, extra_opts=None, flags=("-e",)):
        opts = dict(self.opts)
        opts.update(extra_opts or {})
        a = [SMTPD] + list(flags)
        for k, v in opts.items():
            a += ["-o", "%s=%s" % (k, v)]
        return a

    def environ(self):
        e = dict(os.environ)
        e.pop("TCPREMOTEIP", None)
        for k in list(e):
            if k.startswith("FAULTFS_") or k == "LD_PRELOAD":
                del e[k]
        e.update(self.extra_env)
        return e

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

    def wait_sessions(self, timeout=TIMEOUT):
        """wait until every smtpd spawned so far has exited; returns codes"""
        end = time.time() + timeout
        codes = []
        for p in list(self.procs):
            left = max(0.1, end - time.time())
            try:
                codes.append(p.wait(timeout=left))
            except subprocess.TimeoutExpired:
                raise TestFailure("smtpd pid %d still running after %ds" % (p.pid, timeout))
        return codes

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

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, greet=True, ehlo="client.test"):
        c = Client(self.port)
        self.clients.append(c)
        if greet:
            r = c.reply()
            expect(r, 220, None, "greeting")
        if ehlo:
            c.cmd("EHLO " + ehlo, 250)
        return c

    def run_direct(self, data, extra_opts=None, flags=("-e",), timeout=TIMEOUT, env=None):
        """run smtpd on pipes: feed `data`, return (rc, stdout, stderr)"""
        e = self.environ()
        e.update(env or {})
        p = subprocess.Popen(self.argv(extra_opts, flags), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        try:
            out, err = p.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=5)
            raise TestFailure("smtpd on pipes did not exit within %ds; stdout %r" %
                              (timeout, out[-300:]))
        return p.returncode, out, err


# ---------------------------------------------------------------- stored mail

NAME_RE = re.compile(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)(?:_[A-Za-z0-9]+-[0-9a-f]{16})?\.%s,S=(\d+)$" % re.escape(HOST))
QID_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([A-Za-z0-9]+)$")


QID_NOENH_RE = re.compile(r"^250 (?:2\.0\.0 )?Ok: queued as ([A-Za-z0-9]+)$")


def qid_of(r, enh=True):
    """the QID of a success reply; enh=False (after HELO) lets the
    enhanced code be absent, since ENHANCEDSTATUSCODES was not offered"""
    m = (QID_RE if enh else QID_NOENH_RE).match(r.lines[-1])
    check(m is not None, "end-of-data reply is not '250 2.0.0 Ok: queued as QID': %r" % r.text)
    return m.group(1)


def received_re(helo, qid, rcpt, with_="ESMTP", ip="127.0.0.1", single=True):
    """regex of our Received: header; qid None matches any QID"""
    head = ("Received: from %s ([%s])\n\tby %s (smtpd) with %s id " %
            (helo, ip, HOST, with_)).encode("utf-8")
    q = rb"[A-Za-z0-9]+" if qid is None else re.escape(qid.encode("ascii"))
    tail = ("\n\tfor <%s>; " % rcpt).encode("utf-8") if single else b"; "
    return re.escape(head) + q + re.escape(tail) + rb"([^\n]+)\n"


def wait_files(env, user, n, timeout=5.0):
    """poll until user's new/ holds at least n files (bounded)"""
    end = time.time() + timeout
    while len(env.files(user, "new")) < n and time.time() < end:
        time.sleep(0.05)


def check_stored(env, user, sender, rcpt, helo, qid, body, with_="ESMTP",
                 ip="127.0.0.1", single=True, nfiles=1, delivered_to=None,
                 check_owner=True):
    """user's new/ holds exactly nfiles files, one of them exactly
    the added headers + body; returns (filename, bytes)"""
    if isinstance(body, str):
        body = body.encode("utf-8")
    wait_files(env, user, nfiles)
    got = env.read_new(user)
    eq(len(got), nfiles, "number of files in %s's new/" % user)
    if delivered_to is None:
        delivered_to = rcpt
    prefix = ("Return-Path: <%s>\nDelivered-To: %s\n" % (sender, delivered_to)).encode("utf-8")
    pat = re.compile(re.escape(prefix) + received_re(helo, qid, rcpt, with_, ip, single)
                     + rb"\Z", re.S)
    errs = []
    for fn, data in got:
        # the body is compared as bytes, the added headers by regex
        m = None
        if len(data) >= len(body) and data[len(data) - len(body):] == body:
            m = pat.match(data[:len(data) - len(body)])
        if not m:
            errs.append(describe_mismatch(fn, data, prefix, body))
            continue
        date = m.group(1).decode("ascii", "replace")
        check(email.utils.parsedate_tz(date) is not None,
              "Received date %r is not an RFC 5322 date" % date)
        check_name(env, user, fn, data)
        if check_owner:
            st = os.stat(os.path.join(env.maildir(user), "new", fn))
            eq((st.st_uid, st.st_gid), (MAIL_UID, MAIL_GID), "owner of stored file")
            check(stat.S_IMODE(st.st_mode) & 0o077 == 0,
                  "stored file mode %o lets others read it" % stat.S_IMODE(st.st_mode))
        return fn, data
    raise TestFailure("; ".join(errs))


ADDED_RE = re.compile(rb"Return-Path: [^\n]*\nDelivered-To: [^\n]*\nReceived: [^\n]*(?:\n\t[^\n]*)*\n")


def describe_mismatch(fn, data, prefix, body):
    if not data.startswith(prefix):
        return "%s: header prefix differs: file starts %r, want %r" % (fn, data[:160], prefix)
    m = ADDED_RE.match(data)
    stored = data[m.end():] if m else data
    if stored != body:
        for i, (a, b) in enumerate(zip(stored, body)):
            if a != b:
                break
        else:
            i = min(len(stored), len(body))
        return ("%s: body differs at offset %d: stored %r, want %r (stored body %d bytes, "
                "want %d)" % (fn, i, stored[max(0, i - 20):i + 40], body[max(0, i - 20):i + 40],
                              len(stored), len(body)))
    return "%s: Received header differs: %r" % (fn, data[len(prefix):len(data) - len(body)][:400])


def check_name(env, user, fn, data):
    m = NAME_RE.match(fn)
    check(m is not None, "Maildir file name %r not like 1732300000.M123456P4567Q1.%s,S=<size>" % (fn, HOST))
    eq(int(m.group(5)), len(data), "S= in file name vs file size")
    t = int(m.group(1))
    check(abs(t - time.time()) < 3600, "file name time %d far from now" % t)


def crlf(s):
    """text with LF line ends -> CRLF bytes"""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dot_stuff(b):
    """SMTP dot-stuffing of CRLF bytes"""
    lines = b.split(b"\r\n")
    return b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in lines)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def send_message(c, sender, rcpts, body_crlf, mail_params="", expect_code=250,
                 expect_enh=None, enh=True):
    """MAIL, RCPTs (all must be accepted), DATA with dot-stuffing; returns reply"""
    c.cmd("MAIL FROM:<%s>%s" % (sender, (" " + mail_params) if mail_params else ""), 250,
          "2.1.0" if enh else None)
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r, 250, "2.1.5" if enh else None)
    c.cmd("DATA", 354)
    data = dot_stuff(body_crlf)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    c.send(data + b".\r\n")
    r = c.reply()
    expect(r, expect_code, expect_enh, "end of data")
    return r
