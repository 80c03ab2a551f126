"""the queue: a recipient whose delivery fails for now is kept and retried
by `smtpd -q`; one that can never be delivered goes to the postmaster"""
import os
import stat
import time

import harness
from harness import (TestFailure, check, check_stored, crlf, eq, qid_of,
                     send_message, test)


def partial_failure(T, opts=None):
    """alice's Maildir fails (fsync EIO), bob's works; returns env, qid, body"""
    if harness.FAULTFS_ERROR:
        raise TestFailure(harness.FAULTFS_ERROR)
    o = {"queue_retry": "1"}
    o.update(opts or {})
    env = T.env(start=False, opts=o)
    env.extra_env.update({"LD_PRELOAD": harness.FAULTFS, "FAULTFS_OP": "fsync",
                          "FAULTFS_MATCH": env.maildir("alice"), "FAULTFS_ERRNO": "EIO"})
    env.start()
    c = env.client()
    body = "Subject: partly\n\nbob now, alice later\n"
    r = send_message(c, "s@remote.test", ["alice@example.test", "bob@example.test"],
                     crlf(body))
    qid = qid_of(r)
    c.cmd("QUIT", 221, "2.0.0")
    env.wait_sessions()
    check_stored(env, "bob", "s@remote.test", "bob@example.test", "client.test", qid, body,
                 single=False)
    env.assert_nothing_stored(["alice"])
    check(env.spool_files() != [], "spool empty although alice's copy is pending")
    for fn in env.spool_files():
        st = os.stat(os.path.join(env.spool, fn))
        check(stat.S_IMODE(st.st_mode) & 0o077 == 0,
              "spool file %s mode %o" % (fn, stat.S_IMODE(st.st_mode)))
    return env, qid, body


def run_queue(env, env_extra=None):
    rc, out, err = env.run_direct(b"", flags=("-e", "-q"), env=env_extra)
    eq(rc, 0, "smtpd -q exit status (stderr %r)" % err[-400:])
    return err.decode("utf-8", "replace")


@test
def test_partial_failure_queued_and_retried(T):
    env, qid, body = partial_failure(T)
    for k in ("LD_PRELOAD", "FAULTFS_OP", "FAULTFS_MATCH", "FAULTFS_ERRNO"):
        env.extra_env.pop(k)             # alice's Maildir works again
    time.sleep(1.2)                      # past the first retry time
    run_queue(env)
    check_stored(env, "alice", "s@remote.test", "alice@example.test", "client.test", qid, body,
                 single=False)
    eq(len(env.files("bob")), 1, "bob's copies after the retry")
    eq(env.spool_files(), [], "spool after every recipient got the message")


@test
def test_queue_not_retried_before_due(T):
    env, qid, body = partial_failure(T, {"queue_retry": "300"})
    run_queue(env)
    env.assert_nothing_stored(["alice"])
    check(env.spool_files() != [], "queued message vanished from the spool")


@test
def test_undeliverable_goes_to_postmaster(T):
    env, qid, body = partial_failure(T, {"postmaster": "bob"})
    # alice leaves: her pending copy can never be delivered now
    del env.users["alice"]
    with open(env.users_file, "w") as f:
        for n, md in env.users.items():
            f.write("%s:%d:%d:%s\n" % (n, harness.MAIL_UID, harness.MAIL_GID, md))
    time.sleep(1.2)
    log = run_queue(env)
    harness.wait_files(env, "bob", 2)
    got = env.read_new("bob")
    eq(len(got), 2, "bob's (postmaster's) files: his copy and the undeliverable one (log %r)"
       % log[-300:])
    for fn, d in got:
        check(d.endswith(b"\n\nbob now, alice later\n"), "%s body: %r" % (fn, d[-60:]))
        check(("id %s" % qid).encode() in d, "%s lacks the QID %s" % (fn, qid))
    eq(env.spool_files(), [], "spool after giving up")
