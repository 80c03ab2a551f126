"""test_resume.py - TLS session resumption: the supervisor's engines share
their session ticket keys (a client that comes back resumes on whichever
worker it lands), SIGHUP and a timer every half tls_session_lifetime make
a new key and keep the previous one for decryption only, tls_session_lifetime = 0 turns resumption off, and the
wrapper resumes with a key file (-R) of mode 0600."""
import os
import re
import signal
import subprocess

import pytest

import smtptest as L
import tlslib as T

PROTOS = [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")]


def connect(port, sess, opt, out=False):
    """one STARTTLS session with s_client, saving or offering the session;
    'New' or 'Reused'"""
    rc, text = T.s_client(port, opt, "-sess_out" if out else "-sess_in", sess)
    m = re.search(r"^(New|Reused), (TLSv1\.[23]),", text, re.M)
    assert m and "221 2.0.0" in text, text[-2000:]
    return m.group(1)


def starttls_pids(w):
    """the pid of the session process behind each STARTTLS, in order"""
    return re.findall(r"smtpd\[(\d+)\]: \S+ starttls client=", w.log())


@pytest.mark.parametrize("opt,proto", PROTOS)
def test_resumed_on_every_worker(world, pki, opt, proto):
    _, port = T.supervisor(world, pki, {"workers": 3})
    sess = world.path("sess.pem")
    assert connect(port, sess, opt, out=True) == "New"
    got = [connect(port, sess, opt) for _ in range(8)]
    assert got == ["Reused"] * 8, got
    pids = starttls_pids(world)
    assert len(pids) == 9
    # the kernel hands serial connections to the idle workers in turn:
    # some reuse happened on a worker (and engine) that did not issue it
    assert set(pids[1:]) - {pids[0]}, pids
    assert len(set(pids)) >= 2, pids


def test_sighup_new_key_previous_decrypts(world, pki):
    sup, port = T.supervisor(world, pki, {"workers": 2})
    sess = world.path("sess.pem")
    assert connect(port, sess, "-tls1_2", out=True) == "New"
    for hup, want in ((1, "Reused"), (2, "New")):
        old = [p for p in L.children(sup.pid)]
        sup.kill(signal.SIGHUP)
        world.wait_log(r"reload result=ok", count=hup)
        # the old workers and their engines go; new engines get the keys
        assert L.wait_gone(old, 15), "old workers still running"
        # one rotation: the ticket's key is the previous one, still
        # decrypting; two: it is gone, a full handshake
        assert connect(port, sess, "-tls1_2") == want, hup


def test_timer_rotation(world, pki):
    """a new ticket key every half tls_session_lifetime, pushed to the
    running engines, without a SIGHUP; handshakes go on"""
    _, port = T.supervisor(world, pki, {"workers": 1, "tls_session_lifetime": 4})  # a spare comes and goes
    sess = world.path("sess.pem")
    assert connect(port, sess, "-tls1_2", out=True) == "New", world.log()    # an engine now
    world.wait_log(r"tls keys result=rotated engines=1 next=2s", timeout=15, count=2)
    assert "tls keys worker" not in world.log()     # no push failed
    assert connect(port, sess, "-tls1_2") in ("New", "Reused")


def test_lifetime_zero_no_resumption(world, pki):
    _, port = T.supervisor(world, pki, {"workers": 2, "tls_session_lifetime": 0})
    sess = world.path("sess.pem")
    connect(port, sess, "-tls1_2", out=True)
    if os.path.exists(sess):        # s_client saves nothing without a ticket
        assert connect(port, sess, "-tls1_2") == "New"


def keyfile(w, mode=0o600, size=52):
    p = w.path("ticket.key")
    with open(p, "wb") as f:
        f.write(os.urandom(size))
    os.chmod(p, mode)
    return p


@pytest.mark.parametrize("opt,proto", PROTOS)
def test_wrapper_key_file(world, pki, opt, proto):
    """every connection is its own engine process: they resume each
    other's sessions only through the shared key file"""
    key = keyfile(world)
    _, port = T.socket_activate(world, T.wrapper(world, pki, engine_opts=["-R", key]))
    sess = world.path("sess.pem")
    assert connect(port, sess, opt, out=True) == "New"
    assert [connect(port, sess, opt) for _ in range(3)] == ["Reused"] * 3


@pytest.mark.parametrize("bad", ["mode", "size", "symlink"])
def test_wrapper_key_file_refused(world, pki, bad):
    key = keyfile(world, mode=0o644 if bad == "mode" else 0o600,
                  size=51 if bad == "size" else 104)
    if bad == "symlink":
        os.symlink(key, world.path("link.key"))
        key = world.path("link.key")
    r = subprocess.run([world.engine, "-n", "-e", "-R", key, "-c", pki.cert, "-k", pki.key],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 111, r
    want = {"mode": "must be a regular file of mode 0600",
            "size": "must hold 1 to 4 records of 52 octets",
            "symlink": "Too many levels of symbolic links"}[bad]
    assert re.search(r"tls result=failed reason=\"%s: [^\"]*%s" % (re.escape(key), want),
                     r.stderr), r.stderr
