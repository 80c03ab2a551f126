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
import time

import pytest

import smtptest as S
from conftest import greet

SLOW = {"spool_memory": "0", "data_timeout": "1", "cmd_timeout": "1",
        "queue_retry": "1"}


def slow_message(world, queue_run_at=4.0, length=5.0):
    """the audit's session: a queue run in the middle of a slow DATA"""
    os.makedirs(world.path("elsewhere"))
    os.symlink(world.path("elsewhere"), world.maildir("bob"))
    c, p = world.pair_session()
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
            ran = world.spawn(world.argv(flags=("-e", "-q")), name="queue run")
    c.send("\r\n.\r\n")
    r = c.reply()
    c.cmd("QUIT", 221)
    c.close()
    p.wait(timeout=20)
    assert ran is not None and ran.wait(20) == 0
    return r.text


def queue_id(reply):
    return reply.split()[-1]


@pytest.mark.opts(**SLOW)
def test_slow_session_keeps_its_data_file(world):
    r = slow_message(world)
    assert r.startswith("250"), r
    qid = queue_id(r)
    assert qid in world.spool_files(), "data file removed during the session"
    assert qid + ".env" in world.spool_files()
    assert len(world.files("alice")) == 1
    os.unlink(world.maildir("bob"))
    time.sleep(1.2)
    assert world.cli("-q")[0] == 0
    (body,) = world.messages("bob")
    assert b"Subject: slow\n\n" + b"x" * 10 in body
    assert world.spool_files() == []
    assert "lost" not in world.log()


STEPS = ["openat", "flock", "read", "sendmsg", "recvmsg", "write", "fsync",
         "renameat", "rename", "unlink", "close"]


def snapshot(world, qid):
    saved = world.path("saved")
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
    shutil.rmtree(world.maildir("bob"), ignore_errors=True)


def settle(world, qid):
    """clean queue runs until the message is gone (bounded): its envelope
    at once, a data file a killed run left without one once it is stale
    (2 * data_timeout + cmd_timeout = 3 s here)"""
    def done():
        world.cli("-q", log=True)  # a clean-up run must not report "lost" either
        left = world.spool_files()
        return qid + ".env" not in left and qid not in left
    assert S.wait_until(done, 20, 0.5), world.spool_files()


@pytest.mark.skipif(not shutil.which("strace"), reason="strace missing")
@pytest.mark.opts(**SLOW)
@pytest.mark.bound(600)  # ~300 strace'd queue runs; ASan on a busy 2-core box
def test_queue_runner_killed_at_each_step(world):
    r = slow_message(world)
    assert r.startswith("250"), r
    qid = queue_id(r)
    os.unlink(world.maildir("bob"))
    saved = snapshot(world, qid)
    time.sleep(1.2)
    kills = 0
    for call in STEPS:
        for n in range(1, 40):
            restore(world, saved)
            cmd = ["strace", "-f", "-o", "/dev/null", "-e",
                   "inject=%s:signal=SIGKILL:when=%d" % (call, n)]
            cmd += world.argv(flags=("-e", "-q"))
            killed = S.run(cmd, timeout=30)[0] != 0
            settle(world, qid)
            copies = world.files("bob")
            assert len(copies) == 1, "%s #%d: bob has %r" % (call, n, copies)
            assert qid not in world.spool_files(), "%s #%d: data left" % (call, n)
            if not killed:
                break
            kills += 1
    assert kills > 20
    assert "lost" not in world.log()
