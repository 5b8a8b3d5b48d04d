# SPDX-License-Identifier: MIT
"""securelinkd's signal set-up and event loop fail loudly (issue 13, item
26): a failure of sigprocmask(), of sd_event_add_signal() or of the event
loop stops the daemon with exit status 1 and one line naming what failed,
instead of running without SIGTERM/SIGHUP handling or exiting silently.

The failures are injected by testshim.c (LD_PRELOAD), the only way to make
these calls fail on a healthy system."""

import os

import pytest

from daemonsite import TIMEOUT, make_daemon, shim_lib  # noqa: F401


def run_failing(make_daemon, **env):
    """Starts securelinkd with the shim and env; returns (exit status, log)."""
    if not os.path.exists(shim_lib()):
        pytest.fail(f"{shim_lib()} is missing: build it first")
    d = make_daemon(start=False, nginx=False)
    d.wrapper = ["env", f"LD_PRELOAD={shim_lib()}"] + [f"{k}={v}" for k, v in env.items()]
    p = d.spawn()
    status = p.wait(TIMEOUT)
    d.proc = None
    return status, d.log_text()


def test_a_failing_sigprocmask_stops_the_daemon_with_its_reason(make_daemon):
    status, log = run_failing(make_daemon, SECURELINK_SHIM_FAIL_SIGPROCMASK="1")
    assert status == 1, log
    assert ("Failed to block SIGTERM, SIGINT, SIGHUP and SIGCHLD: Invalid argument"
            in log), log


@pytest.mark.parametrize("signo,name", [(15, "SIGTERM"), (2, "SIGINT"), (1, "SIGHUP")])
def test_a_signal_that_cannot_be_watched_stops_the_daemon_naming_it(make_daemon, signo, name):
    status, log = run_failing(make_daemon, SECURELINK_SHIM_FAIL_ADD_SIGNAL=str(signo))
    assert status == 1, log
    assert f"Failed to watch {name}: Cannot allocate memory" in log, log
    assert "Listening on" not in log, log


def test_a_failing_event_loop_is_reported(make_daemon):
    status, log = run_failing(make_daemon, SECURELINK_SHIM_FAIL_TIMERS="1")
    assert status == 1, log
    assert "The event loop failed: Invalid argument" in log, log
