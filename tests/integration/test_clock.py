# SPDX-License-Identifier: MIT
"""The clock and the requests that wait (issue 13, items 4 and 9), against
the real securelinkd over its socket and a real nginx:

- a deferred ROTATE is answered by its deadline (activation_delay + 3 x
  [nginx] timeout) when what it waits for does not come;
- a step of the system clock back to the truth, reported by the kernel to
  the daemon's TFD_TIMER_CANCEL_ON_SET timer, re-bases the key ring's
  future times and the pending key's confirmation, so the rotation under
  way completes after activation_delay, not after the excursion.

The daemon's CLOCK_REALTIME is libfaketime's (Debian's libfaketime, its
offset read from a file the test rewrites: FAKETIME_TIMESTAMP_FILE with
FAKETIME_NO_CACHE); CLOCK_MONOTONIC is left alone (DONT_FAKE_MONOTONIC), as
a real clock step leaves it. libfaketime cannot make the kernel report a
step (only setting the host's clock can, and that is not for a test on a
shared machine), so testshim.c stands in for the kernel's side: the
daemon's CLOCK_REALTIME timerfd is a FIFO, and a byte written to it is
read as ECANCELED, which is what timerfd_create(2) documents for a clock
set under a TFD_TIMER_CANCEL_ON_SET timer. Everything from the event
source on is the daemon's own code."""

import os
import re
import select
import time

import pytest

from daemonsite import err, make_daemon, shim_lib  # noqa: F401

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
DAY = 86400


def set_clock(path, offset):
    """The daemon's CLOCK_REALTIME from now on: the true time + offset
    (libfaketime's syntax, e.g. "+400d", "-1d", "+0")."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(offset + "\n")
    os.replace(tmp, path)


def faked_daemon(make_daemon, tmp_path, offset, options, clock_fifo=False):
    """A started securelinkd whose realtime clock is offset; with
    clock_fifo, the FIFO that reports clock changes to it (testshim.c)."""
    if not os.path.exists(FAKETIME_LIB):
        pytest.skip(f"{FAKETIME_LIB} is missing (apt install libfaketime)")
    if not os.path.exists(shim_lib()):
        pytest.fail(f"{shim_lib()} is missing: build it first")
    clock = str(tmp_path / "faketime")
    set_clock(clock, offset)
    d = make_daemon(options, start=False)
    env = ["env", f"FAKETIME_TIMESTAMP_FILE={clock}", "FAKETIME_NO_CACHE=1",
           "DONT_FAKE_MONOTONIC=1"]
    # The shim also arms the daemon's timers (libfaketime's timerfd_settime
    # breaks under an offset of days); without clock_fifo it reports no
    # clock change.
    env += [f"LD_PRELOAD={shim_lib()}:{FAKETIME_LIB}"]
    fifo = None
    if clock_fifo:
        fifo = str(tmp_path / "clock-changes")
        os.mkfifo(fifo)
        env += [f"SECURELINK_SHIM_CLOCK_FIFO={fifo}"]
    d.wrapper = env
    d.start()
    d.start_nginx()
    d.wait_active()
    return d, clock, fifo


def answered(client):
    """Whether an answer is waiting on the client's connection."""
    return bool(client.buf) or bool(select.select([client.sock], [], [], 0)[0])


def published_and_confirmed(st):
    """A new key is in nginx (confirmed) and waits for activation_delay."""
    return (any(k["state"] == "published" for k in st["keys"])
            and not st["nginx"]["pending"] and st["nginx"]["ok"])


def rotate_until_confirmed(d, client):
    """Sends ROTATE and returns once its key is published and confirmed,
    before it activates; fails when the rotation was already answered (the
    machine was slower than activation_delay: the test proves nothing)."""
    client.send("ROTATE\n")
    d.wait_status(published_and_confirmed, what="the rotation's key confirmed by nginx")
    assert not answered(client), (
        "the rotation completed before the clock step: activation_delay is too short "
        "for this machine")


def test_a_rotation_that_cannot_complete_is_answered_at_its_deadline(make_daemon, tmp_path):
    # The clock steps back a day between nginx's confirmation of the new key
    # and its activation, and the daemon is not told (libfaketime alone): the
    # key would activate a day late. The client gets its answer at the
    # deadline, activation_delay + 3 x timeout = 11s, not a day later. The
    # step must come before the key's activation_delay is over: 5s leaves
    # room for a loaded CI machine (2s once did not, and the key activated
    # before the step).
    d, clock, _ = faked_daemon(make_daemon, tmp_path, "+0",
                               {"keys": {"activation_delay": "5s"}, "nginx": {"timeout": "2s"}})
    active = d.status()["active_kid"]
    with d.connect() as c:
        rotate_until_confirmed(d, c)
        set_clock(clock, "-1d")
        answer = c.read_line()  # the client's own timeout (20s) is far beyond 8s
        code, message = err(answer)
        assert code == "unavailable", answer
        assert "no answer in time" in message, answer
        assert "the rotation is queued" in message, answer
        # The connection is served on, not left hanging.
        assert c.ask("PING") == "OK pong"
    st = d.status()
    assert st["active_kid"] == active, st
    assert st["counters"]["errors_by_code"]["unavailable"] >= 1, st


def test_a_clock_stepped_back_rebases_the_ring_and_the_rotation_under_way(make_daemon,
                                                                          tmp_path):
    # Started with the clock 400 days ahead (a bad RTC before NTP): the
    # first key's times and a rotation's confirmation are stamped there.
    d, clock, fifo = faked_daemon(make_daemon, tmp_path, "+400d",
                                  {"keys": {"activation_delay": "3s"}, "nginx": {"timeout": "2s"}},
                                  clock_fifo=True)
    st = d.status()
    assert st["next_rotation"] > time.time() + 399 * DAY, st  # the fake clock took
    with d.connect() as c:
        rotate_until_confirmed(d, c)
        # NTP steps the clock back to the truth; the kernel tells the daemon.
        set_clock(clock, "+0")
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
        # The pending key activates activation_delay after the change, not
        # 400 days later; before that the waiter's deadline would answer.
        answer = c.read_line()
        assert re.fullmatch(r"OK kid=\d+", answer), answer + "\n" + d.diagnostics()
    st = d.status()
    now = time.time()
    for k in st["keys"]:
        for field in ("published", "activated", "retired", "drop_after"):
            if k[field] is not None:
                assert k[field] < now + DAY + 60, (field, k, now)
    # rotate_every is 24h: the next rotation counts from now, not from +400d.
    assert st["next_rotation"] <= now + DAY + 60, st
    assert "The system clock was set" in d.log_text()
    assert "moved them back to now" in d.log_text()
