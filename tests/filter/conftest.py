"""conftest.py - fixtures for the filter suite (tests/filter).

The smtpd under test runs inetd-style from tests/e2e/harness.py's Env
(one process per connection, its own temp world).  The real daemons
(daemons.py) start once per suite where they are slow (rspamd ~15 s,
clamd), per test where state matters (postgrey, Dovecot).
SMTPD names the binary (default: ./smtpd at the top of the tree)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import harness  # noqa: E402
import daemons  # noqa: E402

harness.SMTPD = os.path.abspath(os.environ.get("SMTPD", os.path.join(TOP, "smtpd")))


def _need(*progs):
    import shutil
    missing = [p for p in progs if not shutil.which(p) and not os.path.exists(p)]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("missing in CI: %s" % " ".join(missing))
        pytest.skip("not installed: %s" % " ".join(missing))


@pytest.fixture(scope="session")
def rspamd():
    _need("rspamd")
    d = daemons.start_rspamd()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def clamav():
    _need("clamd", "clamav-milter")
    d = daemons.start_clamav()
    yield d
    d.stop()


@pytest.fixture
def world():
    """make(opts) -> a started harness Env; all stopped at the end"""
    envs = []

    def make(opts=None, users=("alice", "bob")):
        e = harness.Env("filter", users=users, opts=opts)
        envs.append(e)
        return e.start()
    yield make
    for e in envs:
        e.stop()


def send(env, body, rcpts=("alice",), sender="sender@example.org", helo="client.example"):
    """one message; returns (replies to RCPT..., reply to the end of data)"""
    c = harness.Client(env.port)
    try:
        c.reply()
        c.cmd("EHLO " + helo, 250)
        c.cmd("MAIL FROM:<%s>" % sender, 250)
        rr = [c.cmd("RCPT TO:<%s@%s>" % (r, harness.DOMAIN) if "@" not in r else
                    "RCPT TO:<%s>" % r) for r in rcpts]
        if not any(r.code == 250 for r in rr):
            c.cmd("QUIT")
            return rr, None
        c.cmd("DATA", 354)
        data = body.replace("\r\n", "\n").replace("\n", "\r\n")
        data = "\r\n".join("." + l if l.startswith(".") else l for l in data.split("\r\n"))
        c.send(data + ("" if data.endswith("\r\n") else "\r\n") + ".\r\n")
        end = c.reply()
        c.cmd("QUIT")
        return rr, end
    finally:
        c.close()


def message(subject="hello", body="Hello there, a clean body.\n", extra=""):
    return ("From: Sender <sender@example.org>\nTo: alice@example.test\n"
            "Subject: %s\nMessage-ID: <%s@example.org>\n"
            "Date: Tue, 1 Dec 2026 10:00:00 +0000\n%s\n%s"
            % (subject, abs(hash(subject + body)), extra, body))


def log(env):
    with open(env.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def stored(env, user="alice"):
    return [data for _fn, data in env.read_new(user)]
