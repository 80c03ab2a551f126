"""test_injection.py - finding 2: Unicode line breaks and forged fields.

The audit's EHLO carried U+0085 and U+2028, which Unicode-aware readers
(Python's splitlines, webmail) take for line breaks, into Received: and
the log; a quoted local part wrote forged client= and result= fields
into the log line.  HELO now follows the RFC 5321 grammar (UTF-8 only
for EHLO, used only in an SMTPUTF8 message), addresses refuse invisible
code points, and every network-born log value is one escaped token.
"""
import re

from conftest import greet

EVIL_HELO = "evil\u0085X-Injected:\u2028Y-Injected:".encode()
FORGED = '"a> size=0 nrcpt=0 client=10.9.9.9 result=250 x=<"@example.org'


def send(c, sender, rcpts, body, params=""):
    c.cmd("MAIL FROM:<%s>%s" % (sender, params), 250)
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r, 250)
    c.cmd("DATA", 354)
    c.send(body.replace("\n", "\r\n").encode() + b".\r\n")
    return c.reply().text


def fields(line):
    """the key=value fields of one log line, as a list of (key, value)"""
    return re.findall(r"(?:^| )([a-z_]+)=(\"[^\"]*\"|\S*)", line)


def header_lines(msg):
    head = msg.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    return head.splitlines()            # Unicode-aware, like the audit's reader


def test_unicode_line_breaks_in_ehlo_refused(world):
    c, p = world.pair_session()
    c.greeting()
    c.cmd(b"EHLO " + EVIL_HELO, 501)
    c.cmd("EHLO client.example", 250)
    assert send(c, "s@example.org", ["alice@example.test"], "Subject: x\n\nx\n").startswith("250")
    c.cmd("QUIT", 221)
    p.wait(timeout=20)
    (msg,) = world.messages("alice")
    assert not [l for l in header_lines(msg) if "Injected" in l]
    log = world.log()
    assert "\u0085" not in log and "\u2028" not in log
    assert not [l for l in log.splitlines() if l.startswith(("X-Injected", "Y-Injected"))]


def test_helo_grammar(world):
    c, p = world.pair_session()
    c.greeting()
    for bad in ("HELO b\u00fccher.de", "HELO a>b", "HELO a=b", 'HELO "x"', "EHLO a..b",
                "EHLO x:y", "EHLO [300.1.1.1]"):
        c.cmd(bad.encode(), 501)
    c.cmd("HELO [192.0.2.1]", 250)
    c.cmd("EHLO mx_1.example.org", 250)
    c.cmd("QUIT", 221)


def test_8bit_ehlo_only_in_smtputf8_message(world):
    c, p = world.pair_session()
    greet(c, "b\u00fccher.example")
    assert send(c, "s@example.org", ["alice@example.test"], "Subject: a\n\na\n").startswith("250")
    assert send(c, "s@example.org", ["bob@example.test"], "Subject: b\n\nb\n",
                " SMTPUTF8").startswith("250")
    c.cmd("QUIT", 221)
    p.wait(timeout=20)
    (a,), (b,) = world.messages("alice"), world.messages("bob")
    assert b"Received: from b?cher.example " in a, a[:300]
    assert max(a.split(b"\n\n", 1)[0]) < 0x80, "8-bit header without SMTPUTF8"
    assert "Received: from b\u00fccher.example ".encode() in b
    assert b"with UTF8SMTP" in b


def test_invisible_code_points_in_addresses_refused(world):
    c, p = world.pair_session()
    greet(c)
    for addr in ('"a\u2028X-Injected: y"@example.org', "a\u0085b@example.org",
                 "a@exa\u2029mple.org"):
        c.cmd(("MAIL FROM:<%s> SMTPUTF8" % addr).encode(), 501)
    c.cmd("MAIL FROM:<s@example.org> SMTPUTF8", 250)
    c.cmd("RCPT TO:<\"x\u2028y\"@example.test>".encode(), 501)
    c.cmd("QUIT", 221)


def test_log_fields_cannot_be_forged(world):
    c, p = world.pair_session()
    greet(c)
    r = send(c, FORGED, ["alice@example.test"], "Subject: f\n\nf\n")
    assert r.startswith("250"), r
    c.cmd("QUIT", 221)
    p.wait(timeout=20)
    for line in world.log().splitlines():
        keys = [k for k, v in fields(line)]
        for k in ("client", "result", "size", "nrcpt"):
            assert keys.count(k) <= 1, "forged %s= in %r" % (k, line)
        for k, v in fields(line):
            if k == "client":
                assert v == "192.0.2.7", line
    assert "client=10.9.9.9" not in world.log()
