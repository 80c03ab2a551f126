"""DATA content: bare CR/LF policy, smuggling, loops, line limits"""
import pytest

import smtptest as S
from smtptest import check, crlf, eq, expect, qid_of


def open_data(c, rcpt="alice@example.test", sender="s@remote.test"):
    c.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
    c.cmd("RCPT TO:<%s>" % rcpt, 250, "2.1.5")
    c.cmd("DATA", 354)


def bare_test(T, body):
    env, c = T.session()
    open_data(c)
    c.send(body + b"\r\n.\r\n")
    expect(c.reply(), 554, "5.6.0", "message with a bare CR or LF")
    check(c.nothing_pending(0.3), "extra reply after the 554: %r" % c.buf[:200])
    c.cmd("NOOP", 250, "2.0.0", "NOOP after the rejected message")
    env.quit_nothing_stored(c)
    eq(env.spool_files(), [], "spool")


def test_bare_lf_rejected(T):
    bare_test(T, b"Subject: bare lf\r\n\r\nline one\nline two")


def test_bare_cr_rejected(T):
    bare_test(T, b"Subject: bare cr\r\n\r\nline one\rline two")


def test_bare_lf_in_header_rejected(T):
    bare_test(T, b"Subject: bare lf\nX-Other: y\r\n\r\nbody")


SMUGGLE = b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled body\r\n"


def smuggle_test(T, fake_end):
    env, c = T.session()
    open_data(c)
    c.send(b"Subject: smuggling\r\n\r\nhello" + fake_end + SMUGGLE + b"\r\n.\r\n")
    r = c.reply()
    expect(r, 554, "5.6.0", "end of data after fake end %r" % fake_end)
    check(c.nothing_pending(0.5),
          "replies to smuggled commands after fake end %r: %r" % (fake_end, c.buf[:200]))
    # the session is in a sane state: a clean message to bob goes through
    clean = "Subject: clean\n\nnot smuggled\n"
    qid = qid_of(c.send_message("good@remote.test", ["bob@example.test"], crlf(clean)))
    c.quit()
    c.read_to_eof()
    env.wait_sessions()
    env.assert_nothing_stored(["alice"])
    env.check_stored("bob", qid, clean, sender="good@remote.test")
    eq(env.spool_files(), [], "spool")


SMUGGLE_ENDS = [("lf_dot_lf", b"\n.\n"), ("lf_dot_crlf", b"\n.\r\n"),
                ("crlf_dot_lf", b"\r\n.\n"), ("cr_dot_cr", b"\r.\r"),
                ("crlf_dot_cr", b"\r\n.\r"), ("cr_dot_crlf", b"\r.\r\n"),
                ("lf_dot_cr", b"\n.\r"), ("crlf_dot_crcrlf", b"\r\n.\r\r\n")]


@pytest.mark.parametrize("fake_end", [f for _, f in SMUGGLE_ENDS],
                         ids=[n for n, _ in SMUGGLE_ENDS])
def test_smuggle(T, fake_end):
    smuggle_test(T, fake_end)


def test_loop_too_many_received(T):
    env, c = T.session(opts={"hop_limit": "5"})
    hops = b"".join(b"Received: from h%d.test by h%d.test; Thu, 1 Jan 2025 00:00:00 +0000\r\n"
                    % (i, i + 1) for i in range(8))
    body = hops + b"Subject: looping\r\n\r\nloop\r\n"
    c.send_message("s@remote.test", ["alice@example.test"], body, code=554,
                 enh="5.4.6")
    few = b"".join(b"Received: from h%d.test by h%d.test; Thu, 1 Jan 2025 00:00:00 +0000\r\n"
                   % (i, i + 1) for i in range(2))
    ok = few + b"Subject: two hops\r\n\r\nfine\r\n"
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"], ok))
    env.quit(c)
    env.check_stored("alice", qid, ok.replace(b"\r\n", b"\n"))


def test_loop_default_hop_limit(T):
    env, c = T.session()
    hops = b"".join(b"Received: from h%d.test by h%d.test; Thu, 1 Jan 2025 00:00:00 +0000\r\n"
                    % (i, i + 1) for i in range(60))
    c.send_message("s@remote.test", ["alice@example.test"],
                 hops + b"Subject: looping\r\n\r\nloop\r\n", code=554, enh="5.4.6")
    env.quit_nothing_stored(c)


def test_loop_delivered_to(T):
    env, c = T.session()
    c.send_message("s@remote.test", ["alice@example.test"],
                 b"Delivered-To: alice@example.test\r\nSubject: loop\r\n\r\nloop\r\n",
                 code=554, enh="5.4.6")
    ok = b"Delivered-To: bob@example.test\r\nSubject: other\r\n\r\nnot a loop for alice\r\n"
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"], ok))
    env.quit(c)
    env.check_stored("alice", qid, ok.replace(b"\r\n", b"\n"))
    eq(env.files("bob"), [], "bob's new/")


def test_text_line_limit(T):
    env, c = T.session()
    body = b"Subject: long line\r\n\r\n" + b"y" * 2000 + b"\r\nend\r\n"
    open_data(c)
    c.send(body + b".\r\n")
    r = c.reply()
    check(500 <= r.code <= 599, "2000-octet text line with textline_limit=1000: want 5xx, got %r"
          % r.text)
    check(r.enh() is not None, "reply without enhanced code: %r" % r.text)
    env.quit_nothing_stored(c)


def test_text_line_limit_zero(T):
    env, c = T.session(opts={"textline_limit": "0"})
    body = b"Subject: long line\r\n\r\n" + b"z" * 5000 + b"\r\nend\r\n"
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"], body))
    env.quit(c)
    env.check_stored("alice", qid, body.replace(b"\r\n", b"\n"))


def test_direct_pipes_session(T):
    env = T.env(start=False, tcpremoteip="198.51.100.7")
    body = "Subject: pipes\n\nover stdin\n"
    script = (b"EHLO pipe.test\r\nMAIL FROM:<p@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
              b"DATA\r\n" + crlf(body) + b".\r\nQUIT\r\n")
    rc, out, err = env.run_direct(script)
    lines = out.decode("utf-8", "replace").split("\r\n")
    check(lines[0] == "220 mx.test ESMTP smtpd", "greeting on stdout: %r" % lines[:1])
    codes = [l[:4] for l in lines if l[:4] in ("250 ", "354 ", "221 ")]
    eq(codes, ["250 ", "250 ", "250 ", "354 ", "250 ", "221 "],
       "final reply lines on stdout (%r, stderr %r)" % (out[-300:], err[-300:]))
    qline = [l for l in lines if l.startswith("250 2.0.0 Ok: queued as ")]
    check(len(qline) == 1, "no queued-as reply: %r" % out[-300:])
    qid = qline[0].split()[-1]
    eq(rc, 0, "exit status")
    env.check_stored("alice", qid, body, sender="p@remote.test", helo="pipe.test", ip="198.51.100.7")


def test_text_line_limit_boundary(T):
    """RFC 5321 4.5.3.1.6: 1000 octets per line including CRLF, not
    counting the leading dot duplicated for transparency"""
    env, c = T.session()
    ok = b"x" * 998
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"],
                              b"Subject: 998\r\n\r\n" + ok + b"\r\n"))
    c.send_message("s@remote.test", ["bob@example.test"],
                 b"Subject: 999\r\n\r\n" + b"x" * 999 + b"\r\n", code=554,
                 enh="5.6.0")
    env.quit(c)
    env.check_stored("alice", qid, b"Subject: 998\n\n" + ok + b"\n")
    eq(env.files("bob"), [], "bob's new/ (999-octet line refused)")


def test_text_line_limit_ignores_stuffing_dot(T):
    """a 998-octet line that starts with '.' is 1001 octets on the wire
    once dot-stuffed; it is within the limit (RFC 5321 4.5.3.1.6)"""
    env, c = T.session()
    line = b"." + b"x" * 997
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"],
                              b"Subject: dotted\r\n\r\n" + line + b"\r\n"))
    env.quit(c)
    env.check_stored("alice", qid, b"Subject: dotted\n\n" + line + b"\n")


def test_size_limit_boundary(T):
    """a message of exactly size_limit octets (as sent, RFC 1870) fits"""
    env, c = T.session(opts={"size_limit": "10000"})
    head = b"Subject: exact\r\n\r\n"
    line = b"y" * 98 + b"\r\n"
    n = (10000 - len(head)) // len(line)
    body = head + line * n
    body += b"z" * (10000 - len(body) - 2) + b"\r\n"
    eq(len(body), 10000, "test message size")
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"], body,
                              params="SIZE=10000"))
    c.cmd("MAIL FROM:<s@remote.test> SIZE=10001", 552, "5.3.4")
    env.quit(c)
    env.check_stored("alice", qid, body.replace(b"\r\n", b"\n"))


def test_tcpremoteip_cannot_inject_headers(T):
    env, c = T.session(tcpremoteip="1.2.3.4])\nX-Injected: yes\n\tby evil (")
    body = "Subject: inj\n\nx\n"
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"], crlf(body)))
    env.quit(c)
    env.wait_files(1, "alice")
    got = env.read_new("alice")
    eq(len(got), 1, "files in alice's new/")
    data = got[0][1]
    check(b"\nX-Injected:" not in data, "TCPREMOTEIP injected a header: %r" % data[:400])
    check(data.endswith(b"\n\nx\n"), "body: %r" % data[-40:])
    tr, rest = S.parse_stored(data)
    check(rest == b"Subject: inj\n\nx\n",
          "added headers not exactly Return-Path, Delivered-To, Received: %r" % data[:400])
