"""tests/package - the Debian package, built, installed, used and purged.

Builds the .deb with `dpkg-buildpackage -us -uc -b` in a copy of the tree
(the source tree stays clean), installs it with `dpkg -i`, checks the files,
the conffile, the session account and the spool, checks that no unit is
enabled, delivers one message through the installed program, units and
configuration (socket activation as the shipped smtpd.socket does it, inetd
style, and the supervisor) to a test user's Maildir, then removes and purges
the package and checks what is left.  Needs root; skipped otherwise.
Run by `make package-check`.
"""
import glob
import os
import pwd
import grp
import shlex
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from smtptest import free_port  # tests/lib, on the path by tests/conftest.py

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PKG = "smtpd"
CONF = "/etc/smtpd/smtpd.conf"
SPOOL = "/var/spool/smtpd"
UNITDIR = "/lib/systemd/system"
UNITS = ["smtpd.socket", "smtpd@.service", "smtpd.service",
         "smtpd-activated.socket", "smtpd-activated.service"]
FILES = ["/usr/sbin/smtpd", "/usr/share/man/man8/smtpd.8.gz",
         "/usr/share/man/man5/smtpd.conf.5.gz", CONF,
         "/usr/share/doc/smtpd/examples/smtpd.conf",
         "/usr/share/doc/smtpd/copyright"] + [os.path.join(UNITDIR, u) for u in UNITS]
USER = "smtpdpkgt"
TIMEOUT = 30

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the package test installs a .deb with dpkg -i: run it as root "
           "(CI does; sudo make package-check here)")


def run(argv, timeout=120, check=True, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, **kw)
    out = p.stdout.decode("utf-8", "replace")
    if check:
        assert p.returncode == 0, "%s exited %d:\n%s" % (" ".join(argv), p.returncode, out[-3000:])
    return p.returncode, out


def dpkg(*args):
    """dpkg, waiting (bounded) while another package manager holds the lock."""
    deadline = time.time() + 300
    while True:
        rc, out = run(["dpkg"] + list(args), check=False, timeout=300)
        if rc == 0 or "lock" not in out or time.time() > deadline:
            assert rc == 0, "dpkg %s exited %d:\n%s" % (" ".join(args), rc, out[-3000:])
            return out
        time.sleep(2)


def installed():
    rc, out = run(["dpkg-query", "-W", "-f=${Status}", PKG], check=False)
    return rc == 0 and "installed" in out and "not-installed" not in out


def config_files_left():
    rc, out = run(["dpkg-query", "-W", "-f=${Status}", PKG], check=False)
    return rc == 0 and "config-files" in out


def account_exists():
    try:
        pwd.getpwnam("smtpd")
        return True
    except KeyError:
        return False


def copy_tree(dst):
    build = shutil.ignore_patterns(".git", "build-asan", "__pycache__", ".pytest_cache",
                                   "*.o", "*.d", "*_fuzz", "corpus*")

    def skip(d, names):
        """build products; a directory named *.d (etc/fail2ban/filter.d) is source"""
        return [n for n in build(d, names)
                if not (n.endswith(".d") and os.path.isdir(os.path.join(d, n)))]
    shutil.copytree(ROOT, dst, ignore=skip, symlinks=True)


@pytest.fixture(scope="module")
def deb():
    """Build the package in a temporary copy of the tree; path of the .deb."""
    for tool in ("dpkg-buildpackage", "dh", "fakeroot"):
        assert shutil.which(tool), "%s missing (tests/install-deps.sh installs it)" % tool
    work = tempfile.mkdtemp(prefix="smtpd-pkg-")
    try:
        src = os.path.join(work, "src")
        copy_tree(src)
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
        run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, timeout=600)
        debs = [d for d in glob.glob(os.path.join(work, "smtpd_*.deb"))]
        assert len(debs) == 1, "expected one smtpd_*.deb, got %s" % os.listdir(work)
        assert not os.path.exists(os.path.join(ROOT, "debian", PKG)), \
            "the build wrote into the source tree"
        yield debs[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def package(deb):
    """The package installed for the module; purged afterwards in any case."""
    if installed() or config_files_left():
        dpkg("--purge", PKG)
    had_account = account_exists()
    dpkg("-i", deb)
    try:
        yield {"deb": deb, "had_account": had_account}
    finally:
        if installed() or config_files_left():
            run(["dpkg", "--purge", PKG], check=False, timeout=300)


@pytest.fixture(scope="module")
def mailuser(package):
    """A system user with a home (and so a Maildir) the deliverer can reach."""
    base = tempfile.mkdtemp(prefix="smtpd-pkg-home-")
    os.chmod(base, 0o755)
    home = os.path.join(base, USER)
    run(["userdel", "-r", USER], check=False)
    run(["useradd", "-m", "-d", home, "-s", "/usr/sbin/nologin", USER])
    try:
        yield pwd.getpwnam(USER)
    finally:
        run(["userdel", "-r", USER], check=False)
        shutil.rmtree(base, ignore_errors=True)


def wait_port(port, proc):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        assert proc.poll() is None, "server exited %s before listening" % proc.returncode
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on 127.0.0.1:%d after %ds" % (port, TIMEOUT))


def unit_command(unit):
    """The ExecStart= argv of an installed unit."""
    with open(os.path.join(UNITDIR, unit)) as f:
        for line in f:
            if line.startswith("ExecStart="):
                return shlex.split(line.split("=", 1)[1])
    raise AssertionError("%s has no ExecStart=" % unit)


def maildir_new(user):
    d = os.path.join(user.pw_dir, "Maildir", "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def send_and_check(port, user, tag):
    """One message to user@localhost; returns the delivered file's path."""
    before = set(maildir_new(user))
    body = "Subject: %s\r\n\r\npackage test %s\r\n" % (tag, tag)
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as c:
        refused = c.sendmail("tester@example.org", ["%s@localhost" % user.pw_name], body)
        assert refused == {}, "refused: %r" % refused
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        new = [n for n in maildir_new(user) if n not in before]
        if new:
            break
        time.sleep(0.05)
    assert len(new) == 1, "expected one new file in %s/Maildir/new, got %s" % (user.pw_dir, new)
    path = os.path.join(user.pw_dir, "Maildir", "new", new[0])
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), "message not owned by %s" % USER
    with open(path, "rb") as f:
        data = f.read()
    assert b"package test " + tag.encode() in data and b"\r\n" not in data, data[:500]
    assert b"Delivered-To: <%s@localhost>" % user.pw_name.encode() in data or \
        b"Delivered-To: %s@localhost" % user.pw_name.encode() in data, data[:500]
    return path


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    return proc.stdout.read().decode("utf-8", "replace")


def configure(user):
    """What an administrator does before enabling: name the postmaster."""
    with open(CONF) as f:
        text = f.read()
    if "\npostmaster = %s\n" % user.pw_name not in text:
        with open(CONF, "a") as f:
            f.write("postmaster = %s\n" % user.pw_name)


def test_files_in_place(package):
    missing = [f for f in FILES if not os.path.exists(f)]
    assert not missing, "not installed: %s" % missing
    assert os.stat("/usr/sbin/smtpd").st_mode & 0o111, "/usr/sbin/smtpd not executable"
    _, conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PKG])
    assert CONF in conffiles, "%s is not a conffile: %r" % (CONF, conffiles)
    _, ldd = run(["ldd", "/usr/sbin/smtpd"])
    libs = [l.split()[0] for l in ldd.splitlines() if "=>" in l]
    assert all(l.startswith("libc.so") for l in libs), "links more than libc: %s" % libs
    for u in UNITS:
        with open(os.path.join(UNITDIR, u)) as f:
            text = f.read()
        assert "/usr/local" not in text, "%s still names /usr/local" % u
        assert "ExecStart=" not in text or "-c /etc/smtpd/smtpd.conf" in text, u
    _, man = run(["man", "-P", "cat", "8", "smtpd"], check=False)
    assert "queue" in man or not shutil.which("man")


def test_account_and_spool(package):
    pw = pwd.getpwnam("smtpd")
    assert 0 < pw.pw_uid < 1000, "smtpd is not a system account: uid %d" % pw.pw_uid
    assert grp.getgrgid(pw.pw_gid).gr_name == "smtpd", "no smtpd group"
    if not package["had_account"]:	# an existing account is left as it is
        assert pw.pw_dir == SPOOL, "home %s" % pw.pw_dir
    assert pw.pw_shell in ("/usr/sbin/nologin", "/bin/false"), "shell %s" % pw.pw_shell
    st = os.lstat(SPOOL)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    assert st.st_uid == pw.pw_uid, "spool not owned by smtpd"
    tls = pwd.getpwnam("smtpd-tls")	# tls_user's default: an account of its own
    assert 0 < tls.pw_uid < 1000 and tls.pw_uid != pw.pw_uid, tls
    assert tls.pw_shell in ("/usr/sbin/nologin", "/bin/false"), "shell %s" % tls.pw_shell


def test_shipped_config_is_safe(package):
    _, out = run(["/usr/sbin/smtpd", "-c", CONF, "-n"], check=False)
    got = dict(l.split(" = ", 1) for l in out.splitlines() if " = " in l)
    assert got.get("session_user") == "smtpd", out
    assert got.get("spool_dir") == SPOOL, out
    assert not got.get("listen") and not got.get("proxy_trusted"), out


def test_units_not_enabled(package):
    links = glob.glob("/etc/systemd/system/*.wants/smtpd*")
    assert not links, "units enabled at install: %s" % links


def deliver_through(argv, port, user, tag):
    """start argv (listening on port), deliver one message through it, stop
    it: (its exit status, its output)"""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        send_and_check(port, user, tag)
    finally:
        log = stop(proc)
    return proc.returncode, log


def test_delivery_socket_activated(package, mailuser):
    """As the shipped smtpd.socket (Accept=yes) + smtpd@.service run it."""
    configure(mailuser)
    port = free_port()
    argv = ["systemd-socket-activate", "--accept", "-l", "127.0.0.1:%d" % port] + \
        unit_command("smtpd@.service") + ["-e"]
    _, log = deliver_through(argv, port, mailuser, "activated")
    assert "delivery to=<%s@localhost> user=%s result=delivered" % (
        mailuser.pw_name, mailuser.pw_name) in log, log[-2000:]


def test_delivery_inetd_style(package, mailuser):
    """inetd style: the connection on fd 0/1 (systemd-socket-activate --inetd)."""
    configure(mailuser)
    port = free_port()
    argv = ["systemd-socket-activate", "--accept", "--inetd", "-l", "127.0.0.1:%d" % port,
            "/usr/sbin/smtpd", "-c", CONF]
    deliver_through(argv, port, mailuser, "inetd")


def test_delivery_supervisor(package, mailuser):
    """The prefork supervisor, as smtpd.service starts it, on a free port."""
    configure(mailuser)
    port = free_port()
    argv = [a for a in unit_command("smtpd.service") if a != "-l" and ":25" not in a]
    argv += ["-e", "-o", "workers=1", "-l", "127.0.0.1:%d" % port]
    status, log = deliver_through(argv, port, mailuser, "supervisor")
    assert status == 0, "supervisor exit %s:\n%s" % (status, log[-2000:])


def test_remove_then_purge(package):
    dpkg("--remove", PKG)
    gone = [f for f in FILES if f != CONF and os.path.exists(f)]
    assert not gone, "left after remove: %s" % gone
    assert os.path.exists(CONF), "remove must keep the conffile"
    assert os.path.isdir(SPOOL), "remove must keep the queue"
    dpkg("--purge", PKG)
    left = [f for f in FILES + ["/etc/smtpd", SPOOL] if os.path.exists(f)]
    assert not left, "left after purge: %s" % left
    assert not installed() and not config_files_left(), "dpkg still knows %s" % PKG
    # The smtpd account stays (Debian policy: it may still own files).
