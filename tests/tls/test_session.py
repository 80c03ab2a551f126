"""test_session.py - STARTTLS as the client sees it (RFC 3207), behind the
smtpd-tls wrapper under systemd-socket-activate --accept --inetd, and the
same dialogue through the supervisor."""
import os
import re
import socket
import ssl
import time

import pytest

import smtptest as L
import tlslib as T

BODY = (b"From: <sender@client.test>\r\nTo: <alice@example.test>\r\n"
        b"Subject: byte exact\r\n\r\n"
        b"line one\r\n.leading dot\r\n\ttab \xc3\xa9 8bit\r\n" + b"x" * 998 + b"\r\n"
        b"\r\nlast line\r\n")


@pytest.fixture(params=["wrapper", "supervisor"])
def server(request, world, pki):
    """(world, port) with STARTTLS: wrapper per connection, or supervisor"""
    if request.param == "wrapper":
        _, port = T.socket_activate(world, T.wrapper(world, pki))
    else:
        _, port = T.supervisor(world, pki)
    return world, port


def stored_body(data):
    return data.split(b"\n\n", 1)[1]


def test_smtplib_verified_byte_exact(server, pki):
    w, port = server
    code, ver, cipher = T.smtplib_send(port, pki, BODY)
    assert code == 250
    assert ver in ("TLSv1.2", "TLSv1.3")
    files = w.wait_files(1)
    assert len(files) == 1
    data = files[0][1]
    assert data.split(b"\n\n", 1)[1] == BODY.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    rcv = T.received_tls(data)
    assert "with ESMTPS id" in rcv, rcv
    assert "(using %s with cipher %s (" % (ver, cipher) in rcv, rcv
    w.wait_log(r"starttls client=127\.0\.0\.1 protocol=%s cipher=%s bits=\d+$" %
               (re.escape(ver), re.escape(cipher)))


def test_plain_session_still_plain(server, pki):
    w, port = server
    code, _, _ = T.smtplib_send(port, pki, BODY, tls=False)
    assert code == 250
    data = w.wait_files(1)[0][1]
    assert "with ESMTP id" in T.received_tls(data)
    assert "using" not in T.received_tls(data)


def test_session_forgets_helo_and_transaction(server, pki):
    w, port = server
    c = L.Client(port)
    c.greeting()
    c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<a@client.test>", 250)
    with pytest.raises(L.TestFailure):      # 503: inside a transaction
        c.cmd("STARTTLS", 220)
    c.cmd("RSET", 250)
    T.starttls(c, pki, ehlo=False)
    c.cmd("MAIL FROM:<a@client.test>", 503)         # HELO forgotten
    r = c.cmd("EHLO client.test", 250)
    assert not any(l[4:] == "STARTTLS" for l in r.lines), r   # not offered again
    r = c.cmd("STARTTLS", 503)
    assert r.lines[-1].startswith("503 5.5.1"), r
    c.cmd("RCPT TO:<alice@example.test>", 503)       # no MAIL after TLS
    c.cmd("QUIT", 221)
    c.close()


def test_starttls_with_argument(server, pki):
    w, port = server
    c = L.Client(port)
    c.greeting()
    c.cmd("EHLO client.test", 250)
    r = c.cmd("STARTTLS now", 501)
    assert r.lines[-1].startswith("501 5.5.4"), r
    T.starttls(c, pki, ehlo=False)          # still possible afterwards
    c.cmd("EHLO client.test", 250)
    c.cmd("QUIT", 221)


def injected(w, port, pki, tail):
    """STARTTLS plus tail in one write; what the client sees after TLS"""
    c = L.Client(port)
    c.greeting()
    c.cmd("EHLO client.test", 250)
    c.send(b"STARTTLS\r\n" + tail)
    r = c.reply()
    assert r.code == 220, r
    try:
        c.sock = T.context(pki).wrap_socket(c.sock, server_hostname="mx.test")
    except (ssl.SSLError, OSError):
        # the pipelined bytes reached the engine as a ClientHello: refused
        w.wait_log(r"starttls client=127\.0\.0\.1 result=failed reason=")
        return None
    c.buf = b""
    c.cmd("EHLO client.test", 250)
    return c


def test_injection_rset(server, pki):
    w, port = server
    c = injected(w, port, pki, b"RSET\r\n")
    if c:
        assert c.nothing_pending(0.5), "RSET was executed: %r" % c.buf
        c.cmd("QUIT", 221)


def test_injection_pipelined_mail(server, pki):
    w, port = server
    c = injected(w, port, pki, b"MAIL FROM:<evil@client.test>\r\n"
                 b"RCPT TO:<alice@example.test>\r\n")
    if c:
        assert c.nothing_pending(0.5), "pipelined commands executed: %r" % c.buf
        c.cmd("RCPT TO:<alice@example.test>", 503)     # no MAIL happened
        c.cmd("QUIT", 221)
    time.sleep(0.3)
    assert "rcpt " not in w.log(), w.log_tail()
    assert w.files() == []


def garbage_then_next(w, port, pki, send):
    c = L.Client(port)
    c.greeting()
    c.cmd("EHLO client.test", 250)
    c.cmd("STARTTLS", 220)
    send(c)
    w.wait_log(r"starttls client=127\.0\.0\.1 result=failed reason=\"[^\"]+\"")
    # the next connection is served
    code, _, _ = T.smtplib_send(port, pki, BODY)
    assert code == 250
    assert len(w.wait_files(1)) == 1


def test_garbage_client_hello(server, pki):
    w, port = server

    def send(c):
        c.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n" * 20)
        c.read_to_eof()
    garbage_then_next(w, port, pki, send)
    assert "rcpt " not in w.log().split("result=failed")[0]


def test_client_vanishes_before_hello(server, pki):
    w, port = server
    garbage_then_next(w, port, pki, lambda c: c.close())


def test_client_vanishes_mid_handshake(server, pki):
    w, port = server

    def send(c):
        # a real ClientHello's first 40 octets, then gone
        inner = ssl.MemoryBIO()
        outer = ssl.MemoryBIO()
        obj = T.context(pki).wrap_bio(inner, outer, server_hostname="mx.test")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        c.send(outer.read()[:40])
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    garbage_then_next(w, port, pki, send)


def test_half_close_after_quit(server, pki):
    """221, then the server's close_notify and FIN; the client unwraps cleanly"""
    w, port = server
    c = T.tls_client(port, pki)
    c.cmd("EHLO client.test", 250)
    c.send("QUIT\r\n")
    assert c.reply().code == 221
    c.sock.settimeout(10)
    plain = c.sock.unwrap()         # needs the server's close_notify
    assert plain.recv(100) == b""   # then its FIN
    plain.close()


def test_client_closes_first(server, pki):
    """the client's close_notify ends the session (EOF for smtpd), no crash"""
    w, port = server
    c = T.tls_client(port, pki)
    c.cmd("EHLO client.test", 250)
    c.sock.settimeout(10)
    try:
        c.sock.unwrap()
    except (ssl.SSLError, OSError):
        pass
    w.wait_log(r"lost client=127\.0\.0\.1 reason=eof")
    w.wait_log(r"disconnect client=127\.0\.0\.1")


def test_big_message_both_ways(server, pki):
    """5 MB through the relay's 16 KB buffers"""
    w, port = server
    body = BODY + b"".join(b"%07d %s\r\n" % (i, b"z" * 70) for i in range(65000))
    code, _, _ = T.smtplib_send(port, pki, body)
    assert code == 250
    data = w.wait_files(1)[0][1]
    assert data.split(b"\n\n", 1)[1] == body.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
