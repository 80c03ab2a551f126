"""conftest.py - fixtures for the routing suite (issue 15): real system
users, a private Dovecot (IMAP, LMTP, quota, Sieve) from a temp config
dir, smtpd supervisors on free loopback ports, and a small SMTP client.

Runs as root (system users, Dovecot delivering as them); skipped otherwise.
Every wait is bounded; everything started is stopped, also on failure.
"""
import imaplib
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

import smtptest as S  # tests/lib, on the path by tests/conftest.py
from smtptest import free_port, wait_until

SMTPD = S.smtpd_path()
DOMAIN = "example.test"
LDOMAIN = "lmtp.test"          # a domain delivered over LMTP
TIMEOUT = 20
USERS = ("rtalice", "rtbob", "rtquota")     # real people: uid >= 1000, own home
PASSWORD = "secret"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def wait_for(cond, timeout=TIMEOUT, what="condition"):
    if not wait_until(cond, timeout, 0.05):
        raise AssertionError("timed out waiting for " + what)


def wait_port(port, proc=None, path=None, timeout=TIMEOUT):
    """a TCP port on loopback (or a unix socket path) is listened on"""
    if path is None:
        if not S.wait_listen(port, timeout=timeout, proc=proc):
            raise AssertionError("port %s not listened on (exit status %s)" %
                                 (port, proc.poll() if proc else None))
        return

    def up():
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s" % proc.returncode)
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()
    wait_for(up, timeout, "socket %s" % path)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# ------------------------------------------------------------ system users

def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def drop_user(name):
    if run(["getent", "passwd", name]).returncode == 0:
        run(["userdel", name])


def add_user(name, home, create_home=True):
    drop_user(name)
    args = ["useradd", "-K", "UID_MIN=1000", "-d", home, "-s", "/usr/sbin/nologin"]
    args += ["-m"] if create_home else ["-M"]
    r = run(args + [name])
    assert r.returncode == 0, r.stderr
    return pwd.getpwnam(name)


def make_maildir(pw, path):
    for sub in ("", "/tmp", "/new", "/cur"):
        os.makedirs(path + sub, exist_ok=True)
        os.chown(path + sub, pw.pw_uid, pw.pw_gid)
        os.chmod(path + sub, 0o700)


@pytest.fixture(scope="session")
def base():
    d = tempfile.mkdtemp(prefix="smtpd-route-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def users(base):
    """the real users, each with ~/Maildir; plus two that must be refused"""
    homes = os.path.join(base, "home")
    os.makedirs(homes)
    os.chmod(homes, 0o755)
    made = {}
    try:
        for u in USERS:
            pw = add_user(u, os.path.join(homes, u))
            make_maildir(pw, os.path.join(pw.pw_dir, "Maildir"))
            made[u] = pw
        made["rtnohome"] = add_user("rtnohome", os.path.join(homes, "rtnohome"), False)
        pw = add_user("rtnotown", os.path.join(homes, "rtnotown"))
        os.chown(pw.pw_dir, 0, 0)      # a home that is not its own
        made["rtnotown"] = pw
        yield made
    finally:
        for u in list(USERS) + ["rtnohome", "rtnotown"]:
            drop_user(u)


def maildir_files(pw, folder=""):
    """names of the files in new/ and cur/ of the inbox or a .folder"""
    md = os.path.join(pw.pw_dir, "Maildir", "." + folder if folder else "")
    out = []
    for sub in ("new", "cur"):
        p = os.path.join(md, sub)
        if os.path.isdir(p):
            out += [os.path.join(p, f) for f in os.listdir(p)]
    return sorted(out)


def empty_maildir(pw):
    md = os.path.join(pw.pw_dir, "Maildir")
    for root, dirs, files in os.walk(md):
        for f in files:
            if os.path.basename(root) in ("new", "cur", "tmp"):
                os.unlink(os.path.join(root, f))


# ------------------------------------------------------------------ Dovecot

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
instance_name = smtpd-route-{port}
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_username_format = %Ln
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1000
mail_location = maildir:~/Maildir
mail_plugins = quota
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Ln {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%Ln {d}/passwd
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  quota = maildir:User quota
  sieve_before = {d}/filter.sieve
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lport}
  }}
}}
"""

SIEVE = """\
require ["fileinto"];
if header :contains "Subject" "[sieve]" {
  fileinto "Filed";
  stop;
}
"""


class Dovecot:
    """a private Dovecot: IMAP on a port, LMTP on a socket and a port"""

    def __init__(self, d, users):
        self.d = d
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        self.port, self.lport = free_port(), free_port()
        self.conf = os.path.join(d, "dovecot.conf")
        self.lmtp_socket = os.path.join(d, "run", "lmtp")
        with open(os.path.join(d, "passwd"), "w") as f:
            for name, pw in users.items():
                extra = ""
                if name == "rtquota":
                    extra = "userdb_quota_rule=*:storage=20K userdb_quota_rule2=*:messages=3"
                f.write("%s:{PLAIN}%s:%d:%d::%s::%s\n" % (
                    name, PASSWORD, pw.pw_uid, pw.pw_gid, pw.pw_dir, extra))
        with open(os.path.join(d, "filter.sieve"), "w") as f:
            f.write(SIEVE)
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(d=d, port=self.port, lport=self.lport))
        for fn in ("passwd", "filter.sieve", "dovecot.conf"):
            os.chmod(os.path.join(d, fn), 0o644)
        self.proc = None
        self.start()

    def start(self):
        logf = open(os.path.join(self.d, "stdout.log"), "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT)
        logf.close()
        try:
            wait_port(self.port, self.proc)
            wait_port(None, self.proc, path=self.lmtp_socket)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (e, self.logs()))

    def stop(self):
        if self.proc:
            stop(self.proc)
            self.proc = None

    def logs(self):
        out = ""
        for fn in ("stdout.log", "dovecot.log"):
            try:
                out += open(os.path.join(self.d, fn)).read()[-2000:]
            except OSError:
                pass
        return out

    def doveadm(self, *args):
        r = run(["doveadm", "-c", self.conf] + list(args))
        assert r.returncode == 0, "doveadm %s: %s %s" % (args, r.stdout, r.stderr)
        return r.stdout

    def imap(self, user):
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=TIMEOUT)
        m.login(user, PASSWORD)
        return m

    def messages(self, user, folder="INBOX"):
        """the raw messages in a folder, read over IMAP"""
        m = self.imap(user)
        try:
            typ, _ = m.select('"%s"' % folder, readonly=True)
            if typ != "OK":
                return None
            typ, data = m.search(None, "ALL")
            out = []
            for num in data[0].split():
                typ, msg = m.fetch(num, "(RFC822)")
                out.append(msg[0][1])
            return out
        finally:
            m.logout()


@pytest.fixture(scope="session")
def dovecot(base, users):
    dv = Dovecot(os.path.join(base, "dovecot"), users)
    yield dv
    dv.stop()


# -------------------------------------------------------------------- smtpd

class Smtpd:
    """one smtpd supervisor on a free port, with its own spool and log"""

    def __init__(self, d, *opts):
        self.d = d
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        self.port = free_port()
        self.spool = os.path.join(d, "spool")
        self.log = os.path.join(d, "smtpd.log")
        self.aliases = os.path.join(d, "aliases")
        if not os.path.exists(self.aliases):
            self.write_aliases("postmaster: rtalice\n")
        self.opts = ["hostname=mx.test", "local_domains=%s,%s" % (DOMAIN, LDOMAIN),
                     "spool_dir=" + self.spool, "session_user=smtpd",
                     "postmaster=rtalice", "queue_interval=0", "workers=2",
                     "aliases=" + self.aliases] + list(opts)
        self.proc = None

    def write_aliases(self, text):
        tmp = self.aliases + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.aliases)

    def args(self):
        return [a for o in self.opts for a in ("-o", o)]

    def start(self):
        self.proc = S.Proc([SMTPD, "-e"] + self.args() + ["-l", "127.0.0.1:%d" % self.port],
                           self.log, name="smtpd")
        wait_port(self.port, self.proc)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop(timeout=15)
            self.proc = None

    def cli(self, *args):
        """smtpd -e OPTS ARGS: (status, stdout, stderr)"""
        r = run([SMTPD, "-e"] + self.args() + list(args))
        with open(self.log, "a") as f:
            f.write(r.stderr)
        return r.returncode, r.stdout, r.stderr

    def client(self):
        c = smtplib.SMTP("127.0.0.1", self.port, timeout=TIMEOUT)
        c.ehlo("client.test")
        return c

    def logtext(self):
        try:
            return open(self.log, errors="replace").read()
        except OSError:
            return ""

    def queued(self):
        return sorted(f for f in os.listdir(self.spool) if f.endswith(".env")) \
            if os.path.isdir(self.spool) else []


@pytest.fixture
def smtpd_factory(base, request):
    made = []

    def make(*opts):
        d = tempfile.mkdtemp(prefix="s-", dir=base)
        s = Smtpd(d, *opts)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def message(subject="test", size=0, extra="", msgid=None):
    """a message as bytes; size pads the body to about that many octets"""
    msgid = msgid or "<%s.%d@client.test>" % (time.time(), os.getpid())
    head = ("From: sender@client.test\r\nTo: someone@example.test\r\n"
            "Subject: %s\r\nMessage-ID: %s\r\n%s\r\n" % (subject, msgid, extra))
    body = "hello\r\n"
    while len(head) + len(body) < size:
        body += "x" * 70 + "\r\n"
    return (head + body).encode()


def send(c, rcpts, data, sender="sender@client.test"):
    """MAIL, each RCPT, DATA: (list of RCPT codes, DATA reply (code, text))"""
    code, _ = c.mail(sender)
    assert code == 250
    codes = [c.rcpt(r) for r in rcpts]
    if not any(x[0] == 250 for x in codes):
        c.rset()
        return [x[0] for x in codes], None
    r = c.data(data)
    return [x[0] for x in codes], r
