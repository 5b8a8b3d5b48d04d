# SPDX-License-Identifier: MIT
"""[links] expires_granularity (issue 17, item 2), against the real
securelinkd over its socket and a real nginx deciding every link: expires
rounded up to the window, so one path signed twice in a window is one link;
the lifetime asked is a minimum; never past max_link_ttl; an explicit
expires= is kept as given. The expected times come from the clock read
around each request, nginx says whether each link is good."""

import time

from daemonsite import make_daemon, query  # noqa: F401

PRIVATE = "/media/private/report.pdf"
BODY = b"a private report\n"
WINDOW = 300


def expires_of(url):
    return int(query(url)["expires"])


def signed(d, *opts):
    """(link, clock before, clock after) for one SIGN of PRIVATE."""
    t0 = int(time.time())
    url = d.sign(PRIVATE, *opts)
    return url, t0, int(time.time())


def up(t):
    return -(-t // WINDOW) * WINDOW


def test_lifetimes_round_up_to_the_window_and_repeat_the_same_link(make_daemon):
    d = make_daemon({"links": {"expires_granularity": "5m"}})
    d.add_file("private/report.pdf", BODY)
    for ttl in (10, 299, 300, 301, 1000):  # shorter than the window, across it
        a, t0, t1 = signed(d, f"ttl={ttl}")
        b, t2, t3 = signed(d, f"ttl={ttl}")
        e = expires_of(a)
        assert e % WINDOW == 0, a
        # At least the lifetime asked, at most one window more.
        assert up(t0 + ttl) <= e <= up(t1 + ttl), (a, t0, t1)
        if up(t0 + ttl) == up(t3 + ttl):  # both inside one window
            assert b == a
        assert d.status_of(a) == 200
    # The default lifetime is rounded too.
    a, t0, t1 = signed(d)
    assert expires_of(a) % WINDOW == 0 and expires_of(a) >= t0 + 3600
    assert d.status_of(a) == 200


def test_a_window_past_max_link_ttl_keeps_the_lifetime_asked_unrounded(make_daemon):
    d = make_daemon({"keys": {"max_link_ttl": "1h", "default_link_ttl": "5m"},
                     "links": {"expires_granularity": "5m"}})
    d.add_file("private/report.pdf", BODY)
    a, t0, t1 = signed(d, "ttl=3600")
    # Rounded up it would outlive max_link_ttl; rounded down it would be
    # shorter than asked: it is exactly what was asked.
    assert t0 + 3600 <= expires_of(a) <= t1 + 3600, (a, t0, t1)
    assert d.status_of(a) == 200
    # One window below the limit still rounds.
    a, t0, t1 = signed(d, f"ttl={3600 - WINDOW}")
    e = expires_of(a)
    assert e % WINDOW == 0 and t0 + 3600 - WINDOW <= e <= t1 + 3600, (a, t0, t1)
    assert d.status_of(a) == 200


def test_an_explicit_expires_is_kept_as_given(make_daemon):
    d = make_daemon({"links": {"expires_granularity": "5m"}})
    d.add_file("private/report.pdf", BODY)
    want = up(int(time.time()) + 1000) + 7  # surely not on the grid
    url = d.sign(PRIVATE, f"expires={want}")
    assert expires_of(url) == want
    assert d.status_of(url) == 200


def test_off_by_default_every_second_its_own_expires(make_daemon):
    d = make_daemon()
    d.add_file("private/report.pdf", BODY)
    a, t0, t1 = signed(d, "ttl=10")
    assert t0 + 10 <= expires_of(a) <= t1 + 10
    assert d.status_of(a) == 200
