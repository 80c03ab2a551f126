"""storage failures (faultfs shim) and clients that vanish"""
import os
import time

import harness
from harness import (TestFailure, check, check_stored, crlf, eq, expect, qid_of,
                     send_message, test)


def fault_env(T, op, err, user="alice", sub=""):
    if harness.FAULTFS_ERROR:
        raise TestFailure(harness.FAULTFS_ERROR)
    if not os.path.exists(harness.FAULTFS):
        raise TestFailure("%s missing" % harness.FAULTFS)
    env = T.env(start=False)
    env.extra_env.update({"LD_PRELOAD": harness.FAULTFS, "FAULTFS_OP": op,
                          "FAULTFS_MATCH": env.maildir(user) + sub, "FAULTFS_ERRNO": err})
    env.start()
    return env


def fault_test(T, op, err, code, enh, sub=""):
    env = fault_env(T, op, err, sub=sub)
    c = env.client()
    body = "Subject: doomed\n\nthis cannot be stored\n"
    r = send_message(c, "s@remote.test", ["alice@example.test"], crlf(body), expect_code=None)
    if code is None:
        check(r.code in (451, 452) and (r.enh() or "").startswith("4."),
              "%s failing with %s: want 451/452 4.x.x, got %r" % (op, err, r.text))
    else:
        expect(r, code, enh, "%s failing with %s" % (op, err))
    c.cmd("NOOP", 250, "2.0.0", "NOOP after the storage failure")
    # bob's Maildir works: the session still delivers
    ok = "Subject: fine\n\nbob is fine\n"
    qid = qid_of(send_message(c, "s@remote.test", ["bob@example.test"], crlf(ok)))
    c.cmd("QUIT", 221, "2.0.0")
    env.wait_sessions()
    env.assert_nothing_stored(["alice"])
    check_stored(env, "bob", "s@remote.test", "bob@example.test", "client.test", qid, ok)
    eq(env.spool_files(), [], "spool after a refused message")


@test
def test_fault_fsync_eio(T):
    fault_test(T, "fsync", "EIO", 451, "4.3.0")


@test
def test_fault_fsync_enospc(T):
    fault_test(T, "fsync", "ENOSPC", 452, "4.3.1")


@test
def test_fault_write_enospc(T):
    fault_test(T, "write", "ENOSPC", 452, "4.3.1")


@test
def test_fault_write_eio(T):
    fault_test(T, "write", "EIO", 451, "4.3.0")


@test
def test_fault_rename_eio(T):
    fault_test(T, "rename", "EIO", 451, "4.3.0")


@test
def test_fault_fsync_tmp_file_only(T):
    """only the message file's fsync (in tmp/) fails, not the directory's"""
    fault_test(T, "fsync", "EIO", 451, "4.3.0", sub="/tmp/")


@test
def test_fault_fsync_new_dir_only(T):
    """only new/'s fsync fails, after the rename: the file must go again"""
    fault_test(T, "fsync", "EIO", 451, "4.3.0", sub="/new")


@test
def test_maildir_cannot_be_created(T):
    env = T.env()
    # the user's Maildir would be below a regular file: mkdir fails
    blocker = os.path.join(env.dir, "blocker")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    env.users["carol"] = os.path.join(blocker, "Maildir")
    with open(env.users_file, "w") as f:
        for n, md in env.users.items():
            f.write("%s:%d:%d:%s\n" % (n, harness.MAIL_UID, harness.MAIL_GID, md))
    c = env.client()
    r = send_message(c, "s@remote.test", ["carol@example.test"],
                     crlf("Subject: x\n\nx\n"), expect_code=None)
    check(r.code in (451, 452, 550, 554) and r.enh() is not None,
          "delivery into an impossible Maildir: want 451 4.3.0 (or a 5xx), got %r" % r.text)
    c.cmd("NOOP", 250, "2.0.0")
    c.cmd("QUIT", 221, "2.0.0")
    env.wait_sessions()
    eq(env.spool_files(), [], "spool after a refused message")


@test
def test_fault_fsync_edquot(T):
    fault_test(T, "fsync", "EDQUOT", None, None)


def wait_clean(env, what):
    env.wait_sessions()
    env.assert_nothing_stored()
    eq(env.spool_files(), [], "spool after the client vanished %s" % what)


@test
def test_client_vanishes_mid_data(T):
    env = T.env()
    c = env.client()
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0")
    c.cmd("RCPT TO:<alice@example.test>", 250, "2.1.5")
    c.cmd("DATA", 354)
    body = b"Subject: half\r\n\r\n" + (b"0123456789" * 7 + b"\r\n") * 3000
    c.send(body[:len(body) // 2])
    time.sleep(0.3)
    c.close()
    wait_clean(env, "mid-DATA")


@test
def test_client_vanishes_mid_bdat(T):
    env = T.env()
    c = env.client()
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0")
    c.cmd("RCPT TO:<alice@example.test>", 250, "2.1.5")
    c.cmd("RCPT TO:<bob@example.test>", 250, "2.1.5")
    ch = b"Subject: first\r\n\r\nfirst chunk\r\n"
    c.send(b"BDAT %d\r\n" % len(ch) + ch)
    expect(c.reply(), 250, None, "first BDAT")
    c.send(b"BDAT 100000 LAST\r\n" + b"x" * 50000)
    time.sleep(0.3)
    c.close()
    wait_clean(env, "mid-BDAT")


@test
def test_client_vanishes_after_data_command(T):
    env = T.env()
    c = env.client()
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0")
    c.cmd("RCPT TO:<alice@example.test>", 250, "2.1.5")
    c.cmd("DATA", 354)
    # a complete-looking message, but no end-of-data line
    c.send(crlf("Subject: nearly\n\nalmost done\n"))
    time.sleep(0.3)
    c.close()
    wait_clean(env, "before the end-of-data line")
