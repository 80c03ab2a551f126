"""tlslib.py - starting smtpd with TLS, and TLS clients, for tests/tls.

Servers: behind the smtpd-tls wrapper (systemd-socket-activate, tcpserver,
xinetd) or the prefork supervisor with tls_cert/tls_key.  Clients: the
raw launchlib.Client upgraded in place with Python's ssl (verifying the
chain against the test CA), smtplib, openssl s_client, swaks.
"""
import os
import re
import smtplib
import socket
import ssl
import subprocess

import smtptest as L

TLS_TIMEOUT = 30


def start_with_port(w, make_argv, name, fam=4, retries=5, **kw):
    """start argv(port), wait until the port listens; retry on collision"""
    for _ in range(retries):
        port = L.free_port(v6=(fam == 6), v4=(fam == 4))
        pr = w.spawn(make_argv(port), name=name, **kw)
        if L.wait_listen(port, fam, proc=pr) and pr.poll() is None:
            return pr, port
        pr.stop()
    raise L.TestFailure("%s did not start listening; log:\n%s" % (name, w.log_tail()))


def wrapper(w, pki, extra=None, cert=None, key=None, engine_opts=()):
    """argv: smtpd-tls -e -c CERT -k KEY -- smtpd -e -o ..."""
    return ([w.engine, "-e"] + list(engine_opts) +
            ["-c", cert or pki.cert, "-k", key or pki.key, "--"] + w.argv(extra))


def socket_activate(w, argv, inetd=True):
    """systemd-socket-activate --accept [--inetd]: one process per connection"""
    L.need(L.SOCKET_ACTIVATE)
    flags = ["-a"] + (["--inetd"] if inetd else [])
    return start_with_port(
        w, lambda p: [L.SOCKET_ACTIVATE] + flags + ["-l", "127.0.0.1:%d" % p] + argv,
        "socket-activate")


def supervisor(w, pki, extra=None, cert=None, key=None):
    s = {"tls_cert": cert or pki.cert, "tls_key": key or pki.key,
         "tls_engine": w.engine, "workers": 2}
    s.update(extra or {})
    return w.supervisor(s)


def context(pki, version=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def starttls(c, pki, ehlo=True, ctx=None):
    """EHLO (STARTTLS offered), STARTTLS, handshake: c talks TLS after"""
    if ehlo:
        r = c.cmd("EHLO client.test", 250)
        assert any(l[4:] == "STARTTLS" for l in r.lines), r
    c.cmd("STARTTLS", 220)
    assert c.buf == b"", "bytes after 220 before the handshake: %r" % c.buf
    c.sock = (ctx or context(pki)).wrap_socket(c.sock, server_hostname="mx.test")
    return c.sock


def tls_client(port, pki, **kw):
    c = L.Client(port)
    c.greeting()
    starttls(c, pki, **kw)
    return c


def smtplib_send(port, pki, msg, rcpt="alice@" + L.DOMAIN, tls=True):
    """one message via smtplib with a verifying STARTTLS; (code, version, cipher)"""
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=TLS_TIMEOUT)
    try:
        s.ehlo()
        ver = cipher = None
        if tls:
            code, _ = s.starttls(context=context(pki))
            assert code == 220
            ver, cipher = s.sock.version(), s.sock.cipher()[0]
            s.ehlo()
        s.mail("sender@client.test")
        code, resp = s.rcpt(rcpt)
        assert code == 250, resp
        code, resp = s.data(msg)
        s.quit()
        return code, ver, cipher
    finally:
        s.close()


def peer_serial(port, pki):
    """the serial number of the certificate the server shows now"""
    c = tls_client(port, pki)
    der = c.sock.getpeercert(binary_form=True)
    c.cmd("QUIT", 221)
    c.close()
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"],
                         input=der, capture_output=True, check=True).stdout.decode()
    return out.strip().split("=", 1)[1].upper()


def s_client(port, *opts, timeout=TLS_TIMEOUT, stdin=b"QUIT\r\n"):
    """openssl s_client -starttls smtp; (returncode, output)"""
    L.need("openssl")
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % port, "-servername", "mx.test", "-ign_eof"]
                       + list(opts), input=stdin, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def received_tls(data):
    """the Received: line of a stored message, unfolded"""
    m = re.search(rb"^Received: .*?(?=^\S)", data, re.S | re.M)
    return m.group(0).decode().replace("\n\t", " ") if m else ""


def send_mail(c, tok, ehlo=True):
    """(EHLO,) MAIL, RCPT, DATA with message(tok); the reply to the data"""
    if ehlo:
        c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<sender@client.test>", 250)
    c.cmd("RCPT TO:<alice@%s>" % L.DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(L.message(tok).replace(b"\r\n.", b"\r\n..") + b".\r\n")
    return c.reply()
