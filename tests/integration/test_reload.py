# SPDX-License-Identifier: MIT
"""nginx_apply() (daemon/nginx.c) against a real nginx: test command, reload
by pid file and by command, confirmation by new workers, timeouts, and what
happens when nginx is not running. Driven through nginx-apply-tool, which runs
exactly securelinkd's code in an sd-event loop."""

import os
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

import nginxctl
from nginxctl import NGINX, Nginx, apply, pid_alive, write_conf


@pytest.fixture(scope="module", autouse=True)
def _subreaper():
    nginxctl.become_subreaper()


@pytest.fixture
def workdir():
    if not os.access(nginxctl.tool_path(), os.X_OK):
        pytest.fail(f"{nginxctl.tool_path()} is missing: build it (ninja "
                    "tests/integration/nginx-apply-tool) or set SECURELINK_BUILD_DIR")
    d = tempfile.mkdtemp(prefix="securelink-reload-")
    # Workers run as an unprivileged user when we are root.
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nginx(workdir):
    """A running nginx; stopped at teardown, also when the test failed."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is not installed")
    n = Nginx(workdir)
    n.setup()
    try:
        n.start()
        yield n
    finally:
        stopped = n.stop()
        assert stopped, "nginx did not stop"


def nginx_test_command(n):
    return " ".join(n.args("-t", "-q"))


def script(directory, name, body):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, stat.S_IRWXU)
    return path


def wait_for(predicate, timeout=nginxctl.TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(nginxctl.POLL)
    return True


def http_generation_becomes(n, gen):
    """Old workers may still take a connection or two until they see their
    QUIT; the new configuration must win within the timeout."""
    return wait_for(lambda: n.get() == str(gen))


def test_pidfile_reload_is_confirmed_by_new_workers(nginx):
    master = nginx.master
    before = nginx.children()
    assert before, "nginx started without workers"
    assert nginx.get() == "1"

    nginx.set_generation(2)
    conf = write_conf(nginx.dir, nginx_test_command(nginx), f"pidfile:{nginx.pid_file}")
    code, line = apply(conf)

    assert (code, line) == (0, "ok reloaded=1 not_running=0")
    # Confirmed means: at the moment the tool answered, the same master
    # already had a child it did not have before.
    assert nginxctl.pid_alive(master)
    with open(nginx.pid_file) as f:
        assert int(f.read()) == master
    assert nginx.children() - before, "no new worker after a confirmed reload"
    # No old worker accepts any more: every new connection gets the new
    # configuration from the first request on.
    assert [nginx.get() for _ in range(50)] == ["2"] * 50
    # And the old generation goes away.
    assert wait_for(lambda: not (nginx.children() & before))


def test_pidfile_reload_twice_in_a_row(nginx):
    conf = write_conf(nginx.dir, nginx_test_command(nginx), f"pidfile:{nginx.pid_file}")
    for gen in (2, 3):
        before = nginx.children()
        nginx.set_generation(gen)
        assert apply(conf) == (0, "ok reloaded=1 not_running=0")
        assert nginx.children() - before
        assert http_generation_becomes(nginx, gen)


def test_broken_file_fails_the_test_and_nothing_is_reloaded(nginx):
    before = nginx.children()
    nginx.write_extra("bogus_directive on;\n")
    conf = write_conf(nginx.dir, nginx_test_command(nginx), f"pidfile:{nginx.pid_file}")

    code, line = apply(conf)

    assert code == 1
    assert line.startswith("error nginx test failed: "), line
    # nginx's own complaint, naming the file and line.
    assert 'unknown directive "bogus_directive"' in line
    assert f"{nginx.extra}:1" in line
    # No SIGHUP was sent: the master logged no reload and kept its workers.
    assert nginx.children() == before
    with open(nginx.error_log) as f:
        assert "reconfiguring" not in f.read()


def test_rejected_reload_times_out_pointing_at_the_error_log(nginx):
    # A test command that lets the broken file through: nginx itself refuses
    # the new configuration on SIGHUP and keeps its old workers.
    before = nginx.children()
    nginx.write_extra("bogus_directive on;\n")
    conf = write_conf(nginx.dir, "/bin/true", f"pidfile:{nginx.pid_file}")

    code, line = apply(conf, "--timeout=1s")

    assert code == 1
    assert line.startswith(f"error nginx master process {nginx.master} started no new workers within 1s")
    assert "rejected the new configuration" in line
    assert "error log" in line
    assert nginx.children() == before
    with open(nginx.error_log) as f:
        assert "bogus_directive" in f.read()


def test_pid_file_absent_means_not_running(workdir):
    conf = write_conf(workdir, "/bin/true", f"pidfile:{workdir}/nginx.pid")
    assert apply(conf) == (0, "ok reloaded=0 not_running=1")


def test_pid_file_with_a_dead_pid_means_not_running(workdir):
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    assert not pid_alive(p.pid)
    pid_file = os.path.join(workdir, "nginx.pid")
    with open(pid_file, "w") as f:
        f.write(f"{p.pid}\n")
    conf = write_conf(workdir, "/bin/true", f"pidfile:{pid_file}")
    assert apply(conf) == (0, "ok reloaded=0 not_running=1")


def test_pid_file_naming_another_process_is_refused_without_a_signal(workdir):
    # A stale pid file whose pid was reused: SIGHUP would kill this sleep.
    with subprocess.Popen(["/bin/sleep", "30"]) as p:
        try:
            pid_file = os.path.join(workdir, "nginx.pid")
            with open(pid_file, "w") as f:
                f.write(f"{p.pid}\n")
            conf = write_conf(workdir, "/bin/true", f"pidfile:{pid_file}")
            code, line = apply(conf)
            assert code == 1
            assert f"names process {p.pid}, which is not an nginx master process" in line
            assert p.poll() is None, "the unrelated process got a signal"
        finally:
            p.kill()


def test_pid_file_naming_another_master_process_is_refused_without_a_signal(workdir):
    # php-fpm's master calls itself "php-fpm: master process (...)": only
    # nginx's own title "nginx: master process" identifies an nginx master.
    title = "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"
    with subprocess.Popen(["/bin/bash", "-c", f'exec -a "{title}" /bin/sleep 30']) as p:
        try:
            pid_file = os.path.join(workdir, "nginx.pid")
            with open(pid_file, "w") as f:
                f.write(f"{p.pid}\n")
            assert wait_for(lambda: open(f"/proc/{p.pid}/cmdline", "rb").read()
                            .startswith(title.encode()))
            conf = write_conf(workdir, "/bin/true", f"pidfile:{pid_file}")
            code, line = apply(conf)
            assert code == 1
            assert f"names process {p.pid}, which is not an nginx master process" in line
            assert p.poll() is None, "the php-fpm-like master got a signal"
        finally:
            p.kill()


def test_pid_file_left_empty_by_nginx_t_means_not_running(workdir):
    # The daemon runs `nginx -t` before every reload; with no nginx running,
    # nginx itself leaves the pid file of the checked configuration empty.
    conf_path = os.path.join(workdir, "checked.conf")
    pid_file = os.path.join(workdir, "nginx.pid")
    temp = " ".join(f"{k}_temp_path {workdir}/{k};"
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(conf_path, "w") as f:
        f.write(f"pid {pid_file};\nevents {{}}\nhttp {{ {temp} }}\n")
    subprocess.run([NGINX, "-t", "-q", "-p", workdir, "-c", conf_path,
                    "-e", os.path.join(workdir, "error.log")], check=True)
    assert os.path.getsize(pid_file) == 0
    conf = write_conf(workdir, "/bin/true", f"pidfile:{pid_file}")
    assert apply(conf) == (0, "ok reloaded=0 not_running=1")


@pytest.mark.parametrize("content", ["abc\n", "-1\n", "0\n", "12 34\n", "99999999999\n", " 1\n"])
def test_pid_file_without_a_pid_is_an_error(workdir, content):
    pid_file = os.path.join(workdir, "nginx.pid")
    with open(pid_file, "w") as f:
        f.write(content)
    conf = write_conf(workdir, "/bin/true", f"pidfile:{pid_file}")
    assert apply(conf) == (1, f"error pid file {pid_file}: does not hold a pid")


def test_exec_reload_succeeds(nginx):
    before = nginx.children()
    nginx.set_generation(2)
    reload = "exec:" + " ".join(nginx.args("-s", "reload"))
    conf = write_conf(nginx.dir, nginx_test_command(nginx), reload)

    assert apply(conf) == (0, "ok reloaded=1 not_running=0")
    # Not confirmed by the module (no pid), but nginx really got the signal.
    assert wait_for(lambda: nginx.children() - before)
    assert http_generation_becomes(nginx, 2)


def test_exec_reload_failure_reports_its_stderr(workdir):
    # nginx -s reload without a running nginx: no pid file to read.
    n = Nginx(workdir)
    n.setup()
    reload = "exec:" + " ".join(n.args("-s", "reload"))
    conf = write_conf(workdir, "/bin/true", reload)

    code, line = apply(conf)

    assert code == 1
    assert line.startswith("error nginx reload failed: nginx: [error] open() ")
    assert n.pid_file in line


def test_exec_reload_failure_without_stderr_reports_the_status(workdir):
    conf = write_conf(workdir, "/bin/true", "exec:/bin/false")
    assert apply(conf) == (1, "error nginx reload failed: /bin/false exited with status 1")


def test_reload_none_tests_but_does_not_reload(nginx):
    before = nginx.children()
    conf = write_conf(nginx.dir, nginx_test_command(nginx), "none")
    assert apply(conf) == (0, "ok reloaded=0 not_running=0")
    assert nginx.children() == before


def test_reload_none_still_fails_on_a_broken_file(nginx):
    nginx.write_extra("bogus_directive on;\n")
    conf = write_conf(nginx.dir, nginx_test_command(nginx), "none")
    code, line = apply(conf)
    assert code == 1 and 'unknown directive "bogus_directive"' in line


def test_hanging_test_command_times_out_and_is_killed(workdir):
    pid_file = os.path.join(workdir, "hang.pid")
    hang = script(workdir, "hang.sh", f"echo $$ > {pid_file}\nexec /bin/sleep 30\n")
    conf = write_conf(workdir, hang, f"pidfile:{workdir}/nginx.pid")

    start = time.monotonic()
    code, line = apply(conf, "--timeout=500ms")
    elapsed = time.monotonic() - start

    assert (code, line) == (1, f"error nginx test timed out after 500ms: {hang} was killed")
    assert elapsed < 10, "the tool waited for the child instead of killing it"
    with open(pid_file) as f:
        child = int(f.read())
    # Killed and reaped before the answer: not even a zombie is left.
    assert not os.path.exists(f"/proc/{child}")


def test_freeing_the_op_kills_the_child_and_never_calls_done(workdir):
    pid_file = os.path.join(workdir, "hang.pid")
    hang = script(workdir, "hang.sh", f"echo $$ > {pid_file}\nexec /bin/sleep 30\n")
    conf = write_conf(workdir, hang, "none")

    assert apply(conf, "--timeout=20s", "--cancel-after=300ms") == (0, "cancelled")
    with open(pid_file) as f:
        child = int(f.read())
    assert not os.path.exists(f"/proc/{child}")


def test_chatty_test_command_does_not_block(workdir):
    # Far more than a pipe buffer (64 KiB): a module that read stderr only
    # at exit would deadlock with the child blocked on write.
    chatty = script(workdir, "chatty.sh",
                    "printf '\\n  \\n' >&2\n"
                    "yes 'nginx: [warn] something harmless' | head -n 50000 >&2\n"
                    "echo 'nginx: [emerg] the real \x01problem\tin x.conf:3  ' >&2\n"
                    "exit 1\n")
    conf = write_conf(workdir, chatty, "none")
    code, line = apply(conf, "--timeout=10s")
    assert (code, line) == (1, "error nginx test failed: nginx: [warn] something harmless")


def test_test_failure_picks_the_error_line_over_warnings(workdir):
    warn = script(workdir, "warn.sh",
                  "echo 'nginx: [warn] the \"user\" directive makes sense only as root' >&2\n"
                  "echo 'nginx: [emerg] the real \x01problem\tin x.conf:3  ' >&2\n"
                  "echo 'nginx: configuration file x test failed' >&2\n"
                  "exit 1\n")
    conf = write_conf(workdir, warn, "none")
    code, line = apply(conf)
    # Trimmed, the control byte replaced, the tab a space.
    assert (code, line) == (1, "error nginx test failed: nginx: [emerg] the real ?problem in x.conf:3")


def test_test_command_killed_by_a_signal(workdir):
    killed = script(workdir, "killed.sh", "kill -SEGV $$\n")
    conf = write_conf(workdir, killed, "none")
    assert apply(conf) == (1, f"error nginx test failed: {killed} was killed by signal SIGSEGV")


def test_test_command_that_cannot_run(workdir):
    missing = os.path.join(workdir, "no-such-nginx")
    conf = write_conf(workdir, missing, "none")
    assert apply(conf) == (
        1, f"error nginx test failed: cannot execute {missing}: No such file or directory")


def test_test_command_gets_no_stdin_and_no_signal_mask(workdir):
    # stdin is /dev/null (a read gets EOF at once) and SIGCHLD, blocked in
    # the daemon, is not blocked in the child.
    probe = script(workdir, "probe.sh",
                   "read line && { echo 'stdin had data' >&2; exit 1; }\n"
                   "mask=$(sed -n 's/^SigBlk:\\t//p' /proc/$$/status)\n"
                   "[ \"$mask\" = 0000000000000000 ] || { echo \"blocked $mask\" >&2; exit 1; }\n"
                   "exit 0\n")
    conf = write_conf(workdir, probe, "none")
    assert apply(conf) == (0, "ok reloaded=0 not_running=0")


@pytest.mark.skipif(os.path.exists("/run/dbus/system_bus_socket"),
                    reason="a system bus exists here; systemd: is tested under real systemd")
def test_systemd_without_a_system_bus_is_an_error(workdir):
    conf = write_conf(workdir, "/bin/true", "systemd:nginx.service")
    code, line = apply(conf)
    assert code == 1
    assert line.startswith("error cannot connect to the system bus to reload nginx.service: ")


# systemd: against a stand-in for systemd on a private bus (nginxctl.FakeSystemd);
# real systemd as PID 1 is the system tests' job.

@pytest.fixture
def fake_systemd(workdir):
    if not shutil.which("dbus-daemon"):
        pytest.skip("dbus-daemon is not installed")
    try:
        import dbus  # noqa: F401
        from gi.repository import GLib  # noqa: F401
    except ImportError:
        pytest.skip("python3-dbus and python3-gi are needed for the fake systemd")
    fakes = []

    def start(**options):
        f = nginxctl.FakeSystemd(workdir, **options)
        fakes.append(f)
        return f.start()

    try:
        yield start
    finally:
        for f in fakes:
            f.stop()


def test_systemd_reload_waits_for_the_job_and_new_workers(nginx, fake_systemd):
    bus = fake_systemd(pid_file=nginx.pid_file,
                       reload_command=" ".join(nginx.args("-s", "reload")))
    before = nginx.children()
    nginx.set_generation(2)
    conf = write_conf(nginx.dir, nginx_test_command(nginx), "systemd:nginx.service")

    assert apply(conf, env=bus.env()) == (0, "ok reloaded=1 not_running=0")
    assert nginx.children() - before
    assert http_generation_becomes(nginx, 2)
    calls = bus.calls()
    # The order matters: state and pid (the snapshot) before the reload,
    # subscribed before it, the pid read again after the job.
    assert calls[:5] == [
        "GetUnit nginx.service",
        "Get org.freedesktop.systemd1.Unit ActiveState",
        "Get org.freedesktop.systemd1.Service MainPID",
        "Subscribe",
        "ReloadOrTryRestartUnit nginx.service replace",
    ]
    assert calls[-1] == "Get org.freedesktop.systemd1.Service MainPID"


@pytest.mark.parametrize("state", ["inactive", "failed", "deactivating"])
def test_systemd_unit_not_active_means_not_running(workdir, fake_systemd, state):
    bus = fake_systemd(active_state=state)
    conf = write_conf(workdir, "/bin/true", "systemd:nginx.service")
    assert apply(conf, env=bus.env()) == (0, "ok reloaded=0 not_running=1")
    assert not any(c.startswith("ReloadOrTryRestartUnit") for c in bus.calls())


def test_systemd_unit_not_loaded_means_not_running(workdir, fake_systemd):
    bus = fake_systemd(unit="other.service")
    conf = write_conf(workdir, "/bin/true", "systemd:nginx.service")
    assert apply(conf, env=bus.env()) == (0, "ok reloaded=0 not_running=1")
    assert bus.calls() == ["GetUnit nginx.service"]


def test_systemd_job_failure_is_reported(nginx, fake_systemd):
    bus = fake_systemd(pid_file=nginx.pid_file, reload_command="/bin/false")
    before = nginx.children()
    conf = write_conf(nginx.dir, "/bin/true", "systemd:nginx.service")
    assert apply(conf, env=bus.env()) == (
        1, 'error systemd could not reload nginx.service: job result "failed" '
           '(see journalctl -u nginx.service)')
    assert nginx.children() == before


def test_systemd_refusal_carries_the_dbus_error(nginx, fake_systemd):
    bus = fake_systemd(pid_file=nginx.pid_file,
                       reload_error="org.freedesktop.DBus.Error.AccessDenied:Access denied")
    conf = write_conf(nginx.dir, "/bin/true", "systemd:nginx.service")
    assert apply(conf, env=bus.env()) == (1, "error cannot reload nginx.service: Access denied")


def test_systemd_reload_rejected_by_nginx_times_out(nginx, fake_systemd):
    # SIGHUP directly, like an ExecReload=kill -HUP $MAINPID: `nginx -s
    # reload` would parse the broken file itself and fail the job.
    bus = fake_systemd(pid_file=nginx.pid_file,
                       reload_command=f"/bin/sh -c 'kill -HUP $(cat {nginx.pid_file})'")
    before = nginx.children()
    nginx.write_extra("bogus_directive on;\n")
    conf = write_conf(nginx.dir, "/bin/true", "systemd:nginx.service")
    code, line = apply(conf, "--timeout=1s", env=bus.env())
    assert code == 1
    assert "started no new workers within 1s" in line and "error log" in line
    assert nginx.children() == before
