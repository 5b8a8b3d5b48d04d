# SPDX-License-Identifier: MIT
"""Several hosts on one machine, for test_fleet.py: each host is a network
namespace of its own (ip netns) with a real securelinkd and, for some, a real
nginx. The namespaces hang off a bridge in the "app" namespace, where the
test's HTTP client lives too, so all traffic stays between namespaces this
module created; addresses are from 192.0.2.0/24 (TEST-NET-1), which nothing
outside them uses. Everything is torn down at the end, also when a test
failed.

The daemons speak to the test over their Unix sockets (pathnames work across
network namespaces) and say READY=1 on a notify socket, exactly as in
daemonsite.py, whose Daemon class each Host extends. A host's clock can be
shifted with libfaketime (Debian's libfaketime), for its daemon and its
nginx: the whole host runs ahead or behind.

Needs root (ip netns, veth, a bridge)."""

import base64
import ctypes
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile

import pytest

from daemonsite import TIMEOUT, Daemon, daemon_binary
from nginxsite import NGINX, http_get, start_nginx

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
NET = "192.0.2"
PORT = 8080
CLONE_NEWNET = 0x40000000
KDF_CONTEXT = b"slinkkey"

_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=TIMEOUT)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def new_master():
    """What `openssl rand -base64 32` prints, and its 32 bytes."""
    raw = os.urandom(32)
    return base64.b64encode(raw).decode() + "\n", raw


def epoch_secret(master, epoch):
    """The key of an epoch, computed independently of securelinkd:
    crypto_kdf_derive_from_key() is BLAKE2b-256 keyed with the master, salt
    LE64(epoch) || 0^8, personal "slinkkey" || 0^8."""
    digest = hashlib.blake2b(b"", key=master, digest_size=32,
                             salt=struct.pack("<Q", epoch) + bytes(8),
                             person=KDF_CONTEXT + bytes(8)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


def connect_in(ns, addr, port, timeout=TIMEOUT):
    """A TCP connection made from inside network namespace ns. setns()
    moves only the calling thread; the socket stays in ns for good."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(there)
        try:
            return socket.create_connection((addr, port), timeout)
        finally:
            _setns(here)
    finally:
        os.close(here)
        os.close(there)


class Fleet:
    """The namespaces: "app" holds the bridge and the test's client; each
    host gets its own namespace with a veth into the bridge."""

    def __init__(self):
        self.prefix = f"slf{os.getpid() % 100000}"
        self.app = self.prefix + "-app"
        self.namespaces = []
        self.hosts = []
        self.next_addr = 2

    def setup(self):
        self._add_ns(self.app)
        ip("-n", self.app, "link", "set", "lo", "up")
        ip("-n", self.app, "link", "add", "br0", "type", "bridge")
        ip("-n", self.app, "addr", "add", f"{NET}.1/24", "dev", "br0")
        ip("-n", self.app, "link", "set", "br0", "up")

    def _add_ns(self, name):
        ip("netns", "add", name)
        self.namespaces.append(name)

    def add_ns(self, name):
        """A host namespace with an address on the bridge; returns (ns, addr)."""
        ns = f"{self.prefix}-{name}"
        addr = f"{NET}.{self.next_addr}"
        self.next_addr += 1
        self._add_ns(ns)
        veth = f"v{name}"[:15]
        ip("-n", self.app, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
           "netns", ns)
        ip("-n", self.app, "link", "set", veth, "master", "br0")
        ip("-n", self.app, "link", "set", veth, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        return ns, addr

    def host(self, name, master_text, nginx=True, clock=None, keys=None, extra_files=()):
        """A host with securelinkd (and nginx unless nginx=False), its clock
        shifted by `clock` (libfaketime's FAKETIME, e.g. "+4s"), keys
        options merged over the fleet's. Not started."""
        ns, addr = self.add_ns(name)
        d = tempfile.mkdtemp(prefix="sl-fl-")
        h = Host(d, ns, addr, master_text, nginx=nginx, clock=clock, keys=keys)
        self.hosts.append(h)
        return h

    def cleanup(self):
        errors = []
        for h in self.hosts:
            errors += h.cleanup()
            shutil.rmtree(h.dir, ignore_errors=True)
        for ns in reversed(self.namespaces):
            try:
                ip("netns", "del", ns)
            except Exception as e:  # delete the others too
                errors.append(e)
        return errors


class Host(Daemon):
    """securelinkd in namespace ns with mode = derived; nginx (if any)
    listening on addr:8080 in the same namespace."""

    def __init__(self, d, ns, addr, master_text, nginx=True, clock=None, keys=None):
        self.ns = ns
        self.addr = addr
        self.has_nginx = nginx
        self.clock = clock
        self.master_file = os.path.join(d, "master")
        self.write_master(master_text)
        self.fleet_keys = keys or {}
        super().__init__(d, None)

    def write_master(self, text, path=None):
        path = path or self.master_file
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def default_options(self):
        options = super().default_options()
        options["keys"] = {
            "mode": "derived",
            "master_key_file": self.master_file,
            "rotate_every": "10s",
            "max_link_ttl": "30s",
            "default_link_ttl": "20s",
            "clock_skew": "4s",
        }
        options["keys"].update(self.fleet_keys)
        # Links are paths: the test fetches each from every nginx.
        options["links"]["base_url"] = ""
        if not self.has_nginx:
            # An application server: it signs, nobody reads its keys file.
            options["nginx"]["test_command"] = "/bin/true"
            options["nginx"]["reload"] = "none"
        return options

    def write_nginx_conf(self):
        super().write_nginx_conf()
        with open(self.nginx_conf) as f:
            text = f.read()
        text = text.replace(f"listen 127.0.0.1:{self.port};", f"listen {self.addr}:{PORT};")
        with open(self.nginx_conf, "w") as f:
            f.write(text)

    def env(self):
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(self.dir, "notify.sock"))
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        if self.clock:
            env["LD_PRELOAD"] = FAKETIME_LIB
            env["FAKETIME"] = self.clock
        return env

    def spawn(self, args=None):
        self._open_notify()
        # ip netns exec execs securelinkd in place: the pid is the daemon's.
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, daemon_binary(), "-c", self.conf]
                + (args or []),
                env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        return self.proc

    def start_nginx(self):
        self.nginx_pid = start_nginx(self.dir, self.nginx_conf, self.error_log, self.pid_file,
                                     self.diagnostics, wrap=("ip", "netns", "exec", self.ns),
                                     env=self.env())

    def get(self, url, client_ns):
        """GETs url's path and query from this host's nginx, from
        namespace client_ns. Returns (status, body)."""
        return http_get(url, PORT, host=self.addr, sock=connect_in(client_ns, self.addr, PORT))

    def secrets(self):
        """{kid: secret} of the keys file nginx reads."""
        return self.keys()[1]


def fleet_available():
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not shutil.which("ip"):
        return "needs iproute2's ip"
    if not os.access(NGINX, os.X_OK):
        return f"{NGINX} is not installed"
    if not os.path.exists(FAKETIME_LIB):
        return f"{FAKETIME_LIB} is missing (apt install libfaketime)"
    return None


@pytest.fixture
def fleet():
    why = fleet_available()
    if why:
        pytest.skip(why)
    if not os.access(daemon_binary(), os.X_OK):
        pytest.fail(f"{daemon_binary()} is missing: build it first, or set SECURELINK_BUILD_DIR")
    f = Fleet()
    try:
        f.setup()
        yield f
    finally:
        errors = f.cleanup()
        if errors:
            raise errors[0]
