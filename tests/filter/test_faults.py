"""Milters and policy servers that are down or misbehave get the default
action (tempfail unless set otherwise): a reply, a log line, no crash,
nothing stored half-way.  The misbehaving peers are fakes (fakes.py);
the feature cases at the end are protocol steps no stock filter sends."""
import struct

import pytest

import daemons
import smtptest as S
from conftest import client, send, message, log, stored
from fakes import FakeMilter, FakePolicy, packet

FAST = {"milter_command_timeout": "2", "milter_content_timeout": "2",
        "policy_timeout": "2"}


@pytest.fixture
def fake():
    made = []

    def make(*a, **kw):
        f = FakeMilter(*a, **kw) if not kw.pop("policy", False) else FakePolicy(*a)
        made.append(f)
        return f
    yield make
    for f in made:
        f.stop()


def opts(**kw):
    o = dict(FAST)
    o.update(kw)
    return o


def session_alive_after(env):
    c = client(env)
    c.cmd("NOOP", 250)
    c.cmd("QUIT", 221)
    c.close()


def test_nothing_listening_tempfails(world):
    env = world(opts(milters="inet:127.0.0.1:%d" % daemons.free_port()))
    c = client(env)
    r = c.cmd("MAIL FROM:<a@remote.example>", 451, "4.7.1")
    c.cmd("QUIT", 221)
    c.close()
    assert "stage=connect result=error" in log(env) and "action=tempfail" in log(env)
    env.assert_nothing_stored()


@pytest.mark.parametrize("action,code", [("accept", 250), ("reject", 550)])
def test_default_action_setting(world, action, code):
    env = world(opts(milters="unix:/nonexistent/milter.sock", milter_default_action=action))
    c = client(env)
    c.cmd("MAIL FROM:<a@remote.example>", code)
    c.close()


def stall_first(m, idx, cmd, data):
    """the first end-of-message answer comes after 5 s"""
    if cmd == b"E" and idx == 0:
        return [5, packet(b"a")]


def test_stall_times_out_then_next_message_works(world, fake):
    f = fake(stall_first)
    env = world(opts(milters=f.spec))
    _rr, end = send(env, message("stall"))
    assert end.code == 451 and end.enh() == "4.7.1", end
    env.assert_nothing_stored()
    assert env.spool_files() == []
    assert "stage=eom result=error reason=\"timeout\"" in log(env)
    _rr, end = send(env, message("after"))
    assert end.code == 250, end
    assert len(stored(env)) == 1


def test_stall_next_message_same_session(world, fake):
    """the session survives the timeout; its next MAIL reconnects"""
    f = fake(stall_first)
    env = world(opts(milters=f.spec))
    c = client(env)
    for want in (451, 250):
        c.cmd("MAIL FROM:<a@remote.example>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
        assert c.reply().code == want
    c.cmd("QUIT", 221)
    c.close()
    assert f.connections == 2


@pytest.mark.parametrize("name,reply", [
    ("garbage", [b"\x00\x00\x00\x05Zjunk"]),
    ("oversized", [struct.pack(">I", 0x7fffffff) + b"O"]),
    ("zero_length", [b"\x00\x00\x00\x00"]),
    ("truncated_optneg", [packet(b"O", b"\x00\x00\x00\x06")]),
    ("close", ["close"]),
])
def test_bad_negotiation(world, fake, name, reply):
    f = fake(lambda m, i, c, d: reply if c == b"O" else None)
    env = world(opts(milters=f.spec))
    c = client(env)
    c.cmd("MAIL FROM:<a@remote.example>", 451)
    c.cmd("QUIT", 221)
    c.close()
    assert "stage=negotiate result=error" in log(env), log(env)


@pytest.mark.parametrize("name,eom", [
    ("wrong_class", [packet(b"y", b"250 2.0.0 fine\x00")]),
    ("replycode_no_nul", [packet(b"y", b"550 5.7.1 no nul")]),
    ("replace_body", [packet(b"b", b"new body"), packet(b"a")]),
    ("add_rcpt", [packet(b"+", b"<x@example.test>\x00"), packet(b"a")]),
    ("header_bad_name", [packet(b"h", b"Bad Name\x00v\x00"), packet(b"a")]),
    ("header_bare_lf", [packet(b"h", b"X-A\x00one\ntwo\x00"), packet(b"a")]),
    ("skip_at_eom", [packet(b"s")]),
    ("unknown_reply", [packet(b"Z")]),
    ("close_at_eom", ["close"]),
])
def test_protocol_errors_at_eom(world, fake, name, eom):
    f = fake(lambda m, i, c, d: eom if c == b"E" else None)
    env = world(opts(milters=f.spec))
    _rr, end = send(env, message(name))
    assert end.code == 451 and end.enh() == "4.7.1", end
    env.assert_nothing_stored()
    assert env.spool_files() == []
    assert "stage=eom result=error" in log(env)
    session_alive_after(env)


def test_changes_not_negotiated(world, fake):
    """the milter asked for no actions, then adds a header"""
    f = fake(lambda m, i, c, d: [packet(b"h", b"X-A\x00v\x00"), packet(b"a")]
             if c == b"E" else None, actions=0)
    env = world(opts(milters=f.spec))
    _rr, end = send(env, message("nochg"))
    assert end.code == 451, end
    env.assert_nothing_stored()


def test_close_mid_body(world, fake):
    f = fake(lambda m, i, c, d: ["close"] if c == b"B" else None)
    env = world(opts(milters=f.spec))
    _rr, end = send(env, message("mid", body=("x" * 900 + "\n") * 250))
    assert end.code == 451, end
    env.assert_nothing_stored()
    assert env.spool_files() == []
    assert "stage=body result=error" in log(env)


def test_progress_keeps_waiting(world, fake):
    f = fake(lambda m, i, c, d: [packet(b"p"), 1.5, packet(b"p"), 1.5, packet(b"a")]
             if c == b"E" else None)
    env = world(opts(milters=f.spec))
    _rr, end = send(env, message("progress"))
    assert end.code == 250, end


def test_body_chunks_and_stages(world, fake):
    """every stage in order; body in chunks of at most 65,535, CR LF ends"""
    f = fake()
    env = world(opts(milters=f.spec))
    body = ("y" * 990 + "\n") * 150
    _rr, end = send(env, message("stages", body=body))
    assert end.code == 250, end
    cmds = [c for c in f.commands() if c != b"D"]
    assert cmds[:5] == [b"O", b"C", b"H", b"M", b"R"], cmds
    assert cmds[5] == b"T" and b"L" in cmds and b"N" in cmds and cmds[-1] in (b"E", b"Q")
    chunks = [d for _i, c, d in f.seen if c == b"B"]
    assert all(len(x) <= 65535 for x in chunks) and len(chunks) >= 3
    assert b"".join(chunks) == body.replace("\n", "\r\n").encode()
    hdrs = [d for _i, c, d in f.seen if c == b"L"]
    assert hdrs[0].startswith(b"Received\x00from ")
    macros = b"".join(d for _i, c, d in f.seen if c == b"D")
    for name in (b"j\x00mx.test", b"{client_addr}\x00127.0.0.1", b"{mail_addr}\x00sender@example.org",
                 b"{rcpt_addr}\x00alice@example.test", b"{daemon_name}\x00"):
        assert name in macros, name
    assert b"i\x00" in macros


def test_rcpt_replycode_rejects_one_recipient(world, fake):
    def rcpt(m, i, c, d):
        if c == b"R" and b"bob" in d:
            return [packet(b"y", b"550 5.7.1 not bob\x00")]
    f = fake(rcpt)
    env = world(opts(milters=f.spec))
    rr, end = send(env, message("rcpt"), rcpts=("alice", "bob"))
    assert [r.code for r in rr] == [250, 550] and "not bob" in rr[1].text
    assert end.code == 250
    assert len(stored(env, "alice")) == 1 and stored(env, "bob") == []


def test_header_changes_and_quarantine(world, fake):
    def eom(m, i, c, d):
        if c == b"E":
            return [packet(b"i", struct.pack(">I", 0) + b"X-Top\x00first\x00"),
                    packet(b"m", struct.pack(">I", 2) + b"X-Dup\x00changed\x00"),
                    packet(b"m", struct.pack(">I", 1) + b"Subject\x00\x00"),
                    packet(b"h", b"X-Folded\x00a\r\n\tb\x00"),
                    packet(b"q", b"suspicious\x00"), packet(b"a")]
    f = fake(eom, actions=0x31)
    env = world(opts(milters=f.spec))
    body = "the body\n"
    _rr, end = send(env, message("chg", body=body, extra="X-Dup: one\nX-Dup: two\n"))
    assert end.code == 250, end
    [m] = stored(env)
    head, _, got = m.partition(b"\n\n")
    lines = head.split(b"\n")
    assert lines[2] == b"X-Top: first", lines     # before our Received
    assert lines[3].startswith(b"Received: ")
    assert b"\nX-Dup: one\nX-Dup: changed\n" in head + b"\n"
    assert b"\nSubject:" not in head
    assert head.endswith(b"X-Folded: a\n\tb\nX-Quarantine: suspicious")
    assert got == body.encode()
    assert "result=quarantine" in log(env)


def test_discard(world, fake):
    f = fake(lambda m, i, c, d: [packet(b"d")] if c == b"E" else None)
    env = world(opts(milters=f.spec))
    _rr, end = send(env, message("discard"))
    assert end.code == 250, end
    env.assert_nothing_stored()
    assert env.spool_files() == []
    assert "result=discarded" in log(env)


def test_no_reply_steps_honoured(world, fake):
    """NR_HDR and NOBODY: no reply awaited to headers, no body sent"""
    f = fake(lambda m, i, c, d: [] if c == b"L" else None, proto=0x80 | 0x10)
    env = world(opts(milters=f.spec))
    _rr, end = send(env, message("nr"))
    assert end.code == 250, end
    assert b"B" not in f.commands()


# ---------------------------------------------------------------- policy

def test_policy_garbage_and_timeout(world, fake):
    answers = {0: b"this is not a policy answer\n\n", 1: 5, 2: b"action=" + b"x" * 5000 + b"\n\n",
               3: b"action=FROBNICATE\n\n"}
    p = fake(lambda s, idx, a: answers.get(idx, b"action=DUNNO\n\n"), policy=True)
    env = world(opts(policy_services=p.spec))
    for _ in range(4):
        rr, _end = send(env, message("garbage"))
        assert rr[0].code == 451 and rr[0].enh() == "4.3.5", rr[0]
    rr, end = send(env, message("fine"))
    assert rr[0].code == 250 and end.code == 250
    assert log(env).count("policy=") >= 4 and "result=error" in log(env)


def test_policy_connection_reused_and_actions(world, fake):
    acts = {"alice@example.test": b"action=OK\n\n",
            "bob@example.test": b"action=554 5.7.1 go away\n\n"}
    p = fake(lambda s, idx, a: acts[a["recipient"]], policy=True)
    env = world(opts(policy_services=p.spec))
    rr, end = send(env, message("two"), rcpts=("alice", "bob"))
    assert rr[0].code == 250 and rr[1].code == 554 and "go away" in rr[1].text
    assert p.connections == 1 and len(p.requests) == 2
    a = p.requests[0][1]
    assert a["request"] == "smtpd_access_policy" and a["protocol_state"] == "RCPT"
    assert a["client_address"] == "127.0.0.1" and a["sender"] == "sender@example.org"
    assert a["helo_name"] == "client.example"


def test_policy_server_closes_between_requests(world, fake):
    def once(s, idx, a):
        return b"action=DUNNO\n\n"
    p = fake(once, policy=True)
    orig = p.handle

    def close_after_one(c, idx):
        buf = b""
        while b"\n\n" not in buf:
            buf += c.recv(4096)
        p.requests.append((idx, {}))
        c.sendall(b"action=DUNNO\n\n")
    p.handle = close_after_one
    env = world(opts(policy_services=p.spec))
    rr, _end = send(env, message("re"), rcpts=("alice", "bob"))
    assert [r.code for r in rr] == [250, 250], rr
    assert p.connections == 2
    del orig


@pytest.mark.parametrize("answer,code,enh", [
    (b"action=REJECT\n\n", 550, "5.7.1"),
    (b"action=DEFER no now\n\n", 450, "4.7.1"),
    (b"action=DEFER_IF_PERMIT later\n\n", 450, "4.2.0"),
    (b"action=450 try later\n\n", 450, "4.7.1"),
    (b"action=dunno\n\n", 250, "2.1.5"),
])
def test_policy_action_map(world, fake, answer, code, enh):
    p = fake(lambda s, idx, a: answer, policy=True)
    env = world(opts(policy_services=p.spec))
    rr, _end = send(env, message("map"))
    assert rr[0].code == code and rr[0].enh() == enh, rr[0]


# ------------------------------------------------- connect and HELO stages

def test_client_port_macro_and_connect_packet(world, fake):
    """{client_port} and the connect packet carry the client's real port"""
    f = fake()
    env = world(opts(milters=f.spec))
    c = S.Client(env.port)
    port = c.sock.getsockname()[1]
    c.greeting()
    c.cmd("EHLO client.example", 250)
    c.cmd("QUIT", 221)
    c.close()
    [conn] = [d for _i, cmd, d in f.seen if cmd == b"C"]
    host, rest = conn.split(b"\x00", 1)
    assert rest[:1] == b"4" and struct.unpack(">H", rest[1:3])[0] == port, conn
    macros = b"".join(d for _i, cmd, d in f.seen if cmd == b"D")
    assert b"{client_port}\x00%d\x00" % port in macros, macros


@pytest.mark.parametrize("answer,code,enh,text", [
    ([packet(b"r")], 550, "5.7.1", "Command rejected"),
    ([packet(b"t")], 451, "4.7.1", "try again later"),
    ([packet(b"y", b"554 5.7.1 not from you\x00")], 554, "5.7.1", "not from you"),
])
def test_connect_refusal_holds_for_the_session(world, fake, answer, code, enh, text):
    """greeting 220, then every command but QUIT, NOOP, RSET gets the refusal"""
    f = fake(lambda m, i, c, d: answer if c == b"C" else None)
    env = world(opts(milters=f.spec))
    c = S.Client(env.port)
    c.greeting(220)
    for line in ("EHLO client.example", "HELO client.example", "MAIL FROM:<a@remote.example>",
                 "RCPT TO:<alice@example.test>", "DATA", "VRFY alice", "STARTTLS"):
        r = c.cmd(line, code)
        assert text in r.text, (line, r)
    c.cmd("NOOP", 250)
    c.cmd("RSET", 250)
    c.cmd("QUIT", 221)
    c.close()
    env.assert_nothing_stored()
    assert "stage=connect result=" in log(env)
    assert f.commands() == [b"O", b"D", b"C", b"Q"] or b"M" not in f.commands()


def test_helo_refusal_is_the_helo_reply(world, fake):
    """the reply to HELO/EHLO carries the refusal; another name may pass"""
    def helo(m, i, c, d):
        if c == b"H" and d.startswith(b"bad."):
            return [packet(b"y", b"550 5.7.1 bad helo\x00")]
    f = fake(helo)
    env = world(opts(milters=f.spec))
    c = S.Client(env.port)
    c.greeting()
    c.cmd("EHLO good.example", 250)
    r = c.cmd("EHLO bad.example", 550, "5.7.1")
    assert "bad helo" in r.text
    c.cmd("MAIL FROM:<a@remote.example>", 503)     # no accepted HELO now
    c.cmd("EHLO good.example", 250)
    c.cmd("MAIL FROM:<a@remote.example>", 250)
    c.cmd("QUIT", 221)
    c.close()
    assert "stage=helo result=reject" in log(env)


def test_helo_tempfail(world, fake):
    f = fake(lambda m, i, c, d: [packet(b"t")] if c == b"H" else None)
    env = world(opts(milters=f.spec))
    c = S.Client(env.port)
    c.greeting()
    c.cmd("HELO client.example", 451)
    c.cmd("QUIT", 221)
    c.close()


# ------------------------------------------- policy at the end of data

def test_policy_end_of_message_request(world, fake):
    """END-OF-MESSAGE: size, queue_id, recipient_count; recipient only
    when there is exactly one; a server only in policy_data_services is
    not asked at RCPT"""
    p = fake(lambda s, idx, a: b"action=DUNNO\n\n", policy=True)
    env = world(opts(policy_data_services=p.spec))
    body = "x" * 500 + "\n"
    _rr, end = send(env, message("eom", body=body), rcpts=("alice", "bob"))
    assert end.code == 250, end
    _rr, end = send(env, message("eom1", body=body), rcpts=("alice",))
    assert end.code == 250, end
    reqs = [a for _i, a in p.requests]
    assert [a["protocol_state"] for a in reqs] == ["END-OF-MESSAGE"] * 2, reqs
    two, one = reqs
    assert two["recipient"] == "" and two["recipient_count"] == "2"
    assert one["recipient"] == "alice@example.test" and one["recipient_count"] == "1"
    assert int(two["size"]) > 500 and two["queue_id"], two
    assert two["queue_id"] in log(env)


@pytest.mark.parametrize("answer,code,enh", [
    (b"garbage without action\n\n", 451, "4.3.5"),
    (b"action=" + b"y" * 5000 + b"\n\n", 451, "4.3.5"),
    ("close", 451, "4.3.5"),
    (b"action=REJECT too big for you\n\n", 550, "5.7.1"),
    (b"action=DEFER_IF_PERMIT later\n\n", 450, "4.2.0"),
])
def test_policy_end_of_message_refusals(world, fake, answer, code, enh):
    """a refusal or a broken answer at the end of data refuses the
    message; nothing stored; the session goes on"""
    p = fake(lambda s, idx, a: answer if a.get("protocol_state") == "END-OF-MESSAGE"
             else b"action=DUNNO\n\n", policy=True)
    env = world(opts(policy_services=p.spec, policy_data_services=p.spec))
    rr, end = send(env, message("eomref"))
    assert rr[0].code == 250, rr[0]
    assert end.code == code and end.enh() == enh, end
    env.assert_nothing_stored()
    assert env.spool_files() == []
    session_alive_after(env)


def test_policy_prepend_at_end_of_message_ignored(world, fake):
    p = fake(lambda s, idx, a: b"action=PREPEND X-Late: yes\n\n", policy=True)
    env = world(opts(policy_data_services=p.spec))
    _rr, end = send(env, message("late"))
    assert end.code == 250, end
    [m] = stored(env)
    assert b"X-Late" not in m


def test_header_deleted_spool_shrinks(world, fake):
    """a change that only deletes: the in-memory spool is rewritten in
    place and cut to its new length (no old octets left at the end)"""
    f = fake(lambda m, i, c, d: [packet(b"m", struct.pack(">I", 1) + b"X-Long\x00\x00"),
                                 packet(b"a")] if c == b"E" else None)
    env = world(opts(milters=f.spec))
    body = "short body\n"
    _rr, end = send(env, message("shrink", body=body, extra="X-Long: " + "z" * 500 + "\n"))
    assert end.code == 250, end
    [m] = stored(env)
    assert b"X-Long" not in m
    assert m.endswith(b"\n\n" + body.encode()), m[-80:]


def test_client_port_from_tcpserver(T, fake):
    """under tcpserver (UCSPI) the port is TCPREMOTEPORT's"""
    f = fake()
    env = T.env(opts=opts(milters=f.spec), env={"TCPREMOTEIP": "192.0.2.7",
                                                 "TCPREMOTEPORT": "40123"})
    c = S.Client(env.port)
    c.greeting()
    c.cmd("QUIT", 221)
    c.close()
    macros = b"".join(d for _i, cmd, d in f.seen if cmd == b"D")
    assert b"{client_addr}\x00192.0.2.7\x00" in macros, macros
    assert b"{client_port}\x0040123\x00" in macros, macros
