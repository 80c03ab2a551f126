"""Only real mailboxes, one copy per mailbox, subaddresses, catch-all,
loops by mailbox (issue 15, items 1, 2, 4, 5, 8)."""
import os

from conftest import DOMAIN, empty_maildir, maildir_files, message, send


def test_service_accounts_refused(users, smtpd_factory):
    s = smtpd_factory().start()
    c = s.client()
    c.cmd("MAIL FROM:<sender@client.test>", 250)
    for name in ("daemon", "nobody", "man", "mail", "bin", "sys", "www-data",
                 "rtnohome", "rtnotown", "root"):
        r = c.cmd("RCPT TO:<%s@%s>" % (name, DOMAIN))
        assert (r.code, r.enh()) == (550, "5.1.1"), (name, r)
    r = c.cmd("RCPT TO:<rtalice@%s>" % DOMAIN)
    assert r.code == 250
    c.cmd("RSET", 250)
    c.quit()
    assert s.queued() == []
    assert [f for f in os.listdir(s.spool) if not f.startswith(".")] == []
    assert not os.path.exists(os.path.join(users["rtnohome"].pw_dir))
    assert "to=<daemon@example.test> result=rejected" in s.logtext() or \
        "daemon@example.test" in s.logtext()


def hundred_forms():
    """100 spellings of rtalice's mailbox: the plain name first"""
    forms = ["rtalice", "RTALICE", "RtAlIcE", '"rtalice"', '"RTalice"',
             '"\\r\\t\\a\\l\\i\\c\\e"', '"\\R\\T\\A\\L\\I\\C\\E"']
    i = 0
    while len(forms) < 100:
        kind = i % 6
        if kind == 0:
            forms.append("rtalice+tag%d" % i)
        elif kind == 1:
            forms.append('"rtalice+q %d"' % i)
        elif kind == 2:
            forms.append("al%d" % i)            # an alias
        elif kind == 3:
            forms.append("nosuch%d" % i)        # the catch-all
        elif kind == 4:
            forms.append("RTAlice+X%d" % i)
        else:
            forms.append('"al%d"' % (i - 3))    # a quoted alias
        i += 1
    return [f + "@" + DOMAIN for f in forms[:100]]


def test_hundred_forms_one_copy(users, smtpd_factory):
    alice = users["rtalice"]
    empty_maildir(alice)
    s = smtpd_factory("recipient_delimiter=+", "catchall=%s:rtalice" % DOMAIN)
    s.write_aliases("postmaster: rtalice\n" +
                    "".join("al%d: rtalice\n" % i for i in range(0, 200, 6)))
    s.start()
    c = s.client()
    forms = hundred_forms()
    assert len(set(forms)) == 100
    codes, r = send(c, forms, message("hundred"))
    c.quit()
    assert codes == [250] * 100
    assert r.code == 250, r
    files = maildir_files(alice)
    assert len(files) == 1, files
    data = open(files[0], "rb").read()
    assert data.count(b"Delivered-To:") == 1
    assert b"Delivered-To: rtalice@example.test\n" in data
    assert s.queued() == []


def test_subaddress_folder_read_over_imap(users, dovecot, smtpd_factory):
    alice = users["rtalice"]
    empty_maildir(alice)
    dovecot.doveadm("mailbox", "create", "-u", "rtalice", "lists")
    assert os.path.isdir(os.path.join(alice.pw_dir, "Maildir", ".lists"))
    s = smtpd_factory("recipient_delimiter=+").start()
    c = s.client()
    codes, r = send(c, ["rtalice+lists@" + DOMAIN],
                            message("for the list", msgid="<lists-1@client.test>"))
    assert codes == [250] and r.code == 250
    c.quit()
    assert len(maildir_files(alice, "lists")) == 1
    assert maildir_files(alice) == []
    got = dovecot.messages("rtalice", "lists")
    assert len(got) == 1 and b"<lists-1@client.test>" in got[0]
    assert b"Delivered-To: rtalice+lists@example.test" in got[0]


def test_hostile_tags_go_to_inbox(users, smtpd_factory):
    alice = users["rtalice"]
    empty_maildir(alice)
    md = os.path.join(alice.pw_dir, "Maildir")
    os.makedirs(os.path.join(alice.pw_dir, "x"), exist_ok=True)
    before = sorted(os.listdir(md))
    s = smtpd_factory("recipient_delimiter=+").start()
    tags = ['"rtalice+../x"', '"rtalice+."', "rtalice+a/b", '"rtalice+/etc"',
            '"rtalice+a..b"', "rtalice+UPPER", '"rtalice+\\x01"', "rtalice+&Jjo-"]
    for t in tags:
        c = s.client()
        codes, r = send(c, [t + "@" + DOMAIN], message("hostile " + t))
        c.quit()
        assert codes == [250] and r.code == 250, t
    assert len(maildir_files(alice)) == len(tags)
    assert os.listdir(os.path.join(alice.pw_dir, "x")) == []
    # no folder made, nothing filed outside the inbox
    assert sorted(os.listdir(md)) == before
    for folder in [n[1:] for n in os.listdir(md) if n.startswith(".") and
                   os.path.isdir(os.path.join(md, n))]:
        for f in maildir_files(alice, folder):
            assert b"hostile" not in open(f, "rb").read(), f


def test_catchall_off_by_default(users, smtpd_factory):
    s = smtpd_factory().start()
    c = s.client()
    c.cmd("MAIL FROM:<sender@client.test>", 250)
    c.cmd("RCPT TO:<nosuchuser@%s>" % DOMAIN, 550)
    c.quit()


def test_loop_by_mailbox(users, smtpd_factory):
    alice = users["rtalice"]
    empty_maildir(alice)
    s = smtpd_factory("recipient_delimiter=+").start()
    for dto in ("RTALICE@example.test", "rtalice+x@EXAMPLE.TEST", "postmaster@example.test"):
        c = s.client()
        codes, r = send(c, ["rtalice@" + DOMAIN],
                                   message("loop", extra="Delivered-To: %s\r\n" % dto))
        c.quit()
        assert (r.code, r.enh()) == (554, "5.4.6"), (dto, r)
    # another recipient's loop refuses the whole message (documented)
    c = s.client()
    codes, r = send(c, ["rtalice@" + DOMAIN, "rtbob@" + DOMAIN],
                            message("loop2", extra="Delivered-To: rtbob@example.test\r\n"))
    c.quit()
    assert r.code == 554
    assert maildir_files(alice) == []
    assert s.queued() == []
