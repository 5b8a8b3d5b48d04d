# SPDX-License-Identifier: MIT
"""Directory grants over the socket (issue 16): what SIGN grant=path|cookie
answers, the errors it gives, and VERIFY's verdict on grants, each checked
against what nginx itself answers and against tokens computed here with
hashlib from the secrets in the keys file (never from our own output)."""

import base64
import email.utils
import hashlib
import re
import time
import urllib.parse

import pytest

from daemonsite import make_daemon  # noqa: F401 (a fixture)
from grantsite import fetch

DIR = "/media/private/videos/42/"
PATH_GRANT = re.compile(r"(?P<origin>https?://[^/]+)?/media/_grant/(?P<kid>\d+)/(?P<expires>\d+)/"
                        r"(?P<token>[A-Za-z0-9_-]{22})/(?P<depth>\d+)(?P<dir>/.*/)$")


def md5_token(text):
    return base64.urlsafe_b64encode(hashlib.md5(text.encode()).digest()).decode().rstrip("=")


def grant_token(expires, directory, secret, ip=""):
    """nginx's hash of a grant, by the formula in DESIGN.md."""
    return md5_token(f"{expires}grant:{directory}{ip} {secret}")


def cookie_fields(answer):
    """The Set-Cookie value's name=value and attributes."""
    parts = [p.strip() for p in answer.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.lower()] = v
    return name, value, attrs


@pytest.fixture
def d(make_daemon):
    d = make_daemon()
    d.add_file("private/videos/42/master.m3u8", b"#EXTM3U\n")
    d.add_file("private/videos/42/v0/seg1.ts", b"segment")
    d.add_file("private/videos/420/x.ts", b"sibling")
    d.add_file("private/videos/43/x.ts", b"other")
    d.wait_active()
    return d


def test_path_grant_is_a_base_url_nginx_serves_everything_under(d):
    answer = d.sign(DIR, "grant=path", "ttl=600")
    m = PATH_GRANT.match(answer)
    assert m, answer
    assert m["origin"] == d.base_url and m["dir"] == "/private/videos/42/" and m["depth"] == "3"
    secrets = d.keys()[1]
    assert m["token"] == grant_token(m["expires"], DIR, secrets[int(m["kid"])])
    assert abs(int(m["expires"]) - (time.time() + 600)) < 60
    path = answer[len(d.base_url):]
    assert d.get(path + "master.m3u8") == (200, b"#EXTM3U\n")
    assert d.get(path + "v0/seg1.ts") == (200, b"segment")
    # What the player resolves "../420/x.ts" to: another directory.
    assert d.status_of(path.replace("/42/", "/420/") + "x.ts") == 403
    v = d.ask(f"VERIFY {answer}v0/seg1.ts")
    assert v == f"OK valid kid={m['kid']} expires={m['expires']}", v


def test_cookie_grant_is_a_set_cookie_value_nginx_admits_under_its_path(d):
    answer = d.sign(DIR, "grant=cookie", "ttl=600")
    name, value, attrs = cookie_fields(answer)
    assert name == "securelink_grant"
    kid, expires, depth, token = value.split(".")
    assert depth == "3"
    assert token == grant_token(expires, DIR, d.keys()[1][int(kid)])
    assert attrs["path"] == DIR
    assert "httponly" in attrs and attrs["samesite"] == "Lax"
    assert "secure" not in attrs  # base_url is http here
    assert email.utils.parsedate_to_datetime(attrs["expires"]).timestamp() == int(expires)
    assert fetch(d.port, DIR + "v0/seg1.ts", value) == (200, b"segment")
    assert fetch(d.port, "/media/private/videos/43/x.ts", value)[0] == 403
    assert fetch(d.port, "/media/private/videos/420/x.ts", value)[0] == 403
    assert d.status_of(DIR + "v0/seg1.ts") == 403  # no cookie, no token
    v = d.ask(f"VERIFY {DIR}v0/seg1.ts cookie={value}")
    assert v == f"OK valid kid={kid} expires={expires}", v
    v = d.ask(f"VERIFY /media/private/videos/43/x.ts cookie={value}")
    assert v.startswith("OK invalid"), v


def test_cookie_is_secure_when_base_url_is_https(make_daemon):
    d = make_daemon()
    d.set_option("links", "base_url", "https://files.example.com")
    d.restart()
    d.wait_active()
    _, _, attrs = cookie_fields(d.sign(DIR, "grant=cookie"))
    assert "secure" in attrs
    assert d.sign(DIR, "grant=path").startswith("https://files.example.com/media/_grant/")


def test_a_file_link_and_a_grant_are_never_each_other(d):
    # Domain separation: a file token in a grant's place, and a grant's
    # token as a file's, are refused by nginx.
    link = d.sign(DIR + "master.m3u8")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    token, expires, kid = q["token"][0], q["expires"][0], q["kid"][0]
    assert d.status_of(f"/media/_grant/{kid}/{expires}/{token}/3/private/videos/42/master.m3u8") == 403
    m = PATH_GRANT.match(d.sign(DIR, "grant=path"))
    assert d.status_of(f"{DIR}master.m3u8?token={m['token']}&expires={m['expires']}"
                       f"&kid={m['kid']}") == 403


@pytest.mark.parametrize("target, code, words", [
    ("/media/private/videos/42", "bad-target", "end it in '/'"),
    ("/media/private/" + "d/" * 17, "bad-target", "18 levels below media_url, grants reach 16"),
    ("/media/_grant/", "bad-target", "is where grants live"),
])
def test_bad_grant_targets_get_bad_target_with_the_fix(d, target, code, words):
    answer = d.ask(f"SIGN {target} grant=path")
    assert answer.startswith(f"ERR {code} ") and words in answer, answer


@pytest.mark.parametrize("opts, words", [
    ("grant=file", "grant= takes path or cookie"),
    ("grant=path grant=cookie", "grant= given twice"),
])
def test_bad_grant_options_get_bad_request(d, opts, words):
    answer = d.ask(f"SIGN {DIR} {opts}")
    assert answer.startswith("ERR bad-request ") and words in answer, answer


def test_the_deepest_grant_works_and_a_public_directory_gets_its_plain_url(d):
    deep = "/media/private/" + "d/" * 15
    d.add_file(deep[len("/media/"):] + "f.ts", b"deep")
    base = d.sign(deep, "grant=path")
    assert PATH_GRANT.match(base)["depth"] == "16"
    assert d.get(base[len(d.base_url):] + "f.ts") == (200, b"deep")
    for form in ("path", "cookie"):
        assert d.sign("/media/public/videos/", f"grant={form}") == d.base_url + "/media/public/videos/"


def test_verify_agrees_with_nginx_on_forged_and_mangled_grants(d):
    """For each URL, VERIFY's verdict and nginx's status must agree: valid
    with 200, invalid with 403, expired with 410."""
    base = d.sign(DIR, "grant=path")
    m = PATH_GRANT.match(base)
    secrets = d.keys()[1]
    kid, expires, token = m["kid"], m["expires"], m["token"]
    past = int(time.time()) - 10
    past_token = grant_token(past, DIR, secrets[int(kid)])
    empty_secret = grant_token(expires, DIR, "")
    other = grant_token(expires, "/media/private/videos/", secrets[int(kid)])
    g = "/media/_grant"
    urls = [
        f"{g}/{kid}/{expires}/{token}/3/private/videos/42/master.m3u8",
        f"{g}/{kid}/{expires}/{token}/3/private/videos/42/v0/../master.m3u8",
        f"{g}/{kid}/{expires}/{token}/3/private/videos/42/../420/x.ts",
        f"{g}/{kid}/{expires}/{token}/3/private/videos/42/%2e%2e/43/x.ts",
        f"{g}/{kid}/{expires}/{token}/3/private/videos/420/x.ts",
        f"{g}/{kid}/{expires}/{token}/2/private/videos/42/master.m3u8",
        f"{g}/{kid}/{expires}/{token}/03/private/videos/42/master.m3u8",
        f"{g}/{kid}/{int(expires) + 1}/{token}/3/private/videos/42/master.m3u8",
        f"{g}/{kid}/{past}/{past_token}/3/private/videos/42/master.m3u8",
        f"{g}/999/{expires}/{empty_secret}/3/private/videos/42/master.m3u8",
        f"{g}/{kid}/{expires}/{other}/2/private/videos/43/x.ts",
        f"{g}/{kid}/{expires}/{token}/3/private/videos//42/master.m3u8",
        f"{g}/{kid}/{expires}/{token}/3/private%2Fvideos/42/master.m3u8",
        f"{g}/{kid}/{expires}/{token[:-1]}/3/private/videos/42/master.m3u8",
        f"{g}/{kid}/{expires}/{token}/3",
    ]
    verdicts = {"valid": 200, "invalid": 403, "expired": 410}
    for url in urls:
        answer = d.ask(f"VERIFY {url}")
        verdict = answer.split()[1]
        assert verdict in verdicts, (url, answer)
        status = d.status_of(url)
        # nginx answers 404 for a valid grant to a file that is not there.
        assert verdicts[verdict] == (200 if status == 404 else status), (url, answer, status)


def test_grants_bound_to_an_address(make_daemon):
    d = make_daemon()
    d.set_option("links", "bind_ip", "yes")
    d.restart()
    d.add_file("private/videos/42/master.m3u8", b"m")
    d.wait_active()
    assert d.ask(f"SIGN {DIR} grant=path").startswith("ERR bad-ip ")
    base = d.sign(DIR, "grant=path", "ip=127.0.0.1")
    m = PATH_GRANT.match(base)
    assert m["token"] == grant_token(m["expires"], DIR, d.keys()[1][int(m["kid"])], "127.0.0.1")
    assert d.get(base[len(d.base_url):] + "master.m3u8") == (200, b"m")
    other = d.sign(DIR, "grant=cookie", "ip=192.0.2.1")
    value = cookie_fields(other)[1]
    assert fetch(d.port, DIR + "master.m3u8", value)[0] == 403
    assert d.ask(f"VERIFY {DIR}master.m3u8 ip=192.0.2.1 cookie={value}").startswith("OK valid")
