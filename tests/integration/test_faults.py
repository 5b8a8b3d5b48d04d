# SPDX-License-Identifier: MIT
"""Faults around the real securelinkd and a real nginx: a full disk under
the key ring and under the nginx snippets (a small tmpfs, filled), an nginx
whose configuration test fails or that is not running while a revoke waits,
a pid file that names no nginx, a deleted key ring.

Each fault: the files on disk stay as they were (compared byte for byte),
the error is reported (the ROTATE answer, STATUS, the log), signing goes on
with a key nginx has, and the daemon recovers once the fault is gone.

Covered in test_daemon.py and not repeated here: a failing nginx test during
a plain rotation, a rotation while nginx is not running, a corrupt key ring
(fallback) and both copies corrupt (refusal), a stale socket file, SIGHUP
with a broken configuration."""

import errno
import os
import signal
import subprocess
import time

import pytest

from daemonsite import RETRY_TIMEOUT, TIMEOUT, err, kid_of, make_daemon  # noqa: F401 (a fixture)
from nginxsite import pid_alive, wait_gone

PRIVATE = "/media/private/report.pdf"
BODY = b"a private report\n"


def snapshot(*paths):
    out = {}
    for p in paths:
        with open(p, "rb") as f:
            out[p] = f.read()
    return out


def log_since(d, pos):
    with open(d.log, "rb") as f:
        f.seek(pos)
        return f.read().decode(errors="replace")


def wait_log(d, pos, needle, timeout=TIMEOUT, count=1):
    """Waits until the daemon logged needle (count times) after position
    pos: the log line is the daemon's own signal for what it did on its
    schedule."""
    deadline = time.monotonic() + timeout
    while log_since(d, pos).count(needle) < count:
        assert d.proc.poll() is None, "securelinkd exited\n" + d.diagnostics()
        assert time.monotonic() < deadline, f"no {needle!r} in the log\n" + d.diagnostics()
        time.sleep(0.05)


# --- a full disk ----------------------------------------------------------------


@pytest.fixture
def tmpfs(make_daemon):
    """mount(path, size): a small tmpfs over path. Depends on make_daemon so
    it is unmounted before the daemon's directory is removed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(path, size="64k", mode="0700"):
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}",
                            "securelink-test", path], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(path)

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            if subprocess.run(["umount", path], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", path], capture_output=True)


def fill(directory):
    """Fills the file system of directory to the last byte; returns the
    filler's path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
        # The last partial page too.
        while True:
            try:
                f.write(b"\0")
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
    assert os.statvfs(directory).f_bavail == 0
    return path


def started_on_tmpfs(make_daemon, tmpfs, which, options=None):
    """A daemon whose state directory or snippet directory is a 64 KiB
    tmpfs, mounted before the daemon's first start."""
    d = make_daemon(options, start=False)
    if which == "state":
        tmpfs(d.state, mode="0700")
    else:
        tmpfs(os.path.dirname(d.keys_file), mode="0755")
    d.start()
    d.start_nginx()
    d.wait_active()
    d.add_file("private/report.pdf", BODY)
    return d


def test_disk_full_under_the_key_ring_refuses_rotate_and_keeps_every_file(make_daemon, tmpfs):
    d = started_on_tmpfs(make_daemon, tmpfs, "state")
    kid = d.rotate()  # keyring.prev exists from here on
    old = d.sign(PRIVATE)
    files = (d.keyring, d.keyring_prev, d.keys_file, d.locations_file)
    before = snapshot(*files)
    filler = fill(d.state)
    listing = sorted(os.listdir(d.state))
    pos = os.path.getsize(d.log)

    code, message = err(d.ask("ROTATE"))

    assert code == "unavailable" and "key ring" in message, message
    assert snapshot(*files) == before
    assert sorted(os.listdir(d.state)) == listing  # no temp file left behind
    st = d.status()
    assert st["active_kid"] == kid and [k["kid"] for k in st["keys"]][-1] == kid
    assert st["nginx"]["ok"] is False and "key ring" in st["nginx"]["error"]
    log = log_since(d, pos)
    assert "Failed to save the key ring" in log and "No space left on device" in log
    # Signing goes on with the key nginx has.
    link = d.sign(PRIVATE)
    assert kid_of(link) == kid
    assert d.get(link) == (200, BODY)
    assert d.status_of(old) == 200

    # Space returns: the next ROTATE works.
    os.unlink(filler)
    assert d.rotate() == kid + 1
    new = d.sign(PRIVATE)
    assert kid_of(new) == kid + 1
    assert d.status_of(new) == 200
    assert d.status_of(old) == 200
    assert d.status()["nginx"]["ok"] is True
    assert sorted(os.listdir(d.state)) == ["cache-page", "keyring", "keyring.prev"]
    d.assert_no_secret_leaked()


def test_revoke_that_cannot_save_the_ring_leaves_no_revoke_behind(make_daemon, tmpfs):
    d = started_on_tmpfs(make_daemon, tmpfs, "state")
    kid = d.status()["active_kid"]
    old = d.sign(PRIVATE)
    # Room for the revoke's small mark (one page), none for the ring after.
    filler = fill(d.state)
    os.truncate(filler, os.path.getsize(filler) - 4096)

    code, message = err(d.ask("ROTATE revoke"))
    assert code == "internal" and "not done" in message, message
    assert "revoke" not in os.listdir(d.state)

    # Nothing was revoked: after a restart neither the old key nor its
    # links may be touched, and the next rotation is only a rotation.
    os.unlink(filler)
    d.restart()
    st = d.wait_status(lambda s: s["nginx"]["ok"] and not s["nginx"]["pending"],
                       what="nginx to have the keys after the restart")
    assert st["active_kid"] == kid, st
    assert d.status_of(old) == 200
    assert d.rotate() == kid + 1
    assert d.status_of(old) == 200


def test_disk_full_under_the_snippets_keeps_them_and_the_old_key_signs(make_daemon, tmpfs):
    d = started_on_tmpfs(make_daemon, tmpfs, "snippets")
    kid = d.status()["active_kid"]
    old = d.sign(PRIVATE)
    snippets = os.path.dirname(d.keys_file)
    before = snapshot(d.keys_file, d.locations_file)
    filler = fill(snippets)
    listing = sorted(os.listdir(snippets))
    mark = d.notify_mark()
    pos = os.path.getsize(d.log)

    code, message = err(d.ask("ROTATE"))

    assert code == "unavailable" and "snippets" in message, message
    assert snapshot(d.keys_file, d.locations_file) == before
    assert sorted(os.listdir(snippets)) == listing
    st = d.status()
    assert st["active_kid"] == kid
    # The new key is saved but not in nginx: published, never active.
    assert [(k["kid"], k["state"]) for k in st["keys"]][-1] == (kid + 1, "published")
    assert st["nginx"]["ok"] is False and "snippets" in st["nginx"]["error"]
    assert any(n.startswith("STATUS=") and "snippets" in n for n in d.notifications_since(mark))
    log = log_since(d, pos)
    assert f"Failed to write {d.keys_file}: No space left on device" in log
    link = d.sign(PRIVATE)
    assert kid_of(link) == kid
    assert d.get(link) == (200, BODY)

    os.unlink(filler)
    assert d.rotate() == kid + 1
    new = d.sign(PRIVATE)
    assert d.status_of(new) == 200
    assert d.status_of(old) == 200
    assert d.status_of(link) == 200
    assert d.status()["nginx"]["ok"] is True
    _, keys = d.keys()
    assert set(keys) == {kid, kid + 1}


# A failed save at an activation must back off and then retry by itself (once
# the state machine spun on it and then stopped for good).
def test_disk_full_at_activation_keeps_the_old_key_and_activates_once_space_returns(
        make_daemon, tmpfs):
    d = started_on_tmpfs(make_daemon, tmpfs, "state")
    kid = d.status()["active_kid"]
    old = d.sign(PRIVATE)
    # Hold the new key in "published": nginx's test fails.
    with open(d.extra_conf, "w") as f:
        f.write("include /nonexistent/securelink-test/broken.conf;\n")
    code, message = err(d.ask("ROTATE"))
    assert code == "unavailable" and "broken.conf" in message
    before = snapshot(d.keyring, d.keyring_prev)
    filler = fill(d.state)
    pos = os.path.getsize(d.log)

    # nginx is fixed: the daemon's retry publishes the key to nginx, but
    # cannot save its activation.
    with open(d.extra_conf, "w") as f:
        f.write("# fixed\n")
    wait_log(d, pos, "Failed to save the key ring")
    assert snapshot(d.keyring, d.keyring_prev) == before
    st = d.status()
    assert st["active_kid"] == kid  # what a restart would find, too
    assert "key ring" in st["nginx"]["error"]
    link = d.sign(PRIVATE)
    assert kid_of(link) == kid and d.status_of(link) == 200
    attempts = log_since(d, pos).count("Failed to save the key ring")

    os.unlink(filler)
    st = d.wait_status(lambda s: s["active_kid"] == kid + 1, timeout=RETRY_TIMEOUT,
                       what=f"the activation once space returned ({attempts} failed saves "
                            "logged while the disk was full)")
    assert st["nginx"]["ok"] is True
    new = d.sign(PRIVATE)
    assert d.status_of(new) == 200 and d.status_of(old) == 200


# --- nginx refusing, or not there ---------------------------------------------------


def test_revoke_while_an_include_is_broken_keeps_the_old_keys_until_fixed(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", BODY)
    kid = d.status()["active_kid"]
    old = d.sign(PRIVATE)
    keys_before = snapshot(d.keys_file)
    with open(d.extra_conf, "w") as f:
        f.write("include /nonexistent/securelink-test/broken.conf;\n")

    code, message = err(d.ask("ROTATE revoke"))

    # No activation: the old key still signs, and nginx (not reloaded)
    # still serves its links; the error is nginx's own.
    assert code == "unavailable" and "broken.conf" in message, message
    st = d.status()
    assert st["active_kid"] == kid
    assert {k["kid"]: k["state"] for k in st["keys"]} == {kid: "active", kid + 1: "published"}
    assert st["nginx"]["ok"] is False and "broken.conf" in st["nginx"]["error"]
    link = d.sign(PRIVATE)
    assert kid_of(link) == kid
    assert d.status_of(link) == 200 and d.status_of(old) == 200
    _, keys = d.keys()
    assert set(keys) == {kid, kid + 1}  # written and tested, never loaded

    # Fixed: the retry completes the revoke by itself, in two confirmed
    # reloads: the new key in, then the old ones out.
    pos = os.path.getsize(d.log)
    with open(d.extra_conf, "w") as f:
        f.write("# fixed\n")
    wait_log(d, pos, "(reload confirmed)", timeout=RETRY_TIMEOUT, count=2)
    st = d.status()
    assert [k["kid"] for k in st["keys"]] == [kid + 1] and st["nginx"]["ok"] is True
    d.assert_only_the_newest_worker_accepts()
    assert d.status_of(old) == 403
    assert d.status_of(link) == 403
    new = d.sign(PRIVATE)
    assert kid_of(new) == kid + 1 and d.status_of(new) == 200
    assert snapshot(d.keys_file) != keys_before
    d.assert_no_secret_leaked()


def test_nginx_not_running_with_a_broken_include_activates_nothing_until_fixed(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", BODY)
    kid = d.status()["active_kid"]
    old = d.sign(PRIVATE)
    d.stop_nginx()
    with open(d.extra_conf, "w") as f:
        f.write("include /nonexistent/securelink-test/broken.conf;\n")

    code, message = err(d.ask("ROTATE"))

    # "nginx is not running" is no excuse to skip the test: the key nginx
    # will load at its start must come from a file nginx accepts.
    assert code == "unavailable" and "broken.conf" in message, message
    st = d.status()
    assert st["active_kid"] == kid and st["nginx"]["ok"] is False
    assert "broken.conf" in st["nginx"]["error"]
    assert kid_of(d.sign(PRIVATE)) == kid

    with open(d.extra_conf, "w") as f:
        f.write("# fixed\n")
    d.wait_status(lambda s: s["active_kid"] == kid + 1, timeout=RETRY_TIMEOUT,
                  what="the retried rotation once the include was fixed")
    assert "nginx is not running" in d.log_text()
    new = d.sign(PRIVATE)
    assert kid_of(new) == kid + 1
    d.start_nginx()
    assert d.status_of(new) == 200
    assert d.status_of(old) == 200


def test_pid_file_naming_another_process_activates_nothing_until_fixed(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", BODY)
    kid = d.status()["active_kid"]
    old = d.sign(PRIVATE)
    with open(d.pid_file) as f:
        nginx_pid = f.read()
    # Not nginx, and not a process SIGHUP would hurt: it must not get one.
    other = subprocess.Popen(["sleep", "60"])
    try:
        with open(d.pid_file, "w") as f:
            f.write(f"{other.pid}\n")
        workers = d.workers()

        code, message = err(d.ask("ROTATE"))

        assert code == "unavailable" and "not an nginx master" in message, message
        assert other.poll() is None  # no SIGHUP reached it
        st = d.status()
        assert st["active_kid"] == kid and st["nginx"]["ok"] is False
        assert "not an nginx master" in st["nginx"]["error"]
        assert d.workers() == workers  # nginx was not reloaded
        link = d.sign(PRIVATE)
        assert kid_of(link) == kid and d.status_of(link) == 200
    finally:
        other.kill()
        other.wait()

    with open(d.pid_file, "w") as f:
        f.write(nginx_pid)
    assert d.rotate() == kid + 1
    d.assert_only_the_newest_worker_accepts()
    assert d.status_of(d.sign(PRIVATE)) == 200
    assert d.status_of(old) == 200
    assert d.status()["nginx"]["ok"] is True


def test_pid_file_naming_php_fpms_master_gets_no_signal_and_activates_nothing(make_daemon):
    # "master process" is in php-fpm's title too; a stale nginx pid file
    # whose number php-fpm's master got must not make it a target.
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", BODY)
    kid = d.status()["active_kid"]
    with open(d.pid_file) as f:
        nginx_pid = f.read()
    title = "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"
    other = subprocess.Popen(["/bin/bash", "-c", f'exec -a "{title}" sleep 60'])
    try:
        deadline = time.monotonic() + TIMEOUT
        while not open(f"/proc/{other.pid}/cmdline", "rb").read().startswith(title.encode()):
            assert time.monotonic() < deadline, "the fake php-fpm did not take its title"
            time.sleep(0.01)
        with open(d.pid_file, "w") as f:
            f.write(f"{other.pid}\n")

        code, message = err(d.ask("ROTATE"))

        assert code == "unavailable" and "not an nginx master" in message, message
        assert other.poll() is None, "php-fpm's master got a signal"
        st = d.status()
        assert st["active_kid"] == kid and st["nginx"]["ok"] is False
        assert f"names process {other.pid}, which is not an nginx master" in st["nginx"]["error"]
    finally:
        other.kill()
        other.wait()
    with open(d.pid_file, "w") as f:
        f.write(nginx_pid)
    assert d.rotate() == kid + 1


def test_master_killed_while_a_worker_survives_activates_nothing_until_it_is_gone(make_daemon):
    # SIGKILL gives nginx's master no chance to stop its workers: they keep
    # serving with the keys they loaded. A new key is not "published" to
    # them by the file on disk, so "nginx is not running" would be a lie.
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", BODY)
    kid = d.status()["active_kid"]
    old = d.sign(PRIVATE)
    # The workers that serve: a reload at the start (nginx started while
    # the first key was being activated) may leave an old worker shutting
    # down, which exits by itself and which the daemon rightly ignores, and
    # a new one that has not set its title yet (/proc is the only signal).
    deadline = time.monotonic() + TIMEOUT
    while not (workers := {w for w in d.workers() if d._accepting(w)}):
        assert time.monotonic() < deadline, "nginx has no serving worker\n" + d.diagnostics()
        time.sleep(0.01)
    every = d.workers()
    master, d.nginx_pid = d.nginx_pid, None
    os.kill(master, signal.SIGKILL)
    assert wait_gone(master)
    try:
        assert all(pid_alive(w) for w in workers), "no nginx worker survived its master"
        assert d.status_of(old) == 200  # a survivor still serves

        code, message = err(d.ask("ROTATE"))

        assert code == "unavailable", message
        for text in (message, d.status()["nginx"]["error"]):
            assert f"nginx master process {master}" in text, text
            assert "worker" in text and str(min(workers)) in text, text
            assert "restart nginx" in text, text
        st = d.status()
        assert st["active_kid"] == kid and st["nginx"]["ok"] is False
        link = d.sign(PRIVATE)
        assert kid_of(link) == kid and d.status_of(link) == 200
    finally:
        for w in every:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for w in every:
            assert wait_gone(w)

    # The strays are gone: nginx is really not running now, the retried
    # rotation goes through (at the daemon's next retry: the checks above
    # may have outlasted several, each doubling the backoff), and nginx
    # reads the new key when it starts.
    d.wait_status(lambda s: s["active_kid"] == kid + 1, timeout=RETRY_TIMEOUT,
                  what="the retried rotation once the stray workers were gone")
    d.start_nginx()
    assert d.status_of(d.sign(PRIVATE)) == 200
    assert d.status_of(old) == 200


# --- the key ring -----------------------------------------------------------


def test_deleted_keyring_falls_back_to_keyring_prev_and_links_keep_working(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    d.add_file("private/report.pdf", BODY)
    kid = d.rotate()
    link = d.sign(PRIVATE)
    assert d.stop() == 0
    os.unlink(d.keyring)

    d.start()

    # keyring.prev is the ring before the last save (the activation): it
    # holds the active key, so nothing nginx has is lost, nor replaced by a
    # fresh ring.
    assert "keyring.prev" in d.log_text()
    assert d.status_of(link) == 200
    d.wait_status(lambda s: s["active_kid"] == kid, what="the key from keyring.prev")
    assert kid_of(d.sign(PRIVATE)) == kid
    assert os.path.exists(d.keyring)
