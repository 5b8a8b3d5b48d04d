# SPDX-License-Identifier: MIT
"""Publish before sign, for the configuration and the clock too (issue 13,
items 7, 9 and 11): the real securelinkd over its socket, a real nginx
(daemonsite.py). nginx itself says 200 or 403."""

import hashlib
import os
import subprocess
import threading
import time

import pytest

from daemonsite import TIMEOUT, b64url, daemon_binary, make_daemon  # noqa: F401 (a fixture)
from nginxsite import NGINX

PRIVATE = "/media/private/report.pdf"


@pytest.fixture
def daemon(make_daemon):
    d = make_daemon()
    d.add_file("private/report.pdf", b"a private report\n")
    return d


class SignAndFetch(threading.Thread):
    """Signs path and fetches the link at once, again and again, on a
    connection of its own, until stopped; keeps every (url, status)."""

    def __init__(self, daemon, path=PRIVATE):
        super().__init__(daemon=True)
        self.d = daemon
        self.path = path
        self.results = []
        self.error = None
        self.stopping = threading.Event()

    def run(self):
        try:
            with self.d.connect() as c:
                while not self.stopping.is_set():
                    answer = c.ask("SIGN " + self.path)
                    assert answer.startswith("OK "), answer
                    self.results.append((answer[3:], self.d.status_of(answer[3:])))
        except BaseException as e:  # reported by stop()
            self.error = e

    def wait_for(self, predicate, what):
        """Returns once a link matching predicate was signed and fetched."""
        deadline = time.monotonic() + 20
        while not any(predicate(url) for url, _ in list(self.results)):
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"no link {what} in 20s\n" + self.d.diagnostics()
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        self.join(20)
        if self.error:
            raise self.error
        return self.results


# (what changes, the path signed and fetched, a link of the old format, of the new)
CHANGES = {
    "token_param": ({"token_param": "sig"}, PRIVATE,
                    lambda url: "?token=" in url, lambda url: "?sig=" in url),
    "all_params": ({"token_param": "t", "expires_param": "e", "key_param": "k"}, PRIVATE,
                   lambda url: "?token=" in url, lambda url: "?t=" in url and "&k=" in url),
    "private_prefix_removed": ({"private_prefixes": "private/"}, "/media/secret/s.pdf",
                               lambda url: "?token=" in url, lambda url: "?" not in url),
    "private_prefix_added": ({"private_prefixes": "private/ secret/ extra/"},
                             "/media/extra/e.pdf",
                             lambda url: "?" not in url, lambda url: "?token=" in url),
}


@pytest.mark.parametrize("change", CHANGES)
def test_changed_link_format_is_signed_only_once_nginx_checks_it(make_daemon, change):
    options, path, old_format, new_format = CHANGES[change]
    d = make_daemon({"links": {"private_prefixes": "private/ secret/"}})
    d.add_file(path[len("/media/"):])
    traffic = SignAndFetch(d, path)
    traffic.start()
    traffic.wait_for(old_format, "in the running format")

    for key, value in options.items():
        d.set_option("links", key, value)
    d.sighup()
    traffic.wait_for(new_format, "in the new format")
    # A few more after the switch, while nginx drops the old format.
    n = len(traffic.results)
    traffic.wait_for(lambda url: len(traffic.results) > n + 50, "after the switch")
    d.wait_status(lambda s: not s["nginx"]["pending"], what="the old format gone")
    n = len(traffic.results)
    traffic.wait_for(lambda url: len(traffic.results) > n + 20, "after that")
    results = traffic.stop()

    refused = [(url, status) for url, status in results if status != 200]
    assert not refused, (f"{len(refused)} of {len(results)} links refused by nginx during "
                         f"the switch, e.g. {refused[:3]}\n" + d.diagnostics())
    assert any(old_format(url) for url, _ in results)
    # The old format is gone from nginx once the change is complete: only
    # links of the new format pass.
    url = results[-1][0]
    assert new_format(url)
    if "token" not in options.get("token_param", "token"):
        with open(d.locations_file) as f:
            text = f.read()
        assert "$arg_token" not in text, text


def test_changed_link_format_is_not_signed_while_nginx_refuses_it(daemon):
    with open(daemon.extra_conf, "w") as f:
        f.write("this_is_no_nginx_directive;\n")
    daemon.set_option("links", "token_param", "sig")
    daemon.sighup()
    st = daemon.wait_status(lambda s: not s["nginx"]["ok"], what="the nginx test failing")
    assert "this_is_no_nginx_directive" in st["nginx"]["error"], st

    # nginx still runs the old configuration: links in the old format pass.
    url = daemon.sign(PRIVATE)
    assert "?token=" in url
    assert daemon.status_of(url) == 200
    assert daemon.ask("VERIFY " + url).startswith("OK valid ")
    assert "link format" in daemon.log_text()

    # Repaired: the new format once nginx checks it.
    with open(daemon.extra_conf, "w") as f:
        f.write("# repaired\n")
    daemon.sighup()
    daemon.wait_status(lambda s: s["nginx"]["ok"] and not s["nginx"]["pending"],
                       what="nginx ok again")
    url = daemon.sign(PRIVATE)
    assert "?sig=" in url
    assert daemon.status_of(url) == 200


# --- item 11: what "confirmed" means, and programs that do not exist -------------


def test_status_says_what_confirmed_the_publication(make_daemon):
    d = make_daemon()
    # Started before nginx: the files on disk were all there was to it.
    assert d.status()["nginx"]["confirmation"] == "not-running"
    d.restart()
    st = d.status()
    assert st["nginx"]["confirmation"] == "workers-replaced", st

    # exec: the reload command's success is all there is to know.
    d.set_option("nginx", "reload", f"exec:{NGINX} -p {d.dir}/ -c {d.nginx_conf} -e "
                                    f"{d.error_log} -s reload")
    d.restart()
    st = d.status()
    assert st["nginx"]["confirmation"] == "reload-command", st

    # none: only the test passed.
    d.set_option("nginx", "reload", "none")
    d.restart()
    st = d.status()
    assert st["nginx"]["confirmation"] == "test-only", st
    assert st["nginx"]["ok"] is True


def test_reload_none_with_a_running_nginx_warns_at_start(make_daemon):
    d = make_daemon()
    d.set_option("nginx", "reload", "none")
    d.restart()  # nginx runs now
    log = d.log_text()
    assert "reload = none" in log and "nginx master process" in log, log


def run_securelinkd(*args):
    return subprocess.run([daemon_binary(), *args], capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("key,value,needle", [
    ("test_command", "/usr/sbin/no-such-nginx -t -q", "/usr/sbin/no-such-nginx"),
    ("test_command", "no-such-nginx -t -q", "\"no-such-nginx\""),
    ("reload", "exec:/usr/sbin/no-such-nginx -s reload", "/usr/sbin/no-such-nginx"),
])
def test_check_config_and_start_refuse_a_program_that_does_not_exist(make_daemon, key, value,
                                                                     needle):
    d = make_daemon(start=False)
    d.set_option("nginx", key, value)

    r = run_securelinkd("-c", d.conf, "--check-config")
    assert r.returncode == 78, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"{key}:" in lines[0] and needle in lines[0], lines[0]
    assert "full path" in lines[0], lines[0]

    # Started anyway: refused the same way, rather than never activating a key.
    p = d.spawn()
    assert p.wait(TIMEOUT) == 78
    d.proc = None
    assert needle in d.log_text()


def test_sighup_keeps_the_running_config_when_its_program_does_not_exist(daemon):
    daemon.set_option("nginx", "test_command", "/usr/sbin/no-such-nginx -t")
    daemon.sighup()
    assert "Configuration not reloaded" in daemon.log_text()
    assert "/usr/sbin/no-such-nginx" in daemon.log_text()
    daemon.rotate()
    assert daemon.status()["nginx"]["ok"] is True


# --- item 9: a clock that ran ahead ----------------------------------------------

DAY = 86400
USEC = 1_000_000


def write_keyring(path, next_kid, keys):
    """A key ring file as securelinkd writes it: "key KID STATE LEGACY
    PUBLISHED ACTIVATED RETIRED DROP_AFTER SECRET" lines (times in
    microseconds), closed by the BLAKE2b-256 of the text before it."""
    text = f"securelink-keyring 1\nnext_kid {next_kid}\n"
    for kid, state, times, secret in keys:
        text += f"key {kid} {state} 0 " + " ".join(str(t) for t in times) + f" {secret}\n"
    text += "checksum " + hashlib.blake2b(text.encode(), digest_size=32).hexdigest() + "\n"
    with open(path, "w") as f:
        f.write(text)


def test_times_stamped_by_a_clock_that_ran_ahead_are_rebased_at_start(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1d", "max_link_ttl": "1h",
                              "clock_skew": "30s"}})
    d.add_file("private/report.pdf", b"a private report\n")
    assert d.stop() == 0
    with open(d.keyring) as f:
        header = f.readline()
    assert header == "securelink-keyring 1\n", header

    # What one start with the clock 400 days ahead (a bad RTC before NTP)
    # leaves: key 1 overdue there, so key 2 was made, confirmed and
    # activated at +400 days, and key 1 retired then.
    now = int(time.time())
    ahead = (now + 400 * DAY) * USEC
    drop = ahead + (3600 + 30) * USEC
    _, keys = d.keys()
    write_keyring(d.keyring, 3, [
        (1, "retired", ((now - 60) * USEC, (now - 60) * USEC, ahead, drop),
         b64url(keys[1].encode())),
        (2, "active", (ahead - USEC, ahead, 0, 0), b64url(b64url(os.urandom(32)).encode())),
    ])

    d.start()
    after = int(time.time())
    st = d.status()
    assert st["active_kid"] == 2, st
    assert st["next_rotation"] <= after + DAY, st
    for k in st["keys"]:
        for field in ("published", "activated", "retired"):
            assert k[field] is None or k[field] <= after, (field, k)
        if k["drop_after"] is not None:
            assert k["drop_after"] <= after + 3600 + 30, k
    assert "ahead" in d.log_text()
    # Persisted: the next start finds the ring as it is now.
    assert d.stop() == 0
    d.start()
    assert d.status()["next_rotation"] == st["next_rotation"]
    assert now + DAY <= st["next_rotation"]
    assert d.status_of(d.sign(PRIVATE)) == 200
