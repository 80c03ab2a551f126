"""test_help.py - smtpd -h lists every option and every setting with its
default (text settings included)."""
import re
import subprocess

from conftest import SMTPD


def test_help_lists_options_and_settings(world):
    h = subprocess.run([SMTPD, "-h"], capture_output=True, text=True, timeout=10)
    assert h.returncode == 0
    for opt in ("-l", "-d", "-q", "-Q", "-D", "-n", "-c", "-o", "-e", "-h"):
        assert re.search(r"^  %s\b" % opt, h.stdout, re.M), opt
    rc, out, err = world.run("-n")
    names = re.findall(r"^(\w+) = ", out, re.M)
    assert len(names) > 25, out
    for name in names:
        m = re.search(r"^  %s +.*\(default [^)]*\)$" % name, h.stdout, re.M)
        assert m, "setting %s missing from -h or without a default" % name
