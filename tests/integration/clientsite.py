# SPDX-License-Identifier: MIT
"""What the PHP and Go client suites (test_php_client.py, test_go_client.py)
run against. Each of their test functions becomes one pytest test here, so
the closing total counts them and a failing PHP or Go test fails its pytest
test. For each, ClientSite starts:

- for tests whose name contains "Real": the real securelinkd and nginx
  (daemonsite.open_daemon, media_url /media/, private_prefixes = private/,
  links as paths: no base_url; max_connections = 1 when the name also
  contains "OneConnection");
- four fakes (pyclient_fixture.FakeDaemon): "echo" answers "OK <request
  line>", so a test sees the wire exactly; "hang" never answers; "drop"
  closes every connection at its first request; "cut" echoes too, but
  closes its first connection at the third request, unanswered (a batch
  cut in the middle);
- a control socket the test drives the harness with, one command per
  connection, answered "ok [value]" or "error <why>":
      add <relpath>     creates media/<relpath>; the value is its content
      restart | stop    restarts or stops securelinkd (readiness: READY=1)
      conns <fake>      connections the fake accepted so far
      lines <fake>      request lines the fake received so far

and passes their paths in the environment: SECURELINK_TEST_SOCKET,
SECURELINK_TEST_HTTP (nginx's host:port), SECURELINK_TEST_CONTROL,
SECURELINK_TEST_{ECHO,HANG,DROP,CUT}_SOCKET, SECURELINK_TEST_VECTORS (the shared
table tests/vectors/clients.json) and SECURELINK_TEST_STRICT=1 (a missing
variable fails the test instead of skipping it).
"""

import os
import re
import secrets
import shutil
import socket
import tempfile
import threading

from daemonsite import close_daemon, open_daemon, require_binaries
from pyclient_fixture import SOURCE_DIR, FakeDaemon

VECTORS = os.path.join(SOURCE_DIR, "tests", "vectors", "clients.json")


def declared_tests(path, pattern):
    """The test functions a source file declares, in order (no compiler
    needed at collection time)."""
    with open(path) as f:
        return re.findall(pattern, f.read(), re.M)


def cut_at_third():
    """An echo handler that closes the connection at the third request line
    it sees, once."""
    seen = [0]

    def handler(line):
        seen[0] += 1
        return None if seen[0] == 3 else "OK " + line

    return handler


class ClientSite:
    def __init__(self, name):
        real_name = name if "Real" in name else ""
        real = bool(real_name)
        self.dir = tempfile.mkdtemp(prefix="sl-cl-")  # short: sun_path
        self.daemon = None
        self.fakes = {}
        self._control = None
        self._thread = None
        try:
            if real:
                require_binaries()
                options = {"links": {"base_url": None}}
                if "OneConnection" in real_name:
                    options["daemon"] = {"max_connections": "1"}
                self.daemon = open_daemon(options)
            self.fakes = {
                "echo": FakeDaemon(os.path.join(self.dir, "echo.sock"), lambda line: "OK " + line),
                "hang": FakeDaemon(os.path.join(self.dir, "hang.sock"), lambda line: FakeDaemon.HANG),
                "drop": FakeDaemon(os.path.join(self.dir, "drop.sock"), lambda line: None),
                "cut": FakeDaemon(os.path.join(self.dir, "cut.sock"), cut_at_third()),
            }
            self.control_path = os.path.join(self.dir, "control.sock")
            self._control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._control.bind(self.control_path)
            self._control.listen(8)
            self._thread = threading.Thread(target=self._serve, daemon=True)
            self._thread.start()
        except BaseException:
            self.close()
            raise

    def env(self):
        env = dict(os.environ,
                   SECURELINK_TEST_STRICT="1",
                   SECURELINK_TEST_CONTROL=self.control_path,
                   SECURELINK_TEST_VECTORS=VECTORS)
        env.pop("SECURELINK_SOCKET", None)
        for name, fake in self.fakes.items():
            env[f"SECURELINK_TEST_{name.upper()}_SOCKET"] = fake.path
        if self.daemon:
            env["SECURELINK_TEST_SOCKET"] = self.daemon.socket
            env["SECURELINK_TEST_HTTP"] = f"127.0.0.1:{self.daemon.port}"
        return env

    def diagnostics(self):
        return self.daemon.diagnostics() if self.daemon else ""

    def _serve(self):
        while True:
            try:
                conn, _ = self._control.accept()
            except OSError:  # closed
                return
            with conn:
                try:
                    line = conn.makefile("rb").readline().decode().rstrip("\n")
                    answer = self._command(line)
                except Exception as e:  # the test sees it and fails
                    answer = f"error {e!r}"
                try:
                    conn.sendall(answer.encode() + b"\n")
                except OSError:
                    pass

    def _command(self, line):
        verb, _, arg = line.partition(" ")
        if verb == "add" and self.daemon:
            content = "securelink-test-" + secrets.token_hex(8)
            self.daemon.add_file(arg, content.encode())
            return "ok " + content
        if verb == "restart" and self.daemon:
            self.daemon.restart()
            return "ok"
        if verb == "stop" and self.daemon:
            self.daemon.stop()
            return "ok"
        if verb == "conns" and arg in self.fakes:
            return f"ok {len(self.fakes[arg].conns)}"
        if verb == "lines" and arg in self.fakes:
            return f"ok {len(self.fakes[arg].lines)}"
        return f"error unknown command {line!r}"

    def close(self):
        errors = []
        if self._control is not None:
            try:
                self._control.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._control.close()
            self._thread.join(10)
        for fake in self.fakes.values():
            fake.close()
        if self.daemon:
            errors += close_daemon(self.daemon)
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]
