"""securelinkd's own command line: --check-config, --version, --help and bad
usage, with the exit codes securelinkd(8) documents."""
import os
import subprocess

import pytest

BUILD = os.environ.get("SECURELINK_BUILD_DIR", "build")
SOURCE = os.environ.get("SECURELINK_SOURCE_DIR", ".")
SECURELINKD = os.path.join(BUILD, "daemon", "securelinkd")


def run(*args):
    return subprocess.run([SECURELINKD, *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def test_check_config_accepts_the_shipped_file_and_starts_nothing(tmp_path):
    shipped = os.path.join(SOURCE, "conf", "securelinkd.conf")
    r = run("-c", shipped, "--check-config")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"securelinkd: {shipped}: configuration OK"


def test_check_config_names_file_line_and_key_of_an_error(tmp_path):
    conf = tmp_path / "broken.conf"
    conf.write_text("[keys]\nrotate_every = 24h\nmax_link_ttl = 3x\n")
    r = run("-c", str(conf), "--check-config")
    assert r.returncode == 78
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('securelinkd: broken.conf:3: max_link_ttl: "3x"')
    assert "(use" in lines[0]


def test_missing_config_file_is_a_config_error(tmp_path):
    r = run("-c", str(tmp_path / "nope.conf"), "--check-config")
    assert r.returncode == 78
    assert len(r.stderr.strip().splitlines()) == 1
    assert "nope.conf" in r.stderr


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("securelinkd ")
    r = run("--help")
    assert r.returncode == 0 and "--check-config" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "unknown option '--bogus'"),
    (["-x"], "unknown option '-x'"),
    (["-c"], "-c needs an argument"),
    (["extra"], "unexpected argument 'extra'"),
])
def test_bad_usage_is_one_line_and_exit_64(args, needle):
    r = run(*args)
    assert r.returncode == 64
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_check_config_refuses_parameter_names_that_differ_only_in_case(tmp_path):
    # nginx's $arg_NAME matches names without regard to case: $arg_token would
    # read the expires parameter here, and every link would be 403.
    conf = tmp_path / "case.conf"
    conf.write_text("[links]\ntoken_param = Expires\nexpires_param = expires\n")
    r = run("-c", str(conf), "--check-config")
    assert r.returncode == 78, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('securelinkd: case.conf:3: expires_param: "expires" is the same '
                               'parameter as token_param "Expires" to nginx'), lines[0]
    assert "give each parameter a name of its own" in lines[0]


@pytest.mark.parametrize("key,prefix,what", [
    ("private_prefixes", "private", "also sign"),
    ("public_prefixes", "pub", "also leave unsigned"),
])
def test_check_config_warns_that_a_prefix_without_slash_means_a_directory(tmp_path, key, prefix,
                                                                            what):
    # django-nginx-secure-links matches prefixes with startswith: "private"
    # covers /media/privatefoo.pdf there, not here. The file is valid, so
    # --check-config says OK, and one line on stderr says what it means.
    conf = tmp_path / "warn.conf"
    conf.write_text(f"[links]\n\n{key} = {prefix} other/\n")
    r = run("-c", str(conf), "--check-config")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"securelinkd: {conf}: configuration OK"
    lines = r.stderr.strip().splitlines()
    assert lines == [
        f'securelinkd: warning: warn.conf:3: {key}: "{prefix}" is read as "{prefix}/": it '
        f'covers /media/{prefix}/... but not /media/{prefix}foo.pdf, which '
        f'django-nginx-secure-links would {what} (write "{prefix}/" to silence this warning)'
    ]


def test_check_config_is_silent_about_prefixes_with_slash(tmp_path):
    conf = tmp_path / "quiet.conf"
    conf.write_text("[links]\nprivate_prefixes = private/ other/\n")
    r = run("-c", str(conf), "--check-config")
    assert r.returncode == 0 and r.stderr == ""
