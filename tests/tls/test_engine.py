"""test_engine.py - when there is no engine or it cannot start, the
configuration checks, tls_required, the engine's privileges, and the
supervisor under load and on SIGHUP."""
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

import smtptest as L
import tlslib as T


def plain_server(w, extra=None):
    _, port = T.socket_activate(w, w.argv(extra))
    return port


def test_no_engine_502(world, pki):
    port = plain_server(world)
    c = L.Client(port)
    c.greeting()
    r = c.cmd("EHLO client.test", 250)
    assert not any("STARTTLS" in l for l in r.lines), r
    r = c.cmd("STARTTLS", 502)
    assert r.lines[-1].startswith("502 5.5.1"), r
    c.cmd("QUIT", 221)


def test_supervisor_without_cert_502(world, pki):
    _, port = world.supervisor({"tls_engine": world.engine, "workers": 1})
    c = L.Client(port)
    c.greeting()
    r = c.cmd("EHLO client.test", 250)
    assert not any("STARTTLS" in l for l in r.lines), r
    c.cmd("STARTTLS", 502)
    c.cmd("QUIT", 221)


@pytest.mark.parametrize("bad", ["missing", "directory", "mismatched"])
def test_wrapper_engine_cannot_start_454(world, pki, bad):
    key = {"missing": world.path("nope.key"), "directory": world.dir,
           "mismatched": pki.key2}[bad]
    _, port = T.socket_activate(world, T.wrapper(world, pki, key=key))
    c = L.Client(port)
    c.greeting()
    c.cmd("EHLO client.test", 250)
    r = c.cmd("STARTTLS", 454)
    assert r.lines[-1].startswith("454 4.7.0"), r
    # the session goes on in plain text and mail still arrives
    assert T.send_mail(c, "after454", ehlo=False).code == 250
    c.cmd("QUIT", 221)
    assert len(world.wait_files(1)) == 1
    world.wait_log(r"tls cert=\S+ key=\S+ result=failed reason=\"[^\"]+\"")


@pytest.mark.parametrize("bad", ["missing", "directory", "mismatched", "no-engine", "half"])
def test_check_reports_bad_key(world, pki, bad):
    s = {"tls_cert": pki.cert, "tls_key": pki.key, "tls_engine": world.engine}
    if bad == "missing":
        s["tls_key"] = world.path("nope.key")
    elif bad == "directory":
        s["tls_key"] = world.dir
    elif bad == "mismatched":
        s["tls_key"] = pki.key2
    elif bad == "no-engine":
        s["tls_engine"] = world.path("no-such-engine")
    else:
        del s["tls_key"]
    r = subprocess.run(world.argv(s, flags=["-n"]), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, (r.stdout, r.stderr)
    want = {"missing": r"tls_key .*nope\.key", "directory": r"cannot use tls_cert",
            "mismatched": r"cannot use tls_cert .* with tls_key .*server2\.key",
            "no-engine": r"tls_engine .*no-such-engine: No such file",
            "half": r"tls_cert and tls_key must be set together"}[bad]
    assert re.search(want, r.stderr) or (bad == "missing" and "cannot use" in r.stderr), r.stderr
    if bad == "mismatched":
        assert re.search(r"reason=\"[^\"]*private key[^\"]*not the key of ", r.stderr), r.stderr
    # and the supervisor refuses to start with it
    if bad != "half":
        port = L.free_port()
        pr = world.spawn(world.argv(s) + ["-l", "127.0.0.1:%d" % port], name="sup-bad")
        assert pr.wait(20) == 111, world.log_tail()
        world.wait_log(r"supervisor result=error reason=\"cannot start: ")


def test_check_ok(world, pki):
    s = {"tls_cert": pki.cert, "tls_key": pki.key, "tls_engine": world.engine}
    r = subprocess.run(world.argv(s, flags=["-n"]), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "tls_cert = %s" % pki.cert in r.stdout
    assert ": ok" in r.stderr


def test_engine_check_flag(world, pki):
    r = subprocess.run([world.engine, "-n", "-c", pki.cert, "-k", pki.key2],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "result=failed" in r.stderr, r
    r = subprocess.run([world.engine, "-n", "-c", pki.rsa_cert, "-k", pki.rsa_key],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r


@pytest.mark.parametrize("mode", ["wrapper", "supervisor"])
def test_tls_required(world, pki, mode):
    extra = {"tls_required": 1}
    if mode == "wrapper":
        _, port = T.socket_activate(world, T.wrapper(world, pki, extra))
    else:
        _, port = T.supervisor(world, pki, extra)
    c = L.Client(port)
    c.greeting()
    c.cmd("EHLO client.test", 250)
    r = c.cmd("MAIL FROM:<a@client.test>", 530)
    assert r.lines[-1].startswith("530 5.7.0"), r
    T.starttls(c, pki, ehlo=False)
    assert T.send_mail(c, "required").code == 250
    c.cmd("QUIT", 221)
    assert len(world.wait_files(1)) == 1


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        return [int(x) for x in re.search(r"^Uid:\s+(.*)$", f.read(), re.M).group(1).split()]


def engines(w):
    out = []
    for p in L.all_pids():
        cl = L.cmdline(p)
        if cl and cl[0] == w.engine.encode() and L.alive(p):
            out.append(p)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
@pytest.mark.parametrize("mode", ["wrapper", "supervisor"])
def test_engine_unprivileged_and_only_on_demand(world, pki, mode):
    if mode == "wrapper":
        _, port = T.socket_activate(world, T.wrapper(world, pki))
    else:
        sup, port = T.supervisor(world, pki, {"workers": 1, "max_sessions": 1})
        c = L.Client(port)          # a plain session starts no engine
        c.greeting()
        c.cmd("EHLO client.test", 250)
        assert engines(world) == []
        c.cmd("QUIT", 221)
    c = T.tls_client(port, pki)
    c.cmd("EHLO client.test", 250)
    es = engines(world)
    assert len(es) == 1, es
    # the engine runs as its own account (the wrapper's -u default and the
    # supervisor's tls_user default: smtpd-tls), never as the session's, so
    # a session cannot signal, trace or read the process holding the key
    want = pwd.getpwnam("smtpd-tls").pw_uid
    assert uid_of(es[0]) == [want] * 4, uid_of(es[0])
    sessions = [p for p in L.all_pids() if p not in es and L.cmdline(p)
                and L.cmdline(p)[0] == L.smtpd_path().encode() and uid_of(p)[0] == L.SESSION_UID]
    assert sessions, "no session process found"
    assert all(uid_of(p)[0] != want for p in sessions)
    c.cmd("QUIT", 221)
    c.close()
    if mode == "supervisor":
        # the worker's engine serves its next TLS session too: no new exec
        c = T.tls_client(port, pki)
        c.cmd("QUIT", 221)
        c.close()
        assert engines(world) == es
        assert L.proc_stat(es[0])[1] == sup.pid       # started by the supervisor
        sup.kill(signal.SIGTERM)
        assert sup.wait(20) == 0
    end = time.time() + 15
    while time.time() < end and engines(world):
        time.sleep(0.1)
    assert engines(world) == [], "engine did not exit after the session / its worker"


def test_supervisor_20_tls_20_plain(world, pki):
    _, port = T.supervisor(world, pki, {"workers": 4, "max_per_addr": 100})
    errors, done = [], []

    def client(i):
        try:
            tls = i % 2 == 0
            tok = "par%02d%s" % (i, "tls" if tls else "plain")
            msg = L.message(tok)
            code, ver, _ = T.smtplib_send(port, pki, msg, tls=tls)
            assert code == 250 and (ver is not None) == tls
            done.append(tok)
        except Exception as e:          # noqa: BLE001 - reported below
            errors.append("%d: %r" % (i, e))
    ts = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    files = world.wait_files(40, timeout=30)
    assert len(files) == 40, len(files)
    for i in range(40):
        tls = i % 2 == 0
        tok = ("par%02d%s" % (i, "tls" if tls else "plain")).encode()
        mine = [d for _, d in files if b"Subject: launch test " + tok + b"\n" in d]
        assert len(mine) == 1, (tok, len(mine))
        assert (b"with ESMTPS id" in mine[0]) == tls
    assert len(re.findall(r" starttls client=127\.0\.0\.1 protocol=", world.log())) == 20


def test_sighup_new_certificate(world, pki):
    cert, key = world.path("live.crt"), world.path("live.key")
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    os.chmod(key, 0o600)
    sup, port = T.supervisor(world, pki, cert=cert, key=key)
    assert T.peer_serial(port, pki) == pki.serial(pki.cert)
    # renew: new files in place (as certbot's deploy hook would), then SIGHUP
    shutil.copy(pki.cert2, cert + ".new")
    shutil.copy(pki.key2, key + ".new")
    os.chmod(key + ".new", 0o600)
    os.rename(key + ".new", key)
    os.rename(cert + ".new", cert)
    old = [p for p in L.children(sup.pid) if p not in engines(world)]
    sup.kill(signal.SIGHUP)
    world.wait_log(r"reload result=ok")
    # the old workers (and their engines) finish and go; a client that
    # raced the signal may still get one of them, so wait for that first
    assert L.wait_gone(old, 15), "old workers still running"
    assert T.peer_serial(port, pki) == pki.serial(pki.cert2)


def test_sighup_bad_key_keeps_old(world, pki):
    cert, key = world.path("live.crt"), world.path("live.key")
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    sup, port = T.supervisor(world, pki, cert=cert, key=key)
    shutil.copy(pki.key2, key)          # mismatched now
    sup.kill(signal.SIGHUP)
    world.wait_log(r"reload result=error reason=\".*cannot use tls_cert .*keeping the old configuration")
    assert sup.poll() is None
    c = L.Client(port)                  # still serves plain mail
    c.greeting()
    assert T.send_mail(c, "afterhup").code == 250
    c.cmd("QUIT", 221)


def test_man_page_lint_clean():
    """man/smtpd-tls.8 lints clean and names every option of the engine"""
    L.need("mandoc")
    page = os.path.join(L.ROOT_DIR, "man", "smtpd-tls.8")
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", page],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    text = open(page).read()
    for opt in "cekn stTu".replace(" ", "s"):
        assert re.search(r"^\.It Fl %s\b" % opt, text, re.M), opt


@pytest.mark.skipif(os.geteuid() != 0, reason="the account checks apply to root")
@pytest.mark.parametrize("user,why", [("no-such-tls-user", "does not exist"),
                                      ("root", "is root"),
                                      ("smtpd", "has the uid of session_user")])
def test_check_refuses_tls_user(world, pki, user, why):
    s = {"tls_cert": pki.cert, "tls_key": pki.key, "tls_engine": world.engine,
         "tls_user": user}
    r = subprocess.run(world.argv(s, flags=["-n"]), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "tls_user %s %s" % (user, why) in r.stderr, r.stderr
    port = L.free_port()
    pr = world.spawn(world.argv(s) + ["-l", "127.0.0.1:%d" % port], name="sup-bad-user")
    assert pr.wait(20) == 111, world.log_tail()
    world.wait_log(r"supervisor result=error reason=\"cannot start: tls_user ")
