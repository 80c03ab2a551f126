"""storage failures (faultfs shim) and clients that vanish"""
import os
import time

import pytest

import smtptest as S
from smtptest import check, crlf, eq, expect, qid_of


def fault_env(T, faultfs, op, err, user="alice", sub=""):
    env = T.env(start=False)
    env.extra_env.update(S.faultfs_env(op, err, env.maildir(user) + sub))
    env.start()
    return env


FAULTS = [  # (name, op, errno, reply code, enhanced code, path below the Maildir)
    ("fsync_eio", "fsync", "EIO", 451, "4.3.0", ""),
    ("fsync_enospc", "fsync", "ENOSPC", 452, "4.3.1", ""),
    ("write_enospc", "write", "ENOSPC", 452, "4.3.1", ""),
    ("write_eio", "write", "EIO", 451, "4.3.0", ""),
    ("rename_eio", "rename", "EIO", 451, "4.3.0", ""),
    # only the message file's fsync (in tmp/) fails, not the directory's
    ("fsync_tmp_file_only", "fsync", "EIO", 451, "4.3.0", "/tmp/"),
    # only new/'s fsync fails, after the rename: the file must go again
    ("fsync_new_dir_only", "fsync", "EIO", 451, "4.3.0", "/new"),
    # EDQUOT: 451 or 452, any 4.x.x
    ("fsync_edquot", "fsync", "EDQUOT", None, None, ""),
]


@pytest.mark.parametrize("op,err,code,enh,sub", [f[1:] for f in FAULTS],
                         ids=[f[0] for f in FAULTS])
def test_fault(T, faultfs, op, err, code, enh, sub):
    env = fault_env(T, faultfs, op, err, sub=sub)
    c = env.client()
    body = "Subject: doomed\n\nthis cannot be stored\n"
    r = c.send_message("s@remote.test", ["alice@example.test"], crlf(body), code=None)
    if code is None:
        check(r.code in (451, 452) and (r.enh() or "").startswith("4."),
              "%s failing with %s: want 451/452 4.x.x, got %r" % (op, err, r.text))
    else:
        expect(r, code, enh, "%s failing with %s" % (op, err))
    c.cmd("NOOP", 250, "2.0.0", "NOOP after the storage failure")
    # bob's Maildir works: the session still delivers
    ok = "Subject: fine\n\nbob is fine\n"
    qid = qid_of(c.send_message("s@remote.test", ["bob@example.test"], crlf(ok)))
    c.quit()
    env.wait_sessions()
    env.assert_nothing_stored(["alice"])
    env.check_stored("bob", qid, ok)
    eq(env.spool_files(), [], "spool after a refused message")


def test_maildir_cannot_be_created(T):
    env = T.env()
    # the user's Maildir would be below a regular file: mkdir fails
    blocker = os.path.join(env.dir, "blocker")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    env.users["carol"] = os.path.join(blocker, "Maildir")
    env.write_users()
    c = env.client()
    r = c.send_message("s@remote.test", ["carol@example.test"],
                     crlf("Subject: x\n\nx\n"), code=None)
    check(r.code in (451, 452, 550, 554) and r.enh() is not None,
          "delivery into an impossible Maildir: want 451 4.3.0 (or a 5xx), got %r" % r.text)
    c.cmd("NOOP", 250, "2.0.0")
    env.quit(c)
    eq(env.spool_files(), [], "spool after a refused message")


def vanish(env, c, data, what):
    """the client sends data and is gone: nothing stored, the spool empty"""
    c.send(data)
    time.sleep(0.3)
    c.close()
    env.wait_sessions()
    env.assert_nothing_stored()
    eq(env.spool_files(), [], "spool after the client vanished %s" % what)


def test_client_vanishes_mid_data(T):
    env, c = T.session()
    c.open_data("s@remote.test", "alice@example.test")
    body = b"Subject: half\r\n\r\n" + (b"0123456789" * 7 + b"\r\n") * 3000
    vanish(env, c, body[:len(body) // 2], "mid-DATA")


def test_client_vanishes_mid_bdat(T):
    env, c = T.session()
    c.mail_rcpt("s@remote.test", "alice@example.test")
    c.cmd("RCPT TO:<bob@example.test>", 250, "2.1.5")
    ch = b"Subject: first\r\n\r\nfirst chunk\r\n"
    c.send(b"BDAT %d\r\n" % len(ch) + ch)
    expect(c.reply(), 250, None, "first BDAT")
    vanish(env, c, b"BDAT 100000 LAST\r\n" + b"x" * 50000, "mid-BDAT")


def test_client_vanishes_after_data_command(T):
    env, c = T.session()
    c.open_data("s@remote.test", "alice@example.test")
    # a complete-looking message, but no end-of-data line
    vanish(env, c, crlf("Subject: nearly\n\nalmost done\n"), "before the end-of-data line")
