# SPDX-License-Identifier: MIT
"""A real nginx in a private directory, serving what securelink renders.

Readiness signals, never sleeps: with `daemon on`, the nginx command returns
only once the master has bound the listening socket and written its pid file;
after a reload, the master's children (/proc/PID/task/PID/children) are
replaced by new workers; at stop, the master's pid disappears.
"""

import ctypes
import http.client
import os
import pwd
import re
import signal
import socket
import subprocess
import time
import urllib.parse

NGINX = "/usr/sbin/nginx"
# Upper bound for a reload or a stop; only reached when something is broken.
TIMEOUT = 15.0
POLL = 0.02


PR_SET_CHILD_SUBREAPER = 36




# Debian's libnginx-mod-http-js: what checks hmac-sha256 links.
NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"


def nginx_conf_head(pid_file, error_log, tmp, njs=False):
    """The start of every test nginx.conf, up to inside http {}: daemon on
    with its pid file, its own error log and temp paths, the worker user when
    running as root; with njs, the njs module loaded. The caller adds its
    includes, servers and the closing brace."""
    user = worker_user()
    return f"""{"load_module " + NJS_MODULE + ";" if njs else ""}
{"user " + user + ";" if user else ""}
daemon on;
pid {pid_file};
error_log {error_log} info;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;"""


def add_media_file(media, relpath, data=None):
    """Creates media/<relpath> readable by nginx's workers (every directory
    on the way 0755, the file 0644) and returns its content."""
    if data is None:
        data = ("content of " + relpath + "\n").encode()
    full = os.path.join(media, relpath)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    d = os.path.dirname(full)
    while len(d) >= len(media):
        os.chmod(d, 0o755)
        d = os.path.dirname(d)
    with open(full, "wb") as f:
        f.write(data)
    os.chmod(full, 0o644)
    return data


def pid_alive(pid):
    """True while pid exists and is not a zombie; reaps it if it is ours."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    # The state follows the command name in parentheses, which may hold spaces.
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_gone(pid, timeout=TIMEOUT, poll=POLL):
    """Whether pid is gone (or a zombie nobody reaps) within timeout."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def master_children(pid):
    """The pids of an nginx master's children (its workers), none once the
    master is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(x) for x in f.read().split()}
    except FileNotFoundError:
        return set()


def quit_nginx(pid, timeout=30.0):
    """Graceful stop (SIGQUIT) of an nginx master, reaped when it is our
    child (we are its subreaper); SIGKILL and an error when it does not go."""
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return
    if not wait_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        raise RuntimeError(f"nginx {pid} did not quit on SIGQUIT")


def read_pid_file(path, timeout=10.0):
    """The pid nginx writes after it daemonizes. `nginx` (daemon on) returns
    once the port listens, but its forked master writes the pid file a moment
    later: there is no other signal, so poll the file with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nginx wrote no pid to {path} within {timeout}s")
        time.sleep(0.01)

def become_subreaper():
    """nginx's master daemonizes: its parent exits and the master is
    re-parented. As a subreaper, this process becomes that parent, so the
    master can be waited for (and reaped) like any child."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def build_dir():
    return os.environ.get("SECURELINK_BUILD_DIR") or os.path.abspath("build")


def core_tool_path():
    return os.path.join(build_dir(), "tests", "integration", "securelink-core-tool")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(directory, conf, error_log, pid_file, diagnostics=lambda: "", wrap=(), env=None):
    """Starts nginx (`daemon on`) in directory with conf and error_log, the
    command prefixed by wrap (e.g. `ip netns exec NS`); returns the master's
    pid. The command returns once the master listens; its pid file follows
    right after. A failure raises, with nginx's stderr and diagnostics()."""
    become_subreaper()
    r = subprocess.run([*wrap, NGINX, "-p", directory + "/", "-c", conf, "-e", error_log],
                       capture_output=True, text=True, timeout=TIMEOUT, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"nginx failed to start: {r.stderr.strip()}\n{diagnostics()}")
    pid = read_pid_file(pid_file)
    wait_for_workers(pid, TIMEOUT, diagnostics)
    return pid


def wait_for_workers(pid, timeout, diagnostics=lambda: ""):
    """The master writes its pid file before it forks its workers: a reload
    (or a test that compares workers before and after one) must wait for
    them. /proc is the only signal there is, so poll it with a deadline."""
    deadline = time.monotonic() + timeout
    while not master_children(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nginx {pid} started no workers within {timeout}s\n{diagnostics()}")
        time.sleep(0.01)


def http_get(url, port, host="127.0.0.1", sock=None):
    """GETs a path-and-query (or an absolute URL's path and query) from
    host:port exactly as written: no re-quoting, no redirects; over sock when
    given (a socket already connected, e.g. from another network namespace).
    Returns (status, body)."""
    parts = urllib.parse.urlsplit(url)
    target = url if not parts.scheme else parts.path + ("?" + parts.query if parts.query else "")
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    if sock is not None:
        conn.sock = sock
    try:
        conn.request("GET", target)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def worker_user():
    """The `user` directive: only meaningful (and only allowed to switch)
    when nginx starts as root."""
    if os.geteuid() != 0:
        return None
    for user, group in (("www-data", "www-data"), ("nobody", "nogroup")):
        try:
            pwd.getpwnam(user)
            return f"{user} {group}"
        except KeyError:
            continue
    return None


def encode_target(path, minimal=False):
    """A SIGN target for a decoded path: fully percent-encoded, or (minimal)
    with only what a target cannot hold raw encoded, so raw UTF-8, '+', ';',
    "'", '(', ')', '=', '&' go through as they are."""
    if not minimal:
        return urllib.parse.quote(path, safe="/")
    out = []
    for ch in path:
        if ch in "% #?" or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("".join(f"%{b:02X}" for b in ch.encode()))
        else:
            out.append(ch)
    return "".join(out)


# make_site() options that belong in [nginx], not [links].
NGINX_KEYS = {"serve_public"}


class Site:
    def __init__(self, directory, tool, links):
        self.dir = directory
        self.tool = tool
        self.links = links
        self.port = None
        self.conf = os.path.join(directory, "securelinkd.conf")
        self.nginx_conf = os.path.join(directory, "nginx.conf")
        self.error_log = os.path.join(directory, "error.log")
        self.pid_file = os.path.join(directory, "nginx.pid")
        self.root = os.path.join(directory, "www")
        self.media = os.path.join(self.root, "media")
        self.keys_file = os.path.join(directory, "snippets", "keys.conf")
        self.locations_file = os.path.join(directory, "snippets", "locations.conf")
        self.state = os.path.join(directory, "state")
        self.master_pid = None

    # setup

    def setup(self):
        for d in (self.media, os.path.dirname(self.keys_file), self.state,
                  os.path.join(self.dir, "tmp")):
            os.makedirs(d, exist_ok=True)
        # The workers run as an unprivileged user when we are root: they must
        # be able to reach and read the media, nothing else.
        for d in (self.dir, self.root, self.media):
            os.chmod(d, 0o755)

        lines = [
            "[daemon]",
            f"state_directory = {self.state}",
            "[links]",
            "media_url = /media/",
        ]
        lines += [f"{k} = {v}" for k, v in self.links.items() if k not in NGINX_KEYS]
        lines += [
            "[nginx]",
            *(f"{k} = {v}" for k, v in self.links.items() if k in NGINX_KEYS),
            f"keys_file = {self.keys_file}",
            f"locations_file = {self.locations_file}",
            f"media_root = {self.media}/",
            "reload = none",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

        self.tool_run("render")
        self.write_nginx_conf()

    def write_nginx_conf(self):
        self.port = free_port()
        tmp = os.path.join(self.dir, "tmp")
        conf = f"""
{nginx_conf_head(self.pid_file, self.error_log, tmp)}

    # the keys map (secrets)
    include {self.keys_file};

    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        # Everything outside securelink's locations: served plainly.
        root {self.root};

        include {self.locations_file};
    }}
}}
"""
        with open(self.nginx_conf, "w") as f:
            f.write(conf)

    def add_file(self, relpath, data=None):
        """Creates media/<relpath> (relpath is the decoded URL path below
        /media/) and returns its content."""
        return add_media_file(self.media, relpath, data)

    # the core tool

    def tool_run(self, verb, *args):
        p = subprocess.run([self.tool, verb, "-c", self.conf, *args],
                           capture_output=True, text=True, timeout=TIMEOUT)
        if p.returncode != 0:
            raise RuntimeError(f"securelink-core-tool {verb} failed: {p.stderr.strip()}")
        return p.stdout.strip()

    def sign(self, path, expires=None, ip=None, minimal=False):
        """Signs the decoded path; returns the URL the core answers with."""
        if expires is None:
            expires = int(time.time()) + 3600
        args = [encode_target(path, minimal), str(expires)]
        if ip is not None:
            args.append(ip)
        return self.tool_run("sign", *args)

    def rotate(self):
        self.tool_run("rotate")

    def keys(self):
        """The keys map as nginx reads it: (default, {kid: secret})."""
        with open(self.keys_file) as f:
            text = f.read()
        default = re.search(r'^\s*default\s+"([^"]*)";', text, re.M).group(1)
        kids = dict(re.findall(r'^\s*"(\d+)"\s+"([^"]*)";', text, re.M))
        return default, kids

    # nginx

    def nginx(self, *args):
        return subprocess.run([NGINX, "-p", self.dir + "/", "-c", self.nginx_conf,
                               "-e", self.error_log, *args],
                              capture_output=True, text=True, timeout=TIMEOUT)

    def error_log_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def start(self):
        self.master_pid = start_nginx(self.dir, self.nginx_conf, self.error_log, self.pid_file,
                                      self.error_log_text)

    def workers(self):
        return master_children(self.master_pid)

    def reload(self):
        """nginx -s reload, then wait until the master's workers have been
        replaced: the signal alone proves nothing, nginx reloads
        asynchronously (and keeps the old workers on a bad config)."""
        old = self.workers()
        assert old, "nginx has no workers before the reload"
        p = self.nginx("-s", "reload")
        assert p.returncode == 0, f"nginx -s reload: {p.stderr.strip()}"
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            now = self.workers()
            if now and not (now & old):
                return
            time.sleep(POLL)
        raise AssertionError("nginx did not replace its workers after the reload:\n"
                             + self.error_log_text())

    def stop(self):
        pid, self.master_pid = self.master_pid, None
        if pid is not None:
            quit_nginx(pid, TIMEOUT)

    # HTTP

    def get(self, url):
        """GETs a path-and-query (or an absolute URL on this server) exactly
        as written: no re-quoting, no redirects. Returns (status, body)."""
        return http_get(url, self.port)
