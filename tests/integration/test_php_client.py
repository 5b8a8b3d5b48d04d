# SPDX-License-Identifier: MIT
"""contrib/php: the PHP client's own tests (contrib/php/tests/ClientTest.php),
one pytest test each, run with Debian's phpunit against the real securelinkd
and nginx and the fakes of clientsite.py. No Composer: the tests' bootstrap
is a small PSR-4 autoloader."""

import os
import shutil
import subprocess

import pytest

from clientsite import SOURCE_DIR, ClientSite, declared_tests

PHP_DIR = os.path.join(SOURCE_DIR, "contrib", "php")
TEST_FILE = os.path.join(PHP_DIR, "tests", "ClientTest.php")
TESTS = declared_tests(TEST_FILE, r"^\s*public function (test\w+)\(\): void")
PHPUNIT = shutil.which("phpunit")


def test_php_suite_is_found():
    # A regex that matched nothing would make this file pass vacuously.
    assert len(TESTS) >= 10, TESTS


@pytest.mark.parametrize("name", TESTS)
def test_php(name):
    if PHPUNIT is None:
        pytest.fail("phpunit is not installed: scripts/bootstrap installs php-cli and phpunit")
    site = ClientSite(name)
    try:
        r = subprocess.run([PHPUNIT, "--configuration", os.path.join(PHP_DIR, "phpunit.xml.dist"),
                            "--filter", f"/::{name}$/", TEST_FILE], cwd=PHP_DIR, env=site.env(),
                           capture_output=True, text=True, timeout=400)
        output = r.stdout + r.stderr
        if r.returncode != 0 or "OK (1 test," not in output:
            pytest.fail(f"phpunit {name} failed (exit {r.returncode}):\n{output}\n"
                        + site.diagnostics())
    finally:
        site.close()


def test_php_sources_lint():
    php = shutil.which("php")
    if php is None:
        pytest.fail("php is not installed: scripts/bootstrap installs php-cli")
    files = [os.path.join(SOURCE_DIR, "bench", "php-client.php")]  # bench/run's PHP part
    for root, _, names in os.walk(PHP_DIR):
        files += [os.path.join(root, f) for f in names if f.endswith(".php")]
    assert len(files) >= 6, files
    for f in files:
        r = subprocess.run([php, "-l", f], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
