# SPDX-License-Identifier: MIT
"""Inputs and limits, with the real securelinkd over its real socket and a
real nginx on 127.0.0.1 (daemonsite.py): what a target, a link or a prefix
means to the daemon must be what it means to nginx.

Known answers come from nginx itself (its status codes), and tokens are
recomputed with hashlib from the secrets in the keys file nginx reads."""

import pytest

from daemonsite import make_daemon  # noqa: F401 (a fixture)


def test_daemon_warns_at_start_that_a_prefix_without_slash_means_a_directory(make_daemon):
    d = make_daemon({"links": {"private_prefixes": "private"}})
    d.add_file("private/a.pdf", b"private\n")
    d.add_file("privatefoo.pdf", b"not private here\n")
    warnings = [line for line in d.log_text().splitlines() if "private_prefixes" in line]
    assert len(warnings) == 1, d.log_text()
    assert ('private_prefixes: "private" is read as "private/": it covers /media/private/... '
            'but not /media/privatefoo.pdf') in warnings[0]
    # What the warning says is what the daemon and nginx do.
    assert "?" not in d.sign("/media/privatefoo.pdf")
    assert d.status_of(d.base_url + "/media/privatefoo.pdf") == 200
    assert d.status_of(d.base_url + "/media/private/a.pdf") == 403
    assert d.status_of(d.sign("/media/private/a.pdf")) == 200
