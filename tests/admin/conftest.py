"""conftest.py - fixtures for the administrator's tools: an inetd-style
smtpd on a socketpair, a virtual-users world in a temp dir, the queue."""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMTPD = os.environ.get("SMTPD", os.path.join(ROOT, "smtpd"))


def owner():
    """(uid, gid) that mailboxes get: ours, or the session account's as root"""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


class World:
    """a temp dir with users alice and bob, a spool and a log file"""

    def __init__(self, path):
        self.path = path
        self.spool = os.path.join(path, "spool")
        self.log = os.path.join(path, "smtpd.log")
        uid, gid = owner()
        os.chmod(path, 0o755)
        with open(os.path.join(path, "users"), "w") as f:
            for u in ("alice", "bob"):
                md = self.maildir(u)
                for sub in ("tmp", "new", "cur"):
                    os.makedirs(os.path.join(md, sub))
                if os.getuid() == 0:
                    for d in (os.path.dirname(md), md) + tuple(
                            os.path.join(md, s) for s in ("tmp", "new", "cur")):
                        os.chown(d, uid, gid)
                f.write("%s:%d:%d:%s\n" % (u, uid, gid, md))
        os.chmod(os.path.join(path, "users"), 0o644)

    def maildir(self, user):
        return os.path.join(self.path, user, "Maildir")

    def opts(self, *extra):
        o = ["hostname=mx.test", "local_domains=example.test",
             "virtual_users=" + os.path.join(self.path, "users"),
             "spool_dir=" + self.spool, "postmaster=alice",
             "session_user=nobody", "queue_interval=0"] + list(extra)
        return [a for x in o for a in ("-o", x)]

    def run(self, *args, timeout=30):
        """smtpd with our settings and args; (exit status, stdout, stderr)"""
        p = subprocess.run([SMTPD, "-e"] + self.opts() + list(args),
                           capture_output=True, text=True, timeout=timeout)
        with open(self.log, "a") as f:
            f.write(p.stderr)
        return p.returncode, p.stdout, p.stderr

    def session(self, script, timeout=20):
        """one inetd-style session fed `script` (bytes); the replies"""
        a, b = socket.socketpair()
        with open(self.log, "ab") as logf:
            p = subprocess.Popen([SMTPD, "-e"] + self.opts(), stdin=b, stdout=b,
                                 stderr=logf)
            b.close()
            a.settimeout(timeout)
            a.sendall(script)
            out = b""
            deadline = time.time() + timeout
            while time.time() < deadline:
                chunk = a.recv(65536)
                if not chunk:
                    break
                out += chunk
            a.close()
            p.wait(timeout=timeout)
        return out.decode("utf-8", "replace")

    def files(self, user, sub="new"):
        return sorted(os.listdir(os.path.join(self.maildir(user), sub)))

    def logtext(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()


def message(rcpts, body="hello", sender="sender@client.test", ehlo="client.test"):
    """an SMTP session script delivering one message"""
    s = "EHLO %s\r\nMAIL FROM:<%s>\r\n" % (ehlo, sender)
    s += "".join("RCPT TO:<%s>\r\n" % r for r in rcpts)
    s += "DATA\r\nSubject: t\r\n\r\n%s\r\n.\r\nQUIT\r\n" % body
    return s.encode()


@pytest.fixture
def world():
    path = tempfile.mkdtemp(prefix="smtpd-admin-")
    try:
        yield World(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)
