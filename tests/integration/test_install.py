# SPDX-License-Identifier: MIT
"""`securelinkd --install-snippets`: root's side of the snippets under
systemd (issue 14). securelinkd, unprivileged there, only stages them in its
state directory; the privileged test unit installs them where nginx includes
them, and only what securelink renders: a keys file that is one map of kids
to literal secrets, a locations file that is the rendering of root's
configuration. Anything else, such as an access_log that nginx's master
would open as root, is refused and nothing is installed.

The staged copies here are the daemon's own snippets (what it renders), and
nginx decides whether what was installed works: `nginx -t` and a link
fetched after a reload."""

import os
import shutil
import subprocess

from daemonsite import TIMEOUT, daemon_binary, make_daemon  # noqa: F401 (a fixture)

PRIVATE = "/media/private/report.pdf"
BODY = b"a private report\n"
INJECTION = "\taccess_log /tmp/securelink-install-pwned;\n"


def staged(d):
    return os.path.join(d.state, "nginx")


def stage(d):
    """Stages the daemon's snippets as securelinkd does under systemd."""
    os.makedirs(staged(d), mode=0o700, exist_ok=True)
    for src in (d.keys_file, d.locations_file):
        shutil.copyfile(src, os.path.join(staged(d), os.path.basename(src)))


def install(d, options=None):
    """Runs the installer with the daemon's configuration in staged mode
    (test_command = systemd:UNIT); returns (exit status, stderr)."""
    conf = os.path.join(d.dir, "install.conf")
    opts = {s: dict(k) for s, k in (options or d.options).items()}
    opts["nginx"]["test_command"] = "systemd:securelink-nginx-test.service"
    with open(conf, "w") as f:
        f.write(d.config_text(opts))
    r = subprocess.run([daemon_binary(), "--install-snippets", "-c", conf],
                       capture_output=True, text=True, timeout=TIMEOUT)
    return r.returncode, r.stderr


def installed(d):
    with open(d.keys_file, "rb") as k, open(d.locations_file, "rb") as l:
        return k.read(), l.read()


def nginx_test(d):
    r = subprocess.run(d.options["nginx"]["test_command"].split(), capture_output=True,
                       text=True, timeout=TIMEOUT)
    return r.returncode, r.stderr


def test_staged_snippets_are_installed_and_nginx_takes_them(make_daemon):
    d = make_daemon()
    d.add_file("private/report.pdf", BODY)
    stage(d)
    want = installed(d)
    os.unlink(d.keys_file)
    os.unlink(d.locations_file)

    code, err = install(d)
    assert (code, err) == (0, "")
    assert installed(d) == want
    assert os.stat(d.keys_file).st_mode & 0o777 == 0o600
    assert nginx_test(d)[0] == 0
    assert d.get(d.sign(PRIVATE)) == (200, BODY)


def test_injected_directives_are_refused_and_nothing_is_installed(make_daemon):
    d = make_daemon()
    d.add_file("private/report.pdf", BODY)
    before = installed(d)

    # In the keys file (http {}): inside the keys' map, inside the grants'
    # copy of it, among the maps without secrets, and at the end.
    grant_map = "map $securelink_gk $securelink_grant_secret {\n"
    for where, message in (("inside", "keys file is not what securelinkd writes"),
                           ("grant map", "grant map (after line"),
                           ("maps", "maps after the keys in"),
                           ("end", "maps after the keys in")):
        stage(d)
        path = os.path.join(staged(d), "keys.conf")
        with open(path) as f:
            text = f.read()
        assert grant_map in text
        if where == "inside":
            text = text.replace("\n}", "\n" + INJECTION + "}", 1)
        elif where == "grant map":
            text = text.replace(grant_map, grant_map + INJECTION)
        elif where == "maps":
            text = text.replace("{16})", "{16}|.*)")
        else:
            text = text + INJECTION
        with open(path, "w") as f:
            f.write(text)
        code, err = install(d)
        assert code == 1 and message in err, (where, err)
        assert installed(d) == before
        # The refusal names the line, never its content: it holds secrets.
        assert d.keys()[0] not in err

    # In the locations file (server {}).
    stage(d)
    with open(os.path.join(staged(d), "locations.conf"), "a") as f:
        f.write(INJECTION)
    code, err = install(d)
    assert code == 1 and "locations.conf is not what" in err, err
    assert installed(d) == before

    # A staged symbolic link is not followed into a file of root's.
    stage(d)
    os.unlink(os.path.join(staged(d), "keys.conf"))
    os.symlink(d.keys_file, os.path.join(staged(d), "keys.conf"))
    code, err = install(d)
    assert code == 1 and "not a regular file" in err, err
    assert installed(d) == before
    assert not os.path.exists("/tmp/securelink-install-pwned")


def test_a_secret_nginx_cannot_hold_literally_is_refused(make_daemon):
    d = make_daemon()
    before = installed(d)
    for bad in ('x" ; access_log /tmp/p', "x$request_body", "x\\y", ""):
        stage(d)
        path = os.path.join(staged(d), "keys.conf")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("\n}", f'\n\t"4242" "{bad}";\n}}'))
        code, err = install(d)
        assert code == 1 and "keys file" in err, (bad, err)
        assert installed(d) == before


def test_a_rotation_and_a_link_format_change_install(make_daemon):
    d = make_daemon()
    d.add_file("private/report.pdf", BODY)
    stage(d)
    assert install(d)[0] == 0  # remembers the configuration it rendered

    kid = d.rotate()
    stage(d)
    assert install(d) == (0, "")
    assert b'"%d"' % kid in installed(d)[0]

    # root's configuration says a new token_param, securelinkd still runs
    # with the old one (not reloaded yet): its staged locations are the last
    # install's rendering, and are installed.
    new = {s: dict(k) for s, k in d.options.items()}
    new["links"]["token_param"] = "t"
    stage(d)
    assert install(d, new) == (0, "")
    # Something that is neither rendering is not.
    with open(os.path.join(staged(d), "locations.conf"), "a") as f:
        f.write("# nothing\n")
    assert install(d, new)[0] == 1
    assert nginx_test(d)[0] == 0


def test_hmac_module_is_installed_only_as_rendered(make_daemon):
    """With algorithm = hmac-sha256 the keys file imports securelink.js:
    the installer puts the staged module beside the locations file, and
    only when it is exactly securelink's (issue 20)."""
    d = make_daemon({"links": {"algorithm": "hmac-sha256"}})
    d.add_file("private/report.pdf", BODY)
    js = os.path.join(os.path.dirname(d.locations_file), "securelink.js")
    stage(d)
    shutil.copyfile(js, os.path.join(staged(d), "securelink.js"))
    with open(js, "rb") as f:
        want_js = f.read()
    want = installed(d)
    for f in (d.keys_file, d.locations_file, js):
        os.unlink(f)

    assert install(d) == (0, "")
    assert installed(d) == want
    with open(js, "rb") as f:
        assert f.read() == want_js
    assert nginx_test(d)[0] == 0
    assert d.get(d.sign(PRIVATE)) == (200, BODY)

    # A module that is not securelink's is refused, and nothing installed.
    with open(os.path.join(staged(d), "securelink.js"), "a") as f:
        f.write("function steal(r) {}\n")
    os.unlink(js)
    code, err = install(d)
    assert code == 1 and "securelink.js is not what securelink renders" in err, err
    assert not os.path.exists(js)
