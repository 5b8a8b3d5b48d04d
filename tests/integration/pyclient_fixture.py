# SPDX-License-Identifier: MIT
"""Servers for the Python client's tests (test_python_client.py):

FakeDaemon: a Unix socket server in a thread that speaks the line protocol
with a handler the test supplies. It answers a received chunk of requests
with one blocking sendall() before reading on, so, like securelinkd with its
bounded output buffer, it stops reading while the client does not read.

RealDaemon: the real securelinkd and a real nginx in a temp directory, the
daemon first (nginx includes the keys file it writes), ready on sd_notify's
READY=1 and nginx's own start-up, never on sleeps.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from nginxsite import (NGINX, add_media_file, free_port, http_get, nginx_conf_head, quit_nginx,
                       start_nginx)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SECURELINK_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_DIR, "contrib", "python"))

# Upper bound for start-up and shutdown; only reached when something is broken.
TIMEOUT = 15.0


def daemon_binary():
    build = os.environ.get("SECURELINK_BUILD_DIR") or os.path.abspath("build-py")
    return os.path.join(build, "daemon", "securelinkd")


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


class RealDaemon:
    """securelinkd + nginx in a private directory; private_prefixes =
    private/ below media_url /media/."""

    def __init__(self, binary):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="securelink-py-")
        os.chmod(self.dir, 0o755)  # nginx's workers must reach the media
        self.media = os.path.join(self.dir, "www", "media")
        self.socket = os.path.join(self.dir, "sl.sock")
        self.conf = os.path.join(self.dir, "securelinkd.conf")
        self.nginx_conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.pid_file = os.path.join(self.dir, "nginx.pid")
        self.daemon_log = os.path.join(self.dir, "securelinkd.log")
        self.port = None
        self.proc = None
        self.nginx_pid = None
        for d in (self.media, os.path.join(self.dir, "snippets"),
                  os.path.join(self.dir, "state"), os.path.join(self.dir, "tmp")):
            os.makedirs(d, exist_ok=True)
        for d in (os.path.dirname(self.media), self.media):
            os.chmod(d, 0o755)
        self._write_confs()

    def _write_confs(self):
        d = self.dir
        nginx_cmd = f"{NGINX} -t -q -p {d}/ -c {self.nginx_conf} -e {self.error_log}"
        with open(self.conf, "w") as f:
            f.write(f"""[daemon]
socket = {self.socket}
state_directory = {d}/state
[keys]
activation_delay = 100ms
[links]
media_url = /media/
private_prefixes = private/
[nginx]
keys_file = {d}/snippets/keys.conf
locations_file = {d}/snippets/locations.conf
media_root = {self.media}/
test_command = {nginx_cmd}
reload = pidfile:{self.pid_file}
""")
        self.port = free_port()
        tmp = os.path.join(d, "tmp")
        with open(self.nginx_conf, "w") as f:
            f.write(f"""
{nginx_conf_head(self.pid_file, self.error_log, tmp)}
    include {d}/snippets/keys.conf;
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        root {os.path.dirname(self.media)};
        include {d}/snippets/locations.conf;
    }}
}}
""")

    def log_text(self):
        out = []
        for p in (self.daemon_log, self.error_log):
            try:
                with open(p, errors="replace") as f:
                    out.append(f"--- {os.path.basename(p)}\n" + f.read()[-3000:])
            except OSError:
                pass
        return "\n".join(out)

    def start_daemon(self):
        """Starts securelinkd and returns once it sent READY=1."""
        notify_path = os.path.join(self.dir, "notify.sock")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            notify.bind(notify_path)
            env = dict(os.environ, NOTIFY_SOCKET=notify_path)
            with open(self.daemon_log, "ab") as log:
                self.proc = subprocess.Popen([self.binary, "-c", self.conf], env=env,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            deadline = time.monotonic() + TIMEOUT
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("securelinkd sent no READY=1\n" + self.log_text())
                # Short waits only to notice an early exit of the daemon.
                notify.settimeout(min(left, 0.2))
                try:
                    msg = notify.recv(4096).decode(errors="replace")
                except socket.timeout:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"securelinkd exited with {self.proc.returncode}\n"
                                           + self.log_text())
                    continue
                if "READY=1" in msg.split("\n"):
                    return
        finally:
            notify.close()

    def stop_daemon(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise RuntimeError("securelinkd did not stop on SIGTERM")

    def start_nginx(self):
        self.nginx_pid = start_nginx(self.dir, self.nginx_conf, self.error_log, self.pid_file,
                                     self.log_text)

    def stop_nginx(self):
        pid, self.nginx_pid = self.nginx_pid, None
        if pid is not None:
            quit_nginx(pid, TIMEOUT)

    def start(self):
        # The daemon first: nginx's config includes the keys file it writes.
        self.start_daemon()
        self.start_nginx()

    def stop(self):
        errors = []
        for f in (self.stop_nginx, self.stop_daemon):
            try:
                f()
            except Exception as e:  # stop the other one too
                errors.append(e)
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]

    def add_file(self, relpath, data=None):
        """Creates media/<relpath> readable by nginx's workers; returns its content."""
        return add_media_file(self.media, relpath, data)

    def get(self, url):
        """GETs a path-and-query exactly as written. Returns (status, body)."""
        return http_get(url, self.port)
