"""Policy delegation with the real servers: postgrey greylists the first
try (450 4.2.0) and accepts the retry after its delay (adding its
X-Greylist header through PREPEND); Dovecot's quota-status refuses a
user over quota at RCPT (552 5.2.2) and accepts one under it."""
import os
import time

import pytest

import daemons
import smtptest as S
from conftest import _need, send, message, log, stored


@pytest.fixture
def postgrey():
    _need("postgrey")
    d = daemons.start_postgrey(delay=2)
    yield d
    d.stop()


@pytest.fixture
def quota_status(world):
    _need("dovecot", "/usr/lib/dovecot/quota-status")
    env = world(users=("alice", "bob", "carol"))
    users = {}
    for name, kb in (("alice", 10240), ("bob", 10), ("carol", 16)):
        home = os.path.dirname(env.maildir(name))
        users[name] = (S.MAIL_UID, S.MAIL_GID, home, kb)
    # bob already holds 40 kB: over his 10 kB quota
    cur = os.path.join(env.maildir("bob"), "cur")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(env.maildir("bob"), sub), exist_ok=True)
    with open(os.path.join(cur, "1700000000.M1P1.mx.test,S=40960:2,S"), "wb") as f:
        f.write(b"Subject: big\n\n" + b"x" * 40946)
    for root, dirs, files in os.walk(os.path.dirname(env.maildir("bob"))):
        for n in dirs + files:
            os.chown(os.path.join(root, n), S.MAIL_UID, S.MAIL_GID)
    d = daemons.start_quota_status(users)
    yield env, d
    d.stop()


def test_postgrey_greylists_then_accepts(postgrey, world):
    env = world({"policy_services": postgrey.spec})
    rr, end = send(env, message("grey"), sender="first@remote.example")
    assert rr[0].code == 450 and rr[0].enh() == "4.2.0", rr[0]
    assert "Greylisted" in rr[0].text
    assert end is None
    env.assert_nothing_stored()
    assert "result=defer" in log(env)
    time.sleep(3)   # postgrey --delay=2
    rr, end = send(env, message("grey"), sender="first@remote.example")
    assert rr[0].code == 250, rr[0]
    assert end.code == 250, end
    [m] = stored(env)
    lines = m.split(b"\n")
    assert lines[0].startswith(b"Return-Path: ")
    assert lines[1].startswith(b"Delivered-To: ")
    assert lines[2].startswith(b"X-Greylist: delayed ")   # PREPEND, above Received
    assert lines[3].startswith(b"Received: ")


def test_quota_status_over_and_under(quota_status):
    env, d = quota_status
    env.settings["policy_services"] = d.spec
    rr, end = send(env, message("quota"), rcpts=("bob",))
    assert rr[0].code == 552 and rr[0].enh() == "5.2.2", rr[0]
    assert end is None
    rr, end = send(env, message("quota"), rcpts=("alice",))
    assert rr[0].code == 250, rr[0]
    assert end.code == 250
    assert len(stored(env, "alice")) == 1
    assert "result=reject" in log(env)


def test_quota_status_at_end_of_data(quota_status):
    """alice's quota is 10 MB, carol's 16 kB: a 40 kB message passes RCPT
    (no SIZE=, so size=0 there) and is refused 552 5.2.2 at the end of
    data, where the request carries its size; nothing is stored.  A small
    one is accepted.  The server is in both lists: one connection."""
    env, d = quota_status
    env.settings["policy_services"] = d.spec
    env.settings["policy_data_services"] = d.spec
    big = message("big", body=("z" * 78 + "\n") * 500)
    rr, end = send(env, big, rcpts=("alice",))
    assert rr[0].code == 250 and end.code == 250, (rr, end)
    rr, end = send(env, big, rcpts=("carol",))
    assert rr[0].code == 250, rr[0]
    assert end.code == 552 and end.enh() == "5.2.2", end
    assert stored(env, "carol") == []
    assert env.spool_files() == []
    rr, end = send(env, message("small"), rcpts=("carol",))
    assert end.code == 250, end
    assert len(stored(env, "carol")) == 1
    assert "result=reject" in log(env)
