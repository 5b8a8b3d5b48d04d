# SPDX-License-Identifier: MIT
"""securelinkctl, the build directory's binary, against the real securelinkd
and a real nginx: every command's success and failure paths and its exit
status, links fetched from nginx, and the migration from
django-nginx-secure-links (issue 4).

The exit statuses are securelinkctl's documented interface (--help and
securelinkctl(1)); every failure must be one line on stderr.
"""

import base64
import hashlib
import json
import os
import re
import socket
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from ctlsite import NOBODY, POLL, TIMEOUT, CtlDaemon, Offline, ctl_binary, run_ctl, set_ini
from daemonsite import close_daemon, open_daemon, require_binaries
from nginxsite import worker_user

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_EXPIRED = 2
EXIT_USAGE = 3
EXIT_UNREACHABLE = 4
EXIT_FORBIDDEN = 5
EXIT_REFUSED = 6
EXIT_DAEMON = 7

LINK_RE = re.compile(r"^(?P<path>/[^?]*)\?token=(?P<token>[A-Za-z0-9_-]{22})"
                     r"&expires=(?P<expires>\d+)&kid=(?P<kid>\d+)$")


def one_line_error(r, *words):
    """r failed with exactly one line on stderr, in securelinkctl's form,
    mentioning every word (the cause and the fix)."""
    assert r.err.endswith("\n") and r.err.count("\n") == 1, r
    assert r.err.startswith("securelinkctl: "), r
    for w in words:
        assert w in r.err, (w, r)


def parse_link(url):
    m = LINK_RE.match(url)
    assert m, f"not a signed link: {url!r}"
    return m


def nginx_legacy_link(path, expires, secret):
    """A link as django-nginx-secure-links makes it (no kid): its algorithm,
    computed here with hashlib; nginx decides whether it is good."""
    digest = hashlib.md5(f"{expires}{path} {secret}".encode()).digest()
    token = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return f"{path}?token={token}&expires={expires}"


@pytest.fixture
def make_daemon():
    """make_daemon(options) starts securelinkd + nginx (daemonsite's
    open_daemon() with a CtlDaemon); both stopped at teardown, also when the
    test failed."""
    require_binaries(ctl_binary())
    made = []

    def make(options=None):
        d = open_daemon(options, cls=CtlDaemon)
        made.append(d)
        return d

    try:
        yield make
    finally:
        errors = []
        for d in made:
            errors += close_daemon(d)
        if errors:
            raise errors[0]


@pytest.fixture
def real(make_daemon):
    return make_daemon()


@pytest.fixture
def offline():
    """No daemon: for what securelinkctl must decide before connecting."""
    if not os.access(ctl_binary(), os.X_OK):
        pytest.fail(f"{ctl_binary()} is not built: ninja -C BUILD, or set SECURELINK_BUILD_DIR")
    d = tempfile.mkdtemp(prefix="slctl-")
    try:
        yield Offline(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- sign ----


def test_sign_several_paths_in_order_each_fetched_200(real):
    names = ["a.pdf", "Übersicht (final) #2.pdf", "plus+semi;colon.txt"]
    bodies = [real.add_file("private/" + n) for n in names]
    real.add_file("public/logo.txt")
    targets = ["/media/private/a.pdf",
               "/media/private/%C3%9Cbersicht%20(final)%20%232.pdf",
               "/media/private/plus+semi;colon.txt",
               "/media/public/logo.txt"]

    r = real.ctl("sign", *targets)

    assert r.rc == EXIT_OK and r.err == "", r
    assert len(r.lines) == 4, r
    for url, body in zip(r.lines[:3], bodies):
        m = parse_link(url)
        assert real.get(url) == (200, body)
        assert real.get(m["path"]) [0] == 403  # the file without the link
    assert r.lines[0].startswith("/media/private/a.pdf?")
    # A public target is the canonical URL, no signature.
    assert r.lines[3] == "/media/public/logo.txt"
    assert real.get(r.lines[3])[0] == 200


def test_sign_uses_SECURELINK_SOCKET_and_socket_option_wins(real):
    r = real.ctl("sign", "/media/private/a.pdf", socket=None,
                 env={"SECURELINK_SOCKET": real.socket})
    assert r.rc == EXIT_OK, r
    parse_link(r.out.strip())
    # --socket wins over the environment.
    r = real.ctl("sign", "/media/private/a.pdf",
                 env={"SECURELINK_SOCKET": os.path.join(real.dir, "nope.sock")})
    assert r.rc == EXIT_OK, r


def test_sign_ttl_and_expires_set_the_expiry(real):
    real.add_file("private/a.pdf")
    before = int(time.time())
    r = real.ctl("sign", "--ttl", "15m", "/media/private/a.pdf")
    assert r.rc == EXIT_OK, r
    e = int(parse_link(r.out.strip())["expires"])
    assert before + 900 <= e <= int(time.time()) + 900

    r = real.ctl("sign", "--ttl", "120", "/media/private/a.pdf")
    e = int(parse_link(r.out.strip())["expires"])
    assert before + 120 <= e <= int(time.time()) + 120

    want = int(time.time()) + 1234
    r = real.ctl("sign", "--expires", str(want), "/media/private/a.pdf")
    assert r.rc == EXIT_OK, r
    assert int(parse_link(r.out.strip())["expires"]) == want
    assert real.get(r.out.strip())[0] == 200


def test_sign_json_output_one_object_per_target(real):
    r = real.ctl("--json", "sign", "/media/private/a.pdf", "/media/private/../x")
    assert r.rc == EXIT_REFUSED, r
    objs = [json.loads(line) for line in r.lines]
    assert objs[0]["target"] == "/media/private/a.pdf"
    parse_link(objs[0]["url"])
    assert objs[1]["target"] == "/media/private/../x"
    assert objs[1]["error"] == "bad-target" and "url" not in objs[1]
    one_line_error(r, "/media/private/../x", "bad-target")


def test_sign_stdin_20000_paths_pipelined_in_order(real):
    n = 20000
    paths = [f"/media/private/bulk/{i:05d}.txt" for i in range(n)]
    sample = list(range(0, n, 1999)) + [n - 1]
    bodies = {i: real.add_file(f"private/bulk/{i:05d}.txt") for i in sample}

    r = real.ctl("sign", "--ttl", "10m", "-", input="\n".join(paths) + "\n", timeout=120)

    assert r.rc == EXIT_OK and r.err == "", r
    out = r.lines
    assert len(out) == n
    kids = set()
    for path, url in zip(paths, out):
        m = parse_link(url)
        assert m["path"] == path
        kids.add(m["kid"])
    assert len(kids) == 1
    for i in sample:
        assert real.get(out[i]) == (200, bodies[i]), out[i]
    assert real.status()["counters"]["signed"] >= n


def test_sign_stdin_mixed_with_arguments_and_last_line_without_lf(real):
    r = real.ctl("sign", "/media/private/first", "-", "/media/private/last",
                 input="/media/private/s1\r\n/media/private/s2")
    assert r.rc == EXIT_OK, r
    assert [parse_link(u)["path"] for u in r.lines] == [
        "/media/private/first", "/media/private/s1", "/media/private/s2", "/media/private/last"]


def test_sign_item_failure_continues_with_exit_6(real):
    real.add_file("private/ok2.txt")
    lines = ["/media/private/ok1.txt", "/media/private/../etc/passwd", "/media/private/ok2.txt",
             "media/private/no-slash.txt", "/media/private/ok3.txt"]

    r = real.ctl("sign", "-", input="\n".join(lines) + "\n")

    assert r.rc == EXIT_REFUSED, r
    out = r.out.split("\n")
    assert out[-1] == "" and len(out) == 6, r
    # Output line N answers input line N; a failure is an empty line.
    assert out[1] == "" and out[3] == "", r
    for i in (0, 2, 4):
        assert parse_link(out[i])["path"] == lines[i]
    assert real.get(out[2])[0] == 200
    errs = r.err.splitlines()
    assert len(errs) == 2 and r.err.endswith("\n"), r
    assert "(stdin line 2)" in errs[0] and "bad-target" in errs[0], r
    assert "(stdin line 4)" in errs[1] and "bad-target" in errs[1], r


def test_sign_target_with_a_space_fails_alone(real):
    r = real.ctl("sign", "/media/private/a b.pdf", "/media/private/c.pdf")
    assert r.rc == EXIT_REFUSED, r
    assert r.out.split("\n")[0] == ""
    parse_link(r.out.split("\n")[1])
    one_line_error(r, "a b.pdf", "bad-target")


def test_sign_expires_in_the_past_is_bad_ttl_exit_6(real):
    r = real.ctl("sign", "--expires", "1", "/media/private/a.pdf")
    assert r.rc == EXIT_REFUSED and r.out == "\n", r
    one_line_error(r, "bad-ttl")


def test_sign_ttl_beyond_max_link_ttl_is_exit_6(real):
    r = real.ctl("sign", "--ttl", "2d", "/media/private/a.pdf")
    assert r.rc == EXIT_REFUSED, r
    one_line_error(r, "ttl-too-long", "max_link_ttl")


@pytest.mark.parametrize("ttl", ["0", "-5", "abc", "1.5", "500ms", ""])
def test_sign_bad_ttl_value_is_usage_exit_3(offline, ttl):
    r = offline.ctl("sign", "--ttl", ttl, "/media/private/a.pdf")
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "--ttl")


@pytest.mark.parametrize("expires", ["0", "abc", "-1", "99999999999999999999"])
def test_sign_bad_expires_value_is_usage_exit_3(offline, expires):
    r = offline.ctl("sign", "--expires", expires, "/media/private/a.pdf")
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "--expires")


def test_sign_ip_bound_link_only_opens_from_that_address(make_daemon):
    d = make_daemon({"links": {"bind_ip": "yes"}})
    body = d.add_file("private/a.pdf")

    mine = d.sign("--ip", "127.0.0.1", "/media/private/a.pdf")
    other = d.sign("--ip", "192.0.2.7", "/media/private/a.pdf")

    assert d.get(mine) == (200, body)  # nginx sees 127.0.0.1 as $remote_addr
    assert d.get(other)[0] == 403
    assert d.ctl("verify", "--ip", "127.0.0.1", mine).rc == EXIT_OK
    assert d.ctl("verify", "--ip", "192.0.2.7", mine).rc == EXIT_INVALID

    r = d.ctl("sign", "/media/private/a.pdf")  # bind_ip = yes needs --ip
    assert r.rc == EXIT_REFUSED, r
    one_line_error(r, "bad-ip")
    r = d.ctl("sign", "--ip", "not-an-address", "/media/private/a.pdf")
    assert r.rc == EXIT_REFUSED, r
    one_line_error(r, "bad-ip")


def test_sign_ip_with_bind_ip_no_is_refused_naming_bind_ip(real):
    # bind_ip = no (the default): nginx's check has no $remote_addr, so a
    # link "bound" to an address would open from anywhere. Refused, not
    # handed out as if it were bound.
    real.add_file("private/a.pdf")
    r = real.ctl("sign", "--ip", "127.0.0.1", "/media/private/a.pdf")
    assert r.rc == EXIT_REFUSED and r.out == "\n", r
    one_line_error(r, "bad-ip", "bind_ip")
    with real.connect() as c:
        assert c.ask("SIGN /media/private/a.pdf ip=192.0.2.7").startswith("ERR bad-ip ")
        # The same target without ip= is signed, and nginx serves it.
        url = c.ask("SIGN /media/private/a.pdf")[3:]
    assert real.get(url)[0] == 200


@pytest.mark.parametrize("args,option", [
    (["sign", "--ttl", "10", "--ttl", "20", "/media/private/a.pdf"], "--ttl"),
    (["sign", "--expires", "2000000000", "--expires", "2000000001", "/x"], "--expires"),
    (["sign", "--ip", "192.0.2.1", "--ip", "192.0.2.1", "/x"], "--ip"),
    (["sign", "--ip", "192.0.2.1", "/x", "--ip", "192.0.2.2"], "--ip"),
    (["verify", "--ip", "192.0.2.1", "--ip", "192.0.2.2", "/x?token=a&expires=1"], "--ip"),
])
def test_repeated_option_is_usage_exit_3_naming_it(offline, args, option):
    # The protocol refuses a repeated field; securelinkctl must not pick
    # one of two values silently.
    r = offline.ctl(*args)
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, option, "once")


# ---- verify ----


def test_verify_valid_invalid_public(real):
    url = real.sign("/media/private/a.pdf")
    kid = parse_link(url)["kid"]

    r = real.ctl("verify", url)
    assert r.rc == EXIT_OK and r.err == "", r
    assert r.out.startswith(f"valid kid={kid} expires="), r

    r = real.ctl("--json", "verify", url)
    assert r.rc == EXIT_OK, r
    v = json.loads(r.out)
    assert v["verdict"] == "valid" and v["kid"] == int(kid)

    m = parse_link(url)
    t = m["token"]
    tampered = url.replace(t, ("A" if t[0] != "A" else "B") + t[1:])
    r = real.ctl("verify", tampered)
    assert r.rc == EXIT_INVALID and r.out.startswith("invalid"), r
    assert real.get(tampered)[0] == 403  # nginx agrees

    other_path = url.replace("/a.pdf?", "/b.pdf?")
    assert real.ctl("verify", other_path).rc == EXIT_INVALID

    r = real.ctl("verify", "/media/public/logo.txt")
    assert r.rc == EXIT_OK and r.out == "public\n", r


def test_verify_expired_exit_2_and_nginx_410(real):
    real.add_file("private/soon.txt")
    # now + 1 s, rounded up: int(time.time()) + 1 may already be "now" for
    # the daemon a moment later, which refuses it as bad-ttl.
    url = real.sign("--expires", str(int(time.time()) + 2), "/media/private/soon.txt")

    deadline = time.monotonic() + TIMEOUT
    while True:
        r = real.ctl("verify", url)
        if r.rc == EXIT_EXPIRED:
            break
        assert r.rc == EXIT_OK, r  # valid until it expires, never anything else
        assert time.monotonic() < deadline, "the link never expired"
        time.sleep(POLL)
    assert r.out.startswith("expired kid="), r
    assert r.err == ""
    assert real.get(url)[0] == 410  # nginx's own verdict on an expired link


@pytest.mark.parametrize("args", [[], ["a", "b"], [""], ["/media/private/a b"]])
def test_verify_bad_usage_exit_3(offline, args):
    r = offline.ctl("verify", *args)
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "verify")


# ---- rotate ----


def test_rotate_keeps_old_links_and_revoke_kills_them(real):
    body = real.add_file("private/a.pdf")
    old = real.sign("/media/private/a.pdf")
    old_kid = int(parse_link(old)["kid"])

    workers = real.workers()
    r = real.ctl("rotate")
    assert r.rc == EXIT_OK and r.err == "", r
    kid = int(r.out)
    # rotate answers once nginx serves with the new ring only.
    real.assert_reloaded_since(workers)
    assert kid > old_kid
    assert real.status()["active_kid"] == kid
    mid = real.sign("/media/private/a.pdf")
    assert int(parse_link(mid)["kid"]) == kid
    # A plain rotation keeps the old key in nginx: the old link still works.
    assert real.get(old) == (200, body)
    assert real.get(mid) == (200, body)

    workers = real.workers()
    r = real.ctl("--json", "rotate", "--revoke")
    assert r.rc == EXIT_OK and r.err == "", r
    revoked_kid = json.loads(r.out)["kid"]
    assert revoked_kid > kid
    # rotate returns once nginx has the ring without the older keys, and
    # none of its old workers takes a connection any more.
    real.assert_reloaded_since(workers)
    assert real.get(old)[0] == 403
    assert real.get(mid)[0] == 403
    new = real.sign("/media/private/a.pdf")
    assert int(parse_link(new)["kid"]) == revoked_kid
    assert real.get(new) == (200, body)
    st = real.status()
    assert [k["kid"] for k in st["keys"]] == [revoked_kid]
    assert real.ctl("verify", old).rc == EXIT_INVALID


@pytest.mark.parametrize("args", [["now"], ["--force"], ["--revoke=yes"], ["--revoke", "x"]])
def test_rotate_bad_usage_exit_3(real, args):
    kids = [k["kid"] for k in real.status()["keys"]]
    r = real.ctl("rotate", *args)
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "rotate")
    assert [k["kid"] for k in real.status()["keys"]] == kids  # nothing rotated


# ---- status ----


def test_status_table_and_json(real):
    real.sign("/media/private/a.pdf")
    st = real.status()
    active = st["active_kid"]
    assert isinstance(active, int)
    assert [k["state"] for k in st["keys"] if k["kid"] == active] == ["active"]
    assert st["nginx"]["ok"] is True
    assert st["counters"]["signed"] >= 1
    assert isinstance(st["next_rotation"], int) and st["next_rotation"] > time.time()

    r = real.ctl("status")
    assert r.rc == EXIT_OK and r.err == "", r
    assert re.search(rf"^Active key:\s+{active}$", r.out, re.M), r
    assert re.search(r"^nginx:\s+ok$", r.out, re.M), r
    assert re.search(r"^KID\s+STATE\s+PUBLISHED\s+ACTIVATED\s+RETIRED\s+DROP AFTER", r.out, re.M)
    assert re.search(rf"^{active}\s+active\s", r.out, re.M), r


def test_status_bad_usage_exit_3(real):
    r = real.ctl("status", "now")
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "status")
    r = real.ctl("status", "--jsn")
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "--jsn")


# ---- global options after the command (issue 19, item 5) ----


def test_global_options_after_the_command_work_as_before_it(real):
    body = real.add_file("private/g.pdf")
    nowhere = {"SECURELINK_SOCKET": os.path.join(real.dir, "nope.sock")}
    # The socket only after the command: $SECURELINK_SOCKET points nowhere.
    r = run_ctl("status", "--json", "--socket", real.socket, env=nowhere)
    assert r.rc == EXIT_OK and r.err == "", r
    active = json.loads(r.out)["active_kid"]
    r = run_ctl("status", "--socket", real.socket, env=nowhere)
    assert r.rc == EXIT_OK and re.search(rf"^Active key:\s+{active}$", r.out, re.M), r

    r = run_ctl("sign", "--socket", real.socket, "/media/private/g.pdf", env=nowhere)
    assert r.rc == EXIT_OK and r.err == "", r
    url = r.out.strip()
    assert real.get(parse_link(url).group(0)) == (200, body)

    r = run_ctl("sign", "/media/private/g.pdf", "--ttl", "60", "--json", f"--socket={real.socket}",
                env=nowhere)
    assert r.rc == EXIT_OK and r.err == "", r
    signed = json.loads(r.out)
    assert real.get(signed["url"])[0] == 200, signed

    r = run_ctl("verify", url, "--socket", real.socket, "--json", env=nowhere)
    assert r.rc == EXIT_OK and r.err == "", r
    assert json.loads(r.out)["verdict"] == "valid", r

    # Before the command, as always; and a global before with one after.
    r = run_ctl("--json", "verify", url, "--socket", real.socket, env=nowhere)
    assert r.rc == EXIT_OK and json.loads(r.out)["verdict"] == "valid", r

    # Every command that talks to the daemon takes them: check and metrics too.
    r = run_ctl("check", "--socket", real.socket, "--json", env=nowhere)
    assert r.err == "" and "verdict" in json.loads(r.out), r
    r = run_ctl("metrics", "--socket", real.socket, env=nowhere)
    assert r.rc == EXIT_OK and re.search(r"^securelink_up 1$", r.out, re.M), r


@pytest.mark.parametrize("args", [
    ["--socket", "/a.sock", "status", "--socket", "/b.sock"],
    ["sign", "--socket", "/a.sock", "/x", "--socket", "/b.sock"],
])
def test_global_socket_given_twice_is_usage_exit_3(offline, args):
    r = run_ctl(*args)
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "--socket", "once")


def test_global_socket_empty_after_the_command_is_usage_exit_3(offline):
    r = run_ctl("status", "--socket", "")
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "--socket", "empty")


# ---- nginx-config ----


def nginx_conf_text(d, http_part, server_part):
    user = worker_user()
    tmp = os.path.join(d.dir, "tmp")
    return f"""
{"user " + user + ";" if user else ""}
daemon on;
pid {d.dir}/nginx-test.pid;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{http_part}
    server {{
        listen 127.0.0.1:{d.port};
        root {os.path.dirname(d.media)};
{server_part}
    }}
}}
"""


def split_nginx_config(out):
    """(http include line, server include line, location blocks) of
    nginx-config's output."""
    lines = out.split("\n")
    includes = [i for i, line in enumerate(lines) if line.startswith("include ")]
    assert len(includes) == 2, out
    assert lines[includes[0] - 1].startswith("# in nginx's http {} block"), out
    assert lines[includes[1] - 1].startswith("# in the server {} block"), out
    marker = next(i for i, line in enumerate(lines) if line.startswith("# securelinkd writes"))
    return lines[includes[0]], lines[includes[1]], "\n".join(lines[marker + 1:])


@pytest.mark.parametrize("options", [
    {},
    {"links": {"private_prefixes": "", "public_prefixes": "public/ static/"}},
    {"links": {"private_prefixes": ""}},
    {"links": {"bind_ip": "yes", "token_param": "md5", "expires_param": "e", "key_param": "k",
               "private_prefixes": "private/ secret/docs/"}},
], ids=["private", "public", "all-private", "bind-ip-and-params"])
def test_nginx_config_output_passes_nginx_t(real, options):
    with open(real.conf) as f:
        conf_text = set_ini(f.read(), options)
    conf = os.path.join(real.dir, "alt.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    keys_file = os.path.join(real.dir, "snippets", "keys.conf")
    locations_file = os.path.join(real.dir, "snippets", "locations.conf")

    r = real.ctl("nginx-config", "-c", conf, socket=os.path.join(real.dir, "nope.sock"))

    assert r.rc == EXIT_OK and r.err == "", r  # needs no daemon
    http_inc, server_inc, locations = split_nginx_config(r.out)
    assert http_inc == f"include {keys_file};"
    assert server_inc == f"include {locations_file};"
    assert "secure_link_md5" in locations and "alias " + real.media in locations
    if not options:
        # What it prints is what the daemon wrote for the same config.
        with open(locations_file) as f:
            assert locations.strip() == f.read().strip()

    # The two include lines where the output says, with the daemon's files.
    path = os.path.join(real.dir, "t-include.conf")
    with open(path, "w") as f:
        f.write(nginx_conf_text(real, "    " + http_inc, "        " + server_inc))
    p = real.nginx_test(path)
    assert p.returncode == 0, p.stderr
    # The printed locations in server {} in place of locations_file.
    path = os.path.join(real.dir, "t-inline.conf")
    with open(path, "w") as f:
        f.write(nginx_conf_text(real, "    " + http_inc, locations))
    p = real.nginx_test(path)
    assert p.returncode == 0, p.stderr
    # Without the keys include nginx refuses it: nginx -t does check.
    path = os.path.join(real.dir, "t-nokeys.conf")
    with open(path, "w") as f:
        f.write(nginx_conf_text(real, "", locations))
    p = real.nginx_test(path)
    assert p.returncode != 0 and "unknown \"securelink_" in p.stderr, p.stderr


def test_nginx_config_bad_config_is_one_line_exit_3(offline):
    missing = os.path.join(offline.dir, "missing.conf")
    r = offline.ctl("nginx-config", "-c", missing)
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, missing)

    bad = os.path.join(offline.dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("[links]\nprivate_prefixes = a/\npublic_prefixes = b/\n")
    r = offline.ctl("nginx-config", "-c", bad)
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "bad.conf", "public_prefixes")

    r = offline.ctl("nginx-config", "extra")
    assert r.rc == EXIT_USAGE, r
    one_line_error(r, "nginx-config")


# ---- import-key and who may do what ----


def test_import_key_reads_stdin_and_adds_a_legacy_key(real):
    r = real.ctl("import-key", input="old-django-secret\n")
    assert r.rc == EXIT_OK and r.err == "", r
    kid = int(r.out)
    keys = {k["kid"]: k for k in real.status()["keys"]}
    assert keys[kid]["legacy"] is True and keys[kid]["state"] == "retired"
    with open(os.path.join(real.dir, "snippets", "keys.conf")) as f:
        assert re.search(r'^\s*default\s+"old-django-secret";', f.read(), re.M)


def test_import_key_refuses_the_secret_on_the_command_line(real):
    r = real.ctl("import-key", "old-django-secret")
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, "standard input")
    assert "old-django-secret" not in r.err
    assert not any(k["legacy"] for k in real.status()["keys"])


@pytest.mark.parametrize("secret,code,word", [
    ("", EXIT_USAGE, "no secret"),
    ("\n", EXIT_USAGE, "no secret"),
    ("x" * 5000, EXIT_USAGE, "longer than"),
    ('has"quote', EXIT_REFUSED, "bad-request"),
    ("dollar$var", EXIT_REFUSED, "bad-request"),
])
def test_import_key_bad_secret(real, secret, code, word):
    r = real.ctl("import-key", input=secret)
    assert r.rc == code and r.out == "", r
    one_line_error(r, word)
    assert not any(k["legacy"] for k in real.status()["keys"])


def test_admin_commands_forbidden_for_other_users(real):
    # Connecting needs the socket's permissions: 0660 root, then nobody.
    assert stat.S_IMODE(os.stat(real.socket).st_mode) == 0o660
    r = real.ctl("status", user="nobody")
    assert r.rc == EXIT_FORBIDDEN, r
    one_line_error(r, real.socket, "securelink group")

    os.chmod(real.socket, 0o666)
    # Anyone who can connect may sign...
    r = real.ctl("sign", "/media/private/a.pdf", user="nobody")
    assert r.rc == EXIT_OK, r
    # ...but not rotate or import a key.
    before = real.status()
    r = real.ctl("import-key", input="old-django-secret\n", user="nobody")
    assert r.rc == EXIT_FORBIDDEN and r.out == "", r
    one_line_error(r, "forbidden", "admin_group")
    r = real.ctl("rotate", user="nobody")
    assert r.rc == EXIT_FORBIDDEN and r.out == "", r
    one_line_error(r, "forbidden", "admin_group")
    r = real.ctl("rotate", "--revoke", user="nobody")
    assert r.rc == EXIT_FORBIDDEN, r
    after = real.status()
    assert after["keys"] == before["keys"]
    assert os.getuid() != NOBODY


# ---- the daemon unreachable ----


def test_unreachable_socket_missing(offline):
    path = os.path.join(offline.dir, "nope.sock")
    for args in (["status"], ["sign", "/media/private/a.pdf"], ["verify", "/media/x"],
                 ["rotate"]):
        r = offline.ctl(*args, socket=path)
        assert r.rc == EXIT_UNREACHABLE and r.out == "", r
        one_line_error(r, path, "securelinkd.socket")
    r = offline.ctl("import-key", input="s\n", socket=path)
    assert r.rc == EXIT_UNREACHABLE, r
    one_line_error(r, path, "securelinkd.socket")


def test_unreachable_nobody_listening(offline):
    path = os.path.join(offline.dir, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)  # bound, never listening: ECONNREFUSED
    try:
        r = offline.ctl("status", socket=path)
    finally:
        s.close()
    assert r.rc == EXIT_UNREACHABLE, r
    one_line_error(r, path, "refused", "securelinkd.socket")


def test_unreachable_after_the_daemon_stopped(real):
    assert real.ctl("status").rc == EXIT_OK
    assert real.stop() == 0
    r = real.ctl("sign", "/media/private/a.pdf")
    assert r.rc == EXIT_UNREACHABLE and r.out == "", r
    one_line_error(r, real.socket)


def test_unreachable_from_the_environment_and_the_default(offline):
    path = os.path.join(offline.dir, "env.sock")
    r = offline.ctl("status", socket=None, env={"SECURELINK_SOCKET": path})
    assert r.rc == EXIT_UNREACHABLE, r
    one_line_error(r, path)
    default = "/run/securelink/securelinkd.sock"
    if os.path.exists(default):
        pytest.skip(f"{default} exists on this host")
    r = offline.ctl("status", socket=None)
    assert r.rc == EXIT_UNREACHABLE, r
    one_line_error(r, default)


def test_too_many_connections_shows_the_daemons_reason_exit_7(make_daemon):
    d = make_daemon({"daemon": {"max_connections": "1"}})
    with d.connect() as held:
        assert held.ask("PING") == "OK pong"  # accepted: the one slot is taken
        # Several tries each: whether the daemon hangs up before or after
        # securelinkctl has written its request is a race; both must show
        # the daemon's reason.
        for args in (["status"], ["sign", "/media/private/a.pdf"], ["sign", "-"],
                     ["verify", "/media/private/a.pdf?token=x&expires=1"]):
            for _ in range(5):
                r = d.ctl(*args, input="/media/private/a.pdf\n/media/private/b.pdf\n")
                assert r.rc == EXIT_DAEMON, r
                one_line_error(r, "unavailable", "too many connections")
                # No link was handed out; a line read got its empty line.
                assert set(r.lines) <= {""}, r
    assert d.ctl("status").rc == EXIT_OK


def daemon_sockets(d):
    """How many sockets securelinkd holds open: its listener and helpers, plus
    one per client connection."""
    n = 0
    fds = f"/proc/{d.proc.pid}/fd"
    for fd in os.listdir(fds):
        try:
            n += os.readlink(os.path.join(fds, fd)).startswith("socket:")
        except FileNotFoundError:
            pass
    return n


def wait_for(predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL)


def test_sign_stdin_pausing_past_idle_timeout_reconnects_one_line_per_input(make_daemon):
    d = make_daemon({"daemon": {"idle_timeout": "1s"}})
    bodies = {n: d.add_file(f"private/{n}.txt") for n in ("r0a", "r2b", "last")}
    baseline = daemon_sockets(d)
    p = subprocess.Popen([ctl_binary(), "--socket", d.socket, "sign", "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    names, got = [], []
    try:
        for rnd in range(3):
            batch = [f"r{rnd}a", f"r{rnd}b"]
            names += batch
            try:
                p.stdin.write("".join(f"/media/private/{n}.txt\n" for n in batch))
                p.stdin.flush()
            except BrokenPipeError:
                break  # securelinkctl gave up; the assertions below say how
            got += [p.stdout.readline().rstrip("\n") for _ in batch]
            # The pause under test: stdin stays quiet until the daemon has
            # closed securelinkctl's connection as idle.
            wait_for(lambda: daemon_sockets(d) <= baseline, "the idle connection to close")
        else:
            names.append("last")
            p.stdin.write("/media/private/last.txt\n")
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        # Little output is left, and stderr is one line at most: reading
        # one after the other cannot block on a full pipe.
        rest, err = p.stdout.read(), p.stderr.read()
        p.wait(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    got += rest.splitlines()
    assert p.returncode == EXIT_OK and err == "", (p.returncode, err, got)
    assert len(got) == len(names) == 7, got
    for name, url in zip(names, got):
        assert parse_link(url)["path"] == f"/media/private/{name}.txt"
        if name in bodies:
            assert d.get(url) == (200, bodies[name]), url


# ---- bad usage ----


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["--bogus", "status"],
    ["--socket"],
    ["--socket", "", "status"],
    ["--socket", "/tmp/" + "x" * 120, "status"],
    ["sign"],
    ["sign", "--bogus", "/x"],
    ["sign", "-", "-"],
    ["sign", "--ttl", "60", "--expires", "2000000000", "/x"],
    ["sign", "--ttl"],
    ["sign", "--ip", "a b", "/x"],
    ["verify", "--ip"],
    ["import-key", "--bogus"],
])
def test_bad_usage_exit_3_one_line(offline, args):
    # A socket nobody listens on: bad usage must be found before connecting.
    r = offline.ctl(*args, socket=None, env={"SECURELINK_SOCKET": os.path.join(offline.dir, "n.sock")},
                 input="")
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], ["sign", "--help"],
                                  ["verify", "--help"], ["rotate", "--help"],
                                  ["status", "--help"], ["nginx-config", "--help"],
                                  ["import-key", "--help"]])
def test_help_and_version_need_no_daemon(offline, args):
    r = offline.ctl(*args, socket=os.path.join(offline.dir, "nope.sock"))
    assert r.rc == EXIT_OK and r.err == "", r
    assert r.out.startswith("Usage: securelinkctl") or r.out.startswith("securelinkctl ")


# ---- migration from django-nginx-secure-links (issue 4, item 4) ----


def test_migration_legacy_link_works_after_import_until_dropped(make_daemon):
    # The legacy key lives max_link_ttl after the import, plus clock_skew
    # (0 is the smallest config.c allows).
    d = make_daemon({"keys": {"max_link_ttl": "4s", "default_link_ttl": "4s",
                              "clock_skew": "0s"}})
    secret = "django-insecure-0ld+S3cret_key"  # as in settings.SECURE_LINK_SECRET_KEY
    body = d.add_file("private/report.pdf")
    # The old app signed links far beyond max_link_ttl: the link outlives
    # the key, so a 403 at the end is the key's absence, not expiry (410).
    legacy = nginx_legacy_link("/media/private/report.pdf", int(time.time()) + 3600, secret)
    assert "kid=" not in legacy

    assert d.get(legacy)[0] == 403  # nginx does not know the secret yet
    assert d.ctl("verify", legacy).rc == EXIT_INVALID

    workers = d.workers()
    r = d.ctl("import-key", input=secret + "\n")
    assert r.rc == EXIT_OK and r.err == "", r
    legacy_kid = int(r.out)
    # import-key answers once nginx serves with the key.
    d.assert_reloaded_since(workers)
    assert d.get(legacy) == (200, body)
    r = d.ctl("verify", legacy)
    assert r.rc == EXIT_OK and r.out.startswith(f"valid kid={legacy_kid} "), r
    new = d.sign("/media/private/report.pdf")
    m = parse_link(new)
    assert int(m["kid"]) != legacy_kid
    assert d.get(new) == (200, body)

    workers = d.workers()
    assert workers
    deadline = time.monotonic() + TIMEOUT
    while True:
        st = d.status()
        if not any(k["legacy"] for k in st["keys"]):
            break
        legacy_key = [k for k in st["keys"] if k["legacy"]][0]
        assert legacy_key["kid"] == legacy_kid
        assert time.monotonic() < deadline, f"the legacy key was never dropped: {st}"
        time.sleep(POLL)
    # The key leaves the ring first, then nginx is reloaded without it:
    # wait for that reload (new workers, the old ones gone), not for a time.
    d.wait_workers_replaced(workers)

    assert d.get(legacy)[0] == 403
    assert d.ctl("verify", legacy).rc == EXIT_INVALID
    fresh = d.sign("/media/private/report.pdf")
    assert d.get(fresh) == (200, body)
    with open(os.path.join(d.dir, "snippets", "keys.conf")) as f:
        assert secret not in f.read()
