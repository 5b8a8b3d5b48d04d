# SPDX-License-Identifier: MIT
"""contrib/python/securelink: the stdlib client and the Django storage.

First against a fake daemon in a thread (framing, pipelining, errors,
reconnects), then against the real securelinkd and a real nginx that
fetches the links."""

import json
import os
import socket
import tempfile
import threading
import time
import urllib.parse

import pytest

from daemonsite import close_daemon, open_daemon, require_binaries
from pyclient_fixture import FakeDaemon, echo_handler
import clientvectors

import securelink  # noqa: E402  (path set up by pyclient_fixture)


@pytest.fixture
def tmpdir_short():
    # Unix socket paths are limited to 107 bytes: keep them short.
    d = tempfile.mkdtemp(prefix="slpy-")
    yield d
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


@pytest.fixture
def fake(tmpdir_short):
    """make(handler) starts a fake daemon; returns (daemon, client)."""
    made = []

    def make(handler=echo_handler, timeout=5.0):
        d = FakeDaemon(os.path.join(tmpdir_short, "fake.sock"), handler)
        made.append(d)
        c = securelink.Client(socket=d.path, timeout=timeout, cache=False)
        made.append(c)
        return d, c

    yield make
    for x in reversed(made):
        x.close()


# framing


def test_sign_sends_one_line_and_returns_the_url(fake):
    d, c = fake()
    assert c.sign("/media/private/a.pdf") == "/media/private/a.pdf?token=t&expires=1&kid=1"
    assert d.lines == ["SIGN /media/private/a.pdf"]


def test_sign_options_are_sent_as_documented(fake):
    d, c = fake()
    c.sign("/m/a", ttl=60)
    c.sign("/m/b", expires=1700000000, ip="10.0.0.1")
    assert d.lines == ["SIGN /m/a ttl=60", "SIGN /m/b expires=1700000000 ip=10.0.0.1"]


def test_sign_percent_encodes_space_and_control_bytes_keeps_utf8_and_escapes(fake):
    d, c = fake()
    c.sign("/media/a b\tc\x7f/é+;%41.pdf")
    assert d.lines == ["SIGN /media/a%20b%09c%7F/é+;%41.pdf"]


def test_ttl_and_expires_together_are_refused_before_sending(fake):
    d, c = fake()
    with pytest.raises(ValueError):
        c.sign("/m/a", ttl=1, expires=2)
    with pytest.raises(ValueError):  # the first mistake named, also with a bad path
        c.sign(b"/m/a", ttl=1, expires=2)
    with pytest.raises(TypeError):
        c.sign("/m/a", ttl="60")
    with pytest.raises(TypeError):
        c.sign("/m/a", ttl=True)
    assert d.lines == []


@pytest.mark.parametrize("ip", ["10.0.0.1 ttl=5", "", "1.2.3.4\n", "::1\x00"])
def test_ip_that_would_break_framing_is_bad_ip_before_sending(fake, ip):
    d, c = fake()
    with pytest.raises(securelink.Error) as e:
        c.sign("/m/a", ip=ip)
    assert e.value.code == "bad-ip"
    assert d.lines == []


def test_overlong_line_is_refused_before_sending_and_connection_stays(fake):
    d, c = fake()
    assert c.ping()
    with pytest.raises(securelink.Error) as e:
        c.sign("/" + "a" * 8200)
    assert e.value.code == "line-too-long"
    # The longest line that fits: "SIGN " + path + LF == 8192 bytes.
    c.sign("/" + "a" * (8192 - 6 - 1))
    assert len(d.conns) == 1
    assert [len(x) for x in d.lines] == [4, 8191]


# errors


def test_err_answer_raises_error_with_the_daemons_code(fake):
    d, c = fake(lambda line: "ERR bad-target a query string is not part of a target")
    with pytest.raises(securelink.Error) as e:
        c.sign("/m/a?x")
    assert e.value.code == "bad-target"
    assert e.value.message == "a query string is not part of a target"
    assert str(e.value) == "bad-target: a query string is not part of a target"


def test_err_answer_leaves_the_connection_usable(fake):
    d, c = fake(lambda line: "ERR bad-ttl ttl must be positive" if "ttl=0" in line
                else echo_handler(line))
    with pytest.raises(securelink.Error) as e:
        c.sign("/m/a", ttl=0)
    assert e.value.code == "bad-ttl"
    assert c.sign("/m/b").startswith("/m/b?")
    assert len(d.conns) == 1


def test_garbage_answer_is_a_protocol_error_and_drops_the_connection(fake):
    d, c = fake(lambda line: "HELLO" if line == "PING" else echo_handler(line))
    with pytest.raises(securelink.Error) as e:
        c.ping()
    assert e.value.code == "protocol"
    c.sign("/m/a")
    assert len(d.conns) == 2


def test_connect_failure_names_the_socket_and_the_fix(tmpdir_short):
    path = os.path.join(tmpdir_short, "missing.sock")
    with pytest.raises(securelink.Error) as e:
        securelink.Client(socket=path).ping()
    assert e.value.code == "unreachable"
    assert path in e.value.message
    assert "No such file or directory" in e.value.message
    assert "securelinkd" in e.value.message and "SECURELINK_SOCKET" in e.value.message


def test_connect_to_a_stale_socket_file_is_unreachable(tmpdir_short):
    path = os.path.join(tmpdir_short, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # bound, never listening: connect() is refused
    with pytest.raises(securelink.Error) as e:
        securelink.Client(socket=path).ping()
    assert e.value.code == "unreachable"
    assert "Connection refused" in e.value.message


def test_socket_path_from_argument_environment_then_default(monkeypatch):
    monkeypatch.setenv("SECURELINK_SOCKET", "/tmp/env.sock")
    assert securelink.Client().socket == "/tmp/env.sock"
    assert securelink.Client(socket="/tmp/arg.sock").socket == "/tmp/arg.sock"
    monkeypatch.delenv("SECURELINK_SOCKET")
    assert securelink.Client().socket == "/run/securelink/securelinkd.sock"


def test_no_answer_is_a_timeout_and_the_next_call_uses_a_new_connection(fake):
    d, c = fake(lambda line: FakeDaemon.HANG if line == "PING" else echo_handler(line),
                timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(securelink.Error) as e:
        c.ping()
    assert e.value.code == "timeout"
    assert time.monotonic() - t0 < 3
    # A late answer to the PING must not be taken for the SIGN's.
    assert c.sign("/m/a") == "/m/a?token=t&expires=1&kid=1"
    assert len(d.conns) == 2


# reconnect


def test_reconnects_once_when_the_daemon_closed_an_idle_connection(fake):
    d, c = fake()
    assert c.ping()
    d.drop_connections()
    assert c.sign("/m/a").startswith("/m/a?")
    assert len(d.conns) == 2
    assert d.conns[1].lines == ["SIGN /m/a"]


def test_gives_up_when_the_connection_breaks_again_after_reconnecting(fake):
    d, c = fake(lambda line: None)
    with pytest.raises(securelink.Error) as e:
        c.ping()
    assert e.value.code == "disconnected"
    assert len(d.conns) == 2


def test_reconnect_resends_only_the_unanswered_requests(fake):
    state = {"dropped": False}

    def handler(line):
        if line == "SIGN /m/5" and not state["dropped"]:
            state["dropped"] = True
            return None
        return echo_handler(line)

    d, c = fake(handler)
    paths = [f"/m/{i}" for i in range(10)]
    assert c.sign_many(paths) == [f"{p}?token=t&expires=1&kid=1" for p in paths]
    assert len(d.conns) == 2
    assert d.conns[1].lines == [f"SIGN /m/{i}" for i in range(5, 10)]


def test_half_an_answer_then_end_of_file_is_asked_again_on_a_new_connection(fake):
    state = {"cut": False}

    def handler(line):
        if line == "SIGN /m/a" and not state["cut"]:
            state["cut"] = True
            return FakeDaemon.Cut("OK /m/a?token=t&exp")
        return echo_handler(line)

    d, c = fake(handler)
    assert c.sign("/m/a") == "/m/a?token=t&expires=1&kid=1"
    assert [conn.lines for conn in d.conns] == [["SIGN /m/a"], ["SIGN /m/a"]]


def test_two_answers_to_one_request_are_a_protocol_error_and_drop_the_connection(fake):
    d, c = fake(lambda line: "OK pong\nOK pong" if line == "PING" else echo_handler(line))
    with pytest.raises(securelink.Error) as e:
        c.ping()
    assert e.value.code == "protocol"
    assert c.sign("/m/a") == "/m/a?token=t&expires=1&kid=1"
    assert len(d.conns) == 2


def test_an_answer_ending_in_cr_lf_is_read_without_the_cr(fake):
    d, c = fake(lambda line: "OK /m/a?token=t&expires=1&kid=1\r")
    assert c.sign("/m/a") == "/m/a?token=t&expires=1&kid=1"
    assert c.sign_many(["/m/a"]) == ["/m/a?token=t&expires=1&kid=1"]


def test_sign_timeout_on_the_fast_path_names_the_socket(fake):
    d, c = fake(lambda line: FakeDaemon.HANG, timeout=0.2)
    with pytest.raises(securelink.Error) as e:
        c.sign("/m/a")
    assert e.value.code == "timeout"
    assert d.path in e.value.message and "0.2s" in e.value.message


def test_single_calls_take_the_fast_path_without_a_selector(fake, monkeypatch):
    # Issue 17: sign() one by one was half client overhead, a new selector
    # with register/modify/close per call. The single calls now do a
    # blocking send and receive; only sign_many() needs a selector.
    d, c = fake()
    made = []
    real = securelink.selectors.DefaultSelector
    monkeypatch.setattr(securelink.selectors, "DefaultSelector",
                        lambda: made.append(1) or real())
    assert c.ping()
    assert c.sign("/m/a") == "/m/a?token=t&expires=1&kid=1"
    assert made == []
    assert c.sign_many(["/m/b"]) == ["/m/b?token=t&expires=1&kid=1"]
    assert made == [1]


# pipelining


def test_sign_many_pipelines_10000_requests_in_order(fake):
    d, c = fake()
    paths = [f"/media/private/dir/file-{i:05d}.pdf" for i in range(10000)]
    urls = c.sign_many(paths, ttl=300)
    # Requests and answers here are ~1 MB, more than the socket buffers hold
    # together: a client that wrote everything before reading would stall
    # against the fake (which stops reading while its answers are not read)
    # and fail with a timeout.
    assert urls == [f"{p}?token=t&expires=1&kid=1" for p in paths]
    assert d.lines == [f"SIGN {p} ttl=300" for p in paths]
    assert len(d.conns) == 1
    # Lock-step request/answer would deliver one line per read.
    assert d.conns[0].max_lines_per_recv > 100


def test_sign_many_raises_the_first_refusal_with_its_index_and_stays_in_step(fake):
    d, c = fake(lambda line: "ERR bad-target no" if line.endswith("/bad") else echo_handler(line))
    paths = ["/m/0", "/m/bad", "/m/2", "/m/bad"]
    with pytest.raises(securelink.Error) as e:
        c.sign_many(paths)
    assert e.value.code == "bad-target"
    assert e.value.index == 1
    # Every answer was read: the next call gets its own.
    assert c.sign("/m/next").startswith("/m/next?")
    assert len(d.conns) == 1


def test_sign_many_checks_every_path_before_sending_any(fake):
    d, c = fake()
    with pytest.raises(TypeError):
        c.sign_many(["/m/a", b"/m/b"])
    assert d.lines == []


def test_one_client_shared_by_threads_gets_each_thread_its_own_answers(fake):
    d, c = fake()
    failures = []

    def work(t):
        for i in range(200):
            p = f"/m/{t}/{i}"
            if c.sign(p) != f"{p}?token=t&expires=1&kid=1":
                failures.append(p)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(d.lines) == 1600


def test_forked_child_opens_its_own_connection_and_leaves_the_parents(fake):
    d, c = fake()
    assert c.ping()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without pytest's teardown
        try:
            os.write(w, c.sign("/m/child").encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        got = f.read().decode()
    assert os.waitpid(pid, 0)[1] == 0
    assert got == "/m/child?token=t&expires=1&kid=1"
    assert c.sign("/m/parent") == "/m/parent?token=t&expires=1&kid=1"
    assert len(d.conns) == 2
    assert d.conns[0].lines == ["PING", "SIGN /m/parent"]
    assert d.conns[1].lines == ["SIGN /m/child"]


# answers of the other verbs


@pytest.mark.parametrize("answer,expected", [
    ("OK valid kid=3 expires=1700000000",
     securelink.Verdict("valid", kid=3, expires=1700000000)),
    ("OK expired kid=2 expires=1600000000",
     securelink.Verdict("expired", kid=2, expires=1600000000)),
    ("OK invalid token does not match", securelink.Verdict("invalid", reason="token does not match")),
    ("OK public", securelink.Verdict("public")),
])
def test_verify_parses_each_verdict(fake, answer, expected):
    d, c = fake(lambda line: answer)
    assert c.verify("/m/a b?token=x&expires=1", ip="::1") == expected
    assert d.lines == ["VERIFY /m/a%20b?token=x&expires=1 ip=::1"]


def test_verify_malformed_answer_is_a_protocol_error(fake):
    d, c = fake(lambda line: "OK valid kid=x")
    with pytest.raises(securelink.Error) as e:
        c.verify("/m/a?token=x")
    assert e.value.code == "protocol"


def test_status_returns_the_json_as_a_dict(fake):
    status = {"active_kid": 4, "keys": [{"kid": 4, "state": "active"}]}
    d, c = fake(lambda line: "OK " + json.dumps(status))
    assert c.status() == status
    assert d.lines == ["STATUS"]


# the Django storage against the fake


@pytest.fixture
def django_settings(tmpdir_short):
    django = pytest.importorskip("django")
    from django.conf import settings
    if not settings.configured:
        settings.configure(MEDIA_ROOT=tmpdir_short, MEDIA_URL="/media/", USE_TZ=True)
        django.setup()
    return settings


def storage(**kwargs):
    from securelink.django import SecureLinkStorage
    # The fake daemon's lines are compared: no CACHE among them.
    kwargs.setdefault("cache", False)
    kwargs.setdefault("base_url", "/media/")
    return SecureLinkStorage(location=tempfile.gettempdir(), **kwargs)


def test_django_url_signs_media_url_plus_encoded_name_with_one_client(fake, django_settings):
    from django.test.utils import override_settings
    d, _ = fake()
    with override_settings(SECURELINK_SOCKET=d.path):
        s = storage()
        assert s.url("private/a b.pdf") == "/media/private/a%20b.pdf?token=t&expires=1&kid=1"
        s.url("private/ü #?%.pdf", lifetime=30)
    assert d.lines == ["SIGN /media/private/a%20b.pdf",
                       "SIGN /media/private/%C3%BC%20%23%3F%25.pdf ttl=30"]
    assert len(d.conns) == 1


def test_django_expiration_setting_is_the_default_ttl(fake, django_settings):
    from django.test.utils import override_settings
    d, _ = fake()
    with override_settings(SECURE_LINK_EXPIRATION_SECONDS=600):
        storage(socket=d.path).url("private/a")
    assert d.lines == ["SIGN /media/private/a ttl=600"]


@pytest.mark.parametrize("lifetime", [0, -1])
def test_django_links_that_never_expire_or_already_expired_are_refused(fake, django_settings,
                                                                         lifetime):
    d, _ = fake()
    with pytest.raises(ValueError):
        storage(socket=d.path).url("private/a", lifetime=lifetime)
    assert d.lines == []


def test_django_private_by_settings_but_public_by_daemon_is_improperly_configured(
        fake, django_settings):
    from django.core.exceptions import ImproperlyConfigured
    d, _ = fake(lambda line: "OK " + line.split(" ")[1])  # the daemon says: public
    s = storage(socket=d.path, private_prefixes=["private/"])
    assert s.url("public/a.css") == "/media/public/a.css"
    with pytest.raises(ImproperlyConfigured):
        s.url("private/a.pdf")
    s = storage(socket=d.path, public_prefixes=["public/"])
    with pytest.raises(ImproperlyConfigured):
        s.url("other/a.pdf")


def test_django_both_prefix_settings_are_improperly_configured(fake, django_settings):
    from django.core.exceptions import ImproperlyConfigured
    d, _ = fake()
    with pytest.raises(ImproperlyConfigured):
        storage(socket=d.path, private_prefixes=["a/"], public_prefixes=["b/"]).url("a/x")


def test_django_secret_key_setting_warns_that_it_is_unused(django_settings):
    with pytest.warns(UserWarning, match="import-key"):
        storage(nginx_secret_key="old-secret")


# the real daemon and nginx


@pytest.fixture
def real():
    """securelinkd and nginx (daemonsite), links as paths: no base_url. Not
    waiting for the first key: the client's first SIGN may be held."""
    require_binaries()
    d = open_daemon({"links": {"base_url": None}}, wait_active=False)
    try:
        yield d
    finally:
        errors = close_daemon(d)
        if errors:
            raise errors[0]


def test_real_ping_and_status(real):
    with securelink.Client(socket=real.socket) as c:
        assert c.ping()
        # A SIGN is held until the first key is active; after its answer
        # STATUS must name that key.
        c.sign("/media/private/x")
        st = c.status()
    assert isinstance(st["active_kid"], int)
    assert any(k["kid"] == st["active_kid"] and k["state"] == "active" for k in st["keys"])


@pytest.mark.parametrize("name", ["a b.pdf", "ünï €.txt", "plus+semi;colon.txt",
                                  "100%.txt", "hash#tag.txt", "q?.txt"])
def test_real_signed_link_is_served_by_nginx(real, name):
    body = real.add_file("private/" + name)
    # '%', '#' and '?' are not path characters: the caller encodes them;
    # space and UTF-8 go as they are (the client encodes the space).
    path = "/media/private/" + name.replace("%", "%25").replace("#", "%23").replace("?", "%3F")
    with securelink.Client(socket=real.socket) as c:
        url = c.sign(path, ttl=60)
        assert "?token=" in url and "&kid=" in url
        assert real.get(url) == (200, body)
        assert c.verify(url).status == "valid"
    assert real.get(url.split("?")[0])[0] == 403


def test_real_tampered_link_is_refused_by_nginx_and_by_verify(real):
    real.add_file("private/a.txt")
    real.add_file("private/b.txt")
    with securelink.Client(socket=real.socket) as c:
        url = c.sign("/media/private/a.txt")
        bad = url.replace("/a.txt?", "/b.txt?")
        assert real.get(bad)[0] == 403
        assert c.verify(bad).status == "invalid"


def test_real_public_path_comes_back_unsigned(real):
    body = real.add_file("public/a b.css")
    with securelink.Client(socket=real.socket) as c:
        url = c.sign("/media/public/a b.css")
        assert url == "/media/public/a%20b.css"
        assert c.verify(url).status == "public"
    assert real.get(url) == (200, body)


def test_real_errors_carry_the_daemons_codes_and_keep_the_connection(real):
    with securelink.Client(socket=real.socket) as c:
        for kwargs, code in [({"path": "/media/private/x?y=1"}, "bad-target"),
                             ({"path": "/media/../etc/passwd"}, "bad-target"),
                             ({"path": "/media/private/x", "ttl": 0}, "bad-ttl"),
                             ({"path": "/media/private/x", "expires": 1000}, "bad-ttl"),
                             ({"path": "/media/private/x", "ttl": 10 ** 9}, "ttl-too-long"),
                             ({"path": "/media/private/x", "ip": "not-an-ip"}, "bad-ip")]:
            with pytest.raises(securelink.Error) as e:
                c.sign(**kwargs)
            assert e.value.code == code, kwargs
        assert c.ping()


def test_real_sign_many_10000_links_all_served(real):
    n = 10000
    bodies = {i: real.add_file(f"private/many/f{i}.txt") for i in range(0, n, 997)}
    paths = [f"/media/private/many/f{i}.txt" for i in range(n)]
    with securelink.Client(socket=real.socket) as c:
        urls = c.sign_many(paths, ttl=600)
        assert c.status()["counters"]["signed"] >= n
    assert [u.split("?")[0] for u in urls] == paths
    for i, body in bodies.items():
        assert real.get(urls[i]) == (200, body)


def test_real_client_reconnects_after_the_daemon_restarts(real):
    body = real.add_file("private/r.txt")
    c = securelink.Client(socket=real.socket)
    try:
        assert c.ping()
        real.restart()
        url = c.sign("/media/private/r.txt")
        assert real.get(url) == (200, body)
    finally:
        c.close()


def test_real_django_storage_url_is_served(real, django_settings):
    from django.test.utils import override_settings
    from securelink.django import SecureLinkStorage
    body = real.add_file("private/a b.pdf")
    with override_settings(MEDIA_ROOT=real.media, MEDIA_URL="/media/",
                           SECURELINK_SOCKET=real.socket):
        s = SecureLinkStorage()
        url = s.url("private/a b.pdf")
        assert url.startswith("/media/private/a%20b.pdf?token=")
        assert real.get(url) == (200, body)
        assert urllib.parse.parse_qs(url.split("?")[1])["kid"]
        assert s.url("public/x.css") == "/media/public/x.css"


def test_real_too_many_connections_raises_the_daemons_reason():
    require_binaries()
    d = open_daemon({"links": {"base_url": None}, "daemon": {"max_connections": "1"}})
    try:
        with d.connect() as held:
            assert held.ask("PING") == "OK pong"  # accepted: the one slot is taken
            # Several tries: the daemon hangs up before or after the client
            # wrote its request, a race; both must give the daemon's reason,
            # not "connection lost".
            for call in (lambda c: c.ping(), lambda c: c.sign("/media/private/a"),
                         lambda c: c.sign_many(["/media/private/a", "/media/private/b"])):
                for _ in range(5):
                    with securelink.Client(socket=d.socket) as c:
                        with pytest.raises(securelink.Error) as e:
                            call(c)
                    assert e.value.code == "unavailable", e.value
                    assert "too many connections" in e.value.message, e.value
                    assert e.value.index is None, e.value
        # The slot is free once the daemon has read the held connection's
        # end, which a new connection can overtake: its refusal says "try
        # again later", which is what a client does.
        for _ in range(1000):
            with securelink.Client(socket=d.socket) as c:
                try:
                    assert c.ping()
                    break
                except securelink.Error as e:
                    assert e.code == "unavailable", e
        else:
            raise AssertionError("the slot of a closed connection never came free")
    finally:
        errors = close_daemon(d)
        if errors:
            raise errors[0]


# the shared client vectors (tests/vectors/clients.json)


def test_real_shared_vectors_sign_to_the_expected_paths_and_nginx_serves_them(real):
    vectors = clientvectors.load()["sign"]
    bodies = {}
    for v in vectors:
        if clientvectors.is_private(v["path"]) or v["path"].startswith("/media/public/"):
            bodies[v["path"]] = real.add_file(clientvectors.media_name(v["path"]))
    wrong = []
    with securelink.Client(socket=real.socket) as c:
        for v in vectors:
            try:
                url = c.sign(v["target"], ttl=600)
                clientvectors.check_answer(url, v["path"])
            except (securelink.Error, AssertionError) as e:
                wrong.append(f"{clientvectors.vector_id(v)}: {e!r}")
                continue
            if v["path"] in bodies:
                got = real.get(url)
                if got != (200, bodies[v["path"]]):
                    wrong.append(f"{clientvectors.vector_id(v)}: nginx answered {got[0]} to {url}")
        # The same answers pipelined, in order.
        urls = c.sign_many([v["target"] for v in vectors], ttl=600)
        for v, url in zip(vectors, urls):
            clientvectors.check_answer(url, v["path"])
    assert not wrong, "\n".join(wrong)


def test_real_shared_vectors_refusals_carry_the_expected_codes(real):
    wrong = []
    with securelink.Client(socket=real.socket) as c:
        for v in clientvectors.load()["refuse"]:
            try:
                url = c.sign(v["target"])
                wrong.append(f"{clientvectors.vector_id(v)}: signed as {url[:80]}")
            except securelink.Error as e:
                if e.code != v["code"]:
                    wrong.append(f"{clientvectors.vector_id(v)}: {e.code} ({e.message[:120]}),"
                                 f" expected {v['code']}")
        assert c.ping()  # every refusal left the connection usable
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("base_url", ["/media/", "https://cdn.example/media/", "//cdn.example/m/",
                                      "/media/./x/", "/media", "/media//x/", "/media/?x=/",
                                      "/media/#x/"])
def test_django_unsigned_url_is_filesystemstorages(django_settings, base_url):
    # The storage builds base_url + the encoded name itself where urljoin()
    # could only concatenate; Django's own FileSystemStorage.url() is the
    # answer for every name, also where it resolves segments.
    from django.core.files.storage import FileSystemStorage
    names = ["a.pdf", "private/a b.pdf", "/lead.pdf", "x/../y.pdf", "./z.pdf", ".hidden",
             "d/.e/f", "ü #?%.pdf", "a:b.pdf", "a//b.pdf", "", "a\\b.pdf",
             # Segment edges of the names taken as they are.
             "dir/", "a/b/", "/", "..", "a/..", "a/./b", "a./b.", "-x/_y~z(1)!*'.pdf", "a/.b"]
    # Every ASCII byte in a name: those quote() keeps are taken as they
    # are, the rest go through filepath_to_uri().
    names += [f"p/a{chr(b)}b.pdf" for b in range(1, 128)]
    ours = storage(base_url=base_url)
    theirs = FileSystemStorage(location=tempfile.gettempdir(), base_url=base_url)
    for n in names:
        assert ours._unsigned_url(n) == theirs.url(n), (base_url, n)


def test_django_unsigned_url_follows_a_changed_media_url(django_settings):
    # The storage judges whether its base_url can be concatenated once per
    # base_url; a MEDIA_URL changed under it (override_settings, as tests
    # of a site do) is judged again.
    from django.core.files.storage import FileSystemStorage
    from django.test.utils import override_settings
    ours = storage(base_url=None)
    for media_url in ["/media/", "/media/./x/", "/media/", "/media//x/"]:
        with override_settings(MEDIA_URL=media_url):
            theirs = FileSystemStorage(location=tempfile.gettempdir())
            for n in ["a.pdf", "x/../y.pdf"]:
                assert ours._unsigned_url(n) == theirs.url(n), (media_url, n)


@pytest.mark.parametrize("url,param,expected", [
    ("/m/a?token=t&expires=17&kid=1", "expires", 17),
    ("/m/a?e=17&token=t", "e", 17),
    ("/m/a?token=t&kid=1&e=9", "e", 9),
    ("/m/a?xe=3&token=t", "e", None),
    ("/m/a", "expires", None),
    ("/m/a?expires=x", "expires", None),
])
def test_expires_of_reads_the_daemons_parameter(url, param, expected):
    assert securelink._expires_of(url, securelink._expires_marks(param)) == expected


def test_django_prefix_settings_are_read_again_when_overridden(fake, django_settings):
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings
    d, _ = fake()
    s = storage(socket=d.path)
    assert s.url("a/x").startswith("/media/a/x?")
    with override_settings(SECURE_LINK_PRIVATE_PREFIXES=["a/"], SECURE_LINK_PUBLIC_PREFIXES=["b/"]):
        with pytest.raises(ImproperlyConfigured):
            s.url("a/y")
    assert s.url("a/z").startswith("/media/a/z?")
