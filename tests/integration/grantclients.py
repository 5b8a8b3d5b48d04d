# SPDX-License-Identifier: MIT
"""What the clients' directory-grant tests share (issue 16): a GET with a
Cookie header, the media of a stream, and a Set-Cookie value taken apart as
a browser does (RFC 6265, section 5.2)."""

import email.utils
import http.client
import urllib.parse

from nginxsite import TIMEOUT

COOKIE_NAME = "securelink_grant"

# A stream's directory, its files at two depths, and the places a grant for
# it must not open: a sibling sharing its spelling, another directory.
STREAM_DIR = "private/videos/42/"
STREAM_FILES = ["master.m3u8", "f.ts", "v1/index.m3u8", "v1/seg0.ts"]
OUTSIDE = ["private/videos/420/f.ts", "private/videos/43/f.ts", "private/f.ts"]


def add_stream(add_file):
    """Creates the stream's files and the ones outside it with add_file
    (Daemon.add_file); returns {relpath: body}."""
    return {rel: add_file(rel) for rel in
            [STREAM_DIR + f for f in STREAM_FILES] + OUTSIDE}


def get(port, url, cookie=None):
    """GETs url's path and query from 127.0.0.1:port exactly as written, with
    "Cookie: securelink_grant=<cookie>" when cookie is given. Returns
    (status, body)."""
    parts = urllib.parse.urlsplit(url)
    target = url if not parts.scheme else parts.path + ("?" + parts.query if parts.query else "")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", target, headers={"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def parse_set_cookie(value):
    """A Set-Cookie header's value -> (name, value, {attribute: value}):
    attribute names lowercased, flags (HttpOnly, Secure) as True."""
    first, *attrs = [p.strip() for p in value.split(";")]
    name, _, val = first.partition("=")
    out = {}
    for a in attrs:
        k, eq, v = a.partition("=")
        out[k.strip().lower()] = v.strip() if eq else True
    return name, val, out


def expires_of(attrs):
    """The Expires attribute as a unix time."""
    return int(email.utils.parsedate_to_datetime(attrs["expires"]).timestamp())
