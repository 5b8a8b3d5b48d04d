# SPDX-License-Identifier: MIT
"""The enforcement probes (DESIGN.md, "Enforcement probes"): securelinkd asks
the real nginx, over HTTP(S), whether a private path without a token gets
403 and whether a link of the newest key passes. nginx's answers are the
known answers; each misconfiguration below is one a new user made."""

import http.client
import os
import subprocess

import pytest

from ctlsite import run_ctl
from daemonsite import Daemon, close_daemon, open_daemon, require_binaries
from grantsite import get
from nginxsite import nginx_conf_head

ENFORCED = """
        include {locations};"""


class ProbedDaemon(Daemon):
    """A daemon with probes on (the default: base_url's origin over
    127.0.0.1) and an nginx whose server {} blocks are the test's: SERVERS
    is formatted with port, www, media, locations, keys, dir."""

    SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {www};
        include {locations};
    }}"""
    HTTP_KEYS = "include {keys};"

    def default_options(self):
        o = super().default_options()
        o["nginx"]["probe"] = None  # the default
        return o

    def fields(self):
        return dict(port=self.port, www=self.www, media=self.media,
                    locations=self.locations_file, keys=self.keys_file, dir=self.dir)

    def write_nginx_conf(self):
        tmp = os.path.join(self.dir, "tmp")
        with open(self.nginx_conf, "w") as f:
            f.write(f"""
{nginx_conf_head(self.pid_file, self.error_log, tmp, self.njs)}
    {self.HTTP_KEYS.format(**self.fields())}
    include {self.extra_conf};
{self.SERVERS.format(**self.fields())}
}}
""")


def daemon_with(servers=None, http_keys=None, options=None, base=ProbedDaemon):
    attrs = {}
    if servers is not None:
        attrs["SERVERS"] = servers
    if http_keys is not None:
        attrs["HTTP_KEYS"] = http_keys
    return type("D", (base,), attrs), options


@pytest.fixture
def make_probed():
    require_binaries()
    daemons = []

    def factory(servers=None, http_keys=None, options=None, base=ProbedDaemon):
        cls, options = daemon_with(servers, http_keys, options, base)
        d = open_daemon(options, cls=cls)
        daemons.append(d)
        return d

    try:
        yield factory
    finally:
        errors = []
        for d in daemons:
            errors += close_daemon(d)
        if errors:
            raise errors[0]


def probed(d):
    """Rotates (a reload, then the probe that gates the new key) and
    returns STATUS once that is over, either way."""
    before = d.status()["nginx"].get("last_probe")
    d.ask("ROTATE")
    return d.wait_status(lambda s: s["nginx"]["last_probe"] not in (None, before)
                         and not s["nginx"]["pending"],
                         what="a probe after the rotation")


def assert_fail_open(d, st):
    assert st["nginx"]["enforcing"] is False, st
    assert "without a token" in st["nginx"]["enforcing_reason"]
    assert st["nginx"]["probe_url"].startswith(d.options["links"]["base_url"] + "/media/private/")
    assert "?" not in st["nginx"]["probe_url"]  # no token in messages
    log = d.log_text()
    assert "FAIL-OPEN" in log
    # The daemon's STATUS= may follow its answer to STATUS (the gate's
    # end notifies from the rotation's next look): waited for, not raced.
    d.wait_notify("STATUS=FAIL-OPEN: ", prefix=True)
    # securelinkctl status says it first.
    out = run_ctl("status", socket=d.socket).out
    assert out.splitlines()[0].startswith("FAIL-OPEN:"), out


def test_correct_configuration_is_enforced(make_probed):
    d = make_probed()
    st = probed(d)
    assert st["nginx"]["enforcing"] is True, st
    assert st["nginx"]["enforcing_reason"] is None
    assert st["nginx"]["ok"], st


def test_site_location_without_the_include_is_fail_open(make_probed):
    # The site's own plain location serves media_url; locations.conf is
    # not included: every private file is served to anyone.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /media/ {{ alias {media}/; }}
    }}""")
    assert_fail_open(d, probed(d))


def test_rewrite_break_before_the_checks_is_fail_open(make_probed):
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {www};
        # The site moved its files: the rewrite, first in the server,
        # takes the path away from every location of media_url.
        rewrite ^/media/(.*)$ /media-store/$1 break;
        location /media-store/ {{ alias {media}/; }}
        include {locations};
    }}""")
    assert_fail_open(d, probed(d))


def test_rewrite_break_that_keeps_the_path_is_still_enforced(make_probed):
    # nginx runs the location's rewrite directives after the server's
    # break: a rewrite that keeps the path under media_url is harmless.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {www};
        rewrite ^(/media/private/.*)$ $1 break;
        include {locations};
    }}""")
    assert probed(d)["nginx"]["enforcing"] is True


def test_include_in_the_wrong_server_is_fail_open(make_probed):
    # The default server (what 127.0.0.1 reaches) has no include.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name _;
        root {www};
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name files.example.test;
        root {www};
        include {locations};
    }}""")
    assert_fail_open(d, probed(d))


class StaleKeysDaemon(ProbedDaemon):
    """nginx reads a copy of keys.conf made when it started: a reload
    replaces its workers, but they never learn a new key."""

    HTTP_KEYS = "include {dir}/stale-keys.conf;"

    def start_nginx(self):
        with open(self.keys_file) as src, open(os.path.join(self.dir, "stale-keys.conf"),
                                               "w") as dst:
            dst.write(src.read())
        super().start_nginx()


def test_key_without_a_passing_probe_is_not_activated(make_probed):
    d = make_probed(base=StaleKeysDaemon)
    first = d.status()["active_kid"]
    answer = d.ask("ROTATE")
    assert answer.startswith("ERR unavailable"), answer
    st = d.wait_status(lambda s: not s["nginx"]["ok"], what="the failed probe")
    assert st["active_kid"] == first
    assert "refused a link signed with key" in st["nginx"]["error"], st
    # Private paths still get 403: this is no fail-open.
    assert st["nginx"]["enforcing"] is True
    # Links keep working with the key nginx has.
    body = d.add_file("private/a.txt")
    assert d.get(d.sign("/media/private/a.txt")) == (200, body)


def test_without_probes_the_same_nginx_gets_a_key_it_lacks(make_probed):
    # The counterpart of the test above: worker replacement alone lets the
    # key activate, and its links get 403 from nginx.
    d = make_probed(base=StaleKeysDaemon, options={"nginx": {"probe": "no"}})
    kid = d.rotate()
    assert d.status()["active_kid"] == kid
    d.add_file("private/a.txt")
    assert d.get(d.sign("/media/private/a.txt"))[0] == 403


HTTPS_SERVERS = """
    server {{
        listen 127.0.0.1:{port} ssl default_server;
        server_name _;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        root {www};
        {default_include}
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name files.example.test;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        root {www};
        {named_include}
    }}"""


class HttpsDaemon(ProbedDaemon):
    """base_url https://files.example.test:PORT, a self-signed certificate
    made by openssl, and a default server beside the named one: only Host
    and SNI kept reach the named server over 127.0.0.1."""

    NAMED = True

    def __init__(self, d, options=None):
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", os.path.join(d, "key.pem"),
                            "-out", os.path.join(d, "cert.pem"), "-days", "2",
                            "-subj", "/CN=files.example.test"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        super().__init__(d, options)

    def default_options(self):
        o = super().default_options()
        o["links"]["base_url"] = f"https://files.example.test:{self.port}"
        return o

    def fields(self):
        inc = f"include {self.locations_file};"
        return dict(super().fields(), named_include=inc if self.NAMED else "",
                    default_include="" if self.NAMED else inc)


@pytest.mark.parametrize("named", [True, False], ids=["include-in-named", "include-in-default"])
def test_https_probe_keeps_host_and_sni(make_probed, named):
    base = type("H", (HttpsDaemon,), {"NAMED": named})
    d = make_probed(servers=HTTPS_SERVERS, base=base)
    st = probed(d)
    if named:
        assert st["nginx"]["enforcing"] is True, st
    else:
        assert st["nginx"]["enforcing"] is False, st
        assert st["nginx"]["probe_url"].startswith(
            f"https://files.example.test:{d.port}/media/private/")


def test_regex_location_of_the_site_does_not_shadow_private_prefixes(make_probed):
    # locations.conf's private locations are ^~: a regex location of the
    # site that matches every media path never gets a private one.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location ~ ^/media/ {{ root {www}; }}
        include {locations};
    }}""")
    assert probed(d)["nginx"]["enforcing"] is True


def test_probes_run_every_probe_every(make_probed):
    # nginx starts after securelinkd here: no reload, no rotation; the
    # periodic probe alone finds the fail-open site.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /media/ {{ alias {media}/; }}
    }}""", options={"nginx": {"probe_every": "1s"}})
    st = d.wait_status(lambda s: s["nginx"]["enforcing"] is not None, what="a periodic probe")
    assert_fail_open(d, st)
    assert d.log_text().count("FAIL-OPEN") == 1  # once, not at every probe


def test_probes_are_off_by_default_with_reload_none(make_probed):
    d = make_probed(options={"nginx": {"reload": "none", "probe_every": "1s"}})
    d.ask("ROTATE")
    st = d.status()
    assert st["nginx"]["enforcing"] is None and st["nginx"]["last_probe"] is None, st


def test_check_exits_0_when_links_are_enforced(make_probed):
    d = make_probed()
    r = run_ctl("check", socket=d.socket)
    assert r.rc == 0, r
    assert "nginx enforces the links" in r.out
    assert d.status()["nginx"]["enforcing"] is True


def test_check_probes_now_and_names_the_fix_when_fail_open(make_probed):
    # No rotation, no reload: CHECK itself runs the probes.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /media/ {{ alias {media}/; }}
    }}""")
    assert d.status()["nginx"]["enforcing"] is None
    r = run_ctl("check", socket=d.socket)
    assert r.rc == 1, r
    assert r.out.startswith("FAIL-OPEN:"), r
    assert "Fix: include the locations file in the server {}" in r.out
    assert "token=" not in r.out
    assert_fail_open(d, d.status())
    r = run_ctl("--json", "check", socket=d.socket)
    assert r.rc == 1 and '"verdict":"fail-open"' in r.out, r


def test_check_says_when_probes_are_off(make_probed):
    d = make_probed(options={"nginx": {"probe": "no"}})
    r = run_ctl("check", socket=d.socket)
    assert r.rc == 1, r
    assert "The probes are off" in r.out


def test_check_needs_an_admin(make_probed):
    if os.geteuid() != 0:
        pytest.skip("needs root (setpriv)")
    d = make_probed()
    os.chmod(d.socket, 0o666)  # let uid 65534 connect at all
    r = run_ctl("check", socket=d.socket, user="nobody")
    assert r.rc == 5, r
    assert "CHECK needs root or the admin_group" in r.err, r
    assert d.status()["nginx"]["last_probe"] is None


def test_public_path_refused_is_reported_but_links_are_enforced(make_probed):
    # serve_public = no, and the site refuses media_url's public part:
    # every unsigned URL SIGN answers gets 403.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /media/ {{ return 403; }}
        include {locations};
    }}""", options={"nginx": {"serve_public": "no"}})
    r = run_ctl("check", socket=d.socket)
    assert r.rc == 0, r
    assert "But a public path got 403" in r.out
    assert "A public path got HTTP 403 from nginx" in d.log_text()
    assert d.status()["nginx"]["enforcing"] is True


@pytest.mark.parametrize("merge", ["off", "on"])
def test_doubled_slashes_through_the_site_s_own_location_are_fail_open(make_probed, merge):
    # serve_public = no, the site serves media_url itself: with
    # merge_slashes off "/media//private/x" misses the private location
    # and the site's location serves it; merged, nginx checks it.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        merge_slashes %s;
        location /media/ {{ alias {media}/; }}
        include {locations};
    }}""" % merge, options={"nginx": {"serve_public": "no"}})
    d.add_file("private/secret.pdf")
    assert get(d.port, "/media//private/secret.pdf") == (200 if merge == "off" else 403)
    st = probed(d)
    r, config = checked(d)
    if merge == "on":
        assert st["nginx"]["enforcing"] is True, st
        assert config["findings"] == [], config
        return
    assert st["nginx"]["enforcing"] is False, st
    assert "merge_slashes" in st["nginx"]["enforcing_reason"]
    assert st["nginx"]["probe_url"].startswith(d.options["links"]["base_url"] + "/media//private/")
    assert "FAIL-OPEN" in d.log_text()
    # check's reading of nginx -T names the directive and the location.
    assert kinds(config) == ["merge-slashes-off"], config
    at = conf_line(d, "merge_slashes off;")
    assert f"Problem at {at}: merge_slashes off keeps" in r.out, r.out
    assert "and location /media/ (at " in r.out and "opens the private files" in r.out, r.out


# Layouts of merge_slashes off: (servers, serve_public, whether nginx
# serves a private file to some spelling with "//", whether the probes'
# name sees it). check's merge-slashes-off finding must say so exactly
# when nginx does; the probes see what their name matches.
DOUBLED_LAYOUTS = {
    # The site serves media_url itself with an alias.
    "site-alias": ("""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        merge_slashes off;
        location /media/ {{ alias {media}/; }}
        include {locations};
    }}""", "no", True, True),
    # ... whose location refuses "//" first.
    "site-alias-refusing": ("""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        merge_slashes off;
        location /media/ {{ location ~ // {{ return 403; }} alias {media}/; }}
        include {locations};
    }}""", "no", False, False),
    # The locations file's own /media/ refuses "//", but "//media/" reaches
    # the server's root, where media_url's files lie (the probes do not ask
    # for "//media/": a 404 there cannot tell a root without media_root).
    "server-root": ("""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        merge_slashes off;
        root {www};
        include {locations};
    }}""", "yes", True, False),
    # A regex location of the site's takes "//media/private/x.pdf".
    "site-regex": ("""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        merge_slashes off;
        location ~* \\.pdf$ {{ root {www}; }}
        include {locations};
    }}""", "yes", True, False),
    # ... unless a "//" refusal inside it answers first.
    "site-regex-refusing": ("""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        merge_slashes off;
        location ~* \\.pdf$ {{ location ~ // {{ return 403; }} root {www}; }}
        include {locations};
    }}""", "yes", False, False),
    # A nested prefix does not end nginx's search: the regexes after it.
    "nested-prefix-then-regex": ("""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        merge_slashes off;
        location / {{ return 404; location /media/ {{ deny all; }} }}
        location ~ ^/media/.+\\.pdf$ {{ root {www}; }}
        include {locations};
    }}""", "no", True, False),
    # allow before deny all lets the allowed in.
    "allow-then-deny": ("""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        merge_slashes off;
        location /media/ {{ alias {media}/; allow 127.0.0.1; deny all; }}
        include {locations};
    }}""", "no", True, True),
    # nginx reads the request line with the default server's setting...
    "default-server-off": ("""
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name _;
        merge_slashes off;
        return 444;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost 127.0.0.1;
        location /media/ {{ alias {media}/; }}
        include {locations};
    }}""", "no", True, True),
    # ... so the serving server's own off does nothing.
    "serving-server-off": ("""
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name _;
        return 444;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost 127.0.0.1;
        merge_slashes off;
        location /media/ {{ alias {media}/; }}
        include {locations};
    }}""", "no", False, False),
}


@pytest.mark.parametrize("layout", sorted(DOUBLED_LAYOUTS))
def test_check_names_what_serves_doubled_slashes_exactly_when_nginx_does(make_probed, layout):
    servers, serve_public, serves, probe_sees = DOUBLED_LAYOUTS[layout]
    d = make_probed(servers=servers, options={"nginx": {"serve_public": serve_public}})
    d.add_file("private/secret.pdf")
    statuses = {t: get_host(d.port, t) for t in
                ("/media//private/secret.pdf", "//media/private/secret.pdf")}
    assert any(s == 200 for s in statuses.values()) == serves, statuses
    st = probed(d)
    assert st["nginx"]["enforcing"] is (not probe_sees), st
    if probe_sees:
        assert "merge_slashes" in st["nginx"]["enforcing_reason"], st
    r, config = checked(d)
    if serves:
        assert kinds(config) == ["merge-slashes-off"], config
        assert "Problem at " in r.out and "merge_slashes off keeps" in r.out, r.out
    else:
        assert "merge-slashes-off" not in kinds(config), config


def get_host(port, target):
    """The status of target from the server {} named localhost."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target, headers={"Host": "localhost"})
        return conn.getresponse().status
    except (ConnectionError, http.client.RemoteDisconnected):
        return None  # return 444: closed
    finally:
        conn.close()


def test_probes_run_at_start_when_nginx_runs(make_probed):
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /media/ {{ alias {media}/; }}
    }}""")
    assert d.status()["nginx"]["last_probe"] is None  # nginx started after it
    # start() returns once the start's test and reload are over: the
    # probe that follows them is part of that.
    d.restart()
    st = d.status()
    assert st["nginx"]["last_probe"] is not None, st
    assert_fail_open(d, st)


# securelinkctl check reads nginx -T (the daemon runs test_command with -T):
# it names where the snippets are included and what of the site's own takes
# private paths from the checks. The secrets nginx -T dumps stay in the
# daemon: neither CHECK's answer nor the CLI's output holds any.

def checked(d):
    """Runs check twice (text and --json); asserts that no secret of the
    keys file is in either; returns (text result, CHECK's config JSON)."""
    import json
    r = run_ctl("check", socket=d.socket)
    j = run_ctl("--json", "check", socket=d.socket)
    _, kids = d.keys()
    secrets = set(d.seen_secrets) | set(kids.values())
    assert secrets
    for s in secrets:
        assert s not in r.out and s not in r.err, "a secret in check's output"
        assert s not in j.out, "a secret in CHECK's answer"
    config = json.loads(j.out)["config"]
    assert config is not None and config.get("error") is None, j.out
    return r, config


def kinds(config):
    return [f["kind"] for f in config["findings"]]


def conf_line(d, needle):
    """FILE:LINE of the first line of nginx.conf holding needle, read from
    the file itself."""
    with open(d.nginx_conf) as f:
        for i, line in enumerate(f, 1):
            if needle in line:
                return f"{d.nginx_conf}:{i}"
    raise AssertionError(f"{needle!r} not in {d.nginx_conf}")


def test_check_says_where_the_includes_are(make_probed):
    d = make_probed()
    r, config = checked(d)
    assert r.rc == 0, r
    keys_at = conf_line(d, f"include {d.keys_file};")
    locs_at = conf_line(d, f"include {d.locations_file};")
    assert config["keys_included"] == [keys_at]
    [server] = config["servers"]
    assert server["serves_links"] is True and server["locations_included"] == locs_at
    assert config["findings"] == [], config
    assert f"the keys file is included in http {{}} at {keys_at}" in r.out
    assert f"includes the locations file at {locs_at}" in r.out
    assert "Nothing of the site's own takes private paths from the checks." in r.out


def test_check_names_the_missing_include_and_the_sites_location(make_probed):
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /media/ {{ alias {media}/; }}
    }}""")
    r, config = checked(d)
    assert r.rc == 1, r
    assert kinds(config) == ["locations-missing", "location-serves-private"], config
    at = conf_line(d, "location /media/")
    assert f"Problem at {at}: location /media/ serves /media/private/ without any " \
        "secure_link check" in r.out, r.out
    assert f'add "include {d.locations_file};" to that server {{}}' in r.out
    assert "does not include the locations file" in r.out


def test_check_names_a_server_level_rewrite_before_the_checks(make_probed):
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {www};
        rewrite ^/media/(.*)$ /media-store/$1 break;
        location /media-store/ {{ alias {media}/; }}
        include {locations};
    }}""")
    r, config = checked(d)
    assert r.rc == 1, r
    assert kinds(config) == ["server-rewrite"], config
    at = conf_line(d, "rewrite ^/media/")
    assert f"Problem at {at}: rewrite ^/media/(.*)$ at server level runs before any " \
        "location and takes /media/private/ away" in r.out, r.out
    assert "Fix: move it into the location it is for" in r.out


def test_check_finds_no_fault_in_a_rewrite_that_keeps_the_path(make_probed):
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {www};
        rewrite ^(/media/private/.*)$ $1 break;
        location ~ ^/media/ {{ root {www}; }}
        include {locations};
    }}""")
    r, config = checked(d)
    assert r.rc == 0, r
    assert config["findings"] == [], config


def test_check_names_the_include_in_the_wrong_server(make_probed):
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name _;
        root {www};
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name files.example.test;
        root {www};
        include {locations};
    }}""")
    r, config = checked(d)
    assert r.rc == 1, r
    assert kinds(config) == ["locations-missing", "locations-in-other-server"], config
    listen_at = conf_line(d, "default_server;")
    default_at = f"{d.nginx_conf}:{int(listen_at.rsplit(':', 1)[1]) - 1}"  # "server {"
    serving = [s for s in config["servers"] if s["serves_links"]]
    assert [s["at"] for s in serving] == [default_at], config
    assert "the locations file is included in the server {} at" in r.out
    assert f"(server_name files.example.test), which does not serve 127.0.0.1:{d.port}" \
        in r.out, r.out
    assert "Fix: move the include into that server {}" in r.out


def test_check_names_a_longer_prefix_that_shadows_ours(make_probed):
    # The include is there, and a probe of a random name passes: the
    # site's longer prefix still serves the files under it unchecked.
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /media/private/reports/ {{ alias {media}/private/reports/; }}
        location = /media/private/index.txt {{ alias {media}/private/index.txt; }}
        include {locations};
    }}""")
    body = d.add_file("private/reports/r.txt")
    # nginx's own verdict: the file is served without a token.
    assert d.get(f"{d.options['links']['base_url']}/media/private/reports/r.txt") == (200, body)
    r, config = checked(d)
    assert kinds(config) == ["location-shadows", "location-shadows"], config
    at = conf_line(d, "location /media/private/reports/")
    assert f"Problem at {at}: location /media/private/reports/ takes the paths under " \
        "it away from the secure_link check of /media/private/" in r.out, r.out
    at = conf_line(d, "location = /media/private/index.txt")
    assert f"Problem at {at}: location = /media/private/index.txt takes that path" in r.out
