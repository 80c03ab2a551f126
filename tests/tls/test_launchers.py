"""test_launchers.py - every per-connection launcher example in etc/tls/
runs smtpd behind the smtpd-tls wrapper and a client gets STARTTLS; the
supervisor examples get it from tls_cert/tls_key in etc/smtpd.conf.

Each test reads the example file itself and swaps only the paths (our
binaries, the test's certificate, key and configuration), so an example
that breaks fails here."""
import os
import shlex
import sys

import pytest

import smtptest as L
import tlslib as T

sys.path.insert(0, os.path.join(L.ROOT_DIR, "tests", "launch"))
import t_launch as LR                                    # noqa: E402

TLS_ETC = os.path.join(L.ETC_DIR, "tls")
LE = "/etc/letsencrypt/live/mx.example.org/"


def subst(args, w, pki, conf):
    out = []
    for a in args:
        a = a.replace("/usr/local/sbin/smtpd-tls", w.engine)
        a = a.replace("/usr/local/sbin/smtpd", L.smtpd_path())
        a = a.replace(LE + "fullchain.pem", pki.cert).replace(LE + "privkey.pem", pki.key)
        a = a.replace("/etc/smtpd.conf", conf)
        out.append(a)
    return out


def deliver_tls(w, port, pki, logged=True):
    code, ver, cipher = T.smtplib_send(port, pki, L.message("etc-tls"))
    assert code == 250 and ver in ("TLSv1.2", "TLSv1.3")
    files = w.wait_files(1)
    assert len(files) == 1
    rcv = T.received_tls(files[0][1])
    assert "with ESMTPS" in rcv and "(using %s with cipher %s" % (ver, cipher) in rcv, rcv
    if logged:
        w.wait_log(r"starttls client=127\.0\.0\.1 protocol=%s " % ver.replace(".", r"\."))


def test_etc_systemd_accept_yes(world, pki):
    """etc/tls/smtpd@.service: the connection on fd 3 through LISTEN_FDS"""
    unit = LR.parse_unit("tls/smtpd@.service")
    conf = LR.etc_config(world)
    argv = subst(shlex.split(unit["Service"]["ExecStart"]), world, pki, conf)
    assert argv[0] == world.engine and "--" in argv
    _, port = T.socket_activate(world, argv, inetd=False)
    deliver_tls(world, port, pki)


def test_systemd_socket_activate_inetd(world, pki):
    """the same wrapper with the socket on fd 0/1 (--inetd)"""
    unit = LR.parse_unit("tls/smtpd@.service")
    conf = LR.etc_config(world)
    argv = subst(shlex.split(unit["Service"]["ExecStart"]), world, pki, conf)
    _, port = T.socket_activate(world, argv, inetd=True)
    deliver_tls(world, port, pki)


def tcpserver_args():
    """the program part of etc/tls/tcpserver.sh (after the port)"""
    text = open(os.path.join(TLS_ETC, "tcpserver.sh")).read().replace("\\\n", " ")
    line = [l for l in text.splitlines() if l.strip().startswith("exec tcpserver")][0]
    a = shlex.split(line)
    return a[a.index("25") + 1:]


def test_etc_tcpserver(world, pki):
    L.need("tcpserver")
    conf = LR.etc_config(world)
    args = subst(tcpserver_args(), world, pki, conf)
    assert args[0] == world.engine
    _, port = T.start_with_port(world, lambda p: LR.tcpserver_argv(p, args), "tcpserver")
    deliver_tls(world, port, pki)
    world.wait_log(r"tcpserver: ok \d+ ")


def test_etc_inetd(world, pki):
    lines = [l for l in open(os.path.join(TLS_ETC, "inetd.conf"))
             if l.strip() and not l.lstrip().startswith("#")]
    assert len(lines) == 1
    f = lines[0].split()
    assert f[:5] == ["smtp", "stream", "tcp", "nowait", "root"]
    assert f[5] == "/usr/local/sbin/smtpd-tls" and f[6] == "smtpd-tls"
    # fds 0-2 are the socket under inetd: no log on stderr
    conf = LR.etc_config(world, log_stderr=False)
    args = subst(f[7:], world, pki, conf)
    inetd = "/usr/sbin/inetd"
    if os.path.exists(inetd) and os.path.exists("/usr/share/doc/openbsd-inetd"):
        def mk(p):
            cfg = world.path("inetd.conf")
            with open(cfg, "w") as c:
                c.write("127.0.0.1:%d\tstream\ttcp\tnowait\troot\t%s\tsmtpd-tls %s\n"
                        % (p, world.engine, " ".join(args)))
            return [inetd, "-d", cfg]
        _, port = T.start_with_port(world, mk, "inetd")
    else:   # same argv, fd 0/1 per connection, as inetd gives it
        L.need("tcpserver")
        _, port = T.start_with_port(
            world, lambda p: LR.tcpserver_argv(p, [world.engine] + args), "tcpserver")
    deliver_tls(world, port, pki, logged=False)


def test_etc_xinetd(world, pki):
    L.need("/usr/sbin/xinetd")
    name, attrs = LR.parse_xinetd(os.path.join(TLS_ETC, "xinetd.smtpd"))
    assert name == "smtp" and attrs["server"] == "/usr/local/sbin/smtpd-tls"
    conf = LR.etc_config(world, log_stderr=False)
    args = " ".join(subst(shlex.split(attrs["server_args"]), world, pki, conf))
    for _ in range(5):
        port = L.free_port()
        cfg = LR.xinetd_config(world, port, attrs, world.engine, args)
        pr = world.spawn(["/usr/sbin/xinetd", "-dontfork", "-f", cfg, "-pidfile",
                          world.path("xinetd.pid")], name="xinetd")
        if L.wait_listen(port, proc=pr) and pr.poll() is None:
            break
        pr.stop()
    else:
        pytest.fail("xinetd did not start")
    deliver_tls(world, port, pki, logged=False)


@pytest.mark.parametrize("how", ["listen", "activated"])
def test_etc_supervisor_tls_settings(world, pki, how):
    """etc/smtpd.conf's tls_* lines, under smtpd -l and systemd Accept=no"""
    conf = LR.etc_config(world, extra={"tls_cert": pki.cert, "tls_key": pki.key,
                                       "tls_engine": world.engine, "workers": "2"})
    text = open(conf).read()
    assert "\ntls_cert = %s\n" % pki.cert in text     # the example's line, filled in
    if how == "listen":
        _, port = T.start_with_port(
            world, lambda p: [L.smtpd_path(), "-c", conf, "-l", "127.0.0.1:%d" % p], "supervisor")
    else:
        L.need(L.SOCKET_ACTIVATE)
        _, port = T.start_with_port(
            world, lambda p: [L.SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % p, L.smtpd_path(), "-c",
                              conf], "socket-activate")
    deliver_tls(world, port, pki)
