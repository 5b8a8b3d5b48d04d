# SPDX-License-Identifier: MIT
"""A bare real nginx in a private directory, for the reload tests, and a way
to run nginx-apply-tool against it.

Readiness without sleeps: with `daemon on`, the nginx command returns once the
master listens and has written its pid file; a reload shows as new pids among
the master's children (/proc/PID/task/PID/children); a stop as the master's
pid disappearing.
"""

import os
import pwd
import socket
import subprocess
import sys
import time

import nginxsite
from nginxsite import build_dir, free_port, master_children, quit_nginx, wait_gone
from nginxsite import become_subreaper, pid_alive  # noqa: F401 (test_reload uses them from here)

NGINX = "/usr/sbin/nginx"
# Upper bound for anything we wait for; only reached when something is broken.
TIMEOUT = 15.0
POLL = 0.01


def tool_path():
    return os.path.join(build_dir(), "tests", "integration", "nginx-apply-tool")


class Nginx:
    """nginx -p DIR with everything (pid, logs, temp paths) inside DIR. The
    http{} block includes DIR/extra.conf, which tests rewrite; GET / answers
    the value of $generation that extra.conf sets."""

    def __init__(self, directory):
        self.dir = directory
        self.conf = os.path.join(directory, "nginx.conf")
        self.extra = os.path.join(directory, "extra.conf")
        self.pid_file = os.path.join(directory, "nginx.pid")
        self.error_log = os.path.join(directory, "error.log")
        self.port = free_port()
        self.master = None

    def args(self, *more):
        return [NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.error_log, *more]

    def write_extra(self, text):
        tmp = self.extra + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.extra)

    def set_generation(self, gen):
        self.write_extra(f'map "" $generation {{ default "{gen}"; }}\n')

    def setup(self):
        tmp = os.path.join(self.dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        user = ""
        if os.geteuid() == 0:
            # Workers drop to this user; they read nothing of ours.
            for u, g in (("www-data", "www-data"), ("nobody", "nogroup")):
                try:
                    pwd.getpwnam(u)
                    user = f"user {u} {g};"
                    break
                except KeyError:
                    continue
        temp_paths = "\n".join(
            f"    {name}_temp_path {tmp}/{name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        with open(self.conf, "w") as f:
            f.write(f"""
daemon on;
master_process on;
worker_processes 2;
{user}
pid {self.pid_file};
error_log {self.error_log} notice;
events {{ worker_connections 64; }}
http {{
{temp_paths}
    access_log off;
    include {self.extra};
    server {{
        listen 127.0.0.1:{self.port};
        location / {{ return 200 "$generation\\n"; }}
    }}
}}
""")
        self.set_generation(1)

    def start(self):
        subprocess.run(self.args(), check=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
        self.master = nginxsite.read_pid_file(self.pid_file)
        # The master forks its workers one after the other; a snapshot taken
        # before both exist would count the second as "new" after a reload.
        deadline = time.monotonic() + TIMEOUT
        while len(self.children()) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not start its 2 workers")
            time.sleep(0.01)
        return self.master

    def children(self):
        return master_children(self.master)

    def get(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode().strip()

    def stop(self):
        """Graceful stop; SIGKILL if that does not work. True when gone."""
        if self.master is None:
            return True
        pid, self.master = self.master, None
        try:
            quit_nginx(pid, TIMEOUT)
            return True
        except RuntimeError:  # killed after the timeout
            return wait_gone(pid, poll=POLL)


def write_conf(directory, test_command, reload):
    """A securelinkd.conf whose [nginx] section is what nginx_apply reads."""
    path = os.path.join(directory, "securelinkd.conf")
    state = os.path.join(directory, "state")
    os.makedirs(state, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"""[daemon]
state_directory = {state}
[nginx]
keys_file = {directory}/keys.conf
locations_file = {directory}/locations.conf
test_command = {test_command}
reload = {reload}
""")
    return path


def apply(conf, *options, timeout=TIMEOUT * 2, env=None):
    """Runs nginx-apply-tool; returns (exit code, its one output line)."""
    p = subprocess.run([tool_path(), *options, conf], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout, env=env)
    lines = p.stdout.splitlines()
    assert len(lines) == 1, f"expected one line, got {p.stdout!r} (stderr {p.stderr!r})"
    return p.returncode, lines[0]


# A stand-in for systemd on a private D-Bus, so the systemd: method can be
# exercised against a real nginx without systemd as PID 1. It implements just
# what nginx_apply() calls, with systemd's names and signatures: Manager.GetUnit,
# Subscribe, ReloadOrTryRestartUnit (runs the reload command, then emits
# JobRemoved only to a subscribed client, as systemd does), and the
# ActiveState / MainPID properties. Real systemd is tested in tests/system.

DBUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


class FakeSystemd:
    """dbus-daemon on DIR/bus plus this module run as the systemd1 service.
    Options are passed to fake_systemd_main(); calls are logged to DIR/calls."""

    def __init__(self, directory, **options):
        self.dir = directory
        self.socket = os.path.join(directory, "bus")
        self.address = f"unix:path={self.socket}"
        self.calls_file = os.path.join(directory, "calls")
        self.options = options
        self.procs = []

    def start(self):
        config = os.path.join(self.dir, "bus.conf")
        with open(config, "w") as f:
            f.write(DBUS_CONFIG.format(socket=self.socket))
        bus = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork",
                                "--print-address"], stdout=subprocess.PIPE, text=True)
        self.procs.append(bus)
        bus.stdout.readline()  # printed once it listens
        args = [sys.executable, os.path.abspath(__file__), "fake-systemd", self.address,
                self.calls_file]
        for k, v in self.options.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        fake = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.procs.append(fake)
        assert fake.stdout.readline().strip() == "ready", "fake systemd did not start"
        return self

    def env(self):
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def calls(self):
        try:
            with open(self.calls_file) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def fake_systemd_main(argv):
    import argparse
    import shlex

    import dbus
    import dbus.mainloop.glib
    import dbus.service
    from gi.repository import GLib

    ap = argparse.ArgumentParser()
    ap.add_argument("address")
    ap.add_argument("calls")
    ap.add_argument("--unit", default="nginx.service")
    ap.add_argument("--pid-file", default="")
    ap.add_argument("--active-state", default="active")
    ap.add_argument("--reload-command", default="/bin/true")
    ap.add_argument("--job-result", default="")  # default: from the command's status
    ap.add_argument("--reload-error", default="")  # "Name:message" to refuse the call
    o = ap.parse_args(argv)

    manager_iface = "org.freedesktop.systemd1.Manager"
    unit_path = "/org/freedesktop/systemd1/unit/" + o.unit.replace(".", "_2e")

    def log(line):
        with open(o.calls, "a") as f:
            f.write(line + "\n")

    class Error(dbus.DBusException):
        def __init__(self, name, message):
            super().__init__(message)
            self._dbus_error_name = name

    class Manager(dbus.service.Object):
        subscribed = set()
        jobs = 0

        @dbus.service.method(manager_iface, in_signature="s", out_signature="o")
        def GetUnit(self, name):
            log(f"GetUnit {name}")
            if name != o.unit:
                raise Error("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
            return dbus.ObjectPath(unit_path)

        @dbus.service.method(manager_iface, in_signature="", out_signature="",
                             sender_keyword="sender")
        def Subscribe(self, sender=None):
            log("Subscribe")
            self.subscribed.add(sender)

        @dbus.service.method(manager_iface, in_signature="ss", out_signature="o",
                             sender_keyword="sender")
        def ReloadOrTryRestartUnit(self, name, mode, sender=None):
            log(f"ReloadOrTryRestartUnit {name} {mode}")
            if o.reload_error:
                raise Error(*o.reload_error.split(":", 1))
            Manager.jobs += 1
            job_id = Manager.jobs
            job = dbus.ObjectPath(f"/org/freedesktop/systemd1/job/{job_id}")

            def run():
                status = subprocess.run(shlex.split(o.reload_command)).returncode
                result = o.job_result or ("done" if status == 0 else "failed")
                if self.subscribed:
                    # Another job's signal first: only ours may count.
                    self.JobRemoved(dbus.UInt32(job_id + 1000),
                                    dbus.ObjectPath("/org/freedesktop/systemd1/job/999"),
                                    name, "failed")
                    self.JobRemoved(dbus.UInt32(job_id), job, name, result)
                return False

            # The job finishes after the reply, as in systemd.
            GLib.timeout_add(20, run)
            return job

        @dbus.service.signal(manager_iface, signature="uoss")
        def JobRemoved(self, job_id, job, unit, result):
            log(f"JobRemoved {job} {result}")

    class Unit(dbus.service.Object):
        @dbus.service.method("org.freedesktop.DBus.Properties", in_signature="ss",
                             out_signature="v")
        def Get(self, interface, prop):
            log(f"Get {interface} {prop}")
            if (interface, prop) == ("org.freedesktop.systemd1.Unit", "ActiveState"):
                return dbus.String(o.active_state)
            if (interface, prop) == ("org.freedesktop.systemd1.Service", "MainPID"):
                try:
                    with open(o.pid_file) as f:
                        return dbus.UInt32(int(f.read()))
                except (OSError, ValueError):
                    return dbus.UInt32(0)
            raise Error("org.freedesktop.DBus.Error.UnknownProperty", f"no {prop}")

    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(o.address)
    name = dbus.service.BusName("org.freedesktop.systemd1", bus)
    Manager(bus, "/org/freedesktop/systemd1")
    Unit(bus, unit_path)
    print("ready", flush=True)
    loop = GLib.MainLoop()
    try:
        loop.run()
    finally:
        del name


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "fake-systemd":
        fake_systemd_main(sys.argv[2:])
