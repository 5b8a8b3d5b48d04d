# SPDX-License-Identifier: MIT
"""Fixtures for the integration tests: a real nginx on 127.0.0.1, in a temp
directory of its own per test, serving the snippets securelink renders.

Environment (set by tests/integration/meson.build; defaults for a manual run
from the source tree):
  SECURELINK_BUILD_DIR   build directory (default ./build)
  SECURELINK_SOURCE_DIR  source directory (default .)
"""

import os
import shutil
import tempfile

import pytest

from nginxsite import NGINX, Site, core_tool_path


@pytest.fixture
def make_site():
    """Returns a factory: make_site(**links_options) renders the snippets for a
    fresh securelinkd.conf and starts nginx over them. Every site is stopped
    and its directory removed at teardown, also when the test failed."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is not installed")
    tool = core_tool_path()
    if not os.access(tool, os.X_OK):
        pytest.fail(f"{tool} is missing: build it first (ninja tests/integration/securelink-core-tool), "
                    "or set SECURELINK_BUILD_DIR")

    sites = []
    dirs = []

    def factory(**links):
        d = tempfile.mkdtemp(prefix="securelink-it-")
        dirs.append(d)
        site = Site(d, tool, links)
        sites.append(site)
        site.setup()
        site.start()
        return site

    try:
        yield factory
    finally:
        errors = []
        for site in sites:
            try:
                site.stop()
            except Exception as e:  # keep cleaning up the others
                errors.append(e)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        if errors:
            raise errors[0]


@pytest.fixture
def site(make_site):
    """The common case: private_prefixes = private/."""
    return make_site(private_prefixes="private/")
