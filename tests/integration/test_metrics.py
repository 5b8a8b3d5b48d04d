# SPDX-License-Identifier: MIT
"""securelinkctl metrics against the real daemon and nginx: promtool
(Debian's prometheus package) judges the format, the counts come from what
the test did."""

import os
import re
import shutil
import subprocess

import pytest

from ctlsite import run_ctl
from daemonsite import err_code
from test_probes import make_probed  # noqa: F401 (fixture)

PROMTOOL = shutil.which("promtool")


def promtool_check(text):
    if not PROMTOOL:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert p.returncode == 0, f"promtool: {p.stdout}{p.stderr}\n{text}"


def samples(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = value
    return out


def test_metrics_pass_promtool_and_count_what_happened(make_probed):
    d = make_probed()
    for i in range(3):
        d.sign(f"/media/private/{i}.txt")
    assert err_code(d.ask("SIGN relative/path")) == "bad-target"
    assert err_code(d.ask("SIGN /media/private/a ttl=0")) == "bad-ttl"
    kid = d.rotate()  # a reload, then the probe that gates the key

    r = run_ctl("metrics", socket=d.socket)
    assert r.rc == 0, r
    promtool_check(r.out)
    s = samples(r.out)
    assert s["securelink_up"] == "1"
    # open_daemon's SIGN that waits for the first key, and ours.
    assert s["securelink_links_signed_total"] == "4"
    assert s['securelink_errors_total{code="bad-target"}'] == "1"
    assert s['securelink_errors_total{code="bad-ttl"}'] == "1"
    assert s['securelink_errors_total{code="internal"}'] == "0"
    assert s["securelink_rotations_total"] == "2"  # the first key, then kid
    assert s["securelink_enforcing"] == "1"
    assert s["securelink_probe_failures_total"] == "0"
    assert s["securelink_reload_failures_total"] == "0"
    assert 0 <= int(s["securelink_active_key_age_seconds"]) < 600
    assert 0 < int(s["securelink_next_rotation_seconds"]) <= 24 * 3600
    # The first key retired at the rotation: its drop is a day ahead.
    assert kid == 2
    assert 0 < int(s['securelink_key_drop_seconds{kid="1"}']) <= 25 * 3600


def test_metrics_of_a_fail_open_nginx(make_probed):
    d = make_probed(servers="""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /media/ {{ alias {media}/; }}
    }}""")
    assert run_ctl("check", socket=d.socket).rc == 1
    r = run_ctl("metrics", socket=d.socket)
    promtool_check(r.out)
    s = samples(r.out)
    assert s["securelink_enforcing"] == "0"
    assert s["securelink_probe_failures_total"] == "1"


def test_metrics_before_any_probe_say_nan(make_probed):
    d = make_probed(options={"nginx": {"probe": "no"}})
    r = run_ctl("metrics", socket=d.socket)
    promtool_check(r.out)
    assert samples(r.out)["securelink_enforcing"] == "NaN"


def test_metrics_output_file_says_down_when_the_daemon_is_gone(tmp_path):
    out = tmp_path / "securelink.prom"
    r = run_ctl("metrics", "--output", str(out), socket=str(tmp_path / "nope.sock"))
    assert r.rc == 4, r
    text = out.read_text()
    promtool_check(text)
    assert samples(text) == {"securelink_up": "0"}
    assert not os.path.exists(str(out) + ".tmp")


def test_metrics_output_file_replaces_the_old_one(make_probed, tmp_path):
    d = make_probed()
    out = tmp_path / "securelink.prom"
    out.write_text("old\n")
    r = run_ctl("metrics", "-o", str(out), socket=d.socket)
    assert r.rc == 0 and r.out == "", r
    text = out.read_text()
    promtool_check(text)
    assert re.search(r"^securelink_up 1$", text, re.M)
