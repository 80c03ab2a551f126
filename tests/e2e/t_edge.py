"""edge cases: split writes, loops in bodies, limits, concurrency, privileges"""
import os
import re
import threading
import time

import pytest

import smtptest as S
from smtptest import IS_ROOT, SESSION_UID, check, crlf, eq, expect, qid_of


def test_end_of_data_split_across_writes(T):
    env, c = T.session()
    c.open_data("s@remote.test", "alice@example.test")
    pieces = [b"Subject: split\r\n\r\nbody\r", b"\n.", b"..dotted\r", b"\n", b"x\r\n",
              b".", b"\r", b"\n"]
    for p in pieces:
        c.send(p)
        time.sleep(0.05)
    qid = qid_of(c.reply())
    env.quit(c)
    env.check_stored("alice", qid, b"Subject: split\n\nbody\n..dotted\nx\n")


def test_first_line_dot_stuffed(T):
    env, c = T.session()
    c.open_data("s@remote.test", "alice@example.test")
    c.send(b"..first line starts with a dot\r\n\r\nbody\r\n.\r\n")
    qid = qid_of(c.reply())
    env.quit(c)
    env.check_stored("alice", qid, b".first line starts with a dot\n\nbody\n")


def test_received_in_body_is_not_a_hop(T):
    env, c = T.session(opts={"hop_limit": "5"})
    hops = b"".join(b"Received: from h%d.test by h%d.test; Thu, 1 Jan 2025 00:00:00 +0000\r\n"
                    % (i, i + 1) for i in range(10))
    body = (b"Subject: quoting a loop\r\n\r\nthe body quotes headers:\r\n" + hops +
            b"Delivered-To: alice@example.test\r\n")
    qid = qid_of(c.send_message("s@remote.test", ["alice@example.test"], body))
    env.quit(c)
    env.check_stored("alice", qid, body.replace(b"\r\n", b"\n"))


def test_loop_header_names_case_insensitive(T):
    env, c = T.session(opts={"hop_limit": "5"})
    hops = b"".join(b"RECEIVED: from h%d.test by h%d.test; Thu, 1 Jan 2025 00:00:00 +0000\r\n"
                    % (i, i + 1) for i in range(8))
    c.send_message("s@remote.test", ["alice@example.test"],
                 hops + b"Subject: upper\r\n\r\nx\r\n", code=554, enh="5.4.6")
    c.send_message("s@remote.test", ["alice@example.test"],
                 b"delivered-to: ALICE@EXAMPLE.TEST\r\nSubject: y\r\n\r\ny\r\n",
                 code=554, enh="5.4.6")
    env.quit_nothing_stored(c)


def test_rejected_rcpts_do_not_count_to_limit(T):
    users = ["u%d" % i for i in range(100)] + ["alice"]
    env, c = T.session(users=users)
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0")
    for i in range(5):
        c.cmd("RCPT TO:<nosuch%d@example.test>" % i, 550, "5.1.1")
    for i in range(100):
        c.cmd("RCPT TO:<u%d@example.test>" % i, 250, "2.1.5", "RCPT u%d after 5 refused" % i)
    c.cmd("RCPT TO:<alice@example.test>", 452, "4.5.3", "101st accepted RCPT")


def test_verbs_case_insensitive(T):
    env, c = T.session(ehlo=None)
    c.cmd("ehlo client.test", 250)
    c.cmd("mail from:<s@remote.test>", 250, "2.1.0")
    c.cmd("rcpt to:<alice@example.test>", 250, "2.1.5")
    c.cmd("data", 354)
    c.send(b"Subject: lower\r\n\r\nlower-case verbs\r\n.\r\n")
    qid = qid_of(c.reply())
    c.cmd("quit", 221, "2.0.0")
    env.wait_sessions()
    env.check_stored("alice", qid, b"Subject: lower\n\nlower-case verbs\n")


def test_bdat_oversize(T):
    env, c = T.session(opts={"size_limit": "10000"})
    c.mail_rcpt("s@remote.test", "alice@example.test")
    chunk = b"Subject: big\r\n\r\n" + (b"b" * 78 + b"\r\n") * 250
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    expect(c.reply(), 552, "5.3.4", "BDAT chunk over size_limit")
    check(c.nothing_pending(0.3), "extra replies: %r" % c.buf[:200])
    c.cmd("NOOP", 250, "2.0.0", "NOOP after the oversize chunk (chunk consumed)")
    env.quit_nothing_stored(c)


def test_partial_command_then_timeout(T):
    env, c = T.session(opts={"cmd_timeout": "1"})
    c.send(b"MAIL FROM:<s@rem")
    expect(c.reply(timeout=8), 421, "4.4.2", "timeout inside a command line")
    c.read_to_eof()
    env.wait_sessions()


def test_concurrent_sessions_same_maildir(T):
    env = T.env()
    nthreads, nmsg = 6, 5
    errors, qids = [], []

    def worker(k):
        try:
            c = env.client()
            for j in range(nmsg):
                body = crlf("Subject: t%d m%d\n\nthread %d message %d\n" % (k, j, k, j))
                qids.append(qid_of(c.send_message("t%d@remote.test" % k,
                                                ["alice@example.test"], body)))
            c.quit()
        except Exception as e:          # noqa: BLE001
            errors.append("thread %d: %s" % (k, e))

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=30)
    check(not errors, "; ".join(errors))
    env.wait_sessions()
    eq(len(set(qids)), nthreads * nmsg, "distinct QIDs")
    got = env.read_new("alice")
    eq(len(got), nthreads * nmsg, "files in alice's new/")
    bodies = sorted(d.split(b"\n\n", 1)[1] for _, d in got)
    want = sorted(b"thread %d message %d\n" % (k, j) for k in range(nthreads)
                  for j in range(nmsg))
    eq(bodies, want, "bodies")
    for fn, d in got:
        S.check_name(fn, d)
    eq(env.files("alice", "tmp"), [], "alice's tmp/")


def test_session_runs_as_session_user(T):
    if not IS_ROOT:
        pytest.skip("not root: no privileges to drop")
    env, c = T.session()
    c.cmd("NOOP", 250, "2.0.0")
    pid = env.procs[0].pid
    with open("/proc/%d/status" % pid) as f:
        status = f.read()
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
    gids = re.search(r"^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
    eq(set(map(int, uids)), {SESSION_UID}, "session process uids (real, eff, saved, fs)")
    eq(set(map(int, gids)), {S.SESSION_GID}, "session process gids")
    groups = re.search(r"^Groups:(.*)$", status, re.M).group(1).split()
    check(all(int(g) == S.SESSION_GID for g in groups),
          "session keeps supplementary groups %r" % groups)
    c.quit()


def test_no_session_processes_left(T):
    env, c = T.session()
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0")
    c.close()               # vanish without QUIT, between commands
    codes = env.wait_sessions()
    check(len(codes) == 1, "sessions: %r" % codes)
    # the deliverer child, if any, must be gone as well
    time.sleep(0.2)
    mine = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if env.users_file.encode() in cmd:
            mine.append(pid)
    eq(mine, [], "smtpd processes still running after the client left")


def test_command_bytes_one_at_a_time(T):
    env, c = T.session()
    for b in b"MAIL FROM:<slow@remote.test>\r\n":
        c.send(bytes([b]))
        time.sleep(0.005)
    expect(c.reply(), 250, "2.1.0", "MAIL sent one byte per write")
    c.send(b"NOOP\r")
    time.sleep(0.1)
    c.send(b"\n")
    expect(c.reply(), 250, "2.0.0", "NOOP with CR and LF in separate writes")


def test_many_pipelined_commands(T):
    env, c = T.session()
    c.send(b"NOOP\r\n" * 1000 + b"QUIT\r\n")
    for i in range(1000):
        expect(c.reply(), 250, "2.0.0", "pipelined NOOP %d" % i)
    expect(c.reply(), 221, "2.0.0", "QUIT after 1000 NOOPs")
    c.read_to_eof()


def test_many_messages_one_session(T):
    """more messages than a process has descriptors by default: leaks show"""
    env, c = T.session()
    n = 1100
    qids = set()
    batch = b""
    for i in range(n):
        chunk = b"Subject: %05d\r\n\r\nmessage %05d\r\n" % (i, i)
        batch += (b"MAIL FROM:<m@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                  b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        if len(batch) > 8000 or i == n - 1:
            c.send(batch)
            batch = b""
            # read what this batch produced: 3 replies per message
            while len(qids) * 3 < (i + 1) * 3:
                expect(c.reply(), 250, "2.1.0", "MAIL %d" % len(qids))
                expect(c.reply(), 250, "2.1.5", "RCPT %d" % len(qids))
                qids.add(qid_of(c.reply()))
    c.quit()
    env.wait_sessions(timeout=30)
    eq(len(qids), n, "distinct QIDs")
    got = env.read_new("alice")
    eq(len(got), n, "files in alice's new/")
    bodies = sorted(d.split(b"\n\n", 1)[1] for _, d in got)
    eq(bodies, [b"message %05d\n" % i for i in range(n)], "bodies")
    eq(env.spool_files(), [], "spool")


def test_shrinking_messages_one_session(T):
    """a session reuses its spool file: a short message after a long one
    carries not one octet of it (nor the long one anything of the short)"""
    env, c = T.session()
    lines = (3000, 1, 400, 2)
    bodies = [b"".join(b"%d-%05d\n" % (n, k) for k in range(count))
              for n, count in enumerate(lines)]
    for n, body in enumerate(bodies):
        c.send(b"MAIL FROM:<m@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n")
        expect(c.reply(), 250, "2.1.0", "MAIL %d" % n)
        expect(c.reply(), 250, "2.1.5", "RCPT %d" % n)
        expect(c.reply(), 354, None, "DATA %d" % n)
        c.send(b"Subject: %d\r\n\r\n" % n + body.replace(b"\n", b"\r\n") +
               b".\r\n")
        expect(c.reply(), 250, "2.0.0", "end of data %d" % n)
    c.quit()
    env.wait_sessions(timeout=30)
    got = sorted(d.split(b"\n\n", 1)[1] for _, d in env.read_new("alice"))
    eq(got, sorted(bodies), "bodies")


def test_quoted_sender_kept_in_return_path(T):
    env, c = T.session()
    body = "Subject: quoted\n\nq\n"
    qid = qid_of(c.send_message('"john doe"@remote.test', ["alice@example.test"], crlf(body)))
    env.quit(c)
    env.check_stored("alice", qid, body, sender='"john doe"@remote.test')


def test_spool_missing_refuses_service(T):
    env, c = T.session(greet=False, ehlo=None, opts={"spool_dir": "/nonexistent/smtpd-e2e-spool"})
    r = c.reply()
    if r.code == 220:
        # accepting the session is fine only if DATA then fails temporarily
        c.cmd("EHLO client.test", 250)
        c.mail_rcpt("s@remote.test", "alice@example.test")
        c.send(b"DATA\r\n")
        r = c.reply()
        check(400 <= r.code < 500, "DATA with no spool: want 4xx, got %r" % r.text)
    else:
        check(r.code == 421 and (r.enh() or "4.").startswith("4."),
              "greeting with no spool: want 220 or 421, got %r" % r.text)
        c.read_to_eof()
    env.stop()
    env.assert_nothing_stored()


def test_data_after_completed_bdat_and_rset(T):
    env, c = T.session()
    c.mail_rcpt("s@remote.test", "alice@example.test")
    c.send(b"BDAT 5\r\nabcde")
    expect(c.reply(), 250, None, "BDAT 5")
    c.cmd("RSET", 250, "2.0.0")
    b1 = "Subject: data after bdat+rset\n\none\n"
    q1 = qid_of(c.send_message("s@remote.test", ["alice@example.test"], crlf(b1)))
    c.mail_rcpt("s@remote.test", "bob@example.test")
    c.send(b"BDAT 3 LAST\r\nabc")
    qid_of(c.reply())
    b2 = "Subject: data after bdat last\n\ntwo\n"
    q2 = qid_of(c.send_message("s@remote.test", ["bob@example.test"], crlf(b2)))
    env.quit(c)
    env.check_stored("alice", q1, b1)
    got = env.read_new("bob")
    eq(len(got), 2, "bob's files")
    check(any(d.endswith(b"\n\ntwo\n") and ("id %s" % q2).encode() in d for _, d in got),
          "bob lacks the DATA message after a BDAT one")
