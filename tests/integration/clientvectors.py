# SPDX-License-Identifier: MIT
"""The shared client test vectors (tests/vectors/clients.json, described in
tests/vectors/README.md) for the Python client's suite; the other clients'
suites read the same file through $SECURELINK_TEST_VECTORS (clientharness)."""

import json
import os
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SECURELINK_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
VECTORS = os.path.join(SOURCE_DIR, "tests", "vectors", "clients.json")
PRIVATE = "/media/private/"


def load():
    with open(VECTORS, encoding="utf-8") as f:
        return json.load(f)


def vector_id(v):
    """A short, printable pytest id for a vector."""
    t = v["target"]
    t = t if len(t) <= 40 else f"{t[:30]}...({len(t)} chars)"
    return t.encode("unicode_escape").decode()


def is_private(path):
    return path.startswith(PRIVATE)


def media_name(path):
    """The file below the media root that path names: decoded, /media/ off."""
    assert path.startswith("/media/"), path
    return urllib.parse.unquote(path[len("/media/"):], errors="strict")


def check_answer(answer, path):
    """Asserts that a SIGN answer is path (public) or path?token=...&expires=...&kid=..."""
    if not is_private(path):
        assert answer == path, (answer, path)
        return
    base, sep, query = answer.partition("?")
    assert (base, sep) == (path, "?"), (answer, path)
    assert sorted(k for k, _ in urllib.parse.parse_qsl(query)) == ["expires", "kid", "token"], answer
