# SPDX-License-Identifier: MIT
"""Authorization and secrecy of the real securelinkd: who may connect, the
modes of the files that hold secrets, the process not being dumpable, and
no key material in anything the daemon or securelinkctl says.

Covered in test_daemon.py and test_ctl.py, not repeated: ROTATE and IMPORT
are forbidden for a uid outside admin_group (and allowed by its gid or
membership); securelinkctl's messages for an unreachable or forbidden
socket."""

import base64
import os
import re
import stat
import subprocess
import sys
import time

import pytest

from daemonsite import RETRY_TIMEOUT, TIMEOUT, b64url, daemon_binary, make_daemon  # noqa: F401 (a fixture)

PRIVATE = "/media/private/report.pdf"
NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (setpriv to uid 65534, chown)")


def ctl_binary():
    return os.path.join(os.path.dirname(os.path.dirname(daemon_binary())), "client",
                        "securelinkctl")


AS_OTHER = r"""
import errno, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect", errno.errorcode[e.errno])
    sys.exit(0)
f = s.makefile("rwb")
for line in sys.argv[2:]:
    f.write(line.encode() + b"\n")
    f.flush()
    print(f.readline().decode().rstrip("\n"))
"""


def as_user(d, setpriv, *lines):
    p = subprocess.run(setpriv + [sys.executable, "-c", AS_OTHER, d.socket, *lines],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    answers = p.stdout.splitlines()
    d.answers.extend(answers)
    return answers


# --- the socket ------------------------------------------------------------------


@needs_root
def test_socket_0660_lets_in_its_group_and_nobody_else(make_daemon):
    d = make_daemon()
    st = os.stat(d.socket)
    # Bound by the daemon (root): 0660 root:root.
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, 0)
    # uid 65534 outside the group: the kernel refuses the connect itself.
    assert as_user(d, AS_NOBODY, "PING") == ["connect EACCES"]
    # In the socket's group (as the securelink group grants it): in. As the
    # primary gid and as a supplementary group both.
    os.chown(d.socket, 0, NOBODY)
    assert as_user(d, AS_NOBODY, "PING") == ["OK pong"]
    other = ["setpriv", f"--reuid={NOBODY}", "--regid=0", f"--groups={NOBODY}"]
    assert as_user(d, other, "PING") == ["OK pong"]
    os.chown(d.socket, 0, 0)
    assert as_user(d, other, "PING") == ["OK pong"]  # gid 0 now
    # The file's mode was never widened by the daemon.
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o660


# --- file modes ------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_secret_files_have_their_modes_whatever_the_umask(make_daemon, umask):
    d = make_daemon(start=False)
    os.rmdir(d.state)  # the daemon creates it
    old = os.umask(umask)
    try:
        d.start()
    finally:
        os.umask(old)
    d.start_nginx()
    kid = d.wait_active()
    assert d.rotate() == kid + 1
    assert d.ask(f"IMPORT {b64url(b'legacy-secret-for-modes')}").startswith("OK kid=")
    d.rotate(revoke=True)

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)

    assert mode(d.state) == 0o700
    assert mode(d.keyring) == 0o600
    assert mode(d.keyring_prev) == 0o600
    assert mode(d.keys_file) == 0o600  # nginx's master reads it as root; not the group
    assert mode(d.locations_file) == 0o644  # no secret in it
    # cache-page: the clients' link cache (docs/client-cache.md), a magic
    # and a counter, passed to them as a descriptor, never by name.
    assert sorted(os.listdir(d.state)) == ["cache-page", "keyring", "keyring.prev"]
    page = os.path.join(d.state, "cache-page")
    assert mode(page) == 0o600
    with open(page, "rb") as f:
        data = f.read()
    assert len(data) == 4096 and data[:8] == b"SLCACHE1" and data[16:] == bytes(4096 - 16)
    assert sorted(os.listdir(os.path.dirname(d.keys_file))) == ["keys.conf", "locations.conf"]
    for p in (d.state, d.keyring, d.keyring_prev, d.keys_file, d.socket):
        assert os.stat(p).st_mode & 0o007 == 0, p
    d.add_file("private/report.pdf")
    assert d.status_of(d.sign(PRIVATE)) == 200


# --- not dumpable ------------------------------------------------------------------


@needs_root
def test_the_daemon_is_not_dumpable(make_daemon):
    """prctl(PR_SET_DUMPABLE) cannot be read from outside, but it shows: the
    /proc/PID files of a non-dumpable process belong to root, whatever its
    uid, and another process of the same uid may not read its environment
    or memory. Run as root the daemon would look the same either way, so it
    runs as uid 65534 here, next to a plain process of that uid."""
    d = make_daemon(start=False)
    run = os.path.join(d.dir, "run")
    os.mkdir(run)
    for p in (run, d.state, os.path.dirname(d.keys_file)):
        os.chown(p, NOBODY, NOBODY)
    d.socket = os.path.join(run, "sl.sock")
    d.set_option("daemon", "socket", d.socket)
    # No nginx for an unprivileged daemon: only the keys are needed here.
    d.set_option("nginx", "test_command", "/bin/true")
    d.set_option("nginx", "reload", "none")
    d.wrapper = AS_NOBODY
    d._open_notify()
    os.chmod(os.path.join(d.dir, "notify.sock"), 0o666)  # READY=1 from uid 65534
    d.start()
    d.wait_active()
    pid = d.proc.pid

    plain = subprocess.Popen(AS_NOBODY + ["sleep", "60"])
    try:
        with open(f"/proc/{pid}/status") as f:
            uids = re.search(r"^Uid:\s+(.*)$", f.read(), re.M).group(1).split()
        assert uids == [str(NOBODY)] * 4  # it is uid 65534 through and through
        # The control: a dumpable process's files are its own.
        deadline = time.monotonic() + TIMEOUT
        while os.stat(f"/proc/{plain.pid}/environ").st_uid != NOBODY:
            assert time.monotonic() < deadline, "setpriv did not switch uid"
            time.sleep(0.01)
        for name in ("environ", "mem", "maps", "fd"):
            assert os.stat(f"/proc/{pid}/{name}").st_uid == 0, name

        probe = r"""
import sys
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            f.read(1)
        print(path, "read")
    except OSError as e:
        print(path, type(e).__name__)
"""
        paths = [f"/proc/{p}/{n}" for p in (pid, plain.pid) for n in ("environ", "maps")]
        r = subprocess.run(AS_NOBODY + [sys.executable, "-c", probe] + paths,
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stderr
        got = dict(line.rsplit(" ", 1) for line in r.stdout.splitlines())
        assert got == {paths[0]: "PermissionError", paths[1]: "PermissionError",
                       paths[2]: "read", paths[3]: "read"}, got
    finally:
        plain.kill()
        plain.wait()
    assert d.ask("PING") == "OK pong"


# --- no secret anywhere --------------------------------------------------------------


def encodings(secret):
    """The forms a secret could leak in: as nginx has it, as the key ring
    stores it (base64url), hex, standard base64, and for a 32-byte key the
    raw bytes' hex and base64 too."""
    b = secret.encode()
    out = {secret, b64url(b), b.hex(), base64.b64encode(b).decode().rstrip("=")}
    try:
        raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
        if len(raw) == 32:
            out |= {raw.hex(), base64.b64encode(raw).decode().rstrip("=")}
    except ValueError:
        pass
    return out


def pieces(text, n=16):
    """Every n-character piece of text: a secret cut short (an error that
    quotes the first bytes) is a leak too."""
    return {text[i:i + n] for i in range(len(text) - n + 1)} if len(text) >= n else {text}


def ring_secrets(d):
    """The encoded secrets as the key ring file holds them."""
    with open(d.keyring) as f:
        return set(re.findall(r"^key \d+ \S+ \d \d+ \d+ \d+ \d+ (\S+)$", f.read(), re.M))


@needs_root
def test_no_key_material_in_logs_status_errors_notifications_or_command_output(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", b"a private report\n")
    secrets = set()
    outputs = {}  # what securelinkctl and securelinkd print
    env = dict(os.environ, SECURELINK_SOCKET=d.socket)

    def ctl(name, *args, input=None, user=()):
        r = subprocess.run(list(user) + [ctl_binary(), *args], input=input, capture_output=True,
                           text=True, env=env, timeout=TIMEOUT)
        outputs[name] = r.stdout + r.stderr
        return r

    def remember():
        d.keys()  # the keys file: every secret nginx has
        secrets.update(d.seen_secrets)
        secrets.update(ring_secrets(d))

    remember()
    legacy = "django-insecure-0123456789abcdefghijklmnopqrstuv"
    secrets.add(legacy)
    assert d.ask(f"IMPORT {b64url(legacy.encode())}").startswith("OK kid=")
    # Refused legacy secrets are secrets too: never echoed.
    refused = ["refused-$ecret-0123456789abcdef", 'refused-"secret-0123456789abcdef',
               "refused-\\secret-0123456789abcdef"]
    secrets.update(refused)
    for s in refused:
        assert d.ask(f"IMPORT {b64url(s.encode())}").startswith("ERR bad-request ")
    r = ctl("import-key refused", "import-key", input=refused[0] + "\n")
    assert r.returncode != 0
    remember()

    # Rotations, a revoke, links signed, verified, tampered, expired.
    for _ in range(2):
        d.rotate()
    remember()
    links = [d.sign(PRIVATE), d.sign(PRIVATE, "ttl=1"), d.sign("/media/public/x")]
    for url in links:
        d.ask(f"VERIFY {url}")
        d.ask(f"VERIFY {url.replace('token=', 'token=A')}")
    # Every kind of error answer.
    for line in ["", "FROB", "SIGN", "SIGN x", f"SIGN {PRIVATE} ttl=0",
                 f"SIGN {PRIVATE} ttl=999999", f"SIGN {PRIVATE} ip=x", "ROTATE now", "IMPORT",
                 "IMPORT !!", "VERIFY /x ip=1",
                 f"VERIFY {links[0]} ip=999.0.0.1", "STATUS x"]:
        assert d.ask(line).startswith("ERR ")
    with d.connect() as c:
        c.send("P" * 9000 + "\n")
        assert c.read_line().startswith("ERR line-too-long ")
    os.chmod(d.socket, 0o666)
    answers = as_user(d, AS_NOBODY, "ROTATE", "ROTATE revoke", f"IMPORT {b64url(b'x' * 40)}",
                      f"SIGN {PRIVATE}")
    assert [a.split()[:2] for a in answers[:3]] == [["ERR", "forbidden"]] * 3
    ctl("rotate as nobody", "rotate", user=AS_NOBODY)
    os.chmod(d.socket, 0o660)
    # nginx failing: its own error text travels into ERR, STATUS, sd_notify
    # and the log.
    with open(d.extra_conf, "w") as f:
        f.write("include /nonexistent/securelink-test/broken.conf;\n")
    assert d.ask("ROTATE revoke").startswith("ERR unavailable ")
    outputs["status while failing"] = ctl("status", "status").stdout
    remember()  # the new key is in the file, not yet active
    with open(d.extra_conf, "w") as f:
        f.write("# fixed\n")
    d.wait_status(lambda s: len(s["keys"]) == 1 and s["nginx"]["ok"], timeout=RETRY_TIMEOUT,
                  what="the retried revoke")
    remember()
    d.rotate()
    remember()

    # securelinkctl and securelinkd's own outputs.
    ctl("status", "status")
    ctl("status --json", "--json", "status")
    ctl("verify", "verify", links[0])
    ctl("sign", "sign", PRIVATE, "/media/public/x")
    ctl("rotate", "rotate")
    ctl("nginx-config", "nginx-config", "-c", d.conf)
    ctl("help", "--help")
    for name, args in (("check-config", ["-c", d.conf, "--check-config"]), ("help", ["--help"])):
        r = subprocess.run([daemon_binary(), *args], capture_output=True, text=True,
                           timeout=TIMEOUT)
        outputs["securelinkd " + name] = r.stdout + r.stderr
    remember()
    # A restart: the start-up messages.
    d.restart()
    d.status()
    remember()

    assert len(secrets) >= 8
    needles = set()
    for s in secrets:
        for e in encodings(s):
            needles |= pieces(e)
    texts = {"the daemon's log": d.log_text()}
    texts.update({f"answer {i}": a for i, a in enumerate(d.answers)})
    texts.update({f"sd_notify {i}": n for i, n in enumerate(d.notifications_since())})
    texts.update({f"output of {k}": v for k, v in outputs.items()})
    assert any("broken.conf" in t for t in texts.values())  # the errors are in there
    for name, text in texts.items():
        for needle in needles:
            assert needle not in text, f"a piece of a secret ({needle[:4]}...) is in {name}"


# --- no secret left in the heap ------------------------------------------------------


# Anonymous mappings larger than this are address space reserved by a
# sanitizer runtime (shadow memory), not the allocator's memory.
ALLOCATOR_MAPPING_MAX = 64 << 20


def heap_holds(pid, needles):
    """Which of needles (bytes) are in the memory the process's allocator
    hands out, read through /proc/PID/mem (root may, though the daemon is not
    dumpable): [heap], and the private anonymous writable mappings where
    glibc puts large blocks and ASan its whole heap."""
    ranges = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            anonymous = len(fields) < 6
            if (len(fields) == 6 and fields[5] == "[heap]") or (
                    anonymous and fields[1] == "rw-p" and end - start <= ALLOCATOR_MAPPING_MAX):
                ranges.append((start, end))
    assert ranges, "no heap mapping"
    found = set()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end in ranges:
            mem.seek(start)
            try:
                data = mem.read(end - start)
            except OSError:  # a guard page, or a mapping gone meanwhile
                continue
            found |= {n for n in needles if n in data}
    return found


@needs_root
def test_an_imported_secret_is_not_left_in_the_heap(make_daemon):
    d = make_daemon()
    legacy = "legacy-heap-secret-" + os.urandom(16).hex()
    encoded = b64url(legacy.encode())
    # Any 16-byte piece of the secret, as nginx has it or as IMPORT carries it.
    needles = {p.encode() for p in pieces(legacy) | pieces(encoded)}
    control = f"SIGN {PRIVATE} ttl=3600 tail-{os.urandom(8).hex()}".encode()

    with d.connect() as a, d.connect() as b:
        # IMPORT waits for nginx; others are served meanwhile.
        a.send(f"IMPORT {encoded}\n")
        for _ in range(50):
            assert b.ask("PING") == "OK pong"
        assert a.read_line().startswith("OK kid=")
        # 400 more requests, as applications send them: on the same
        # connection, and one per connection.
        for _ in range(100):
            assert a.ask("PING") == "OK pong"
    for i in range(300):
        assert d.ask(f"SIGN /media/private/{i}.pdf").startswith("OK ")
    # The scan sees what the daemon keeps: an unfinished line (no LF yet)
    # waits in its connection's input buffer.
    with d.connect() as c:
        c.send(control.decode())
        deadline = time.monotonic() + TIMEOUT
        while control not in heap_holds(d.proc.pid, {control}):
            assert time.monotonic() < deadline, "the scan does not see the daemon's buffers"
            time.sleep(0.05)
        found = heap_holds(d.proc.pid, needles)
    assert not found, f"{len(found)} pieces of the imported secret left in the daemon's heap"
