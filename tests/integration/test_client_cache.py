# SPDX-License-Identifier: MIT
"""The client-side link cache (issue 17, item 3; docs/client-cache.md),
against the real securelinkd over its socket and a real nginx deciding every
link: with expires_granularity, a path signed again in its window comes from
the process's memory; after `securelinkctl rotate --revoke` returns, no
client, cached or not, forked or threaded, before or after a daemon restart,
hands out a link signed with a revoked key. Which key signed a link is its
kid; whether a link is good is nginx's answer."""

import os
import signal
import threading

import pytest

from ctlsite import run_ctl
from daemonsite import kid_of, make_daemon, query  # noqa: F401
from pyclient_fixture import SOURCE_DIR  # noqa: F401  (puts contrib/python on the path)

import securelink  # noqa: E402

BODY = b"a private file\n"
PATHS = [f"/media/private/f{i}.pdf" for i in range(20)]
GRANULAR = {"links": {"expires_granularity": "5m"}, "keys": {"rotate_every": "1h"}}


def signed_count(d):
    return d.status()["counters"]["signed"]


def site(make_daemon, options=GRANULAR):
    d = make_daemon(options)
    for p in PATHS:
        d.add_file(p[len("/media/"):], BODY)
    return d


def revoke(d):
    """securelinkctl rotate --revoke, as an admin runs it; returns once it
    returned, with the kids it revoked."""
    before = {k["kid"] for k in d.status()["keys"]}
    r = run_ctl("rotate", "--revoke", socket=d.socket)
    assert r.rc == 0, r
    return before


def test_a_repeated_sign_comes_from_memory_and_nginx_serves_it(make_daemon):
    d = site(make_daemon)
    with securelink.Client(socket=d.socket, timeout=1) as c:
        first = [c.sign(p, ttl=60) for p in PATHS]
        n = signed_count(d)
        # The daemon stopped dead: only a hit can answer.
        d.proc.send_signal(signal.SIGSTOP)
        try:
            again = [c.sign(p, ttl=60) for p in PATHS]
        finally:
            d.proc.send_signal(signal.SIGCONT)
        assert again == first
        assert signed_count(d) == n
        for url in first[:3]:
            assert d.status_of(url) == 200
        # A longer lifetime than the cached link still has is asked anew;
        # an explicit expires= is never cached.
        c.sign(PATHS[0], ttl=3000)
        assert signed_count(d) == n + 1


def test_a_cached_link_is_handed_out_only_with_the_lifetime_asked_left(make_daemon,
                                                                      monkeypatch):
    # The link's expires is read from it at its first hit (a miss does not
    # parse it); the client's clock is moved to either side of the last
    # second at which the link still has 60 s left.
    d = site(make_daemon)
    with securelink.Client(socket=d.socket) as c:
        url = c.sign(PATHS[0], ttl=60)
        expires = int(query(url)["expires"])
        n = signed_count(d)
        monkeypatch.setattr(securelink, "_time", lambda: expires - 60)
        assert c.sign(PATHS[0], ttl=60) == url
        assert signed_count(d) == n
        monkeypatch.setattr(securelink, "_time", lambda: expires - 59.5)
        c.sign(PATHS[0], ttl=60)
        assert signed_count(d) == n + 1
        assert d.status_of(url) == 200


def test_a_public_link_is_asked_for_every_time(make_daemon):
    # A public link has no expires: it never comes from memory, also once
    # it has been asked for twice.
    d = site(make_daemon)
    d.add_file("public/a.css", BODY)
    with securelink.Client(socket=d.socket) as c:
        n = signed_count(d)
        urls = [c.sign("/media/public/a.css", ttl=60) for _ in range(3)]
        assert signed_count(d) == n + 3
        assert set(urls) == {urls[0]} and "?" not in urls[0]
        assert d.status_of(urls[0]) == 200


def test_no_granularity_no_cache(make_daemon):
    d = site(make_daemon, {})
    with securelink.Client(socket=d.socket) as c:
        c.sign(PATHS[0], ttl=60)
        n = signed_count(d)
        c.sign(PATHS[0], ttl=60)
        assert signed_count(d) == n + 1


def test_no_revoked_link_after_revoke_returns_threads_and_clients(make_daemon):
    d = site(make_daemon)
    shared = securelink.Client(socket=d.socket)
    clients = [shared, shared, securelink.Client(socket=d.socket)]
    done = threading.Event()   # set once rotate --revoke returned
    stop = threading.Event()
    after = []                 # links from calls begun after it returned
    errors = []

    def worker(c):
        try:
            while not stop.is_set():
                began_after = done.is_set()
                for p in PATHS:
                    url = c.sign(p, ttl=60)
                    if began_after:
                        after.append(url)
        except Exception as e:  # reported by the main thread
            errors.append(e)

    for c in clients:  # every link cached before the revoke
        for p in PATHS:
            c.sign(p, ttl=60)
    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    try:
        revoked = revoke(d)
        done.set()
        while len(after) < 3 * len(PATHS) and not errors:
            threading.Event().wait(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    for c in clients:
        c.close()
    assert not errors, errors
    bad = [u for u in after if int(kid_of(u)) in revoked]
    assert not bad, f"{len(bad)} links of revoked keys {sorted(revoked)} handed out: {bad[:3]}"
    for url in after[:: max(1, len(after) // 5)]:
        assert d.status_of(url) == 200, url


def test_a_forked_child_keeps_the_cache_and_sees_the_revoke(make_daemon):
    d = site(make_daemon)
    c = securelink.Client(socket=d.socket)
    cached = c.sign(PATHS[0], ttl=60)
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_w)
            os.close(out_r)
            before = c.sign(PATHS[0], ttl=60)  # the parent's cache, inherited
            os.read(go_r, 1)                   # the revoke has returned
            after = c.sign(PATHS[0], ttl=60)
            os.write(out_w, f"{before} {after}".encode())
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(out_w)
    revoked = revoke(d)
    os.write(go_w, b"x")
    os.close(go_w)
    with os.fdopen(out_r, "rb") as f:
        before, after = f.read().decode().split()
    assert os.waitpid(pid, 0)[1] == 0
    assert before == cached
    assert int(kid_of(after)) not in revoked
    assert d.status_of(after) == 200
    assert d.status_of(cached) == 403
    # Not asserted: how often the child asked the daemon. Under load the
    # count raced with the child's first call (seen 2 of 6 runs while CI ran
    # beside), and what matters here is which key its links carry; hits
    # without the daemon are the SIGSTOP test's.
    assert int(kid_of(c.sign(PATHS[0], ttl=60))) not in revoked
    c.close()


@pytest.mark.parametrize("how", ["restart", "crash"])
def test_a_restart_keeps_the_page_a_revoke_after_it_still_reaches_the_cache(make_daemon, how):
    d = site(make_daemon)
    with securelink.Client(socket=d.socket) as c:
        cached = c.sign(PATHS[0], ttl=60)
        if how == "restart":
            d.restart()
        else:  # no last words: only the page's file, kept, carries the news
            d.stop(signal.SIGKILL)
            d.start()
        # A revoke by the new process reaches the page this client mapped
        # from the old one.
        revoked = revoke(d)
        assert int(kid_of(cached)) in revoked
        url = c.sign(PATHS[0], ttl=60)
        assert int(kid_of(url)) not in revoked
        assert d.status_of(url) == 200
        assert d.status_of(cached) == 403


def test_django_storage_serves_from_the_cache_and_drops_it_at_a_revoke(make_daemon):
    django = pytest.importorskip("django")
    from django.conf import settings
    if not settings.configured:
        settings.configure(MEDIA_ROOT="/nonexistent", MEDIA_URL="/media/", USE_TZ=True)
        django.setup()
    from securelink.django import SecureLinkStorage
    d = site(make_daemon)
    s = SecureLinkStorage(socket=d.socket, base_url="/media/", expires_seconds=60)
    names = [p[len("/media/"):] for p in PATHS]
    first = [s.url(n) for n in names] + [s.pre_sign_url(PATHS[0], 60)]
    n = signed_count(d)
    assert [s.url(n) for n in names] + [s.pre_sign_url(PATHS[0], 60)] == first
    assert signed_count(d) == n
    for url in first[:3]:
        assert d.status_of(d.base_url + url if url.startswith("/") else url) == 200
    revoked = revoke(d)
    again = [s.url(n) for n in names]
    assert not [u for u in again if int(kid_of(u)) in revoked]
    assert d.status_of(again[0] if "://" in again[0] else d.base_url + again[0]) == 200


# libsecurelink-client: the same cache, driven through a small program


class CTool:
    """tests/integration/client-cache-tool.c over one connection."""

    def __init__(self, d):
        from daemonsite import build_dir
        import subprocess
        path = os.path.join(build_dir(), "tests", "integration", "securelink-client-cache-tool")
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: ninja -C BUILD")
        self.p = subprocess.Popen([path, d.socket], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        assert answer, f"no answer to {line!r}"
        return answer

    def sign(self, path, ttl=60):
        url = self.ask(f"sign {path} {ttl}")
        assert url.startswith("http"), url
        return url

    def close(self):
        self.p.stdin.close()
        self.p.wait(30)


def test_c_library_caches_only_when_the_daemon_rounds(make_daemon):
    d = site(make_daemon, {})
    t = CTool(d)
    try:
        assert t.ask("cache") == "0"
        t.sign(PATHS[0])
        n = signed_count(d)
        t.sign(PATHS[0])
        assert signed_count(d) == n + 1
    finally:
        t.close()


def test_c_library_cache_hits_from_memory_forks_and_drops_revoked_links(make_daemon):
    d = site(make_daemon)
    t = CTool(d)
    try:
        assert t.ask("cache") == "1"
        first = t.sign(PATHS[0])
        n = signed_count(d)
        d.proc.send_signal(signal.SIGSTOP)  # only a hit can answer now
        try:
            assert t.sign(PATHS[0]) == first
        finally:
            d.proc.send_signal(signal.SIGCONT)
        assert signed_count(d) == n
        assert d.status_of(first) == 200
        # The child has the parent's cache and page.
        assert t.ask("fork") == "forked"
        assert t.sign(PATHS[0]) == first
        assert signed_count(d) == n
        revoked = revoke(d)
        url = t.sign(PATHS[0])
        assert int(kid_of(url)) not in revoked
        assert d.status_of(url) == 200
        assert d.status_of(first) == 403
        assert signed_count(d) == n + 1
    finally:
        t.close()
