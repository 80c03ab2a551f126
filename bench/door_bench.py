#!/usr/bin/env python3
"""door_bench.py - what the checks at the door cost: connect + EHLO + QUIT
per second (bench/smtpload.c -m conn), 8 clients, against

  smtpd-off            smtpd's supervisor, client trusted (the door skipped)
  smtpd-rdns           client untrusted, no DNS lists, reverse DNS on
  smtpd-dnsbl3         client untrusted, three DNSBL sites, reverse DNS on,
                       the verdict cache on (dnsbl_cache_ttl = 60, default)
  smtpd-dnsbl3-nocache the same with dnsbl_cache_ttl = 0: every connection
                       asks 3 + 1 questions
  postfix-ps-cache     Postfix 3.7: postscreen with the same three sites in
                       front of its smtpd, its cache on (a clean client is
                       queried once, then passed from the cache)
  postfix-ps-nocache   postscreen_dnsbl_min/max_ttl = 1s: a client is queried
                       again after a second, and each new test waits
                       postscreen_greet_wait (1 s, its floor here)

The three lists are answered by a local dnsmasq (cache off, so every
query is answered afresh) on 127.0.0.54:53; the client (127.0.0.1) is on
none of them, as most connections are.  Postfix's resolver reads
/etc/resolv.conf and knows no port, so Postfix runs in its own mount
namespace where /etc/resolv.conf says "nameserver 127.0.0.54"; smtpd
gets dns_server = 127.0.0.54.  smtpd runs with greet_wait = 0 (the
pregreet wait is a fixed delay, not a cost); postscreen always holds a
client it has to test for postscreen_greet_wait (here 1 s), whatever
postscreen_greet_action says, so its uncached figure is bounded by that.

usage (root, loopback only):  [ROUNDS=3] python3 bench/door_bench.py [SECONDS]
Each case runs SECONDS (default 10) per round; the table shows the median.
Prints one table; keeps logs in $BENCH_DIR (default /var/tmp/smtpd-door-bench).
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import servers  # noqa: E402  dnsmasq, Postfix's instance directory
import smtptest as S  # noqa: E402  free ports, bounded waits, process groups
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  Reaped: a server tree under reaper.py, its CPU
SMTPD = os.path.join(ROOT, "smtpd")
WORK = os.environ.get("BENCH_DIR", "/var/tmp/smtpd-door-bench")
DNS_ADDR = "127.0.0.54"
SECS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CONC = 8
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SITES = ["bl1.test", "bl2.test", "bl3.test"]

DNSMASQ_CONF = """\
port=53
listen-address=%s
bind-interfaces
no-resolv
no-hosts
no-poll
cache-size=0
no-negcache
%s
local=/in-addr.arpa/
address=/2.0.0.127.bl1.test/127.0.0.2
""" % (DNS_ADDR, "\n".join("local=/%s/" % z for z in SITES))

# postscreen in front of smtpd, and the DNSBL lookups it asks for
LISTENERS = """\
{listen} inet n - n - 1 postscreen
smtpd     pass  -       -       n       -       -       smtpd
dnsblog   unix  -       -       n       -       0       dnsblog
tlsproxy  unix  -       -       n       -       0       tlsproxy
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {pf}/queue
data_directory = {pf}/data
myhostname = mx.test
mydestination = example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.2/32
maillog_file = {pf}/maillog
alias_maps =
alias_database =
smtpd_peername_lookup = no
postscreen_access_list =
postscreen_dnsbl_sites = {sites}
postscreen_dnsbl_threshold = 1
postscreen_dnsbl_action = enforce
postscreen_greet_action = ignore
postscreen_dnsbl_min_ttl = {ttl}
postscreen_dnsbl_max_ttl = {ttl}
postscreen_greet_wait = 1s
"""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load(port, tag):
    out = subprocess.run([os.path.join(WORK, "smtpload"), "-p", str(port), "-c", str(CONC),
                          "-d", str(SECS), "-m", "conn", "-w", "1"],
                         capture_output=True, text=True, timeout=SECS + 120).stdout
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', out))
    with open(os.path.join(WORK, tag + ".load"), "w") as f:
        f.write(out)
    return float(kv.get("rate", 0)), int(kv.get("errors", 0)), kv.get("p50_ms", "-")


def smtpd_case(tag, extra):
    port = S.free_port()
    spool = os.path.join(WORK, "spool-" + tag)
    argv = [SMTPD, "-e", "-o", "hostname=mx.test", "-o", "local_domains=example.test",
            "-o", "spool_dir=" + spool, "-o", "queue_interval=0", "-o", "workers=%d" % CONC,
            "-o", "max_per_addr=1000", "-o", "greet_wait=0", "-o", "dns_server=" + DNS_ADDR,
            "-l", "127.0.0.1:%d" % port]
    for k, v in extra.items():
        argv += ["-o", "%s=%s" % (k, v)]
    r = B.Reaped(WORK, tag, argv)
    return measured(r, port, tag)


def measured(r, port, tag):
    """the load on port, and the server tree's CPU ms per connection (the
    warm-up second's connections counted at the measured rate)"""
    try:
        if not S.wait_listen(port, timeout=20):
            raise RuntimeError("%s did not listen" % tag)
        rate, errors, p50 = load(port, tag)
    finally:
        cpu = r.stop()
    return rate, errors, p50, cpu * 1000 / max(1.0, rate * (SECS + 1))


def postfix_case(tag, ttl):
    port = S.free_port()
    pf = os.path.join(WORK, "postfix-" + tag)
    shutil.rmtree(pf, ignore_errors=True)
    conf = servers.postfix_instance(
        pf, MAIN_CF.format(pf=pf, sites=", ".join("%s*1" % s for s in SITES), ttl=ttl),
        LISTENERS.format(listen="127.0.0.1:%d" % port), os.path.join(pf, "conf"))
    resolv = os.path.join(WORK, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver %s\n" % DNS_ADDR)
    start = ("unshare -m --propagation private sh -c 'mount --bind %s /etc/resolv.conf "
             "&& postfix -c %s start'" % (resolv, conf))
    r = B.Reaped(WORK, tag, start=start, stop="postfix -c %s stop" % conf)
    return measured(r, port, tag)


def main():
    if os.geteuid() != 0:
        sys.exit("door_bench: run as root (Postfix, a mount namespace, port 53)")
    os.makedirs(WORK, exist_ok=True)
    subprocess.run(["cc", "-O2", "-pthread", "-o", os.path.join(WORK, "smtpload"),
                    os.path.join(HERE, "smtpload.c")], check=True)
    subprocess.run(["make", "-C", ROOT, "smtpd"], check=True, capture_output=True)
    dns = servers.Dnsmasq(WORK, DNSMASQ_CONF, ready="2.0.0.127.bl1.test", addr=DNS_ADDR,
                          port=53)
    sites = ", ".join("%s*1" % s for s in SITES)
    untrusted = {"trusted_networks": "::1/128"}
    cases = [
        ("smtpd-off", lambda t: smtpd_case(t, {"rdns": 0})),
        ("smtpd-rdns", lambda t: smtpd_case(t, dict(untrusted, rdns=1))),
        ("smtpd-dnsbl3", lambda t: smtpd_case(t, dict(untrusted, rdns=1, dnsbl_sites=sites))),
        ("smtpd-dnsbl3-nocache", lambda t: smtpd_case(t, dict(untrusted, rdns=1,
                                                                dnsbl_sites=sites,
                                                                dnsbl_cache_ttl=0))),
        ("postfix-ps-nocache", lambda t: postfix_case(t, "1s")),
        ("postfix-ps-cache", lambda t: postfix_case(t, "1h")),
    ]
    # round-robin, ROUNDS times, and the median of each: on a shared
    # machine a burst of someone else's load then hits every case alike
    runs = {tag: [] for tag, _ in cases}
    try:
        for rnd in range(ROUNDS):
            for tag, fn in cases:
                rate, errors, p50, cpu = fn(tag)
                runs[tag].append((rate, errors, p50, cpu))
                log("round %d %-22s %8.0f/s errors=%d p50=%sms cpu=%.3fms" % (
                    rnd + 1, tag, rate, errors, p50, cpu))
    finally:
        dns.stop()
    rows = []
    for tag, _ in cases:
        rs = sorted(runs[tag])
        rate, _, p50, cpu = rs[len(rs) // 2]
        rows.append((tag, rate, sum(r[1] for r in rs), p50, cpu,
                     "/".join("%.0f" % r[0] for r in runs[tag])))
    base = rows[0][1] or 1
    print("door benchmark: connect+EHLO+QUIT, %d clients, %d s x %d rounds, loopback, "
          "load average %.1f" % (CONC, SECS, ROUNDS, os.getloadavg()[0]))
    print("%-22s %8s %7s %8s %7s %8s  %s" % ("server", "conn/s", "x off", "p50 ms", "errors",
                                              "CPU ms", "every round"))
    for tag, rate, errors, p50, cpu, each in rows:
        print("%-22s %8.0f %7.2f %8s %7d %8.3f  %s" % (tag, rate, rate / base, p50, errors,
                                                      cpu, each))


if __name__ == "__main__":
    main()
