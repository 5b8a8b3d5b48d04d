# SPDX-License-Identifier: MIT
"""Servers for the Python client's tests (test_python_client.py):

FakeDaemon: a Unix socket server in a thread that speaks the line protocol
with a handler the test supplies. It answers a received chunk of requests
with one blocking sendall() before reading on, so, like securelinkd with its
bounded output buffer, it stops reading while the client does not read.

The real securelinkd and nginx are daemonsite's (open_daemon()).
"""

import os
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SECURELINK_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_DIR, "contrib", "python"))

# Upper bound for a fake server's threads to end; only reached when
# something is broken.
TIMEOUT = 15.0


class FakeConn:
    def __init__(self, sock):
        self.sock = sock
        self.lines = []  # every request line received, without LF
        self.max_lines_per_recv = 0


class FakeDaemon:
    """handler(line) returns the answer line (without LF), or None to close
    the connection at that request without answering it, or HANG to leave
    it unanswered and stop answering on that connection."""

    HANG = object()

    class Cut:
        """An answer to send only in part, without its LF, before closing
        the connection (a daemon that died while writing it)."""

        def __init__(self, text):
            self.text = text

    def __init__(self, path, handler):
        self.path = path
        self.handler = handler
        self.conns = []
        self._threads = []
        self._lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def lines(self):
        return [line for c in self.conns for line in c.lines]

    def _accept(self):
        while True:
            try:
                s, _ = self.listener.accept()
            except OSError:  # shutdown() by close()
                return
            c = FakeConn(s)
            with self._lock:
                self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, c):
        buf = b""
        hung = False
        try:
            while True:
                data = c.sock.recv(65536)
                if not data:
                    return
                buf += data
                *complete, buf = buf.split(b"\n")
                c.max_lines_per_recv = max(c.max_lines_per_recv, len(complete))
                out = []
                for raw in complete:
                    line = raw.decode("utf-8", errors="surrogateescape")
                    c.lines.append(line)
                    if hung:
                        continue
                    answer = self.handler(line)
                    if answer is None:
                        c.sock.sendall("".join(out).encode())
                        return
                    if isinstance(answer, FakeDaemon.Cut):
                        c.sock.sendall(("".join(out) + answer.text).encode())
                        return
                    if answer is FakeDaemon.HANG:
                        hung = True
                        continue
                    out.append(answer + "\n")
                if out:
                    c.sock.sendall("".join(out).encode())
        except OSError:
            return
        finally:
            c.sock.close()

    def drop_connections(self):
        """Closes every connection from the server side, as securelinkd does
        after idle_timeout."""
        with self._lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(TIMEOUT)

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self._accepter.join(TIMEOUT)
        self.drop_connections()


def echo_handler(line):
    """A signer that answers SIGN with the target and a fixed token, so a
    test can see which request an answer belongs to."""
    verb, _, rest = line.partition(" ")
    if verb == "PING":
        return "OK pong"
    if verb == "SIGN":
        target = rest.split(" ")[0]
        return f"OK {target}?token=t&expires=1&kid=1"
    return "ERR unknown-verb no such verb"
