"""delivery: smtplib, curl, swaks, raw; added headers; stored bytes"""
import os
import re
import smtplib
import stat
import subprocess

import pytest

import smtptest as S
from smtptest import MAIL_GID, MAIL_UID, TIMEOUT, check, crlf, eq, expect, qid_of

BODY1 = ("From: Sender <sender@remote.test>\nTo: alice@example.test\n"
         "Subject: hello\n\nHello Alice.\n.leading dot\n..two dots\n.\nend\n")
BODY2 = "Subject: second\n\nSecond message, for Bob.\n"
CURL_BODY = ("From: curl@remote.test\nTo: alice@example.test\nSubject: via curl\n\n"
             "Body sent by curl.\n.a dot line curl must stuff\nlast line\n")
# swaks turns LF into CRLF, stuffs dots, and adds CRLF . CRLF after the
# last line; a final newline in the file would become an extra line
SWAKS_TEXT = ("From: swaks@remote.test\nTo: bob@example.test\nSubject: via swaks\n\n"
              "Body sent by swaks.\n.dot line\n\n\nlast line")


def file_qid(data):
    m = re.search(rb"\(smtpd\) with [A-Z0-9]+ id ([A-Za-z0-9]+)", data)
    check(m is not None, "no 'id QID' in Received: %r" % data[:300])
    return m.group(1).decode()


def smtplib_qid(resp):
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp
    m = re.match(r"^2\.0\.0 Ok: queued as ([A-Za-z0-9]+)$", text)
    check(m is not None, "end-of-data reply text not '2.0.0 Ok: queued as QID': %r" % text)
    return m.group(1)


def test_smtplib_delivery(T):
    env = T.env()
    s = smtplib.SMTP("127.0.0.1", env.port, local_hostname="client.test", timeout=TIMEOUT)
    try:
        code, _ = s.ehlo("client.test")
        eq(code, 250, "EHLO")
        refused = s.sendmail("sender@remote.test", ["alice@example.test"], crlf(BODY1))
        eq(refused, {}, "refused recipients")
        eq(s.mail("other@remote.test")[0], 250, "MAIL")
        eq(s.rcpt("bob@example.test")[0], 250, "RCPT")
        code, resp = s.data(crlf(BODY2))
        eq(code, 250, "DATA end reply code (%r)" % resp)
        qid2 = smtplib_qid(resp)
        code, resp = s.quit()
        eq(code, 221, "QUIT")
        check(resp.startswith(b"2.0.0"), "QUIT reply lacks 2.0.0: %r" % resp)
    finally:
        s.close()
    _, data1 = env.check_stored("alice", None, BODY1, sender="sender@remote.test")
    env.check_stored("bob", qid2, BODY2, sender="other@remote.test")
    check(file_qid(data1) != qid2, "two messages got the same QID %s" % qid2)


def test_maildir_created_0700(T):
    env = T.env()
    check(not os.path.exists(env.maildir("alice")), "Maildir existed before the test")
    c = env.client()
    c.send_message("s@remote.test", ["alice@example.test"], crlf("Subject: x\n\nx\n"))
    c.quit()
    env.wait_files(1, "alice")
    for sub in ("", "tmp", "new", "cur"):
        p = os.path.join(env.maildir("alice"), sub)
        check(os.path.isdir(p), "%s missing" % p)
        st = os.stat(p)
        eq(stat.S_IMODE(st.st_mode), 0o700, "mode of %s" % p)
        eq((st.st_uid, st.st_gid), (MAIL_UID, MAIL_GID), "owner of %s" % p)
    eq(len(env.files("alice")), 1, "files in new/")
    eq(env.files("alice", "tmp"), [], "files in tmp/")
    eq(env.files("bob"), [], "bob's new/ (nothing sent to bob)")


def test_curl_delivery(T):
    curl = S.need("curl")
    env = T.env()
    path = env.write_file("curl-msg.txt", CURL_BODY)
    p = subprocess.run([curl, "-s", "-S", "--max-time", "20",
                        "--url", "smtp://127.0.0.1:%d/client.test" % env.port,
                        "--mail-from", "curl@remote.test", "--mail-rcpt", "alice@example.test",
                        "--upload-file", path, "--crlf"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    eq(p.returncode, 0, "curl exit status (output %r)" % p.stdout[-300:])
    env.wait_sessions()
    env.check_stored("alice", None, CURL_BODY, sender="curl@remote.test")


def test_swaks_delivery(T):
    swaks = S.need("swaks")
    env = T.env()
    path = env.write_file("swaks-msg.txt", SWAKS_TEXT)
    for user, extra in (("bob", []), ("alice", ["--pipeline"])):
        p = subprocess.run([swaks, "--server", "127.0.0.1:%d" % env.port,
                            "--to", "%s@example.test" % user, "--from", "swaks@remote.test",
                            "--helo", "client.test", "--timeout", "20",
                            "--data", "@" + path] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=40)
        out = p.stdout.decode("utf-8", "replace")
        eq(p.returncode, 0, "swaks %s exit status (tail %r)" % (" ".join(extra), out[-400:]))
        check(re.search(r"<-\s*250 2\.0\.0 Ok: queued as [A-Za-z0-9]+", out),
              "swaks transcript lacks '250 2.0.0 Ok: queued as': %r" % out[-400:])
    env.wait_sessions()
    for user in ("bob", "alice"):
        env.check_stored(user, None, SWAKS_TEXT + "\n", sender="swaks@remote.test", rcpt="%s@example.test" % user)


def test_helo_gives_with_smtp(T):
    env, c = T.session(ehlo=None)
    c.cmd("HELO old.client.test", 250)
    body = crlf("Subject: helo\n\nsent after HELO\n")
    r = c.send_message("s@remote.test", ["alice@example.test"], body, esmtp=False)
    qid = qid_of(r, enh=False)
    c.cmd("QUIT", 221)
    env.check_stored("alice", qid, "Subject: helo\n\nsent after HELO\n", helo="old.client.test", with_="SMTP")


def test_received_helo_made_safe(T):
    env, c = T.session(ehlo=None)
    c.send(b"EHLO bad\x01na\x7fme\r\n")
    r = c.reply()
    if r.code == 501:
        # refusing such a name outright is fine too: nothing to make safe
        c.cmd("EHLO client.test", 250)
        return
    expect(r, 250, None, "EHLO with control characters")
    r = c.send_message("s@remote.test", ["alice@example.test"], crlf("Subject: c\n\nc\n"))
    qid = qid_of(r)
    c.quit()
    env.check_stored("alice", qid, "Subject: c\n\nc\n", helo="bad?na?me")


def test_tcpremoteip_in_received(T):
    env, c = T.session(tcpremoteip="192.0.2.45")
    r = c.send_message("s@remote.test", ["alice@example.test"], crlf("Subject: ip\n\nip\n"))
    qid = qid_of(r)
    c.quit()
    env.check_stored("alice", qid, "Subject: ip\n\nip\n", ip="192.0.2.45")


def test_two_recipients_one_message(T):
    env, c = T.session()
    body = "Subject: both\n\nfor alice and bob\n"
    r = c.send_message("s@remote.test", ["alice@example.test", "bob@example.test"], crlf(body))
    qid = qid_of(r)
    c.quit()
    for u in ("alice", "bob"):
        env.check_stored(u, qid, body, single=False)


def test_null_sender(T):
    env, c = T.session()
    body = "Subject: bounce\n\nnull sender\n"
    r = c.send_message("", ["bob@example.test"], crlf(body))
    qid = qid_of(r)
    c.quit()
    env.check_stored("bob", qid, body, sender="")


def test_postmaster_always_accepted(T):
    env, c = T.session()
    rcpts = ["postmaster", "PostMaster", "postmaster@example.test", "POSTMASTER@EXAMPLE.TEST"]
    qids = []
    for i, rc in enumerate(rcpts):
        r = c.send_message("s@remote.test", [rc], crlf("Subject: pm %d\n\nto %s\n" % (i, rc)))
        qids.append(qid_of(r))
    c.quit()
    env.wait_files(len(rcpts), "alice")
    got = env.read_new("alice")
    eq(len(got), len(rcpts), "files in alice's (postmaster's) new/")
    eq(env.files("bob"), [], "bob's new/")
    bodies = sorted(d.split(b"\n\n", 1)[1] for _, d in got)
    want = sorted(("to %s\n" % rc).encode() for rc in rcpts)
    eq(bodies, want, "bodies in postmaster's Maildir")
    for fn, d in got:
        check(d.startswith(b"Return-Path: <s@remote.test>\nDelivered-To: "),
              "%s starts %r" % (fn, d[:80]))
        dt = d.split(b"\n")[1][len(b"Delivered-To: "):].lower()
        check(dt.startswith(b"postmaster") or dt.startswith(b"alice"),
              "Delivered-To of postmaster mail: %r" % dt)


def test_recipient_case_insensitive(T):
    env, c = T.session()
    c.open_data("s@remote.test", "ALICE@example.test")
    c.send(crlf("Subject: case\n\nupper\n") + b".\r\n")
    qid_of(c.reply())
    c.open_data("s@remote.test", "Bob@EXAMPLE.TEST")
    c.send(crlf("Subject: case\n\nmixed\n") + b".\r\n")
    qid_of(c.reply())
    c.quit()
    for u, want in (("alice", b"upper\n"), ("bob", b"mixed\n")):
        env.wait_files(1, u)
        got = env.read_new(u)
        eq(len(got), 1, "files in %s's new/" % u)
        check(got[0][1].endswith(b"\n\n" + want), "%s's message body: %r" % (u, got[0][1][-40:]))
        dt = got[0][1].split(b"\n")[1]
        check(dt.lower() == ("delivered-to: %s@example.test" % u).encode(),
              "Delivered-To line %r" % dt)


def test_8bit_body_byte_exact(T):
    env, c = T.session()
    high = bytes(range(0x80, 0x100))
    body = (b"Subject: 8bit =?x?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            + high[:64] + b"\r\n" + high[64:] + b"\r\n"
            + b"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\r\n"
            + b"tab\there  trailing spaces   \r\n\r\n\r\n"
            + b"\x1b[1m escape and \x7f del\r\n"
            + b"last line\r\n")
    r = c.send_message("s@remote.test", ["alice@example.test"], body, params="BODY=8BITMIME")
    qid = qid_of(r)
    c.quit()
    env.check_stored("alice", qid, body.replace(b"\r\n", b"\n"))


def test_dot_unstuffing(T):
    env, c = T.session()
    c.open_data("s@remote.test", "alice@example.test")
    wire = (b"Subject: dots\r\n\r\n"
            b"..\r\n"               # -> .
            b"...\r\n"              # -> ..
            b"..leading\r\n"        # -> .leading
            b"...two\r\n"           # -> ..two
            b".single\r\n"          # -> single (RFC 5321 4.5.2)
            b"x.y\r\n"
            b" .space\r\n"
            b"end.\r\n"
            b".\r\n")
    c.send(wire)
    qid = qid_of(c.reply())
    c.quit()
    want = b"Subject: dots\n\n.\n..\n.leading\n..two\nsingle\nx.y\n .space\nend.\n"
    env.check_stored("alice", qid, want)


def test_10mb_message(T):
    env, c = T.session()
    alphabet = bytes(range(33, 127)) * 3
    tails = [alphabet[k:k + 70] for k in range(94)]
    lines = [b"Subject: big\r\n", b"\r\n"]
    size = 0
    i = 0
    while size < 10 * 1024 * 1024:
        line = b"%08d " % i + tails[i % 94] + b"\r\n"
        lines.append(line)
        size += len(line)
        i += 1
    body = b"".join(lines)
    c.cmd("MAIL FROM:<big@remote.test> SIZE=%d" % len(body), 250, "2.1.0")
    c.cmd("RCPT TO:<alice@example.test>", 250, "2.1.5")
    c.cmd("DATA", 354)
    c.set_timeout(60)
    c.send(body + b".\r\n")
    qid = qid_of(c.reply())
    c.set_timeout(TIMEOUT)
    c.quit()
    env.check_stored("alice", qid, body.replace(b"\r\n", b"\n"), sender="big@remote.test")


def test_100_recipients(T):
    users = ["u%d" % i for i in range(100)] + ["alice"]
    env, c = T.session(users=users)
    c.mail_rcpt("list@remote.test", ["u%d@example.test" % i for i in range(100)])
    c.cmd("RCPT TO:<alice@example.test>", 452, "4.5.3", "101st RCPT")
    c.cmd("DATA", 354)
    body = "Subject: many\n\nto a hundred\n"
    c.send(crlf(body) + b".\r\n")
    qid = qid_of(c.reply())
    env.quit(c)
    for i in range(100):
        env.check_stored("u%d" % i, qid, body, sender="list@remote.test", single=False)
    eq(env.files("alice"), [], "alice's new/ (the refused 101st recipient)")


def test_duplicate_recipients_one_copy(T):
    env, c = T.session()
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0")
    for rc in ("alice@example.test", "ALICE@example.test", "alice@EXAMPLE.TEST"):
        c.cmd("RCPT TO:<%s>" % rc, 250, "2.1.5")
    c.cmd("DATA", 354)
    body = "Subject: dup\n\nonce only\n"
    c.send(crlf(body) + b".\r\n")
    qid = qid_of(c.reply())
    env.quit(c)
    env.wait_files(1, "alice")
    got = env.read_new("alice")
    eq(len(got), 1, "files in alice's new/ for one recipient named three ways")
    check(got[0][1].endswith(b"\n\nonce only\n"), "body %r" % got[0][1][-40:])
    check(("id %s" % qid).encode() in got[0][1], "QID %s not in Received" % qid)


def test_system_user_via_getpwnam(T):
    """a passwd user (not in the virtual file), any case; never root"""
    if os.getuid() != 0:
        pytest.skip("needs root to create a system account")
    import pwd
    name = "smtpde2euser"
    env = T.env()
    home = os.path.join(env.dir, "home", name)
    os.makedirs(home)
    try:
        pw = pwd.getpwnam(name)
        subprocess.run(["usermod", "-d", home, name], check=True)
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", home, "-s", "/usr/sbin/nologin", name],
                       check=True)
    pw = pwd.getpwnam(name)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    c = env.client()
    c.send_message("s@remote.test", ["%s@example.test" % name.upper()],
                 crlf("Subject: sys\n\nhello system user\n"))
    c.cmd("MAIL FROM:<s@remote.test>", 250, "2.1.0")
    c.cmd("RCPT TO:<root@example.test>", 550, "5.1.1")
    c.quit()
    new = os.path.join(home, "Maildir", "new")
    files = os.listdir(new)
    eq(len(files), 1, "files in %s" % new)
    st = os.stat(os.path.join(new, files[0]))
    eq((st.st_uid, st.st_gid), (pw.pw_uid, pw.pw_gid), "owner of the delivered file")
    with open(os.path.join(new, files[0]), "rb") as f:
        data = f.read()
    check(data.endswith(b"\n\nhello system user\n"), "body: %r" % data[-60:])
