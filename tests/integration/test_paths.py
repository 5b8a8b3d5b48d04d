# SPDX-License-Identifier: MIT
"""The directories and files securelinkd keeps secrets in are trusted only
when nobody else can put things there: a FIFO named keys.conf must not hang
the start (under systemd: a start-timeout loop), a directory others may write
to must be refused (they could plant keys), and "not inside media_root" must
hold after symlinks are resolved (nginx follows them)."""

import os
import subprocess

import pytest

from daemonsite import TIMEOUT, daemon_binary, make_daemon  # noqa: F401 (a fixture)

EXIT_CONFIG = 78


def start_fails(d):
    """Starts securelinkd, which must exit by itself (no READY=1); returns
    (exit status, the lines it logged)."""
    p = d.spawn()
    try:
        rc = p.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError("securelinkd hung at start instead of refusing\n"
                             + d.diagnostics())
    finally:
        d.proc = None
    lines = [line for line in d.log_text().splitlines() if line.strip()]
    assert "READY=1" not in d.notifications_since(), "securelinkd said READY=1"
    assert not os.path.exists(d.socket), "securelinkd opened its socket"
    return rc, lines


def check_config(d):
    r = subprocess.run([daemon_binary(), "-c", d.conf, "--check-config"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stderr.strip().splitlines()


def one_error_line(lines, *needles):
    errors = [line for line in lines if all(n in line for n in needles)]
    assert len(errors) == 1, f"no single line with {needles}: {lines}"
    return errors[0]


@pytest.mark.parametrize("which", ["keys_file", "locations_file", "keyring"])
def test_fifo_in_place_of_a_file_is_refused_at_once(make_daemon, which):
    d = make_daemon(start=False)
    path = {"keys_file": d.keys_file, "locations_file": d.locations_file,
            "keyring": d.keyring}[which]
    os.mkfifo(path, 0o600)

    rc, lines = start_fails(d)

    assert rc == EXIT_CONFIG, lines
    line = one_error_line(lines, path, "not a regular file")
    assert f"remove {path}" in line
    # Left as it was: deciding what it is is the admin's business.
    assert os.path.exists(path)


def test_symlink_in_place_of_the_keys_file_is_refused(make_daemon):
    d = make_daemon(start=False)
    target = os.path.join(d.dir, "elsewhere.conf")
    with open(target, "w") as f:
        f.write("# not ours\n")
    os.symlink(target, d.keys_file)

    rc, lines = start_fails(d)

    assert rc == EXIT_CONFIG, lines
    one_error_line(lines, d.keys_file, "symbolic link")
    with open(target) as f:
        assert f.read() == "# not ours\n"


@pytest.mark.parametrize("which,mode", [("snippets", 0o777), ("snippets", 0o775),
                                        ("state", 0o757), ("state", 0o1777)])
def test_directory_others_can_write_is_refused(make_daemon, which, mode):
    d = make_daemon(start=False)
    directory = os.path.dirname(d.keys_file) if which == "snippets" else d.state
    os.chmod(directory, mode)

    rc, lines = start_fails(d)

    assert rc == EXIT_CONFIG, lines
    line = one_error_line(lines, directory, "writable")
    assert f"chmod go-w {directory}" in line
    # --check-config says the same.
    rc, lines = check_config(d)
    assert rc == EXIT_CONFIG
    one_error_line(lines, directory, "writable")


def test_directory_owned_by_another_user_is_refused(make_daemon):
    if os.geteuid() != 0:
        pytest.skip("giving a directory away needs root")
    d = make_daemon(start=False)
    directory = os.path.dirname(d.keys_file)
    os.chown(directory, 65534, -1)

    rc, lines = start_fails(d)

    assert rc == EXIT_CONFIG, lines
    line = one_error_line(lines, directory, "owned by uid 65534")
    assert f"chown root {directory}" in line


@pytest.mark.parametrize("which", ["state_directory", "keys_file"])
def test_inside_media_root_through_a_symlink_is_refused(make_daemon, which):
    d = make_daemon(start=False)
    # A directory inside media_root, reached through a symlink outside it:
    # nginx serves media_root, and follows symlinks.
    inside = os.path.join(d.media, "hidden")
    os.makedirs(inside, mode=0o700)
    link = os.path.join(d.dir, "outside")
    os.symlink(inside, link)
    if which == "state_directory":
        d.set_option("daemon", "state_directory", link)
    else:
        d.set_option("nginx", "keys_file", os.path.join(link, "keys.conf"))

    rc, lines = check_config(d)
    assert rc == EXIT_CONFIG, lines
    line = one_error_line(lines, which, "inside media_root")
    assert inside in line  # where it really is

    rc, lines = start_fails(d)
    assert rc == EXIT_CONFIG, lines
    one_error_line(lines, which, "inside media_root")
    assert not os.listdir(inside), "securelinkd wrote into media_root"


def test_media_root_itself_through_a_symlink_is_resolved(make_daemon):
    d = make_daemon(start=False)
    # media_root names a symlink to a directory that holds the state.
    real = os.path.join(d.dir, "real-media")
    os.makedirs(real, mode=0o755)
    os.rename(d.state, os.path.join(real, "state"))
    link = os.path.join(d.dir, "media-link")
    os.symlink(real, link)
    d.set_option("nginx", "media_root", link + "/")
    d.set_option("daemon", "state_directory", os.path.join(real, "state"))

    rc, lines = check_config(d)

    assert rc == EXIT_CONFIG, lines
    one_error_line(lines, "state_directory", "inside media_root")
