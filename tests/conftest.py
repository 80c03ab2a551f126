"""conftest.py - pytest fixtures shared by tests/e2e, tests/launch, tests/robust.

T: what a test gets: a factory of worlds (tests/lib/smtptest.py World),
started inetd style by T.env() or left for the test to start by T.world();
after the test every world is stopped, every process any test started is
ended (a test that leaves one running fails), and the temp directories
of a passed test are removed (a failed test's are kept, and its smtpd log
is shown with the failure).

Every test is bounded: @pytest.mark.bound(SECONDS), else the module's
BOUND, else 90 s.  A skip counts as a failure when CI=true and we run as
root: CI must have every tool.  The binary is $SMTPD or --smtpd (default
./smtpd).
"""
import os
import re
import signal
import sys

import pytest

sys.dont_write_bytecode = True      # leave no __pycache__ in the work tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import smtptest as S  # noqa: E402

STRICT = os.environ.get("CI") == "true" and os.geteuid() == 0
FIGURES = []            # (test, figures) printed at the end of the run


def pytest_addoption(parser):
    parser.addoption("--smtpd", default=None,
                     help="the smtpd binary to test (default: $SMTPD, else ./smtpd)")


def on_term(sig, _frame):
    left = S.stop_all(2)
    print("interrupted by signal %d; stopped %s" % (sig, ", ".join(left) or "nothing"),
          flush=True)
    sys.exit(128 + sig)


def pytest_configure(config):
    if config.getoption("--smtpd"):
        os.environ["SMTPD"] = os.path.abspath(config.getoption("--smtpd"))
    signal.signal(signal.SIGTERM, on_term)


class Context:
    """a test's worlds, stopped (and, if it passed, removed) afterwards"""

    def __init__(self, name, defaults):
        smtpd = S.smtpd_path()
        if not os.access(smtpd, os.X_OK):
            raise S.TestFailure("%s is not an executable file (make, or set SMTPD)" % smtpd)
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:60]
        self.defaults = defaults
        self.worlds = []
        self.on_finish = []     # callables stopping the test's threads
        self.figs = ""          # figures shown after the run, pass or fail

    def world(self, name=None, **kw):
        """a World with this suite's defaults; nothing started"""
        args = dict(self.defaults)
        args.update(kw)
        w = S.World(name or self.name, **args)
        self.worlds.append(w)
        return w

    def env(self, start=True, **kw):
        """a World whose inetd-style listener is started (unless start=False)"""
        w = self.world(**kw)
        if start:
            w.start()
        return w

    def session(self, greet=True, ehlo="client.test", **kw):
        """(world, client): T.env(**kw) and a client greeted and after EHLO"""
        w = self.env(**kw)
        return w, w.client(greet=greet, ehlo=ehlo)

    def finish(self, passed):
        """stop everything; what was still running (for a passed test: a failure)"""
        for fn in self.on_finish:
            try:
                fn()
            except Exception:           # noqa: BLE001
                pass
        for w in self.worlds:
            try:
                w.stop()
            except Exception:           # noqa: BLE001
                pass
        left = S.stop_all()
        rest = leftovers([w.dir for w in self.worlds])
        if rest:
            for p in rest:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            left.append("cwd-in-test pids %r" % rest)
        if passed and not left:
            for w in self.worlds:
                w.cleanup()
        return left

    def report(self):
        """the logs and kept directories, for a failed test's report"""
        out = []
        for w in self.worlds:
            if w.spawn_errors:
                out.append("spawn errors: %s" % "; ".join(w.spawn_errors))
            text = w.log().strip()
            if text:
                out.append("--- %s\n%s" % (w.log_path, text[-3000:]))
            out.append("(kept %s)" % w.dir)
        return "\n".join(out)


def leftovers(world_dirs):
    """live processes whose cwd is in a test's world (our children)"""
    out = []
    for p in S.all_pids():
        try:
            cwd = os.readlink("/proc/%d/cwd" % p)
        except OSError:
            continue
        if any(cwd == d or cwd.startswith(d + "/") for d in world_dirs) and S.alive(p):
            out.append(p)
    return out


@pytest.fixture
def world_defaults():
    """World arguments of this suite (a suite's conftest.py overrides it)"""
    return {}


@pytest.fixture
def T(request, world_defaults):
    ctx = Context(request.node.name, world_defaults)
    request.node.ctx = ctx
    yield ctx
    rep = getattr(request.node, "rep_call", None)
    passed = rep is not None and rep.passed
    left = ctx.finish(passed)
    if ctx.figs:
        FIGURES.append((request.node.nodeid, ctx.figs))
    if left and passed:
        raise S.TestFailure("processes left running after the test: %s" % ", ".join(left))


@pytest.fixture(scope="session")
def faultfs():
    """the storage fault shim, built once; its path"""
    err = S.build_faultfs()
    if err:
        raise S.TestFailure(err)
    return S.FAULTFS


def on_alarm(_sig, _frame):
    raise S.TestFailure("test took longer than its time bound")


@pytest.fixture(autouse=True)
def _bound(request):
    m = request.node.get_closest_marker("bound")
    seconds = m.args[0] if m else getattr(request.module, "BOUND", 90)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    yield
    signal.alarm(0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep
    if rep.skipped and STRICT and rep.when in ("setup", "call"):
        why = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = "skipped in CI as root: %s" % why
    ctx = getattr(item, "ctx", None)
    if rep.failed and ctx is not None and rep.when == "call":
        rep.sections.append(("smtpd log", ctx.report()))
        if ctx.figs:
            rep.sections.append(("figures", ctx.figs))


def pytest_terminal_summary(terminalreporter):
    for nodeid, figs in FIGURES:
        terminalreporter.write_line("figures %s: %s" % (nodeid, figs))
