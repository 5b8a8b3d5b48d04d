# SPDX-License-Identifier: MIT
"""Client for securelinkd, the daemon that signs nginx secure_link URLs.

Standard library only. The application never holds the signing secret: it
asks securelinkd over its Unix socket (DESIGN.md, "Wire protocol")::

    import securelink
    client = securelink.Client()          # $SECURELINK_SOCKET or the default path
    url = client.sign("/media/private/report 2024.pdf", ttl=600)
    urls = client.sign_many(paths)         # pipelined, thousands per round trip
    base = client.grant("/media/private/videos/42/")   # base + "master.m3u8"

Paths are URL paths as they appear in a link: "%XX" escapes are decoded by
the daemon, raw UTF-8 is fine. Bytes the protocol cannot carry raw (space,
control bytes, DEL) are percent-encoded here, so "a b.pdf" is sent as
"a%20b.pdf" and means the same file. A literal '%', '?' or '#' in a file
name must be percent-encoded by the caller (urllib.parse.quote does it),
because in a URL path they are an escape, a query and a fragment.

Failures raise securelink.Error; its .code is the daemon's ERR code
("bad-target", "bad-ttl", "ttl-too-long", "bad-ip", "forbidden",
"unavailable", ...; "unavailable" also when securelinkd refused the
connection at its max_connections, with its reason) or one of the client's
own: "unreachable" (cannot connect), "disconnected" (connection lost twice
in one call), "timeout" (no progress for `timeout` seconds), "protocol" (an
answer that makes no sense), "line-too-long" (refused before sending).
"""

import array
import dataclasses
import errno as _errno
import json
import mmap
import os
import re
import selectors
import socket as _socket
import struct
import threading
import time
import weakref

__all__ = ["Client", "Error", "Verdict", "DEFAULT_SOCKET", "GRANT_COOKIE"]

DEFAULT_SOCKET = "/run/securelink/securelinkd.sock"

# The cookie a grant(form="cookie") answer sets.
GRANT_COOKIE = "securelink_grant"

# The daemon's limit: a request line is at most 8192 bytes including the LF.
# A longer line gets "ERR line-too-long" and the connection is closed, which
# would break pipelining, so such a request is refused before it is sent.
LINE_MAX = 8192

# How much request data is queued for the socket at a time. Answers are read
# whenever the socket has them, also while requests are still being written:
# the daemon stops reading once its bounded output buffer is full, so a
# client that wrote everything before reading would deadlock with it.
_CHUNK = 64 * 1024

# Longest answer line accepted (STATUS lists every key, still far below).
_ANSWER_MAX = 1 << 20

# The link cache (docs/client-cache.md): at most this many links (about
# 450 bytes each); when full it starts over (a page of links is re-signed
# once, nothing breaks). 65,536 held about 29 MiB per process, and a miss
# cost 0.6 us more (bench: every name new) than with this bound.
_CACHE_MAX = 16384
# The page securelinkd passes with its answer to CACHE: a magic, then the
# generation as a native 64-bit integer.
_PAGE_MAGIC = b"SLCACHE1"
_PAGE_SIZE = 4096
_time = time.time

# Bytes that cannot travel raw in a target: the protocol separates fields by
# one space and lines by LF, and forbids control bytes.
_UNSAFE = frozenset(list(range(0x00, 0x21)) + [0x7F])
# The same set as a compiled pattern: the common case, nothing to encode, is
# one C-level scan instead of a Python loop over every byte.
_UNSAFE_RE = re.compile(rb"[\x00-\x20\x7f]")


class Error(Exception):
    """A failed request. .code is the daemon's ERR code or one of the
    client's own (see the module documentation); .message says what and how
    to fix it. .index is set by sign_many() to the position of the path that
    failed, else None."""

    def __init__(self, code, message, index=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.index = index

    def __str__(self):
        return f"{self.code}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """VERIFY's answer. status is "valid", "expired", "invalid" or "public";
    kid and expires are set for valid and expired links, reason for invalid
    ones."""

    status: str
    kid: int = None
    expires: int = None
    reason: str = None

    @property
    def valid(self):
        """True when nginx would serve the link: signed and unexpired, or public."""
        return self.status in ("valid", "public")


class _Broken(Exception):
    """The connection broke (EOF, EPIPE, ECONNRESET): worth one reconnect."""


def _encode_field(text, what):
    """Percent-encodes the bytes a target or URL cannot hold raw; keeps
    everything else, raw UTF-8 included, as the daemon accepts it."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    # The common case first: printable ASCII without a space is sent as
    # it is (three C-level checks, cheaper than the pattern below).
    if text.isascii() and text.isprintable() and " " not in text:
        return text.encode("ascii")
    raw = text.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError
    if not _UNSAFE_RE.search(raw):
        return raw
    return b"".join(b"%%%02X" % b if b in _UNSAFE else bytes((b,)) for b in raw)


def _ip_option(ip):
    if ip is None:
        return b""
    if not isinstance(ip, str):
        raise TypeError(f"ip must be a str, not {type(ip).__name__}")
    # Only what would break the framing is checked here; whether it is an
    # address is the daemon's call (it answers ERR bad-ip).
    if not ip or not ip.isascii() or any(c <= " " or c == "\x7f" for c in ip):
        raise Error("bad-ip", f"ip {ip!r} is not an IPv4 or IPv6 address")
    return b" ip=" + ip.encode("ascii")


def _int_option(name, value):
    # bool is an int subclass, and True seconds is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (seconds), not {type(value).__name__}")
    return b" %s=%d" % (name.encode(), value)


def _check_line(line, what):
    if len(line) > LINE_MAX:
        raise Error("line-too-long",
                    f"{what} makes a request of {len(line)} bytes, "
                    f"the daemon accepts at most {LINE_MAX}")
    return line


def _sign_line(path, ttl=None, expires=None, ip=None):
    if ttl is not None and expires is not None:
        raise ValueError("give ttl or expires, not both")
    target = _encode_field(path, "path")
    if type(ttl) is int and ip is None:
        # The common case in one format (an int, as _int_option() checks).
        line = b"SIGN %s ttl=%d\n" % (target, ttl)
    else:
        line = b"SIGN " + target
        if ttl is not None:
            line += _int_option("ttl", ttl)
        elif expires is not None:
            line += _int_option("expires", expires)
        if ip is not None:
            line += _ip_option(ip)
        line += b"\n"
    if len(line) <= LINE_MAX:  # the message only when it is needed
        return line
    return _check_line(line, f"path {path[:60]!r}...")


def _connect_hint(err):
    if err in (_errno.EACCES, _errno.EPERM):
        return ("the socket is mode 0660: run the application as a member of the "
                "socket's group (securelink)")
    return ("is securelinkd running (systemctl status securelinkd.socket)? "
            "Set SECURELINK_SOCKET or Client(socket=...) if it listens elsewhere")


class Client:
    """A connection to securelinkd, opened on first use and kept.

    socket: path of the daemon's socket; default $SECURELINK_SOCKET, else
    /run/securelink/securelinkd.sock. timeout: seconds a call may go without
    any progress (connect, send or answer) before it fails with "timeout".

    Safe to share between threads (calls are serialised) and across fork():
    a child process opens its own connection.

    cache: when securelinkd rounds expiry times ([links] expires_granularity)
    sign() answers a path it signed before in this window from memory,
    without a system call, as long as the link still has the lifetime asked
    for and securelinkd has not invalidated it (a revoke, a reload): see
    docs/client-cache.md. False: every sign() asks the daemon.
    """

    def __init__(self, socket=None, timeout=5.0, cache=True):
        self.socket = socket or os.environ.get("SECURELINK_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout
        self._sock = None
        self._lock = threading.Lock()
        self._cache_wanted = cache
        # key -> (url, expires, generation it was asked under)
        self._cache = {}
        # The generation: [1] of a memoryview over securelinkd's page, or
        # None while there is no page (no cache).
        self._gen = None
        self._default_ttl = None
        # "?expires=" and "&expires=", with the daemon's expires_param.
        self._expires_marks = None
        self._asked_cache = False  # CACHE sent on the current connection
        # The ERR CACHE got on this connection: if the connection then ends,
        # it was securelinkd refusing it (max_connections), see _refused().
        self._cache_refusal = None
        _clients.add(self)

    def __repr__(self):
        return f"securelink.Client(socket={self.socket!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        with self._lock:
            self._close()

    # public calls

    def ping(self):
        """Returns True when the daemon answers; raises Error otherwise."""
        rest = self._one(b"PING\n")
        if rest != "pong":
            raise Error("protocol", f"unexpected answer to PING: {rest[:80]!r}")
        return True

    def sign(self, path, ttl=None, expires=None, ip=None):
        """Returns the signed URL for path (a URL path beginning with '/', an
        absolute http(s) URL whose scheme://host[:port] is kept, or a
        scheme-relative //host[:port]/path URL whose //host is kept). ttl:
        lifetime in seconds (default: the daemon's default_link_ttl), or
        expires: a unix time; ip: bind the link to a client address (needed
        when the daemon has bind_ip = yes). A path outside the private
        prefixes comes back as a plain, canonical URL."""
        if expires is not None or not self._cache_wanted:
            return self._one(_sign_line(path, ttl=ttl, expires=expires, ip=ip))
        key = (path, ttl, ip)
        return self._cached(key, ttl) or self._sign_keyed(key, path, ttl, ip)

    def _cached(self, key, ttl):
        """The link cached under key if it may still be handed out, else
        None: a dict lookup, a read of the page's generation and the clock,
        no system call."""
        gen = self._gen
        if gen is not None:
            hit = self._cache.get(key)
            if hit is not None and hit[2] == gen[1]:
                expires = hit[1]
                if expires is None:
                    expires = self._read_expires(key, hit)
                if _time() + (ttl or self._default_ttl) <= expires:
                    return hit[0]
        return None

    def _read_expires(self, key, hit):
        """A link's expires, read at its first hit: a link that is never
        asked for again costs no parsing (most of a page's links, when
        every name is new). A link without one leaves the cache."""
        expires = _expires_of(hit[0], self._expires_marks)
        if expires is None:
            self._cache.pop(key, None)
            return -1
        self._cache[key] = (hit[0], expires, hit[2])
        return expires

    def _sign_keyed(self, key, path, ttl, ip=None, check=None):
        """Signs path and caches the link under key (when the daemon
        allows caching); check(path, url), if given, may refuse the answer
        (raise) before it is cached."""
        (ok, rest), seen = self._call(self._sign_attempt, _sign_line(path, ttl, None, ip))
        if not ok:
            raise Error(*rest)
        if check is not None:
            check(path, rest)
        # A public link ("?" nowhere) is not kept: it would only take the
        # place of signed ones.
        if seen is not None and "?" in rest:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            # Its expires is read when it is first asked for again.
            self._cache[key] = (rest, None, seen)
        return rest

    def _sign_attempt(self, line):
        """_sign_keyed()'s request: its (ok, rest) and the generation it
        was asked under."""
        if self._cache_wanted and not self._asked_cache:
            self._ask_cache()
        # Read before asking: a raise after this makes the answer stale,
        # one before it is already counted in.
        g = self._gen
        seen = g[1] if g is not None else None
        return self._roundtrip(line), seen

    def grant(self, dir, form="path", ttl=None, ip=None):
        """Signs a directory grant (a stream: a playlist and every file
        below it): dir is a target as sign() takes it, ending in '/',
        inside a private prefix. form="path" returns a base URL ending in
        '/' under which every file of the directory opens (a player given
        base + "master.m3u8" resolves the playlists' relative URLs under
        it); form="cookie" returns the value of a Set-Cookie header,
        "securelink_grant=...; Path=<dir>; Expires=...; HttpOnly;
        SameSite=Lax" (and "; Secure" when base_url is https), with which a
        browser fetches the files at their plain URLs. A public directory
        needs neither: its plain URL comes back in both forms (a cookie
        answer always starts with "securelink_grant="). A dir without its
        trailing '/' is the daemon's Error("bad-target")."""
        if form not in ("path", "cookie"):
            raise ValueError(f"form must be 'path' or 'cookie', not {form!r}")
        line = b"SIGN " + _encode_field(dir, "dir") + b" grant=" + form.encode()
        if ttl is not None:
            line += _int_option("ttl", ttl)
        line += _ip_option(ip) + b"\n"
        return self._one(_check_line(line, f"dir {dir[:60]!r}"))

    def sign_many(self, paths, ttl=None):
        """Signs every path with one pipelined exchange; returns the URLs in
        the order of paths. Every path is checked before anything is sent. If
        the daemon refuses some, every answer is still read (the connection
        stays in step) and the first refusal is raised, with .index set."""
        lines = [_sign_line(p, ttl=ttl) for p in paths]
        answers = self._exchange(lines)
        for i, (ok, rest) in enumerate(answers):
            if not ok:
                code, message = rest
                raise Error(code, f"{message} (path {paths[i]!r})", index=i)
        return [rest for _, rest in answers]

    def verify(self, url, ip=None):
        """Asks the daemon whether url carries a valid signature (what nginx
        would decide, without fetching). Returns a Verdict."""
        line = b"VERIFY " + _encode_field(url, "url") + _ip_option(ip) + b"\n"
        rest = self._one(_check_line(line, "the url"))
        status, _, detail = rest.partition(" ")
        if status in ("valid", "expired"):
            fields = dict(kv.partition("=")[::2] for kv in detail.split())
            try:
                return Verdict(status, kid=int(fields["kid"]), expires=int(fields["expires"]))
            except (KeyError, ValueError):
                pass
        elif status == "invalid":
            return Verdict(status, reason=detail)
        elif status == "public" and not detail:
            return Verdict(status)
        raise Error("protocol", f"unexpected answer to VERIFY: {rest[:80]!r}")

    def status(self):
        """Returns the daemon's STATUS as a dict (active_kid, next_rotation,
        keys, nginx, counters)."""
        rest = self._one(b"STATUS\n")
        try:
            return json.loads(rest)
        except ValueError:
            raise Error("protocol", f"STATUS answer is not JSON: {rest[:80]!r}") from None

    # the exchange

    def _one(self, line):
        """One request, one answer: the fast path of sign() and the other
        single calls. A blocking sendall() and recv() on the kept connection,
        two system calls when the answer comes in one piece; the kernel's
        SO_SNDTIMEO/SO_RCVTIMEO give the same "no progress for timeout
        seconds" as _pump()'s poll, without a selector per call."""
        ok, rest = self._call(self._roundtrip, line)
        if not ok:
            raise Error(*rest)
        return rest

    def _exchange(self, lines):
        """Sends lines (each ending in LF) and returns one (ok, rest) per
        line, in order: rest is the text after "OK ", or (code, message) for
        an ERR answer."""
        answers = []
        return self._call(lambda lines: self._pump(lines, len(answers), answers) or answers, lines)

    def _call(self, attempt, arg):
        """Runs attempt(arg) on the connection, under the lock. A broken
        connection is reopened once per call and attempt() runs again, for
        the requests still unanswered: every request this class makes (PING,
        SIGN, VERIFY, STATUS) is idempotent, so a request the daemon got
        before the break does no harm when repeated."""
        with self._lock:
            retried = False
            while True:
                if self._sock is None:
                    self._connect()
                try:
                    return attempt(arg)
                except _Broken as e:
                    self._close()
                    if retried:
                        raise Error("disconnected",
                                    f"connection to {self.socket} lost again after "
                                    f"reconnecting ({e}); is securelinkd restarting?") from None
                    retried = True
                except BaseException:
                    # Timeout, protocol error, KeyboardInterrupt: answers may
                    # still be on their way, so this connection is out of step.
                    self._close()
                    raise

    def _connect(self):
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            s.settimeout(self.timeout)
            s.connect(self.socket)
            # Blocking from here on, bounded by the kernel's timeouts:
            # _roundtrip() waits in send()/recv() themselves, _pump() passes
            # MSG_DONTWAIT and waits in its selector.
            s.settimeout(None)
            if self.timeout is not None:
                tv = _timeval(self.timeout)
                s.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDTIMEO, tv)
                s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO, tv)
        except _socket.timeout:
            s.close()
            raise Error("unreachable", f"cannot connect to {self.socket}: timed out after "
                        f"{self.timeout}s (is securelinkd overloaded or stopped?)") from None
        except OSError as e:
            s.close()
            raise Error("unreachable", f"cannot connect to {self.socket}: "
                        f"{os.strerror(e.errno) if e.errno else e} ({_connect_hint(e.errno)})") from None
        self._sock = s

    def _close(self):
        self._asked_cache = False
        self._cache_refusal = None
        s, self._sock = self._sock, None
        if s is not None:
            s.close()

    def _pump(self, lines, start, answers):
        """Writes lines[start:] and reads their answers at the same time,
        appending them to answers."""
        sock = self._sock
        want = len(lines)
        nxt = start
        out = bytearray()
        inbuf = b""
        # Set when the daemon stopped reading: nothing more is written, but
        # what it said before hanging up is still read.
        write_failed = None
        sel = selectors.DefaultSelector()
        try:
            sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            mask = selectors.EVENT_READ | selectors.EVENT_WRITE
            while len(answers) < want:
                while len(out) < _CHUNK and nxt < want and write_failed is None:
                    out += lines[nxt]
                    nxt += 1
                m = selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0)
                if m != mask:
                    sel.modify(sock, m)
                    mask = m
                events = sel.select(self.timeout)
                if not events:
                    raise self._timeout(len(answers), want)
                ev = events[0][1]
                if ev & selectors.EVENT_WRITE and out:
                    try:
                        n = sock.send(out, _socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        n = 0
                    except (BrokenPipeError, ConnectionResetError) as e:
                        write_failed = e.strerror
                        out.clear()
                        continue
                    del out[:n]
                if ev & selectors.EVENT_READ:
                    try:
                        data = sock.recv(_CHUNK, _socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except ConnectionResetError as e:
                        self._refused(answers, start)
                        raise _Broken(e.strerror) from None
                    if not data:
                        self._refused(answers, start)
                        raise _Broken(write_failed or "end of file")
                    inbuf += data
                    if data.find(b"\n") < 0:  # find(): see _roundtrip()
                        if len(inbuf) > _ANSWER_MAX:
                            raise Error("protocol", f"securelinkd sent more than {_ANSWER_MAX}"
                                        " bytes without ending the answer line")
                        continue
                    *complete, inbuf = inbuf.split(b"\n")
                    if len(answers) + len(complete) > want:
                        raise Error("protocol", f"securelinkd sent {len(answers) + len(complete)}"
                                    f" answers to {want} requests")
                    for raw in complete:
                        answers.append(_parse_answer(raw))
        finally:
            sel.close()

    def _roundtrip(self, line):
        """Sends one request line and returns its (ok, rest)."""
        sock = self._sock
        write_failed = None
        try:
            sock.sendall(line)
        except BlockingIOError:  # SO_SNDTIMEO: the daemon stopped reading
            raise self._timeout(0, 1) from None
        except (BrokenPipeError, ConnectionResetError) as e:
            # The daemon hung up; what it said before (a refusal at
            # max_connections) is still to be read.
            write_failed = e.strerror
        buf = b""
        while True:
            try:
                data = sock.recv(_CHUNK)
            except BlockingIOError:  # SO_RCVTIMEO
                raise self._timeout(0, 1) from None
            except ConnectionResetError as e:
                self._ended(buf)
                raise _Broken(e.strerror) from None
            if not data:
                self._ended(buf)
                # Also half an answer: the request goes again on a new
                # connection.
                raise _Broken(write_failed or "end of file")
            buf += data
            # find(), not "in": bytes' "in" first tries b"\n" as an
            # integer and formats the TypeError it then drops.
            end = data.find(b"\n")
            if end >= 0:
                if end != len(data) - 1:  # more after the answer's LF
                    raise Error("protocol", "securelinkd sent more than one answer to one request")
                break
            if len(buf) > _ANSWER_MAX:
                raise Error("protocol", f"securelinkd sent more than {_ANSWER_MAX}"
                            " bytes without ending the answer line")
        return _parse_answer(buf[:-1])

    def _ask_cache(self):
        """CACHE, once per connection: whether securelinkd rounds expiry
        times, and its page (SCM_RIGHTS) if so. A daemon without CACHE
        (unknown-verb) or without a granularity: no cache."""
        sock = self._sock
        self._asked_cache = True
        write_failed = None
        try:
            sock.sendall(b"CACHE\n")
        except BlockingIOError:
            raise self._timeout(0, 1) from None
        except (BrokenPipeError, ConnectionResetError) as e:
            # What securelinkd said before hanging up is still to be read.
            write_failed = e.strerror
        buf = b""
        fds = []
        try:
            while not buf.endswith(b"\n"):
                try:
                    data, anc, _, _ = sock.recvmsg(_CHUNK, _socket.CMSG_SPACE(
                        array.array("i").itemsize))
                except BlockingIOError:
                    raise self._timeout(0, 1) from None
                except ConnectionResetError as e:
                    raise _Broken(e.strerror) from None
                for level, kind, payload in anc:
                    if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                        a = array.array("i")
                        a.frombytes(payload[:len(payload) - len(payload) % a.itemsize])
                        fds += a
                if not data:
                    raise _Broken(write_failed or "end of file")
                buf += data
                if len(buf) > _ANSWER_MAX or buf.count(b"\n") > 1:
                    raise Error("protocol", "securelinkd sent more than one answer to CACHE")
            ok, rest = _parse_answer(buf[:-1])
            if not ok:
                self._cache_refusal = rest
            fields = dict(kv.partition("=")[::2] for kv in rest.split()) if ok else {}
            try:
                granularity = int(fields.get("granularity", "0"))
                default_ttl = int(fields.get("default_ttl", "0"))
            except ValueError:
                raise Error("protocol", f"unexpected answer to CACHE: {rest[:80]!r}") from None
            if granularity <= 0 or default_ttl <= 0 or not fds or not fields.get("expires_param"):
                self._gen = None
                self._cache.clear()
                return
            page = mmap.mmap(fds[0], _PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
            if page[:8] != _PAGE_MAGIC:
                raise Error("protocol", "the page securelinkd passed with CACHE is not "
                            "its cache page")
            self._default_ttl = default_ttl
            self._expires_marks = _expires_marks(fields["expires_param"])
            self._gen = memoryview(page).cast("Q")
        finally:
            for fd in fds:
                os.close(fd)

    def _ended(self, buf):
        """The connection ended before an answer: when CACHE, its first
        request, got an ERR, that was securelinkd refusing the connection
        (max_connections), not an answer; raised with its reason. The end
        shows as end of file or, when our request was still unread there,
        as ECONNRESET."""
        if self._cache_refusal is not None and not buf:
            code, message = self._cache_refusal
            raise Error(code, f"securelinkd at {self.socket} refused the connection: {message}")

    def _timeout(self, got, want):
        return Error("timeout", f"securelinkd at {self.socket} did not answer "
                     f"within {self.timeout}s ({got} of {want} answers)")

    def _refused(self, answers, start):
        """At the end of a connection: when its only answer was an ERR while
        more requests were outstanding, that ERR was no answer but securelinkd
        refusing the connection (max_connections) before reading a request.
        Raises it as the error of the whole call, with the daemon's reason."""
        if len(answers) - start == 1 and not answers[start][0]:
            code, message = answers.pop()[1]
            raise Error(code, f"securelinkd at {self.socket} refused the connection: "
                        f"{message}")


_clients = weakref.WeakSet()


def _after_fork_in_child():
    # The child must not read answers meant for the parent: it drops the
    # inherited connection (close() never calls shutdown(), so the parent's
    # stays up) and opens its own. The lock is new: another thread may have
    # held it at fork() and that thread does not exist in the child.
    for c in list(_clients):
        c._lock = threading.Lock()
        c._close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _expires_marks(param):
    """What _expires_of() looks for: the parameter after "?" and after "&"."""
    return ("?" + param + "=", "&" + param + "=")


def _expires_of(url, marks):
    """The expires parameter of a signed link, or None (a public link);
    marks: _expires_marks() of the parameter's name."""
    q = url.find("?")
    if q < 0:
        return None
    for mark in marks:
        i = url.find(mark, q)
        if i >= 0:
            i += len(mark)
            j = url.find("&", i)
            try:
                return int(url[i:] if j < 0 else url[i:j])
            except ValueError:
                return None
    return None


def _timeval(seconds):
    """struct timeval for SO_SNDTIMEO/SO_RCVTIMEO; 0 there means "never",
    so a zero timeout becomes the shortest one instead."""
    usec = max(1, int(seconds * 1_000_000))
    return struct.pack("@ll", usec // 1_000_000, usec % 1_000_000)


def _parse_answer(raw):
    text = raw.rstrip(b"\r").decode("utf-8", "replace")
    if text.startswith("OK ") or text == "OK":
        return True, text[3:]
    if text.startswith("ERR "):
        code, _, message = text[4:].partition(" ")
        if code:
            return False, (code, message)
    raise Error("protocol", f"unexpected answer from securelinkd: {text[:80]!r}")
