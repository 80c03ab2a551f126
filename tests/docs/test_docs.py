"""tests/docs - the man pages are clean and complete.

smtpd(8) and smtpd.conf(5) pass `mandoc -T lint -W warning`; every
setting in config.c's table has an entry in smtpd.conf(5) and a line in
`smtpd -h`, each with its default (numeric defaults and ranges, and text
defaults, as config.c sets them); every option letter that getopt() accepts has an entry in
smtpd(8) and in `smtpd -h`; the log examples in smtpd(8) follow the
documented line shape.  Run by `make docs-check` (SMTPD= the binary).
"""
import glob
import os
import re
import shutil
import socket
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN8 = os.path.join(ROOT, "man", "smtpd.8")
MAN5 = os.path.join(ROOT, "man", "smtpd.conf.5")
SMTPD = os.path.abspath(os.environ.get("SMTPD", os.path.join(ROOT, "smtpd")))
TIMEOUT = 30


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def table_settings():
    """Setting names from the table in config.c: S(name, ...) / N(name, ...)."""
    src = read(os.path.join(ROOT, "config.c"))
    m = re.search(r"settings\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    assert m, "config.c: no `settings[] = { ... };` table found"
    names = re.findall(r"^\s*[A-Z]\w*\(\s*(\w+)\s*,", m.group(1), re.M)
    assert len(names) >= 10, "config.c: only %d settings parsed" % len(names)
    return names


def text_defaults():
    """{name: default} for the string and list settings, from config.c:
    set_defaults() strcpy()s the non-empty ones; the rest start empty.
    The host name's is the machine's (None here); tls_engine's is
    TLS_ENGINE, the build's SBINDIR."""
    src = read(os.path.join(ROOT, "config.c"))
    m = re.search(r"^static int set_defaults\(void\)\n\{(.*?)^\}", src, re.M | re.S)
    assert m, "config.c: no set_defaults() found"
    body = m.group(1)
    engine = re.search(r'^#define\s+TLS_ENGINE\s+"([^"]*)"', src, re.M).group(1)
    names = re.findall(r"^\s*[SL]\(\s*(\w+)\s*,", src, re.M)
    out = {n: "" for n in names}
    out.update(re.findall(r'strcpy\(cfg\.(\w+), "([^"]*)"\)', body))
    assert "gethostname(cfg.hostname" in body and "TLS_ENGINE" in body
    out["hostname"], out["tls_engine"] = None, engine
    return out


def man_entry(name):
    """a setting's paragraph in smtpd.conf(5), up to the next .It or .El"""
    entry = read(MAN5).split(".It Ic %s\n" % name, 1)[1]
    return re.split(r"^\.(?:It|El)\b", entry, flags=re.M)[0]


def plain(mdoc):
    """mdoc source as one line of text: macro names dropped"""
    words = []
    for line in mdoc.splitlines():
        toks = line.split()
        if line.startswith("."):
            toks = [t for t in toks[1:] if not re.match(r"^[A-Z][a-z]{1,2}$", t)]
        words += toks
    return " ".join(words)


def option_letters():
    """Option letters from the getopt() call(s) in the C sources."""
    letters = set()
    for path in glob.glob(os.path.join(ROOT, "*.c")):
        for spec in re.findall(r'getopt\s*\([^;]*?"([^"]+)"', read(path), re.S):
            letters.update(ch for ch in spec if ch.isalnum())
    assert letters, "no getopt() option string found in *.c"
    return sorted(letters)


def run(argv):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def help_text():
    assert os.access(SMTPD, os.X_OK), "no smtpd binary at %s (make first)" % SMTPD
    rc, out, err = run([SMTPD, "-h"])
    assert rc == 0, "smtpd -h exited %d: %r" % (rc, err[:300])
    return out + err


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=["smtpd.8", "smtpd.conf.5"])
def test_mandoc_lint_clean(page):
    if not shutil.which("mandoc"):
        pytest.fail("mandoc is not installed (tests/install-deps.sh installs it)")
    rc, out, err = run(["mandoc", "-T", "lint", "-W", "warning", page])
    assert rc == 0 and out.strip() == "" and err.strip() == "", \
        "mandoc -T lint -W warning %s (exit %d):\n%s%s" % (page, rc, out, err)


def test_pages_render():
    for page in (MAN8, MAN5):
        rc, out, err = run(["mandoc", "-T", "utf8", page])
        assert rc == 0 and len(out) > 2000, "%s does not render: %r" % (page, err[:300])


def test_settings_match_smtpd_n():
    """The table parser sees exactly the settings smtpd -n prints."""
    rc, out, err = run([SMTPD, "-n", "-o", "log=stderr"])
    printed = [line.split(" = ", 1)[0] for line in out.splitlines() if " = " in line]
    assert sorted(printed) == sorted(table_settings()), \
        "config.c table parse %s != smtpd -n names %s" % (table_settings(), printed)


@pytest.mark.parametrize("name", table_settings())
def test_setting_in_smtpd_conf_5(name):
    page = read(MAN5)
    assert re.search(r"^\.It Ic %s$" % re.escape(name), page, re.M), \
        "setting %s has no `.It Ic %s` entry in man/smtpd.conf.5" % (name, name)


def test_every_setting_entry_names_a_default():
    """Each setting's paragraph in smtpd.conf(5) says its default."""
    page = read(MAN5)
    entries = re.split(r"^\.It Ic ", page, flags=re.M)[1:]
    for entry in entries:
        name = entry.split("\n", 1)[0]
        body = re.split(r"^\.(?:El|Ss|Sh)\b", entry, flags=re.M)[0]
        assert "Default" in body, "smtpd.conf(5): %s has no default" % name


def test_no_unknown_settings_in_smtpd_conf_5():
    known = set(table_settings())
    listed = re.findall(r"^\.It Ic (\w+)$", read(MAN5), re.M)
    extra = [n for n in listed if n not in known]
    assert not extra, "smtpd.conf(5) documents settings config.c lacks: %s" % extra


@pytest.mark.parametrize("name", table_settings())
def test_setting_in_help(name):
    line = re.search(r"^\s*%s\s.*$" % re.escape(name), help_text(), re.M)
    assert line, "setting %s has no line of its own in smtpd -h" % name
    assert "default" in line.group(0), "smtpd -h shows no default for %s" % name


@pytest.mark.parametrize("name", sorted(text_defaults()))
def test_text_default_in_help(name):
    """smtpd -h shows a text setting's default, quoted, as config.c sets it
    (run as root, or for a setting that does not depend on who runs it)"""
    want = text_defaults()[name]
    if name == "hostname":
        want = socket.gethostname()
    elif os.geteuid() != 0 and name in ("postmaster", "spool_dir"):
        pytest.skip("%s's default is the starting user's when not root" % name)
    line = re.search(r"^\s*%s\s.*$" % re.escape(name), help_text(), re.M).group(0)
    assert line.endswith('(default "%s")' % want), \
        "smtpd -h: %s should end (default \"%s\"): %r" % (name, want, line)


@pytest.mark.parametrize("name", sorted(text_defaults()))
def test_text_default_in_smtpd_conf_5(name):
    """smtpd.conf(5) says a text setting's default: its value, or "empty"
    for an empty one, or "host name" for hostname's"""
    want = text_defaults()[name]
    text = plain(man_entry(name))
    said = text[text.find("Default"):]
    assert said, "smtpd.conf(5): %s has no default" % name
    if want is None:
        assert "host name" in said, "%s: %r does not name the host name" % (name, said)
    elif want == "":
        assert re.match(r"Default: empty\b", said), \
            "%s: default is empty, smtpd.conf(5) says %r" % (name, said)
    else:
        assert re.search(r"^Default:? %s([ .,;]|$)" % re.escape(want), said), \
            "%s: default is %r, smtpd.conf(5) says %r" % (name, want, said)


@pytest.mark.parametrize("letter", option_letters())
def test_option_in_smtpd_8(letter):
    page = read(MAN8)
    assert re.search(r"^\.It Fl %s(\s|$)" % letter, page, re.M), \
        "option -%s has no `.It Fl %s` entry in man/smtpd.8" % (letter, letter)


@pytest.mark.parametrize("letter", option_letters())
def test_option_in_help(letter):
    """Each option has its own line in smtpd -h: "  -x ..."."""
    assert re.search(r"^\s*-%s(\s|$)" % letter, help_text(), re.M), \
        "option -%s has no line of its own in smtpd -h" % letter


def test_log_examples_follow_the_format():
    """The example lines in smtpd(8)'s LOGGING section: ID EVENT key=value..."""
    page = read(MAN8)
    section = page.split(".Sh LOGGING", 1)[1].split("\n.Sh ", 1)[0]
    blocks = re.findall(r"^\.Bd -literal.*?\n(.*?)^\.Ed", section, re.M | re.S)
    lines = [l.replace("\\e", "\\") for b in blocks for l in b.splitlines() if l.strip()]
    assert len(lines) >= 5, "too few log examples in smtpd(8): %r" % lines
    value = r'(?:"(?:[^"\\]|\\x[0-9A-Fa-f]{2})*"|<[^\s<>"]*>|[^\s"=<>\\]+)'
    shape = re.compile(r"^[0-9A-Za-z]+ [a-z]+( [a-z_]+=%s)+$" % value)
    for line in lines:
        assert shape.match(line), "log example does not follow the format: %r" % line


def test_pages_agree_on_defaults():
    """Numeric defaults and ranges in smtpd.conf(5) and smtpd -h match
    config.c's table."""
    src = read(os.path.join(ROOT, "config.c"))
    consts = dict(re.findall(r"#define\s+(\w+)\s+(\d+)", read(os.path.join(ROOT, "config.h"))))
    rows = re.findall(r"^\s*[NZ]\(\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w+),", src, re.M)
    assert rows, "no N(...) rows parsed from config.c"
    for name, d, lo, hi in rows:
        d, lo, hi = (consts.get(x, x).rstrip("L") for x in (d, lo, hi))
        entry = man_entry(name)
        want = "Default %s" % d
        assert want in entry.replace("\n", " "), "%s: %r not in smtpd.conf(5)" % (name, want)
        rng = "range %s" % lo
        text = entry.replace("\n", " ")
        assert rng in text and ("to %s" % hi) in text, \
            "%s: range %s..%s not in smtpd.conf(5): %r" % (name, lo, hi, text[-200:])
        shown = "(default %s, %s..%s)" % (d, lo, hi)
        assert re.search(r"^\s*%s\s.*%s$" % (name, re.escape(shown)), help_text(), re.M), \
            "smtpd -h: %s does not end %s" % (name, shown)
