# SPDX-License-Identifier: MIT
"""A site whose server has "merge_slashes off" keeps "//" in $uri:
"/media//private/x" then misses the prefix of every private location and
reaches the plain location of media_url, whose alias the kernel opens as
media_root/private/x all the same. nginx's verdict on each request, for
private prefixes at the top and deeper, and in the public-prefix layout."""

import pytest

from daemonsite import Daemon, close_daemon, open_daemon, require_binaries
from grantsite import get


class UnmergedDaemon(Daemon):
    """nginx's server keeps doubled slashes in $uri."""

    def write_nginx_conf(self):
        super().write_nginx_conf(server_extra="merge_slashes off;")


@pytest.mark.parametrize("prefix", ["private/", "docs/private/"])
def test_doubled_slashes_reach_no_private_file_through_the_plain_location(prefix):
    require_binaries()
    d = open_daemon({"links": {"private_prefixes": prefix}}, cls=UnmergedDaemon)
    try:
        d.add_file(prefix + "secret.pdf")
        d.add_file("open.pdf")
        top, _, rest = prefix.rstrip("/").rpartition("/")
        spellings = ["/media//" + prefix, "/media///" + prefix]
        if top:
            spellings += [f"/media/{top}//{rest}/", f"/media//{top}//{rest}//"]
        for s in spellings:
            assert get(d.port, s + "secret.pdf") in (403, 404), s
        # The file's own link still opens it, and a public file its plain URL.
        link = d.sign(f"/media/{prefix}secret.pdf")
        assert get(d.port, link[len(d.base_url):]) == 200
        assert get(d.port, "/media/open.pdf") == 200
    finally:
        for error in close_daemon(d):
            raise error


def test_doubled_slashes_reach_no_private_file_in_the_public_prefix_layout():
    """media_url itself checked, public prefixes plain: "/media/pub//..//x"
    is resolved by nginx before any location is picked, and a public
    location's alias only ever names files below its own directory."""
    require_binaries()
    d = open_daemon({"links": {"private_prefixes": None, "public_prefixes": "pub/"}},
                    cls=UnmergedDaemon)
    try:
        d.add_file("secret.pdf")
        d.add_file("pub/open.pdf")
        for s in ("/media//secret.pdf", "/media/pub//../secret.pdf", "/media/pub/..//secret.pdf"):
            assert get(d.port, s) in (403, 404), s
        assert get(d.port, "/media/pub/open.pdf") == 200
    finally:
        for error in close_daemon(d):
            raise error
