# SPDX-License-Identifier: MIT
"""[links] algorithm = hmac-sha256 (issue 20): links checked by Debian's
nginx with its njs module (securelink.js), their tokens checked against
Python's hmac module by the formula in DESIGN.md (never our own output),
nginx's verdicts (200/403/410) and VERIFY's."""

import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import pytest

from daemonsite import make_daemon  # noqa: F401 (a fixture)
from grantsite import fetch
from nginxsite import NJS_MODULE



@pytest.fixture(autouse=True)
def njs_module():
    """Not a skip: without the module every test here would prove nothing."""
    assert os.path.exists(NJS_MODULE), \
        "libnginx-mod-http-js is not installed (scripts/bootstrap installs it)"

HMAC = {"links": {"algorithm": "hmac-sha256"}}
LINK = re.compile(r"^(?P<origin>https?://[^/]+)?(?P<path>/[^?]*)\?token=(?P<token>[^&]+)"
                  r"&expires=(?P<expires>\d+)&kid=(?P<kid>\d+)$")


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hmac_token(kind, expires, path, secret, ip=None):
    """DESIGN.md: base64url(HMAC-SHA256(secret, kind NUL expires NUL path
    [NUL ip])), path the decoded bytes."""
    if isinstance(path, str):
        path = path.encode()
    msg = kind.encode() + b"\0" + str(expires).encode() + b"\0" + path
    if ip is not None:
        msg += b"\0" + ip.encode()
    return b64url(hmac.new(secret.encode(), msg, hashlib.sha256).digest())


def md5_token(expires, path, secret):
    return b64url(hashlib.md5(f"{expires}{path} {secret}".encode()).digest())


def parts(url):
    m = LINK.match(url)
    assert m, url
    return m


def link(path, token, expires, kid=None):
    q = f"?token={token}&expires={expires}"
    return urllib.parse.quote(path) + q + (f"&kid={kid}" if kid is not None else "")


@pytest.fixture
def d(make_daemon):
    d = make_daemon(HMAC)
    d.add_file("private/café/a.pdf", b"a pdf")
    d.add_file("private/b.pdf", b"b pdf")
    d.wait_active()
    return d


def test_token_is_python_hmac_and_nginx_serves_it(d):
    url = d.sign("/media/private/caf%C3%A9/a.pdf", "ttl=600")
    m = parts(url)
    assert len(m["token"]) == 43
    secret = d.keys()[1][int(m["kid"])]
    assert m["token"] == hmac_token("file", m["expires"], "/media/private/café/a.pdf", secret)
    assert d.get(url[len(d.base_url):]) == (200, b"a pdf")
    v = d.ask(f"VERIFY {url}")
    assert v == f"OK valid kid={m['kid']} expires={m['expires']}", v
    d.assert_no_secret_leaked()
    # The module holds no secret: the key reaches it through the keys map.
    with open(os.path.join(os.path.dirname(d.locations_file), "securelink.js")) as f:
        js = f.read()
    for s in d.keys()[1].values():
        assert s not in js


def test_tampered_links_get_403(d):
    url = d.sign("/media/private/b.pdf", "ttl=600")
    m = parts(url)
    path = m["path"]
    t = m["token"]
    flipped = t[:10] + ("A" if t[10] != "A" else "B") + t[11:]
    bad = [
        link("/media/private/café/a.pdf", t, m["expires"], m["kid"]),  # another file
        link(path, flipped, m["expires"], m["kid"]),
        link(path, t, int(m["expires"]) + 1, m["kid"]),
        link(path, t[:-1], m["expires"], m["kid"]),  # 42 digits: not an HMAC token
        link(path, t + "A", m["expires"], m["kid"]),
        link(path, t, "0" + m["expires"], m["kid"]),
        path,
    ]
    for u in bad:
        assert d.status_of(u) == 403, u
        v = d.ask(f"VERIFY {u}")
        assert v.startswith("OK invalid"), (u, v)
    # A grant's token is never a file's (the kind is hashed).
    secret = d.keys()[1][int(m["kid"])]
    g = hmac_token("grant", m["expires"], path, secret)
    assert d.status_of(link(path, g, m["expires"], m["kid"])) == 403
    assert d.status_of(url[len(d.base_url):]) == 200


def test_expired_link_gets_410(d):
    default, secrets = d.keys()
    kid = max(secrets)
    expires = int(time.time()) - 100
    u = link("/media/private/b.pdf", hmac_token("file", expires, "/media/private/b.pdf",
                                                secrets[kid]), expires, kid)
    assert d.status_of(u) == 410
    assert d.ask(f"VERIFY {u}") == f"OK expired kid={kid} expires={expires}"


def test_unknown_kid_uses_a_real_key_never_an_empty_one(d):
    default, secrets = d.keys()
    expires = int(time.time()) + 600
    p = "/media/private/b.pdf"
    for kid in (999, None, ""):
        for key in ("", "x"):
            u = link(p, hmac_token("file", expires, p, key), expires, kid)
            assert d.status_of(u) == 403, (kid, key)
            assert d.ask(f"VERIFY {u}").startswith("OK invalid"), (kid, key)
    # As with md5: an unknown kid is checked against the default key.
    u = link(p, hmac_token("file", expires, p, default), expires, 999)
    assert d.status_of(u) == 200


def test_md5_links_are_refused_by_an_hmac_site(d):
    default, secrets = d.keys()
    kid = max(secrets)
    expires = int(time.time()) + 600
    p = "/media/private/b.pdf"
    u = link(p, md5_token(expires, p, secrets[kid]), expires, kid)
    assert d.status_of(u) == 403
    assert d.ask(f"VERIFY {u}").startswith("OK invalid")


def test_ip_binding(make_daemon):
    d = make_daemon({"links": {"algorithm": "hmac-sha256", "bind_ip": "yes"}})
    d.add_file("private/b.pdf", b"b pdf")
    d.wait_active()
    url = d.sign("/media/private/b.pdf", "ip=127.0.0.1")
    m = parts(url)
    secret = d.keys()[1][int(m["kid"])]
    assert m["token"] == hmac_token("file", m["expires"], "/media/private/b.pdf", secret,
                                    "127.0.0.1")
    assert d.get(url[len(d.base_url):]) == (200, b"b pdf")
    assert d.ask(f"VERIFY {url} ip=127.0.0.1").startswith("OK valid")
    other = d.sign("/media/private/b.pdf", "ip=10.1.2.3")
    assert d.status_of(other[len(d.base_url):]) == 403
    assert d.ask(f"VERIFY {other} ip=127.0.0.1").startswith("OK invalid")


def test_rotation_and_revoke(d):
    old = d.sign("/media/private/b.pdf")
    d.rotate()
    d.wait_active()
    new = d.sign("/media/private/b.pdf")
    assert parts(old)["kid"] != parts(new)["kid"]
    assert d.status_of(old[len(d.base_url):]) == 200
    assert d.status_of(new[len(d.base_url):]) == 200
    d.rotate(revoke=True)
    d.wait_active()
    assert d.status_of(old[len(d.base_url):]) == 403
    assert d.status_of(new[len(d.base_url):]) == 403
    assert d.status_of(d.sign("/media/private/b.pdf")[len(d.base_url):]) == 200


NJS_CASES = """
import sl from 'securelink.js';
var n = 0;
function check(a, b, want) {
    n++;
    if (sl.equal(Buffer.from(a), Buffer.from(b)) !== want)
        throw Error('equal(' + JSON.stringify(a) + ', ' + JSON.stringify(b) + ') != ' + want);
}
check('abc', 'abc', true);
check('abc', 'abd', false);
check('xbc', 'abc', false);
check('abc', 'ab', false);
check('ab', 'abc', false);
check('ab\\u0000', 'ab', false);
check('ab', 'ab\\u0000', false);
check('', '', true);
check('', 'a', false);
check('a', '', false);
var t = 'to6lMmR_SfWYQMm9HrRBd4KmCnNBG5aANqXw8MJWiww';
check(t, t, true);
check(t, t.slice(0, 42) + 'x', false);
check(t, t.slice(0, 22), false);
console.log('passed ' + n);
"""


def test_njs_constant_time_equal(d, tmp_path):
    """securelink.js's hand-written comparison, run by the njs CLI on the
    file securelinkd wrote: equal and unequal contents and lengths."""
    njs = shutil.which("njs")
    assert njs, "the njs CLI is missing (scripts/bootstrap installs the package njs)"
    shutil.copy(os.path.join(os.path.dirname(d.locations_file), "securelink.js"), tmp_path)
    (tmp_path / "cases.js").write_text(NJS_CASES)
    p = subprocess.run([njs, "-p", str(tmp_path), str(tmp_path / "cases.js")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "passed 13" in p.stdout, p.stdout + p.stderr


class Traffic:
    """Signs a link and fetches every link signed so far that is still live
    (expires at least 1s ahead), over and over, in a thread: what an
    application and its users do while the algorithm switches. Counts the
    answers by algorithm (the token's length) and status."""

    def __init__(self, d):
        import threading
        self.d = d
        self.links = []  # (path and query, expires)
        self.counts = {}
        self.bad = []
        self.error = None
        self.cond = threading.Condition()
        self.stopping = False
        self.hold = self.held = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            while not self.stopping:
                with self.cond:
                    while self.hold:
                        self.held = True
                        self.cond.notify_all()
                        self.cond.wait()
                    self.held = False
                url = self.d.sign("/media/private/b.pdf")
                m = parts(url)
                self.links.append((url[len(self.d.base_url):], int(m["expires"])))
                for u, e in list(self.links):
                    if e < time.time() + 1:
                        continue
                    status = self.d.status_of(u)
                    alg = "hmac" if len(parts(u)["token"]) == 43 else "md5"
                    with self.cond:
                        self.counts[(alg, status)] = self.counts.get((alg, status), 0) + 1
                        if status != 200:
                            self.bad.append((u, status))
                        self.cond.notify_all()
        except Exception as e:  # noqa: BLE001 (reported by stop())
            self.error = e
            with self.cond:
                self.cond.notify_all()

    def snapshot(self):
        """The counts so far, for wait_for(since=...)."""
        with self.cond:
            return dict(self.counts)

    def wait_for(self, alg, n=20, since=None):
        """Returns once n fetches of links of alg got 200 (after the
        snapshot since, if given: the counts of a whole test are in the
        thousands)."""
        base = (since or {}).get((alg, 200), 0)
        with self.cond:
            assert self.cond.wait_for(
                lambda: self.error or self.bad or self.counts.get((alg, 200), 0) >= base + n,
                timeout=60), (alg, n, since, self.counts)
        assert not self.error, self.error
        assert not self.bad, (self.bad[:5], self.counts)

    def pause(self):
        """Returns once the thread waits between two rounds (the daemon
        can restart)."""
        with self.cond:
            self.hold = True
            assert self.cond.wait_for(lambda: self.held or self.error, timeout=60)
        assert not self.error, self.error

    def resume(self):
        with self.cond:
            self.hold = False
            self.cond.notify_all()

    def stop(self):
        self.stopping = True
        self.resume()
        self.thread.join(60)
        assert not self.error, self.error
        return self.counts


def checked(st):
    return st["links"]["checked"]


def test_switch_md5_to_hmac_to_md5_breaks_no_live_link(make_daemon):
    # max_link_ttl bounds how long links of the algorithm switched from
    # live: long enough for a reload and a restart after each switch.
    d = make_daemon({"njs": True,
                     "keys": {"max_link_ttl": "12s", "default_link_ttl": "12s",
                              "clock_skew": "1s"}})
    d.add_file("private/b.pdf", b"b pdf")
    d.add_file("private/videos/42/master.m3u8", b"#EXTM3U\n")
    d.wait_active()
    st = d.status()
    assert st["links"] == {"algorithm": "md5", "checked": ["md5"], "previous_until": None}
    grants = {"md5": (d.sign(GRANT_DIR, "grant=path")[len(d.base_url):],
                      d.sign(GRANT_DIR, "grant=cookie").split(";")[0].partition("=")[2])}

    def switched(alg):
        """After a SIGHUP to alg: signing uses it and nginx has every
        snippet that follows (STATUS nginx.pending: no reload to come)."""
        return d.wait_status(lambda s: s["links"]["algorithm"] == alg
                             and not s["nginx"]["pending"] and s["nginx"]["ok"],
                             what=f"{alg} signing, nginx reloaded")

    def restart_keeps_state(t):
        """A restart reads the switch back from the state file: the same
        algorithms checked until the same time (no file would make it
        assume md5 links live from now on)."""
        before = d.status()["links"]
        # Past the switch's second: a restart that took its own
        # now as the switch's time would then show a later previous_until
        # (whole seconds). No event says the clock moved on.
        time.sleep(max(0.0, before["previous_until"] - 13 + 0.2 - time.time()))
        t.pause()
        d.restart()
        t.resume()
        after = d.status()["links"]
        assert after == before, (before, after)
        return t.snapshot()

    t = Traffic(d)
    try:
        t.wait_for("md5")
        d.set_option("links", "algorithm", "hmac-sha256")
        d.sighup()
        st = switched("hmac-sha256")
        since = t.snapshot()
        assert checked(st) == ["md5", "hmac-sha256"]
        assert st["links"]["previous_until"] >= time.time() + 12 - 2
        # nginx as reloaded for the switch passes links of both.
        t.wait_for("hmac", 20, since)
        t.wait_for("md5", 20, since)
        grants["hmac"] = (d.sign(GRANT_DIR, "grant=path")[len(d.base_url):],
                          d.sign(GRANT_DIR, "grant=cookie").split(";")[0].partition("=")[2])
        assert len(grants["hmac"][1].split(".")[3]) == 43
        for base, cookie in grants.values():
            assert d.get(base + "master.m3u8") == (200, b"#EXTM3U\n")
            assert fetch(d.port, GRANT_DIR + "master.m3u8", cookie)[0] == 200
        since = restart_keeps_state(t)
        t.wait_for("hmac", 20, since)

        d.set_option("links", "algorithm", "md5")
        d.sighup()
        st = switched("md5")
        since = t.snapshot()
        assert checked(st) == ["md5", "hmac-sha256"]
        # The hmac links signed before the switch still live, and nginx
        # as reloaded after it (the last reload of the switch) passes them.
        t.wait_for("hmac", 20, since)
        t.wait_for("md5", 20, since)
        for base, cookie in grants.values():
            assert d.get(base + "master.m3u8") == (200, b"#EXTM3U\n")
            assert fetch(d.port, GRANT_DIR + "master.m3u8", cookie)[0] == 200
        since = restart_keeps_state(t)
        assert checked(d.status()) == ["md5", "hmac-sha256"]
        t.wait_for("md5", 20, since)
    finally:
        counts = t.stop()
    assert not t.bad, (t.bad[:5], counts)

    # Once the last hmac link has expired, nginx checks md5 only: an hmac
    # token (made here with Python's hmac) is refused, njs is not loaded.
    # previous_until goes when the daemon's timer drops the check (and
    # starts the reload); checked follows the clock a moment earlier.
    st = d.wait_status(lambda s: s["links"]["previous_until"] is None
                       and not s["nginx"]["pending"], timeout=30, what="the hmac check removed")
    assert checked(st) == ["md5"]
    default, secrets = d.keys()
    kid = max(secrets)
    expires = int(time.time()) + 600
    p = "/media/private/b.pdf"
    u = link(p, hmac_token("file", expires, p, secrets[kid]), expires, kid)
    assert d.status_of(u) == 403
    assert d.ask(f"VERIFY {u}").startswith("OK invalid")
    with open(d.keys_file) as f:
        assert "js_import" not in f.read()
    u = link(p, md5_token(expires, p, secrets[kid]), expires, kid)
    assert d.status_of(u) == 200


@pytest.mark.parametrize("old,new", [("md5", "hmac-sha256"), ("hmac-sha256", "md5")])
def test_switch_by_restart_breaks_no_link(make_daemon, old, new):
    """DESIGN.md: a restart is a way to switch too. nginx runs the snippets
    of the old algorithm until the start's reload: links are signed in the
    new one only once nginx checks it, never from READY=1 on."""
    d = make_daemon({"njs": True, "links": {"algorithm": old},
                     "keys": {"max_link_ttl": "30s", "default_link_ttl": "30s"}})
    d.add_file("private/b.pdf", b"b pdf")
    d.wait_active()
    short = {"md5": "md5", "hmac-sha256": "hmac"}
    t = Traffic(d)
    try:
        t.wait_for(short[old])
        d.set_option("links", "algorithm", new)
        t.pause()
        assert d.stop() == 0
        mark = d.notify_mark()
        d.spawn()
        d.wait_notify("READY=1", after=mark)
        # Signs and fetches from READY=1 on, while the start's reload runs.
        t.resume()
        st = d.wait_status(lambda s: s["links"]["algorithm"] == new
                           and not s["nginx"]["pending"] and s["nginx"]["ok"],
                           what=f"{new} signing, nginx reloaded")
        assert checked(st) == ["md5", "hmac-sha256"]
        since = t.snapshot()
        t.wait_for(short[new], 20, since)
        t.wait_for(short[old], 20, since)
    finally:
        counts = t.stop()
    assert not t.bad, (t.bad[:5], counts)


def test_sighup_lowering_max_link_ttl_keeps_checking_old_links(make_daemon):
    """A SIGHUP that switches the algorithm and lowers max_link_ttl: links
    of the old one were signed under the old max_link_ttl, and nginx checks
    them until the last one has expired."""
    d = make_daemon({"njs": True, "keys": {"max_link_ttl": "60s", "default_link_ttl": "60s",
                                           "clock_skew": "1s"}})
    d.add_file("private/b.pdf", b"b pdf")
    d.wait_active()
    u = d.sign("/media/private/b.pdf")
    expires = int(parts(u)["expires"])
    d.set_option("keys", "max_link_ttl", "5s")
    d.set_option("keys", "default_link_ttl", "5s")
    d.set_option("links", "algorithm", "hmac-sha256")
    d.sighup()
    st = d.wait_status(lambda s: s["links"]["algorithm"] == "hmac-sha256"
                       and not s["nginx"]["pending"], what="hmac-sha256 signing")
    assert checked(st) == ["md5", "hmac-sha256"]
    # nginx may lag by clock_skew: checked at least a second past expires.
    assert st["links"]["previous_until"] >= expires + 1, (st["links"], expires)
    assert d.status_of(u[len(d.base_url):]) == 200


@pytest.mark.parametrize("text", [b"sha1\n", b"hmac-sha256\nmd5 12x\n", b"\0" * 300])
def test_corrupt_algorithm_state_keeps_checking_the_other(make_daemon, text):
    """A state file that cannot be read says nothing of which algorithm
    signed before: nginx checks the one not configured too, for
    max_link_ttl + clock_skew, so live hmac links of an hmac site switched
    to md5 keep passing."""
    d = make_daemon({"njs": True, "links": {"algorithm": "hmac-sha256"},
                     "keys": {"max_link_ttl": "30s", "default_link_ttl": "30s",
                              "clock_skew": "1s"}})
    d.add_file("private/b.pdf", b"b pdf")
    d.wait_active()
    u = d.sign("/media/private/b.pdf")[len(d.base_url):]
    assert len(parts(u)["token"]) == 43
    assert d.stop() == 0
    path = os.path.join(d.state, "link-algorithm")
    with open(path, "wb") as f:
        f.write(text)
    d.set_option("links", "algorithm", "md5")
    t0 = time.time()
    d.start()
    st = d.status()
    assert checked(st) == ["md5", "hmac-sha256"], st["links"]
    assert st["links"]["algorithm"] == "md5"
    assert st["links"]["previous_until"] >= int(t0) + 31, st["links"]
    assert d.status_of(u) == 200
    assert f"Failed to read {path}" in d.log_text()
    # Rewritten: a restart keeps the same state.
    d.restart()
    assert d.status()["links"] == st["links"]


def test_corrupt_algorithm_state_without_njs_checks_md5_only(make_daemon):
    """An md5 site whose nginx cannot load njs has never checked an hmac
    link: an unreadable state file adds no hmac check there (nginx -t
    would refuse its js_import, and no key would be published until
    max_link_ttl + clock_skew had passed)."""
    d = make_daemon({"njs": False})
    d.add_file("private/b.pdf", b"b pdf")
    d.wait_active()
    assert d.stop() == 0
    path = os.path.join(d.state, "link-algorithm")
    with open(path, "wb") as f:
        f.write(b"sha1\n")
    d.start()
    st = d.status()
    assert st["nginx"]["ok"], st["nginx"]
    assert st["links"] == {"algorithm": "md5", "checked": ["md5"], "previous_until": None}
    assert f"Failed to read {path}" in d.log_text()
    assert d.status_of(d.sign("/media/private/b.pdf")[len(d.base_url):]) == 200
    assert d.rotate() > 1


GRANT_DIR = "/media/private/videos/42/"
PATH_GRANT = re.compile(r"^(?P<origin>https?://[^/]+)/media/_grant/(?P<kid>\d+)/(?P<expires>\d+)/"
                        r"(?P<token>[A-Za-z0-9_-]+)/(?P<depth>\d+)(?P<dir>/.*/)$")


@pytest.fixture
def g(make_daemon):
    d = make_daemon(HMAC)
    d.add_file("private/videos/42/master.m3u8", b"#EXTM3U\n")
    d.add_file("private/videos/42/v0/seg1.ts", b"segment")
    d.add_file("private/videos/420/x.ts", b"sibling")
    d.wait_active()
    return d


def test_path_grant(g):
    answer = g.sign(GRANT_DIR, "grant=path", "ttl=600")
    m = PATH_GRANT.match(answer)
    assert m, answer
    secret = g.keys()[1][int(m["kid"])]
    assert m["token"] == hmac_token("grant", m["expires"], GRANT_DIR, secret)
    base = answer[len(g.base_url):]
    assert g.get(base + "master.m3u8") == (200, b"#EXTM3U\n")
    assert g.get(base + "v0/seg1.ts") == (200, b"segment")
    assert g.status_of(base.replace("/42/", "/420/") + "x.ts") == 403
    assert g.ask(f"VERIFY {answer}v0/seg1.ts") == \
        f"OK valid kid={m['kid']} expires={m['expires']}"
    # Tampered: the token of a file link for the same path is no grant's.
    t = m["token"]
    bad = base.replace(t, t[:5] + ("A" if t[5] != "A" else "B") + t[6:])
    assert g.status_of(bad + "master.m3u8") == 403
    assert g.ask(f"VERIFY {g.base_url}{bad}master.m3u8").startswith("OK invalid")
    file_token = hmac_token("file", m["expires"], GRANT_DIR, secret)
    assert g.status_of(base.replace(t, file_token) + "master.m3u8") == 403
    # Expired: a grant Python signs with a past expiry.
    e = int(time.time()) - 100
    old = base.replace(f"/{m['expires']}/{t}/",
                       f"/{e}/{hmac_token('grant', e, GRANT_DIR, secret)}/")
    assert g.status_of(old + "master.m3u8") == 410
    assert g.ask(f"VERIFY {g.base_url}{old}master.m3u8").startswith("OK expired")


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_the_last_digits_spare_bits_count_nowhere(d):
    # 43 digits carry 258 bits for the HMAC's 256: nginx (securelink.js)
    # compares the decoded bytes, as it does md5 tokens, so the 2 spare
    # bits of the last digit change nothing, and VERIFY says what nginx
    # does. A digit whose 4 bits differ is refused by both.
    url = d.sign("/media/private/b.pdf", "ttl=600")
    m = parts(url)
    t = m["token"]
    last = B64URL.index(t[-1])
    assert last & 3 == 0, t
    spare = link(m["path"], t[:-1] + B64URL[last | 3], m["expires"], m["kid"])
    assert d.status_of(spare) == 200
    assert d.ask(f"VERIFY {spare}").startswith("OK valid")
    other = link(m["path"], t[:-1] + B64URL[last ^ 4], m["expires"], m["kid"])
    assert d.status_of(other) == 403
    assert d.ask(f"VERIFY {other}").startswith("OK invalid")


def test_cookie_grant(g):
    answer = g.sign(GRANT_DIR, "grant=cookie", "ttl=600")
    value = answer.split(";")[0].partition("=")[2]
    kid, expires, depth, token = value.split(".")
    assert token == hmac_token("grant", expires, GRANT_DIR, g.keys()[1][int(kid)])
    assert fetch(g.port, GRANT_DIR + "v0/seg1.ts", value) == (200, b"segment")
    assert fetch(g.port, "/media/private/videos/420/x.ts", value)[0] == 403
    assert g.status_of(GRANT_DIR + "v0/seg1.ts") == 403
    assert g.ask(f"VERIFY {GRANT_DIR}v0/seg1.ts cookie={value}") == \
        f"OK valid kid={kid} expires={expires}"
    # A digit that carries 6 bits of the HMAC: the last carries 4 and 2
    # spare ones (see test_the_last_digits_spare_bits_count_nowhere).
    t = len(value) - len(token)
    bad = value[:t] + ("A" if token[0] != "A" else "B") + value[t + 1:]
    assert fetch(g.port, GRANT_DIR + "v0/seg1.ts", bad)[0] == 403
    assert g.ask(f"VERIFY {GRANT_DIR}v0/seg1.ts cookie={bad}").startswith("OK invalid")


def test_grants_under_ip_binding(make_daemon):
    d = make_daemon({"links": {"algorithm": "hmac-sha256", "bind_ip": "yes"}})
    d.add_file("private/videos/42/master.m3u8", b"#EXTM3U\n")
    d.wait_active()
    answer = d.sign(GRANT_DIR, "grant=path", "ip=127.0.0.1")
    m = PATH_GRANT.match(answer)
    assert m["token"] == hmac_token("grant", m["expires"], GRANT_DIR,
                                    d.keys()[1][int(m["kid"])], "127.0.0.1")
    assert d.get(answer[len(d.base_url):] + "master.m3u8") == (200, b"#EXTM3U\n")
    other = d.sign(GRANT_DIR, "grant=cookie", "ip=10.1.2.3").split(";")[0].partition("=")[2]
    assert fetch(d.port, GRANT_DIR + "master.m3u8", other)[0] == 403


def check_config(d):
    from daemonsite import daemon_binary
    return subprocess.run([daemon_binary(), "-c", d.conf, "--check-config"],
                          capture_output=True, text=True, timeout=30)


def test_hmac_is_refused_when_nginx_lacks_njs(make_daemon):
    """Start-up, --check-config and SIGHUP refuse hmac-sha256 when the nginx
    configuration test_command names does not load the njs module."""
    d = make_daemon({"links": {"algorithm": "hmac-sha256"}, "njs": False}, start=False)
    d.njs = False
    d.write_nginx_conf()
    r = check_config(d)
    assert r.returncode != 0, r.stdout
    assert "libnginx-mod-http-js" in r.stderr and d.nginx_conf in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    p = d.spawn()
    assert p.wait(30) != 0
    assert "libnginx-mod-http-js" in d.log_text()

    # Loaded from a file the main configuration includes at its top level,
    # as Debian's modules-enabled/ does: accepted.
    mods = os.path.join(d.dir, "modules-enabled")
    os.makedirs(mods)
    with open(os.path.join(mods, "50-mod-http-js.conf"), "w") as f:
        f.write(f'load_module "{NJS_MODULE}"; # as Debian writes it\n')
    with open(d.nginx_conf) as f:
        text = f.read()
    with open(d.nginx_conf, "w") as f:
        f.write(f"include {mods}/*.conf;\n" + text)
    r = check_config(d)
    assert r.returncode == 0, r.stderr


def test_sighup_to_hmac_without_njs_keeps_md5(make_daemon):
    d = make_daemon()
    d.add_file("private/b.pdf", b"b pdf")
    d.set_option("links", "algorithm", "hmac-sha256")
    d.sighup()
    assert "libnginx-mod-http-js" in d.log_text()
    st = d.status()
    assert st["links"]["algorithm"] == "md5" and checked(st) == ["md5"]
    url = d.sign("/media/private/b.pdf")
    assert len(parts(url)["token"]) == 22
    assert d.status_of(url[len(d.base_url):]) == 200


def test_securelinkctl_verify_checks_both_algorithms(make_daemon):
    """securelinkctl passes links through: VERIFY judges each by its own
    algorithm while nginx checks both (here after a switch to hmac)."""
    from ctlsite import run_ctl
    d = make_daemon({"njs": True})
    d.add_file("private/b.pdf", b"b pdf")
    md5_url = d.sign("/media/private/b.pdf")
    d.set_option("links", "algorithm", "hmac-sha256")
    d.sighup()
    d.wait_status(lambda s: s["links"]["algorithm"] == "hmac-sha256", what="hmac signing")
    hmac_url = d.sign("/media/private/b.pdf")
    assert len(parts(hmac_url)["token"]) == 43
    for url in (md5_url, hmac_url):
        assert d.status_of(url[len(d.base_url):]) == 200
        r = run_ctl("verify", url, socket=d.socket)
        assert r.rc == 0, r
        m = parts(url)
        bad = url.replace(m["token"], m["token"][::-1])
        r = run_ctl("verify", bad, socket=d.socket)
        assert r.rc == 1, r


def test_probes_check_hmac_links(make_daemon):
    """The enforcement probe signs its link in the algorithm nginx is to
    check: a rotation on an hmac-sha256 site activates its key, and the site
    is reported enforcing."""
    from test_probes import ProbedDaemon, probed
    from daemonsite import close_daemon, open_daemon
    d = open_daemon({"links": {"algorithm": "hmac-sha256"}}, cls=ProbedDaemon)
    try:
        st = probed(d)
        assert st["nginx"]["enforcing"] is True and st["nginx"]["ok"], st
        assert st["active_kid"] == max(k["kid"] for k in st["keys"]) or \
            d.wait_status(lambda s: s["active_kid"] == max(k["kid"] for k in s["keys"]))
    finally:
        errors = close_daemon(d)
        assert not errors, errors
