"""conftest.py - a small world for the hardening tests (issue 11).

One test's world: a temp directory (0755) with a spool, a virtual users
file (alice, bob; Maildirs owned by MAIL_UID), a log file, and ways to
run the real binary: `session()` serves one SMTP session over a
socketpair (inetd style: the socket on fds 0 and 1, fd 2 the log), and
`run()` runs any other mode (-q, -n).  As root the session runs as the
dedicated account `smtpd` (made here when missing, as tests/install-deps.sh
does on a clean machine).  Every wait is bounded.
Files and processes through tests/lib/smtptest.py (on the path by
tests/conftest.py); the session client here reads replies as text.
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import smtptest as S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMTPD = os.path.abspath(os.environ.get("SMTPD", os.path.join(ROOT, "smtpd")))
IS_ROOT = os.geteuid() == 0
TIMEOUT = 20
MAIL_UID = MAIL_GID = 64123 if IS_ROOT else os.getuid()
DOMAIN = "example.test"


def session_account():
    """the dedicated session account, created when missing (root only)"""
    try:
        return pwd.getpwnam("smtpd")
    except KeyError:
        pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                    "/nonexistent", "--shell", "/usr/sbin/nologin", "smtpd"],
                   check=True, timeout=TIMEOUT)
    return pwd.getpwnam("smtpd")


class Client:
    """a raw SMTP client over a socket: bytes in, reply lines out"""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(TIMEOUT)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise AssertionError("connection closed; got %r" % lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] == b" ":
                return "\n".join(lines)

    def cmd(self, line, code=None):
        self.send(line + b"\r\n" if isinstance(line, bytes) else line + "\r\n")
        r = self.reply()
        if code is not None:
            assert r.startswith(str(code)), "%r: expected %s, got %r" % (line, code, r)
        return r

    def at_eof(self, timeout=5):
        """True when smtpd closes the connection within timeout seconds"""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, ConnectionResetError):
            return False
        finally:
            self.sock.settimeout(TIMEOUT)

    def close(self):
        self.sock.close()


class World:
    """one test's files and settings; see the module comment"""

    def __init__(self, path, opts):
        self.dir = path
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")
        self.log = os.path.join(self.dir, "log")
        self.users = os.path.join(self.dir, "users")
        self.procs = []
        with open(self.users, "w") as f:
            for u in ("alice", "bob"):
                home = os.path.join(self.dir, u)
                os.mkdir(home, 0o755)
                os.chown(home, MAIL_UID, MAIL_GID)
                f.write("%s:%d:%d:%s/Maildir\n" % (u, MAIL_UID, MAIL_GID, home))
        self.opts = {"hostname": "mx.test", "local_domains": DOMAIN,
                     "virtual_users": self.users, "spool_dir": self.spool,
                     "postmaster": "alice",
                     # the checks at the door have their own suite
                     # (tests/door): no PTR queries, no held greeting, and
                     # the slow sessions here are meant to live
                     "rdns": "0", "greet_wait": "0", "min_data_rate": "0"}
        if IS_ROOT:
            self.opts["session_user"] = session_account().pw_name
        self.opts.update(opts)

    def argv(self, *extra, **opts):
        o = dict(self.opts)
        o.update(opts)
        args = [SMTPD, "-e"]
        for k, v in o.items():
            args += ["-o", "%s=%s" % (k, v)]
        return args + list(extra)

    def session(self, env=None, **opts):
        """start one inetd-style session; returns (client, process)"""
        ours, theirs = socket.socketpair()
        log = open(self.log, "ab")
        e = dict(os.environ)
        e["TCPREMOTEIP"] = "192.0.2.7"
        e.update(env or {})
        p = subprocess.Popen(self.argv(**opts), stdin=theirs, stdout=theirs,
                             stderr=log, env=e, close_fds=True)
        theirs.close()
        log.close()
        self.procs.append(p)
        return Client(ours), p

    def run(self, *extra, timeout=TIMEOUT, **opts):
        """run smtpd in another mode to its end: CompletedProcess"""
        return subprocess.run(self.argv(*extra, **opts), capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def log_text(self):
        return S.file_text(self.log)

    def maildir(self, user, sub="new"):
        """names of the files in user's Maildir/sub (empty if none)"""
        d = os.path.join(self.dir, user, "Maildir", sub)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def message(self, user):
        names = self.maildir(user)
        assert len(names) == 1, "%s has %r" % (user, names)
        with open(os.path.join(self.dir, user, "Maildir", "new", names[0]), "rb") as f:
            return f.read()

    def spool_files(self):
        return sorted(os.listdir(self.spool)) if os.path.isdir(self.spool) else []

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=TIMEOUT)


@pytest.fixture
def world(request):
    marker = request.node.get_closest_marker("opts")
    path = tempfile.mkdtemp(prefix="smtpd-harden-")
    w = World(path, marker.kwargs if marker else {})
    yield w
    w.close()
    shutil.rmtree(path, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line("markers", "opts(**settings): smtpd settings for the world")


def wait_for(cond, timeout=TIMEOUT, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def greet(client, helo="client.example"):
    assert client.reply().startswith("220")
    client.cmd("EHLO " + helo, 250)


def fields(line):
    """the key=value fields of one log line, as a list of (key, value)"""
    return re.findall(r"(?:^| )([a-z_]+)=(\"[^\"]*\"|\S*)", line)
