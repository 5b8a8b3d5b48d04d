# SPDX-License-Identifier: MIT
"""Fleet mode ([keys] mode = derived) across hosts: each host a network
namespace of its own (fleetsite.py), three securelinkd with the same master,
two nginx servers, and a 10s key schedule so that epochs change while the
tests run. One host runs 4s (= clock_skew) ahead, daemon and nginx, with
libfaketime.

Known answers come from outside the daemon: the keys in every keys file are
recomputed here with hashlib's BLAKE2b (what crypto_kdf is), and nginx
itself says 200 or 403."""

import math
import os
import time

from daemonsite import TIMEOUT, kid_of, query
from fleetsite import epoch_secret, fleet, new_master  # noqa: F401 (a fixture)

R = 10   # rotate_every
SKEW = 4  # clock_skew, and how far host b's clock runs ahead
TTL = 30  # max_link_ttl
FILE = "private/report.txt"
PATH = "/media/" + FILE


def quiet_epoch(h):
    """Returns the current epoch once host h is done with its boundary's
    publish, with at least 5 s to the next boundary: a test that changes
    nginx's configuration then does it while no sync is under way (one that
    started before, under a loaded machine's slow start, would read the
    change half way)."""
    e = math.floor(time.time() / R)
    if (e + 1) * R - time.time() < 5:
        e += 1
    h.wait_status(lambda s: math.floor(time.time() / R) == e
                  and max(k["kid"] for k in s["keys"]) == e + 1 and not s["nginx"]["pending"],
                  timeout=2 * R, what=f"epoch {e} published on {h.ns}")
    return e


def expires_of(url):
    return int(query(url)["expires"])


def start(hosts):
    """securelinkd first (it writes the snippets nginx includes), then
    nginx; returns once every host signs."""
    for h in hosts:
        if h.has_nginx:
            h.add_file(FILE)
        h.start()
        if h.has_nginx and h.nginx_pid is None:
            h.start_nginx()
    for h in hosts:
        h.wait_active()


def check_everywhere(fleet, nginxes, url, want=200, who=""):
    for n in nginxes:
        status, _ = n.get(url, fleet.app)
        assert status == want, (f"{url} (signed on {who}) got {status} from nginx on {n.ns}, "
                                f"want {want}\n" + n.diagnostics())


def assert_keys_derive_from(hosts, master_of_kid):
    """Every key in every keys file is the epoch's key of the right master."""
    for h in hosts:
        for kid, secret in h.secrets().items():
            assert secret == epoch_secret(master_of_kid(kid), kid), \
                f"key {kid} in {h.ns}'s keys file is not the derived one"


class Traffic:
    """Signs on every host and fetches from every nginx, again and again;
    keeps the links and fetches older ones again while they live."""

    def __init__(self, fleet, signers, nginxes):
        self.fleet = fleet
        self.signers = signers
        self.nginxes = nginxes
        self.links = []  # (url, signer)
        self.kids = set()
        self.disagreed = False  # two hosts signed with different epochs at once
        self.next_old = 0

    def round(self):
        kids = set()
        for h in self.signers:
            url = h.sign(PATH)
            kids.add(kid_of(url))
            self.links.append((url, h.ns))
            check_everywhere(self.fleet, self.nginxes, url, who=h.ns)
        self.kids |= kids
        self.disagreed |= len(kids) > 1
        # Older links, round robin, while they are clearly alive on the
        # clock that runs ahead too.
        now = time.time()
        live = [(u, w) for u, w in self.links if expires_of(u) - SKEW - 1 > now]
        for _ in range(min(6, len(live))):
            url, who = live[self.next_old % len(live)]
            self.next_old += 1
            check_everywhere(self.fleet, self.nginxes, url, who=who)

    def run_until(self, t):
        while time.time() < t:
            self.round()
            time.sleep(0.05)


def test_links_from_every_host_pass_every_nginx_across_epoch_boundaries(fleet):
    text, raw = new_master()
    a = fleet.host("a", text)
    b = fleet.host("b", text, clock=f"+{SKEW}s")
    c = fleet.host("c", text, nginx=False)
    start([a, b, c])

    st = c.status()
    assert st["mode"] == "derived"
    kids = [k["kid"] for k in st["keys"]]
    assert kids == list(range(kids[0], kids[0] + len(kids)))
    # The next epoch is published ahead of the current one.
    assert st["epoch"] == kids[-1] - 1
    assert st["active_kid"] in (st["epoch"], st["epoch"] - 1)
    assert st["master_switch"] is None
    assert_keys_derive_from([a, b, c], lambda kid: raw)

    # nginx really checks: a tampered link is refused everywhere.
    url = a.sign(PATH)
    t = query(url)["token"]
    check_everywhere(fleet, [a, b], url.replace(t, ("A" if t[0] != "A" else "B") + t[1:]), 403)

    # Two epoch boundaries on every clock, and the moments in between
    # where b (ahead) signs with the next epoch while a and c do not.
    traffic = Traffic(fleet, [a, b, c], [a, b])
    traffic.run_until(time.time() + 2 * R + 1)

    assert len(traffic.kids) >= 3, f"only epochs {traffic.kids} signed: no boundary crossed?"
    assert traffic.disagreed, "b never signed with another epoch than a: is its clock shifted?"
    # Every link still alive passes everywhere after the boundaries too.
    now = time.time()
    for url, who in traffic.links:
        if expires_of(url) - SKEW - 1 > now:
            check_everywhere(fleet, [a, b], url, who=who)
    # The keys files moved with the epochs, on the shifted host too, and
    # still hold exactly the derived keys.
    assert_keys_derive_from([a, b, c], lambda kid: raw)
    for h in (a, b):
        st = h.status()
        assert st["nginx"]["ok"] and st["nginx"]["last_reload"], st
        assert max(h.secrets()) >= max(traffic.kids)
    for h in (a, b, c):
        h.assert_no_secret_leaked()


def test_host_with_another_master_signs_links_every_nginx_refuses(fleet):
    text, raw = new_master()
    other, _ = new_master()
    a = fleet.host("a", text)
    b = fleet.host("b", text, clock=f"+{SKEW}s")
    c = fleet.host("c", text, nginx=False)
    d = fleet.host("d", other, nginx=False)
    start([a, b, c, d])

    good, bad = c.sign(PATH), d.sign(PATH)
    # Same schedule, same epoch numbers: only the key differs.
    assert abs(kid_of(good) - kid_of(bad)) <= 1
    check_everywhere(fleet, [a, b], good, 200, "c")
    check_everywhere(fleet, [a, b], bad, 403, "d (another master)")
    assert a.ask("VERIFY " + bad).startswith("OK invalid")
    assert d.ask("VERIFY " + good).startswith("OK invalid")


def test_rotate_and_import_are_refused_in_derived_mode(fleet):
    text, _ = new_master()
    c = fleet.host("c", text, nginx=False)
    start([c])
    before = c.secrets()

    answer = c.ask("ROTATE")
    assert answer.startswith("ERR bad-request ROTATE does not apply with mode = derived"), answer
    assert "new master" in answer
    assert c.ask("ROTATE revoke").startswith("ERR bad-request ")
    answer = c.ask("IMPORT c2VjcmV0")
    assert answer.startswith("ERR bad-request IMPORT does not apply with mode = derived"), answer
    assert c.secrets() == before
    # No key ring is kept: every key comes from the master and the clock.
    assert not os.path.exists(c.keyring)


def test_master_readable_by_others_is_refused(fleet):
    text, _ = new_master()
    c = fleet.host("c", text, nginx=False)
    os.chmod(c.master_file, 0o640)
    p = c.spawn()
    assert p.wait(TIMEOUT) == 78
    c.proc = None
    log = c.log_text()
    assert "readable by group or others" in log and "chmod 600" in log, log
    assert text.strip() not in log


def test_new_master_rolls_in_without_breaking_live_links(fleet):
    old_text, old = new_master()
    new_text, new = new_master()
    a = fleet.host("a", old_text)
    b = fleet.host("b", old_text, clock=f"+{SKEW}s")
    c = fleet.host("c", old_text, nginx=False)
    start([a, b, c])
    traffic = Traffic(fleet, [a, b, c], [a, b])
    traffic.round()

    # The switch: the first epoch boundary whose epoch no host (b runs
    # ahead) publishes yet, with 5s for the restarts. Every host
    # gets the new master and keeps the old one as the previous.
    switch_epoch = math.ceil((time.time() + SKEW + 5) / R) + 1
    switch = switch_epoch * R
    for h in (a, b, c):
        h.write_master(new_text, os.path.join(h.dir, "master.new"))
        h.write_master(old_text, os.path.join(h.dir, "master.old"))
        h.set_option("keys", "master_key_file", os.path.join(h.dir, "master.new"))
        h.set_option("keys", "master_key_file_previous", os.path.join(h.dir, "master.old"))
        h.set_option("keys", "master_switch", str(switch))
        h.restart()
    assert time.time() + SKEW < switch - R, "the restarts took too long for this test"

    # Links signed before the roll still pass, right after it ...
    for url, who in traffic.links:
        check_everywhere(fleet, [a, b], url, who=who)
    st = c.status()
    assert st["master_switch"] == switch
    assert st["previous_master_until"] == switch + SKEW + TTL

    # ... and across the switch, until every host signs with the new master.
    traffic.run_until(switch + SKEW + 2)
    assert {switch_epoch - 1, switch_epoch} <= traffic.kids, traffic.kids
    assert_keys_derive_from([a, b, c], lambda kid: old if kid < switch_epoch else new)
    assert switch_epoch in a.secrets() and switch_epoch - 1 in a.secrets()
    # The last links of the old master still pass after the switch.
    now = time.time()
    for url, who in traffic.links:
        if kid_of(url) == switch_epoch - 1 and expires_of(url) - SKEW - 1 > now:
            check_everywhere(fleet, [a, b], url, who=who)


def test_failed_reload_keeps_signing_with_what_nginx_has(fleet):
    text, raw = new_master()
    a = fleet.host("a", text)
    b = fleet.host("b", text)
    start([a, b])
    epoch = quiet_epoch(a)
    confirmed = max(a.secrets())

    # nginx -t fails on a from now on: at the next boundary a's nginx keeps
    # the file it has, which already holds the epoch that starts there.
    with open(a.extra_conf, "w") as f:
        f.write("this_is_no_nginx_directive;\n")
    boundary = (epoch + 1) * R
    traffic = Traffic(fleet, [a, b], [a, b])
    traffic.run_until(boundary + SKEW + 1)

    assert confirmed in traffic.kids, traffic.kids  # the new epoch signed on a too
    st = a.status()
    assert st["nginx"]["ok"] is False and "this_is_no_nginx_directive" in st["nginx"]["error"], st
    assert st["active_kid"] == confirmed
    # The file on disk moved on; nginx, and signing, did not need it yet.
    assert max(a.secrets()) == confirmed + 1

    # Repaired: the next try (SIGHUP: at once) publishes it.
    with open(a.extra_conf, "w") as f:
        f.write("# repaired\n")
    a.sighup()
    a.wait_status(lambda s: s["nginx"]["ok"], what="nginx ok again on a")
    traffic.round()


def test_sighup_keeps_master_and_schedule_until_restart(fleet):
    text, _ = new_master()
    other, _ = new_master()
    c = fleet.host("c", text, nginx=False)
    start([c])
    before = c.secrets()

    c.write_master(other, os.path.join(c.dir, "other"))
    c.set_option("keys", "master_key_file", os.path.join(c.dir, "other"))
    c.set_option("keys", "rotate_every", "20s")
    c.sighup()
    assert "take effect at the next restart" in c.log_text()
    # Still the old master's keys (the epochs may have moved on meanwhile).
    after = c.secrets()
    assert all(after[k] == v for k, v in before.items() if k in after)
    assert c.status()["mode"] == "derived"
    c.sign(PATH)


def test_restart_trusts_no_keys_file_nginx_did_not_load(fleet):
    # Issue 13, item 8: a keys file on disk that matches the epochs of now
    # proves nothing about what nginx loaded; a failed test left nginx with
    # older epochs, and links of the newer ones get 403 there.
    text, _ = new_master()
    a = fleet.host("a", text)
    start([a])
    assert a.stop() == 0
    with open(a.extra_conf, "w") as f:
        f.write("this_is_no_nginx_directive;\n")
    # Four epochs later, as after a long outage: the daemon writes keys
    # for them, and nginx -t refuses the configuration.
    a.clock = f"+{4 * R}s"
    a.start()
    assert a.status()["nginx"]["ok"] is False
    assert a.stop() == 0
    # The restart finds the file on disk exactly as it would write it.
    a.start()
    st = a.status()
    assert st["nginx"]["ok"] is False, st

    answer = a.ask("SIGN " + PATH)
    if answer.startswith("OK "):
        status, _ = a.get(answer[3:], fleet.app)
        assert status == 200, (f"signed {answer[3:]} with a key nginx never loaded: "
                               f"{status}\n" + a.diagnostics())
    else:
        assert answer.startswith("ERR unavailable "), answer

    # Repaired: once nginx is confirmed to have the keys, links pass.
    with open(a.extra_conf, "w") as f:
        f.write("# repaired\n")
    a.sighup()
    a.wait_status(lambda s: s["nginx"]["ok"] and s["active_kid"], what="nginx ok again")
    status, _ = a.get(a.sign(PATH), fleet.app)
    assert status == 200
