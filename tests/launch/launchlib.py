"""launchlib.py - shared machinery for smtpd's launch-mode tests.

World: one test's temp directory: Maildir owners' homes, a virtual users
file, a spool path (smtpd creates and chowns it), a log file, and the
argv/config to run smtpd with.

Proc: a process started in its own process group (start_new_session), so
that stopping it stops everything it forked; every Proc and every extra
process group (a detached supervisor makes its own session) is recorded,
and stop_all() ends them all, also when a test fails.

SMTP: a raw client over a socket (byte-exact, works after a PROXY header)
and helpers to deliver one message and read it back from the Maildir.

Everything that waits is bounded by a timeout.  Only 127.0.0.1 and ::1.
"""
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

HOST = "mx.test"
DOMAIN = "example.test"
TIMEOUT = 15            # seconds any single network wait may take

IS_ROOT = os.geteuid() == 0
if IS_ROOT:
    MAIL_UID, MAIL_GID = 65534, 65534
    SESSION_USER = "nobody"
else:
    MAIL_UID, MAIL_GID = os.getuid(), os.getgid()
    SESSION_USER = None

SMTPD = None            # absolute path of the binary, set by run.py
MAIN_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ETC_DIR = os.path.join(MAIN_DIR, "etc")
SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"


class TestFailure(Exception):
    pass


class Skip(Exception):
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
    """skip the test when a tool is missing (install-deps.sh installs them)"""
    for t in tools:
        if not (os.path.isabs(t) and os.access(t, os.X_OK)) and not which(t):
            raise Skip("%s not installed (run tests/install-deps.sh)" % t)


# ---------------------------------------------------------------- ports

def free_port(v6=False, v4=True):
    """a TCP port free on 127.0.0.1 (and ::1 if v6) right now"""
    for _ in range(100):
        socks = []
        try:
            s = socket.socket(socket.AF_INET6 if (v6 and not v4) else socket.AF_INET)
            s.bind(("::1" if (v6 and not v4) else "127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if v6 and v4:
                s6 = socket.socket(socket.AF_INET6)
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                socks.append(s6)
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
    end = time.time() + timeout
    while time.time() < end:
        if (fam, port) in listening_ports():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


# ---------------------------------------------------------------- processes

_procs = []             # every Proc started
_groups = set()         # extra process groups / sessions to kill at the end
_lock = threading.Lock()


def proc_stat(pid):
    """(state, ppid, pgrp, session) of pid, or None if gone"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2]), int(rest[3])


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
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                    kids.update(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return sorted(kids)


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in children(p):
            if k not in out:
                out.append(k)
                todo.append(k)
    return out


def group_members(pgid):
    """live (non-zombie) processes whose process group or session is pgid"""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st and (st[2] == pgid or st[3] == pgid) and st[0] != "Z":
            out.append(p)
    return out


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def wait_gone(pids, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return not any(alive(p) for p in pids)


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


def add_group(pgid):
    """make stop_all() also kill this process group / session"""
    with _lock:
        _groups.add(pgid)


class Proc:
    """A child in its own process group; output goes to a log file."""

    def __init__(self, argv, log_path, env=None, cwd=None, pass_fds=(), name=None):
        self.argv = list(argv)
        self.name = name or os.path.basename(argv[0])
        self.log_path = log_path
        self.logf = open(log_path, "ab")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                  stderr=self.logf, env=env, cwd=cwd,
                                  start_new_session=True, pass_fds=pass_fds,
                                  close_fds=True)
        self.pid = self.pgid = self.p.pid
        with _lock:
            _procs.append(self)

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

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """sig to the group, wait, then SIGKILL what is left; seconds taken"""
        t0 = time.time()
        if self.p.poll() is None or self.members():
            kill_group(self.pgid, sig)
            end = t0 + timeout
            while time.time() < end and (self.p.poll() is None or self.members()):
                time.sleep(0.02)
            if self.p.poll() is None or self.members():
                kill_group(self.pgid, signal.SIGKILL)
                self.wait(5)
                wait_gone(self.members(), 5)
        self.p.poll()
        try:
            self.logf.close()
        except OSError:
            pass
        return time.time() - t0


def stop_all(timeout=5):
    """end every process any test started; returns what had to be killed"""
    left = []
    with _lock:
        procs = list(_procs)
        groups = list(_groups)
        _procs.clear()
        _groups.clear()
    for pr in procs:
        if pr.p.poll() is None or pr.members():
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


# ---------------------------------------------------------------- world

class World:
    """One test's temp world: users, Maildirs, spool, log, settings."""

    def __init__(self, name, users=("alice", "bob")):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="smtpd-launch-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")   # smtpd makes it
        self.users_file = os.path.join(self.dir, "users")
        self.log_path = os.path.join(self.dir, "smtpd.log")
        open(self.log_path, "ab").close()
        self.users = {}
        home = os.path.join(self.dir, "home")
        os.mkdir(home, 0o755)
        os.chmod(home, 0o755)
        for n in users:
            h = os.path.join(home, n)
            os.mkdir(h, 0o755)
            if IS_ROOT:
                os.chown(h, MAIL_UID, MAIL_GID)
            self.users[n] = os.path.join(h, "Maildir")
        with open(self.users_file, "w") as f:
            for n, md in self.users.items():
                f.write("%s:%d:%d:%s\n" % (n, MAIL_UID, MAIL_GID, md))
        os.chmod(self.users_file, 0o644)
        self.settings = {
            "hostname": HOST,
            "local_domains": DOMAIN,
            "virtual_users": self.users_file,
            "spool_dir": self.spool,
            "postmaster": "alice",
            "queue_interval": "0",
        }
        if SESSION_USER:
            self.settings["session_user"] = SESSION_USER

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # -- arguments
    def opts(self, extra=None, stderr_log=True):
        s = dict(self.settings)
        s.update(extra or {})
        a = ["-e"] if stderr_log else []
        for k, v in s.items():
            a += ["-o", "%s=%s" % (k, v)]
        return a

    def argv(self, extra=None, flags=(), stderr_log=True):
        return [SMTPD] + list(flags) + self.opts(extra, stderr_log)

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

    def env(self, extra=None):
        e = {k: v for k, v in os.environ.items()
             if k not in ("TCPREMOTEIP", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
                          "LD_PRELOAD") and not k.startswith("FAULTFS_")}
        e.update(extra or {})
        return e

    # -- starting servers
    def start(self, argv, name=None, env=None, log_path=None, pass_fds=()):
        return Proc(argv, log_path or self.log_path, env=self.env(env), cwd=self.dir,
                    pass_fds=pass_fds, name=name)

    def supervisor(self, extra=None, listen=None, flags=(), v6=False, name="supervisor",
                   retries=5):
        """smtpd -l 127.0.0.1:P [-l [::1]:P]; returns (proc, port)"""
        for _ in range(retries):
            port = free_port(v6=v6)
            ls = listen or ["127.0.0.1:%d" % port] + (["[::1]:%d" % port] if v6 else [])
            args = []
            for l in ls:
                args += ["-l", l.replace("PORT", str(port))]
            pr = self.start(self.argv(extra, flags) + args, name=name)
            ok = wait_listen(port, 4 if not ls[0].startswith("[") else 6, proc=pr)
            if ok and v6:
                ok = wait_listen(port, 6, proc=pr)
            if ok and pr.poll() is None:
                self.wait_log(r"supervisor result=started pid=%d" % pr.pid, 10)
                return pr, port
            pr.stop()
            if listen:
                break
        raise TestFailure("supervisor did not start; log:\n" + self.log_tail())

    # -- logs
    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, timeout=10, count=1):
        """wait until pattern (regex) matches count times in the log"""
        rx = re.compile(pattern, re.M)
        end = time.time() + timeout
        while True:
            found = rx.findall(self.log())
            if len(found) >= count:
                return found
            if time.time() >= end:
                raise TestFailure("log never had %r (x%d) within %ss; tail:\n%s" %
                                  (pattern, count, timeout, self.log_tail()))
            time.sleep(0.05)

    # -- Maildirs
    def files(self, user="alice", sub="new"):
        d = os.path.join(self.users[user], sub)
        if not os.path.isdir(d):
            return []
        return sorted(os.listdir(d))

    def read_new(self, user="alice"):
        out = []
        for fn in self.files(user, "new"):
            with open(os.path.join(self.users[user], "new", fn), "rb") as f:
                out.append((fn, f.read()))
        return out

    def wait_files(self, n, user="alice", timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if len(self.files(user)) >= n:
                break
            time.sleep(0.05)
        return self.read_new(user)


# ---------------------------------------------------------------- SMTP

class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3]) if lines and lines[-1][:3].isdigit() else -1

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return repr(self.text)


class Client:
    """A raw SMTP client: send bytes, read replies, nothing hidden."""

    def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT, sock=None):
        if sock is None:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(fam, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect((host, port))
        self.sock = sock
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
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

    def reply(self, timeout=None):
        self.sock.settimeout(timeout or self.timeout)
        lines = []
        try:
            while True:
                line = self.readline()
                lines.append(line)
                if len(line) < 4 or line[3] == " ":
                    return Reply(lines)
        except socket.timeout:
            raise TestFailure("timeout waiting for a reply (so far %r)" % lines)
        except ConnectionResetError:
            raise TestFailure("connection reset while reading a reply (so far %r)" % lines)
        finally:
            self.sock.settimeout(self.timeout)

    def cmd(self, line, code=None, what=None):
        self.send(line + "\r\n")
        r = self.reply()
        if code is not None and r.code != code:
            raise TestFailure("%s: expected %d, got %r" % (what or line[:40], code, r.text))
        return r

    def greeting(self, code=220):
        r = self.reply()
        if code is not None and r.code != code:
            raise TestFailure("greeting: expected %d, got %r" % (code, r.text))
        return r

    def nothing_within(self, wait):
        """True if no byte (and no EOF) arrives within wait seconds"""
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
            self.buf += chunk
            return False            # data or EOF
        except socket.timeout:
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.settimeout(self.timeout)

    def read_to_eof(self, timeout=TIMEOUT):
        """everything until the server closes; TestFailure if it does not"""
        end = time.time() + timeout
        try:
            while time.time() < end:
                self.sock.settimeout(max(0.05, end - time.time()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    return self.buf
                self.buf += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            return self.buf
        raise TestFailure("smtpd did not close the connection (got %r)" % self.buf[:200])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def mail(self, token, rcpt="alice@%s" % DOMAIN, sender="sender@client.test",
             helo="client.test"):
        """EHLO (if not done) .. DATA with a tokened message; returns 250 reply"""
        if not getattr(self, "_ehlo", False):
            self.cmd("EHLO " + helo, 250)
            self._ehlo = True
        self.cmd("MAIL FROM:<%s>" % sender, 250)
        self.cmd("RCPT TO:<%s>" % rcpt, 250)
        self.cmd("DATA", 354)
        self.send(message(token).replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return self.reply()


def message(token, size=None):
    """a CRLF message whose every line names token; size pads the body"""
    lines = ["From: <sender@client.test>", "To: <alice@%s>" % DOMAIN,
             "Subject: launch test %s" % token, "Message-ID: <%s@client.test>" % token,
             "", "token %s" % token, ".dot line %s" % token]
    body = "\r\n".join(lines) + "\r\n"
    if size:
        filler = "x%s %s\r\n" % (token, "y" * 60)
        while len(body) < size:
            body += filler
    body += "end %s\r\n" % token
    return body.encode()


def stored_message(token, size=None):
    """what the Maildir file holds after the trace headers"""
    return message(token, size).replace(b"\r\n", b"\n")


RECEIVED_RX = re.compile(
    r"\AReturn-Path: <(?P<sender>[^>]*)>\n"
    r"Delivered-To: (?P<rcpt>\S+)\n"
    r"Received: from (?P<helo>\S+) \(\[(?P<addr>[^\]]+)\]\)\n"
    r"\tby (?P<by>\S+) \(smtpd\) with (?P<proto>E?SMTP) id (?P<qid>\S+)\n"
    r"\tfor <(?P<for>[^>]+)>; (?P<date>[^\n]+)\n")


def parse_stored(data):
    """(trace header match, rest) of a stored message; TestFailure if bad"""
    text = data.decode("utf-8", "replace")
    m = RECEIVED_RX.match(text)
    if not m:
        raise TestFailure("stored message does not start with the trace headers: %r"
                          % text[:300])
    return m, data[len(text[:m.end()].encode()):]


def check_stored(data, token, addr="127.0.0.1", by=HOST, size=None):
    m, rest = parse_stored(data)
    eq(rest, stored_message(token, size), "message body after trace headers")
    eq(m.group("addr"), addr, "Received: from address")
    eq(m.group("by"), by, "Received: by")
    return m


def find_token(world, token, user="alice"):
    """the stored files holding token"""
    t = token.encode()
    return [(fn, d) for fn, d in world.read_new(user) if t in d]


def token():
    return uuid.uuid4().hex[:16]


def deliver_one(world, port, host="127.0.0.1", addr=None, by=HOST, sock=None,
                helo="client.test"):
    """one session, one message; checks the 250, the file and its Received"""
    tok = token()
    c = Client(port, host, sock=sock)
    try:
        c.greeting()
        r = c.mail(tok, helo=helo)
        check(r.code == 250 and "queued as" in r.text, "DATA reply %r" % r.text)
        c.cmd("QUIT", 221)
    finally:
        c.close()
    end = time.time() + 10
    got = []
    while time.time() < end and not got:
        got = find_token(world, tok)
        if not got:
            time.sleep(0.05)
    eq(len(got), 1, "files holding token %s" % tok)
    want = addr or (("IPv6:" + host) if ":" in host else host)
    m = check_stored(got[0][1], tok, addr=want, by=by)
    qid = r.text.rsplit(" ", 1)[1]
    eq(m.group("qid"), qid, "Received id vs queued-as id")
    return tok, qid, got[0][0]
