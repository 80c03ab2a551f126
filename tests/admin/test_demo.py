"""test_demo.py - the README's first command and its curl line deliver,
for root and for an ordinary user alike (etc/demo.sh, as make demo runs it)."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from smtptest import free_port  # tests/lib, on the path by tests/conftest.py

from conftest import ROOT, SMTPD

DEMO_USER = "smtpd-demo"


def wait_port(port, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "demo exited: %s" % proc.stdout.read()
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("demo never listened on %d" % port)


def run_demo(tmp, prefix, user):
    """start the demo in tmp/demo as `user` (prefix: how to become him),
    send the README's curl line as him, return the delivered files"""
    port = free_port()
    for f, src in (("smtpd", SMTPD), ("demo.sh", os.path.join(ROOT, "etc", "demo.sh"))):
        shutil.copy(src, os.path.join(tmp, f))
    p = subprocess.Popen(prefix + ["sh", os.path.join(tmp, "demo.sh"), os.path.join(tmp, "smtpd"),
                                   os.path.join(tmp, "demo"), str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        wait_port(port, p)
        curl = subprocess.run(prefix + ["curl", "-s", "smtp://127.0.0.1:%d" % port,
                                        "--mail-from", "you@localhost", "--mail-rcpt",
                                        "%s@localhost" % user, "--crlf", "-T",
                                        os.path.join(ROOT, "README.md")],
                              capture_output=True, text=True, timeout=30)
        assert curl.returncode == 0, curl.stderr
        new = os.path.join(tmp, "demo", "Maildir", "new")
        deadline = time.time() + 10
        while time.time() < deadline and not os.listdir(new):
            time.sleep(0.05)
        return [open(os.path.join(new, f), encoding="utf-8").read() for f in os.listdir(new)]
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=40)


def test_demo_as_whoever_runs_it():
    me = pwd.getpwuid(os.getuid()).pw_name
    tmp = tempfile.mkdtemp(prefix="smtpd-demo-")
    try:
        os.chmod(tmp, 0o755)
        msgs = run_demo(tmp, [], me)
        assert len(msgs) == 1
        assert "Delivered-To: %s@localhost" % me in msgs[0]
        assert "make demo" in msgs[0]          # README.md's own text
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make an ordinary user")
def test_demo_as_an_ordinary_user():
    try:
        pw = pwd.getpwnam(DEMO_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        DEMO_USER], check=True)
        pw = pwd.getpwnam(DEMO_USER)
    tmp = tempfile.mkdtemp(prefix="smtpd-demo-")
    try:
        os.chmod(tmp, 0o755)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        env_home = ["env", "HOME=" + tmp]
        prefix = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                  "--init-groups"] + env_home
        msgs = run_demo(tmp, prefix, DEMO_USER)
        assert len(msgs) == 1 and "Delivered-To: %s@localhost" % DEMO_USER in msgs[0]
        st = os.stat(os.path.join(tmp, "demo", "Maildir", "new"))
        assert st.st_uid == pw.pw_uid
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
