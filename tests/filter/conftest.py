"""conftest.py - fixtures for the filter suite (tests/filter).

The smtpd under test runs inetd-style in a tests/lib/smtptest.py World
(one process per connection, its own temp world), made by the shared T
fixture of tests/conftest.py.  The real daemons (daemons.py) start once
per suite where they are slow (rspamd ~15 s, clamd), per test where state
matters (postgrey, Dovecot)."""
import email.utils
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

import smtptest as S  # noqa: E402
import daemons  # noqa: E402


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
def world(T):
    """make(opts) -> a started World; all stopped at the end (by T)"""
    def make(opts=None, users=("alice", "bob")):
        return T.env(opts=opts, users=users)
    return make


def client(env, helo="x.example"):
    """a Client of env, greeted and after EHLO helo"""
    return S.connect(env.port, ehlo=helo)


def send(env, body, rcpts=("alice",), sender="sender@example.org", helo="client.example"):
    """one message; returns (replies to RCPT..., reply to the end of data)"""
    c = client(env, helo)
    try:
        rr, end = c.transaction(sender, [r if "@" in r else "%s@%s" % (r, S.DOMAIN)
                                         for r in rcpts], S.crlf(body))
        c.cmd("QUIT")
        return rr, end
    finally:
        c.close()


def message(subject="hello", body="Hello there, a clean body.\n", extra=""):
    # today's date: a fixed one scores DATE_IN_PAST in rspamd a day later,
    # which turned a clean message into spam (X-Spam: Yes)
    return ("From: Sender <sender@example.org>\nTo: alice@example.test\n"
            "Subject: %s\nMessage-ID: <%s@example.org>\n"
            "Date: %s\n%s\n%s"
            % (subject, abs(hash(subject + body)),
               email.utils.formatdate(usegmt=True), extra, body))


def log(env):
    return env.log()


def stored(env, user="alice"):
    return [data for _fn, data in env.read_new(user)]
