# SPDX-License-Identifier: MIT
"""Abuse of the real securelinkd's socket while a well-behaved client keeps
signing: a thousand connections at once, slow clients holding half a line,
clients that pipeline without ever reading, megabytes of random bytes, NUL
bytes, invalid UTF-8, lines over the limit, every verb with missing, extra
and malformed arguments.

The well-behaved client checks every answer it gets (the token is recomputed
here with hashlib from the keys file nginx reads); its worst latency is
printed, never asserted: tests do not assert on time. The daemon's memory is
read from /proc/PID/status (VmHWM, the peak resident set) and must stay
under a generous bound: a resource bound, not a timing one."""

import contextlib
import os
import random
import re
import resource
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from daemonsite import TIMEOUT, b64url, make_daemon, token  # noqa: F401 (a fixture)

CODES = {"bad-request", "unknown-verb", "line-too-long", "bad-target", "bad-ttl",
         "ttl-too-long", "bad-ip", "forbidden", "unavailable", "internal"}
ERR_RE = re.compile(r"ERR ([a-z-]+) [ -~]+")
# Far above what the daemon needs (a few MiB), far below what unbounded
# buffering of the megabytes sent here would take.
MEMORY_BOUND = 64 << 20
# AddressSanitizer's shadow memory and its quarantine of freed blocks (up to
# 256 MiB by default) are resident too: under scripts/sanitize the bound is
# for the sanitizer's own overhead as much as for the daemon.
MEMORY_BOUND_ASAN = 512 << 20


def check_signed(d, answer, uri_bytes, keys):
    """Whether answer is a correct OK for SIGN of uri_bytes (the decoded
    path): the token recomputed from the keys file matches."""
    if not answer.startswith("OK "):
        return False
    url = answer[3:]
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))
    if urllib.parse.unquote_to_bytes(parts.path) != uri_bytes:
        return False
    kid = int(q["kid"])
    if kid not in keys:
        keys.update(d.keys()[1])  # a newer key: read the file nginx reads
    return q["token"] == token(q["expires"], uri_bytes, keys[kid])


def memory(d):
    """The daemon's VmRSS and VmHWM in bytes."""
    out = {}
    with open(f"/proc/{d.proc.pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def memory_bound(d):
    with open(f"/proc/{d.proc.pid}/maps") as f:
        return MEMORY_BOUND_ASAN if "libasan" in f.read() else MEMORY_BOUND


def assert_memory_bounded(d, before, what):
    after = memory(d)
    print(f"{what}: daemon VmRSS {before['VmRSS'] >> 10} KiB before, {after['VmRSS'] >> 10} KiB "
          f"after, peak VmHWM {after['VmHWM'] >> 10} KiB")
    bound = memory_bound(d)
    assert after["VmHWM"] < bound, f"{what}: the daemon's peak RSS is {after['VmHWM']} bytes"


class GoodClient(threading.Thread):
    """One connection, one request at a time, every answer checked."""

    def __init__(self, d, timeout=TIMEOUT):
        super().__init__(daemon=True)
        self.d = d
        self.keys = dict(d.keys()[1])
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(d.socket)
        self.stop = threading.Event()
        self.answered = 0
        self.wrong = []
        self.failure = None
        self.max_latency = 0.0

    def _ask(self, f, line):
        t = time.monotonic()
        f.write(line + b"\n")
        f.flush()
        answer = f.readline()
        self.max_latency = max(self.max_latency, time.monotonic() - t)
        if not answer.endswith(b"\n"):
            raise AssertionError(f"the good client's connection was closed on {line!r}")
        return answer[:-1].decode()

    def run(self):
        try:
            with self.sock.makefile("rwb") as f:
                i = 0
                while not self.stop.is_set():
                    i += 1
                    uri = f"/media/private/good/{i}.pdf"
                    answer = self._ask(f, f"SIGN {uri} ttl=600".encode())
                    if not check_signed(self.d, answer, uri.encode(), self.keys):
                        self.wrong.append(answer)
                    if i % 10 == 0 and self._ask(f, b"PING") != "OK pong":
                        self.wrong.append("PING")
                    self.answered += 1
        except Exception as e:  # reported by finish()
            self.failure = e

    def finish(self, what):
        self.stop.set()
        self.join(self.timeout)
        self.sock.close()
        assert not self.is_alive(), f"{what}: the good client hangs"
        assert self.failure is None, f"{what}: the good client failed: {self.failure!r}"
        assert not self.wrong, f"{what}: wrong answers to the good client: {self.wrong[:3]}"
        assert self.answered > 0, f"{what}: the good client got no answer at all"
        print(f"{what}: good client: {self.answered} answers, all right, max latency "
              f"{self.max_latency * 1000:.1f} ms")


@contextlib.contextmanager
def good_client(d, what, timeout=TIMEOUT):
    c = GoodClient(d, timeout)
    c.start()
    try:
        yield c
    finally:
        c.finish(what)


def connect(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(d.socket)
    return s


def read_all(s):
    """Everything the daemon sends until it closes the connection."""
    out = bytearray()
    s.settimeout(TIMEOUT)
    while True:
        try:
            chunk = s.recv(1 << 16)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


def wait_closed_by_peer(socks, timeout=TIMEOUT):
    """Waits until the daemon has closed every socket in socks (POLLRDHUP:
    seen even while unread answers are still queued); returns those still
    open at the timeout."""
    poller = select.poll()
    left = {s.fileno(): s for s in socks}
    for fd in left:
        poller.register(fd, select.POLLRDHUP)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for fd, ev in poller.poll(100):
            if ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                poller.unregister(fd)
                del left[fd]
    return list(left.values())


# --- many connections ----------------------------------------------------------


@contextlib.contextmanager
def soft_nofile(n):
    """RLIMIT_NOFILE's soft limit n for what is started meanwhile (the
    daemon inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def many_fds():
    """This process may open max_connections + a few sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for 1024 clients")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_max_connections_clients_at_once_all_get_answers_and_one_more_is_refused(make_daemon,
                                                                                many_fds):
    d = make_daemon(start=False)  # max_connections: the default, 1024
    # systemd starts services with a soft RLIMIT_NOFILE of 1024 (and a hard
    # one far higher): max_connections = 1024 clients need more than that.
    with soft_nofile(1024):
        d.start()
    d.wait_active()
    before = memory(d)

    n = 1024 - 1  # the good client holds one connection slot
    socks = []
    try:
        with good_client(d, "1024 connections") as good:
            for _ in range(n):
                socks.append(connect(d))
            for i, s in enumerate(socks):
                s.sendall(f"SIGN /media/private/many/{i}.pdf\n".encode())
            answers = collect_one_line_each(socks)
            silent = [i for i, a in enumerate(answers) if a is None]
            assert not silent, (f"{len(silent)} of {n} clients got no answer (the daemon out "
                                f"of file descriptors?), first: {silent[:5]}")
            keys = dict(d.keys()[1])
            wrong = [(i, a) for i, a in enumerate(answers)
                     if not check_signed(d, a, f"/media/private/many/{i}.pdf".encode(), keys)]
            assert not wrong, wrong[:3]
            assert good.answered > 0

            # One more than max_connections: told so, and closed.
            with connect(d) as extra:
                data = read_all(extra)
            assert data == b"ERR unavailable too many connections (try again later)\n", data
            # Everyone connected is still served.
            for i, s in enumerate(socks[:50]):
                s.sendall(b"PING\n")
            assert collect_one_line_each(socks[:50]) == ["OK pong"] * 50
    finally:
        for s in socks:
            s.close()
    assert_memory_bounded(d, before, "1024 connections")
    assert d.ask("PING") == "OK pong"


def collect_one_line_each(socks, timeout=TIMEOUT):
    """Reads one answer line from every socket, all at once; None for a
    socket that got none before the timeout or was closed."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        bufs[i] = b""
    answers = [None] * len(socks)
    left = len(socks)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            i = key.data
            try:
                chunk = key.fileobj.recv(1 << 16)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk = b""
            bufs[i] += chunk
            if b"\n" in bufs[i] or not chunk:
                sel.unregister(key.fileobj)
                left -= 1
                if b"\n" in bufs[i]:
                    answers[i] = bufs[i].split(b"\n", 1)[0].decode()
    sel.close()
    for s in socks:
        s.setblocking(True)
        s.settimeout(TIMEOUT)
    return answers


class BusyClient:
    """One connection kept busy: a thread pipelines PING without pause, another
    reads every answer. The daemon always has input waiting from it."""

    def __init__(self, d):
        self.sock = connect(d)
        self.stop = threading.Event()
        self.answered = 0
        self.failure = None
        self.threads = [threading.Thread(target=self._write, daemon=True),
                        threading.Thread(target=self._read, daemon=True)]
        for t in self.threads:
            t.start()

    def _write(self):
        chunk = b"PING\n" * 20000
        try:
            while not self.stop.is_set():
                self.sock.sendall(chunk)
        except OSError as e:
            if not self.stop.is_set():
                self.failure = e

    def _read(self):
        try:
            while not self.stop.is_set():
                data = self.sock.recv(1 << 16)
                if not data:
                    raise AssertionError("the daemon closed a busy client's connection")
                self.answered += data.count(b"\n")
        except (OSError, AssertionError) as e:
            if not self.stop.is_set():
                self.failure = e

    def finish(self):
        self.stop.set()
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes both threads
        for t in self.threads:
            t.join(TIMEOUT)
        self.sock.close()
        assert self.failure is None, f"a busy client failed: {self.failure!r}"


def test_busy_connections_do_not_starve_new_ones(make_daemon):
    # Connected clients that always have the next request waiting keep the
    # daemon busy without pause; a client that connects meanwhile must still
    # be accepted and answered, not wait until the others fall silent.
    d = make_daemon(nginx=False)
    d.wait_active()
    busy = [BusyClient(d) for _ in range(8)]
    try:
        deadline = time.monotonic() + TIMEOUT
        while not all(b.answered for b in busy) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(b.answered for b in busy), "the busy clients got no answers"
        with connect(d) as s:
            s.sendall(b"PING\n")
            # The busy clients keep going until this answer came (or the
            # socket's TIMEOUT passed): it is answered while they are busy.
            assert s.recv(100) == b"OK pong\n"
        assert all(b.failure is None for b in busy)
    finally:
        for b in busy:
            b.finish()


# --- slow and deaf clients --------------------------------------------------------


def test_clients_holding_half_a_line_are_closed_at_idle_timeout(make_daemon):
    d = make_daemon({"daemon": {"idle_timeout": "1s"}}, nginx=False)
    d.wait_active()
    before = memory(d)
    with good_client(d, "half lines"):
        idle = [connect(d) for _ in range(100)]
        for s in idle:
            s.sendall(b"SIGN /media/private/half")
        # Trickling one byte at a time does not count as activity: the
        # line never ends, so these are closed like the others.
        trickle = [connect(d) for _ in range(10)]
        sent = 0
        deadline = time.monotonic() + TIMEOUT
        open_ = list(trickle)
        while open_ and time.monotonic() < deadline:
            for s in list(open_):
                try:
                    s.send(b"A")
                except (BrokenPipeError, ConnectionResetError):
                    open_.remove(s)
            sent += 1
            open_ = wait_closed_by_peer(open_, timeout=0.1) if open_ else open_
        assert not open_, f"{len(open_)} trickling clients are still connected"
        # Closed for being idle, far below the 8192-byte line limit.
        assert sent < 8000
        assert not wait_closed_by_peer(idle), "idle clients with half a line are still connected"
        for s in idle + trickle:
            assert read_all(s) == b""  # no answer to a line that never ended
            s.close()
    assert_memory_bounded(d, before, "half lines")


def test_clients_that_never_read_get_bounded_output_and_are_closed(make_daemon):
    d = make_daemon({"daemon": {"idle_timeout": "1s"}}, nginx=False)
    d.wait_active()
    before = memory(d)
    status_answer = d.ask("STATUS")
    request = b"STATUS\n" * 4096
    deaf = []
    sent = {}
    with good_client(d, "deaf clients"):
        for _ in range(20):
            s = connect(d)
            s.setblocking(False)
            n = 0
            # Pipeline until the kernel takes no more: the daemon has
            # stopped reading once its output for us passed its bound.
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                try:
                    n += s.send(request)
                except BlockingIOError:
                    # Give the daemon a moment to drain our input into answers.
                    if not select.select([], [s], [], 0.05)[1]:
                        break
            deaf.append(s)
            sent[s] = n
        still = wait_closed_by_peer(deaf)
        assert not still, f"{len(still)} clients that never read are still connected"
        mem_while = memory(d)
        for s in deaf:
            s.setblocking(True)
            data = read_all(s)
            s.close()
            requests = sent[s] // len(b"STATUS\n")
            lines = data.split(b"\n")
            # Each one right (the counters may have moved). Closing drops
            # what was never read, so the last line may be cut short.
            head = b'OK {"active_kid":'
            assert all(line.startswith(head) for line in lines[:-1]), lines[:2]
            assert lines[-1][:len(head)] == head[:len(lines[-1])], lines[-1][:100]
            # Bounded: the daemon's 256 KiB plus what the kernel's socket
            # buffers hold, not an answer for every request sent.
            assert len(data) < 4 << 20, len(data)
            assert requests * len(status_answer) > 2 * len(data), (requests, len(data))
    print(f"deaf clients: VmRSS while they were connected: {mem_while['VmRSS'] >> 10} KiB")
    assert_memory_bounded(d, before, "deaf clients")


# The daemon's bounds on what it buffers for its clients (server.c): per
# peer uid, and for all connections together.
UID_BUFFER_MAX = 32 << 20
SERVER_BUFFER_MAX = 64 << 20
# Besides the buffers: the connections' own structures, malloc's slack.
BUFFER_SLACK = 16 << 20

# Run as another uid: opens argv[2] connections, each answered a PING (so
# the daemon holds them all), says so and waits for a line on stdin; then
# pipelines SIGN on each without ever reading until the daemon takes no
# more, says how many are still open, and holds them until stdin closes.
# "Takes no more" is only this client's guess (no socket writable for a
# second): a daemon slowed down (a sanitized build on busy cores) may still
# be working through megabytes of queued requests. The test waits for the
# daemon's own word instead, its log line about the bound.
ABUSER = r"""
import select, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(path)
    s.sendall(b"PING\n")
    if s.recv(100) == b"OK pong\n":
        socks.append(s)
print(len(socks), flush=True)
sys.stdin.readline()
chunk = b"SIGN /media/private/abuse/file.pdf ttl=60\n" * 1024
for s in socks:
    s.setblocking(False)
while socks:
    _, writable, _ = select.select([], socks, [], 1.0)
    if not writable:
        break  # the daemon reads from none of them any more
    for s in writable:
        try:
            while s.send(chunk):
                pass
        except BlockingIOError:
            pass
        except OSError:
            socks.remove(s)  # closed by the daemon
            s.close()
print(len(socks), flush=True)
sys.stdin.read()
"""


SHED_RE = re.compile(r"Closed a connection of uid 65534 \(pid \d+\) holding \d+ KiB of unread "
                     r"answers and requests: the per-uid bound on buffered bytes \(32 MiB per "
                     r"uid, 64 MiB in total\) is reached")
# Bound for the abuse to reach the per-uid limit, and for one answer to the
# good client meanwhile (a turn among 300 connections with requests queued):
# seconds here, far more with the sanitizers on two busy cores. Only reached
# when something is broken.
ABUSE_TIMEOUT = 300.0


def test_one_uid_cannot_take_every_slot_or_unbounded_memory(make_daemon):
    if os.geteuid() != 0:
        pytest.skip("needs root (setpriv to uid 65534)")
    n = 300
    d = make_daemon({"daemon": {"max_connections": str(n)}})
    os.chmod(d.socket, 0o666)  # uid 65534 may connect
    before = memory(d)
    keys = dict(d.keys()[1])
    abuser = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-c", ABUSER, d.socket, str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        # Every slot is the abuser's ...
        assert abuser.stdout.readline() == f"{n}\n", "the abusing client failed"
        # ... and another uid (root here) is still served.
        answer = d.ask("SIGN /media/private/good.pdf")
        assert check_signed(d, answer, b"/media/private/good.pdf", keys), answer
        assert re.search(r"Closed a connection of uid 65534 \(pid \d+\) for one of uid 0: "
                         rf"max_connections={n} reached, uid 65534 holds {n} of them",
                         d.log_text()), d.log_text()[-2000:]

        # Now every connection of the abuser pipelines without reading,
        # and the good client is served meanwhile (it has a turn among the
        # abuser's connections, each of which has requests waiting).
        log_pos = len(d.log_text())
        abuser.stdin.write("go\n")
        abuser.stdin.flush()
        with good_client(d, "one uid abusing", timeout=ABUSE_TIMEOUT) as good:
            # The daemon's own signal that the abuser's buffers reached the
            # bound (the abuser's "no more" is a guess, see ABUSER).
            deadline = time.monotonic() + ABUSE_TIMEOUT
            while not SHED_RE.search(d.log_text()[log_pos:]):
                assert d.proc.poll() is None, "securelinkd exited\n" + d.diagnostics()
                assert abuser.poll() is None, "the abusing client failed"
                assert time.monotonic() < deadline, ("the per-uid bound was never reached\n"
                                                     + d.diagnostics())
                time.sleep(0.05)
            during = memory(d)
            deadline = time.monotonic() + TIMEOUT
            while good.answered < 100 and time.monotonic() < deadline:
                time.sleep(0.01)
        left = abuser.stdout.readline()
        assert left, "the abusing client failed"
        after = memory(d)
    finally:
        abuser.stdin.close()
        abuser.wait(TIMEOUT)
    print(f"one uid abusing: {left.strip()} of its connections left; daemon VmRSS "
          f"{before['VmRSS'] >> 10} KiB before, {during['VmRSS'] >> 10} KiB during, peak "
          f"VmHWM {after['VmHWM'] >> 10} KiB")
    # One uid's buffers are bounded (the other uid's are tiny).
    bound = before["VmRSS"] + UID_BUFFER_MAX + BUFFER_SLACK
    if memory_bound(d) == MEMORY_BOUND_ASAN:
        bound = MEMORY_BOUND_ASAN
    assert after["VmHWM"] < bound, f"the daemon's peak RSS is {after['VmHWM'] >> 10} KiB"
    assert d.ask("PING") == "OK pong"


# --- garbage ---------------------------------------------------------------------


def check_error_answers(answers, n):
    """n answers, each an ERR line with a known code and a printable message."""
    assert len(answers) == n, (len(answers), n)
    for a in answers:
        m = ERR_RE.fullmatch(a)
        assert m and m.group(1) in CODES, a[:200]


def send_and_collect(d, data):
    """Sends data on a connection of its own while reading the answers (the
    daemon stops reading from a client that does not read); returns the
    answer lines and whether the daemon closed the connection."""
    s = connect(d)
    got = bytearray()
    err = []

    def reader():
        try:
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    return
                got.extend(chunk)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # the daemon answers what it has, then closes
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed early: line-too-long
    t.join(TIMEOUT)
    assert not t.is_alive(), "the daemon neither answered nor closed"
    s.close()
    text = bytes(got)
    assert text == b"" or text.endswith(b"\n"), text[-100:]
    lines = text.split(b"\n")[:-1]
    for line in lines:
        # Never an echo of the raw bytes: every answer is printable ASCII.
        assert all(0x20 <= b < 0x7F for b in line), line[:200]
    return [line.decode() for line in lines]


def test_megabytes_of_random_bytes_get_one_error_per_line(make_daemon):
    d = make_daemon(nginx=False)
    d.wait_active()
    before = memory(d)
    seed = random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    chunks = [rng.randbytes(1 << 20) for _ in range(4)]
    with good_client(d, "random bytes"):
        for data in chunks:
            # Framing holds: no run of 8192 bytes without LF (probability
            # e^-32), so every line is answered and none closes.
            assert max(len(x) for x in data.split(b"\n")) < 8191, seed
            n = data.count(b"\n")
            answers = send_and_collect(d, data)
            check_error_answers(answers, n)
    assert_memory_bounded(d, before, f"random bytes (seed {seed})")
    assert d.ask("PING") == "OK pong"


def test_nul_bytes_and_control_bytes_are_refused_line_by_line(make_daemon):
    d = make_daemon(nginx=False)
    d.wait_active()
    lines = [b"\0" * 8000, b"PING\0", b"\0PING", b"SIGN /media/private/a\0b",
             b"SIGN /media/private/a%00b", b"STATUS\0\0\0", b"SIGN /media/private/a\x01b",
             b"SIGN /media/private/a\x7fb", b"PING\x1b[2J",
             b"VERIFY /media/private/a?token=\0&expires=1&kid=1"]
    data = b"".join(line + b"\n" for line in lines) * 500
    with good_client(d, "NUL bytes"):
        answers = send_and_collect(d, data)
    check_error_answers(answers, len(lines) * 500)
    assert answers[:len(lines)] == answers[len(lines):2 * len(lines)]  # the same each time
    codes = [a.split()[1] for a in answers[:len(lines)]]
    assert codes[4] == "bad-target"  # %00: a NUL in the decoded path
    assert set(codes) <= {"bad-request", "bad-target"}, codes


@pytest.mark.parametrize("allow", [True, False], ids=["allow_binary_paths", "default"])
def test_invalid_utf8_is_signed_byte_exact_or_refused_never_garbled(make_daemon, allow):
    # nginx's $uri holds the raw bytes of a percent-decoded path, valid
    # UTF-8 or not, and file names on Linux are bytes: with
    # allow_binary_paths, a link to such a name must hash exactly those
    # bytes, and nginx must serve it; by default it is refused
    # (test_binary_paths.py has the details).
    d = make_daemon({"links": {"allow_binary_paths": "yes" if allow else "no"}})
    names = [b"\xff\xfe.pdf", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"caf\xe9.txt"]
    keys = dict(d.keys()[1])
    with good_client(d, "invalid UTF-8"):
        for name in names if not allow else []:
            for target in (b"/media/private/" + name,
                           b"/media/private/" + urllib.parse.quote_from_bytes(name).encode()):
                with connect(d) as s, s.makefile("rwb") as f:
                    f.write(b"SIGN " + target + b"\n")
                    f.flush()
                    answer = f.readline().rstrip(b"\n").decode("ascii")
                assert answer.startswith("ERR bad-target the decoded path is not text at byte "), answer
                assert "allow_binary_paths = yes" in answer, answer
        for name in names if allow else []:
            full = os.path.join(d.media.encode(), b"private", name)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            os.chmod(os.path.dirname(full), 0o755)
            with open(full, "wb") as f:
                f.write(b"bytes " + name)
            os.chmod(full, 0o644)
            uri = b"/media/private/" + name
            for target in (uri, b"/media/private/" + urllib.parse.quote_from_bytes(name).encode()):
                with connect(d) as s, s.makefile("rwb") as f:
                    f.write(b"SIGN " + target + b"\n")
                    f.flush()
                    answer = f.readline().rstrip(b"\n").decode("ascii")
                assert check_signed(d, answer, uri, keys), (target, answer)
                assert d.get(answer[3:]) == (200, b"bytes " + name)
        # Invalid UTF-8 where no path is: refused, never echoed raw.
        answers = send_and_collect(d, b"SIGN /a \xff=1\nVERIFY x \xff\n\xff\xfe PING\n")
    assert [a.split()[1] for a in answers] == ["bad-request", "bad-request", "unknown-verb"]


def test_lines_over_the_limit_are_refused_without_buffering_them(make_daemon):
    d = make_daemon(nginx=False)
    d.wait_active()
    before = memory(d)
    with good_client(d, "long lines"):
        # 64 MiB without LF, from 8 clients at once: each is answered
        # line-too-long and closed after the first 8192 bytes, whatever
        # follows (buffered, it would pass the memory bound).
        results = []

        def long_line(data):
            results.append(send_and_collect(d, data))

        line = b"SIGN /media/private/" + b"a" * (8 << 20)
        threads = [threading.Thread(target=long_line, args=(line,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 2)
        assert len(results) == 8
        for answers in results:
            assert len(answers) == 1 and answers[0].startswith("ERR line-too-long "), answers
        # Exactly at the limit it is a line; one byte more is not.
        answers = send_and_collect(d, b"P" * 8191 + b"\n" + b"PING\n")
        assert [a.split()[1] for a in answers] == ["unknown-verb", "pong"]
        answers = send_and_collect(d, b"PING\n" + b"P" * 8192 + b"\nPING\n")
        assert answers[0] == "OK pong" and answers[1].startswith("ERR line-too-long ")
        assert len(answers) == 2  # nothing after it is read
    assert_memory_bounded(d, before, "long lines")


# --- every verb, every argument wrong ---------------------------------------------


def bad_arguments():
    p = "/media/private/a.pdf"
    q = "/media/private/a.pdf?token=AAAAAAAAAAAAAAAAAAAAAA&expires=2000000000&kid=1"
    return [
        # PING, STATUS: no arguments.
        ("PING x", "bad-request"), ("PING ", "bad-request"), (" PING", "bad-request"),
        ("PING  ", "bad-request"), ("STATUS x", "bad-request"), ("STATUS ", "bad-request"),
        ("STATUS revoke", "bad-request"), ("ping", "unknown-verb"), ("Status", "unknown-verb"),
        ("PINGX", "unknown-verb"), ("SIGNS /a", "unknown-verb"),
        # SIGN: missing, extra, malformed.
        ("SIGN", "bad-request"), ("SIGN ", "bad-request"), ("SIGN  " + p, "bad-request"),
        (f"SIGN {p}  ttl=5", "bad-request"), (f"SIGN {p} ", "bad-request"),
        (f"SIGN\t{p}", "bad-request"), (f"SIGN {p} {p}", "bad-request"),
        (f"SIGN {p} ttl", "bad-request"), (f"SIGN {p} =5", "bad-request"),
        (f"SIGN {p} TTL=5", "bad-request"), (f"SIGN {p} ttl=5 ttl=5", "bad-request"),
        (f"SIGN {p} ip=127.0.0.1 ip=127.0.0.1", "bad-request"),
        (f"SIGN {p} ttl=5 expires=2000000000", "bad-request"),
        (f"SIGN {p} ttl=", "bad-ttl"), (f"SIGN {p} ttl=abc", "bad-ttl"),
        (f"SIGN {p} ttl=+5", "bad-ttl"), (f"SIGN {p} ttl=0x10", "bad-ttl"),
        (f"SIGN {p} ttl=5s", "bad-ttl"), (f"SIGN {p} ttl=1e3", "bad-ttl"),
        (f"SIGN {p} ttl=99999999999999999999999", "bad-ttl"),
        (f"SIGN {p} ttl=-1", "bad-ttl"), (f"SIGN {p} ttl=0", "bad-ttl"),
        (f"SIGN {p} expires=", "bad-ttl"), (f"SIGN {p} expires=-1", "bad-ttl"),
        (f"SIGN {p} expires=now", "bad-ttl"), (f"SIGN {p} expires=1", "bad-ttl"),
        (f"SIGN {p} expires=99999999999999999999999", "bad-ttl"),
        (f"SIGN {p} ttl=86401", "ttl-too-long"),
        (f"SIGN {p} ip=", "bad-ip"), (f"SIGN {p} ip=1.2.3", "bad-ip"),
        (f"SIGN {p} ip=1.2.3.4.5", "bad-ip"), (f"SIGN {p} ip=::g", "bad-ip"),
        (f"SIGN {p} ip=256.0.0.1", "bad-ip"), (f"SIGN {p} ip=example.org", "bad-ip"),
        ("SIGN a.pdf", "bad-target"), ("SIGN ftp://h/a", "bad-target"),
        ("SIGN http://", "bad-target"), ("SIGN http:///media/private/a", "bad-target"),
        (f"SIGN {p}?x=1", "bad-target"), (f"SIGN {p}#f", "bad-target"),
        ("SIGN /media/private/%", "bad-target"), ("SIGN /media/private/%4", "bad-target"),
        ("SIGN /media/private/%zz", "bad-target"), ("SIGN /media/private/../x", "bad-target"),
        ("SIGN /media/private/./x", "bad-target"), ("SIGN /media/private/%2e%2e/x", "bad-target"),
        ("SIGN /media/private/a%00", "bad-target"),
        # VERIFY.
        ("VERIFY", "bad-request"), ("VERIFY ", "bad-request"), (f"VERIFY {q} {q}", "bad-request"),
        (f"VERIFY {q} ttl=5", "bad-request"), (f"VERIFY {q} ip=1.2.3.4 x", "bad-request"),
        (f"VERIFY {q} ip=1.2.3.4 ip=1.2.3.4", "bad-request"), (f"VERIFY {q} ip=x", "bad-ip"),
        ("VERIFY a.pdf", "bad-target"), ("VERIFY /media/private/%zz", "bad-target"),
        # ROTATE, IMPORT (we are admin: only malformed ones, nothing happens).
        ("ROTATE now", "bad-request"), ("ROTATE revoke revoke", "bad-request"),
        ("ROTATE  revoke", "bad-request"), ("ROTATE REVOKE", "bad-request"),
        ("ROTATE ", "bad-request"), ("IMPORT", "bad-request"), ("IMPORT ", "bad-request"),
        ("IMPORT a b", "bad-request"), ("IMPORT !!!!", "bad-request"),
        ("IMPORT AA==", "bad-request"), ("IMPORT AAAA", "bad-request"),  # NUL bytes
        ("IMPORT " + b64url(b'a"b'), "bad-request"), ("IMPORT " + b64url(b"a$b"), "bad-request"),
        ("IMPORT " + b64url(b"a\\b"), "bad-request"), ("IMPORT " + b64url(b"a\nb"), "bad-request"),
        # Nothing at all.
        ("", "bad-request"), ("\r", "bad-request"), (" ", "bad-request"),
    ]


def test_every_verb_with_missing_extra_and_malformed_arguments(make_daemon):
    d = make_daemon(nginx=False)
    d.wait_active()
    st = d.status()
    table = bad_arguments()
    with good_client(d, "bad arguments"), d.connect() as c:
        for line, code in table:
            answer = c.ask(line)
            m = ERR_RE.fullmatch(answer)
            assert m, f"{line!r} -> {answer!r}"
            assert m.group(1) == code, f"{line!r} -> {answer!r}"
        assert c.ask("PING") == "OK pong"
        # The same, pipelined in one write: the same answers, in order.
        c.send("".join(line + "\n" for line, _ in table))
        codes = [ERR_RE.fullmatch(c.read_line()).group(1) for _ in table]
        assert codes == [code for _, code in table]
    # Nothing rotated, nothing imported.
    assert d.status()["keys"] == st["keys"]
