"""test_small.py - finding 7: the smaller ones.

Comma lists trimmed (and shown so by -n); the pid file written by root
without following a symlink; the session's wait for the deliverer
bounded (deliver_timeout); the supervisor's queue child holding none of
the supervisor's channels, self-pipe or listeners.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

import smtptest as S
from conftest import greet
from smtptest import children, cmdline, free_port, wait_until
from test_deliverer_fds import fd_links


def test_comma_lists_trimmed(world):
    opts = {"local_domains": "localhost, example.test ,, mx.test",
            "proxy_trusted": "192.0.2.1 , ::1"}
    out = world.cli("-n", extra=opts)[1]
    assert "local_domains = localhost,example.test,mx.test\n" in out
    assert "proxy_trusted = 192.0.2.1,::1\n" in out
    c, p = world.pair_session({"local_domains": opts["local_domains"]})
    greet(c)
    c.cmd("MAIL FROM:<s@example.org>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 250, what="a listed domain")
    c.cmd("QUIT", 221)


@pytest.mark.skipif(not S.IS_ROOT, reason="the pid file is root's")
def test_pid_file_never_follows_a_symlink(world):
    victim = world.path("victim")
    with open(victim, "w") as f:
        f.write("root's file\n")
    pid_file = world.path("smtpd.pid")
    os.symlink(victim, pid_file)
    # -d: the daemon keeps no descriptor of ours (/dev/null, not pipes)
    r = subprocess.run(world.argv({"pid_file": pid_file, "queue_interval": "0", "log": "syslog"},
                                  ("-e", "-d", "-l", "127.0.0.1:%d" % free_port())),
                       timeout=S.TIMEOUT, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert r.returncode == 0, r
    assert wait_until(lambda: os.path.isfile(pid_file) and not os.path.islink(pid_file),
                      S.TIMEOUT)
    with open(victim) as f:
        assert f.read() == "root's file\n", "root wrote through the symlink"
    pid = int(open(pid_file).read())
    os.kill(pid, signal.SIGTERM)
    assert S.wait_gone([pid], S.TIMEOUT)


def test_deliverer_answer_is_bounded(world):
    c, p = world.pair_session({"deliver_timeout": "2"})
    greet(c)
    assert wait_until(lambda: children(p.pid), S.TIMEOUT)
    (deliverer,) = children(p.pid)
    os.kill(deliverer, signal.SIGSTOP)      # a Maildir on a hung mount
    try:
        c.cmd("MAIL FROM:<s@example.org>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: hung\r\n\r\nx\r\n.\r\n")
        c.expect(451, timeout=10)           # bounded by deliver_timeout, not by us
        c.cmd("QUIT", 221)
        assert world.spool_files() == []
    finally:
        # it may be gone: a stopped orphan's process group gets SIGHUP
        for sig in (signal.SIGKILL, signal.SIGCONT):
            try:
                os.kill(deliverer, sig)
            except ProcessLookupError:
                pass
    p.wait(timeout=S.TIMEOUT)
    assert "timed out" in world.log()


@pytest.mark.skipif(not shutil.which("strace"), reason="strace missing")
def test_queue_child_holds_no_supervisor_descriptor(world):
    """the queue child is held in readdir (strace delays getdents64)"""
    cmd = ["strace", "-f", "-o", "/dev/null", "-e", "trace=getdents64", "-e",
           "inject=getdents64:delay_enter=3000000"] + world.argv(
               {"queue_interval": "1", "workers": "2"},
               flags=("-e", "-l", "127.0.0.1:%d" % free_port()))
    st = world.spawn(cmd, name="strace")
    try:
        # strace forks short-lived children of its own (its ptrace probes)
        # before the tracee: the supervisor is the child running smtpd
        smtpd = S.smtpd_path().encode()
        sups = lambda: [k for k in children(st.pid)   # noqa: E731
                        if cmdline(k)[:1] == [smtpd]]
        assert wait_until(sups, S.TIMEOUT)
        (sup,) = sups()
        assert wait_until(lambda: len(children(sup)) >= 2, S.TIMEOUT)
        time.sleep(0.3)
        workers = set(children(sup))
        new = []
        assert wait_until(lambda: new.extend(set(children(sup)) - workers) or new,
                          S.TIMEOUT)
        time.sleep(1)       # past its start-up, now held in readdir
        links = fd_links(new[0])
        extra = [l for n, l in links.items() if n > 2 and l != world.spool]
        assert len(extra) <= 1, "queue child holds %r" % links   # its deliverer's channel
        assert not any(l.startswith("pipe:") for l in extra), links
    finally:
        st.stop(timeout=30)
