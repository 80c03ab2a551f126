"""test_door.py - the checks at the door, end to end: DNSBL/DNSWL scoring
against a real dnsmasq, reverse DNS in Received:, the pregreet test,
trusted networks, per-address caps and rates, slow clients, fail2ban.

Addresses other than 127.0.0.1 arrive in PROXY v1/v2 headers from the
trusted test client (proxy_trusted = 127.0.0.1); dnsmasq.conf.in says
what each one is.
"""
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import os

import pytest

import smtptest as S
from conftest import client, message, proxy_v1, proxy_v2, syslog_copy

SITES = ("bl.test*3, bl2.test*2, wl.test=127.0.[0..255].[1..3]*-4, "
         "refused.test*3")


def door(smtpd, dns, **extra):
    s = {"proxy_trusted": "127.0.0.1", "dns_server": dns.server,
         "dnsbl_sites": SITES, "greet_wait": 0, "dnsbl_timeout": 3}
    s.update(extra)
    return smtpd(**s)


def session(srv, addr, v2=False, helo="client.test"):
    c = client(srv.port, (proxy_v2 if v2 else proxy_v1)(addr))
    r = c.reply()
    assert r.code == 220, r
    c.cmd("EHLO " + helo, 250)
    return c


def accepted(srv, addr, v2=False):
    """a session from addr whose RCPT to alice is accepted; then QUIT"""
    c = session(srv, addr, v2)
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("QUIT", 221)


# ---------------------------------------------------------------- DNSBL

def test_listed_client_refused_at_every_rcpt_but_postmaster(smtpd, dns):
    srv = door(smtpd, dns)
    c = session(srv, "192.0.2.7")
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    want = "554 5.7.1 Service unavailable; client [192.0.2.7] blocked using bl.test"
    assert c.cmd("RCPT TO:<alice@example.test>").text == want
    assert c.cmd("RCPT TO:<postmaster@example.test>").code == 250
    assert c.cmd("RCPT TO:<Postmaster>").code == 250
    assert c.cmd("RCPT TO:<bob@example.test>").text == want
    c.cmd("DATA", 354)
    c.send("Subject: to the postmaster\r\n\r\nhi\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT", 221)
    srv.wait_log(r"disconnect client=192\.0\.2\.7")
    lines = re.findall(r"^.* dnsbl client=192\.0\.2\.7 .*$", srv.log(), re.M)
    assert len(lines) == 1, lines
    assert "score=5 " in lines[0] and "sites=bl.test*3,bl2.test*2 " in lines[0], lines
    assert lines[0].endswith("cached=no result=listed")
    assert srv.log_count(r"rcpt client=192\.0\.2\.7 to=<[a-z]+@example\.test> result=rejected "
                     r"reply=\"554 5\.7\.1 Service unavailable; client \[192\.0\.2\.7\] "
                     r"blocked using bl\.test\"$") == 2
    # the confirmed PTR name is in the log and in Received:
    assert srv.log_count(r"rdns client=192\.0\.2\.7 name=mail\.client\.test$") == 1
    msgs = srv.messages("alice")      # postmaster@ and <Postmaster>: one mailbox
    assert len(msgs) in (1, 2)
    for msg in msgs:
        assert b"Received: from client.test (mail.client.test [192.0.2.7])\n" in msg


def test_allowlist_outweighs_blocklist(smtpd, dns):
    srv = door(smtpd, dns)
    c = session(srv, "192.0.2.8", v2=True, helo="relay.test")
    rr, end = message(c, "s@remote.test", ["alice@example.test"])
    assert rr[0].code == 250 and end.code == 250
    c.cmd("QUIT", 221)
    srv.wait_log(r"dnsbl client=192\.0\.2\.8 ")
    assert srv.log_count(r"dnsbl client=192\.0\.2\.8 score=-1 threshold=1 "
                     r"sites=bl\.test\*3,wl\.test\*-4 cached=no result=pass$") == 1
    (msg,) = srv.messages("alice")
    assert b"Received: from relay.test (relay.client.test [192.0.2.8])\n" in msg


def test_clean_client_and_unconfirmed_ptr(smtpd, dns):
    srv = door(smtpd, dns)
    c = session(srv, "192.0.2.9")
    rr, end = message(c, "s@remote.test", ["bob@example.test"])
    assert end.code == 250
    c.cmd("QUIT", 221)
    srv.wait_log(r"disconnect client=192\.0\.2\.9")
    assert srv.log_count(r"dnsbl client=192\.0\.2\.9 score=0 threshold=1 sites=- "
                     r"cached=no result=pass$") == 1
    # forged.client.test points elsewhere: not confirmed, so "unknown"
    assert srv.log_count(r"rdns client=192\.0\.2\.9 name=unknown$") == 1
    (msg,) = srv.messages("bob")
    assert b"Received: from client.test (unknown [192.0.2.9])\n" in msg
    assert b"forged" not in msg


def test_refused_answer_is_never_a_listing(smtpd, dns):
    srv = door(smtpd, dns)
    accepted(srv, "192.0.2.10")
    srv.wait_log(r"dnsbl client=192\.0\.2\.10 score")
    assert srv.log_count(r"dnsbl client=192\.0\.2\.10 site=refused\.test "
                     r"answer=127\.255\.255\.254 reason=not-a-listing$") == 1
    assert srv.log_count(r"dnsbl client=192\.0\.2\.10 score=0 .*result=pass$") == 1


def test_answer_outside_127_and_outside_filter(smtpd, dns):
    srv = door(smtpd, dns)
    accepted(srv, "192.0.2.12")          # bl.test answers 192.0.2.1
    c = session(srv, "192.0.2.11", v2=True)  # wl.test off-filter, bl2.test lists
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    assert c.cmd("RCPT TO:<alice@example.test>").text == (
        "554 5.7.1 Service unavailable; client [192.0.2.11] blocked using bl2.test")
    c.cmd("QUIT", 221)
    srv.wait_log(r"dnsbl client=192\.0\.2\.11 score")
    assert srv.log_count(r"dnsbl client=192\.0\.2\.12 site=bl\.test answer=192\.0\.2\.1 "
                     r"reason=not-a-listing$") == 1
    assert srv.log_count(r"dnsbl client=192\.0\.2\.12 score=0 .*result=pass$") == 1
    assert srv.log_count(r"dnsbl client=192\.0\.2\.11 score=2 threshold=1 "
                     r"sites=bl2\.test\*2 cached=no result=listed$") == 1


def test_ipv6_client_by_nibbles(smtpd, dns):
    srv = door(smtpd, dns)
    for v2 in (False, True):
        c = session(srv, "2001:db8::7", v2=v2)
        c.cmd("MAIL FROM:<s@remote.test>", 250)
        assert c.cmd("RCPT TO:<alice@example.test>").text == (
            "554 5.7.1 Service unavailable; client [2001:db8::7] blocked using bl.test")
        c.cmd("QUIT", 221)
    srv.wait_log(r"rdns client=2001:db8::7 name=v6\.client\.test$", count=2)
    assert srv.log_count(r"dnsbl client=2001:db8::7 score=3 .*result=listed$") == 2


def test_verdict_cache(smtpd, dns):
    """a client that comes back within dnsbl_cache_ttl costs no DNS query"""
    srv = door(smtpd, dns, workers=1, max_sessions=1)
    asked = lambda: dns.queries("7.2.0.192.bl.test")
    before = asked()
    for i in range(3):
        c = session(srv, "192.0.2.7")
        c.cmd("MAIL FROM:<s@remote.test>", 250)
        assert c.cmd("RCPT TO:<alice@example.test>").code == 554
        c.cmd("QUIT", 221)
        srv.wait_log(r"disconnect client=192\.0\.2\.7 ", count=i + 1)
    assert asked() - before == 1
    assert srv.log_count(r"dnsbl client=192\.0\.2\.7 score=5 .* cached=no result=listed$") == 1
    assert srv.log_count(r"dnsbl client=192\.0\.2\.7 score=5 .* cached=yes result=listed$") == 2
    assert srv.log_count(r"rdns client=192\.0\.2\.7 name=mail\.client\.test$") == 3
    # dnsbl_cache_ttl = 0: every session asks
    srv = door(smtpd, dns, workers=1, max_sessions=1, dnsbl_cache_ttl=0)
    before = asked()
    for i in range(2):
        session(srv, "192.0.2.7").cmd("QUIT", 221)
        srv.wait_log(r"disconnect client=192\.0\.2\.7 ", count=i + 1)
    assert asked() - before == 2


def test_threshold(smtpd, dns):
    srv = door(smtpd, dns, dnsbl_threshold=6)
    accepted(srv, "192.0.2.7")
    srv.wait_log(r"dnsbl client=192\.0\.2\.7 score=5 threshold=6 .*result=pass$")


def test_zone_that_never_answers_times_out(smtpd, dns):
    srv = door(smtpd, dns, dnsbl_sites="slow.test*5, bl.test*3", dnsbl_timeout=2)
    for addr, code in (("192.0.2.9", 250), ("192.0.2.7", 554)):
        t0 = time.time()
        c = client(srv.port, proxy_v1(addr))
        assert c.reply().code == 220
        took = time.time() - t0
        assert 1.5 <= took < 15, "greeting after %.1f s (dnsbl_timeout=2)" % took
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<s@remote.test>", 250)
        assert c.cmd("RCPT TO:<alice@example.test>").code == code
        c.cmd("QUIT", 221)
    assert srv.log_count(r"dnsbl client=192\.0\.2\.9 site=slow\.test reason=timeout$") == 1
    assert srv.log_count(r"dnsbl client=192\.0\.2\.7 score=3 .*sites=bl\.test\*3 "
                     r"cached=no result=listed$") == 1


def test_servfail_is_not_a_listing(smtpd, dns):
    # a timeout far above any load's delay: the bound below proves the
    # greeting did not wait for it without racing the machine's load
    srv = door(smtpd, dns, dnsbl_sites="servfail.test*5, bl.test*3", dnsbl_timeout=30)
    t0 = time.time()
    c = session(srv, "192.0.2.9")
    assert time.time() - t0 < 20, "the greeting waited for the timeout"
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("QUIT", 221)
    srv.wait_log(r"dnsbl client=192\.0\.2\.9 score=0 .*result=pass$")
    assert srv.log_count(r"dnsbl client=192\.0\.2\.9 site=servfail\.test reason=servfail$") == 1


def test_rdns_missing_weight(smtpd, dns):
    srv = door(smtpd, dns, dnsbl_sites="", rdns_missing_weight=1)
    c = session(srv, "192.0.2.9")
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    assert c.cmd("RCPT TO:<alice@example.test>").text == (
        "554 5.7.1 Service unavailable; client [192.0.2.9] blocked using rdns")
    c.cmd("QUIT", 221)
    accepted(srv, "192.0.2.8")
    srv.wait_log(r"dnsbl client=192\.0\.2\.8 score=0 .*result=pass$")
    assert srv.log_count(r"dnsbl client=192\.0\.2\.9 score=1 threshold=1 sites=rdns\*1 "
                     r"cached=no result=listed$") == 1


def test_trusted_network_skips_the_door(smtpd, dns):
    srv = door(smtpd, dns, trusted_networks="127.0.0.0/8, 192.0.2.0/28", greet_wait=30)
    t0 = time.time()
    c = session(srv, "192.0.2.7")               # listed, but trusted
    assert time.time() - t0 < 20, "trusted client's greeting was held"
    rr, end = message(c, "s@remote.test", ["alice@example.test"])
    assert end.code == 250
    c.cmd("QUIT", 221)
    srv.wait_log(r"disconnect client=192\.0\.2\.7")
    assert srv.log_count(r"dnsbl client=192\.0\.2\.7") == 0
    assert srv.log_count(r"rdns client=192\.0\.2\.7") == 0
    (msg,) = srv.messages("alice")
    assert b"Received: from client.test ([192.0.2.7])\n" in msg


def test_bad_settings_refused_at_start(tmp_path):
    SMTPD = S.smtpd_path()
    for bad in ("dnsbl_sites=bl.test*x", "trusted_networks=127.0.0.0/33",
                "dns_server=localhost", "dnsbl_sites=a..test"):
        p = subprocess.run([SMTPD, "-n", "-o", bad], capture_output=True, timeout=10)
        assert p.returncode != 0, bad
    p = subprocess.run([SMTPD, "-n", "-o", "dnsbl_sites=" + SITES], capture_output=True,
                       timeout=10)
    assert b"max_per_addr = 50\n" in p.stdout
    assert b"trusted_networks = 127.0.0.0/8, ::1/128\n" in p.stdout


# ---------------------------------------------------------------- pregreet

def test_pregreet_talker_refused_patient_client_served(smtpd, dns):
    srv = door(smtpd, dns, dnsbl_sites="", greet_wait=2)
    c = client(srv.port, proxy_v1("192.0.2.9") + b"EHLO hasty.test\r\n")
    r = c.reply()
    assert r.text == "554 5.5.1 Protocol error", r
    c.read_to_eof(5)
    srv.wait_log(r"refused client=192\.0\.2\.9 reason=pregreet after=")
    t0 = time.time()
    c = client(srv.port, proxy_v2("192.0.2.8"))
    r = c.reply()
    took = time.time() - t0
    assert r.text == "220 mx.test ESMTP smtpd" and 1.8 <= took < 15, (r, took)
    c.cmd("EHLO patient.test", 250)
    rr, end = message(c, "s@remote.test", ["alice@example.test"])
    assert end.code == 250
    c.cmd("QUIT", 221)
    assert srv.log_count(r"reason=pregreet") == 1


def test_pregreet_multiline_banner(smtpd, dns):
    srv = door(smtpd, dns, dnsbl_sites="", greet_wait=8, greet_multiline=1)
    c = client(srv.port, proxy_v1("192.0.2.9"))
    t0 = time.time()
    assert c.line() == b"220-mx.test ESMTP smtpd"
    assert time.time() - t0 < 6, "the teaser line waited for greet_wait"
    c.send("EHLO after.teaser\r\n")        # answers the first line: a bot
    assert c.line() == b"554 5.5.1 Protocol error"
    c.read_to_eof(5)
    c = client(srv.port, proxy_v1("192.0.2.8"))
    r = c.reply()
    assert r.lines == ["220-mx.test ESMTP smtpd", "220 mx.test ESMTP smtpd"], r
    c.cmd("EHLO patient.test", 250)
    c.cmd("QUIT", 221)
    srv.wait_log(r"refused client=192\.0\.2\.9 reason=pregreet")


# ---------------------------------------------------------------- supervisor

def test_fifty_parallel_trusted_connections_all_served(smtpd):
    srv = smtpd(max_per_addr=5, workers=4, max_sessions=100)
    clients = []
    for _ in range(50):
        c = client(srv.port)
        clients.append(c)
    for c in clients:
        assert c.reply().code == 220
    for c in clients:
        c.cmd("EHLO client.test", 250)
    for c in clients:
        c.cmd("QUIT", 221)
        c.close()
    assert srv.log_count(r"reason=connection-limit") == 0
    srv.wait_log(r"disconnect client=127\.0\.0\.1 ", count=50)


def test_max_per_addr_untrusted_proxy_address(smtpd, dns):
    srv = door(smtpd, dns, dnsbl_sites="", rdns=0, max_per_addr=3, workers=4)
    held = [session(srv, "203.0.113.5") for _ in range(3)]
    c = client(srv.port, proxy_v1("203.0.113.5", 4100))
    assert c.reply().text == "421 4.7.0 Too many connections, try again later"
    c.read_to_eof(5)
    srv.wait_log(r"refused client=203\.0\.113\.5 reason=connection-limit$")
    other = session(srv, "203.0.113.6")       # another address is not counted
    other.cmd("QUIT", 221)
    for h in held:
        h.cmd("QUIT", 221)


def test_killed_worker_frees_its_seat(smtpd, dns):
    """the admission board: a worker killed mid-session (its slot busy
    with the client's address) no longer counts once it is reaped"""
    srv = door(smtpd, dns, dnsbl_sites="", rdns=0, max_per_addr=1, workers=2)
    held = session(srv, "203.0.113.9")
    c = client(srv.port, proxy_v1("203.0.113.9"))
    assert c.reply().text == "421 4.7.0 Too many connections, try again later"
    c.read_to_eof(5)
    pid = int(srv.wait_log(r"smtpd\[(\d+)\]: \S+ connect client=203\.0\.113\.9")[0])
    os.kill(pid, signal.SIGKILL)
    srv.wait_log(r"worker pid=%d result=died" % pid)
    held.read_to_eof(5)
    again = session(srv, "203.0.113.9")     # admitted: the seat is free
    again.cmd("QUIT", 221)


def test_default_max_per_addr_is_50(smtpd, dns):
    srv = door(smtpd, dns, dnsbl_sites="", rdns=0, workers=4)
    held = [session(srv, "203.0.113.7") for _ in range(50)]
    c = client(srv.port, proxy_v1("203.0.113.7"))
    assert c.reply().text == "421 4.7.0 Too many connections, try again later"
    for h in held:
        h.cmd("QUIT", 221)


def test_connection_rate_limit(smtpd, dns):
    srv = door(smtpd, dns, dnsbl_sites="", rdns=0, conn_rate_limit=5)
    for i in range(5):
        c = session(srv, "203.0.113.9")
        c.cmd("QUIT", 221)
    c = client(srv.port, proxy_v2("203.0.113.9"))
    r = c.reply()
    assert r.code == 421 and r.text.startswith("421 4.7.0 "), r
    c.read_to_eof(5)
    srv.wait_log(r"refused client=203\.0\.113\.9 reason=rate-limit$")
    session(srv, "203.0.113.10").cmd("QUIT", 221)      # others still come in
    for i in range(8):                                  # trusted: no rate
        c = session(srv, "127.0.0.1")
        c.cmd("QUIT", 221)
    assert srv.log_count(r"reason=rate-limit") == 1


# ---------------------------------------------------------------- slow clients

def trickle(socks, got, stop, period):
    """one byte of "EHLO ..." per period to each socket, until it is
    closed; what each one received is collected in got[i]"""
    pos = 0
    text = b"EHLO slow.client.test.example.with.a.long.name" * 4
    closed = set()
    while not stop.is_set():
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                d = s.recv(4096, socket.MSG_DONTWAIT)
                got[i] += d
                if not d:
                    closed.add(i)
                continue
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
                continue
            try:
                s.send(text[pos % len(text):pos % len(text) + 1])
            except OSError:
                pass
        pos += 1
        stop.wait(period)


DEADLINE = r"lost client=127\.0\.0\.1 reason=session-deadline stage=command$"


def test_hundred_slow_clients_do_not_starve_a_normal_one(smtpd):
    n = 100
    srv = smtpd(session_timeout=4, cmd_timeout=60, max_sessions=n, workers=n,
                max_per_addr=n)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        socks.append(s)
    srv.wait_log(r"connect client=127\.0\.0\.1$", count=n, timeout=30)
    stop = threading.Event()
    got = [b""] * n
    t = threading.Thread(target=trickle, args=(socks, got, stop, 1.0), daemon=True)
    t.start()
    try:
        # it waits in the listen backlog until the slow ones reach their
        # session_timeout (4 s); its greeting within 10 s, not after them all
        c = client(srv.port, timeout=10)
        c.expect(220, what="the normal client's greeting", timeout=10)
        c.set_timeout(20)
        c.cmd("EHLO normal.test", 250)
        rr, end = message(c, "s@remote.test", ["alice@example.test"])
        assert end.code == 250
        c.cmd("QUIT", 221)
    finally:
        S.wait_until(lambda: srv.log_count(DEADLINE) >= n, 20)
        time.sleep(1.5)         # one more round of the trickle collects the replies
        stop.set()
        t.join(5)
        for s in socks:
            s.close()
    assert srv.log_count(DEADLINE) == n
    # no EHLO finished, so no enhanced status code (RFC 2034)
    want = b"421 mx.test Session time limit exceeded, closing connection\r\n"
    assert sum(1 for g in got if g.startswith(b"220 ") and g.endswith(want)) == n, got[:3]


def test_data_rate_too_low(smtpd):
    srv = smtpd(min_data_rate=1000, data_timeout=2, cmd_timeout=30)
    c = client(srv.port)
    c.reply()
    c.cmd("EHLO slow.test", 250)
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    t0 = time.time()
    r = None
    for ch in b"Subject: slow\r\n\r\n" + b"x" * 100:
        try:
            c.send(bytes([ch]))
        except OSError:
            break
        c.sock.settimeout(0.4)
        try:
            d = c.sock.recv(4096)
            if d:
                c.buf += d
                break
        except socket.timeout:
            pass
    r = c.reply(timeout=10)
    took = time.time() - t0
    assert r.text == "421 4.4.2 mx.test Data rate too low, closing connection", r
    assert 1.5 <= took < 20, took
    srv.wait_log(r"lost client=127\.0\.0\.1 reason=data-rate stage=data$")
    assert srv.messages("alice") == []
    # BDAT: a chunk that trickles in is cut off the same way
    c = client(srv.port)
    c.reply()
    c.cmd("EHLO slow.test", 250)
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.send("BDAT 100 LAST\r\n")
    for i in range(20):
        try:
            c.send(b"x")
        except OSError:
            break
        time.sleep(0.3)
    assert c.reply(timeout=10).text == "421 4.4.2 mx.test Data rate too low, closing connection"
    # a normal client at full speed is not affected
    c = client(srv.port)
    c.reply()
    c.cmd("EHLO fast.test", 250)
    rr, end = message(c, "s@remote.test", ["alice@example.test"],
                      "Subject: fast\r\n\r\n" + ("y" * 98 + "\r\n") * 2000)
    assert end.code == 250
    srv.wait_log(r"reason=data-rate", count=2)


# ---------------------------------------------------------------- fail2ban

def test_fail2ban_regex_counts_the_suites_own_log(smtpd, dns):
    """events fail2ban must count, made here; then the real fail2ban-regex"""
    srv = door(smtpd, dns, greet_wait=1, conn_rate_limit=3, error_limit=3)
    # 1, 2: two pregreet talkers
    for a in ("198.51.100.1", "198.51.100.2"):
        c = client(srv.port, proxy_v1(a) + b"HELO x\r\n")
        assert c.reply().code == 554
    # 3: a DNSBL listing (its RCPT refusals are not counted again)
    c = session(srv, "192.0.2.7")
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    assert c.cmd("RCPT TO:<alice@example.test>").code == 554
    c.cmd("QUIT", 221)
    # 4, 5: two unknown recipients; 6: too many errors (error_limit=3)
    c = session(srv, "198.51.100.3")
    c.cmd("MAIL FROM:<s@remote.test>", 250)
    assert c.cmd("RCPT TO:<nobody1@example.test>").code == 550
    assert c.cmd("RCPT TO:<nobody2@example.test>").code == 550
    c.send("BOGUS\r\n")
    assert c.reply().code == 500
    assert c.reply().text.startswith("421 4.7.0 mx.test Too many errors")
    # 7: a rate refusal (the 4th connection this minute)
    for _ in range(3):
        session(srv, "198.51.100.4").cmd("QUIT", 221)
    c = client(srv.port, proxy_v1("198.51.100.4"))
    assert c.reply().code == 421
    # a clean client and a trusted one: nothing to count
    session(srv, "192.0.2.9").cmd("QUIT", 221)
    session(srv, "127.0.0.1").cmd("QUIT", 221)
    srv.wait_log(r"refused client=198\.51\.100\.4 reason=rate-limit")
    srv.wait_log(r"disconnect client=127\.0\.0\.1 ")
    srv.stop_supervisor(srv.sup)
    # fail2ban's own common.conf beside ours, as in /etc/fail2ban/filter.d
    fd = os.path.join(srv.dir, "fail2ban", "filter.d")
    os.makedirs(fd)
    shutil.copy("/etc/fail2ban/filter.d/common.conf", fd)
    shutil.copy(os.path.join(S.ETC_DIR, "fail2ban", "filter.d", "smtpd.conf"), fd)
    filt = os.path.join(fd, "smtpd.conf")
    p = subprocess.run(["fail2ban-regex", "--print-all-matched", syslog_copy(srv), filt],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"^Failregex: (\d+) total", p.stdout, re.M)
    assert m, p.stdout
    assert int(m.group(1)) == 7, p.stdout
    for host in ("198.51.100.1", "198.51.100.2", "192.0.2.7", "198.51.100.3",
                 "198.51.100.4"):
        assert host in p.stdout
    assert "192.0.2.9" not in p.stdout.split("Lines:")[0].split("|- Matched")[-1]
