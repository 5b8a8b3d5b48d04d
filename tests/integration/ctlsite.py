# SPDX-License-Identifier: MIT
"""securelinkctl against the real securelinkd and a real nginx, for
test_ctl.py.

The daemon and nginx are daemonsite's (daemon first, ready on sd_notify's
READY=1; nginx ready when `nginx` with `daemon on` returns); CtlDaemon adds
securelinkctl and makes links paths (no base_url). securelinkctl is the build
directory's binary, run as a child process, as a user would run it; every
helper that waits polls a real signal with a deadline, never a blind sleep.

Environment: SECURELINK_BUILD_DIR (default ./build).
"""

import json
import os
import subprocess

from daemonsite import Daemon, build_dir

# Upper bound for anything that has a signal of its own; only reached when
# something is broken.
TIMEOUT = 30.0
POLL = 0.05

NOBODY = 65534
# Drops to uid/gid 65534 with no supplementary groups: not root, not in any
# admin_group.
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def ctl_binary():
    return os.path.join(build_dir(), "client", "securelinkctl")


def set_ini(text, options):
    """text with options ({"section": {"key": "value"}}) set: a key already
    there is replaced in place (the config refuses a key given twice), a new
    one is added at the top of its section, a new section at the end."""
    lines = text.splitlines()
    for section, keys in options.items():
        header = f"[{section}]"
        if header not in lines:
            lines.append(header)
        for key, value in keys.items():
            start = lines.index(header)
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")),
                       len(lines))
            for i in range(start + 1, end):
                if lines[i].split("=", 1)[0].strip() == key:
                    lines[i] = f"{key} = {value}"
                    break
            else:
                lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


class Result:
    def __init__(self, argv, p):
        self.argv = argv
        self.rc = p.returncode
        self.out = p.stdout
        self.err = p.stderr

    def __repr__(self):
        return f"<{' '.join(self.argv)[:200]}: rc={self.rc} out={self.out[:500]!r} err={self.err[:500]!r}>"

    @property
    def lines(self):
        return self.out.splitlines()


def run_ctl(*args, input=None, socket=None, env=None, user=None, timeout=TIMEOUT):
    """Runs securelinkctl [--socket SOCKET] ARGS with $SECURELINK_SOCKET
    unset unless env sets it; returns a Result. user="nobody" runs it as
    uid/gid 65534 without groups."""
    argv = [ctl_binary()]
    if socket:
        argv += ["--socket", socket]
    argv += list(args)
    if user == "nobody":
        argv = AS_NOBODY + argv
    e = dict(os.environ)
    e.pop("SECURELINK_SOCKET", None)
    e.update(env or {})
    p = subprocess.run(argv, input=input, capture_output=True, text=True, env=e,
                       timeout=timeout)
    return Result(argv, p)


class Offline:
    """securelinkctl with no daemon: a private directory whose socket path
    nobody listens on, so a command that wrongly connects fails with 4."""

    def __init__(self, directory):
        self.dir = directory
        self.socket = os.path.join(directory, "nope.sock")

    def ctl(self, *args, socket=True, **kwargs):
        return run_ctl(*args, socket=self.socket if socket is True else socket, **kwargs)


class CtlDaemon(Daemon):
    """daemonsite.Daemon (private_prefixes = private/ below /media/) with
    links as paths (no base_url), STATUS and SIGN through securelinkctl."""

    def default_options(self):
        options = super().default_options()
        options["links"]["base_url"] = None
        return options

    # securelinkctl

    def ctl(self, *args, socket=True, **kwargs):
        """securelinkctl --socket <this daemon's socket> ARGS (see run_ctl)."""
        return run_ctl(*args, socket=self.socket if socket is True else socket, **kwargs)

    def status(self):
        r = self.ctl("--json", "status")
        assert r.rc == 0 and r.err == "", r
        return json.loads(r.out)

    def sign(self, *args):
        r = self.ctl("sign", *args)
        assert r.rc == 0 and r.err == "", r
        return r.out.strip()

    # nginx

    def nginx_test(self, conf_path):
        """`nginx -t` over another configuration file in this directory."""
        return subprocess.run(["/usr/sbin/nginx", "-t", "-p", self.dir + "/", "-c", conf_path,
                               "-e", self.error_log],
                              capture_output=True, text=True, timeout=TIMEOUT)
