"""test_milter_tls.py - what smtpd tells a milter about a session over
STARTTLS: the HELO stage after the handshake carries {tls_version},
{cipher} and {cipher_bits} as the engine negotiated them (a client
certificate is not asked for, so {cert_subject} / {cert_issuer} stay
out), and {client_port} is the client's real port.  The milter is the
recording fake of tests/filter/fakes.py: the test checks what we send."""
import os
import struct
import sys

import pytest

import smtptest as L
import tlslib as T

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "filter"))
from fakes import FakeMilter  # noqa: E402


@pytest.fixture
def milter():
    f = FakeMilter()
    yield f
    f.stop()


def macros_of(f, cmd):
    """the D packets announcing macros for cmd: [{name: value}]"""
    out = []
    for _i, c, d in f.seen:
        if c == b"D" and d[:1] == cmd:
            parts = d[1:].split(b"\x00")[:-1]
            out.append(dict(zip(parts[0::2], parts[1::2])))
    return out


def test_tls_macros_at_helo(world, pki, milter):
    _, port = T.supervisor(world, pki, extra={"milters": milter.spec})
    c = L.Client(port)
    cport = c.sock.getsockname()[1]
    c.greeting()
    sock = T.starttls(c, pki)
    c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<s@client.test>", 250)
    c.cmd("RCPT TO:<alice@%s>" % L.DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: tls\r\n\r\nbody\r\n.\r\n")
    assert c.expect(250).code == 250
    c.cmd("QUIT", 221)
    version, cipher, bits = sock.version(), sock.cipher()[0], sock.cipher()[2]
    c.close()
    helos = macros_of(milter, b"H")
    # the EHLO before STARTTLS had no TLS macros; the one after has them
    plain = [h for h in helos if b"{tls_version}" not in h]
    tls = [h for h in helos if b"{tls_version}" in h]
    assert len(tls) == 1 and len(plain) <= 1, helos
    h = tls[0]
    assert h[b"{tls_version}"] == version.encode(), h
    assert h[b"{cipher}"] == cipher.encode(), h
    assert h[b"{cipher_bits}"] == str(bits).encode(), h
    assert b"{cert_subject}" not in h and b"{cert_issuer}" not in h
    [conn] = macros_of(milter, b"C")
    assert conn[b"{client_port}"] == str(cport).encode(), conn
    [cpkt] = [d for _i, c2, d in milter.seen if c2 == b"C"]
    assert struct.unpack(">H", cpkt.split(b"\x00", 1)[1][1:3])[0] == cport
    assert len(world.wait_files(1)) == 1
