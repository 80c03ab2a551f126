"""test_deliverer_fds.py - finding 4: the root deliverer held the client's socket.

Under inetd the connection is on fds 0, 1 and 2.  The deliverer (root)
must hold no descriptor of the connection and nothing inherited above
its own channel: fd 2 becomes /dev/null when it is a socket, and every
other descriptor is closed (close_range), also ones above 63.
"""
import os

import smtptest as S


def blocked_in_a_call(pid):
    """pid sleeps inside a system call (a fresh deliverer: waiting for
    its first request, its start-up done)"""
    st = S.proc_stat(pid)
    try:
        with open("/proc/%d/syscall" % pid) as f:
            call = f.read().split()[0]
    except (OSError, IndexError):
        return False
    return st is not None and st[0] == "S" and call not in ("running", "-1")


def fd_links(pid):
    base = "/proc/%d/fd" % pid
    links = {}
    for n in os.listdir(base):
        try:
            links[int(n)] = os.readlink(os.path.join(base, n))
        except OSError:
            pass
    return links


def test_deliverer_holds_no_connection_descriptor(world):
    spare = os.open("/dev/zero", os.O_RDONLY)
    os.dup2(spare, 70)                        # inherited, above 63
    os.close(spare)
    try:
        c, p = world.pair_session({"log": "syslog"}, inetd_stderr=True, pass_fds=(70,))
    finally:
        os.close(70)
    c.greeting()
    conn = fd_links(p.pid)[0]
    assert conn.startswith("socket:")
    assert S.wait_until(lambda: S.children(p.pid), S.TIMEOUT)
    (deliverer,) = S.children(p.pid)
    assert S.wait_until(lambda: blocked_in_a_call(deliverer), S.TIMEOUT)
    links = fd_links(deliverer)
    assert conn not in links.values(), "deliverer holds the client socket: %r" % links
    assert links[2] == "/dev/null", links
    extra = [l for n, l in links.items() if n > 2]
    assert len(extra) == 1 and extra[0].startswith("socket:"), links   # its channel
    c.cmd("QUIT", 221)
    p.wait(timeout=S.TIMEOUT)
