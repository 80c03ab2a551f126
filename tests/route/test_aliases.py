"""Aliases (issue 15, item 3): expansion, recursion, loops, refused
targets at smtpd -n with FILE:LINE, live edits, broken edits."""
import os
import time

from conftest import DOMAIN, empty_maildir, maildir_files, message, send, wait_for

ROLE = """\
# RFC 2142 role addresses
postmaster: root
abuse:      postmaster
hostmaster: root
root:       rtalice
team:       rtalice,
            rtbob      # continuation line
sales@example.test: team
"""


def test_expansion_and_recursion(users, smtpd_factory):
    alice, bob = users["rtalice"], users["rtbob"]
    empty_maildir(alice), empty_maildir(bob)
    s = smtpd_factory()
    s.write_aliases(ROLE)
    s.start()
    for rcpt, want in (("abuse", (1, 0)), ("hostmaster", (2, 0)), ("Root", (3, 0)),
                       ("sales", (4, 1)), ("team", (5, 2))):
        c = s.client()
        codes, r = send(c, ["%s@%s" % (rcpt, DOMAIN)], message(rcpt))
        c.quit()
        assert codes == [250] and r.code == 250, rcpt
        assert (len(maildir_files(alice)), len(maildir_files(bob))) == want, rcpt
    data = open(maildir_files(bob)[0], "rb").read()
    assert b"Delivered-To: sales@example.test\n" in data
    # a domain-qualified key matches only its domain
    c = s.client()
    c.cmd("MAIL FROM:<x@client.test>", 250)
    c.cmd("RCPT TO:<sales@lmtp.test>", 550)
    c.quit()
    # postmaster and abuse to one mailbox: one copy
    c = s.client()
    codes, r = send(c, ["postmaster@" + DOMAIN, "abuse@" + DOMAIN, "root@" + DOMAIN],
                            message("roles"))
    c.quit()
    assert codes == [250, 250, 250] and r.code == 250
    assert len(maildir_files(alice)) == 6


def test_loop_refused(users, smtpd_factory):
    s = smtpd_factory()
    s.write_aliases("postmaster: rtalice\nping: pong\npong: ping\n")
    s.start()
    c = s.client()
    c.cmd("MAIL FROM:<x@client.test>", 250)
    r = c.cmd("RCPT TO:<ping@%s>" % DOMAIN)
    c.quit()
    assert (r.code, r.enh()) == (451, "4.3.5")
    assert "alias name=ping result=rejected reason=loop" in s.logtext()
    status, out, err = s.cli("-n")
    assert status != 0
    assert "%s:2: alias ping loops back to itself" % s.aliases in err


def test_refused_targets_at_check(users, smtpd_factory):
    s = smtpd_factory()
    cases = [("prog: |/usr/bin/procmail\n", "program targets"),
             ("inc: :include:/etc/list\n", ":include:"),
             ("file: /var/mail/x\n", "file targets"),
             ("fwd: someone@elsewhere.example\n", "remote target refused")]
    for line, why in cases:
        s.write_aliases("postmaster: rtalice\n# comment\n\n" + line)
        status, out, err = s.cli("-n")
        assert status != 0, line
        assert "%s:4: %s" % (s.aliases, why) in err, err
    s.write_aliases(ROLE)
    status, out, err = s.cli("-n")
    assert status == 0, err


def test_example_file_checks(users, smtpd_factory):
    """etc/aliases: postmaster, abuse, hostmaster, root; valid with root -> a user"""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = open(os.path.join(root, "etc", "aliases")).read()
    keys = {l.split(":")[0].strip() for l in text.splitlines()
            if l.strip() and not l.startswith((" ", "\t", "#"))}
    assert {"postmaster", "abuse", "hostmaster", "root"} <= keys
    s = smtpd_factory()
    assert "root:\t\tadmin\n" in text
    s.write_aliases(text.replace("root:\t\tadmin", "root: rtalice"))
    status, out, err = s.cli("-n")
    assert status == 0, err


def test_live_edit_and_broken_edit(users, smtpd_factory):
    bob = users["rtbob"]
    empty_maildir(bob)
    s = smtpd_factory()
    s.write_aliases("postmaster: rtalice\n")
    s.start()
    c = s.client()
    c.cmd("MAIL FROM:<x@client.test>", 250)
    c.cmd("RCPT TO:<helpdesk@%s>" % DOMAIN, 550)
    c.quit()
    time.sleep(0.05)
    s.write_aliases("postmaster: rtalice\nhelpdesk: rtbob\n")
    c = s.client()
    codes, r = send(c, ["helpdesk@" + DOMAIN], message("live"))
    c.quit()
    assert codes == [250] and r.code == 250
    wait_for(lambda: len(maildir_files(bob)) == 1, what="copy for rtbob")
    # a broken edit: the running server keeps the last good table
    s.write_aliases("postmaster: rtalice\nhelpdesk: rtbob\nbad: |/bin/sh\n")
    c = s.client()
    codes, r = send(c, ["helpdesk@" + DOMAIN], message("still"))
    c.quit()
    assert codes == [250] and r.code == 250
    assert len(maildir_files(bob)) == 2
    log = s.logtext()
    assert "aliases file=%s result=rejected" % s.aliases.replace("-", "-") in log or \
        "result=rejected kept=2" in log, log[-2000:]
    assert ":3: program targets" in log
    status, out, err = s.cli("-n")
    assert status != 0 and "%s:3: program targets" % s.aliases in err
