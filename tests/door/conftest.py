"""conftest.py - fixtures for the door suite (DNSBL, pregreet, rates,
trusted networks, slow clients, fail2ban).

A real dnsmasq (Debian's, tests/lib/servers.py) on a free loopback port
with its own configuration (dnsmasq.conf.in), started once for the suite;
smtpd's prefork supervisor started per test with its own settings; the
shared raw SMTP client (smtptest.Client) with a PROXY v1/v2 header sent
first, so a trusted test client (127.0.0.1) speaks for any address.  Every wait is bounded; everything
started is stopped, also when a test fails.  Loopback only.

smtpd logs to stderr; the harness writes each line into a log file with a
timestamp and host in front, as rsyslog writes /var/log/mail.log, so
fail2ban-regex can read it.
"""
import datetime
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

import servers
import smtptest as S  # tests/lib, on the path by tests/conftest.py
from smtptest import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SMTPD = os.path.abspath(os.environ.get("SMTPD", os.path.join(ROOT, "smtpd")))
HOST = "mx.test"
DOMAIN = "example.test"
WAIT = 15                       # seconds any single network wait may take
IS_ROOT = os.geteuid() == 0
MAIL_UID, MAIL_GID = (65534, 65534) if IS_ROOT else (os.getuid(), os.getgid())


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

class Smtpd:
    """one prefork supervisor on 127.0.0.1:port with its own world"""

    def __init__(self, tmp, settings):
        self.dir = tmp
        os.chmod(self.dir, 0o755)
        self.log_path = os.path.join(tmp, "mail.log")
        self.users = {}
        home = os.path.join(tmp, "home")
        os.mkdir(home, 0o755)
        with open(os.path.join(tmp, "users"), "w") as f:
            for n in ("alice", "bob"):
                h = os.path.join(home, n)
                os.mkdir(h, 0o755)
                if IS_ROOT:
                    os.chown(h, MAIL_UID, MAIL_GID)
                self.users[n] = os.path.join(h, "Maildir")
                f.write("%s:%d:%d:%s\n" % (n, MAIL_UID, MAIL_GID, self.users[n]))
        os.chmod(os.path.join(tmp, "users"), 0o644)
        self.settings = {
            "hostname": HOST, "local_domains": DOMAIN,
            "virtual_users": os.path.join(tmp, "users"),
            "spool_dir": os.path.join(tmp, "spool"), "postmaster": "alice",
            "queue_interval": "0", "workers": "2",
        }
        if IS_ROOT:
            self.settings["session_user"] = "nobody"
        self.settings.update({k: str(v) for k, v in settings.items()})
        self.lines = []
        self.lock = threading.Lock()
        self.proc = None
        self.start()

    def start(self):
        for _ in range(5):
            self.port = free_port()
            argv = [SMTPD, "-e", "-l", "127.0.0.1:%d" % self.port]
            for k, v in self.settings.items():
                argv += ["-o", "%s=%s" % (k, v)]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         cwd=self.dir, start_new_session=True)
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
            if self.wait_log(r"supervisor (?:result=)?started", 10, fail=False):
                return
            S.terminate(self.proc, group=True)
        raise RuntimeError("smtpd did not start:\n" + self.log_tail())

    def _read(self):
        """copy stderr into the log, each line stamped as rsyslog does"""
        with open(self.log_path, "ab") as f:
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                stamp = datetime.datetime.now(datetime.timezone.utc).astimezone()
                f.write(("%s %s %s\n" % (stamp.isoformat(timespec="microseconds"),
                                         "mx", line)).encode())
                f.flush()
                with self.lock:
                    self.lines.append(line)

    def log(self):
        with self.lock:
            return "\n".join(self.lines)

    def log_tail(self, n=40):
        with self.lock:
            return "\n".join(self.lines[-n:])

    def count(self, pattern):
        return len(re.findall(pattern, self.log(), re.M))

    def wait_log(self, pattern, timeout=WAIT, count=1, fail=True):
        end = time.time() + timeout
        while time.time() < end:
            if self.count(pattern) >= count:
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if fail:
            raise AssertionError("log never had %d x %r; tail:\n%s" %
                                 (count, pattern, self.log_tail()))
        return False

    def maildir_files(self, user):
        new = os.path.join(self.users[user], "new")
        if not os.path.isdir(new):
            return []
        return [open(os.path.join(new, f), "rb").read() for f in sorted(os.listdir(new))]

    def stop(self):
        if self.proc:
            S.terminate(self.proc, group=True)
            self.reader.join(5)


@pytest.fixture
def smtpd():
    """smtpd(settings) -> a started Smtpd; stopped and removed after the test
    (its own temp directory, readable by the unprivileged session_user)"""
    started = []

    def start(**settings):
        d = tempfile.mkdtemp(prefix="smtpd-door-")
        started.append(d)
        s = Smtpd(d, settings)
        started.append(s)
        return s
    yield start
    for s in started:
        if isinstance(s, Smtpd):
            s.stop()
    for d in started:
        if isinstance(d, str):
            shutil.rmtree(d, ignore_errors=True)


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
