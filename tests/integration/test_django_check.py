# SPDX-License-Identifier: MIT
"""securelink's Django system check (`manage.py check`), with Debian's Django
(python3-django) run as a site runs it: a settings module of its own, and
`python3 -m django check` in a child process.

The check exists because Debian 12's Django 3.2 ignores STORAGES (new in 4.2)
without a word: a site that followed a STORAGES example kept Django's
FileSystemStorage and handed out unsigned links, which nginx refuses (403).
"""

import os
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SECURELINK_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
PYTHON = "/usr/bin/python3"

SECURELINK = "securelink.django.SecureLinkStorage"


def django_version():
    p = subprocess.run([PYTHON, "-c", "import django; print(*django.VERSION[:2])"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("Debian's python3-django is not installed")
    return tuple(int(x) for x in p.stdout.split())


def manage_check(settings):
    """`python3 -m django check` over a site whose settings.py is the
    given text; returns the CompletedProcess."""
    with tempfile.TemporaryDirectory(prefix="sl-django-") as d:
        os.mkdir(os.path.join(d, "site_"))
        open(os.path.join(d, "site_", "__init__.py"), "w").close()
        with open(os.path.join(d, "site_", "settings.py"), "w") as f:
            f.write(f"SECRET_KEY = 'test'\nMEDIA_ROOT = {d!r}\nMEDIA_URL = '/media/'\n"
                    + settings)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [os.path.join(SOURCE_DIR, "contrib", "python"), d]),
            DJANGO_SETTINGS_MODULE="site_.settings")
        return subprocess.run([PYTHON, "-W", "ignore::DeprecationWarning", "-m", "django",
                               "check"], capture_output=True, text=True, env=env, cwd=d,
                              timeout=60)


def storage_setting(backend):
    """The storage setting a site writes on the Django at hand."""
    if django_version() >= (4, 2):
        return f"STORAGES = {{'default': {{'BACKEND': {backend!r}}}, " \
               "'staticfiles': {'BACKEND': 'django.contrib.staticfiles.storage.StaticFilesStorage'}}\n"
    return f"DEFAULT_FILE_STORAGE = {backend!r}\n"


def test_app_installed_and_securelink_storage_passes():
    p = manage_check("INSTALLED_APPS = ['securelink.django']\n" + storage_setting(SECURELINK))
    assert p.returncode == 0, p
    assert "no issues" in p.stdout, p


def test_storages_ignored_by_django_before_4_2_fails_naming_the_setting_to_use():
    if django_version() >= (4, 2):
        pytest.skip("this Django reads STORAGES")
    p = manage_check("INSTALLED_APPS = ['securelink.django']\n"
                     f"STORAGES = {{'default': {{'BACKEND': {SECURELINK!r}}}}}\n"
                     "SECURE_LINK_EXPIRATION_SECONDS = 600\n")
    assert p.returncode != 0, p
    assert "securelink.E001" in p.stderr, p
    # The fix for this Django, named.
    assert f'DEFAULT_FILE_STORAGE = "{SECURELINK}"' in p.stderr, p


def test_default_storage_not_securelink_fails():
    p = manage_check("INSTALLED_APPS = ['securelink.django']\n"
                     + storage_setting("django.core.files.storage.FileSystemStorage"))
    assert p.returncode != 0, p
    assert "securelink.E001" in p.stderr and "FileSystemStorage" in p.stderr, p


def test_secure_link_settings_without_securelink_storage_fail():
    # Not even the app listed, but the storage module loaded by the site
    # (a FileField(storage=...)) and SECURE_LINK_ settings left from
    # django-nginx-secure-links: the default storage must sign.
    p = manage_check("INSTALLED_APPS = []\n"
                     "import securelink.django\n"
                     "SECURE_LINK_PRIVATE_PREFIXES = ['private/']\n")
    assert p.returncode != 0, p
    assert "securelink.E001" in p.stderr, p


def test_silenced_by_the_site_when_it_signs_only_some_fields():
    p = manage_check("INSTALLED_APPS = ['securelink.django']\n"
                     "SILENCED_SYSTEM_CHECKS = ['securelink.E001']\n")
    assert p.returncode == 0, p


def test_storage_module_imported_without_settings_or_app_is_quiet():
    p = manage_check("INSTALLED_APPS = []\nimport securelink.django\n")
    assert p.returncode == 0, p
