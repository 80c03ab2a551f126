"""servers.py - the real third-party servers the Python suites and the
benchmarks start, each from configuration text written into a directory
of its own: Dovecot (dovecot_conf() writes the text every instance here
shares, Dovecot starts and stops it), dnsmasq (Dnsmasq, dns_query) and
Postfix (postfix_instance(), its master.cf in one place).

Loopback only; every wait is bounded; what is started runs in its own
process group (smtptest.Proc) and is stopped with it.  Python 3
standard library only.
"""
import grp
import imaplib
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess

import smtptest as S

# ---------------------------------------------------------------- Dovecot

def dovecot_binary():
    """Debian's /usr/sbin/dovecot (not on an ordinary user's PATH), or None"""
    for path in ("/usr/sbin/dovecot", shutil.which("dovecot")):
        if path and os.access(path, os.X_OK):
            return path
    return None


DOVECOT_BASE = """\
base_dir = {d}/run
state_dir = {d}/state
instance_name = {instance}
listen = 127.0.0.1
protocols = {protocols}
ssl = no
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {first_valid_uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format={user_format} {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format={user_format} {passwd}
}}
"""

# LMTP on a unix socket, run/lmtp below the instance's directory
LMTP_SOCKET = """\
  unix_listener lmtp {
    mode = 0666
  }
"""


def inet_listener(port, name=""):
    """a service's inet_listener block on 127.0.0.1:port"""
    return "  inet_listener %s{\n    address = 127.0.0.1\n    port = %d\n  }\n" % (
        name + " " if name else "", port)


def imap_login(port):
    """IMAP on 127.0.0.1:port, IMAPS off (not chrooted when we are not root)"""
    return ("service imap-login {\n" + inet_listener(port, "imap") +
            "  inet_listener imaps {\n    port = 0\n  }\n" +
            ("" if S.IS_ROOT else "  chroot =\n") + "}\n")


def dovecot_conf(d, instance, protocols, passwd, body, first_valid_uid=1, user_format="%u"):
    """dovecot.conf's text: its directories and log below d, loopback, no
    SSL, users from the passwd-file passwd, Debian's accounts as root (the
    starting user's otherwise); then body (plugins, services)"""
    if S.IS_ROOT:
        login, internal, group = "dovenull", "dovecot", "dovecot"
    else:
        login = internal = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
    return DOVECOT_BASE.format(d=d, instance=instance, protocols=protocols, login_user=login,
                               internal_user=internal, internal_group=group,
                               first_valid_uid=first_valid_uid, user_format=user_format,
                               passwd=passwd) + body


def unix_connectable(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Dovecot:
    """a private Dovecot in directory d: dovecot.conf from conf, and files
    ({name: text}, mode 0644) beside it; start() waits until it listens
    on every port in ports and every unix socket in sockets"""

    def __init__(self, d, conf, files=None, ports=(), sockets=(), imap_port=None):
        self.d = d
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        self.conf = os.path.join(d, "dovecot.conf")
        self.ports, self.sockets, self.imap_port = ports, sockets, imap_port
        for name, text in dict(files or {}, **{"dovecot.conf": conf}).items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
            os.chmod(os.path.join(d, name), 0o644)
        self.proc = None

    def argv(self):
        return [dovecot_binary() or "dovecot", "-F", "-c", self.conf]

    def start(self, timeout=30):
        self.proc = S.Proc(self.argv(), os.path.join(self.d, "stdout.log"), name="dovecot")
        up = all(S.wait_listen(p, timeout=timeout, proc=self.proc) for p in self.ports) and \
            all(S.wait_until(lambda: self.proc.poll() is not None or unix_connectable(s),
                             timeout) and self.proc.poll() is None for s in self.sockets)
        if not up:
            self.stop()
            raise S.TestFailure("dovecot did not come up: " + self.logs())
        return self

    def stop(self):
        if self.proc:
            self.proc.stop(timeout=15)
            self.proc = None

    def logs(self, n=2000):
        out = []
        for fn in ("stdout.log", "dovecot.log"):
            try:
                with open(os.path.join(self.d, fn), "rb") as f:
                    out.append(f.read()[-n:].decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)

    def doveadm(self, *args):
        r = subprocess.run(["doveadm", "-c", self.conf] + list(args), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, "doveadm %s: %s %s" % (args, r.stdout, r.stderr)
        return r.stdout

    def messages(self, user, password, folder="INBOX"):
        """the raw messages in a folder, read over IMAP (None: no such folder)"""
        m = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=S.TIMEOUT)
        try:
            m.login(user, password)
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


# ---------------------------------------------------------------- dnsmasq

def dns_query(port, name, qtype=1, timeout=2, addr="127.0.0.1"):
    """one query to addr:port; (rcode, answer count) or None"""
    q = struct.pack(">HHHHHH", 4321, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (addr, port))
        d, _ = s.recvfrom(2048)
        return d[3] & 15, struct.unpack(">H", d[6:8])[0]
    except OSError:
        return None
    finally:
        s.close()


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Dnsmasq:
    """Debian's dnsmasq in directory d from conf, a text whose @PORT@ is
    its port (a free one, tried again when taken, unless port is given);
    up when ready, a name with an A record in conf, is answered"""

    def __init__(self, d, conf, ready, addr="127.0.0.1", port=None, tries=5):
        self.addr = addr
        self.conf = os.path.join(d, "dnsmasq.conf")
        self.log = os.path.join(d, "dnsmasq.log")
        for _ in range(tries if port is None else 1):
            self.port = port or free_udp_port()
            with open(self.conf, "w") as f:
                f.write(conf.replace("@PORT@", str(self.port)))
            self.proc = S.Proc(["dnsmasq", "-k", "-C", self.conf,
                                "--pid-file=" + os.path.join(d, "dnsmasq.pid")],
                               self.log, name="dnsmasq")
            if S.wait_until(lambda: self.proc.poll() is not None or
                            dns_query(self.port, ready, timeout=0.3, addr=addr) == (0, 1), 10) \
                    and self.proc.poll() is None:
                return
            self.proc.stop()
        raise RuntimeError("dnsmasq did not start: " + open(self.log).read()[-2000:])

    @property
    def server(self):
        return "%s:%d" % (self.addr, self.port)

    def queries(self, name):
        """how many times dnsmasq was asked for name (its log-queries lines)"""
        try:
            with open(self.log, errors="replace") as f:
                return sum(1 for l in f if re.search(r"query\[\w+\] %s from" % re.escape(name), l))
        except OSError:
            return 0

    def stop(self):
        self.proc.stop()


# ---------------------------------------------------------------- Postfix

# the services of master.cf every Postfix instance here has (the first
# lines, its listener, are each instance's own)
POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_instance(d, main_cf, listeners="", conf=None):
    """a fresh Postfix instance in directory d: queue/ and data/ (Postfix's),
    main.cf and master.cf (listeners, then POSTFIX_SERVICES) in conf
    (default d); returns the config directory"""
    conf = conf or d
    for sub in (d, conf, os.path.join(d, "queue"), os.path.join(d, "data")):
        os.makedirs(sub, exist_ok=True)
    os.chmod(d, 0o755)
    pw = pwd.getpwnam("postfix")
    os.chown(os.path.join(d, "data"), pw.pw_uid, pw.pw_gid)
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(main_cf)
    with open(os.path.join(conf, "master.cf"), "w") as f:
        f.write(listeners + POSTFIX_SERVICES)
    return conf
