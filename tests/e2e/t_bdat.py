"""BDAT (CHUNKING, RFC 3030)"""
from smtptest import check, eq, expect, qid_of


def start(c, rcpts=("alice@example.test",)):
    c.cmd("MAIL FROM:<b@remote.test>", 250, "2.1.0")
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r, 250, "2.1.5")


def bdat(c, chunk, last=False):
    c.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
    r = c.reply()
    return r


def test_bdat_two_chunks(T):
    env, c = T.session()
    start(c)
    ch1 = b"Subject: bdat\r\n\r\nline one\r\n.dot stays\r\n"
    ch2 = b"..two dots stay\r\n.\r\nend\r\n"
    r = bdat(c, ch1)
    expect(r, 250, None, "BDAT first chunk")
    check(r.enh() is not None, "BDAT reply without enhanced code: %r" % r.text)
    qid = qid_of(bdat(c, ch2, last=True))
    env.quit(c)
    env.check_stored("alice", qid, (ch1 + ch2).replace(b"\r\n", b"\n"), sender="b@remote.test")


def test_bdat_single_last(T):
    env, c = T.session()
    start(c, ("alice@example.test", "bob@example.test"))
    ch = b"Subject: one chunk\r\n\r\n8bit \xc3\xa9\xff\r\n"
    qid = qid_of(bdat(c, ch, last=True))
    env.quit(c)
    for u in ("alice", "bob"):
        env.check_stored(u, qid, ch.replace(b"\r\n", b"\n"), sender="b@remote.test", single=False)


def test_bdat_zero_last(T):
    env, c = T.session()
    start(c)
    ch = b"Subject: zero last\r\n\r\nbody\r\n"
    expect(bdat(c, ch[:10]), 250, None, "BDAT chunk 1")
    expect(bdat(c, ch[10:]), 250, None, "BDAT chunk 2")
    qid = qid_of(bdat(c, b"", last=True))
    env.quit(c)
    env.check_stored("alice", qid, ch.replace(b"\r\n", b"\n"), sender="b@remote.test")


def test_bdat_crlf_split_across_chunks(T):
    env, c = T.session()
    start(c)
    ch1 = b"Subject: split\r\n\r\nfirst line\r"
    ch2 = b"\nsecond line\r\n"
    expect(bdat(c, ch1), 250, None, "BDAT chunk ending in CR")
    qid = qid_of(bdat(c, ch2, last=True))
    env.quit(c)
    env.check_stored("alice", qid, b"Subject: split\n\nfirst line\nsecond line\n", sender="b@remote.test")


def test_bdat_pipelined(T):
    env, c = T.session()
    ch1, ch2 = b"Subject: piped bdat\r\n", b"\r\nchunks\r\n"
    c.send(b"MAIL FROM:<b@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
           + b"BDAT %d\r\n" % len(ch1) + ch1 + b"BDAT %d LAST\r\n" % len(ch2) + ch2
           + b"QUIT\r\n")
    expect(c.reply(), 250, "2.1.0", "MAIL")
    expect(c.reply(), 250, "2.1.5", "RCPT")
    expect(c.reply(), 250, None, "BDAT 1")
    qid = qid_of(c.reply())
    expect(c.reply(), 221, "2.0.0", "QUIT")
    c.read_to_eof()
    env.wait_sessions()
    env.check_stored("bob", qid, b"Subject: piped bdat\n\nchunks\n", sender="b@remote.test")


def test_data_after_bdat(T):
    env, c = T.session()
    start(c)
    expect(bdat(c, b"Subject: mixed\r\n"), 250, None, "BDAT")
    c.cmd("DATA", 503, "5.5.1", "DATA after BDAT")
    c.cmd("RSET", 250, "2.0.0")
    env.quit_nothing_stored(c)


def test_bdat_bad_sequence_consumes_chunk(T):
    env, c = T.session()
    # the chunk is data and must be read and thrown away, never run
    c.send(b"BDAT 6 LAST\r\nHELP\r\n")
    expect(c.reply(), 503, "5.5.1", "BDAT before MAIL")
    c.cmd("MAIL FROM:<b@remote.test>", 250, "2.1.0")
    c.send(b"BDAT 6 LAST\r\nHELP\r\n")
    expect(c.reply(), 503, "5.5.1", "BDAT before RCPT")
    c.cmd("RSET", 250, "2.0.0", "RSET after the refused BDATs (a 214 means the chunk ran)")
    env.quit_nothing_stored(c)


def test_bdat_bare_lf_kept_or_rejected(T):
    """BDAT data is binary-clean apart from CRLF -> LF; a bare LF must never
    end or split the message: it is either rejected (554 5.6.0) or stored"""
    env, c = T.session()
    start(c)
    ch = b"Subject: bare\r\n\r\nline\n.\nMAIL FROM:<evil@remote.test>\r\n"
    r = bdat(c, ch, last=True)
    check(r.code in (250, 554), "BDAT with bare LF: %r" % r.text)
    check(c.nothing_pending(0.5), "extra replies: %r" % c.buf[:200])
    env.quit(c)
    if r.code == 554:
        expect(r, 554, "5.6.0", "BDAT with bare LF")
        env.assert_nothing_stored()
    else:
        eq(len(env.files("alice")), 1, "files in new/")
