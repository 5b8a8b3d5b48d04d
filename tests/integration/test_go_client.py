# SPDX-License-Identifier: MIT
"""contrib/go: the Go client's own tests (contrib/go/securelink_test.go),
one pytest test each, against the real securelinkd and nginx and the fakes
of clientsite.py; plus `go vet` and `gofmt -l`.

Debian's golang-go, offline: GOPROXY=off, GOFLAGS=-mod=mod, GOPATH and
GOCACHE under the build directory. The test binary is built once per
process (`go test -c`) and run once per test function."""

import atexit
import os
import shutil
import subprocess
import tempfile
import threading

import pytest

from clientsite import SOURCE_DIR, ClientSite, declared_tests
from daemonsite import build_dir

GO_DIR = os.path.join(SOURCE_DIR, "contrib", "go")
BENCH_DIR = os.path.join(SOURCE_DIR, "bench", "go")  # bench/run's Go part
TESTS = declared_tests(os.path.join(GO_DIR, "securelink_test.go"), r"^func (Test\w+)\(t \*testing\.T\)")
GO = shutil.which("go")

_lock = threading.Lock()
_binary = {}


def go_env():
    cache = os.path.join(build_dir(), "contrib-go")
    return dict(os.environ, GOPROXY="off", GOFLAGS="-mod=mod", GOTOOLCHAIN="local",
                GOPATH=os.path.join(cache, "gopath"), GOCACHE=os.path.join(cache, "gocache"),
                GO111MODULE="on")


def run_go(*args, cwd=GO_DIR):
    return subprocess.run([GO, *args], cwd=cwd, env=go_env(), capture_output=True, text=True,
                          timeout=600)


def go_test_binary():
    if GO is None:
        pytest.fail("go is not installed: scripts/bootstrap installs golang-go")
    with _lock:
        if "path" not in _binary:
            tmp = tempfile.mkdtemp(prefix="sl-go-")
            atexit.register(shutil.rmtree, tmp, True)
            out = os.path.join(tmp, "securelink.test")
            r = run_go("test", "-c", "-o", out, ".")
            if r.returncode != 0:
                pytest.fail("go test -c failed:\n" + r.stdout + r.stderr)
            _binary["path"] = out
        return _binary["path"]


def test_go_suite_is_found():
    # A regex that matched nothing would make this file pass vacuously.
    assert len(TESTS) >= 10, TESTS


@pytest.mark.parametrize("name", TESTS)
def test_go(name):
    binary = go_test_binary()
    site = ClientSite(name)
    try:
        r = subprocess.run([binary, "-test.run", f"^{name}$", "-test.v", "-test.count=1",
                            "-test.timeout=300s"], cwd=GO_DIR, env=site.env(),
                           capture_output=True, text=True, timeout=400)
        output = r.stdout + r.stderr
        if r.returncode != 0 or f"--- PASS: {name} " not in output:
            pytest.fail(f"go test {name} failed (exit {r.returncode}):\n{output}\n"
                        + site.diagnostics())
    finally:
        site.close()


@pytest.mark.parametrize("where", [GO_DIR, BENCH_DIR])
def test_go_vet(where):
    if GO is None:
        pytest.fail("go is not installed: scripts/bootstrap installs golang-go")
    r = run_go("vet", "./...", cwd=where)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gofmt_has_nothing_to_change():
    gofmt = shutil.which("gofmt")
    if gofmt is None:
        pytest.fail("gofmt is not installed: scripts/bootstrap installs golang-go")
    r = subprocess.run([gofmt, "-l", GO_DIR, BENCH_DIR], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "", "run gofmt -w on: " + r.stdout + r.stderr
