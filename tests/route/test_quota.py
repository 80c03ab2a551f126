"""Maildir++ quota (issue 15, item 6), against Dovecot's own quota plugin
(maildir backend): 452 4.2.2 at RCPT, 552 5.2.2 at end of data for the
recipient a message would push over, maildirsize kept right (doveadm)."""
import os
import re
import time

from conftest import DOMAIN, empty_maildir, maildir_files, message, send


def room_ms():
    """deliver.h's ROOM_MS: how long a delivery's "room after it" is trusted"""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "deliver.h")) as f:
        m = re.search(r"#define\s+ROOM_MS\s+(\d+)", f.read())
    assert m
    return int(m.group(1))


def maildirsize(pw):
    with open(os.path.join(pw.pw_dir, "Maildir", "maildirsize")) as f:
        lines = f.read().splitlines()
    used = [l.split() for l in lines[1:] if l.strip()]
    return lines[0], sum(int(b) for b, c in used), sum(int(c) for b, c in used)


def doveadm_quota(dovecot, user):
    """(storage KB, messages) as Dovecot's quota plugin counts them"""
    out = dovecot.doveadm("quota", "get", "-u", user)
    storage = re.search(r"STORAGE\s+(\d+)\s+(\d+)", out)
    count = re.search(r"MESSAGE\s+(\d+)\s+(\d+)", out)
    assert storage and count, out
    return int(storage.group(1)), int(count.group(1)), int(storage.group(2)), \
        int(count.group(2))


def fresh_quota(q, dovecot):
    """an empty Maildir whose maildirsize Dovecot has just written anew"""
    empty_maildir(q)
    try:
        os.unlink(os.path.join(q.pw_dir, "Maildir", "maildirsize"))
    except FileNotFoundError:
        pass
    dovecot.doveadm("quota", "recalc", "-u", q.pw_name)


def test_quota_with_dovecot(users, dovecot, smtpd_factory):
    q, alice = users["rtquota"], users["rtalice"]
    fresh_quota(q, dovecot)
    limits, used, count = maildirsize(q)
    assert limits == "20480S,3C", limits
    assert (used, count) == (0, 0)
    s = smtpd_factory().serve()

    # under the limit: delivered, and counted the way Dovecot counts
    for i in range(2):
        c = s.client()
        codes, r = send(c, ["rtquota@" + DOMAIN], message("q%d" % i, 3000))
        c.quit()
        assert codes == [250] and r.code == 250
    limits, used, count = maildirsize(q)
    files = maildir_files(q)
    assert count == 2 and used == sum(os.path.getsize(f) for f in files)
    kb, msgs, kb_limit, msg_limit = doveadm_quota(dovecot, "rtquota")
    assert (msgs, kb_limit, msg_limit) == (2, 20, 3)
    assert kb == -(-used // 1024), (kb, used)   # Dovecot rounds up to KB

    # would push over: 552 5.2.2 for this recipient alone
    c = s.client()
    codes, r = send(c, ["rtquota@" + DOMAIN], message("big", 16000))
    c.quit()
    assert codes == [250] and (r.code, r.enh()) == (552, "5.2.2"), r
    assert len(maildir_files(q)) == 2

    # with another recipient: the other still gets it; the full one is queued
    empty_maildir(alice)
    c = s.client()
    codes, r = send(c, ["rtquota@" + DOMAIN, "rtalice@" + DOMAIN],
                               message("big2", 16000))
    c.quit()
    assert codes == [250, 250] and r.code == 250, r
    assert len(maildir_files(alice)) == 1 and len(maildir_files(q)) == 2
    assert len(s.queued()) == 1

    # the third message fills the count: 452 4.2.2 at RCPT
    c = s.client()
    codes, r = send(c, ["rtquota@" + DOMAIN], message("q3", 1000))
    assert r.code == 250
    # at once, in the same session: that delivery said the mailbox is
    # full now, so the RCPT-time question is asked again, never answered
    # from the earlier deliveries' "room left"
    c.cmd("MAIL FROM:<sender@client.test>", 250)
    r = c.cmd("RCPT TO:<rtquota@%s>" % DOMAIN)
    assert (r.code, r.enh()) == (452, "4.2.2"), r
    c.quit()
    # a new session may land on the other worker, whose deliverer said
    # "room" after q1 less than ROOM_MS ago (deliver.h): that word may
    # accept the RCPT, but the deliverer reads the quota before the write
    # and refuses the message at end of data; nothing is stored
    c = s.client()
    codes, r = send(c, ["rtquota@" + DOMAIN], message("q4", 1000))
    c.quit()
    assert codes == [452] or (codes == [250] and (r.code, r.enh()) == (452, "4.2.2")), \
        (codes, r)
    assert len(maildir_files(q)) == 3 and len(s.queued()) == 1   # big2 alone
    # once every worker's word has aged out, RCPT is refused in any session
    time.sleep(room_ms() / 1000 + 0.2)
    for _ in range(2):
        c = s.client()
        c.cmd("MAIL FROM:<sender@client.test>", 250)
        r = c.cmd("RCPT TO:<rtquota@%s>" % DOMAIN)
        c.quit()
        assert (r.code, r.enh()) == (452, "4.2.2"), r
    limits, used, count = maildirsize(q)
    kb, msgs, _, _ = doveadm_quota(dovecot, "rtquota")
    assert (msgs, kb) == (count, -(-used // 1024)) == (3, -(-used // 1024))

    # Dovecot frees room (expunge): smtpd sees it at once
    dovecot.doveadm("expunge", "-u", "rtquota", "mailbox", "INBOX", "all")
    kb, msgs, _, _ = doveadm_quota(dovecot, "rtquota")
    assert msgs == 0
    c = s.client()
    codes, r = send(c, ["rtquota@" + DOMAIN], message("after", 2000))
    c.quit()
    assert r.code == 250
    kb, msgs, _, _ = doveadm_quota(dovecot, "rtquota")
    limits, used, count = maildirsize(q)
    assert msgs == count == 1 and kb == -(-used // 1024)


def test_room_word_gone_stale(users, dovecot, smtpd_factory):
    """a delivery's "room after it" answers the next RCPT for up to ROOM_MS;
    when someone else fills the mailbox meanwhile (another worker's
    deliverer; here Dovecot's count, written by hand), that RCPT is
    accepted, the end of data refuses the message, and nothing is stored"""
    q = users["rtquota"]
    fresh_quota(q, dovecot)
    s = smtpd_factory().serve()
    c = s.client()
    t0 = time.monotonic()       # the word is younger than this
    codes, r = send(c, ["rtquota@" + DOMAIN], message("first", 1000))
    assert codes == [250] and r.code == 250, r
    with open(os.path.join(q.pw_dir, "Maildir", "maildirsize"), "a") as f:
        f.write("2000 2\n")         # full now: 3 messages of 3
    c.cmd("MAIL FROM:<sender@client.test>", 250)
    r = c.cmd("RCPT TO:<rtquota@%s>" % DOMAIN)
    fresh = time.monotonic() - t0 < room_ms() / 1000
    if r.code == 250:               # the word answered
        c.cmd("DATA", 354)
        r = c.end_data(message("second", 1000), code=None)
        assert (r.code, r.enh()) == (452, "4.2.2"), r
    else:                           # only once the word has aged out
        assert not fresh and (r.code, r.enh()) == (452, "4.2.2"), r
    c.quit()
    assert len(maildir_files(q)) == 1
