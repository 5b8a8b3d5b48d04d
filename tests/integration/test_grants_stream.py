# SPDX-License-Identifier: MIT
"""Directory grants (issue 16) with players no one here wrote: Debian's
ffmpeg makes an HLS stream with a multivariant playlist (two renditions in
subdirectories) and a DASH stream with segment templates, then reads them
through a path-form grant and through the grant cookie; curl reads through
the cookie with its own cookie parser. nginx's access log is the known
answer: every request the player made got the whole file (200, or 206
to ffmpeg's "Range: bytes=0-", which asks for the whole file).

And 20 rotations while ffmpeg reads a long stream through one grant: not
one 403."""

import os
import threading
import time
import urllib.parse

import pytest

from daemonsite import TIMEOUT, close_daemon, open_daemon, require_binaries
from grantsite import (HLS_SEGMENTS, curl, LoggedDaemon, install_tree, run_ffmpeg,
                       split_base, split_cookie)
from grantsite import streams  # noqa: F401 (a pytest fixture, used by name)

PREFIX = "/media/private/streams/"


@pytest.fixture(scope="module")
def sd(streams):
    """One daemon and nginx serving the session's streams under
    media/private/streams/."""
    require_binaries()
    d = open_daemon(cls=LoggedDaemon)
    try:
        install_tree(streams, os.path.join(d.media, "private", "streams"))
        yield d
    finally:
        for error in close_daemon(d):
            raise error


def grant(d, directory, form):
    return d.sign(PREFIX + directory, f"grant={form}")


def whole_file(status, range_):
    """200, or 206 to a Range that asks for all of it (ffmpeg sends
    "Range: bytes=0-" with every request)."""
    return status == 200 or (status == 206 and range_ == "bytes=0-")


def assert_all_served(requests, what, at_least):
    bad = [(s, r, u) for s, r, u in requests if not whole_file(s, r)]
    assert not bad, f"{what}: nginx did not serve {bad[:5]} ({len(bad)} in all)"
    assert len(requests) >= at_least, f"{what}: only {len(requests)} requests: {requests}"


def segments(requests, suffix):
    return [u for _, _, u in requests if u.endswith(suffix)]


@pytest.mark.parametrize("stream,entry,suffix", [
    ("hls/", "master.m3u8", ".ts"),
    ("dash/", "manifest.mpd", ".m4s"),
])
def test_ffmpeg_reads_the_stream_through_a_path_grant(sd, stream, entry, suffix):
    base = grant(sd, stream, "path")
    m = split_base(base)
    assert m.group("dir") == "private/streams/" + stream
    mark = sd.log_mark()
    r = run_ffmpeg("-i", base + entry, "-map", "0", "-c", "copy", "-f", "null", "-")
    assert r.returncode == 0, r.stderr
    got = sd.requests_since(mark)
    # Two renditions of 24 one-second segments (DASH: and their init
    # segments), every one of them through the grant, all 200.
    assert_all_served(got, f"ffmpeg -i {entry}", 2 * HLS_SEGMENTS)
    assert len(segments(got, suffix)) >= 2 * (HLS_SEGMENTS - 1), got
    prefix = urllib.parse.urlsplit(base).path
    assert all(u.startswith(prefix) for _, _, u in got), got
    if stream == "hls/":
        assert {u.rsplit("/", 2)[1] for u in segments(got, ".ts")} == {"v0", "v1"}, \
            "ffmpeg read both renditions, from their subdirectories"


@pytest.mark.parametrize("stream,entry,suffix", [
    ("hls/", "master.m3u8", ".ts"),
    ("dash/", "manifest.mpd", ".m4s"),
])
def test_ffmpeg_reads_the_stream_with_the_grant_cookie(sd, stream, entry, suffix):
    """ffmpeg's -cookies takes Set-Cookie values and sends each cookie where
    its Path matches: the daemon's answer goes in as it is."""
    cookie = grant(sd, stream, "cookie")
    _, attrs = split_cookie(cookie)
    assert attrs["path"] == PREFIX + stream
    plain = sd.base_url + PREFIX + stream + entry
    mark = sd.log_mark()
    r = run_ffmpeg("-cookies", cookie, "-i", plain, "-map", "0", "-c", "copy", "-f", "null", "-")
    assert r.returncode == 0, r.stderr
    got = sd.requests_since(mark)
    assert_all_served(got, f"ffmpeg -cookies ... -i {entry}", 2 * HLS_SEGMENTS)
    assert len(segments(got, suffix)) >= 2 * (HLS_SEGMENTS - 1), got
    assert all(u.startswith(PREFIX + stream) and "_grant" not in u for _, _, u in got), got

    # The control: without the cookie, the same read is refused.
    mark = sd.log_mark()
    run_ffmpeg("-i", plain, "-map", "0", "-c", "copy", "-f", "null", "-")
    assert [s for s, _, _ in sd.requests_since(mark)] == [403]


def test_curl_with_a_cookie_jar_sends_the_grant_under_its_path_only(sd, tmp_path):
    """curl reads the cookie from a file of Set-Cookie headers (its own
    parser applies Path and Expires), and from a Netscape cookie jar written
    from the answer's fields; both fetch the playlists and segments under
    the directory, and neither sends the cookie for another directory."""
    cookie = grant(sd, "hls/", "cookie")
    m, attrs = split_cookie(cookie)
    headers = tmp_path / "headers.txt"
    headers.write_text(f"Set-Cookie: {cookie}\n")
    name_value = cookie.split(";", 1)[0]
    name, value = name_value.split("=", 1)
    jar = tmp_path / "jar.txt"
    jar.write_text("# Netscape HTTP Cookie File\n"
                   f"#HttpOnly_127.0.0.1\tFALSE\t{attrs['path']}\tFALSE\t{m.group('expires')}"
                   f"\t{name}\t{value}\n")
    under = [sd.base_url + PREFIX + "hls/" + p
             for p in ("master.m3u8", "v0/index.m3u8", "v1/index.m3u8", "v0/seg000.ts",
                       f"v1/seg{HLS_SEGMENTS - 1:03d}.ts")]
    other = sd.base_url + PREFIX + "dash/manifest.mpd"
    for source in (headers, jar):
        codes, sent = curl(under, "-b", str(source))
        assert codes == [200] * len(under), source
        assert sent.count(f"Cookie: {name_value}") == len(under), sent
        codes, sent = curl([other], "-b", str(source))
        assert codes == [403] and not any(s.startswith("Cookie:") for s in sent), source
    # curl -b with the value itself sends it anywhere: nginx still refuses
    # it outside the directory it was made for.
    codes, sent = curl([under[0], other], "-b", name_value)
    assert codes == [200, 403] and sent.count(f"Cookie: {name_value}") == 2, sent


def wait_only_accepting_workers(d, old):
    """Returns once none of the workers in old, nor any worker a reload
    told to quit, is left: /proc is the only signal, polled with a
    deadline."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        now = d.workers()
        if now and not (now & old) and all(d._accepting(p) for p in now):
            return
        assert time.monotonic() < deadline, f"old nginx workers stay: {now}"
        time.sleep(0.02)


def test_20_rotations_while_ffmpeg_reads_through_one_grant_give_no_403(streams):
    """One path grant and one cookie made before the first rotation; ffmpeg
    reads a 150-segment stream through them, again and again, while the
    daemon rotates 20 times (each ROTATE answered once the key is active,
    i.e. after nginx reloaded with it). nginx never answers 403: the
    grant's key stays in the snippet for the grant's lifetime."""
    require_binaries()
    d = open_daemon(cls=LoggedDaemon)
    try:
        install_tree(os.path.join(streams, "long"), os.path.join(d.media, "private", "long"))
        base = d.sign("/media/private/long/", "grant=path", "ttl=600")
        cookie = d.sign("/media/private/long/", "grant=cookie", "ttl=600")
        kid = int(split_base(base).group("kid"))
        plain = d.base_url + "/media/private/long/master.m3u8"
        reads = [["-i", base + "master.m3u8"], ["-cookies", cookie, "-i", plain]]

        rotated, errors = [], []

        def rotate():
            try:
                for _ in range(20):
                    rotated.append(d.rotate())
            except BaseException as e:  # reported by the test
                errors.append(e)

        mark = d.log_mark()
        old = d.workers()
        t = threading.Thread(target=rotate)
        t.start()
        n = 0
        try:
            # Reads until the rotations are done, and one more after them.
            while True:
                done = not t.is_alive()
                r = run_ffmpeg(*reads[n % 2], "-c", "copy", "-f", "null", "-")
                assert r.returncode == 0, r.stderr
                n += 1
                if done:
                    break
        finally:
            t.join()
        assert not errors, errors
        assert len(rotated) == 20 and rotated[-1] >= kid + 20, rotated
        # Every worker that served a read during the rotations has exited
        # (so has logged every request): then the log is complete.
        wait_only_accepting_workers(d, old)
        got = d.requests_since(mark)
        statuses = {}
        for s, _, _ in got:
            statuses[s] = statuses.get(s, 0) + 1
        assert statuses.get(403, 0) == 0, f"{statuses[403]} requests got 403 during rotations"
        assert_all_served(got, "ffmpeg during 20 rotations", n * 150)
        assert n >= 2, "no read overlapped the rotations"
    finally:
        for error in close_daemon(d):
            raise error
