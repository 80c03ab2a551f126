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
from conftest import IS_ROOT, TIMEOUT, greet, wait_for
from smtptest import free_port
from test_deliverer_fds import children, fd_links


def test_comma_lists_trimmed(world):
    opts = {"local_domains": "localhost, example.test ,, mx.test",
            "proxy_trusted": "192.0.2.1 , ::1"}
    r = world.run("-n", **opts)
    assert b"local_domains = localhost,example.test,mx.test\n" in r.stdout
    assert b"proxy_trusted = 192.0.2.1,::1\n" in r.stdout
    c, p = world.session(local_domains=opts["local_domains"])
    greet(c)
    c.cmd("MAIL FROM:<s@example.org>", 250)
    r = c.cmd("RCPT TO:<bob@example.test>")
    assert r.startswith("250"), "a listed domain refused: %r" % r
    c.cmd("QUIT", 221)


@pytest.mark.skipif(not IS_ROOT, reason="the pid file is root's")
def test_pid_file_never_follows_a_symlink(world):
    victim = os.path.join(world.dir, "victim")
    with open(victim, "w") as f:
        f.write("root's file\n")
    pid_file = os.path.join(world.dir, "smtpd.pid")
    os.symlink(victim, pid_file)
    port = free_port()
    r = subprocess.run(world.argv("-d", "-l", "127.0.0.1:%d" % port, pid_file=pid_file,
                                  queue_interval="0", log="syslog"),
                       timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert r.returncode == 0, r
    assert wait_for(lambda: os.path.isfile(pid_file) and not os.path.islink(pid_file))
    with open(victim) as f:
        assert f.read() == "root's file\n", "root wrote through the symlink"
    pid = int(open(pid_file).read())
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                    open("/proc/%d/stat" % pid).read().split()[2] == "Z")


def test_deliverer_answer_is_bounded(world):
    c, p = world.session(deliver_timeout="2")
    greet(c)
    assert wait_for(lambda: children(p.pid))
    (deliverer,) = children(p.pid)
    os.kill(deliverer, signal.SIGSTOP)      # a Maildir on a hung mount
    try:
        c.cmd("MAIL FROM:<s@example.org>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        start = time.time()
        c.send(b"Subject: hung\r\n\r\nx\r\n.\r\n")
        r = c.reply()
        assert r.startswith("451"), r
        assert time.time() - start < 10
        c.cmd("QUIT", 221)
        assert world.spool_files() == []
    finally:
        # it may be gone: a stopped orphan's process group gets SIGHUP
        for sig in (signal.SIGKILL, signal.SIGCONT):
            try:
                os.kill(deliverer, sig)
            except ProcessLookupError:
                pass
    p.wait(timeout=TIMEOUT)
    assert "timed out" in world.log_text()


@pytest.mark.skipif(not shutil.which("strace"), reason="strace missing")
def test_queue_child_holds_no_supervisor_descriptor(world):
    """the queue child is held in readdir (strace delays getdents64)"""
    port = free_port()
    cmd = ["strace", "-f", "-o", "/dev/null", "-e", "trace=getdents64", "-e",
           "inject=getdents64:delay_enter=3000000"] + world.argv(
               "-l", "127.0.0.1:%d" % port, queue_interval="1", workers="2")
    st = subprocess.Popen(cmd, stderr=open(world.log, "ab"))
    try:
        assert wait_for(lambda: children(st.pid))
        (sup,) = children(st.pid)
        assert wait_for(lambda: len(children(sup)) >= 2)
        time.sleep(0.3)
        workers = set(children(sup))
        new = []
        assert wait_for(lambda: new.extend(set(children(sup)) - workers) or new,
                        timeout=TIMEOUT)
        time.sleep(1)       # past its start-up, now held in readdir
        links = fd_links(new[0])
        extra = [l for n, l in links.items() if n > 2 and l != world.spool]
        assert len(extra) <= 1, "queue child holds %r" % links   # its deliverer's channel
        assert not any(l.startswith("pipe:") for l in extra), links
    finally:
        S.terminate(st, timeout=30)
