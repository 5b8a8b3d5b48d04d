# SPDX-License-Identifier: MIT
"""securelinkctl sign --grant path|cookie DIR/ and verify --cookie (issue 16,
item 5), against the real securelinkd and nginx: nginx's verdict on what
securelinkctl prints is the known answer (200 under the directory, 403
outside it)."""

import json
import os
import time

import pytest

from ctlsite import CtlDaemon, Offline, ctl_binary
from daemonsite import close_daemon, open_daemon, require_binaries
from grantclients import (COOKIE_NAME, OUTSIDE, STREAM_DIR, STREAM_FILES, add_stream, expires_of,
                       get, parse_set_cookie)

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_REFUSED = 0, 1, 3, 6
DIR = "/media/" + STREAM_DIR


@pytest.fixture
def make_daemon():
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
def offline(tmp_path):
    if not os.access(ctl_binary(), os.X_OK):
        pytest.fail(f"{ctl_binary()} is not built: ninja -C BUILD, or set SECURELINK_BUILD_DIR")
    return Offline(str(tmp_path))


def one_line_error(r, *words):
    assert r.err.endswith("\n") and r.err.count("\n") == 1, r
    assert r.err.startswith("securelinkctl: "), r
    for w in words:
        assert w in r.err, (w, r)


def test_sign_grant_path_opens_every_file_below_and_nothing_outside(real):
    bodies = add_stream(real.add_file)
    t0 = int(time.time())
    r = real.ctl("sign", "--grant", "path", "--ttl", "2h", DIR)
    assert r.rc == EXIT_OK and r.err == "" and len(r.lines) == 1, r
    base = r.lines[0]
    assert base.endswith("/") and "/_grant/" in base, base
    for f in STREAM_FILES:
        assert get(real.port, base + f) == (200, bodies[STREAM_DIR + f]), f
    # The sibling that shares the directory's spelling, another directory:
    # the same token in front of them is refused.
    assert get(real.port, base[:-len("42/")] + "420/f.ts")[0] == 403
    assert get(real.port, base[:-len("42/")] + "43/f.ts")[0] == 403
    for rel in OUTSIDE:  # and their plain URLs need a link of their own
        assert get(real.port, "/media/" + rel)[0] == 403
    # verify agrees with nginx, on the base and on a file below it.
    r = real.ctl("verify", base + "v1/seg0.ts")
    assert r.rc == EXIT_OK and r.out.startswith("valid kid="), r
    expires = int(r.out.split("expires=")[1])
    assert t0 + 7200 <= expires <= int(time.time()) + 7200


def test_sign_grant_cookie_prints_set_cookie_that_opens_the_plain_urls(real):
    bodies = add_stream(real.add_file)
    r = real.ctl("sign", "--grant", "cookie", "--ttl", "600", DIR)
    assert r.rc == EXIT_OK and r.err == "" and len(r.lines) == 1, r
    assert r.lines[0].startswith("Set-Cookie: "), r
    name, value, attrs = parse_set_cookie(r.lines[0][len("Set-Cookie: "):])
    assert name == COOKIE_NAME
    assert attrs["path"] == DIR and attrs["httponly"] is True
    assert attrs["samesite"] == "Lax" and "secure" not in attrs  # base_url is not https
    assert value.split(".")[1] == str(expires_of(attrs))
    for f in STREAM_FILES:
        assert get(real.port, DIR + f, cookie=value) == (200, bodies[STREAM_DIR + f]), f
        assert get(real.port, DIR + f)[0] == 403  # the cookie is what opens it
    for rel in OUTSIDE:
        assert get(real.port, "/media/" + rel, cookie=value)[0] == 403, rel

    r = real.ctl("verify", DIR + "v1/seg0.ts", "--cookie", value)
    assert r.rc == EXIT_OK and r.out.startswith("valid kid="), r
    # As a browser's cookie list shows it, with the name: the same.
    r = real.ctl("verify", DIR + "f.ts", "--cookie", f"{COOKIE_NAME}={value}")
    assert r.rc == EXIT_OK and r.out.startswith("valid kid="), r
    r = real.ctl("verify", "/media/private/videos/43/f.ts", "--cookie", value)
    assert r.rc == EXIT_INVALID and r.out.startswith("invalid"), r
    r = real.ctl("verify", DIR + "f.ts")
    assert r.rc == EXIT_INVALID, r


def test_sign_grant_cookie_is_secure_when_base_url_is_https(make_daemon):
    d = make_daemon({"links": {"base_url": "https://example.com"}})
    r = d.ctl("sign", "--grant", "cookie", DIR)
    assert r.rc == EXIT_OK, r
    _, _, attrs = parse_set_cookie(r.out.strip()[len("Set-Cookie: "):])
    assert attrs["secure"] is True and attrs["path"] == DIR
    r = d.ctl("sign", "--grant", "path", DIR)
    assert r.rc == EXIT_OK and r.out.startswith("https://example.com/media/_grant/"), r


def test_sign_grant_json_and_several_directories_in_order(real):
    bodies = add_stream(real.add_file)
    r = real.ctl("--json", "sign", "--grant", "path", DIR, "/media/public/videos/")
    assert r.rc == EXIT_OK and r.err == "", r
    a, b = [json.loads(line) for line in r.lines]
    assert a["target"] == DIR and get(real.port, a["url"] + "f.ts") == (200, bodies[STREAM_DIR + "f.ts"])
    # A public directory: its plain URL, in both forms.
    assert b == {"target": "/media/public/videos/", "url": "/media/public/videos/"}

    r = real.ctl("sign", "--grant", "cookie", "--json", DIR, "/media/public/videos/")
    assert r.rc == EXIT_OK and r.err == "", r
    a, b = [json.loads(line) for line in r.lines]
    assert set(a) == {"target", "set_cookie"}, a
    _, value, _ = parse_set_cookie(a["set_cookie"])
    assert get(real.port, DIR + "f.ts", cookie=value)[0] == 200
    assert b == {"target": "/media/public/videos/", "url": "/media/public/videos/"}
    r = real.ctl("sign", "--grant", "cookie", "/media/public/videos/")
    assert r.rc == EXIT_OK and r.out == "/media/public/videos/\n", r


def test_sign_grant_without_trailing_slash_is_the_daemons_bad_target(real):
    real.add_file(STREAM_DIR + "f.ts")
    r = real.ctl("sign", "--grant", "path", DIR.rstrip("/"), DIR)
    # The first fails alone, with an empty line; the second is signed.
    assert r.rc == EXIT_REFUSED, r
    one_line_error(r, "bad-target", DIR.rstrip("/"))
    assert r.lines[0] == "" and get(real.port, r.lines[1] + "f.ts")[0] == 200, r
    r = real.ctl("--json", "sign", "--grant", "cookie", DIR.rstrip("/"))
    assert r.rc == EXIT_REFUSED and json.loads(r.out)["error"] == "bad-target", r


@pytest.mark.parametrize("args, word", [
    (["sign", "--grant", "file", "/media/private/d/"], "give path or cookie"),
    (["sign", "--grant", "path", "--grant", "cookie", "/media/private/d/"], "once"),
    (["sign", "--grant", "path", "-"], "DIR/"),
    (["sign", "--grant"], "grant"),
    (["verify", "/media/private/d/f.ts", "--cookie", "1.2.3.t; Path=/media/"], "KID.EXPIRES.DEPTH.TOKEN"),
    (["verify", "/media/private/d/f.ts", "--cookie", "1.2.3.t;"], "KID.EXPIRES.DEPTH.TOKEN"),
    (["verify", "/media/private/d/f.ts", "--cookie", ""], "KID.EXPIRES.DEPTH.TOKEN"),
    (["verify", "/media/private/d/f.ts", "--cookie", "a", "--cookie", "b"], "once"),
])
def test_grant_bad_usage_exit_3_one_line_before_connecting(offline, args, word):
    r = offline.ctl(*args, socket=None,
                    env={"SECURELINK_SOCKET": os.path.join(offline.dir, "n.sock")}, input="")
    assert r.rc == EXIT_USAGE and r.out == "", r
    one_line_error(r, word)
