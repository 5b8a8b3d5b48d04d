# SPDX-License-Identifier: MIT
"""A reload someone else asked for just before securelinkd's own: nginx
reads its configuration when it handles a SIGHUP, not when the signal is
sent, and handles one reload at a time. When securelinkd writes a new key
while nginx is still reading the files for an earlier SIGHUP (an admin's
`nginx -s reload`, configuration management, a securelinkd killed in the
middle of a sync), the workers of that earlier reload appear after
securelinkd's snapshot of the old ones: new workers without the new key.
Only the reload that follows securelinkd's own SIGHUP has it, and that
comes later. A key activated on the earlier reload's workers signs links
nginx refuses until then.

The test makes nginx slow to read its configuration (a map of 300,000
entries in the running nginx.conf; the daemon's `nginx -t` tests a copy
without it, so securelinkd gets to its SIGHUP while nginx is still reading),
sends nginx a SIGHUP, and asks for a rotation at once."""

import os
import signal
import threading
import time

from daemonsite import TIMEOUT, make_daemon, query  # noqa: F401 (a fixture)
from nginxsite import NGINX

PRIVATE = "/media/private/report.pdf"
BODY = b"a private report\n"
SLOW_ENTRIES = 300000


def slow_to_read(d):
    """Puts a map nginx takes a good part of a second to read into the
    running configuration, and a copy of nginx.conf without it where the
    daemon's test command reads it."""
    with open(d.extra_conf, "w") as f:
        f.write("map $uri $securelink_test_slow {\n")
        f.writelines(f"    /slow/{i} {i};\n" for i in range(SLOW_ENTRIES))
        f.write("}\n")
    quick = os.path.join(d.dir, "nginx-quick.conf")
    with open(d.nginx_conf) as f:
        text = f.read()
    with open(quick, "w") as f:
        f.write(text.replace(f"include {d.extra_conf};", ""))
    return f"{NGINX} -t -q -p {d.dir}/ -c {quick} -e {d.error_log}"


def test_a_reload_asked_for_just_before_ours_does_not_make_a_key_active(make_daemon):
    d = make_daemon(start=False)
    d.add_file("private/report.pdf", BODY)
    d.set_option("nginx", "test_command", slow_to_read(d))
    d.start()
    d.start_nginx()
    d.wait_active()

    # Sign and fetch, again and again, from here to the end.
    fetches = []
    stop = threading.Event()
    failure = []

    def client():
        try:
            while not stop.is_set():
                url = d.sign(PRIVATE)
                fetches.append((int(query(url)["kid"]), d.status_of(url), url))
        except Exception as e:  # noqa: BLE001 (reported below)
            failure.append(e)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        before = d.status()["active_kid"]
        # A reload of someone else's, then ours while nginx still reads.
        os.kill(d.nginx_pid, signal.SIGHUP)
        kid = d.rotate()
        assert kid == before + 1
        # Links of the new key, fetched until nginx has surely finished
        # the reload securelinkd asked for (its workers replaced twice
        # since: the other reload's and ours).
        d.wait_status(lambda s: s["active_kid"] == kid, what="the new key active")
        n = len(fetches)
        deadline = time.monotonic() + TIMEOUT
        while sum(1 for f in fetches[n:] if f[0] == kid) < 50 and not failure:
            assert time.monotonic() < deadline, "the client signed no links of the new key"
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(TIMEOUT)
    assert not failure, failure
    new = [f for f in fetches if f[0] == kid]
    bad = [f for f in new if f[1] != 200]
    assert new
    assert not bad, (f"{len(bad)} of {len(new)} links of the new key {kid} were refused by "
                     f"nginx: {bad[:3]}\n" + d.diagnostics())
