"""daemons.py - the real filter daemons, each started on loopback on a
free port with its own configuration in a temp directory, offline, and
stopped afterwards: rspamd (proxy worker in milter mode, self-scan),
clamd + clamav-milter (a signature file we write), OpenDKIM (a key
opendkim-genkey makes, public half from a file, not DNS), postgrey,
Dovecot's quota-status service (tests/lib/servers.py).  Every wait is
bounded."""
import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import servers
import smtptest as S
from smtptest import free_port

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


class DaemonError(Exception):
    pass


def dead_udp_port():
    """a UDP port nothing listens on: a nameserver that answers nothing"""
    return servers.free_udp_port()


def tempdir(name, owner=None):
    d = tempfile.mkdtemp(prefix="smtpd-filter-%s-" % name)
    os.chmod(d, 0o755)
    if owner and os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


def chown_tree(d, owner):
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(owner)
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
    os.chown(d, pw.pw_uid, pw.pw_gid)


def milter_ready(port, timeout):
    """a milter answers option negotiation (so its worker is up); port: a
    TCP port on loopback or the path of a unix socket"""
    end = time.time() + timeout
    while time.time() < end:
        try:
            if isinstance(port, str):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(2)
                s.connect(port)
            else:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.settimeout(max(1, end - time.time()))
            s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x31, 0xfffff))
            hdr = s.recv(5)
            s.close()
            if len(hdr) == 5 and hdr[4:5] == b"O":
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


class Daemon:
    """processes we started, stopped in reverse order"""

    def __init__(self, name, owner=None):
        self.name = name
        self.dir = tempdir(name, owner)
        self.procs = []
        self.dovecot = None     # a servers.Dovecot in dir, if any

    def spawn(self, argv, logname):
        with open(os.path.join(self.dir, logname), "ab") as log:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append(p)
        return p

    def logs(self, *names):
        out = []
        for n in names:
            try:
                with open(os.path.join(self.dir, n), "rb") as f:
                    out.append(f.read()[-1500:].decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)

    def up(self, port, ok, *logs):
        """the daemon answers on port (ok) or is stopped: DaemonError with
        the tails of its logs"""
        if not ok:
            text = self.logs(*logs)
            self.stop()
            raise DaemonError("%s did not come up: %s" % (self.name, text))
        self.port = port
        self.spec = "inet:127.0.0.1:%d" % port
        return self

    def stop(self):
        for p in reversed(self.procs):
            S.terminate(p)
        if self.dovecot:
            self.dovecot.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


RSPAMD_CONF = """\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}}
logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "info";
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    bind_socket = "{sock} mode=0666";
    milter = yes;
    timeout = 120s;
    upstream "local" {{ default = yes; self_scan = yes; }}
    count = 1;
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}}
"""


def start_rspamd():
    """rspamd's proxy worker as a self-scanning milter; ~15 s cold"""
    d = Daemon("rspamd", "_rspamd")
    port = free_port()
    sock = os.path.join(d.dir, "run", "milter.sock")
    local = os.path.join(d.dir, "local", "local.d")
    for sub in ("db", "run", "log", local):
        os.makedirs(os.path.join(d.dir, sub), exist_ok=True)
    with open(os.path.join(d.dir, "rspamd.conf"), "w") as f:
        f.write(RSPAMD_CONF.format(port=port, sock=sock))
    with open(os.path.join(local, "options.inc"), "w") as f:
        f.write('dns { nameserver = ["127.0.0.1:%d"]; timeout = 1s; retransmits = 1; }\n'
                % dead_udp_port())
    for mod in ("fuzzy_check", "rbl", "asn", "emails"):
        with open(os.path.join(local, mod + ".conf"), "w") as f:
            f.write("enabled = false;\n")
    with open(os.path.join(local, "milter_headers.conf"), "w") as f:
        f.write('skip_local = false;\nskip_authenticated = false;\n'
                'use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id",'
                ' "x-spam-status", "remove-spam-flag"];\n')
    chown_tree(d.dir, "_rspamd")
    v = lambda k, sub: "--var=%s=%s" % (k, os.path.join(d.dir, sub))   # noqa: E731
    d.spawn(["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd", "-c",
             os.path.join(d.dir, "rspamd.conf"), v("LOCAL_CONFDIR", "local"),
             v("DBDIR", "db"), v("RUNDIR", "run"), v("LOGDIR", "log")], "stdout.log")
    d.up(port, milter_ready(port, 90) and milter_ready(sock, 10), "stdout.log",
         "log/rspamd.log")
    d.unix_spec = "unix:" + sock    # the same worker on a unix socket
    return d


def start_clamav():
    """clamd with one signature we write (EICAR's MD5), and clamav-milter"""
    d = Daemon("clamav", "clamav")
    port = free_port()
    db = os.path.join(d.dir, "db")
    os.makedirs(db)
    import hashlib
    with open(os.path.join(db, "smtpd-test.hdb"), "w") as f:
        f.write("%s:%d:Smtpd.Test.EICAR\n" % (hashlib.md5(EICAR).hexdigest(), len(EICAR)))
    sock = os.path.join(d.dir, "clamd.sock")
    with open(os.path.join(d.dir, "clamd.conf"), "w") as f:
        f.write("LocalSocket %s\nForeground yes\nDatabaseDirectory %s\n"
                "LogFile %s/clamd.log\nPidFile %s/clamd.pid\nUser clamav\nScanMail yes\n"
                % (sock, db, d.dir, d.dir))
    with open(os.path.join(d.dir, "milter.conf"), "w") as f:
        f.write("MilterSocket inet:%d@127.0.0.1\nClamdSocket unix:%s\nForeground yes\n"
                "OnInfected Reject\nAddHeader Replace\nLogFile %s/milter.log\n"
                "PidFile %s/milter.pid\nUser clamav\nRejectMsg \"Virus found: %%v\"\n"
                % (port, sock, d.dir, d.dir))
    chown_tree(d.dir, "clamav")
    clamd = d.spawn(["clamd", "-c", os.path.join(d.dir, "clamd.conf")], "clamd.out")
    end = time.time() + 60
    while not os.path.exists(sock) and time.time() < end and clamd.poll() is None:
        time.sleep(0.1)
    d.spawn(["clamav-milter", "-c", os.path.join(d.dir, "milter.conf")], "milter.out")
    return d.up(port, os.path.exists(sock) and milter_ready(port, 30),
                "clamd.out", "clamd.log", "milter.out", "milter.log")


def start_postgrey(delay):
    d = Daemon("postgrey", "postgrey")
    port = free_port()
    os.makedirs(os.path.join(d.dir, "db"))
    empty = os.path.join(d.dir, "empty")
    open(empty, "w").close()
    chown_tree(d.dir, "postgrey")
    p = d.spawn(["postgrey", "--inet=127.0.0.1:%d" % port, "--dbdir=" + os.path.join(d.dir, "db"),
                 "--delay=%d" % delay, "--user=postgrey", "--group=postgrey",
                 "--whitelist-clients=" + empty, "--whitelist-recipients=" + empty,
                 "--auto-whitelist-clients=0", "--pidfile=" + os.path.join(d.dir, "pid")],
                "postgrey.log")
    return d.up(port, S.wait_listen(port, timeout=30, proc=p), "postgrey.log")


QUOTA_STATUS = """\
mail_plugins = quota
mail_location = maildir:~/Maildir
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage=1M
  quota_status_success = DUNNO
  quota_status_nouser = DUNNO
  quota_status_overquota = "552 5.2.2 Mailbox is full"
}}
service quota-status {{
  executable = quota-status -p postfix
{listener}  client_limit = 1
}}
"""


def start_quota_status(users):
    """Dovecot's quota-status policy service; users: name -> (uid, gid, home, kB)"""
    d = Daemon("dovecot")
    port = free_port()
    passwd = "".join("%s::%d:%d::%s::userdb_quota_rule=*:storage=%dK\n" % (name, uid, gid, home, kb)
                     for name, (uid, gid, home, kb) in users.items())
    conf = servers.dovecot_conf(d.dir, "smtpd-filter-%d" % port, "", os.path.join(d.dir, "passwd"),
                                QUOTA_STATUS.format(listener=servers.inet_listener(port)),
                                user_format="%n")
    d.dovecot = servers.Dovecot(d.dir, conf, {"passwd": passwd}, ports=(port,))
    try:
        d.dovecot.start()
    except S.TestFailure as e:
        d.stop()
        raise DaemonError(str(e))
    return d.up(port, True)


OPENDKIM_CONF = """\
Mode {mode}
Socket inet:{port}@127.0.0.1
Background no
Syslog no
LogResults yes
PidFile {d}/opendkim.pid
UserID {user}
Domain example.org
Selector sel
KeyFile {d}/sel.private
RequireSafeKeys no
Canonicalization relaxed/relaxed
AuthservID mx.test
InternalHosts {internal}
TestPublicKeys {d}/keys
DNSTimeout 1
"""


def dkim_key(d):
    """opendkim-genkey: sel.private in d; keys: the TXT record as
    TestPublicKeys wants it ("NAME value" on one line), offline"""
    subprocess.run(["opendkim-genkey", "-b", "2048", "-D", d, "-d", "example.org", "-s", "sel"],
                   check=True, timeout=60, capture_output=True)
    with open(os.path.join(d, "sel.txt")) as f:
        txt = "".join(part for part in f.read().split('"')[1::2])
    with open(os.path.join(d, "keys"), "w") as f:
        f.write("sel._domainkey.example.org %s\n" % txt)


def start_opendkim(mode, key_dir=None):
    """OpenDKIM as a milter: mode "s" signs mail from example.org sent by
    127.0.0.1 (an internal host), mode "v" verifies (no host internal)
    with the public key from the key file, never from DNS.  key_dir: the
    signer's directory, so a verifier shares its key."""
    d = Daemon("opendkim-" + mode, owner="opendkim")
    if key_dir:
        for n in ("sel.private", "sel.txt", "keys"):
            shutil.copy(os.path.join(key_dir, n), d.dir)
    else:
        dkim_key(d.dir)
    chown_tree(d.dir, "opendkim")
    port = free_port()
    conf = os.path.join(d.dir, "opendkim.conf")
    with open(conf, "w") as f:
        f.write(OPENDKIM_CONF.format(mode=mode, port=port, d=d.dir, user="opendkim",
                                     internal="127.0.0.1" if mode == "s" else "192.0.2.1"))
    p = d.spawn(["opendkim", "-f", "-x", conf], "opendkim.log")
    return d.up(port, milter_ready(port, 30) and p.poll() is None, "opendkim.log")
