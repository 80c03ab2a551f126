"""LMTP delivery to a real Dovecot (issue 15, item 7): Sieve files the
message (so Dovecot did the delivery), read back over IMAP; RCPT checked
by the LMTP server; Dovecot down -> 451 4.4.1 or queued, delivered by the
next queue run; two smtpd instances into one Dovecot, each message once."""
import os
import threading

from conftest import (DOMAIN, LDOMAIN, Dovecot, empty_maildir, maildir_files,
                      message, send, wait_for)


def lmtp_opts(dv, spec=None):
    spec = spec or "lmtp:unix:" + dv.lmtp_socket
    return ["delivery=maildir, %s=%s" % (LDOMAIN, spec), "recipient_delimiter=+"]


def test_sieve_files_message(users, dovecot, smtpd_factory):
    empty_maildir(users["rtalice"])
    s = smtpd_factory(*lmtp_opts(dovecot)).start()
    c = s.client()
    codes, r = send(c, ["rtalice@" + LDOMAIN],
                               message("[sieve] filed", msgid="<sieve-1@client.test>"))
    c.quit()
    assert codes == [250] and r.code == 250, r
    got = dovecot.messages("rtalice", "Filed")
    assert got and len(got) == 1 and b"<sieve-1@client.test>" in got[0]
    assert b"Return-Path: <sender@client.test>" in got[0]
    assert b"Received: from client.test" in got[0]      # ours, streamed as is
    assert s.queued() == []
    assert "lmtp" not in "".join(os.listdir(s.spool))


def test_rcpt_checked_by_lmtp_server(users, dovecot, smtpd_factory):
    s = smtpd_factory(*lmtp_opts(dovecot)).start()
    c = s.client()
    c.cmd("MAIL FROM:<sender@client.test>", 250)
    r = c.cmd("RCPT TO:<nobody-here@%s>" % LDOMAIN)
    assert (r.code, r.enh()) == (550, "5.1.1"), r
    c.cmd("RCPT TO:<rtbob@%s>" % LDOMAIN, 250)
    c.cmd("RCPT TO:<RTBOB+x@%s>" % LDOMAIN, 250)      # same mailbox: one copy
    c.cmd("DATA", 354)
    r = c.end_data(message("checked", msgid="<checked-1@client.test>"), code=None)
    c.quit()
    assert r.code == 250, r
    inbox = dovecot.messages("rtbob", "INBOX") or []
    assert sum(b"<checked-1@client.test>" in m for m in inbox) == 1


def test_tcp_spec_and_alias(users, dovecot, smtpd_factory):
    s = smtpd_factory(*lmtp_opts(dovecot, "lmtp:127.0.0.1:%d" % dovecot.lport))
    s.write_aliases("postmaster: rtalice\nhelp@lmtp.test: rtbob\n")
    s.start()
    c = s.client()
    codes, r = send(c, ["help@" + LDOMAIN],
                            message("via tcp", msgid="<tcp-1@client.test>"))
    c.quit()
    assert r.code == 250
    assert any(b"<tcp-1@client.test>" in m for m in dovecot.messages("rtbob"))


def test_dovecot_down_then_queue(users, base, smtpd_factory):
    dv = Dovecot(os.path.join(base, "dovecot-down"), users)
    try:
        alice = users["rtalice"]
        empty_maildir(alice)
        s = smtpd_factory(*lmtp_opts(dv)).start()
        # down at RCPT: 451 4.4.1, nothing kept
        dv.stop()
        c = s.client()
        c.cmd("MAIL FROM:<sender@client.test>", 250)
        r = c.cmd("RCPT TO:<rtbob@%s>" % LDOMAIN)
        c.quit()
        assert (r.code, r.enh()) == (451, "4.4.1"), r
        assert s.queued() == []
        # up at RCPT, gone before the data: the LMTP recipient is queued
        dv.start()
        c = s.client()
        c.cmd("MAIL FROM:<sender@client.test>", 250)
        c.cmd("RCPT TO:<rtalice@%s>" % DOMAIN, 250)      # a Maildir recipient
        c.cmd("RCPT TO:<rtbob@%s>" % LDOMAIN, 250)
        dv.stop()
        c.cmd("DATA", 354)
        r = c.end_data(message("[sieve] later", msgid="<later-1@client.test>"), code=None)
        c.quit()
        assert r.code == 250, r
        assert len(maildir_files(alice)) == 1
        assert len(s.queued()) == 1
        env = open(os.path.join(s.spool, s.queued()[0])).read()
        assert "R @lmtp rtbob@lmtp.test" in env, env
        # the next queue run after the restart delivers it, once
        dv.start()
        status, out, err = s.cli("-q")
        assert status == 0, err
        wait_for(lambda: s.queued() == [], what="queue to empty")
        got = dv.messages("rtbob", "Filed")
        assert got and sum(b"<later-1@client.test>" in m for m in got) == 1
        assert len(maildir_files(alice)) == 1
    finally:
        dv.stop()


def test_two_smtpd_one_dovecot(users, dovecot, smtpd_factory):
    n = 15
    a = smtpd_factory(*lmtp_opts(dovecot)).start()
    b = smtpd_factory(*lmtp_opts(dovecot)).start()
    errors = []

    def feed(s, tag):
        try:
            for i in range(n):
                c = s.client()
                codes, r = send(
                    c, ["rtalice@" + LDOMAIN, "rtbob@" + LDOMAIN],
                    message("[sieve] two", msgid="<two-%s-%d@client.test>" % (tag, i)))
                c.quit()
                if r.code != 250:
                    errors.append((tag, i, r))
        except Exception as e:      # reported below, not lost in the thread
            errors.append((tag, repr(e)))
    threads = [threading.Thread(target=feed, args=(s, t)) for s, t in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for user in ("rtalice", "rtbob"):
        got = [m for m in dovecot.messages(user, "Filed") if b"<two-" in m]
        ids = sorted(m.split(b"Message-ID: ")[1].split(b"\r\n")[0] for m in got)
        want = sorted(("<two-%s-%d@client.test>" % (t, i)).encode()
                      for t in "ab" for i in range(n))
        assert ids == want, user
