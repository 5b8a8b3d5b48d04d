# SPDX-License-Identifier: MIT
"""securelink's snippets and links against a real nginx: the verdict (200,
403, 410) is nginx's own, the links and snippets come from the core
(securelink-core-tool, the code securelinkd runs)."""

import os
import time
import urllib.parse

import pytest

from nginxsite import encode_target


def future():
    return int(time.time()) + 3600


def with_param(url, name, value):
    """Replaces one query parameter's value, leaving the rest as signed."""
    path, _, query = url.partition("?")
    out = []
    for kv in query.split("&"):
        k, _, v = kv.partition("=")
        out.append(f"{k}={value}" if k == name else kv)
    return path + "?" + "&".join(out)


def params(url):
    return dict(urllib.parse.parse_qsl(url.partition("?")[2]))


def test_valid_link_is_served(site):
    body = site.add_file("private/report.pdf")
    url = site.sign("/media/private/report.pdf")
    assert url.startswith("/media/private/report.pdf?token=")
    assert site.get(url) == (200, body)


def test_private_file_without_token_is_forbidden(site):
    site.add_file("private/report.pdf")
    assert site.get("/media/private/report.pdf")[0] == 403


def test_tampered_token_is_forbidden(site):
    site.add_file("private/report.pdf")
    url = site.sign("/media/private/report.pdf")
    token = params(url)["token"]
    # Change the first digit: it carries the top bits of the first MD5 byte,
    # so the decoded hash differs for sure.
    bad = ("B" if token[0] == "A" else "A") + token[1:]
    assert site.get(with_param(url, "token", bad))[0] == 403


def test_tampered_path_is_forbidden(site):
    site.add_file("private/a.txt")
    site.add_file("private/b.txt")
    url = site.sign("/media/private/a.txt")
    assert site.get(url)[0] == 200
    assert site.get(url.replace("/a.txt?", "/b.txt?"))[0] == 403


def test_tampered_expires_is_forbidden(site):
    site.add_file("private/a.txt")
    url = site.sign("/media/private/a.txt")
    expires = int(params(url)["expires"])
    assert site.get(with_param(url, "expires", str(expires + 1)))[0] == 403


def test_tampered_kid_is_forbidden(site):
    site.add_file("private/a.txt")
    site.rotate()
    site.reload()
    url = site.sign("/media/private/a.txt")
    assert params(url)["kid"] == "2"
    assert site.get(url)[0] == 200
    # kid 1 is a real key in the map, not the one that signed.
    assert site.get(with_param(url, "kid", "1"))[0] == 403


def test_unknown_kid_falls_back_to_default_key(site):
    """nginx's map sends an unknown kid to the default key: a link signed by
    an older key with its kid swapped for an unknown one must fail."""
    site.add_file("private/a.txt")
    old = site.sign("/media/private/a.txt")
    site.rotate()
    site.reload()
    assert site.get(old)[0] == 200
    assert site.get(with_param(old, "kid", "99"))[0] == 403


def test_expired_link_is_gone(site):
    site.add_file("private/a.txt")
    url = site.sign("/media/private/a.txt", expires=int(time.time()) - 60)
    assert site.get(url)[0] == 410


def test_token_with_empty_secret_is_forbidden(site):
    """An attacker who guesses an empty default secret: the map's default
    must be a real key, so a token over "<expires><uri> " is refused."""
    site.add_file("private/a.txt")
    expires = str(future())
    default, kids = site.keys()
    assert default and default in kids.values()

    empty = site.tool_run("sign-kid", "999", "", "/media/private/a.txt", expires)
    for query in (f"token={empty}&expires={expires}&kid=999",
                  f"token={empty}&expires={expires}&kid=",
                  f"token={empty}&expires={expires}"):
        assert site.get("/media/private/a.txt?" + query)[0] == 403, query

    # The same tool with the real default secret: proves the 403s above are
    # about the secret, not a broken token.
    good = site.tool_run("sign-kid", "999", default, "/media/private/a.txt", expires)
    assert site.get(f"/media/private/a.txt?token={good}&expires={expires}&kid=999")[0] == 200


ODD_NAMES = [
    "with space.txt",
    "caf\u00e9 \u00fcn\u00efc\u00f8de \u6587\u4ef6.txt",
    "a+b.txt",
    "100%.txt",
    "%41%2F.txt",  # literal percent signs: must not be decoded twice
    "semi;colon.txt",
    "hash#tag.txt",
    "it's.txt",
    "(paren).txt",
    "eq=ual.txt",
    "amp&ersand.txt",
    "all of them +%;#'()=&\u00e9.txt",
]


@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize("minimal", [False, True], ids=["encoded", "raw"])
def test_odd_filename_is_served(site, name, minimal):
    body = site.add_file("private/" + name)
    url = site.sign("/media/private/" + name, minimal=minimal)
    assert site.get(url) == (200, body), url


def test_public_path_is_served_without_token(site):
    body = site.add_file("public/hello.txt")
    url = site.sign("/media/public/hello.txt")
    assert url == "/media/public/hello.txt"
    assert site.get(url) == (200, body)


def test_rotation_keeps_old_links_and_serves_new_ones(site):
    body = site.add_file("private/a.txt")
    old = site.sign("/media/private/a.txt")
    assert site.get(old) == (200, body)

    site.rotate()
    site.reload()

    new = site.sign("/media/private/a.txt")
    assert params(new)["kid"] != params(old)["kid"]
    assert site.get(old) == (200, body)
    assert site.get(new) == (200, body)


def test_bind_ip_link_works_only_from_that_address(make_site):
    site = make_site(private_prefixes="private/", bind_ip="yes")
    body = site.add_file("private/a.txt")
    assert site.get(site.sign("/media/private/a.txt", ip="127.0.0.1")) == (200, body)
    assert site.get(site.sign("/media/private/a.txt", ip="10.1.2.3"))[0] == 403


def test_public_prefixes_make_the_rest_of_media_private(make_site):
    site = make_site(public_prefixes="public/")
    pub = site.add_file("public/hello.txt")
    priv = site.add_file("other/secret.txt")
    assert site.get("/media/public/hello.txt") == (200, pub)
    assert site.get("/media/other/secret.txt")[0] == 403
    url = site.sign("/media/other/secret.txt")
    assert "token=" in url
    assert site.get(url) == (200, priv)


def test_no_prefixes_make_all_of_media_private(make_site):
    site = make_site()
    body = site.add_file("any/thing.txt")
    assert site.get("/media/any/thing.txt")[0] == 403
    assert site.get(site.sign("/media/any/thing.txt")) == (200, body)


def test_custom_parameter_names(make_site):
    site = make_site(private_prefixes="private/", token_param="t", expires_param="e",
                     key_param="k")
    body = site.add_file("private/a.txt")
    url = site.sign("/media/private/a.txt")
    assert set(params(url)) == {"t", "e", "k"}
    assert site.get(url) == (200, body)
    assert site.get(with_param(url, "t", "AAAAAAAAAAAAAAAAAAAAAA"))[0] == 403


def test_encode_target_helper_encodes_what_targets_cannot_hold():
    # Guards the test helper itself: a wrong helper would make the odd
    # filename tests pass for the wrong reason.
    assert encode_target("/a b%#?", minimal=True) == "/a%20b%25%23%3F"
    assert encode_target("/\u00e9+", minimal=True) == "/\u00e9+"
    assert encode_target("/\u00e9+") == "/%C3%A9%2B"


def serve_media_only_through_locations(site):
    """Points the server's root at an empty directory, so that only
    securelink's locations serve media_url (the root that test sites keep
    would serve public files by itself)."""
    empty = os.path.join(site.dir, "empty-root")
    os.makedirs(empty, exist_ok=True)
    os.chmod(empty, 0o755)
    with open(site.nginx_conf) as f:
        text = f.read()
    assert f"root {site.root};" in text
    with open(site.nginx_conf, "w") as f:
        f.write(text.replace(f"root {site.root};", f"root {empty};"))
    site.reload()


def test_locations_serve_the_public_part_of_media_url(site):
    # With private_prefixes, the rest of media_url is public: SIGN answers
    # it unsigned, and locations.conf must serve it, as the seed's generated
    # block does (location MEDIA_URL { alias MEDIA_ROOT; }).
    serve_media_only_through_locations(site)
    pub = site.add_file("public/p.txt")
    priv = site.add_file("private/s.txt")
    url = site.sign("/media/public/p.txt")
    assert url == "/media/public/p.txt"
    assert site.get(url) == (200, pub)
    assert site.get("/media/private/s.txt")[0] == 403
    assert site.get(site.sign("/media/private/s.txt")) == (200, priv)


def test_public_location_does_not_outrank_a_regex_on_private_files(make_site):
    # The generic media_url location is a plain prefix, the private ones
    # ^~: a site's regex location still cannot take a private file.
    site = make_site(private_prefixes="private/")
    serve_media_only_through_locations(site)
    with open(site.nginx_conf) as f:
        text = f.read()
    regex = f"location ~ \\.txt$ {{ root {site.root}; }}\n        include"
    with open(site.nginx_conf, "w") as f:
        f.write(text.replace("include " + site.locations_file, regex + " " + site.locations_file, 1))
    site.reload()
    site.add_file("private/s.txt")
    assert site.get("/media/private/s.txt")[0] == 403


def test_serve_public_no_leaves_the_public_part_to_the_site(make_site):
    site = make_site(private_prefixes="private/", serve_public="no")
    serve_media_only_through_locations(site)
    site.add_file("public/p.txt")
    assert site.get("/media/public/p.txt")[0] == 404
    with open(site.locations_file) as f:
        assert "location /media/ " not in f.read()
