"""conftest.py - fixtures for the door suite (DNSBL, pregreet, rates,
trusted networks, slow clients, fail2ban).

A real dnsmasq (Debian's, tests/lib/servers.py) on a free loopback port
with its own configuration (dnsmasq.conf.in), started once for the suite;
smtpd's prefork supervisor (smtptest.World.serve) started per test with
its own settings; the shared raw SMTP client (smtptest.Client) with a
PROXY v1/v2 header sent first, so a trusted test client (127.0.0.1)
speaks for any address.  Every wait is bounded; everything started is
stopped, also when a test fails.  Loopback only.

smtpd logs to stderr, into the world's log; syslog_copy() writes it with
a timestamp and host in front of each line, as rsyslog writes
/var/log/mail.log, so fail2ban-regex can read it.
"""
import datetime
import os
import shutil
import socket
import struct
import threading

import pytest

import servers
import smtptest as S  # tests/lib, on the path by tests/conftest.py

HERE = os.path.dirname(os.path.abspath(__file__))
WAIT = 15                       # seconds any single network wait may take
# smtpd's settings here, beside smtptest.World's: the checks at the door
# (reverse DNS, the held greeting) at smtpd's defaults unless a test says
DOOR = {"queue_interval": "0", "workers": "2", "rdns": None, "greet_wait": None}


# ---------------------------------------------------------------- DNS

class Dnsmasq(servers.Dnsmasq):
    """dnsmasq.conf.in's zones, and two servers it delegates to: one that
    never answers, one that answers SERVFAIL"""

    def __init__(self, tmp):
        # the zone that never answers: a UDP socket nobody reads
        self.hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.hole.bind(("127.0.0.1", 0))
        # the zone whose server fails: SERVFAIL to every question
        self.failer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.failer.bind(("127.0.0.1", 0))
        self.failer.settimeout(0.5)
        self.stopping = threading.Event()
        threading.Thread(target=self._servfail, daemon=True).start()
        with open(os.path.join(HERE, "dnsmasq.conf.in")) as f:
            conf = (f.read().replace("@BLACKHOLE@", str(self.hole.getsockname()[1]))
                    .replace("@SERVFAIL@", str(self.failer.getsockname()[1])))
        super().__init__(tmp, conf, ready="7.2.0.192.bl.test")

    def _servfail(self):
        """answer each query with its own question and RCODE 2"""
        while not self.stopping.is_set():
            try:
                q, peer = self.failer.recvfrom(2048)
            except OSError:
                continue
            if len(q) >= 12:
                self.failer.sendto(q[:2] + bytes([0x81, 0x82]) + q[4:], peer)

    def stop(self):
        super().stop()
        self.stopping.set()
        self.hole.close()
        self.failer.close()


@pytest.fixture(scope="session")
def dns(tmp_path_factory):
    if not shutil.which("dnsmasq") and not os.path.exists("/usr/sbin/dnsmasq"):
        pytest.fail("dnsmasq not installed (run tests/install-deps.sh)")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    d = Dnsmasq(str(tmp_path_factory.mktemp("dnsmasq")))
    yield d
    d.stop()


# ---------------------------------------------------------------- smtpd

@pytest.fixture
def smtpd(request):
    """smtpd(settings) -> a smtptest.World (alice, bob) served by its prefork
    supervisor on a free port (serve(): .port, .sup); stopped and removed
    after the test"""
    started = []

    def start(**settings):
        w = S.World(request.node.name, make_spool=False, settings=dict(DOOR, **settings))
        started.append(w)
        return w.serve()
    yield start
    for w in started:
        w.stop()
        w.cleanup()


def syslog_copy(srv):
    """srv's log as rsyslog writes /var/log/mail.log, each line after a
    timestamp and a host name, so that fail2ban-regex reads it; its path"""
    stamp = datetime.datetime.now(datetime.timezone.utc).astimezone()
    path = srv.path("mail.log")
    with open(path, "w") as f:
        for line in srv.log().splitlines():
            f.write("%s mx %s\n" % (stamp.isoformat(timespec="microseconds"), line))
    return path


# ---------------------------------------------------------------- client

def proxy_v1(src, sport=4000):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = "::1" if ":" in src else "127.0.0.1"
    return ("PROXY %s %s %s %d 25\r\n" % (fam, src, dst, sport)).encode()


def proxy_v2(src, sport=4000):
    sig = b"\r\n\r\n\0\r\nQUIT\n"
    if ":" in src:
        body = (socket.inet_pton(socket.AF_INET6, src) +
                socket.inet_pton(socket.AF_INET6, "::1") + struct.pack(">HH", sport, 25))
        return sig + bytes([0x21, 0x21]) + struct.pack(">H", len(body)) + body
    body = (socket.inet_aton(src) + socket.inet_aton("127.0.0.1") +
            struct.pack(">HH", sport, 25))
    return sig + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body


def client(port, header=b"", timeout=WAIT):
    """the shared raw client (smtptest.Client); header (PROXY) is sent
    right after connecting"""
    c = S.Client(port, timeout=timeout)
    if header:
        c.send(header)
    return c


def message(c, sender, rcpts, body="Subject: t\r\n\r\nhello\r\n"):
    """MAIL, RCPT..., DATA; returns the RCPT replies and the final reply"""
    return c.transaction(sender, rcpts, body.encode())
