# SPDX-License-Identifier: MIT
"""Crash consistency: securelinkd is SIGKILLed at random moments of its
rotations (publish, activate, drop, revoke) and restarted, while a client
keeps signing links and fetching them through a real nginx. No key may be
lost, and no link may be signed with a key nginx does not have.

The kill moments come from a seeded RNG; the seed is printed (and is in
every failure message). By hand:

    SECURELINK_CRASH_ROUNDS=500 SECURELINK_CRASH_SEED=1234 \\
        python3 -m pytest -s tests/integration/test_crash.py

Then, at precise moments rather than random ones: the nginx test command
is made to stop at a chosen snippet (a shell wrapper around `nginx -t`
that waits), so the kill lands exactly between "snippet written" and
"nginx reloaded"."""

import base64
import collections
import os
import random
import re
import signal
import subprocess
import threading
import time

from daemonsite import RETRY_TIMEOUT, TIMEOUT, Client, make_daemon, query  # noqa: F401 (a fixture)
from nginxsite import NGINX

PRIVATE = "/media/private/report.pdf"
BODY = b"a private report\n"
# 50 rounds take ~25 s here; SECURELINK_CRASH_ROUNDS runs it long by hand.
ROUNDS = int(os.environ.get("SECURELINK_CRASH_ROUNDS") or "50")
# The kill comes this long (uniformly) after the ROTATE was sent: a
# rotation here (write, nginx -t, SIGHUP, new workers, activation delay,
# and after a revoke a second reload) takes a few hundred ms, so the kills
# spread over every phase; drops run on their own schedule in between.
MAX_KILL_DELAY = 0.35


class Fetch:
    __slots__ = ("kid", "url", "expires", "end", "end_wall", "status")

    def __init__(self, kid, url, expires):
        self.kid, self.url, self.expires = kid, url, expires
        self.end = self.end_wall = self.status = None


class Revoke:
    """A ROTATE revoke sent at `sent` (monotonic): it may revoke every key
    below `below` (the pending key it activates, or the next kid), from
    that moment on; killed, it may still take effect after the restart."""

    def __init__(self, sent, below):
        self.sent, self.below = sent, below


class SigningClient(threading.Thread):
    """Signs PRIVATE and fetches each link at once, again and again;
    reconnects whenever the daemon is gone (killed) and retries."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d = d
        self.stop = threading.Event()
        self.fetches = []
        self.refused = []   # SIGN answers other than OK: there must be none
        self.failure = None
        self.reconnects = 0

    def _sign(self, conn):
        conn.send(f"SIGN {PRIVATE}\n")
        return conn.read_line()

    def run(self):
        conn = None
        try:
            while not self.stop.is_set():
                if conn is None:
                    try:
                        conn = Client(self.d, timeout=TIMEOUT)
                    except OSError:  # killed: no socket, or nobody listening
                        time.sleep(0.01)
                        continue
                try:
                    answer = self._sign(conn)
                except OSError:
                    answer = None
                if answer is None:  # the daemon died under us
                    conn.close()
                    conn = None
                    self.reconnects += 1
                    continue
                if not answer.startswith("OK "):
                    self.refused.append(answer)
                    continue
                url = answer[3:]
                q = query(url)
                f = Fetch(int(q["kid"]), url, int(q["expires"]))
                f.status = self.d.status_of(url)
                f.end, f.end_wall = time.monotonic(), time.time()
                self.fetches.append(f)
        except Exception as e:  # reported by the test
            self.failure = e
        finally:
            if conn:
                conn.close()


def revoked(f, revokes, at):
    """Whether a revoke sent before `at` (monotonic) may have removed f's key."""
    return any(r.sent < at and f.kid < r.below for r in revokes)


def round_story(d, rounds, revokes, bad):
    """For a failure: the rounds around the failed fetch, each with what the
    daemon logged in it, and the revokes as the test counted them."""
    end = bad[3]
    at = max([i for i, r in enumerate(rounds) if r[0] <= end] or [0])
    with open(d.log, "rb") as f:
        log = f.read()
    out = [f"the first failed fetch ended in round {at} "
           f"({end - rounds[at][0]:.3f}s after its ROTATE); revokes (sent, below): "
           + ", ".join(f"({r.sent - rounds[0][0]:.3f}, {r.below})" for r in revokes)]
    for i in range(max(0, at - 2), min(len(rounds), at + 2)):
        start, pos, revoke, delay = rounds[i]
        stop = rounds[i + 1][1] if i + 1 < len(rounds) else len(log)
        out.append(f"--- round {i} at {start - rounds[0][0]:.3f}s: "
                   f"{'ROTATE revoke' if revoke else 'ROTATE'}, killed {delay:.3f}s later\n"
                   + log[pos:stop].decode(errors="replace"))
    return "\n".join(out)


def last_phase(log_tail):
    """What the daemon was doing when it was killed, from its last log line
    about the rotation (only printed, as a histogram)."""
    phase = "idle (ROTATE not read yet)"
    for line in log_tail.splitlines():
        if "requested over the socket" in line:
            phase = "ROTATE read (a key from before the restart still syncing)"
        elif "Created key" in line:
            phase = "publish (key saved, nginx not confirmed)"
        elif "are published to nginx" in line:
            phase = "activation delay (nginx confirmed)"
        elif re.search(r"Key \d+ is active; every older key is revoked", line):
            phase = "revoke sync (older keys leaving nginx)"
        elif re.search(r"Key \d+ is active", line):
            phase = "active (rotation done)"
        elif "Dropped" in line:
            phase = "drop sync"
        elif "Publishing keys to nginx failed" in line:
            phase = "failed sync"
    return phase


def test_sigkill_at_random_moments_of_rotations_loses_no_key_and_never_signs_one_nginx_lacks(
        make_daemon):
    seed = int(os.environ.get("SECURELINK_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    tag = f"[seed {seed}, SECURELINK_CRASH_SEED={seed} repeats the kill schedule]"
    print(f"\ncrash test: {ROUNDS} rounds {tag}")
    rng = random.Random(seed)

    # max_link_ttl 4s: a retired key is dropped 5s after it retires, so
    # drops keep happening (and get killed) throughout the run. clock_skew
    # 1s: nginx counts a link valid through its expires second.
    d = make_daemon({"keys": {"rotate_every": "1h", "max_link_ttl": "4s",
                              "default_link_ttl": "4s", "clock_skew": "1s",
                              "activation_delay": "100ms"}})
    d.add_file("private/report.pdf", BODY)
    first_kid = d.status()["active_kid"]

    client = SigningClient(d)
    revokes = []
    rounds = []  # (monotonic start, daemon log offset, revoke?, kill delay)
    phases = collections.Counter()
    rechecked = 0
    client.start()
    try:
        for rnd in range(ROUNDS):
            revoke = rng.random() < 0.2
            if revoke or rng.random() < 0.7:
                # Mostly a fresh rotation per round; otherwise the kill
                # may land in the re-sync a restart starts for a key
                # published before the last kill. A revoke always waits:
                # a resumed activation between this STATUS and the ROTATE
                # would change which keys it revokes.
                st = d.wait_status(lambda s: all(k["state"] != "published" for k in s["keys"]),
                                   timeout=RETRY_TIMEOUT,
                                   what="the rotation resumed after the restart")
            else:
                st = d.status()
            assert st["active_kid"] is not None, f"no active key after a restart {tag}"
            pending = [k["kid"] for k in st["keys"] if k["state"] == "published"]
            top = max(k["kid"] for k in st["keys"])
            delay = rng.uniform(0, MAX_KILL_DELAY)

            with open(d.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                log_pos = f.tell()
            rounds.append((time.monotonic(), log_pos, revoke, delay))
            c = d.connect()
            if revoke:
                revokes.append(Revoke(time.monotonic(), pending[0] if pending else top + 1))
            c.send("ROTATE revoke\n" if revoke else "ROTATE\n")
            time.sleep(delay)
            assert d.stop(signal.SIGKILL) == -signal.SIGKILL, f"the daemon died by itself {tag}"
            c.close()
            with open(d.log, "rb") as f:
                f.seek(log_pos)
                phases[last_phase(f.read().decode(errors="replace"))] += 1

            # The key ring must load, every time.
            d.start()

            # Every key's newest link signed before this kill, not expired,
            # its key not revoked: nginx still serves it (the restart lost
            # no key, and the ring loaded is the one nginx has).
            newest = {}
            for f in list(client.fetches):
                newest[f.kid] = f
            for f in newest.values():
                if f.expires < time.time() + 1 or revoked(f, revokes, time.monotonic()):
                    continue
                got = d.status_of(f.url)
                # A revoke of this round may have landed meanwhile, and a
                # slow fetch may end past the link's expires second.
                if got == 403 and revoked(f, revokes, time.monotonic()):
                    continue
                if got == 410 and f.expires < int(time.time()):
                    continue
                assert got == 200, (f"round {rnd}: a link of key {f.kid} signed before "
                                    f"the kill got {got} after the restart {tag}\n"
                                    + d.diagnostics())
                rechecked += 1
    finally:
        client.stop.set()
        client.join(TIMEOUT)
    assert not client.is_alive()
    assert client.failure is None, f"{client.failure!r} {tag}"
    assert not client.refused, f"SIGN was refused: {client.refused[:5]} {tag}"

    # A clean stop and start: the ring loads, nginx -t passes.
    assert d.stop() == 0
    d.start()
    # Writes cut short by the kills left temp files (old rings, secrets of
    # revoked keys among them): the start removed them.
    leftovers = [n for n in os.listdir(d.state) if n.endswith(".tmp")]
    assert not leftovers, f"temp files left after a start: {leftovers} {tag}"
    r = subprocess.run([NGINX, "-t", "-q", "-p", d.dir + "/", "-c", d.nginx_conf,
                        "-e", d.error_log], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, f"nginx -t fails after the crashes: {r.stderr} {tag}"
    st = d.status()
    final_kid = st["active_kid"]

    # No fetch ever got 403 for a link whose key was not revoked: nothing
    # was signed with a key nginx did not have, no live key was dropped.
    # A 410 only for a link past its expires second.
    bad = []
    for f in client.fetches:
        if f.status == 200:
            continue
        if f.status == 403 and revoked(f, revokes, f.end):
            continue
        if f.status == 410 and f.expires < int(f.end_wall):
            continue
        bad.append((f.kid, f.status, f.url, f.end))
    kids = {f.kid for f in client.fetches}
    print(f"crash test: {len(client.fetches)} fetches, keys {first_kid}..{final_kid} "
          f"({len(kids)} of them signed links), {len(revokes)} revokes, {client.reconnects} "
          f"reconnects, {rechecked} re-fetches after restarts")
    print("crash test: killed during: " + ", ".join(f"{p}: {n}" for p, n in phases.most_common()))
    assert not bad, (f"{len(bad)} of {len(client.fetches)} fetches failed: {bad[:5]} {tag}\n"
                     + round_story(d, rounds, revokes, bad[0]))
    # The run meant something: many keys came and went under the client.
    assert len(client.fetches) >= ROUNDS, tag
    # (Each start tests and reloads nginx first, and a kill often lands
    # there: not every round makes a key, a quarter of them surely do.)
    assert final_kid - first_kid >= ROUNDS // 4, tag
    assert len(kids) >= ROUNDS // 4, tag

    # The last links, not expired and not revoked, still work.
    now = time.monotonic()
    for f in client.fetches[-20:]:
        if f.expires >= time.time() + 1 and not revoked(f, revokes, now):
            got = d.status_of(f.url)
            assert got == 200 or (got == 410 and f.expires < int(time.time())), (f.kid, got, tag)
    # And nginx holds exactly the ring's keys once the daemon has settled:
    # the keys file lists them, and a live link of a key that left the
    # ring (revoked) is refused by the running nginx.
    ring = {k["kid"] for k in d.wait_status(
        lambda s: s["nginx"]["ok"] and all(k["state"] != "published" for k in s["keys"]),
        timeout=RETRY_TIMEOUT, what="the daemon to settle")["keys"]}
    _, in_file = d.keys()
    assert set(in_file) == ring, tag
    newest = {}
    for f in client.fetches:
        newest[f.kid] = f
    for f in newest.values():
        if f.kid not in ring and f.expires >= time.time() + 1:
            got = d.status_of(f.url)
            assert got == 403 or (got == 410 and f.expires < int(time.time())), (
                f"key {f.kid} left the ring but nginx still accepts its links ({got}) {tag}")
    # What SIGKILL leaves behind: temp files of interrupted atomic writes
    # (0600/0640 like the files they were to replace).
    for sub in (d.state, os.path.dirname(d.keys_file)):
        for name in os.listdir(sub):
            if name.endswith(".tmp"):
                mode = os.stat(os.path.join(sub, name)).st_mode & 0o777
                print(f"crash test: left behind: {sub}/{name} mode {mode:o}")
                assert mode & 0o007 == 0, tag
    d.assert_no_secret_leaked()


# --- kills at chosen moments -----------------------------------------------

TRAP = """#!/bin/sh
# The nginx test command, unless the trap is armed and the keys file about
# to be tested matches it: then it says so and waits (to be killed).
# armed holds "absent KID" or "present KID".
set -- "$@"
if read how kid < {armed} 2>/dev/null; then
    if grep -q "^[[:space:]]*\\"$kid\\"" {keys}; then has=present; else has=absent; fi
    if [ "$has" = "$how" ]; then
        echo $$ > {trapped}.tmp && mv {trapped}.tmp {trapped}
        exec sleep 60
    fi
fi
exec "$@"
"""


class Trap:
    """Makes the daemon's nginx test stop at the first keys file in which
    key `kid` is present or absent: the file is written, nginx has not
    loaded it, and the daemon waits for the test. Returns from spring()
    at that moment."""

    def __init__(self, d):
        self.d = d
        self.armed = os.path.join(d.dir, "trap.armed")
        self.trapped = os.path.join(d.dir, "trap.pid")
        script = os.path.join(d.dir, "trap.sh")
        with open(script, "w") as f:
            f.write(TRAP.format(armed=self.armed, keys=d.keys_file, trapped=self.trapped))
        d.set_option("nginx", "test_command",
                     f"/bin/sh {script} " + d.options["nginx"]["test_command"])
        d.sighup()  # nothing changed for nginx: no reload

    def arm(self, how, kid):
        with open(self.armed, "w") as f:
            f.write(f"{how} {kid}\n")

    def wait_sprung(self):
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(self.trapped):
            assert time.monotonic() < deadline, "the trap never sprang\n" + self.d.diagnostics()
            assert self.d.proc.poll() is None, self.d.diagnostics()
            time.sleep(0.01)

    def release(self):
        """Disarms, and ends the waiting test command (an orphan by now)."""
        os.unlink(self.armed)
        with open(self.trapped) as f:
            pid = int(f.read())
        os.unlink(self.trapped)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def reload_confirmed_after(d, log_pos, timeout):
    """Whether the daemon's log, from log_pos on, says a reload was
    confirmed within timeout (the signal the daemon gives; None when it
    never comes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(d.log, "rb") as f:
            f.seek(log_pos)
            if b"(reload confirmed)" in f.read():
                return True
        time.sleep(0.05)
    return False


def log_size(d):
    return os.path.getsize(d.log)


def test_kill_after_a_new_key_is_written_but_before_nginx_loaded_it(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", BODY)
    old = d.sign(PRIVATE)
    kid = int(query(old)["kid"])
    trap = Trap(d)
    trap.arm("present", kid + 1)

    with d.connect() as c:
        c.send("ROTATE\n")
        trap.wait_sprung()
        _, in_file = d.keys()
        assert kid + 1 in in_file  # written, not yet tested nor loaded
        assert d.status_of(old) == 200
        assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    trap.release()

    pos = log_size(d)
    d.start()
    # At once, before the resumed publish can have finished: still the old
    # key, which nginx has.
    now = d.sign(PRIVATE)
    assert int(query(now)["kid"]) == kid
    assert d.status_of(now) == 200
    # The restart finishes the rotation: the new key reaches nginx, then signs.
    assert reload_confirmed_after(d, pos, TIMEOUT), d.diagnostics()
    st = d.wait_status(lambda s: s["active_kid"] == kid + 1, what="the resumed rotation")
    new = d.sign(PRIVATE)
    assert int(query(new)["kid"]) == kid + 1
    assert d.status_of(new) == 200
    assert d.status_of(old) == 200
    assert d.status_of(now) == 200
    assert st["nginx"]["ok"] is True


# A kill between writing a revoke's keys file and nginx loading it: the file on
# disk already matches the ring, so only a reload at every start (which the
# daemon does) gets the revoked key out of nginx.
def test_kill_after_a_revoke_is_written_but_before_nginx_loaded_it_still_revokes(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", BODY)
    old = d.sign(PRIVATE)
    kid = int(query(old)["kid"])
    trap = Trap(d)
    trap.arm("absent", kid)

    with d.connect() as c:
        c.send("ROTATE revoke\n")
        trap.wait_sprung()
        # The revoke is persisted and the keys file without the old key
        # is written; nginx still has the old one, its links still pass.
        _, in_file = d.keys()
        assert set(in_file) == {kid + 1}
        assert d.status_of(old) == 200
        assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    trap.release()

    pos = log_size(d)
    d.start()
    st = d.status()
    assert [k["kid"] for k in st["keys"]] == [kid + 1], st
    # The daemon says the old key is gone; nginx must be told so too. A
    # revoke that silently stays out of nginx keeps a compromised key valid
    # until some later reload.
    reloaded = reload_confirmed_after(d, pos, 5)
    assert d.status_of(old) == 403, (
        "after the restart nginx still accepts links of the revoked key "
        f"(reload after restart: {reloaded})\n" + d.diagnostics())
    assert d.status_of(d.sign(PRIVATE)) == 200


# --- what a crash leaves behind --------------------------------------------


def test_derived_mode_start_removes_stale_temp_files_and_only_those(make_daemon):
    """A write cut short by a crash leaves write_file_atomic()'s temp file
    (an old keys file: secrets of epochs long gone). Every start removes
    them, in fleet mode as in local mode, and nothing that is not ours."""
    d = make_daemon(start=False)
    master = os.path.join(d.dir, "master")
    fd = os.open(master, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    d.set_option("keys", "mode", "derived")
    d.set_option("keys", "master_key_file", master)
    d.set_option("keys", "rotate_every", "1h")
    snippets = os.path.dirname(d.keys_file)
    ours = [".keys.conf.0badf00d.tmp", ".locations.conf.1234abcd.tmp"]
    others = [".keys.conf.orig.tmp", "keys.conf.tmp", ".keys.conf.0badf00d.tmp.bak"]
    for name in ours + others:
        with open(os.path.join(snippets, name), "w") as f:
            f.write("# left behind\n")

    d.start()

    left = set(os.listdir(snippets))
    assert not left & set(ours), f"stale temp files survived the start: {left & set(ours)}"
    assert set(others) <= left, f"files that are not ours were removed: {set(others) - left}"


def test_start_removes_stale_temp_files_of_the_state_directory(make_daemon):
    """A kill while the ring, its previous copy or a queued revoke was being
    saved leaves that write's temp file in the state directory (the random
    kills above found a revoke's): every start removes them, and nothing
    that is not ours."""
    d = make_daemon(start=False)
    ours = [".keyring.0badf00d.tmp", ".keyring.prev.1234abcd.tmp", ".revoke.66331a17.tmp"]
    others = [".revoke.orig.tmp", "revoke.tmp", ".keyring.0badf00d.tmp.bak"]
    for name in ours + others:
        with open(os.path.join(d.state, name), "w") as f:
            f.write("# left behind\n")

    d.start()

    left = set(os.listdir(d.state))
    assert not left & set(ours), f"stale temp files survived the start: {left & set(ours)}"
    assert set(others) <= left, f"files that are not ours were removed: {set(others) - left}"
