"""test_deliverer_fds.py - finding 4: the root deliverer held the client's socket.

Under inetd the connection is on fds 0, 1 and 2.  The deliverer (root)
must hold no descriptor of the connection and nothing inherited above
its own channel: fd 2 becomes /dev/null when it is a socket, and every
other descriptor is closed (close_range), also ones above 63.
"""
import os
import socket
import subprocess

from conftest import SMTPD, TIMEOUT, Client, wait_for


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


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
    ours, theirs = socket.socketpair()
    spare = os.open("/dev/zero", os.O_RDONLY)
    os.dup2(spare, 70)                        # inherited, above 63
    os.close(spare)
    try:
        p = subprocess.Popen(world.argv(log="syslog"), stdin=theirs, stdout=theirs, stderr=theirs,
                             pass_fds=(70,), env=dict(os.environ, TCPREMOTEIP="192.0.2.7"))
    finally:
        os.close(70)
    theirs.close()
    world.procs.append(p)
    c = Client(ours)
    assert c.reply().startswith("220")
    conn = fd_links(p.pid)[0]
    assert conn.startswith("socket:")
    assert wait_for(lambda: children(p.pid), timeout=TIMEOUT)
    (deliverer,) = children(p.pid)
    links = fd_links(deliverer)
    assert conn not in links.values(), "deliverer holds the client socket: %r" % links
    assert links[2] == "/dev/null", links
    extra = [l for n, l in links.items() if n > 2]
    assert len(extra) == 1 and extra[0].startswith("socket:"), links   # its channel
    c.cmd("QUIT", 221)
    p.wait(timeout=TIMEOUT)
