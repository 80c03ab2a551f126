"""fakes.py - a fake milter and a fake policy server on loopback, ONLY for
what the real daemons never do: malformed packets, stalls, protocol
errors, and the few protocol features (insert/change header, quarantine,
discard, per-recipient replycode) no stock filter can be made to send.
Each records what it received; every wait is bounded."""
import socket
import struct
import threading
import time


def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


class Server:
    """accept loop in a thread; handle(conn, index) per connection"""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stop_ev = threading.Event()
        self.connections = 0
        self.seen = []          # (connection index, command, data)
        self.threads = []
        t = threading.Thread(target=self._loop, daemon=True)
        t.start()
        self.threads.append(t)

    def _loop(self):
        while not self.stop_ev.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            c.settimeout(20)
            idx = self.connections
            self.connections += 1
            t = threading.Thread(target=self._run, args=(c, idx), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, c, idx):
        try:
            self.handle(c, idx)
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    @staticmethod
    def perform(c, steps):
        """each step in turn: bytes are sent, a number stalls that many
        seconds, "close" ends the connection (False)"""
        for p in steps:
            if p == "close":
                return False
            if isinstance(p, (int, float)):
                time.sleep(p)
            else:
                c.sendall(p)
        return True

    def stop(self):
        self.stop_ev.set()
        self.lsock.close()
        for t in self.threads:
            t.join(timeout=5)


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise ValueError("eof")
        b += chunk
    return b


class FakeMilter(Server):
    """behaviour: a function (milter, idx, cmd, data) -> list of reply
    packets (bytes), or None for the default: negotiate everything
    offered with no skips, 'c' to every stage, 'a' at end of message"""

    def __init__(self, behaviour=None, actions=0x31, proto=0):
        self.behaviour = behaviour or (lambda m, i, c, d: None)
        self.actions, self.proto = actions, proto
        super().__init__()
        self.spec = "inet:127.0.0.1:%d" % self.port

    def handle(self, c, idx):
        while True:
            (n,) = struct.unpack(">I", recv_exact(c, 4))
            body = recv_exact(c, n)
            cmd, data = body[:1], body[1:]
            self.seen.append((idx, cmd, data))
            out = self.behaviour(self, idx, cmd, data)
            if out is None:
                out = self.default(cmd)
            if not self.perform(c, out):
                return
            if cmd == b"Q":
                return

    def default(self, cmd):
        if cmd == b"O":
            return [packet(b"O", struct.pack(">III", 6, self.actions, self.proto))]
        if cmd in (b"D", b"A", b"Q"):
            return []
        if cmd == b"E":
            return [packet(b"a")]
        return [packet(b"c")]

    def commands(self, idx=None):
        return [c for i, c, _d in self.seen if idx is None or i == idx]


class FakePolicy(Server):
    """answer: a function (server, idx, request dict) -> bytes to send,
    or "close" / a number (seconds to stall)"""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        super().__init__()
        self.spec = "inet:127.0.0.1:%d" % self.port

    def handle(self, c, idx):
        buf = b""
        while True:
            while b"\n\n" not in buf:
                chunk = c.recv(4096)
                if not chunk:
                    return
                buf += chunk
            req, buf = buf.split(b"\n\n", 1)
            attrs = dict(l.split("=", 1) for l in req.decode().split("\n") if "=" in l)
            self.requests.append((idx, attrs))
            out = self.answer(self, idx, attrs)
            if not isinstance(out, bytes):
                self.perform(c, [out])      # a stall, or "close"; then it hangs up
                return
            c.sendall(out)
