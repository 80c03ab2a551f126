"""rspamd as a milter: GTUBE rejected with rspamd's text, nothing stored;
a clean message delivered with rspamd's headers, its body byte-exact.  The
first two over both of the worker's sockets, inet: and unix:."""
import pytest

from conftest import send, message, log, stored
import daemons

SOCKETS = pytest.mark.parametrize("spec", ["spec", "unix_spec"])


@SOCKETS
def test_gtube_rejected(rspamd, world, spec):
    env = world({"milters": getattr(rspamd, spec)})
    _rr, end = send(env, message("spam", daemons.GTUBE + "\n"))
    assert end.code == 554 and "Gtube pattern" in end.text, end
    env.assert_nothing_stored()
    assert env.spool_files() == []
    assert "stage=eom result=reject" in log(env)


@SOCKETS
def test_clean_gets_headers_body_exact(rspamd, world, spec):
    env = world({"milters": getattr(rspamd, spec)})
    body = "Line one.\n.leading dot\nlast line\n"
    _rr, end = send(env, message("clean", body))
    assert end.code == 250, end
    [m] = stored(env)
    head, _, got = m.partition(b"\n\n")
    assert got == body.encode()
    assert b"\nX-Spamd-Result: " in head and b"\nX-Rspamd-Server: " in head
    assert b"\nX-Spam-Status: No" in head
    # our own lines stay on top, in their order
    lines = head.split(b"\n")
    assert lines[0].startswith(b"Return-Path: <sender@example.org>")
    assert lines[1] == b"Delivered-To: alice@example.test"
    assert lines[2].startswith(b"Received: from client.example")
    line = [l for l in log(env).splitlines() if " milter " in l and "stage=eom" in l]
    assert len(line) == 1 and "result=accept" in line[0], line
    assert "add:X-Spamd-Result" in line[0].split(" headers=")[1], line


def test_spam_flag_removed(rspamd, world):
    """rspamd deletes a forged X-Spam header (change header, empty value)"""
    env = world({"milters": rspamd.spec})
    _rr, end = send(env, message("forged", extra="X-Spam: Yes\n"))
    assert end.code == 250, end
    [m] = stored(env)
    assert b"\nX-Spam: Yes" not in m
    assert "del:X-Spam" in log(env)


def test_queued_copy_carries_headers(rspamd, world):
    """bob's Maildir cannot be written now: the queued copy has the headers"""
    import os
    env = world({"milters": rspamd.spec})
    home = os.path.dirname(env.maildir("bob"))
    os.chmod(home, 0o000)
    try:
        _rr, end = send(env, message("queued"), rcpts=("alice", "bob"))
    finally:
        os.chmod(home, 0o755)
    assert end.code == 250, end
    [m] = stored(env, "alice")
    assert b"\nX-Spamd-Result: " in m
    data = [f for f in env.spool_files() if not f.endswith(".env")]
    assert len(data) == 1, env.spool_files()
    with open(os.path.join(env.spool, data[0]), "rb") as f:
        q = f.read()
    assert q.startswith(b"Return-Path: <sender@example.org>\nReceived: ")
    assert b"\nX-Spamd-Result: " in q and b"\nX-Rspamd-Queue-Id: " in q
