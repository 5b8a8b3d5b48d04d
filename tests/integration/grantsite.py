# SPDX-License-Identifier: MIT
"""Directory grants (issue 16) against a real nginx: a daemon whose nginx
keeps an access log, the grant answers taken apart, the tokens nginx
computes for them (hashlib, for forgeries and known answers), and the
streams Debian's ffmpeg makes for the player tests.

The contract is ../../docs/protocol.md and DESIGN.md, "Directory grants":

    SIGN <dir>/ grant=path   -> OK <base>_grant/<kid>/<expires>/<token>/<depth>/<dir below media_url>
    SIGN <dir>/ grant=cookie -> OK securelink_grant=<kid>.<expires>.<depth>.<token>; Path=...; ...
    token = base64url_nopad(MD5("<expires>grant:<decoded absolute dir><ip> <secret>"))
"""

import hashlib
import http.client
import os
import re
import shutil
import subprocess
import time

import pytest

from daemonsite import TIMEOUT, Daemon, b64url
from nginxsite import http_get

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
CURL = shutil.which("curl") or "/usr/bin/curl"

# A path-form base URL, as the daemon answers it.
PATH_FORM_RE = re.compile(
    r"(?P<origin>https?://[^/]+)?(?P<media>/.*?/)_grant/(?P<kid>\d+)/(?P<expires>\d+)/"
    r"(?P<token>[A-Za-z0-9_-]{22})/(?P<depth>\d+)/(?P<dir>.*/)?")
COOKIE_RE = re.compile(r"securelink_grant=(?P<kid>\d+)\.(?P<expires>\d+)\.(?P<depth>\d+)\."
                       r"(?P<token>[A-Za-z0-9_-]{22})(?P<attrs>(; [^;]+)*)")


def grant_token(expires, directory, secret, ip=""):
    """What nginx computes for a grant of the decoded absolute directory:
    hashlib's MD5 over "<expires>grant:<dir><ip> <secret>"."""
    if isinstance(directory, str):
        directory = directory.encode()
    return b64url(hashlib.md5(str(expires).encode() + b"grant:" + directory + ip.encode()
                              + b" " + secret.encode()).digest())


def path_form(media_url, kid, expires, token, depth, below):
    """A path-form base (absolute path, no origin) from its parts."""
    return f"{media_url}_grant/{kid}/{expires}/{token}/{depth}/{below}"


def cookie_value(kid, expires, depth, token):
    return f"{kid}.{expires}.{depth}.{token}"


def split_base(answer):
    """The fields of a path-form answer; fails the test for anything else."""
    m = PATH_FORM_RE.fullmatch(answer)
    assert m, f"not a path-form grant answer: {answer!r}"
    return m


def split_cookie(answer):
    """(fields match, {attribute lower-case: value}) of a cookie answer."""
    m = COOKIE_RE.fullmatch(answer)
    assert m, f"not a Set-Cookie value for securelink_grant: {answer!r}"
    attrs = {}
    for a in m.group("attrs").split("; ")[1:]:
        k, _, v = a.partition("=")
        attrs[k.lower()] = v
    return m, attrs


class LoggedDaemon(Daemon):
    """A daemon whose nginx logs every request of its server as
    "<status> <Range header or -> <request line's URI>" in access.log: the
    log is nginx's own word on what it answered a player."""

    def write_nginx_conf(self):
        self.access_log = os.path.join(self.dir, "access.log")
        super().write_nginx_conf(
            http_extra="log_format grants '$status $http_range $request_uri';",
            server_extra=f"access_log {self.access_log} grants;")

    def log_mark(self):
        """A position in the access log, for requests_since()."""
        try:
            return os.path.getsize(self.access_log)
        except FileNotFoundError:
            return 0

    def requests_since(self, mark):
        """[(status, range, uri)] nginx logged from mark on. A worker writes a
        request's line right after its last byte went out, in the same event
        handler; a request of our own on a fresh connection, answered by the
        one worker, therefore comes after every line of the requests before
        it. That request's line ends the list (and is not in it)."""
        sentinel = f"/end-of-requests-{time.monotonic_ns()}"
        assert http_get(sentinel, self.port)[0] == 404
        deadline = time.monotonic() + TIMEOUT
        while True:
            with open(self.access_log, "rb") as f:
                f.seek(mark)
                lines = f.read().decode(errors="replace").splitlines()
            entries = [tuple(line.split(" ", 2)) for line in lines]
            for i, (_, _, uri) in enumerate(entries):
                if uri == sentinel:
                    return [(int(s), r, u) for s, r, u in entries[:i]]
            # Only after a reload, when the sentinel may reach a new worker
            # while an old one still finishes: bounded by TIMEOUT.
            if time.monotonic() > deadline:
                raise AssertionError("nginx never logged the end-of-requests marker")
            time.sleep(0.01)


def install_tree(src, dst):
    """Copies the directory src to dst, readable by nginx's workers."""
    shutil.copytree(src, dst)
    os.chmod(dst, 0o755)
    for root, dirs, files in os.walk(dst):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    d = os.path.dirname(dst)
    while not os.path.ismount(d) and os.stat(d).st_mode & 0o005 != 0o005:
        os.chmod(d, 0o755)
        d = os.path.dirname(d)


def run_ffmpeg(*args, timeout=60):
    """ffmpeg quiet but for errors; returns the CompletedProcess."""
    return subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", *args],
                          capture_output=True, text=True, timeout=timeout)


def require_ffmpeg():
    if not os.access(FFMPEG, os.X_OK):
        pytest.fail(f"{FFMPEG} is missing: scripts/bootstrap installs Debian's ffmpeg")


# Tiny and quick: 64x48 (and 32x24) test pictures at 10 frames/s, a key
# frame every second, so that every 1 s segment starts with one.
_VIDEO = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration={seconds}"]
_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-keyint_min", "10",
         "-sc_threshold", "0"]
HLS_SEGMENTS = 24


def make_hls(out, seconds=HLS_SEGMENTS, renditions=2):
    """An HLS stream in out: master.m3u8 naming v0/index.m3u8 (and
    v1/index.m3u8), one .ts per second in each rendition's subdirectory."""
    os.makedirs(out)
    video = [a.format(seconds=seconds) for a in _VIDEO]
    maps, sizes = [], []
    for i in range(renditions):
        maps += ["-map", "0:v"]
        sizes += [f"-s:v:{i}", "64x48" if i == 0 else "32x24", f"-b:v:{i}", f"{40 // (i + 1)}k"]
    r = run_ffmpeg(*video, *maps, *_X264, *sizes, "-f", "hls", "-hls_time", "1",
                   "-hls_list_size", "0", "-hls_playlist_type", "vod",
                   "-master_pl_name", "master.m3u8",
                   "-var_stream_map", " ".join(f"v:{i}" for i in range(renditions)),
                   "-hls_segment_filename", os.path.join(out, "v%v", "seg%03d.ts"),
                   os.path.join(out, "v%v", "index.m3u8"))
    assert r.returncode == 0, f"ffmpeg could not make the HLS stream: {r.stderr}"
    for i in range(renditions):
        segs = [n for n in os.listdir(os.path.join(out, f"v{i}")) if n.endswith(".ts")]
        assert len(segs) >= seconds - 1, f"v{i} has only {len(segs)} segments"


def make_dash(out, seconds=HLS_SEGMENTS):
    """A DASH stream in out: manifest.mpd with SegmentTemplate (init-<id>.m4s,
    chunk-<id>-<number>.m4s), two representations."""
    os.makedirs(out)
    video = [a.format(seconds=seconds) for a in _VIDEO]
    r = run_ffmpeg(*video, "-map", "0:v", "-map", "0:v", *_X264, "-s:v:1", "32x24",
                   "-f", "dash", "-seg_duration", "1", "-use_template", "1",
                   "-use_timeline", "1", "-adaptation_sets", "id=0,streams=v",
                   "-init_seg_name", "init-$RepresentationID$.m4s",
                   "-media_seg_name", "chunk-$RepresentationID$-$Number%05d$.m4s",
                   os.path.join(out, "manifest.mpd"))
    assert r.returncode == 0, f"ffmpeg could not make the DASH stream: {r.stderr}"
    with open(os.path.join(out, "manifest.mpd")) as f:
        mpd = f.read()
    assert "<SegmentTemplate" in mpd and 'media="chunk-$RepresentationID$' in mpd, mpd


@pytest.fixture(scope="session")
def streams(tmp_path_factory):
    """Made once per session by ffmpeg: hls/ (master.m3u8, v0/, v1/, 24
    segments each), dash/ (manifest.mpd and its segments) and long/ (one
    rendition of 150 segments, for reads that outlast 20 rotations)."""
    require_ffmpeg()
    root = str(tmp_path_factory.mktemp("streams"))
    make_hls(os.path.join(root, "hls"))
    make_dash(os.path.join(root, "dash"))
    make_hls(os.path.join(root, "long"), seconds=150, renditions=1)
    return root


def fetch(port, target, cookie=None):
    """GETs target (a path and query, sent exactly as written: no
    normalization, no re-quoting) from 127.0.0.1:port, with
    "Cookie: securelink_grant=<cookie>" when cookie is given. Returns
    (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", target,
                     headers={"Cookie": f"securelink_grant={cookie}"} if cookie else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def get(port, target, cookie=None):
    """fetch()'s status."""
    return fetch(port, target, cookie)[0]


def curl(urls, *opts):
    """curl's status codes for urls (a list: one connection, in order) with
    the options opts, and what it sent (its -v lines starting "> ")."""
    args = [a for u in urls for a in ("-o", "/dev/null", u)]
    p = subprocess.run([CURL, "-sv", "-w", "%{http_code}\\n", *opts, *args],
                       capture_output=True, encoding="utf-8", errors="replace",
                       timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    sent = [line[2:] for line in p.stderr.splitlines() if line.startswith("> ")]
    return [int(x) for x in p.stdout.split()], sent
