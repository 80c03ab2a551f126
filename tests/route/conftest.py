"""conftest.py - fixtures for the routing suite (issue 15): real system
users, a private Dovecot (IMAP, LMTP, quota, Sieve) from a temp config
dir (tests/lib/servers.py), smtpd supervisors on free loopback ports, and
the shared SMTP client (smtptest.Client).

Runs as root (system users, Dovecot delivering as them); skipped otherwise.
Every wait is bounded; everything started is stopped, also on failure.
"""
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

import servers
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

# IMAP (quota), LMTP on a socket and a port (Sieve), Maildir++ quota
DOVECOT_BODY = """\
auth_mechanisms = plain
auth_username_format = %Ln
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
mail_plugins = quota
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
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
service lmtp {{
{lmtp}}}
"""

SIEVE = """\
require ["fileinto"];
if header :contains "Subject" "[sieve]" {
  fileinto "Filed";
  stop;
}
"""


class Dovecot(servers.Dovecot):
    """a private Dovecot: IMAP on a port, LMTP on a socket and a port"""

    def __init__(self, d, users):
        port, self.lport = free_port(), free_port()
        self.lmtp_socket = os.path.join(d, "run", "lmtp")
        passwd = ""
        for name, pw in users.items():
            extra = ""
            if name == "rtquota":
                extra = "userdb_quota_rule=*:storage=20K userdb_quota_rule2=*:messages=3"
            passwd += "%s:{PLAIN}%s:%d:%d::%s::%s\n" % (
                name, PASSWORD, pw.pw_uid, pw.pw_gid, pw.pw_dir, extra)
        body = DOVECOT_BODY.format(d=d, lmtp=servers.LMTP_SOCKET +
                                   servers.inet_listener(self.lport, "lmtp"))
        conf = servers.dovecot_conf(d, "smtpd-route-%d" % port, "imap lmtp",
                                    os.path.join(d, "passwd"), body + servers.imap_login(port),
                                    first_valid_uid=1000, user_format="%Ln")
        super().__init__(d, conf, {"passwd": passwd, "filter.sieve": SIEVE},
                         ports=(port, self.lport), sockets=(self.lmtp_socket,), imap_port=port)
        self.start()

    def messages(self, user, folder="INBOX"):
        return super().messages(user, PASSWORD, folder)


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
        if not S.wait_listen(self.port, timeout=TIMEOUT, proc=self.proc):
            raise AssertionError("smtpd did not listen on %d: %s" % (self.port, self.logtext()))
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
        """the shared client (smtptest.Client), greeted and after EHLO"""
        return S.connect(self.port, timeout=TIMEOUT)

    def logtext(self):
        return S.file_text(self.log)

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
    """the list of RCPT codes, and the end-of-data Reply (None when no
    recipient was accepted)"""
    rr, end = c.transaction(sender, rcpts, data)
    return [r.code for r in rr], end
