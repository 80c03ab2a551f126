"""the queue: a recipient whose delivery fails for now is kept and retried
by `smtpd -q`; one that can never be delivered goes to the postmaster"""
import os
import stat
import time

import smtptest as S
from smtptest import check, crlf, eq, qid_of


def partial_failure(T, faultfs, opts=None):
    """alice's Maildir fails (fsync EIO), bob's works; returns env, qid, body"""
    o = {"queue_retry": "1"}
    o.update(opts or {})
    env = T.env(start=False, opts=o)
    env.extra_env.update(S.faultfs_env("fsync", "EIO", env.maildir("alice")))
    env.start()
    c = env.client()
    body = "Subject: partly\n\nbob now, alice later\n"
    r = c.send_message("s@remote.test", ["alice@example.test", "bob@example.test"],
                     crlf(body))
    qid = qid_of(r)
    env.quit(c)
    env.check_stored("bob", qid, body, single=False)
    env.assert_nothing_stored(["alice"])
    check(env.spool_files() != [], "spool empty although alice's copy is pending")
    for fn in env.spool_files():
        st = os.stat(os.path.join(env.spool, fn))
        check(stat.S_IMODE(st.st_mode) & 0o077 == 0,
              "spool file %s mode %o" % (fn, stat.S_IMODE(st.st_mode)))
    return env, qid, body


def test_partial_failure_queued_and_retried(T, faultfs):
    env, qid, body = partial_failure(T, faultfs)
    for k in ("LD_PRELOAD", "FAULTFS_OP", "FAULTFS_MATCH", "FAULTFS_ERRNO"):
        env.extra_env.pop(k)             # alice's Maildir works again
    time.sleep(1.2)                      # past the first retry time
    env.run_queue()
    env.check_stored("alice", qid, body, single=False)
    eq(len(env.files("bob")), 1, "bob's copies after the retry")
    eq(env.spool_files(), [], "spool after every recipient got the message")


def test_queue_not_retried_before_due(T, faultfs):
    env, qid, body = partial_failure(T, faultfs, {"queue_retry": "300"})
    env.run_queue()
    env.assert_nothing_stored(["alice"])
    check(env.spool_files() != [], "queued message vanished from the spool")


def test_undeliverable_goes_to_postmaster(T, faultfs):
    env, qid, body = partial_failure(T, faultfs, {"postmaster": "bob"})
    # alice leaves: her pending copy can never be delivered now
    del env.users["alice"]
    env.write_users()
    time.sleep(1.2)
    log = env.run_queue()
    env.wait_files(2, "bob")
    got = env.read_new("bob")
    eq(len(got), 2, "bob's (postmaster's) files: his copy and the undeliverable one (log %r)"
       % log[-300:])
    for fn, d in got:
        check(d.endswith(b"\n\nbob now, alice later\n"), "%s body: %r" % (fn, d[-60:]))
        check(("id %s" % qid).encode() in d, "%s lacks the QID %s" % (fn, qid))
    eq(env.spool_files(), [], "spool after giving up")
