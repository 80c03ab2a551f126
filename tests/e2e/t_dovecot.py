"""reading delivered mail back with Debian's Dovecot over IMAP"""
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import time

import pytest

import smtptest as S
from smtptest import MAIL_GID, MAIL_UID, TIMEOUT, TestFailure, crlf, eq, free_port, qid_of

DOVECOT = "/usr/sbin/dovecot"


def find_dovecot():
    if os.access(DOVECOT, os.X_OK):
        return DOVECOT
    return shutil.which("dovecot")


def dovecot_conf(d, port, maildir, home):
    passwd = os.path.join(d, "dovecot-passwd")
    with open(passwd, "w") as f:
        f.write("alice:{PLAIN}secret:%d:%d::%s::userdb_mail=maildir:%s\n"
                % (MAIL_UID, MAIL_GID, home, maildir))
    if S.IS_ROOT:
        login_user, internal_user = "dovenull", "dovecot"
        internal_group = "dovecot"
        chroot = ""
    else:
        login_user = internal_user = pwd.getpwuid(os.getuid()).pw_name
        internal_group = grp.getgrgid(os.getgid()).gr_name
        chroot = "  chroot =\n"
    os.chmod(passwd, 0o644)
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""\
base_dir = {d}/run
state_dir = {d}/state
instance_name = smtpd-e2e-{port}
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
mail_location = maildir:{maildir}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{chroot}}}
""".format(d=d, port=port, login_user=login_user, internal_user=internal_user,
           internal_group=internal_group, maildir=maildir, passwd=passwd, chroot=chroot))
    os.chmod(conf, 0o644)
    return conf


def wait_port(port, proc, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def run_dovecot(dovecot, d, conf, port):
    logf = open(os.path.join(d, "dovecot-stdout.log"), "wb")
    p = subprocess.Popen([dovecot, "-F", "-c", conf], stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    if not wait_port(port, p):
        stop_dovecot(p)
        raise TestFailure("dovecot did not listen on %d: %s" % (port, dovecot_logs(d)))
    return p


def dovecot_logs(d):
    out = []
    for fn in ("dovecot-stdout.log", "dovecot.log"):
        try:
            with open(os.path.join(d, fn), "rb") as f:
                out.append(f.read().decode("utf-8", "replace")[-800:])
        except OSError:
            pass
    return " / ".join(" ".join(x.split()) for x in out)


def stop_dovecot(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def imap_fetch_all(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    try:
        typ, _ = m.login("alice", "secret")
        eq(typ, "OK", "IMAP LOGIN")
        typ, data = m.select("INBOX")
        eq(typ, "OK", "IMAP SELECT")
        n = int(data[0])
        msgs = []
        for i in range(1, n + 1):
            typ, data = m.fetch(str(i), "(RFC822)")
            eq(typ, "OK", "IMAP FETCH %d" % i)
            msgs.append(data[0][1])
        m.logout()
        return msgs
    finally:
        try:
            m.shutdown()
        except Exception:       # noqa: BLE001
            pass


def test_dovecot_reads_delivered_mail(T):
    dovecot = find_dovecot()
    if not dovecot:
        pytest.skip("dovecot not installed")
    env = T.env()
    body = ("From: s@remote.test\nTo: alice@example.test\nSubject: for dovecot\n\n"
            "Read me over IMAP.\n.dotted\n8bit: caf\u00e9\n")
    c = env.client()
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"], crlf(body)))
    env.quit(c)
    _, stored = env.check_stored("alice", qid, body)
    port = free_port()
    d = os.path.join(env.dir, "dovecot")
    os.mkdir(d, 0o755)
    conf = dovecot_conf(d, port, env.maildir("alice"), os.path.dirname(env.maildir("alice")))
    p = run_dovecot(dovecot, d, conf, port)
    try:
        try:
            msgs = imap_fetch_all(port)
        except (imaplib.IMAP4.error, OSError) as e:
            raise TestFailure("IMAP: %s; dovecot log: %s" % (e, dovecot_logs(d)))
    finally:
        stop_dovecot(p)
    eq(len(msgs), 1, "messages in INBOX over IMAP")
    want = stored.replace(b"\n", b"\r\n")
    if msgs[0] != want:
        raise TestFailure("IMAP RFC822 differs: got %r, want %r" % (msgs[0][:300], want[:300]))
