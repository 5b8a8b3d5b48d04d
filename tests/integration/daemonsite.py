# SPDX-License-Identifier: MIT
"""The real securelinkd and a real nginx in a private temp directory, for
test_daemon.py.

Readiness signals, never sleeps: the daemon is ready when it sends READY=1 on
the NOTIFY_SOCKET this module binds (and keeps draining for the daemon's whole
life, so the daemon's STATUS=/RELOADING=1 notifications are seen too and can
never fill the socket's queue); nginx is ready when `nginx` (daemon on)
returns; a reload is done when the master's worker pids changed; a stop is
done when the process is gone.

The protocol is spoken with raw lines over socket.socket, so the tests see the
wire exactly. Every answer line any client got is kept (Daemon.answers), so a
test can check that no secret ever left the daemon.

Environment: SECURELINK_BUILD_DIR (default ./build).
"""

import base64
import grp
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

from nginxsite import (NGINX, add_media_file, free_port, http_get, master_children,
                       nginx_conf_head, quit_nginx, start_nginx)

# Datagrams starting with this are Daemon._sync_notify()'s markers.
_SYNC = "X-SECURELINK-TEST-SYNC="

# Upper bound for anything that has a signal of its own (READY=1, an answer,
# a reload, an exit); only reached when something is broken.
TIMEOUT = 20.0
POLL = 0.02
# Upper bound for a retry the daemon makes by itself after a failure (nginx's
# test failing, a full disk, stray workers): its backoff doubles from 1 s up
# to RETRY_MAX = 60 s (daemon/manager.c), and a slow run (sanitizers, busy
# cores) sees more failed attempts before the fault is gone, so the next one
# may be a minute away.
RETRY_TIMEOUT = 60 + TIMEOUT


def build_dir():
    return os.environ.get("SECURELINK_BUILD_DIR") or os.path.abspath("build")


def daemon_binary():
    return os.path.join(build_dir(), "daemon", "securelinkd")


def shim_lib():
    """testshim.c, LD_PRELOADed by test_clock.py and test_signals.py."""
    return os.path.join(build_dir(), "tests", "integration", "libsecurelink-test-shim.so")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(expires, uri, secret, ip=""):
    """What nginx computes for secure_link_md5
    "$secure_link_expires$uri[$remote_addr] $secret": hashlib's MD5 over the
    decoded path (str, or its bytes), as base64url without padding."""
    if isinstance(uri, str):
        uri = uri.encode()
    return b64url(hashlib.md5(str(expires).encode() + uri + ip.encode() + b" "
                              + secret.encode()).digest())


def query(url):
    """A link's query parameters, as a dict."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def kid_of(url):
    return int(query(url)["kid"])


ERR_RE = re.compile(r"ERR ([a-z-]+) (.+)")


def err(answer):
    """(code, message) of an ERR answer; fails the test for anything else."""
    m = ERR_RE.fullmatch(answer)
    assert m, f"not an ERR line with a message: {answer!r}"
    return m.group(1), m.group(2)


def err_code(answer):
    return err(answer)[0]


class DaemonExited(Exception):
    pass


class Client:
    """One connection to the daemon's socket, raw protocol lines."""

    def __init__(self, daemon, timeout=TIMEOUT):
        self.daemon = daemon
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(daemon.socket)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_line(self):
        """The next answer line without LF; None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                rest, self.buf = self.buf, b""
                if rest:
                    self.daemon.answers.append(rest.decode(errors="replace"))
                    raise AssertionError(f"unterminated answer before EOF: {rest!r}")
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode("utf-8", errors="replace")
        self.daemon.answers.append(text)
        return text

    def at_eof(self):
        """True when the daemon closed the connection (nothing more to read)."""
        if self.buf:
            return False
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def ask(self, line):
        self.send(line + "\n")
        answer = self.read_line()
        assert answer is not None, f"the daemon closed the connection on {line[:80]!r}"
        return answer


class Daemon:
    """securelinkd + nginx in directory d; private_prefixes = private/ below
    media_url /media/ unless options say otherwise.

    options: {"section": {"key": "value"}} merged over the defaults below."""

    def __init__(self, d, options=None):
        self.dir = d
        os.chmod(d, 0o755)  # nginx's workers must reach the media
        self.socket = os.path.join(d, "sl.sock")
        self.conf = os.path.join(d, "securelinkd.conf")
        self.nginx_conf = os.path.join(d, "nginx.conf")
        self.extra_conf = os.path.join(d, "extra.conf")  # included in http{}; tests break it
        self.error_log = os.path.join(d, "error.log")
        self.pid_file = os.path.join(d, "nginx.pid")
        self.log = os.path.join(d, "securelinkd.log")
        self.state = os.path.join(d, "state")
        self.keyring = os.path.join(self.state, "keyring")
        self.keyring_prev = os.path.join(self.state, "keyring.prev")
        self.keys_file = os.path.join(d, "snippets", "keys.conf")
        self.locations_file = os.path.join(d, "snippets", "locations.conf")
        self.www = os.path.join(d, "www")
        self.media = os.path.join(self.www, "media")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        # Prepended to the daemon's command line, e.g. setpriv to run it as
        # another user (a wrapper that execs keeps the daemon's pid).
        self.wrapper = []
        self.nginx_pid = None
        self.answers = []       # every answer line any client read
        self.notifications = []  # every sd_notify datagram, in order
        self.seen_secrets = set()
        self._cond = threading.Condition()
        self._notify_sock = None
        self._notify_thread = None
        self._stop_notify = False
        self._sync_id = self._synced = 0
        for sub in (self.media, os.path.dirname(self.keys_file), self.state,
                    os.path.join(d, "tmp")):
            os.makedirs(sub, exist_ok=True)
        for sub in (self.www, self.media):
            os.chmod(sub, 0o755)
        with open(self.extra_conf, "w") as f:
            f.write("# tests put directives here\n")
        self.options = self.default_options()
        options = dict(options or {})
        # Not securelinkd's: whether nginx loads the njs module (hmac-sha256).
        self.njs = options.pop("njs", False) or \
            options.get("links", {}).get("algorithm") == "hmac-sha256"
        for section, keys in options.items():
            self.options.setdefault(section, {}).update(keys)
        self.write_conf()
        self.write_nginx_conf()

    # configuration

    def default_options(self):
        d = self.dir
        if os.geteuid() == 0:
            admin = "securelink-admin"
        else:
            # Not root: our own group makes us admin (ROTATE, IMPORT).
            admin = grp.getgrgid(os.getegid()).gr_name
        return {
            "daemon": {"socket": self.socket, "state_directory": self.state,
                       "admin_group": admin},
            # Not the 2s default, to keep the tests quick: the daemon
            # confirms a reload only once nginx's old workers stopped
            # accepting connections, so a short delay is enough here.
            "keys": {"activation_delay": "100ms"},
            "links": {"base_url": self.base_url, "media_url": "/media/",
                      "private_prefixes": "private/"},
            "nginx": {
                "keys_file": self.keys_file,
                "locations_file": self.locations_file,
                "media_root": self.media + "/",
                "test_command": f"{NGINX} -t -q -p {d}/ -c {self.nginx_conf} -e {self.error_log}",
                "reload": f"pidfile:{self.pid_file}",
                # The enforcement probes have their own tests
                # (test_probes.py); elsewhere they would only add requests.
                "probe": "no",
            },
        }

    def config_text(self, options=None):
        options = options or self.options
        out = []
        for section, keys in options.items():
            out.append(f"[{section}]")
            out += [f"{k} = {v}" for k, v in keys.items() if v is not None]
        return "\n".join(out) + "\n"

    def write_conf(self, options=None):
        with open(self.conf, "w") as f:
            f.write(self.config_text(options))

    def set_option(self, section, key, value):
        """Changes one key in securelinkd.conf (for a restart or SIGHUP)."""
        self.options.setdefault(section, {})[key] = value
        self.write_conf()

    def write_nginx_conf(self, http_extra="", server_extra=""):
        """nginx.conf: the snippets and extra.conf in http {}, one server;
        http_extra and server_extra are more directives for each block."""
        d = self.dir
        tmp = os.path.join(d, "tmp")
        with open(self.nginx_conf, "w") as f:
            f.write(f"""
{nginx_conf_head(self.pid_file, self.error_log, tmp, self.njs)}
    {http_extra}
    include {self.keys_file};
    include {self.extra_conf};
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        root {self.www};
        {server_extra}
        include {self.locations_file};
    }}
}}
""")

    def add_file(self, relpath, data=None):
        """Creates media/<relpath> readable by nginx's workers; returns its content."""
        return add_media_file(self.media, relpath, data)

    # logs

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def diagnostics(self):
        out = ["--- securelinkd.log\n" + self.log_text()[-4000:]]
        try:
            with open(self.error_log, errors="replace") as f:
                out.append("--- nginx error.log\n" + f.read()[-2000:])
        except OSError:
            pass
        return "\n".join(out)

    # sd_notify

    def _notify_loop(self):
        sock = self._notify_sock
        while not self._stop_notify:
            try:
                msg = sock.recv(8192).decode(errors="replace")
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                if msg.startswith(_SYNC):
                    self._synced = int(msg[len(_SYNC):])
                else:
                    self.notifications.append(msg)
                self._cond.notify_all()

    def _sync_notify(self):
        """Returns once every datagram sent to the notify socket so far is
        in self.notifications: a marker sent now queues behind them (a
        datagram socket keeps their order), so when the thread has seen it,
        it has seen them. Without this, a test that checks for STOPPING=1
        right after the exit races the thread that records it."""
        if not self._notify_sock:
            return
        self._sync_id += 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(f"{_SYNC}{self._sync_id}".encode(), self._notify_sock.getsockname())
        with self._cond:
            if not self._cond.wait_for(lambda: self._synced >= self._sync_id, TIMEOUT):
                raise AssertionError("the sd_notify thread is stuck")

    def _open_notify(self):
        if self._notify_sock:
            return
        path = os.path.join(self.dir, "notify.sock")
        self._notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify_sock.bind(path)
        # Only so the thread notices the end; notifications wake it at once.
        self._notify_sock.settimeout(0.2)
        self._notify_thread = threading.Thread(target=self._notify_loop, daemon=True)
        self._notify_thread.start()

    def _close_notify(self):
        if not self._notify_sock:
            return
        self._stop_notify = True
        self._notify_thread.join(TIMEOUT)
        self._notify_sock.close()
        self._notify_sock = None

    def notifications_since(self, mark=0):
        """Every sd_notify datagram the daemon has sent so far from position
        mark on: the recording thread is synced first, so one sent just
        before this call is in the list."""
        self._sync_notify()
        with self._cond:
            return list(self.notifications[mark:])

    def notify_mark(self):
        """A position in the notification stream, for wait_notify(after=)."""
        with self._cond:
            return len(self.notifications)

    def wait_notify(self, field, after=0, timeout=TIMEOUT, prefix=False):
        """Waits for a datagram holding the line `field` (e.g. "READY=1"),
        or with prefix=True a line starting with it, among those after
        position `after`; returns its position + 1. Raises DaemonExited
        when the daemon exits first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(after, len(self.notifications)):
                    lines = self.notifications[i].split("\n")
                    if field in lines or (prefix and any(x.startswith(field) for x in lines)):
                        return i + 1
                if self.proc is not None and self.proc.poll() is not None:
                    raise DaemonExited(f"securelinkd exited with {self.proc.returncode} "
                                       f"before {field}\n" + self.diagnostics())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {field} from securelinkd in {timeout}s\n"
                                         + self.diagnostics())
                # The short wait only notices an exit; a datagram wakes us.
                self._cond.wait(min(left, 0.1))

    # the daemon

    def spawn(self, args=None):
        """Starts securelinkd without waiting; returns the Popen."""
        self._open_notify()
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(self.dir, "notify.sock"))
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.wrapper + [daemon_binary(), "-c", self.conf]
                                         + (args or []),
                                         env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log)
        return self.proc

    def start(self):
        """Starts securelinkd and returns once it sent READY=1 and has tested
        and reloaded nginx with the files on disk (which it does at every
        start), or reported why it could not: STATUS nginx.pending is the
        daemon's own word for that; READY=1 cannot wait for it (a reload of
        nginx.service waits for securelinkd's start job)."""
        mark = self.notify_mark()
        self.spawn()
        self.wait_notify("READY=1", after=mark)
        self.wait_status(lambda s: not s["nginx"]["pending"] or not s["nginx"]["ok"],
                         what="nginx tested and reloaded after the start")

    def stop(self, sig=signal.SIGTERM):
        """Stops securelinkd with sig; returns its exit status."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
        try:
            status = p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise RuntimeError(f"securelinkd did not stop on {sig!r}\n" + self.diagnostics())
        self._sync_notify()  # its last words (STOPPING=1) are recorded
        return status

    def restart(self):
        assert self.stop() == 0
        self.start()

    def sighup(self):
        """Sends SIGHUP and returns once the daemon said READY=1 after its
        RELOADING=1, i.e. it has re-read (or refused) the config."""
        mark = self.notify_mark()
        self.proc.send_signal(signal.SIGHUP)
        after = self.wait_notify("RELOADING=1", after=mark)
        self.wait_notify("READY=1", after=after - 1)

    # the protocol

    def connect(self):
        return Client(self)

    def ask(self, line):
        with self.connect() as c:
            return c.ask(line)

    def status(self):
        answer = self.ask("STATUS")
        assert answer.startswith("OK {"), answer
        return json.loads(answer[3:])

    def sign(self, target, *opts):
        answer = self.ask(" ".join(["SIGN", target, *opts]))
        assert answer.startswith("OK "), answer
        return answer[3:]

    def rotate(self, revoke=False):
        self.keys()  # remember the current secrets (a revoke removes them)
        answer = self.ask("ROTATE revoke" if revoke else "ROTATE")
        m = re.fullmatch(r"OK kid=(\d+)", answer)
        assert m, answer + "\n" + self.diagnostics()
        self.keys()  # remember the new secret (a revoke removes older ones)
        return int(m.group(1))

    def wait_active(self):
        """Returns the first key's kid once it is active. At a first start
        READY=1 comes before that (nginx has to have the key first); a SIGN
        is held until then, so its answer is the signal."""
        answer = self.ask("SIGN /outside-media-url ttl=1")
        assert answer.startswith("OK "), answer
        return self.status()["active_kid"]

    def wait_status(self, predicate, timeout=TIMEOUT, what="the expected STATUS"):
        """Polls STATUS until predicate(status) is true: only for what the
        daemon does on its own schedule and signals nowhere else."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if predicate(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last STATUS: {st}\n"
                                     + self.diagnostics())
            time.sleep(0.05)

    # files

    def keys(self):
        """The keys map on disk: (default, {kid: secret}). Remembers every
        secret seen, for the no-secrets-leak checks."""
        with open(self.keys_file) as f:
            text = f.read()
        default = re.search(r'^\s*default\s+"([^"]*)";', text, re.M).group(1)
        kids = {int(k): v for k, v in re.findall(r'^\s*"(\d+)"\s+"([^"]*)";', text, re.M)}
        self.seen_secrets.add(default)
        self.seen_secrets.update(kids.values())
        return default, kids

    def assert_no_secret_leaked(self, extra=()):
        """No secret that was ever in the keys file (or given in extra)
        appears in any answer, any notification, or the daemon's log."""
        self.keys()
        secrets = set(self.seen_secrets) | set(extra)
        assert secrets
        log = self.log_text()
        notes = self.notifications_since()
        for s in secrets:
            assert s not in log, "a secret is in the daemon's log"
            for a in self.answers:
                assert s not in a, f"a secret is in an answer: {a[:60]}..."
            for n in notes:
                assert s not in n, "a secret is in an sd_notify message"

    # nginx

    def start_nginx(self):
        self.nginx_pid = start_nginx(self.dir, self.nginx_conf, self.error_log, self.pid_file,
                                     self.diagnostics)

    def stop_nginx(self):
        pid, self.nginx_pid = self.nginx_pid, None
        if pid is not None:
            quit_nginx(pid, TIMEOUT)

    def workers(self):
        """The nginx master's current children."""
        return master_children(self.nginx_pid)

    @staticmethod
    def _accepting(pid):
        """Whether pid is a live nginx worker that still takes new
        connections: a worker told to quit sets its title to "worker
        process is shutting down" and then closes its listening sockets."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
        except (FileNotFoundError, ProcessLookupError):
            return False
        return b"worker process" in title and b"shutting down" not in title

    def accepting_old_workers(self, old):
        """The workers of old that still accept connections (with the
        configuration nginx had before a reload)."""
        return {pid for pid in old & self.workers() if self._accepting(pid)}

    def assert_only_the_newest_worker_accepts(self):
        """After a confirmed reload no old worker may still take connections
        (with the old keys: a revoked or dropped key's links would pass
        there, a new key's would fail). The nginx master starts the new
        workers, waits 100ms, then tells the old ones to quit; the daemon
        must wait for that, not only for the new workers to appear."""
        children = self.workers()
        newest = max(children)  # pids grow; a test is far too short for a wrap
        still = self.accepting_old_workers(children - {newest})
        assert not still, f"old nginx workers {still} still accept connections"

    def assert_reloaded_since(self, old):
        """A reload confirmed by the daemon since the workers were old: a
        new worker is there, and only the newest takes connections."""
        assert self.workers() - old, "no new nginx worker: nginx was not reloaded"
        self.assert_only_the_newest_worker_accepts()

    def wait_workers_replaced(self, old, timeout=TIMEOUT):
        """Returns once none of the workers in old is left (a reload's old
        workers finish their requests and exit; until then they may still
        accept a connection with the old configuration); raises when that
        does not happen within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.workers()
            if now and not (now & old):
                return
            time.sleep(POLL)
        raise AssertionError("nginx's workers were not replaced\n" + self.diagnostics())

    # HTTP

    def get(self, url):
        """GETs a URL on this nginx exactly as written (no re-quoting, no
        redirects). Returns (status, body)."""
        return http_get(url, self.port)

    def status_of(self, url):
        return self.get(url)[0]

    # teardown

    def cleanup(self):
        errors = []
        # The daemon first: it must not act on an nginx that is going away.
        for f in (self.stop, self.stop_nginx):
            try:
                f()
            except Exception as e:  # stop the other one too
                errors.append(e)
        self._close_notify()
        return errors


def open_daemon(options=None, start=True, nginx=True, cls=None, wait_active=True):
    """A Daemon (or cls, a subclass) in a temp directory of its own; with
    start, securelinkd is started (it writes the snippets nginx includes, so
    it comes first), then with nginx also nginx, and with wait_active it
    returns once the first key is active (until then a SIGN is held).
    close_daemon() undoes it."""
    # Short: the socket path must fit in sun_path.
    directory = tempfile.mkdtemp(prefix="sl-dt-")
    try:
        d = (cls or Daemon)(directory, options)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        if start:
            d.start()
            if nginx:
                d.start_nginx()
                if wait_active:
                    d.wait_active()
    except BaseException as e:
        for error in close_daemon(d):
            e.add_note(f"and while closing the daemon: {error!r}")
        raise
    return d


def close_daemon(d):
    """Stops securelinkd and nginx and removes the directory, also after a
    failure; returns the errors met on the way."""
    try:
        return d.cleanup()
    finally:
        shutil.rmtree(d.dir, ignore_errors=True)


def require_binaries(*paths):
    """Skips without nginx; fails when a binary of ours is not built."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is not installed")
    for path in (daemon_binary(),) + paths:
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: build it first, or set SECURELINK_BUILD_DIR")


@pytest.fixture
def make_daemon():
    """Returns a factory: make_daemon(options=None, start=True, nginx=True)
    is open_daemon(). Every daemon is closed at teardown, also when the test
    failed."""
    require_binaries()
    daemons = []

    def factory(options=None, start=True, nginx=True):
        d = open_daemon(options, start, nginx)
        daemons.append(d)
        return d

    try:
        yield factory
    finally:
        errors = []
        for d in daemons:
            errors += close_daemon(d)
        if errors:
            raise errors[0]
