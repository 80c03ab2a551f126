"""command-line modes: -n, -h, bad options, -q"""
from smtptest import DOMAIN, HOST, check, eq, run

NAMES = ["hostname", "local_domains", "virtual_users", "postmaster", "session_user",
         "spool_dir", "maildir", "log", "size_limit", "rcpt_limit", "cmdline_limit",
         "textline_limit", "cmd_timeout", "data_timeout", "error_limit", "hop_limit",
         "queue_lifetime", "queue_retry"]


def test_cli_n_prints_settings(T):
    env = T.env(start=False, opts={"rcpt_limit": "5", "cmdline_limit": "100",
                                   "size_limit": "123456"})
    rc, out, err = run(env.argv(flags=("-n",)))
    eq(rc, 0, "exit status of smtpd -n (stderr %r)" % err[:200])
    got = {}
    for line in out.splitlines():
        check(" = " in line, "line not 'name = value': %r" % line)
        k, v = line.split(" = ", 1)
        got[k] = v
    for n in NAMES:
        check(n in got, "setting %s missing from -n output" % n)
    eq(got["hostname"], HOST, "hostname")
    eq(got["local_domains"], DOMAIN, "local_domains")
    eq(got["spool_dir"], env.spool, "spool_dir")
    eq(got["virtual_users"], env.users_file, "virtual_users")
    eq(got["size_limit"], "123456", "size_limit")
    eq(got["rcpt_limit"], "100", "rcpt_limit=5 clamped to its minimum")
    eq(got["cmdline_limit"], "512", "cmdline_limit=100 clamped to its minimum")
    eq(got["textline_limit"], "1000", "textline_limit default")
    eq(got["hop_limit"], "50", "hop_limit default")


def test_cli_h_usage(T):
    env = T.env(start=False)
    rc, out, err = run([env.argv()[0], "-h"])
    eq(rc, 0, "exit status of smtpd -h")
    check((out + err).strip() != "", "smtpd -h printed nothing")


def test_cli_bad_setting_fails(T):
    env = T.env(start=False)
    rc, out, err = run([env.argv()[0], "-n", "-o", "no_such_setting=1"])
    check(rc != 0, "smtpd -o no_such_setting=1 -n exited 0 (stdout %r)" % out[:200])
    rc, out, err = run([env.argv()[0], "-n", "-o", "size_limit=abc"])
    check(rc != 0, "smtpd -o size_limit=abc -n exited 0")


def test_cli_q_empty_queue(T):
    env = T.env(start=False)
    rc, out, err = run(env.argv(flags=("-e", "-q")))
    eq(rc, 0, "exit status of smtpd -q on an empty spool (stderr %r)" % err[-300:])
