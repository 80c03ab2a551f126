"""conftest.py - fixtures for the administrator's tools: a tests/lib
smtptest.py World (virtual users alice and bob, a spool, a log file),
made by the shared T fixture, with smtpd run inetd style on a socketpair
and as a command-line tool on the same spool."""
import os

import pytest

import smtptest as S

ROOT = S.ROOT_DIR
SMTPD = S.smtpd_path()


class AdminWorld(S.World):
    """a World whose Maildirs exist from the start and whose smtpd
    sessions run on a socketpair, one at a time"""

    def __init__(self, name, **kw):
        super().__init__(name, **kw)
        for md in self.users.values():
            for d in (md,) + tuple(os.path.join(md, s) for s in ("tmp", "new", "cur")):
                os.makedirs(d, exist_ok=True)
                if S.IS_ROOT:
                    os.chown(d, S.MAIL_UID, S.MAIL_GID)

    def run(self, *args, timeout=30):
        """smtpd with our settings and args; (exit status, stdout, stderr),
        stderr also in the log"""
        return self.cli(*args, timeout=timeout, log=True)

    def session(self, script, timeout=20):
        """one inetd-style session fed `script` (bytes); the replies"""
        c, p = self.pair_session()
        c.set_timeout(timeout)
        c.send(script)
        out = c.read_to_eof(timeout)
        c.close()
        p.wait(timeout=timeout)
        return out.decode("utf-8", "replace")

    def logtext(self):
        return self.log()


def message(rcpts, body="hello", sender="sender@client.test", ehlo="client.test"):
    """an SMTP session script delivering one message"""
    s = "EHLO %s\r\nMAIL FROM:<%s>\r\n" % (ehlo, sender)
    s += "".join("RCPT TO:<%s>\r\n" % r for r in rcpts)
    s += "DATA\r\nSubject: t\r\n\r\n%s\r\n.\r\nQUIT\r\n" % body
    return s.encode()


@pytest.fixture
def world(T):
    w = AdminWorld(T.name, settings={"queue_interval": 0})
    T.worlds.append(w)
    return w
