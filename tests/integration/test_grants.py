# SPDX-License-Identifier: MIT
"""Directory grants (issue 16): what a grant for /media/private/videos/42/
admits and what it does not, judged by the real nginx over the snippets
securelinkd writes. Every request is sent exactly as written
(http.client: no client normalizes `..`, `%2e%2e`, `%2F` or `//` away), and
every file a refusal aims at exists, so a breach would be a 200.

Forged tokens are computed here with hashlib (nginx's secure_link_md5 over
the strings DESIGN.md names), never taken from the daemon's answers; the
daemon's own grants are checked against hashlib too."""

import email.utils
import time

import pytest

from daemonsite import close_daemon, open_daemon, query, require_binaries, token
from grantsite import (cookie_value, curl, get, grant_token, path_form, split_base,
                       split_cookie)

DIR = "/media/private/videos/42/"
# Directories at the bound (16 segments below /media/) and one past it.
DEEP16 = "private/" + "".join(f"d{i}/" for i in range(1, 16))
DEEP17 = DEEP16 + "d16/"
FILES = ["private/videos/42/seg.ts", "private/videos/42/v0/index.m3u8",
         "private/videos/420/seg.ts", "private/videos/43/seg.ts",
         "private/videos/secret.ts", "private/top.ts", DEEP16 + "seg.ts", DEEP17 + "seg.ts"]


class Grant:
    """One daemon, nginx, the files above and a grant for DIR in both
    forms."""

    def __init__(self, d):
        self.d = d
        for f in FILES:
            d.add_file(f)
        self.base = d.sign(DIR, "grant=path", "ttl=600")
        self.cookie = d.sign(DIR, "grant=cookie", "ttl=600")
        m = split_base(self.base)
        self.kid, self.expires = int(m.group("kid")), int(m.group("expires"))
        self.token, self.depth = m.group("token"), int(m.group("depth"))
        self.path = self.base[len(d.base_url):]  # the base as an absolute path
        c, self.attrs = split_cookie(self.cookie)
        self.value = cookie_value(c.group("kid"), c.group("expires"), c.group("depth"),
                                  c.group("token"))

    def secret(self, kid=None):
        return self.d.keys()[1][self.kid if kid is None else kid]

    def status(self, target, cookie=None):
        return get(self.d.port, target, cookie)


@pytest.fixture(scope="module")
def g():
    require_binaries()
    d = open_daemon()
    try:
        yield Grant(d)
    finally:
        for error in close_daemon(d):
            raise error


def test_the_grant_is_nginx_s_token_for_the_directory_and_admits_what_is_under_it(g):
    """The known answer: hashlib's MD5 over "<expires>grant:<dir> <secret>"
    with the key of the kid the grant names, and nginx serving the files
    under the directory through both forms."""
    assert g.kid == g.d.status()["active_kid"]
    assert g.depth == 3
    assert g.path == path_form("/media/", g.kid, g.expires, g.token, 3, "private/videos/42/")
    assert g.token == grant_token(g.expires, DIR, g.secret())
    assert g.value == cookie_value(g.kid, g.expires, 3, g.token)
    assert g.attrs == {"path": DIR, "expires": email.utils.formatdate(g.expires, usegmt=True),
                       "httponly": "", "samesite": "Lax"}
    for f in ("seg.ts", "v0/index.m3u8"):
        assert g.status(g.path + f) == 200
        assert g.status(DIR + f, cookie=g.value) == 200
    # The control of every refusal below: no grant, no file.
    assert g.status(DIR + "seg.ts") == 403


# Each aims at an existing file outside the directory.
OUTSIDE_VIA = {
    "another directory": lambda p: p.replace("/42/", "/43/") + "seg.ts",
    "the sibling 420": lambda p: p.replace("/42/", "/420/") + "seg.ts",
    "..": lambda p: p + "../43/seg.ts",
    ".. to the parent": lambda p: p + "../secret.ts",
    ".. twice": lambda p: p + "../../top.ts",
    "%2e%2e": lambda p: p + "%2e%2e/43/seg.ts",
    "%2E%2E to the parent": lambda p: p + "%2E%2E/secret.ts",
    "%2F..%2F": lambda p: p[:-1] + "%2F..%2F43/seg.ts",
    "..%2F": lambda p: p + "..%2Fsecret.ts",
    "//..": lambda p: p + "/../secret.ts",
    "// and .. twice": lambda p: p + "//..//../top.ts",
}


@pytest.mark.parametrize("how", OUTSIDE_VIA)
def test_path_form_refuses_what_is_outside_the_directory(g, how):
    assert g.status(OUTSIDE_VIA[how](g.path)) == 403


def test_path_form_refuses_parents_of_the_grant_fields_and_a_changed_depth(g):
    # Out of the grant's fields to the plain private location: no token there.
    assert g.status(g.path + "../" * 8 + "private/top.ts") == 403
    assert g.status(g.path + "%2e%2e/" * 8 + "private/top.ts") == 403
    # Into _grant/ itself but not of the path form's shape.
    assert g.status(g.path + "../" * 6 + "private/top.ts") == 403
    # The same token, another depth: another directory.
    for depth in (2, 4, 0):
        p = path_form("/media/", g.kid, g.expires, g.token, depth, "private/videos/42/")
        assert g.status(p + "seg.ts") == 403, depth


# Grants made here with the real key for a directory of the given depth,
# sent with the depth field spelled as given: (directory below /media/,
# depth as written, the file under it, nginx's verdict).
DEPTH_SPELLINGS = [
    ("private/", "1", "top.ts", 200),
    ("private/", "01", "top.ts", 403),
    ("private/", "10", "top.ts", 403),
    ("private/videos/42/", "03", "seg.ts", 403),
    ("private/videos/42/", "3 ", "seg.ts", 403),
    (DEEP16, "16", "seg.ts", 200),
    (DEEP16, "016", "seg.ts", 403),
    (DEEP16, "1", "seg.ts", 403),
    (DEEP17, "17", "seg.ts", 403),
    (DEEP17, "16", "seg.ts", 403),
]


@pytest.mark.parametrize("below,depth,rest,want", DEPTH_SPELLINGS)
def test_the_depth_is_read_as_written_up_to_the_bound(g, below, depth, rest, want):
    """nginx cuts the directory it hashes by the depth the grant carries:
    only the daemon's spelling of it (no leading zero, no other number whose
    digits begin alike) and only up to the bound (16), in both forms. Each
    token is right for the directory, so a 200 where 403 is wanted would be
    nginx admitting a grant outside the documented shape."""
    t = grant_token(g.expires, "/media/" + below, g.secret())
    path = path_form("/media/", g.kid, g.expires, t, depth, below) + rest
    assert g.status(path.replace(" ", "%20")) == want, path
    cookie = cookie_value(g.kid, g.expires, depth, t)
    assert g.status("/media/" + below + rest, cookie=cookie) == want, cookie


def test_path_form_refuses_a_tampered_token_kid_or_expiry(g):
    t = g.token
    flipped = ("A" if t[0] != "A" else "B") + t[1:]
    assert g.status(path_form("/media/", g.kid, g.expires, flipped, 3, "private/videos/42/")
                    + "seg.ts") == 403
    assert g.status(path_form("/media/", g.kid, g.expires + 1, t, 3, "private/videos/42/")
                    + "seg.ts") == 403


@pytest.mark.parametrize("how", OUTSIDE_VIA)
def test_cookie_refuses_what_is_outside_its_directory(g, how):
    """The cookie's Path is the browser's business: a client sends the value
    wherever it likes. nginx hashes the directory of the requested path, so
    the value of a grant for /videos/42/ admits nothing elsewhere."""
    assert g.status(OUTSIDE_VIA[how](DIR), cookie=g.value) == 403


def test_cookie_refuses_a_changed_depth_or_a_tampered_token(g):
    for depth in (2, 1, 0, 4):
        v = cookie_value(g.kid, g.expires, depth, g.token)
        assert g.status("/media/private/videos/secret.ts", cookie=v) == 403, depth
        assert g.status(DIR + "seg.ts", cookie=v) == 403, depth
    t = g.token
    flipped = ("A" if t[0] != "A" else "B") + t[1:]
    assert g.status(DIR + "seg.ts", cookie=cookie_value(g.kid, g.expires, 3, flipped)) == 403
    assert g.status(DIR + "seg.ts", cookie=g.value + "x") == 403


@pytest.mark.parametrize("tail", ["|" + DIR, "|" + DIR + "|", ";" + DIR, "," + DIR, "%7C" + DIR,
                                  "/" + DIR, " " + DIR])
def test_a_cookie_that_carries_its_own_path_is_refused(g, tail):
    """nginx checks the cookie and the requested path in one match; a client
    writes what it likes after the token, and whatever it writes there (a
    separator and the granted directory, to pose as the path) is not the
    path nginx serves: elsewhere it admits nothing, and the cookie is no
    longer the grant's even under the directory itself (but where ';' ends
    the value, as it ends every cookie's)."""
    value = g.value + tail
    for target in ("/media/private/videos/secret.ts", "/media/private/videos/43/seg.ts",
                   "/media/private/top.ts"):
        assert g.status(target, cookie=value) == 403, target
    # A ';' ends a cookie's value: nginx reads the grant itself there.
    assert g.status(DIR + "seg.ts", cookie=value) == (200 if tail[0] == ";" else 403)


def test_a_cookie_whose_path_claims_a_wider_directory_is_refused(g, tmp_path):
    """The daemon's Set-Cookie value with its Path widened to the parent:
    curl (its own cookie parser) now sends it for /videos/43/ too, and nginx
    refuses it there: the value carries the directory's depth, and the
    token is for /videos/42/ alone."""
    wider = g.cookie.replace(f"; Path={DIR};", "; Path=/media/private/videos/;")
    assert wider != g.cookie
    jar = tmp_path / "cookies.txt"
    jar.write_text(f"Set-Cookie: {wider}\n")
    base = g.d.base_url + "/media/private/videos/"
    for rel, want in (("42/seg.ts", 200), ("43/seg.ts", 403), ("420/seg.ts", 403),
                      ("secret.ts", 403)):
        codes, sent = curl([base + rel], "-b", str(jar))
        assert f"Cookie: securelink_grant={g.value}" in sent, (rel, sent)
        assert codes == [want], rel


@pytest.mark.parametrize("kid", [999999, None])
def test_the_empty_secret_forgery_is_refused(g, kid):
    """A token made with an empty secret, under an unknown kid (where a
    naive map's default would be "") and under the real one."""
    kid = g.kid if kid is None else kid
    forged = grant_token(g.expires, DIR, "")
    assert g.status(path_form("/media/", kid, g.expires, forged, 3, "private/videos/42/")
                    + "seg.ts") == 403
    assert g.status(DIR + "seg.ts", cookie=cookie_value(kid, g.expires, 3, forged)) == 403


def test_an_expired_grant_gets_410(g):
    """Made here with the real key: an expiry in the past is 410 in both
    forms, the same grant with a future expiry 200 (so the 410 is the
    expiry's, not a wrong token's)."""
    secret = g.secret()
    for expires, want in ((int(time.time()) - 60, 410), (int(time.time()) + 60, 200)):
        t = grant_token(expires, DIR, secret)
        assert g.status(path_form("/media/", g.kid, expires, t, 3, "private/videos/42/")
                        + "seg.ts") == want
        assert g.status(DIR + "seg.ts", cookie=cookie_value(g.kid, expires, 3, t)) == want


def test_file_tokens_and_grant_tokens_are_not_interchangeable(g):
    """Domain separation, by nginx's verdict: a file link's token for the
    directory's own path is no grant, and a grant's token is no file
    link's, with the same key and expiry."""
    secret = g.secret()
    file_tok = token(g.expires, DIR, secret)  # what a file link for DIR carries
    assert g.status(path_form("/media/", g.kid, g.expires, file_tok, 3, "private/videos/42/")
                    + "seg.ts") == 403
    assert g.status(DIR + "seg.ts", cookie=cookie_value(g.kid, g.expires, 3, file_tok)) == 403
    # A file token for the file itself passes as a file link (the control),
    # the grant's token in its place does not.
    seg = DIR + "seg.ts"
    good = token(g.expires, seg, secret)
    assert g.status(f"{seg}?token={good}&expires={g.expires}&kid={g.kid}") == 200
    assert g.status(f"{seg}?token={g.token}&expires={g.expires}&kid={g.kid}") == 403
    # A token parameter wins over the cookie: a bad one is not rescued by a
    # good cookie.
    assert g.status(f"{seg}?token={g.token}&expires={g.expires}&kid={g.kid}",
                    cookie=g.value) == 403
    # And the daemon's own file link is no grant either.
    link = g.d.sign(seg, "ttl=600")
    q = query(link)
    assert g.status(link[len(g.d.base_url):]) == 200
    assert g.status(path_form("/media/", q["kid"], q["expires"], q["token"], 3,
                              "private/videos/42/") + "seg.ts") == 403


def test_a_revoked_key_s_grants_get_403():
    require_binaries()
    d = open_daemon()
    try:
        g = Grant(d)
        assert g.status(g.path + "seg.ts") == 200
        assert g.status(DIR + "seg.ts", cookie=g.value) == 200
        d.rotate(revoke=True)
        assert g.status(g.path + "seg.ts") == 403
        assert g.status(DIR + "seg.ts", cookie=g.value) == 403
        # A grant of the new key passes.
        assert g.status(split_base(d.sign(DIR, "grant=path"))
                        .group(0)[len(d.base_url):] + "seg.ts") == 200
    finally:
        for error in close_daemon(d):
            raise error
