#!/usr/bin/env python3
"""run.py - smtpd's end-to-end test suite.

Usage: python3 tests/e2e/run.py ./smtpd [TEST_NAME_SUBSTRING ...]

Runs every test (or those whose name contains one of the given
substrings), prints one line per test, "PASS name", "FAIL name: reason"
or "SKIP name: reason", then a last line "N passed, M failed", and exits
1 when any test failed.  A skipped test counts as failed when CI=true
and we run as root, since CI must have every tool.

Python 3 standard library only.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True      # leave no __pycache__ in the work tree

import harness  # noqa: E402
from harness import Env, Skip, TestFailure, TESTS  # noqa: E402

import t_cli  # noqa: E402,F401
import t_delivery  # noqa: E402,F401
import t_protocol  # noqa: E402,F401
import t_data  # noqa: E402,F401
import t_bdat  # noqa: E402,F401
import t_failure  # noqa: E402,F401
import t_edge  # noqa: E402,F401
import t_queue  # noqa: E402,F401
import t_dovecot  # noqa: E402,F401

PER_TEST_SECONDS = 60


class Context:
    """what a test gets: a factory of started Envs, stopped afterwards"""

    def __init__(self, name):
        self.name = name
        self.envs = []

    def env(self, start=True, **kw):
        e = Env(self.name, **kw)
        self.envs.append(e)
        if start:
            e.start()
        return e

    def finish(self, passed):
        for e in self.envs:
            try:
                e.stop()
            except Exception:           # noqa: BLE001
                pass
        logs = []
        for e in self.envs:
            if e.spawn_errors:
                logs.append("spawn errors: %s" % "; ".join(e.spawn_errors))
            text = e.log().strip()
            if text:
                logs.append(text)
            if passed:
                e.cleanup()
        return logs


def build_faultfs():
    src = os.path.join(harness.TESTS_DIR, "faultfs.c")
    so = harness.FAULTFS
    if os.path.exists(so) and os.path.getmtime(so) >= os.path.getmtime(src):
        return None
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return "no C compiler to build tests/faultfs.so"
    p = subprocess.run([cc, "-shared", "-fPIC", "-o", so, src, "-ldl"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        return "building faultfs.so failed: %s" % p.stdout.decode(errors="replace")[-500:]
    return None


def on_alarm(_sig, _frame):
    raise TestFailure("test took longer than %ds" % PER_TEST_SECONDS)


def one_line(s, limit=600):
    s = " ".join(s.split())
    return s if len(s) <= limit else s[:limit] + "..."


def main(argv):
    if len(argv) < 2:
        print("usage: run.py ./smtpd [name ...]", file=sys.stderr)
        return 2
    smtpd = os.path.abspath(argv[1])
    harness.SMTPD = smtpd
    wanted = argv[2:]
    tests = [t for t in TESTS
             if not wanted or any(w in t.__name__ for w in wanted)]
    strict = os.environ.get("CI") == "true" and os.geteuid() == 0

    err = build_faultfs()
    if err:
        harness.FAULTFS_ERROR = err

    passed = failed = 0
    t_start = time.time()
    signal.signal(signal.SIGALRM, on_alarm)
    for fn in tests:
        name = fn.__name__[len("test_"):] if fn.__name__.startswith("test_") else fn.__name__
        if not os.access(smtpd, os.X_OK):
            print("FAIL %s: %s is not an executable file" % (name, smtpd))
            failed += 1
            continue
        ctx = Context(name)
        t0 = time.time()
        status, reason = "PASS", ""
        signal.alarm(PER_TEST_SECONDS)
        try:
            fn(ctx)
        except Skip as e:
            status, reason = "SKIP", str(e)
        except TestFailure as e:
            status, reason = "FAIL", str(e)
        except Exception as e:          # noqa: BLE001  a test bug or crash
            tb = traceback.extract_tb(e.__traceback__)[-1]
            status, reason = "FAIL", "%s: %s (at %s:%d)" % (
                type(e).__name__, e, os.path.basename(tb.filename), tb.lineno)
        finally:
            signal.alarm(0)
        try:
            logs = ctx.finish(status != "FAIL")
        except TestFailure as e:
            logs = [str(e)]
        dt = time.time() - t0
        if status == "PASS":
            passed += 1
            print("PASS %s (%.1fs)" % (name, dt))
        elif status == "SKIP":
            if strict:
                failed += 1
                print("FAIL %s: skipped in CI as root: %s" % (name, reason))
            else:
                print("SKIP %s: %s" % (name, reason))
        else:
            failed += 1
            line = "FAIL %s: %s" % (name, one_line(reason))
            if logs:
                line += " | smtpd stderr: " + one_line(" / ".join(logs)[-1500:], 800)
            kept = [e.dir for e in ctx.envs]
            if kept:
                line += " | kept " + " ".join(kept)
            print(line)
        sys.stdout.flush()
    print("# %d tests in %.1fs" % (len(tests), time.time() - t_start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
