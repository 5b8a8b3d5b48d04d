# SPDX-License-Identifier: MIT
"""Inputs and limits, with the real securelinkd over its real socket and a
real nginx on 127.0.0.1 (daemonsite.py): what a target, a link or a prefix
means to the daemon must be what it means to nginx.

Known answers come from nginx itself (its status codes), and tokens are
recomputed with hashlib from the secrets in the keys file nginx reads."""

import re
import socket
import subprocess
import time
import urllib.parse

import pytest

from ctlsite import ctl_binary
from daemonsite import err, make_daemon, token  # noqa: F401 (a fixture)


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


def test_nginx_config_warns_that_a_prefix_without_slash_means_a_directory(tmp_path):
    conf = tmp_path / "sl.conf"
    conf.write_text("[links]\nprivate_prefixes = private\n")
    r = subprocess.run([ctl_binary(), "nginx-config", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "location ^~ /media/private/ {" in r.stdout
    assert r.stderr.splitlines() == [
        'securelinkctl: warning: sl.conf:2: private_prefixes: "private" is read as "private/": '
        "it covers /media/private/... but not /media/privatefoo.pdf, which "
        'django-nginx-secure-links would also sign (write "private/" to silence this warning)']


# --- a scheme-relative target keeps its host --------------------------------------


def test_scheme_relative_target_keeps_its_host_and_signs_the_path(make_daemon):
    d = make_daemon()
    body = d.add_file("private/a b.pdf", b"private\n")
    url = d.sign("//files.example.com/media/private/a%20b.pdf", "ttl=600")
    m = re.fullmatch(r"//files\.example\.com(/media/private/a%20b\.pdf)"
                     r"\?token=([A-Za-z0-9_-]{22})&expires=(\d+)&kid=(\d+)", url)
    assert m, url
    path, tok, expires, kid = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
    _, keys = d.keys()
    assert tok == token(expires, "/media/private/a b.pdf", keys[kid])
    # What a browser on that page requests from files.example.com: the path
    # and query. nginx serves it.
    assert d.get(url[len("//files.example.com"):]) == (200, body)
    assert d.ask(f"VERIFY {url}") == f"OK valid kid={kid} expires={expires}"
    # Public: the plain link, host kept.
    assert d.sign("//files.example.com/media/public/x.css") == \
        "//files.example.com/media/public/x.css"


@pytest.mark.parametrize("target,reason", [
    ("///media/private/a.pdf", "missing host"),
    ("//files_example.com/media/private/a.pdf", "bad host"),
    ("//files.example.com:0/media/private/a.pdf", "bad port"),
])
def test_scheme_relative_target_without_a_good_host_is_bad_target(make_daemon, target, reason):
    d = make_daemon()
    code, message = err(d.ask(f"SIGN {target}"))
    assert code == "bad-target" and reason in message, message


def test_django_media_url_without_scheme_gets_signed_links_to_its_host(make_daemon):
    pytest.importorskip("django")
    from pyclient_fixture import SOURCE_DIR  # noqa: F401 (puts contrib/python on sys.path)
    from django.conf import settings
    from django.test.utils import override_settings
    import django
    if not settings.configured:
        settings.configure(USE_TZ=True)
        django.setup()
    from securelink.django import SecureLinkStorage

    d = make_daemon({"links": {"base_url": None}})
    body = d.add_file("private/report 1.pdf", b"report\n")
    with override_settings(MEDIA_ROOT=d.media, MEDIA_URL="//files.example.com/media/",
                           SECURELINK_SOCKET=d.socket):
        s = SecureLinkStorage()
        url = s.url("private/report 1.pdf")
        assert url.startswith("//files.example.com/media/private/report%201.pdf?token="), url
        assert d.get(url[len("//files.example.com"):]) == (200, body)
        assert s.url("public/x.css") == "//files.example.com/media/public/x.css"


# --- verify gives nginx's verdict for links with dot segments ----------------------


@pytest.mark.parametrize("path", [
    "/media/private/x/../a.pdf",            # 200: $uri is /media/private/a.pdf
    "/media/private/./a.pdf",               # 200
    "/media/private/%2E%2E/private/a.pdf",  # 200, dots written as escapes
    "/media/public/../private/a.pdf",       # 200, into the private prefix
    "/media/private/x/y/../../a.pdf",       # 200
    "/media/private/a.pdf/../b.pdf",        # 403: b.pdf's token is another
    "/media/private/../public/logo.txt",    # 200 without a token: public
    "/../media/private/a.pdf",              # 400: above the root
    "/media/../../media/private/a.pdf",     # 400
])
def test_verify_of_a_link_with_dot_segments_is_nginxs_verdict(make_daemon, path):
    d = make_daemon()
    d.add_file("private/a.pdf", b"a\n")
    d.add_file("private/b.pdf", b"b\n")
    d.add_file("public/logo.txt", b"logo\n")
    signed = d.sign("/media/private/a.pdf", "ttl=600")
    query = signed.split("?", 1)[1]
    url = f"{path}?{query}"
    status = d.status_of(url)
    answer = d.ask(f"VERIFY {url}")
    q = dict(kv.split("=") for kv in query.split("&"))
    expected = {
        200: f"OK valid kid={q['kid']} expires={q['expires']}",
        403: "OK invalid bad token",
    }
    if path.endswith("logo.txt"):
        assert status == 200
        assert answer == "OK public"
    elif status == 400:
        code, message = err(answer)
        assert code == "bad-target" and "nginx answers 400" in message, answer
    else:
        assert status in expected, status
        assert answer == expected[status], (status, answer)
        # securelinkctl verify says the same, with its documented exit status.
        r = subprocess.run([ctl_binary(), "--socket", d.socket, "verify", url],
                           capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stdout.strip()) == \
            ((0, answer[3:]) if status == 200 else (1, answer[3:])), r.stderr


# --- links nginx would answer 414 are refused ----------------------------------------

# nginx 1.22.1 with the default large_client_header_buffers (4 8k) takes a
# request line of at most 8192 bytes with its CRLF: "HEAD <target> HTTP/1.1"
# leaves 8176 for the target, "GET" one more. Checked below with nginx itself.
DEFAULT_MAX_URL = 8176


def raw_status(port, method, target):
    """nginx's status for one request line written exactly as given."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def long_relpath(encoded_len):
    """A path below private/ whose percent-encoded form is encoded_len bytes
    long while its decoded form stays far below PATH_MAX: directories of 200
    spaces (each "%20" three bytes), then a file name of spaces and a few
    'a's to come out exactly."""
    dirs = []
    while encoded_len > 700:
        dirs.append(" " * 200)
        encoded_len -= 601  # 200 x "%20" and the '/'
    t = 3 + encoded_len % 3
    name = " " * ((encoded_len - t) // 3) + "a" * t
    assert len(name) <= 255
    return "/".join(dirs + [name])


def quote(relpath):
    return urllib.parse.quote(relpath, safe="/")


def test_links_longer_than_nginx_takes_are_refused_and_the_longest_is_served(make_daemon):
    d = make_daemon({"links": {"base_url": None}})
    kid = d.status()["active_kid"]
    expires = int(time.time()) + 600
    query_len = len(f"?token={'x' * 22}&expires={expires}&kid={kid}")
    prefix = "/media/private/"

    # The longest link: DEFAULT_MAX_URL bytes, served by nginx to GET and HEAD.
    rel = long_relpath(DEFAULT_MAX_URL - query_len - len(prefix))
    body = d.add_file("private/" + rel, b"the longest link\n")
    link = d.sign(prefix + quote(rel), f"expires={expires}")
    assert len(link) == DEFAULT_MAX_URL
    assert d.get(link) == (200, body)
    assert raw_status(d.port, "HEAD", link) == 200

    # One byte longer: refused with the limit named; nginx would have
    # answered 414 to that link (fetched by HEAD; by GET one byte later).
    rel2 = long_relpath(DEFAULT_MAX_URL + 1 - query_len - len(prefix))
    d.add_file("private/" + rel2, b"one byte too long\n")
    code, message = err(d.ask(f"SIGN {prefix + quote(rel2)} expires={expires}"))
    assert code == "bad-target"
    assert message == (f"the link would be {DEFAULT_MAX_URL + 1} bytes, longer than "
                       f"max_url_length = {DEFAULT_MAX_URL} (nginx answers 414 to a longer "
                       "request line; shorten the target, or raise large_client_header_buffers"
                       " in nginx and max_url_length with it)")
    would_be = prefix + quote(rel2) + link[link.index("?"):]
    assert len(would_be) == DEFAULT_MAX_URL + 1
    assert raw_status(d.port, "HEAD", would_be) == 414
    # GET takes one byte more: nginx reads that line and checks the token
    # (the shorter path's, so 403); one byte more again is 414 for GET too.
    assert raw_status(d.port, "GET", would_be) == 403
    assert raw_status(d.port, "GET", would_be + "&") == 414
    # Public links too.
    public = "/media/public/" + "p" * (DEFAULT_MAX_URL + 1 - len("/media/public/"))
    assert err(d.ask(f"SIGN {public}"))[0] == "bad-target"
    assert d.sign(public[:-1]) == public[:-1]


def test_max_url_length_is_configurable_and_leaves_out_the_origin(make_daemon):
    d = make_daemon({"links": {"max_url_length": "200"}})  # base_url is http://127.0.0.1:PORT
    body = d.add_file("private/a.pdf", b"a\n")
    link = d.sign("/media/private/a.pdf")
    assert link.startswith(d.base_url)
    target = link[len(d.base_url):]
    pad = 200 - len(target)
    rel = "p" * pad + "a.pdf"
    d.add_file("private/" + rel, body)
    link = d.sign("/media/private/" + rel)
    assert len(link) == len(d.base_url) + 200
    assert d.get(link) == (200, body)
    code, message = err(d.ask("SIGN /media/private/x" + rel))
    assert code == "bad-target" and "longer than max_url_length = 200" in message
