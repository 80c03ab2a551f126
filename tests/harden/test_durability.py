"""test_durability.py - finding 1: a 250 that lost a copy.

The audit's scenario: two recipients, one deferred (its Maildir is a
symlink), DATA sent slowly with spool_memory=0 and short timeouts, and a
queue run while the session is still reading.  The queue run must not
take the live session's data file; the deferred copy must arrive later.
Then the queue runner (and its deliverer) is killed at every step of
its work (strace injects SIGKILL at the Nth call of each system call
that matters): every run after a kill must still end with exactly one
copy for the recipient and an empty spool.
"""
import os
import shutil
import subprocess
import time

import pytest

from conftest import IS_ROOT, wait_for, greet

SLOW = {"spool_memory": "0", "data_timeout": "1", "cmd_timeout": "1",
        "queue_retry": "1"}


def slow_message(world, queue_run_at=4.0, length=5.0):
    """the audit's session: a queue run in the middle of a slow DATA"""
    os.makedirs(os.path.join(world.dir, "elsewhere"))
    os.symlink(os.path.join(world.dir, "elsewhere"), os.path.join(world.dir, "bob", "Maildir"))
    c, p = world.session()
    greet(c)
    c.cmd("MAIL FROM:<sender@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 250)
    c.cmd("DATA", 354)
    c.send("Subject: slow\r\n\r\n")
    start, ran = time.time(), None
    while time.time() - start < length or (ran and ran.poll() is None):
        c.send("x")                     # a byte each 0.25 s: data_timeout is 1 s
        time.sleep(0.25)
        if ran is None and time.time() - start > queue_run_at:
            # the old cleaner: "stale by mtime"; runs while we keep sending
            ran = subprocess.Popen(world.argv("-q"), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c.send("\r\n.\r\n")
    r = c.reply()
    c.cmd("QUIT", 221)
    c.close()
    p.wait(timeout=20)
    assert ran is not None and ran.wait(timeout=20) == 0
    return r


def queue_id(reply):
    return reply.split()[-1]


@pytest.mark.opts(**SLOW)
def test_slow_session_keeps_its_data_file(world):
    r = slow_message(world)
    assert r.startswith("250"), r
    qid = queue_id(r)
    assert qid in world.spool_files(), "data file removed during the session"
    assert qid + ".env" in world.spool_files()
    assert len(world.maildir("alice")) == 1
    os.unlink(os.path.join(world.dir, "bob", "Maildir"))
    time.sleep(1.2)
    assert world.run("-q").returncode == 0
    body = world.message("bob")
    assert b"Subject: slow\n\n" + b"x" * 10 in body
    assert world.spool_files() == []
    assert "lost" not in world.log_text()


STEPS = ["openat", "flock", "read", "sendmsg", "recvmsg", "write", "fsync",
         "renameat", "rename", "unlink", "close"]


def snapshot(world, qid):
    saved = os.path.join(world.dir, "saved")
    os.mkdir(saved)
    for name in (qid, qid + ".env"):
        shutil.copy2(os.path.join(world.spool, name), saved)
        st = os.stat(os.path.join(world.spool, name))
        os.chown(os.path.join(saved, name), st.st_uid, st.st_gid)
    return saved


def restore(world, saved):
    for name in os.listdir(world.spool):
        os.unlink(os.path.join(world.spool, name))
    for name in os.listdir(saved):
        shutil.copy2(os.path.join(saved, name), world.spool)
        st = os.stat(os.path.join(saved, name))
        os.chown(os.path.join(world.spool, name), st.st_uid, st.st_gid)
    shutil.rmtree(os.path.join(world.dir, "bob", "Maildir"), ignore_errors=True)


def settle(world, qid):
    """clean queue runs until the message is gone (bounded)"""
    def done():
        world.run("-q")
        return qid + ".env" not in world.spool_files()
    assert wait_for(done, timeout=20, step=0.5), world.spool_files()


@pytest.mark.skipif(not shutil.which("strace"), reason="strace missing")
@pytest.mark.opts(**SLOW)
@pytest.mark.bound(600)  # ~300 strace'd queue runs; ASan on a busy 2-core box
def test_queue_runner_killed_at_each_step(world):
    r = slow_message(world)
    assert r.startswith("250"), r
    qid = queue_id(r)
    os.unlink(os.path.join(world.dir, "bob", "Maildir"))
    saved = snapshot(world, qid)
    time.sleep(1.2)
    kills = 0
    for call in STEPS:
        for n in range(1, 40):
            restore(world, saved)
            cmd = ["strace", "-f", "-o", "/dev/null", "-e",
                   "inject=%s:signal=SIGKILL:when=%d" % (call, n)] + world.argv("-q")
            rc = subprocess.run(cmd, capture_output=True, timeout=30).returncode
            killed = rc != 0
            settle(world, qid)
            copies = world.maildir("bob")
            assert len(copies) == 1, "%s #%d: bob has %r" % (call, n, copies)
            assert qid not in world.spool_files(), "%s #%d: data left" % (call, n)
            if not killed:
                break
            kills += 1
    assert kills > 20
    assert "lost" not in world.log_text()
