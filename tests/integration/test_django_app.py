# SPDX-License-Identifier: MIT
"""The drop-in for django-nginx-secure-links (issue 17, item 5): the storage's
pre_sign_url(url, seconds) and the app's management commands
secure_links_gen_signed and secure_links_nginx_location, run as a site runs
them (Debian's Django, a settings module of its own, `python3 -m django
COMMAND` in a child process) against the real securelinkd; nginx decides
whether each link is good, and `securelinkctl nginx-config` is the answer
the second command must print."""

import os
import subprocess
import tempfile
import time
import urllib.parse

import pytest

from daemonsite import build_dir, make_daemon, query  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SECURELINK_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
PYTHON = "/usr/bin/python3"
BODY = b"a private report\n"


def django_or_skip():
    if subprocess.run([PYTHON, "-c", "import django"], capture_output=True).returncode != 0:
        pytest.skip("Debian's python3-django is not installed")


def storage_setting():
    backend = "securelink.django.SecureLinkStorage"
    p = subprocess.run([PYTHON, "-c", "import django; print(django.VERSION >= (4, 2))"],
                       capture_output=True, text=True)
    if p.stdout.strip() == "True":
        return (f"STORAGES = {{'default': {{'BACKEND': {backend!r}}}, 'staticfiles': "
                "{'BACKEND': 'django.contrib.staticfiles.storage.StaticFilesStorage'}}\n")
    return f"DEFAULT_FILE_STORAGE = {backend!r}\n"


def manage(d, *args, settings=""):
    """`python3 -m django ARGS` in a site whose settings name d's socket."""
    with tempfile.TemporaryDirectory(prefix="sl-django-") as site:
        os.mkdir(os.path.join(site, "site_"))
        open(os.path.join(site, "site_", "__init__.py"), "w").close()
        with open(os.path.join(site, "site_", "settings.py"), "w") as f:
            f.write(f"SECRET_KEY = 'test'\nMEDIA_ROOT = {d.media!r}\nMEDIA_URL = '/media/'\n"
                    f"INSTALLED_APPS = ['securelink.django']\nSECURELINK_SOCKET = {d.socket!r}\n"
                    + storage_setting() + settings)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [os.path.join(SOURCE_DIR, "contrib", "python"), site]),
            DJANGO_SETTINGS_MODULE="site_.settings")
        env.pop("SECURELINK_SOCKET", None)
        return subprocess.run([PYTHON, "-W", "ignore::DeprecationWarning", "-m", "django", *args],
                              capture_output=True, text=True, env=env, cwd=site, timeout=60)


def test_gen_signed_signs_through_the_daemon_and_nginx_serves_it(make_daemon):
    django_or_skip()
    d = make_daemon()
    d.add_file("private/a b.pdf", BODY)
    t0 = int(time.time())
    p = manage(d, "secure_links_gen_signed", "/media/private/a%20b.pdf", "--seconds", "120")
    assert p.returncode == 0, p
    url = p.stdout.strip()
    assert urllib.parse.urlsplit(url).path == "/media/private/a%20b.pdf", url
    assert t0 + 120 <= int(query(url)["expires"]) <= int(time.time()) + 120
    assert d.get(url) == (200, BODY)


def test_gen_signed_public_url_comes_back_unsigned_and_errors_are_one_line(make_daemon):
    django_or_skip()
    d = make_daemon()
    p = manage(d, "secure_links_gen_signed", "/media/public/a.css")
    # Unsigned: securelinkd's plain link (base_url and the path).
    assert p.returncode == 0 and p.stdout.strip() == d.base_url + "/media/public/a.css", p
    p = manage(d, "secure_links_gen_signed", "/media/private/a.pdf", "--seconds", "0")
    assert p.returncode != 0 and "should be positive" in p.stderr, p
    p = manage(d, "secure_links_gen_signed", "/media/private/a.pdf", "--seconds", str(10 ** 9))
    assert p.returncode != 0 and "ttl-too-long" in p.stderr, p
    assert "Traceback" not in p.stderr


def test_nginx_location_prints_what_securelinkctl_nginx_config_prints(make_daemon):
    django_or_skip()
    d = make_daemon()
    ctl = os.path.join(build_dir(), "client", "securelinkctl")
    want = subprocess.run([ctl, "nginx-config", "-c", d.conf], capture_output=True, text=True)
    assert want.returncode == 0 and "location" in want.stdout, want
    p = manage(d, "secure_links_nginx_location",
               settings=f"SECURELINK_CONFIG = {d.conf!r}\nSECURELINK_CTL = {ctl!r}\n")
    assert p.returncode == 0, p
    assert p.stdout == want.stdout
    # --config wins over the setting; a missing file is securelinkctl's
    # one-line error.
    p = manage(d, "secure_links_nginx_location", "--config", d.conf + ".missing",
               settings=f"SECURELINK_CONFIG = {d.conf!r}\nSECURELINK_CTL = {ctl!r}\n")
    assert p.returncode != 0 and d.conf + ".missing" in p.stderr, p
    assert "Traceback" not in p.stderr


def test_pre_sign_url_in_process_signs_private_and_not_public(make_daemon):
    django_or_skip()
    d = make_daemon()
    d.add_file("private/r.pdf", BODY)
    code = ("from django.core.files.storage import default_storage as s\n"
            "print(s.pre_sign_url('/media/private/r.pdf', 60))\n"
            "print(s.pre_sign_url('/media/public/x.css', 60))\n")
    p = manage(d, "shell", "-c", code)
    assert p.returncode == 0, p
    private, public = p.stdout.split()
    assert d.get(private) == (200, BODY)
    assert public == d.base_url + "/media/public/x.css"
