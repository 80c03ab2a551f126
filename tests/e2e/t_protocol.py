"""the SMTP dialogue: greeting, EHLO, reply codes, sequence, limits"""
import time

import pytest

from smtptest import TestFailure, check, crlf, eq, expect, qid_of

# One session each: (test, session settings, EHLO name or None, the dialogue
# as "COMMAND => CODE [ENHANCED]" steps, nothing stored after QUIT?)
DIALOGUES = [
    ("unknown_verb", {}, "client.test",
     "FOOBAR => 500 5.5.2 | MAILX FROM:<a@b.test> => 500 5.5.2 | NOOP => 250 2.0.0", False),
    ("unimplemented_verbs", {}, "client.test",
     "EXPN alice => 502 5.5.1 | TURN => 502 5.5.1 | SEND FROM:<a@remote.test> => 502 5.5.1"
     " | SOML FROM:<a@remote.test> => 502 5.5.1 | SAML FROM:<a@remote.test> => 502 5.5.1"
     " | ETRN example.test => 502 5.5.1 | NOOP => 250 2.0.0", False),
    ("bad_arguments", {}, "client.test",
     "EHLO => 501 5.5.4 | EHLO client.test => 250 | MAIL FROM:<not an address> => 501 5.1.7"
     " | MAIL FROM:<a@@remote.test> => 501 5.1.7 | MAIL FROM:<s@remote.test> => 250 2.1.0"
     " | RCPT TO:<bad address@example.test> => 501 5.1.3 | RCPT TO:<alice@> => 501 5.1.3"
     " | RCPT TO:<alice@example.test> => 250 2.1.5", False),
    ("unknown_user", {}, "client.test",
     "MAIL FROM:<s@remote.test> => 250 2.1.0 | RCPT TO:<nosuch@example.test> => 550 5.1.1"
     " | DATA => 503 5.5.1", True),
    # MAIL before EHLO: 503 without an enhanced code (none offered yet)
    ("bad_sequence", {}, None,
     "MAIL FROM:<s@remote.test> => 503 | EHLO client.test => 250"
     " | RCPT TO:<alice@example.test> => 503 5.5.1 | DATA => 503 5.5.1"
     " | MAIL FROM:<s@remote.test> => 250 2.1.0 | DATA => 503 5.5.1"
     " | MAIL FROM:<t@remote.test> => 503 5.5.1 | RSET => 250 2.0.0"
     " | RCPT TO:<alice@example.test> => 503 5.5.1", True),
    # NOTIFY=: DSN is not offered
    ("unknown_parameters", {}, "client.test",
     "MAIL FROM:<s@remote.test> FOO=BAR => 555 5.5.4"
     " | MAIL FROM:<s@remote.test> NOTIFY=NEVER => 555 5.5.4"
     " | MAIL FROM:<s@remote.test> BODY=8BITMIME => 250 2.1.0"
     " | RCPT TO:<alice@example.test> XYZZY=1 => 555 5.5.4"
     " | RCPT TO:<alice@example.test> => 250 2.1.5", False),
    ("non_ascii_without_smtputf8", {}, "client.test",
     "MAIL FROM:<j\u00f6s\u00e9@remote.test> => 553 5.6.7 | MAIL FROM:<s@remote.test> => 250 2.1.0"
     " | RCPT TO:<\u00e5lice@example.test> => 553 5.6.7", False),
    ("ehlo_resets_transaction", {}, "client.test",
     "MAIL FROM:<s@remote.test> => 250 2.1.0 | RCPT TO:<alice@example.test> => 250 2.1.5"
     " | EHLO again.test => 250 | DATA => 503 5.5.1", True),
    ("bad_mail_parameters", {}, "client.test",
     "MAIL FROM:<s@remote.test> SIZE=abc => 501 5.5.4"
     " | MAIL FROM:<s@remote.test> BODY=9BIT => 501 5.5.4"
     " | MAIL FROM:<s@remote.test> BODY=7BIT SIZE=100 => 250 2.1.0", False),
    ("bdat_bad_arguments", {}, "client.test",
     "MAIL FROM:<s@remote.test> => 250 2.1.0 | RCPT TO:<alice@example.test> => 250 2.1.5"
     " | NOOP => 250 2.0.0 | BDAT abc => 421 4.5.4", False),  # no size: 421, closed
    ("users_file_missing_is_temporary", {"virtual_users": "/nonexistent/smtpd-e2e-users"},
     "client.test", "MAIL FROM:<s@remote.test> => 250 2.1.0"
     " | RCPT TO:<bob@example.test> => 451 4.3.0 | QUIT => 221 2.0.0", False),
]


@pytest.mark.parametrize("opts,ehlo,script,nothing_stored", [d[1:] for d in DIALOGUES],
                         ids=[d[0] for d in DIALOGUES])
def test_dialogue(T, opts, ehlo, script, nothing_stored):
    env, c = T.session(ehlo=ehlo, opts=opts)
    c.dialogue(script)
    if nothing_stored:
        env.quit_nothing_stored(c)


def test_greeting_and_ehlo(T):
    env, c = T.session(greet=False, ehlo=None, opts={"size_limit": "1000000"})
    r = c.reply()
    eq(r.lines, ["220 mx.test ESMTP smtpd"], "greeting")
    r = c.cmd("EHLO client.test", 250)
    check(r.lines[0].startswith("250-mx.test") or r.lines[0].startswith("250 mx.test"),
          "first EHLO line %r" % r.lines[0])
    exts = {l[4:].strip() for l in r.lines[1:]}
    for want in ("PIPELINING", "8BITMIME", "SIZE 1000000", "ENHANCEDSTATUSCODES",
                 "SMTPUTF8", "CHUNKING"):
        check(want in exts, "EHLO lacks %r; got %r" % (want, sorted(exts)))
    c.cmd("NOOP", 250, "2.0.0")
    c.quit()
    c.read_to_eof()


def test_session_exits_0_after_quit(T):
    env, c = T.session()
    c.quit()
    c.read_to_eof()
    c.close()
    eq(env.wait_sessions(), [0], "smtpd exit status after QUIT")


def test_vrfy_help_noop_rset_quit(T):
    env, c = T.session()
    c.cmd("VRFY alice", 252, "2.5.0")
    r = c.cmd("HELP", 214)
    check(r.enh() is not None, "HELP reply without enhanced code: %r" % r.text)
    c.cmd("NOOP", 250, "2.0.0")
    c.cmd("noop", 250, "2.0.0", "lower-case noop")
    c.cmd("RSET", 250, "2.0.0")
    c.quit()
    c.read_to_eof()


def test_relay_denied(T):
    env, c = T.session()
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0")
    c.cmd("RCPT TO:<victim@elsewhere.test>", 550, "5.7.1")
    c.cmd("RCPT TO:<alice@example.test.elsewhere.test>", 550, "5.7.1")
    c.cmd("RCPT TO:<alice%elsewhere.test@example.test>", 550, None, "percent hack")
    c.send("RCPT TO:<@example.test:victim@elsewhere.test>\r\n")
    r = c.reply()
    check(r.code in (550, 501), "source-routed relay RCPT: want 550 5.7.1 or 501, got %r" % r.text)
    env.quit_nothing_stored(c)


def test_size_declared_over_limit(T):
    env, c = T.session(ehlo=None, opts={"size_limit": "10000"})
    r = c.cmd("EHLO client.test", 250)
    check("SIZE 10000" in [l[4:] for l in r.lines], "EHLO lacks SIZE 10000: %r" % r.text)
    c.cmd("MAIL FROM:<s@remote.test> SIZE=20000", 552, "5.3.4")
    c.cmd("MAIL FROM:<s@remote.test> SIZE=5000", 250, "2.1.0")
    c.cmd("RCPT TO:<alice@example.test>", 250, "2.1.5")


def test_size_undeclared_oversize(T):
    env, c = T.session(opts={"size_limit": "10000"})
    body = b"Subject: too big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 300
    c.send_message("s@remote.test", ["alice@example.test"], body,
                 code=552, enh="5.3.4")
    c.cmd("NOOP", 250, "2.0.0", "NOOP after the oversize message")
    small = "Subject: small\n\nfits\n"
    qid = qid_of(c.send_message("s@remote.test", ["bob@example.test"], crlf(small)))
    env.quit(c)
    env.assert_nothing_stored(["alice"])
    env.check_stored("bob", qid, small)
    eq(env.spool_files(), [], "spool after the session")


def test_smtputf8_delivery(T):
    env, c = T.session()
    sender = "j\u00f6s\u00e9@r\u00e9mote.test"
    body = "Subject: \u00fcnicode\n\nSMTPUTF8 body \u2713\n"
    r = c.send_message(sender, ["alice@example.test"], crlf(body), params="SMTPUTF8")
    qid = qid_of(r)
    c.quit()
    env.check_stored("alice", qid, body, sender=sender, with_="UTF8SMTP")


def test_pipelining(T):
    env, c = T.session()
    c.send("MAIL FROM:<p@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
           "RCPT TO:<nosuch@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    for code, enh, what in ((250, "2.1.0", "MAIL"), (250, "2.1.5", "RCPT alice"),
                            (550, "5.1.1", "RCPT nosuch"), (250, "2.1.5", "RCPT bob"),
                            (354, None, "DATA")):
        expect(c.reply(), code, enh, "pipelined " + what)
    body = "Subject: pipe\n\npipelined\n"
    c.send(crlf(body) + b".\r\nNOOP\r\nQUIT\r\n")
    qid = qid_of(c.reply())
    expect(c.reply(), 250, "2.0.0", "pipelined NOOP")
    expect(c.reply(), 221, "2.0.0", "pipelined QUIT")
    c.read_to_eof()
    for u in ("alice", "bob"):
        env.check_stored(u, qid, body, sender="p@remote.test", single=False)


def test_pipelined_transactions(T):
    env, c = T.session()
    b1, b2 = "Subject: one\n\nfirst\n", "Subject: two\n\nsecond\n"
    c.send("MAIL FROM:<p@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    for code in (250, 250, 354):
        expect(c.reply(), code, None, "first transaction")
    c.send(crlf(b1) + b".\r\nRSET\r\nMAIL FROM:<q@remote.test>\r\n"
           b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
    q1 = qid_of(c.reply())
    for code, enh in ((250, "2.0.0"), (250, "2.1.0"), (250, "2.1.5"), (354, None)):
        expect(c.reply(), code, enh, "second pipelined group")
    c.send(crlf(b2) + b".\r\n")
    q2 = qid_of(c.reply())
    check(q1 != q2, "same QID for two messages: %s" % q1)
    env.quit(c)
    got = env.read_new("alice")
    eq(len(got), 2, "files in alice's new/")
    bodies = sorted(d.split(b"\n\n", 1)[1] for _, d in got)
    eq(bodies, [b"first\n", b"second\n"], "bodies")


def test_rset_discards_transaction(T):
    env, c = T.session()
    c.mail_rcpt("s@remote.test", "bob@example.test")
    c.cmd("RSET", 250, "2.0.0")
    c.cmd("DATA", 503, "5.5.1", "DATA after RSET")
    body = "Subject: after rset\n\nonly alice\n"
    qid = qid_of(c.send_message("t@remote.test", ["alice@example.test"], crlf(body)))
    env.quit(c)
    env.check_stored("alice", qid, body, sender="t@remote.test")
    eq(env.files("bob"), [], "bob's new/ after RSET")


def test_command_line_too_long(T):
    env, c = T.session()
    c.send(b"NOOP " + b"A" * 600 + b"HELP\r\n")
    r = c.reply()
    expect(r, 500, "5.5.2", "600-octet NOOP line")
    check(c.nothing_pending(0.5), "extra reply after the long line: %r" % c.buf[:200])
    c.cmd("NOOP", 250, "2.0.0", "NOOP after the long line")
    c.send(b"MAIL FROM:<" + b"a" * 5000 + b"@remote.test>\r\n")
    expect(c.reply(), 500, "5.5.2", "5000-octet MAIL line")
    check(c.nothing_pending(0.5), "extra reply after the 5000-octet line: %r" % c.buf[:200])
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0", "MAIL after the long lines")


def test_command_line_limit_boundary(T):
    env, c = T.session()
    line = b"NOOP " + b"x" * (512 - 5 - 2)          # 512 octets with CRLF
    c.send(line + b"\r\n")
    expect(c.reply(), 250, "2.0.0", "NOOP line of exactly 512 octets incl. CRLF")
    c.send(line + b"y\r\n")
    expect(c.reply(), 500, "5.5.2", "NOOP line of 513 octets incl. CRLF")
    env2 = T.env(opts={"cmdline_limit": "1000"})
    c2 = env2.client()
    c2.send(b"NOOP " + b"x" * 900 + b"\r\n")
    expect(c2.reply(), 250, "2.0.0", "907-octet line with cmdline_limit=1000")


def test_error_limit(T):
    env, c = T.session(opts={"error_limit": "3"})
    seen = []
    for i in range(10):
        try:
            c.send("BOGUS%d\r\n" % i)
            r = c.reply()
        except (OSError, TestFailure) as e:
            raise TestFailure("connection ended without 421 after replies %r (%s)" % (seen, e))
        seen.append(r.text)
        if r.code == 421:
            expect(r, 421, "4.7.0", "error limit reply")
            break
        expect(r, 500, "5.5.2", "bogus command %d" % i)
    else:
        raise TestFailure("no 421 after 10 errors with error_limit=3: %r" % seen)
    check(len(seen) <= 4, "421 came only after %d errors with error_limit=3" % (len(seen) - 1))
    c.read_to_eof()
    env.wait_sessions()


def test_command_timeout(T):
    env, c = T.session(opts={"cmd_timeout": "1"})
    t0 = time.time()
    r = c.reply(timeout=8)
    dt = time.time() - t0
    expect(r, 421, "4.4.2", "after idling past cmd_timeout=1")
    check(0.5 <= dt <= 6, "timeout reply after %.1fs with cmd_timeout=1" % dt)
    c.read_to_eof()
    env.wait_sessions()


def test_data_timeout(T):
    env, c = T.session(opts={"data_timeout": "1"})
    c.open_data("s@remote.test", "alice@example.test")
    c.send(b"Subject: stalled\r\n\r\nhalf a mess")
    r = c.reply(timeout=8)
    check(r.code == 421 and (r.enh() or "").startswith("4."),
          "after stalling past data_timeout=1: want 421 4.x.x, got %r" % r.text)
    c.read_to_eof()
    env.wait_sessions()
    env.assert_nothing_stored()
    eq(env.spool_files(), [], "spool after the data timeout")
