# SPDX-License-Identifier: MIT
"""Directory grants in the Python client (issue 16, item 5):
securelink.Client.grant(), SecureLinkStorage.grant_url() and
securelink.django.set_grant_cookie(). The wire through a fake daemon; the
answers through the real securelinkd, judged by a real nginx (200 under the
directory, 403 outside it)."""

import http.cookies
import os
import tempfile

import pytest

from daemonsite import close_daemon, open_daemon, require_binaries
from grantclients import (COOKIE_NAME, OUTSIDE, STREAM_DIR, STREAM_FILES, add_stream, expires_of,
                       get, parse_set_cookie)
from pyclient_fixture import FakeDaemon
from test_django_app import django_or_skip, manage

import securelink  # noqa: E402  (path set up by pyclient_fixture)

DIR = "/media/" + STREAM_DIR


@pytest.fixture
def fake():
    d = tempfile.mkdtemp(prefix="slpg-")
    made = []

    def make():
        daemon = FakeDaemon(os.path.join(d, "f.sock"), lambda line: "OK " + line)
        client = securelink.Client(socket=daemon.path, cache=False)
        made.extend([daemon, client])
        return daemon, client

    yield make
    for x in reversed(made):
        x.close()
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


@pytest.fixture
def real():
    require_binaries()
    d = open_daemon()
    try:
        yield d
    finally:
        errors = close_daemon(d)
        if errors:
            raise errors[0]


def test_grant_sends_the_form_and_options_as_documented(fake):
    d, c = fake()
    assert c.grant("/m/p/d/") == "SIGN /m/p/d/ grant=path"
    assert c.grant("/m/p/d e/", form="cookie", ttl=60, ip="10.0.0.1") == \
        "SIGN /m/p/d%20e/ grant=cookie ttl=60 ip=10.0.0.1"
    with pytest.raises(ValueError):
        c.grant("/m/p/d/", form="file")
    with pytest.raises(TypeError):
        c.grant("/m/p/d/", ttl="60")
    with pytest.raises(securelink.Error) as e:
        c.grant("/m/p/d/", ip="1.2.3.4 grant=cookie")
    assert e.value.code == "bad-ip"
    with pytest.raises(securelink.Error) as e:
        c.grant("/" + "d" * 8200 + "/")
    assert e.value.code == "line-too-long"
    assert d.lines == ["SIGN /m/p/d/ grant=path", "SIGN /m/p/d%20e/ grant=cookie ttl=60 ip=10.0.0.1"]


def test_grant_path_opens_files_below_and_nothing_outside(real):
    bodies = add_stream(real.add_file)
    with securelink.Client(socket=real.socket) as c:
        base = c.grant(DIR, ttl=600)
        assert base.endswith("/" + STREAM_DIR), base
        for f in STREAM_FILES:
            assert get(real.port, base + f) == (200, bodies[STREAM_DIR + f]), f
        assert get(real.port, base[:-len("42/")] + "420/f.ts")[0] == 403
        assert get(real.port, base[:-len("42/")] + "43/f.ts")[0] == 403
        # A public directory: the plain URL.
        assert c.grant("/media/public/v/") == real.base_url + "/media/public/v/"


def test_grant_cookie_opens_plain_urls_below_and_nothing_outside(real):
    bodies = add_stream(real.add_file)
    with securelink.Client(socket=real.socket) as c:
        answer = c.grant(DIR, form="cookie", ttl=600)
        assert c.grant("/media/public/v/", form="cookie") == real.base_url + "/media/public/v/"
    name, value, attrs = parse_set_cookie(answer)
    assert name == securelink.GRANT_COOKIE == COOKIE_NAME
    assert attrs["path"] == DIR and attrs["httponly"] is True and attrs["samesite"] == "Lax"
    for f in STREAM_FILES:
        assert get(real.port, DIR + f, cookie=value) == (200, bodies[STREAM_DIR + f]), f
    for rel in OUTSIDE:
        assert get(real.port, "/media/" + rel, cookie=value)[0] == 403, rel


def test_grant_without_trailing_slash_raises_the_daemons_bad_target(real):
    with securelink.Client(socket=real.socket) as c:
        for form in ("path", "cookie"):
            with pytest.raises(securelink.Error) as e:
                c.grant(DIR.rstrip("/"), form=form)
            assert e.value.code == "bad-target", e.value
        assert c.ping()  # the connection goes on


# Django


def test_django_grant_url_and_set_grant_cookie_open_the_stream_in_nginx(real):
    django_or_skip()
    bodies = add_stream(real.add_file)
    code = (
        "from django.core.files.storage import default_storage as s\n"
        "from django.http import HttpResponse\n"
        "from securelink.django import set_grant_cookie\n"
        # No trailing slash: added, as the documentation says.
        f"print(s.grant_url({STREAM_DIR.rstrip('/')!r}, ttl=600))\n"
        f"print(s.grant_url('public/v/'))\n"
        "r = HttpResponse()\n"
        f"print(set_grant_cookie(r, {STREAM_DIR!r}, ttl=600) is not None)\n"
        "print(r.cookies.output(header='Set-Cookie:'))\n"
        "r2 = HttpResponse()\n"
        "print(set_grant_cookie(r2, 'public/v'), len(r2.cookies))\n"
    )
    p = manage(real, "shell", "-c", code)
    assert p.returncode == 0, p
    base, public, was_set, header, public_cookie = p.stdout.strip().split("\n")
    assert public == real.base_url + "/media/public/v/"
    for f in STREAM_FILES:
        assert get(real.port, base + f) == (200, bodies[STREAM_DIR + f]), f
    assert get(real.port, base[:-len("42/")] + "43/f.ts")[0] == 403
    # The header Django wrote, read back as a browser reads it.
    assert was_set == "True" and public_cookie == "None 0", p.stdout
    assert header.startswith("Set-Cookie: "), header
    name, value, attrs = parse_set_cookie(header[len("Set-Cookie: "):])
    assert name == COOKIE_NAME and attrs["path"] == DIR
    assert attrs["httponly"] is True and attrs["samesite"] == "Lax" and "secure" not in attrs
    assert expires_of(attrs) == int(value.split(".")[1])
    for f in STREAM_FILES:
        assert get(real.port, DIR + f, cookie=value) == (200, bodies[STREAM_DIR + f]), f
    for rel in OUTSIDE:
        assert get(real.port, "/media/" + rel, cookie=value)[0] == 403, rel


def test_django_set_grant_cookie_is_secure_with_an_https_base_url(real):
    django_or_skip()
    real.set_option("links", "base_url", "https://example.com")
    real.restart()
    code = ("from django.http import HttpResponse\n"
            "from securelink.django import set_grant_cookie\n"
            "r = HttpResponse()\n"
            f"set_grant_cookie(r, {STREAM_DIR!r})\n"
            "print(r.cookies.output(header=''))\n")
    p = manage(real, "shell", "-c", code)
    assert p.returncode == 0, p
    _, _, attrs = parse_set_cookie(p.stdout.strip())
    assert attrs["secure"] is True and attrs["path"] == DIR


def test_django_grant_errors_are_the_daemons(real):
    django_or_skip()
    code = ("import securelink\n"
            "from django.core.files.storage import default_storage as s\n"
            "try:\n"
            "    s.grant_url('private/v/', ttl=10 ** 9)\n"
            "except securelink.Error as e:\n"
            "    print(e.code)\n")
    p = manage(real, "shell", "-c", code)
    assert p.returncode == 0 and p.stdout.strip() == "ttl-too-long", p
