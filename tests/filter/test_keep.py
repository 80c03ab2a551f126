"""A prefork worker keeps its connections to the milters named in
milter_keep from one SMTP session to the next: QUIT_NC ('K') at the end
of a session, the next session's connect stage on the same socket, no new
negotiation.  A kept connection the milter closed (or that it did not
take as kept) is replaced without a tempfail, with one "result=reconnect"
log line; per-connection (inetd) mode still says QUIT ('Q') and closes.

rspamd is real, behind a transparent relay that counts the connections
smtpd opens (fakes.Relay); the misbehaving milters are fakes."""
import pytest

import daemons
import smtptest as S
from conftest import send, message, log, stored
from fakes import FakeMilter, Relay, packet

ONE_WORKER = {"workers": "1", "max_sessions": "1", "queue_interval": "0",
              "milter_command_timeout": "5", "milter_content_timeout": "5"}
NR_CONN_HELO = 0x001000 | 0x002000     # no reply to connect and HELO


@pytest.fixture
def prefork(T):
    """prefork(opts) -> a World served by its supervisor with one worker"""
    def make(opts):
        o = dict(ONE_WORKER)
        o.update(opts)
        return T.world(opts=o).serve()
    return make


@pytest.fixture
def fake():
    made = []

    def make(*a, **kw):
        f = FakeMilter(*a, **kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.stop()


def clean_and_spam(env, rounds):
    """rounds x (a clean message, then GTUBE), each its own SMTP session"""
    for i in range(rounds):
        _rr, end = send(env, message("clean %d" % i))
        assert end.code == 250, end
        _rr, end = send(env, message("spam %d" % i, daemons.GTUBE + "\n"))
        assert end.code == 554 and "Gtube pattern" in end.text, end
    got = stored(env)
    assert len(got) == rounds, got
    for m in got:
        head = m.partition(b"\n\n")[0]
        assert b"\nX-Spamd-Result: " in head and b"\nX-Spam-Status: No" in head


@pytest.mark.parametrize("kept", [True, False])
def test_rspamd_one_connection_for_many_sessions(rspamd, prefork, kept):
    """six sessions through one worker: one connection to rspamd when kept,
    six when not (so the count can tell)"""
    port = int(rspamd.spec.rsplit(":", 1)[1])
    relay = Relay(("127.0.0.1", port))
    try:
        env = prefork({"milters": relay.spec,
                       "milter_keep": relay.spec if kept else ""})
        clean_and_spam(env, 3)
        assert relay.connections == (1 if kept else 6), relay.connections
        assert "result=reconnect" not in log(env)
        assert log(env).count("stage=eom result=reject") == 3
    finally:
        relay.stop()


def test_rspamd_after_abort(rspamd, prefork):
    """a session that ends inside a transaction (A, then K) and one that
    ends before any (K right after HELO): the next session still gets its
    message scanned; whatever rspamd did with the connection, nothing is
    tempfailed and nothing is lost"""
    port = int(rspamd.spec.rsplit(":", 1)[1])
    relay = Relay(("127.0.0.1", port))
    try:
        env = prefork({"milters": relay.spec, "milter_keep": relay.spec})
        c = S.connect(env.port, ehlo="client.example")
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<alice@%s>" % S.DOMAIN, 250)
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.quit()
        c = S.connect(env.port, ehlo="client.example")
        c.quit()
        _rr, end = send(env, message("after abort"))
        assert end.code == 250, end
        [m] = stored(env)
        assert b"\nX-Spamd-Result: " in m.partition(b"\n\n")[0]
        assert "result=error" not in log(env)
        # this rspamd takes A and K in any state: one connection throughout
        assert relay.connections == 1, relay.connections
    finally:
        relay.stop()


def two_sessions(env, settled=None):
    """two sessions; between them wait until settled() (what the milter
    does after the first session's K has happened)"""
    for i in range(2):
        if i and settled:
            assert S.wait_until(settled, 5)
        _rr, end = send(env, message("session %d" % i))
        assert end.code == 250, (i, end)
    assert len(stored(env)) == 2


def test_fake_sees_k_then_connect_on_same_socket(prefork, fake):
    f = fake()
    env = prefork({"milters": f.spec, "milter_keep": f.spec})
    two_sessions(env)
    assert f.connections == 1
    # each session ends with K (the second's may still be on its way)
    assert S.wait_until(lambda: f.commands(0).count(b"K") == 2, 5), f.commands(0)
    cmds = f.commands(0)
    assert cmds.count(b"O") == 1 and cmds[-1] == b"K", cmds
    k = cmds.index(b"K")
    assert b"C" in cmds[k:] and b"Q" not in cmds, cmds


# what a milter does with the kept connection: it closes it at once, it
# answers the K with octets nobody asked for, or it ignores the K and then
# fails the next session's first exchange (garbage or a hang-up); the
# last two are the race the liveness check cannot see
def close_at_k(m, idx, cmd, data):
    if cmd == b"K":
        return ["close"]


def junk_at_k(m, idx, cmd, data):
    if cmd == b"K":
        return [b"\x00\x00\x00\x05Zjunk"]


def junk_after_k(m, idx, cmd, data):
    if idx == 0 and cmd == b"C" and b"K" in m.commands(0):
        return [b"\x00\x00\x00\x05Zjunk"]


def close_after_k(m, idx, cmd, data):
    if idx == 0 and cmd == b"C" and b"K" in m.commands(0):
        return ["close"]


@pytest.mark.parametrize("behaviour,reason,settled", [
    (close_at_k, "closed by peer", lambda f: f.closed == 1),
    (junk_at_k, "unexpected data", lambda f: b"K" in f.commands() and
     f.handled == len(f.seen)),
    (junk_after_k, "malformed reply", None),
    (close_after_k, "connection closed", None),
])
def test_kept_connection_gone_reconnects(prefork, fake, behaviour, reason, settled):
    f = fake(behaviour)
    env = prefork({"milters": f.spec, "milter_keep": f.spec})
    two_sessions(env, settled and (lambda: settled(f)))
    assert f.connections == 2
    lines = [l for l in log(env).splitlines() if "result=reconnect" in l]
    assert len(lines) == 1 and 'reason="%s"' % reason in lines[0], lines
    assert "milter=inet:127.0.0.1:%d" % f.port in lines[0], lines
    assert "result=error" not in log(env) and "action=tempfail" not in log(env)
    assert f.commands(1)[0] == b"O"     # negotiated afresh


def nr_close_at_mail(m, idx, cmd, data):
    """connect and HELO get no reply (negotiated so); the kept connection
    is dropped when the next session's MAIL arrives"""
    if cmd in (b"C", b"H"):
        return []
    if idx == 0 and cmd == b"M" and b"K" in m.commands(0):
        return ["close"]


def test_first_answer_at_mail_reconnects_and_replays(prefork, fake):
    f = fake(nr_close_at_mail, proto=NR_CONN_HELO)
    env = prefork({"milters": f.spec, "milter_keep": f.spec})
    two_sessions(env)
    assert f.connections == 2
    assert 'stage=mail result=reconnect reason="connection closed"' in log(env)
    # the new connection had the whole session again, MAIL once
    assert f.commands(1)[:1] == [b"O"]
    assert [c for c in f.commands(1) if c in b"CHM"] == [b"C", b"H", b"M"], f.commands(1)


def test_not_in_milter_keep_quits(prefork, fake):
    f = fake()
    env = prefork({"milters": f.spec})
    two_sessions(env)
    assert f.connections == 2
    assert S.wait_until(lambda: f.commands(0)[-1:] == [b"Q"], 5), f.commands(0)
    assert b"K" not in f.commands()


def test_inetd_mode_says_quit(world, fake):
    """per-connection mode has nothing to keep: QUIT and close, as before"""
    f = fake()
    env = world({"milters": f.spec, "milter_keep": f.spec})
    two_sessions(env)
    assert f.connections == 2
    for i in (0, 1):
        assert S.wait_until(lambda: f.commands(i)[-1:] == [b"Q"], 5), f.commands(i)
    assert b"K" not in f.commands()


def test_worker_retires_with_quit(prefork, fake):
    """worker_connections still retires a worker; its kept connection gets
    QUIT when it exits, and its successor opens its own"""
    f = fake()
    env = prefork({"milters": f.spec, "milter_keep": f.spec, "worker_connections": "2"})
    for i in range(3):
        _rr, end = send(env, message("retire %d" % i))
        assert end.code == 250, (i, end)
    assert S.wait_until(lambda: f.commands(0)[-1:] == [b"Q"], 10), f.commands(0)
    assert f.commands(0).count(b"K") == 2, f.commands(0)
    assert f.connections == 2
