"""tests/tls - STARTTLS through smtpd-tls; fixtures on top of tests/conftest.py.

world: a World (tests/lib/smtptest.py, from the shared T fixture) with
.engine, the smtpd-tls binary (--engine, default ./smtpd-tls); the servers
a test starts are stopped after it (they are meant to run until then) and
the test fails if smtpd or the engine reported a sanitizer error in the log.
pki: a throwaway CA and server certificates made with openssl, once per run.
"""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "launch"))
import smtptest as L                                     # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--engine", default=os.path.join(ROOT, "smtpd-tls"),
                     help="the smtpd-tls binary to test (default ./smtpd-tls)")


@pytest.fixture
def world_defaults():
    return {"make_spool": False, "settings": {"queue_interval": "0"}}


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


def make_cert(d, name, ca, cn="mx.test", curve=True):
    """key + certificate for cn (and mx.test, 127.0.0.1) signed by the CA"""
    key, csr, crt = (os.path.join(d, name + s) for s in (".key", ".csr", ".crt"))
    if curve:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", key, cwd=d)
    else:
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", key, cwd=d)
    openssl("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr, cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s,DNS:mx.test,DNS:localhost,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n" % cn)
    openssl("x509", "-req", "-in", csr, "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt, cwd=d)
    os.chmod(key, 0o600)      # root only: the engine reads it before dropping
    return crt, key


class PKI:
    def __init__(self, d):
        self.dir = d
        ca = os.path.join(d, "ca")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
                "-subj", "/CN=smtpd test CA", cwd=d)
        self.ca = ca + ".crt"
        self.cert, self.key = make_cert(d, "server", ca)
        self.cert2, self.key2 = make_cert(d, "server2", ca, cn="mx2.test")
        self.rsa_cert, self.rsa_key = make_cert(d, "rsa", ca, curve=False)

    def serial(self, crt):
        out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", crt],
                             capture_output=True, text=True, check=True).stdout
        return out.strip().split("=", 1)[1].upper()


@pytest.fixture(scope="session")
def pki():
    L.need("openssl")
    d = tempfile.mkdtemp(prefix="smtpd-tls-pki-")
    os.chmod(d, 0o755)
    p = PKI(d)
    yield p
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def tls_account():
    """the engine's own account (tls_user; tests/install-deps.sh makes it)"""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("smtpd-tls")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                            "/nonexistent", "--shell", "/usr/sbin/nologin", "smtpd-tls"],
                           check=True, timeout=60)


@pytest.fixture
def world(T, request):
    engine = os.path.abspath(request.config.getoption("--engine"))
    if not os.access(engine, os.X_OK):
        pytest.fail("%s not built (make; needs libtls-dev)" % engine)
    w = T.world()
    w.engine = engine
    yield w
    L.stop_all()            # our servers run until the test ends: stop them here
    log = w.log()
    # ASan/UBSan (make check-asan) report on stderr, which is the log
    assert "Sanitizer" not in log and "runtime error:" not in log, log[-4000:]
