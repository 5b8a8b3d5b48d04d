# SPDX-License-Identifier: MIT
"""The real securelinkd over its real socket, with a real nginx on 127.0.0.1
(daemonsite.py): the wire protocol as raw lines, two-phase rotation, nginx
failures, start-up recovery, signals, legacy import, rotation under load.

Known answers come from outside the daemon: tokens are recomputed here with
hashlib from the secrets in the keys file nginx reads, and nginx itself says
200/403/410."""

import base64
import grp
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from daemonsite import (TIMEOUT, b64url, err_code, kid_of, make_daemon,  # noqa: F401 (a fixture)
                        query, token)

PRIVATE = "/media/private/report.pdf"


def tamper(url):
    q = query(url)
    t = q["token"]
    bad = ("A" if t[0] != "A" else "B") + t[1:]
    return url.replace("token=" + t, "token=" + bad)


@pytest.fixture
def daemon(make_daemon):
    d = make_daemon()
    d.add_file("private/report.pdf", b"a private report\n")
    d.add_file("public/logo.txt", b"a public logo\n")
    return d


# --- PING, SIGN, VERIFY, STATUS ----------------------------------------------


def test_ping_answers_pong_and_tolerates_cr_before_lf(daemon):
    with daemon.connect() as c:
        assert c.ask("PING") == "OK pong"
        c.send("PING\r\n")
        assert c.read_line() == "OK pong"


def test_sign_ttl_link_hashes_the_path_with_the_active_key_and_nginx_serves_it(daemon):
    before = int(time.time())
    url = daemon.sign(PRIVATE, "ttl=600")
    after = int(time.time())
    m = re.fullmatch(re.escape(daemon.base_url + PRIVATE)
                     + r"\?token=([A-Za-z0-9_-]{22})&expires=(\d+)&kid=(\d+)", url)
    assert m, url
    tok, expires, kid = m.group(1), int(m.group(2)), int(m.group(3))
    assert before + 600 <= expires <= after + 600
    assert daemon.status()["active_kid"] == kid
    _, keys = daemon.keys()
    assert tok == token(expires, PRIVATE, keys[kid])

    assert daemon.get(url) == (200, b"a private report\n")
    assert daemon.status_of(tamper(url)) == 403
    assert daemon.status_of(daemon.base_url + PRIVATE) == 403


def test_sign_expires_is_used_as_given(daemon):
    expires = int(time.time()) + 1234
    url = daemon.sign(PRIVATE, f"expires={expires}")
    assert query(url)["expires"] == str(expires)
    assert daemon.status_of(url) == 200


def test_sign_percent_encoded_utf8_target_is_hashed_decoded_and_served(daemon):
    daemon.add_file("private/Übersicht (final) #2.pdf", b"odd name\n")
    url = daemon.sign("/media/private/%C3%9Cbersicht%20(final)%20%232.pdf")
    q = query(url)
    _, keys = daemon.keys()
    assert q["token"] == token(q["expires"], "/media/private/Übersicht (final) #2.pdf",
                               keys[int(q["kid"])])
    assert daemon.get(url) == (200, b"odd name\n")


def test_public_target_comes_back_unsigned_and_is_served(daemon):
    assert daemon.ask("SIGN /media/public/logo.txt") == \
        f"OK {daemon.base_url}/media/public/logo.txt"
    assert daemon.get(daemon.base_url + "/media/public/logo.txt") == (200, b"a public logo\n")
    # Outside media_url: public too.
    assert daemon.ask("SIGN /static/app.css ttl=60") == f"OK {daemon.base_url}/static/app.css"


def test_public_prefixes_make_everything_else_below_media_url_private(make_daemon):
    d = make_daemon({"links": {"private_prefixes": None, "public_prefixes": "public/"}})
    d.add_file("public/logo.txt")
    d.add_file("reports/q1.txt", b"q1\n")
    assert d.ask("SIGN /media/public/logo.txt") == f"OK {d.base_url}/media/public/logo.txt"
    assert d.status_of(d.base_url + "/media/public/logo.txt") == 200
    url = d.sign("/media/reports/q1.txt")
    assert "token=" in url
    assert d.get(url) == (200, b"q1\n")
    assert d.status_of(d.base_url + "/media/reports/q1.txt") == 403


def test_absolute_url_keeps_scheme_and_host_out_of_the_hash(daemon):
    for base in ("https://cdn.example.com:8443", "http://example.org"):
        url = daemon.sign(base + PRIVATE)
        assert url.startswith(base + PRIVATE + "?token="), url
        q = query(url)
        _, keys = daemon.keys()
        assert q["token"] == token(q["expires"], PRIVATE, keys[int(q["kid"])])
        # The same path and query on our nginx: the host was not hashed.
        assert daemon.status_of(daemon.base_url + url[len(base):]) == 200
    assert daemon.ask("SIGN http://example.org/media/public/logo.txt") == \
        "OK http://example.org/media/public/logo.txt"


def test_bind_ip_requires_ip_and_nginx_checks_the_client_address(make_daemon):
    d = make_daemon({"links": {"bind_ip": "yes"}})
    d.add_file("private/report.pdf", b"bound\n")
    assert err_code(d.ask(f"SIGN {PRIVATE}")) == "bad-ip"

    mine = d.sign(PRIVATE, "ip=127.0.0.1")
    q = query(mine)
    _, keys = d.keys()
    assert q["token"] == token(q["expires"], PRIVATE, keys[int(q["kid"])], ip="127.0.0.1")
    assert d.get(mine) == (200, b"bound\n")
    # Signed for another address: nginx sees 127.0.0.1.
    other = d.sign(PRIVATE, "ip=192.0.2.7")
    assert d.status_of(other) == 403

    assert d.ask(f"VERIFY {mine} ip=127.0.0.1").startswith("OK valid ")
    assert d.ask(f"VERIFY {mine} ip=192.0.2.7").startswith("OK invalid")


def test_verify_valid_expired_invalid_public_and_nginx_agrees(daemon):
    url = daemon.sign(PRIVATE, "ttl=600")
    q = query(url)
    assert daemon.ask(f"VERIFY {url}") == f"OK valid kid={q['kid']} expires={q['expires']}"
    assert daemon.ask(f"VERIFY {tamper(url)}").startswith("OK invalid")
    assert daemon.ask(f"VERIFY {daemon.base_url}/media/public/logo.txt") == "OK public"

    expires = int(time.time()) + 1
    short = daemon.sign(PRIVATE, f"expires={expires}")
    # No signal for the clock: wait until nginx's second is past expires.
    time.sleep(max(0.0, expires + 1.05 - time.time()))
    assert daemon.ask(f"VERIFY {short}") == \
        f"OK expired kid={kid_of(short)} expires={expires}"
    assert daemon.status_of(short) == 410
    assert daemon.status_of(url) == 200


def test_status_is_one_line_json_with_the_documented_fields(daemon):
    signed = daemon.status()["counters"]["signed"]
    daemon.sign(PRIVATE)
    st = daemon.status()
    assert set(st) >= {"active_kid", "next_rotation", "keys", "nginx", "counters"}
    assert isinstance(st["active_kid"], int)
    k = st["keys"][-1]
    assert set(k) >= {"kid", "state", "published", "activated", "retired", "drop_after"}
    assert k["kid"] == st["active_kid"] and k["state"] == "active"
    assert st["next_rotation"] == k["activated"] + 24 * 3600  # rotate_every default 24h
    assert set(st["nginx"]) >= {"last_reload", "ok", "error"}
    assert st["nginx"]["ok"] is True and st["nginx"]["error"] is None
    assert set(st["counters"]) >= {"signed", "errors", "rotations"}
    assert st["counters"]["signed"] == signed + 1


# --- errors ---------------------------------------------------------------


def bad_lines():
    now = int(time.time())
    p = PRIVATE
    return [
        ("", "bad-request"),
        ("SIGN", "bad-request"),
        (f"SIGN {p} ttl=5 ttl=6", "bad-request"),
        (f"SIGN {p} ttl=5 expires={now + 60}", "bad-request"),
        (f"SIGN {p} colour=red", "bad-request"),
        (f"SIGN {p} stray", "bad-request"),
        ("VERIFY", "bad-request"),
        ("ROTATE now", "bad-request"),
        ("IMPORT", "bad-request"),
        ("sign /media/private/a", "unknown-verb"),
        ("FROB", "unknown-verb"),
        ("SIGN media/private/a", "bad-target"),
        ("SIGN /media/private/../../etc/passwd", "bad-target"),
        ("SIGN /media/private/a%00b", "bad-target"),
        ("SIGN /media/private/a?x=1", "bad-target"),
        ("SIGN ftp://example.org/media/private/a", "bad-target"),
        (f"SIGN {p} ttl=0", "bad-ttl"),
        (f"SIGN {p} ttl=-5", "bad-ttl"),
        (f"SIGN {p} ttl=1h", "bad-ttl"),
        (f"SIGN {p} expires={now - 10}", "bad-ttl"),
        (f"SIGN {p} expires=0", "bad-ttl"),
        (f"SIGN {p} ttl=86401", "ttl-too-long"),
        (f"SIGN {p} expires={now + 10 * 86400}", "ttl-too-long"),
        (f"SIGN {p} ip=999.1.1.1", "bad-ip"),
        (f"SIGN {p} ip=localhost", "bad-ip"),
        (f"VERIFY {p}?token=x&expires=1&kid=1 ip=1.2.3", "bad-ip"),
    ]


def test_every_bad_line_gets_its_error_code_and_the_connection_stays_usable(daemon):
    lines = bad_lines()
    with daemon.connect() as c, daemon.connect() as other:
        for line, code in lines:
            answer = c.ask(line)
            assert err_code(answer) == code, f"{line!r} -> {answer!r}"
            assert c.ask("PING") == "OK pong", f"connection unusable after {line!r}"
            assert other.ask("PING") == "OK pong", f"other client affected by {line!r}"
        url = c.ask(f"SIGN {PRIVATE}")[3:]
        assert daemon.status_of(url) == 200
    # The parser's and the signer's refusals are counted (IMPORT's is a
    # parse error too).
    assert daemon.status()["counters"]["errors"] == len(lines)
    daemon.assert_no_secret_leaked()


def test_line_too_long_is_answered_then_closes_only_that_connection(daemon):
    with daemon.connect() as c, daemon.connect() as other:
        # 8192 bytes including the LF is still a line.
        assert err_code(c.ask("X" * 8191)) == "unknown-verb"
        c.send("P" * 8192 + "\n")
        assert err_code(c.read_line()) == "line-too-long"
        assert c.read_line() is None  # closed
        assert other.ask("PING") == "OK pong"
    # No LF at all: the same.
    with daemon.connect() as c:
        c.send("SIGN /media/private/" + "a" * 9000)
        assert err_code(c.read_line()) == "line-too-long"
        assert c.read_line() is None
    assert daemon.ask("PING") == "OK pong"


def test_every_error_answer_counts_in_status(make_daemon):
    d = make_daemon({"daemon": {"max_connections": "2"}})
    with d.connect() as c1, d.connect() as c2:
        assert c1.ask("PING") == "OK pong"
        assert c2.ask("PING") == "OK pong"
        # Refused by the server before any request: counted too.
        with d.connect() as c3:
            assert err_code(c3.read_line()) == "unavailable"
        # IMPORT refusals found after parsing (this test runs as root, an
        # admin): a NUL byte, and a '"' nginx could not quote.
        assert err_code(c1.ask("IMPORT AA")) == "bad-request"
        assert err_code(c1.ask("IMPORT " + base64.urlsafe_b64encode(b'a"b').decode())) == (
            "bad-request")
        c2.send("P" * 8192 + "\n")
        assert err_code(c2.read_line()) == "line-too-long"
        answer = c1.ask("STATUS")
        assert answer.startswith("OK ")
        assert json.loads(answer[3:])["counters"]["errors"] == 4


def test_5000_pipelined_requests_are_answered_in_order(daemon):
    n = 5000
    lines = []
    for i in range(n):
        if i % 1000 == 999:
            lines.append(f"SIGN /media/private/f{i}.txt ttl=0")  # bad-ttl, in its place
        elif i % 1000 == 500:
            lines.append("PING")
        else:
            lines.append(f"SIGN /media/private/f{i}.txt ttl={100 + i}")
    blob = ("\n".join(lines) + "\n").encode()
    with daemon.connect() as c:
        # Every request is written before any answer is read; the writer is
        # a thread only because the daemon, with its bounded output buffer,
        # rightly stops reading while nobody reads its answers.
        sender = threading.Thread(target=c.send, args=(blob,))
        sender.start()
        answers = [c.read_line() for _ in range(n)]
        sender.join(TIMEOUT)
        assert not sender.is_alive()
    for i, (line, answer) in enumerate(zip(lines, answers)):
        if line.endswith("ttl=0"):
            assert err_code(answer) == "bad-ttl", (i, answer)
        elif line == "PING":
            assert answer == "OK pong", (i, answer)
        else:
            assert answer.startswith(f"OK {daemon.base_url}/media/private/f{i}.txt?"), (i, answer)
            q = query(answer[3:])
            assert int(q["expires"]) - int(time.time()) <= 100 + i
    daemon.add_file("private/f4998.txt", b"last\n")
    assert daemon.get(answers[4998][3:]) == (200, b"last\n")


def test_too_many_connections_is_unavailable_and_the_others_keep_working(make_daemon):
    d = make_daemon({"daemon": {"max_connections": "2"}})
    c1, c2 = d.connect(), d.connect()
    try:
        assert c1.ask("PING") == "OK pong"
        assert c2.ask("PING") == "OK pong"
        with d.connect() as c3:
            assert err_code(c3.read_line()) == "unavailable"
            assert c3.read_line() is None
        assert c1.ask("PING") == "OK pong"
    finally:
        c1.close()
        c2.close()
    # The daemon notices the close asynchronously and says nothing about it:
    # retry until a slot is free.
    deadline = time.monotonic() + TIMEOUT
    while True:
        with d.connect() as c:
            answer = c.ask("PING")
        if answer == "OK pong":
            break
        assert err_code(answer) == "unavailable"
        assert time.monotonic() < deadline, "no connection slot came free"
        time.sleep(0.05)


REFUSED_RE = re.compile(r"Refused (a|\d+ more) connections? .*max_connections=2 reached; "
                        r"uid 0 holds 2 of them")
# The daemon's interval between two such lines (server.c, REFUSED_LOG_INTERVAL).
REFUSED_LOG_INTERVAL = 5.0


def test_refused_connections_are_logged_with_a_count_at_most_once_per_interval(make_daemon):
    d = make_daemon({"daemon": {"max_connections": "2"}}, nginx=False)
    held = [d.connect(), d.connect()]
    try:
        for c in held:
            assert c.ask("PING") == "OK pong"
        assert not REFUSED_RE.search(d.log_text())
        n = 30
        started = time.monotonic()
        for _ in range(n):
            with d.connect() as c:
                assert err_code(c.read_line()) == "unavailable"
                assert c.read_line() is None
        elapsed = time.monotonic() - started

        # Every refusal counted: the first at once, the rest in summary
        # lines (the last one when the interval after the burst is over).
        def counted():
            found = REFUSED_RE.findall(d.log_text())
            return found, sum(1 if m == "a" else int(m.split()[0]) for m in found)

        deadline = time.monotonic() + REFUSED_LOG_INTERVAL + TIMEOUT
        while counted()[1] < n:
            assert time.monotonic() < deadline, d.log_text()[-2000:]
            time.sleep(0.1)
        lines, total = counted()
        assert total == n, lines
        assert lines[0] == "a"
        # One line per interval at most, not one per refusal.
        assert len(lines) <= 2 + elapsed / REFUSED_LOG_INTERVAL, lines
        assert held[0].ask("PING") == "OK pong"
    finally:
        for c in held:
            c.close()


# --- who may rotate ------------------------------------------------------------

AS_OTHER_UID = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for line in sys.argv[2:]:
    f.write(line.encode() + b"\n")
    f.flush()
    print(f.readline().decode().rstrip("\n"), flush=True)
"""


def as_uid(d, gid, *lines, groups=()):
    """Sends lines as uid 65534 with the given gid and supplementary groups
    (none by default); returns the answers."""
    groups_opt = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    p = subprocess.run(["setpriv", "--reuid=65534", f"--regid={gid}", groups_opt,
                        sys.executable, "-c", AS_OTHER_UID, d.socket, *lines],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    answers = p.stdout.splitlines()
    d.answers.extend(answers)
    return answers


@pytest.fixture
def admin_group():
    """A fresh group, removed again at teardown."""
    if os.geteuid() != 0:
        pytest.skip("needs root (setpriv, groupadd)")
    name = f"sl-dt-{os.getpid()}"
    subprocess.run(["groupadd", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["groupdel", name], capture_output=True)


def test_rotate_and_import_are_forbidden_for_a_non_admin_uid(make_daemon, admin_group):
    d = make_daemon({"daemon": {"admin_group": admin_group}})
    d.add_file("private/report.pdf")
    os.chmod(d.socket, 0o666)  # let uid 65534 connect at all
    kid = d.status()["active_kid"]
    secret = b64url(b"not imported")

    answers = as_uid(d, 65534, "PING", "ROTATE", "ROTATE revoke", f"IMPORT {secret}",
                     f"SIGN {PRIVATE}")
    assert answers[0] == "OK pong"
    assert [err_code(a) for a in answers[1:4]] == ["forbidden"] * 3
    # Anyone who may connect may sign.
    assert d.status_of(answers[4][3:]) == 200
    st = d.status()
    assert st["active_kid"] == kid and len(st["keys"]) == 1
    assert "not imported" not in open(d.keys_file).read()

    # The admin group as effective gid (sg, newgrp) counts.
    gid = grp.getgrnam(admin_group).gr_gid
    (answer,) = as_uid(d, gid, "ROTATE")
    assert answer == f"OK kid={kid + 1}"


def test_admin_rights_are_the_connecting_processs_groups_not_the_user_database(make_daemon,
                                                                               admin_group):
    """The daemon asks the kernel (SO_PEERGROUPS) which groups the client
    had when it connected, as file permissions do, and never the user
    database (NSS, maybe LDAP) from its event loop."""
    d = make_daemon({"daemon": {"admin_group": admin_group}})
    os.chmod(d.socket, 0o666)  # let uid 65534 connect at all
    kid = d.status()["active_kid"]
    gid = grp.getgrnam(admin_group).gr_gid
    secret = b64url(b"not imported")

    # A supplementary group of the process (what login gives a member):
    # admitted, though the user database does not list uid 65534 in it.
    assert "nobody" not in grp.getgrnam(admin_group).gr_mem
    assert as_uid(d, 65534, "ROTATE", groups=[100, gid]) == [f"OK kid={kid + 1}"]
    # A process without the group: refused, also after the database lists
    # the user (a new member gets the right at the next login).
    subprocess.run(["gpasswd", "-a", "nobody", admin_group], check=True, capture_output=True)
    answers = as_uid(d, 65534, "ROTATE", "ROTATE revoke", f"IMPORT {secret}", "PING",
                     groups=[100])
    assert [err_code(a) for a in answers[:3]] == ["forbidden"] * 3
    assert answers[3] == "OK pong"
    st = d.status()
    assert st["active_kid"] == kid + 1 and len(st["keys"]) == 2
    # One connection, the same answer every time: what counts is fixed at
    # connect, whatever the line before was.
    answers = as_uid(d, 65534, "PING", "ROTATE", "PING", "ROTATE", groups=[gid])
    assert answers == ["OK pong", f"OK kid={kid + 2}", "OK pong", f"OK kid={kid + 3}"]


# --- rotation --------------------------------------------------------------------


def test_rotate_answers_once_nginx_has_reloaded_and_old_and_new_links_work(daemon):
    old_kid = daemon.status()["active_kid"]
    old = daemon.sign(PRIVATE)
    workers = daemon.workers()
    asked = int(time.time())

    kid = daemon.rotate()

    assert kid == old_kid + 1
    # Checked at once, without waiting: the answer comes after all this.
    default, keys = daemon.keys()
    assert set(keys) == {old_kid, kid} and default == keys[kid]
    assert daemon.workers() - workers, "ROTATE answered before nginx had new workers"
    daemon.assert_only_the_newest_worker_accepts()
    st = daemon.status()
    assert st["active_kid"] == kid
    assert st["nginx"]["ok"] is True and st["nginx"]["last_reload"] >= asked
    states = {k["kid"]: k["state"] for k in st["keys"]}
    assert states == {old_kid: "retired", kid: "active"}
    assert st["counters"]["rotations"] >= 2  # the first key's activation, then this one

    new = daemon.sign(PRIVATE)
    assert kid_of(new) == kid
    assert daemon.status_of(old) == 200
    assert daemon.status_of(new) == 200

    # Compromise: every older key leaves nginx at once.
    workers = daemon.workers()
    revoked = daemon.rotate(revoke=True)
    assert revoked == kid + 1
    _, keys = daemon.keys()
    assert set(keys) == {revoked}
    assert daemon.workers() - workers
    daemon.assert_only_the_newest_worker_accepts()
    assert [k["kid"] for k in daemon.status()["keys"]] == [revoked]
    assert daemon.status_of(old) == 403
    assert daemon.status_of(new) == 403
    assert daemon.status_of(daemon.sign(PRIVATE)) == 200
    daemon.assert_no_secret_leaked()


def test_rotation_schedule_survives_a_restart(make_daemon):
    d = make_daemon({"keys": {"rotate_every": "1h"}})
    st = d.status()
    active = [k for k in st["keys"] if k["state"] == "active"][0]
    assert st["next_rotation"] == active["activated"] + 3600
    with open(d.keys_file, "rb") as f:
        keys_before = f.read()

    d.restart()

    after = d.status()
    assert after["next_rotation"] == st["next_rotation"]
    assert after["active_kid"] == st["active_kid"]
    with open(d.keys_file, "rb") as f:
        assert f.read() == keys_before


def test_short_rotate_every_rotates_by_itself(make_daemon):
    # max_link_ttl / rotate_every must fit the key ring's 64 keys.
    d = make_daemon({"keys": {"rotate_every": "3s", "max_link_ttl": "60s",
                              "default_link_ttl": "30s"}})
    d.add_file("private/report.pdf")
    kid = d.status()["active_kid"]
    old = d.sign(PRIVATE)
    st = d.wait_status(lambda s: s["active_kid"] and s["active_kid"] > kid, timeout=15,
                       what="a scheduled rotation")
    assert st["next_rotation"] > int(time.time())
    new = d.sign(PRIVATE)
    assert kid_of(new) > kid
    assert d.status_of(old) == 200
    assert d.status_of(new) == 200


def test_failed_nginx_test_keeps_the_old_key_and_retries_until_fixed(daemon):
    kid = daemon.status()["active_kid"]
    old = daemon.sign(PRIVATE)
    with open(daemon.extra_conf, "w") as f:
        f.write("this_is_not_a_directive on;\n")
    mark = daemon.notify_mark()

    answer = daemon.ask("ROTATE")
    failed_at = time.monotonic()
    assert err_code(answer) == "unavailable", answer
    assert "this_is_not_a_directive" in answer  # nginx's own message

    st = daemon.status()
    assert st["nginx"]["ok"] is False
    assert "this_is_not_a_directive" in st["nginx"]["error"]
    assert st["active_kid"] == kid
    assert [k["state"] for k in st["keys"] if k["kid"] > kid] == ["published"]
    # Signing goes on with the old key, which the running nginx has.
    link = daemon.sign(PRIVATE)
    assert kid_of(link) == kid
    assert daemon.status_of(link) == 200
    assert daemon.status_of(old) == 200
    # sd_notify STATUS= carries the error too.
    notes = daemon.notifications_since(mark)
    assert any(n.startswith("STATUS=") and "this_is_not_a_directive" in n for n in notes), notes
    assert "retrying in 1s" in daemon.log_text()

    with open(daemon.extra_conf, "w") as f:
        f.write("# fixed\n")
    st = daemon.wait_status(lambda s: s["active_kid"] > kid, timeout=15,
                            what="the retried rotation")
    # The first retry comes 1s after the failure, then 2s, 4s...; we fixed
    # the file well within the first two.
    assert time.monotonic() - failed_at < 8
    assert st["nginx"]["ok"] is True and st["nginx"]["error"] is None
    new = daemon.sign(PRIVATE)
    assert kid_of(new) == st["active_kid"]
    assert daemon.status_of(new) == 200
    assert daemon.status_of(old) == 200
    daemon.assert_no_secret_leaked()


def test_rotation_without_nginx_running_completes_and_nginx_reads_the_files(daemon):
    # `nginx -t` leaves an empty pid file behind when no nginx runs: that,
    # too, means "not running".
    old = daemon.sign(PRIVATE)
    daemon.stop_nginx()
    kid = daemon.rotate()
    _, keys = daemon.keys()
    assert kid in keys
    assert daemon.status()["nginx"]["ok"] is True
    assert "nginx is not running" in daemon.log_text()
    new = daemon.sign(PRIVATE)
    assert kid_of(new) == kid

    daemon.start_nginx()
    assert daemon.status_of(old) == 200
    assert daemon.status_of(new) == 200


# --- start-up ------------------------------------------------------------------


def test_first_start_without_nginx_activates_the_first_key(make_daemon):
    d = make_daemon(nginx=False)
    d.add_file("private/report.pdf")
    with d.connect() as c:
        # Held until the first key is active; nginx -t and the activation
        # delay take well under this.
        c.sock.settimeout(5)
        answer = c.ask(f"SIGN {PRIVATE}")
    assert answer.startswith("OK "), answer
    st = d.status()
    assert st["active_kid"] == kid_of(answer[3:]) and st["nginx"]["ok"] is True
    d.start_nginx()
    assert d.status_of(answer[3:]) == 200



def corrupt(path):
    """Flips one character of the file's checksum line."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    i = data.rindex(b"checksum ") + len(b"checksum ")
    data[i] = ord("0") if data[i] != ord("0") else ord("1")
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


def test_corrupt_keyring_falls_back_to_keyring_prev(daemon):
    link = daemon.sign(PRIVATE)
    kid = kid_of(link)
    assert os.path.exists(daemon.keyring_prev)
    assert daemon.stop() == 0
    bad = corrupt(daemon.keyring)

    daemon.start()

    log = daemon.log_text()
    assert "keyring.prev" in log
    with open(daemon.keyring + ".corrupt", "rb") as f:
        assert f.read() == bad  # kept for a post-mortem
    new = daemon.sign(PRIVATE)
    assert kid_of(new) == kid
    assert daemon.status_of(link) == 200
    assert daemon.status_of(new) == 200


def test_both_keyrings_corrupt_refuses_to_start_and_touches_nothing(daemon):
    daemon.sign(PRIVATE)
    assert daemon.stop() == 0
    corrupt(daemon.keyring)
    corrupt(daemon.keyring_prev)
    files = (daemon.keyring, daemon.keyring_prev, daemon.keys_file)
    before = {p: open(p, "rb").read() for p in files}
    listing = sorted(os.listdir(daemon.state))

    p = daemon.spawn()
    rc = p.wait(TIMEOUT)
    daemon.proc = None

    assert rc == 65  # EX_DATAERR, as main.c documents
    log = daemon.log_text()
    assert daemon.keyring + ":" in log and daemon.keyring_prev + ":" in log
    assert "Refusing to start" in log
    assert {p: open(p, "rb").read() for p in files} == before
    assert sorted(os.listdir(daemon.state)) == listing
    assert not os.path.exists(daemon.socket)


def test_hand_edited_keys_file_is_rewritten_at_start(daemon):
    assert daemon.stop() == 0
    with open(daemon.keys_file, "rb") as f:
        good = f.read()
    # Every secret replaced with a guessable one (the maps around them
    # kept, so that nginx takes the file).
    with open(daemon.keys_file, "wb") as f:
        f.write(re.sub(rb'"[A-Za-z0-9_-]{43}";', b'"guessable";', good))

    daemon.start()  # READY=1 comes after the snippets are written

    with open(daemon.keys_file, "rb") as f:
        assert f.read() == good
    assert os.stat(daemon.keys_file).st_mode & 0o777 == 0o600
    assert daemon.status_of(daemon.sign(PRIVATE)) == 200


def test_hand_edited_keys_file_nginx_already_loaded_is_rewritten_and_reloaded(daemon):
    link = daemon.sign(PRIVATE)
    assert daemon.stop() == 0
    with open(daemon.keys_file, "rb") as f:
        good = f.read()
    # Every secret replaced with a guessable one (the maps around them
    # kept, so that nginx takes the file).
    with open(daemon.keys_file, "wb") as f:
        f.write(re.sub(rb'"[A-Za-z0-9_-]{43}";', b'"guessable";', good))
    # An admin reloads nginx meanwhile: it now runs with the edited file.
    workers = daemon.workers()
    os.kill(daemon.nginx_pid, signal.SIGHUP)
    daemon.wait_workers_replaced(workers)
    assert daemon.status_of(link) == 403

    workers = daemon.workers()
    daemon.start()

    with open(daemon.keys_file, "rb") as f:
        assert f.read() == good
    # The rewrite is published like any change: tested, reloaded, confirmed.
    daemon.wait_workers_replaced(workers)
    assert daemon.status_of(link) == 200
    assert daemon.status()["nginx"]["ok"] is True


def test_stale_socket_file_is_replaced_and_a_live_one_is_not(daemon):
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert os.path.exists(daemon.socket)  # left behind

    daemon.start()
    assert daemon.ask("PING") == "OK pong"

    # A second daemon on the same, live, socket must not steal it.
    first = daemon.proc
    second = daemon.spawn()
    assert second.wait(TIMEOUT) != 0
    daemon.proc = first
    assert daemon.ask("PING") == "OK pong"


def test_sighup_keeps_a_bad_config_and_applies_a_good_one(daemon):
    good = daemon.config_text()
    with open(daemon.conf, "w") as f:
        f.write(good + "[keys]\ndefault_link_ttl = 3x\n")

    daemon.sighup()

    assert daemon.ask("PING") == "OK pong"
    assert "Configuration not reloaded" in daemon.log_text()
    now = int(time.time())
    assert int(query(daemon.sign(PRIVATE))["expires"]) - now in range(3600 - 1, 3600 + 2)

    daemon.set_option("keys", "default_link_ttl", "2m")
    daemon.sighup()

    now = int(time.time())
    url = daemon.sign(PRIVATE)
    assert int(query(url)["expires"]) - now in range(120 - 1, 120 + 2)
    assert daemon.status_of(url) == 200


def test_sigterm_exits_zero_and_removes_the_socket(daemon):
    mark = daemon.notify_mark()
    assert daemon.stop(signal.SIGTERM) == 0
    assert not os.path.exists(daemon.socket)
    assert any("STOPPING=1" in n.split("\n") for n in daemon.notifications_since(mark))


# --- legacy import ---------------------------------------------------------------


def test_legacy_secret_serves_links_without_kid_until_dropped(make_daemon):
    # clock_skew 0 and max_link_ttl 3s (its minimum is 1s): the legacy key
    # is dropped 3s after the import.
    d = make_daemon({"keys": {"max_link_ttl": "3s", "default_link_ttl": "3s",
                              "clock_skew": "0s", "rotate_every": "1h"}})
    d.add_file("private/old.pdf", b"from before\n")
    uri = "/media/private/old.pdf"
    expires = int(time.time()) + 3600  # signed by the old app, long ago
    legacy_link = f"{d.base_url}{uri}?token={token(expires, uri, 'secret_xyz')}&expires={expires}"
    assert d.status_of(legacy_link) == 403

    answer = d.ask(f"IMPORT {b64url(b'secret_xyz')}")
    m = re.fullmatch(r"OK kid=(\d+)", answer)
    assert m, answer
    kid = int(m.group(1))
    # Answered once nginx has it.
    d.assert_only_the_newest_worker_accepts()
    assert d.status_of(legacy_link) == 200
    default, keys = d.keys()
    assert default == "secret_xyz" and keys[kid] == "secret_xyz"
    legacy = [k for k in d.status()["keys"] if k["kid"] == kid][0]
    assert legacy["legacy"] is True and legacy["state"] == "retired"
    new = d.sign(uri)
    assert kid_of(new) != kid
    assert d.status_of(new) == 200

    workers = d.workers()
    d.wait_status(lambda s: all(k["kid"] != kid for k in s["keys"]), timeout=15,
                  what="the legacy key to be dropped")
    d.wait_workers_replaced(workers)
    default, keys = d.keys()
    assert "secret_xyz" not in keys.values() and default != "secret_xyz"
    assert d.status_of(legacy_link) == 403
    d.assert_no_secret_leaked(extra=["secret_xyz", b64url(b"secret_xyz")])


@pytest.mark.parametrize("secret", ["abc$def", 'ab"cd', "back\\slash"])
def test_legacy_secret_nginx_cannot_quote_is_refused_and_never_written(daemon, secret):
    encoded = b64url(secret.encode())
    keys_before = open(daemon.keys_file, "rb").read()
    answer = daemon.ask(f"IMPORT {encoded}")
    assert err_code(answer) == "bad-request", answer
    assert secret not in answer
    assert open(daemon.keys_file, "rb").read() == keys_before
    ring = open(daemon.keyring, "rb").read()
    assert secret.encode() not in ring
    assert base64.b64encode(secret.encode()).rstrip(b"=") not in ring
    assert encoded.encode() not in ring
    assert not any(k["legacy"] for k in daemon.status()["keys"])


# --- load --------------------------------------------------------------------


def test_rotation_under_load_has_zero_403_and_revoke_cuts_old_links(daemon):
    results = []  # (kid, url, http status)
    stop = threading.Event()
    failure = []

    def client():
        try:
            with daemon.connect() as c:
                while not stop.is_set():
                    answer = c.ask(f"SIGN {PRIVATE}")
                    assert answer.startswith("OK "), answer
                    url = answer[3:]
                    try:
                        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                            code = r.status
                    except urllib.error.HTTPError as e:
                        code = e.code
                    results.append((kid_of(url), url, code))
        except Exception as e:  # reported by the main thread
            failure.append(e)

    t = threading.Thread(target=client)
    t.start()
    try:
        first = daemon.status()["active_kid"]
        kids = [daemon.rotate() for _ in range(20)]
    finally:
        stop.set()
        t.join(TIMEOUT)
    assert not failure, failure
    assert kids == list(range(first + 1, first + 21))
    bad = [(k, code) for k, _, code in results if code != 200]
    assert not bad, f"{len(bad)} of {len(results)} fetches failed: {bad[:5]}"
    assert len({k for k, _, _ in results}) >= 5, "the client saw too few keys to mean anything"

    revoked = daemon.rotate(revoke=True)
    daemon.assert_only_the_newest_worker_accepts()
    for k, url, _ in results[-50:] + results[:50]:
        assert daemon.status_of(url) == 403, (k, url)
    assert daemon.status_of(daemon.sign(PRIVATE)) == 200
    assert kid_of(daemon.sign(PRIVATE)) == revoked
    daemon.assert_no_secret_leaked()
