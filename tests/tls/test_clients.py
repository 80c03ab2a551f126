"""test_clients.py - real TLS clients against smtpd's STARTTLS: openssl
s_client (protocol versions), swaks --tls, and Postfix's smtp client
(smtp_tls_security_level = encrypt) from a private Postfix instance."""
import os
import re
import subprocess
import time

import pytest

import servers
import smtptest as L
import tlslib as T


@pytest.fixture
def sup(world, pki):
    _, port = T.supervisor(world, pki)
    return world, port


@pytest.mark.parametrize("opt,proto", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_s_client_modern_protocols(sup, opt, proto):
    w, port = sup
    rc, out = T.s_client(port, opt, "-verify_return_error", "-CAfile", pki_ca(w))
    assert "Protocol  : %s" % proto in out or "Protocol: %s" % proto in out \
        or ", %s," % proto in out, out[-2000:]
    assert "Verify return code: 0 (ok)" in out, out[-2000:]
    assert "221 2.0.0" in out, out[-2000:]
    w.wait_log(r"starttls client=127\.0\.0\.1 protocol=%s cipher=\S+ bits=\d+$" %
               re.escape(proto))


@pytest.mark.parametrize("opt", ["-tls1", "-tls1_1"])
def test_s_client_old_protocols_refused(sup, opt):
    w, port = sup
    rc, out = T.s_client(port, opt, "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out[-2000:]
    assert "221 2.0.0" not in out
    w.wait_log(r"starttls client=127\.0\.0\.1 result=failed reason=\"[^\"]*\"")
    assert "protocol=TLSv1 " not in w.log() and "protocol=TLSv1.1" not in w.log()


def test_renegotiation_refused(sup):
    """TLS 1.2 client-initiated renegotiation ("R" in s_client) is refused"""
    w, port = sup
    p = subprocess.Popen(["openssl", "s_client", "-starttls", "smtp", "-crlf", "-tls1_2",
                          "-connect", "127.0.0.1:%d" % port], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for line in (b"EHLO client.test\n", b"R\n", b"NOOP\n"):
            try:
                p.stdin.write(line)
                p.stdin.flush()
            except BrokenPipeError:
                break       # s_client ended: the server refused
            time.sleep(1)
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        out = p.stdout.read().decode("utf-8", "replace")
    finally:
        p.kill()
        p.wait(10)
    assert "RENEGOTIATING" in out, out[-1500:]
    assert "no renegotiation" in out, out[-1500:]
    assert "250 2.0.0 Ok" not in out, out[-1500:]


def pki_ca(w):
    return w._pki.ca


@pytest.fixture(autouse=True)
def _attach(world, pki):
    world._pki = pki


def test_swaks_tls(sup, pki):
    L.need("swaks")
    w, port = sup
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), "--tls",
                        "--tls-verify", "--tls-ca-path", pki.ca, "--tls-sni", "mx.test",
                        "--helo", "client.test", "--from", "swaks@client.test",
                        "--to", "alice@example.test", "--header", "Subject: swaks tls"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "<-  220 2.0.0 Ready to start TLS" in r.stdout, r.stdout
    assert "TLS started with cipher" in r.stdout, r.stdout
    files = w.wait_files(1)
    assert len(files) == 1 and b"Subject: swaks tls" in files[0][1]
    assert "with ESMTPS" in T.received_tls(files[0][1])


# ---------------------------------------------------------------- Postfix

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = client.test
mydomain = client.test
myorigin = client.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:{port}
smtp_tls_security_level = encrypt
smtp_tls_CAfile = {ca}
smtp_tls_loglevel = 1
smtp_tls_servername = mx.test
maillog_file = {d}/postfix.log
maillog_file_prefixes = /tmp, /var, /dev/stdout
alias_maps =
alias_database =
local_recipient_maps =
smtp_helo_name = client.test
"""

def test_postfix_smtp_client_encrypt(sup, pki):
    """Postfix's smtp client with smtp_tls_security_level = encrypt"""
    L.need("/usr/sbin/postfix", "/usr/sbin/sendmail")
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance needs root")
    w, port = sup
    d = w.path("postfix")
    servers.postfix_instance(d, MAIN_CF.format(d=d, port=port, ca=pki.ca))
    env = dict(os.environ, MAIL_CONFIG=d)
    r = subprocess.run(["postfix", "-c", d, "check"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["postfix", "-c", d, "start"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    try:
        msg = b"From: <pf@client.test>\nTo: <alice@example.test>\nSubject: via postfix\n\nhi\n"
        r = subprocess.run(["sendmail", "-C", d, "-f", "pf@client.test", "alice@example.test"],
                           input=msg, capture_output=True, timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        files = w.wait_files(1, timeout=60)
        assert len(files) == 1, open(d + "/postfix.log").read()[-3000:]
        assert b"Subject: via postfix" in files[0][1]
        assert "with ESMTPS" in T.received_tls(files[0][1])
        end = time.time() + 30
        while time.time() < end and "status=sent" not in open(d + "/postfix.log").read():
            time.sleep(0.2)
        log = open(d + "/postfix.log").read()
        assert re.search(r"(Trusted|Verified) TLS connection established to 127\.0\.0\.1"
                         r"\[127\.0\.0\.1\]:%d: TLSv1\.[23] with cipher" % port, log), log[-3000:]
        assert re.search(r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent" % port,
                         log), log[-3000:]
    finally:
        subprocess.run(["postfix", "-c", d, "stop"], capture_output=True, timeout=60, env=env)
        end = time.time() + 15
        while time.time() < end and os.path.exists(d + "/queue/pid/master.pid"):
            time.sleep(0.1)
