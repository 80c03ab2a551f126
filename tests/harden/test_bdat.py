"""test_bdat.py - finding 3 (BDAT) and finding 7's NUL octets.

(a) the line-length rule holds for the last, unterminated line of a
BDAT LAST message too, and a short unterminated last line is stored
with its line end; (b) a BDAT whose size was read but whose argument is
bad has its chunk read and thrown away (never run as commands); a BDAT
whose size cannot be read closes the session with 421; NUL octets in a
message are refused like a bare CR or LF (554 5.6.0).
"""
import pytest

from conftest import greet


def start_txn(c):
    greet(c)
    c.cmd("MAIL FROM:<s@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)


def bdat(c, payload, arg=None):
    c.send(("BDAT %d%s\r\n" % (len(payload), arg if arg is not None else " LAST")).encode()
           + payload)
    return c.reply().text


def test_long_unterminated_last_line_refused(world):
    c, p = world.pair_session()
    start_txn(c)
    r = bdat(c, b"Subject: x\r\n\r\n" + b"a" * 100000)
    assert r.startswith("554 5.6.0"), r
    c.cmd("MAIL FROM:<s@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    r = bdat(c, b"Subject: x\r\n\r\n" + b"a" * 100000 + b"\r\n")
    assert r.startswith("554 5.6.0"), r
    c.cmd("QUIT", 221)
    assert world.files("alice") == []


def test_short_unterminated_last_line_gets_its_line_end(world):
    c, p = world.pair_session()
    start_txn(c)
    r = bdat(c, b"Subject: x\r\n\r\nlast line")
    assert r.startswith("250"), r
    c.cmd("QUIT", 221)
    p.wait(timeout=20)
    (msg,) = world.messages("alice")
    assert msg.endswith(b"\n\nlast line\n")


@pytest.mark.parametrize("arg", [" LAST junk", "  LAST", " LASTX", " last  ", " 1"])
def test_bad_argument_after_size_discards_chunk(world, arg):
    c, p = world.pair_session()
    start_txn(c)
    chunk = b"RSET\r\nMAIL FROM:<x@y.example>\r\n"
    r = bdat(c, chunk, arg)
    assert r.startswith("501"), r
    r = c.cmd("NOOP")
    assert r.text == "250 2.0.0 Ok", "the chunk ran as commands: %r" % r
    c.cmd("RCPT TO:<bob@example.test>", 250)      # the transaction is still ours
    r = bdat(c, b"Subject: y\r\n\r\ny\r\n")
    assert r.startswith("250"), r
    c.cmd("QUIT", 221)


def test_bad_argument_inside_bdat_sequence_fails_transaction(world):
    c, p = world.pair_session()
    start_txn(c)
    assert bdat(c, b"Subject: z\r\n\r\n", "").startswith("250")
    assert bdat(c, b"part two\r\n", " LAST junk").startswith("501")
    r = bdat(c, b"end\r\n")
    assert r.startswith("503"), "a message with a lost chunk went on: %r" % r
    c.cmd("QUIT", 221)
    p.wait(timeout=20)
    assert world.files("alice") == []


@pytest.mark.parametrize("line", ["BDAT 2147483648 LAST", "BDAT 99999999999999999999",
                                  "BDAT x LAST", "BDAT", "BDAT -1", "BDAT  26"])
def test_unreadable_size_closes_session(world, line):
    c, p = world.pair_session()
    start_txn(c)
    c.send(line + "\r\nMAIL FROM:<x@y.example>\r\n")
    c.expect(421)
    assert c.at_eof(), "session still open after %r" % line


@pytest.mark.parametrize("how", ["data", "bdat"])
def test_nul_in_message_refused(world, how):
    c, p = world.pair_session()
    start_txn(c)
    body = b"Subject: n\r\n\r\nbefore\x00after\r\n"
    if how == "data":
        c.cmd("DATA", 354)
        c.send(body + b".\r\n")
        r = c.reply().text
    else:
        r = bdat(c, body)
    assert r.startswith("554 5.6.0"), r
    c.cmd("QUIT", 221)
    assert world.files("alice") == []
