"""reading delivered mail back with Debian's Dovecot over IMAP"""
import imaplib
import os

import pytest

import servers
from smtptest import MAIL_GID, MAIL_UID, TestFailure, check, crlf, eq, free_port, qid_of

def imap_dovecot(d, port, maildir, home):
    """IMAP on port for alice, whose Maildir is maildir"""
    passwd = "alice:{PLAIN}secret:%d:%d::%s::userdb_mail=maildir:%s\n" % (
        MAIL_UID, MAIL_GID, home, maildir)
    body = ("auth_mechanisms = plain\ndisable_plaintext_auth = no\n"
            "mail_location = maildir:%s\n" % maildir + servers.imap_login(port))
    conf = servers.dovecot_conf(d, "smtpd-e2e-%d" % port, "imap",
                                os.path.join(d, "dovecot-passwd"), body)
    return servers.Dovecot(d, conf, {"dovecot-passwd": passwd}, ports=(port,), imap_port=port)


def test_dovecot_reads_delivered_mail(T):
    if not servers.dovecot_binary():
        pytest.skip("dovecot not installed")
    env = T.env()
    body = ("From: s@remote.test\nTo: alice@example.test\nSubject: for dovecot\n\n"
            "Read me over IMAP.\n.dotted\n8bit: caf\u00e9\n")
    c = env.client()
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"], crlf(body)))
    env.quit(c)
    _, stored = env.check_stored("alice", qid, body)
    port = free_port()
    md = env.maildir("alice")
    dv = imap_dovecot(os.path.join(env.dir, "dovecot"), port, md, os.path.dirname(md))
    try:
        dv.start()
        msgs = dv.messages("alice", "secret")
    except (imaplib.IMAP4.error, OSError) as e:
        raise TestFailure("IMAP: %s; dovecot log: %s" % (e, dv.logs(800)))
    finally:
        dv.stop()
    check(msgs is not None, "IMAP SELECT INBOX: %s" % dv.logs(800))
    eq(len(msgs), 1, "messages in INBOX over IMAP")
    want = stored.replace(b"\n", b"\r\n")
    if msgs[0] != want:
        raise TestFailure("IMAP RFC822 differs: got %r, want %r" % (msgs[0][:300], want[:300]))
