# SPDX-License-Identifier: MIT
"""The man pages, as meson built them (BUILD/docs), against the programs'
own --help: every option and command --help shows is documented, and every
option the man pages' SYNOPSIS, OPTIONS and COMMANDS name exists in --help.
securelinkd.conf(5) documents every key of conf/securelinkd.conf with its
default, and nothing else.

Environment: SECURELINK_BUILD_DIR (default ./build), SECURELINK_SOURCE_DIR
(default: the checkout this file is in).
"""

import os
import re
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SECURELINK_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))

# An option as written in --help and in the pages: -c, --check-config. Not a
# lone "-", not the inside of a word (SECRET-FILE, django-nginx-secure-links).
OPTION_RE = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


def build_dir():
    return os.environ.get("SECURELINK_BUILD_DIR") or os.path.abspath("build")


def binary(*parts):
    path = os.path.join(build_dir(), *parts)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built: ninja -C BUILD, or set SECURELINK_BUILD_DIR")
    return path


def help_text(*argv):
    p = subprocess.run(list(argv) + ["--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == "", p
    return p.stdout


def plain(line):
    """A troff text line without font changes and escapes."""
    line = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", line)
    line = line.replace("\\*(Aq", "'").replace("\\&", "").replace("\\-", "-")
    line = re.sub(r"\\\(..", "?", line)
    return line.replace("\\e", "\\").replace("\\\\", "\\")


def man_page(name):
    """{section title: plain text} of BUILD/docs/<name>."""
    path = os.path.join(build_dir(), "docs", name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is not built (scdoc and ninja -C BUILD; see docs/meson.build)")
    sections, current = {}, None
    with open(path) as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if raw.startswith(".SH "):
                current = raw[4:].strip().strip('"')
                sections[current] = []
            elif raw.startswith(".") or raw.startswith("'"):
                # Requests (.P, .RS, .br, .nf ...) carry no text here.
                continue
            elif current is not None:
                sections[current].append(plain(raw))
    return {k: "\n".join(v) for k, v in sections.items()}


def options_in(text):
    return set(OPTION_RE.findall(text))


def help_section(text, title):
    """The indented lines after "Title:" up to the next blank line."""
    m = re.search(rf"^{title}:\n((?:  .*\n?)+)", text, re.M)
    assert m, f"no {title}: in\n{text}"
    return m.group(1)


# ---- securelinkctl(1) ----

CTL_COMMANDS = ["sign", "verify", "rotate", "status", "check", "metrics", "nginx-config", "import-key"]


@pytest.fixture(scope="module")
def ctl_help():
    ctl = binary("client", "securelinkctl")
    return {"": help_text(ctl), **{c: help_text(ctl, c) for c in CTL_COMMANDS}}


@pytest.fixture(scope="module")
def ctl_man():
    return man_page("securelinkctl.1")


def test_ctl_help_lists_the_commands_the_test_knows(ctl_help):
    # Keeps CTL_COMMANDS honest: a new command must be added here, and so
    # get its help and its man page checked.
    listed = re.findall(r"^  ([a-z][a-z-]+)", help_section(ctl_help[""], "Commands"), re.M)
    assert listed == CTL_COMMANDS


def test_ctl_every_command_is_in_the_synopsis_and_commands(ctl_help, ctl_man):
    synopsis_commands = re.findall(r"^securelinkctl (?:\[[^\]]*\] )*([a-z][a-z-]+)",
                                   ctl_man["SYNOPSIS"], re.M)
    assert sorted(synopsis_commands) == sorted(CTL_COMMANDS)
    for c in CTL_COMMANDS:
        assert re.search(rf"^{re.escape(c)}\b", ctl_man["COMMANDS"], re.M), c


def test_ctl_every_help_option_is_in_the_man_page(ctl_help, ctl_man):
    for o in options_in(help_section(ctl_help[""], "Options")):
        assert o in options_in(ctl_man["OPTIONS"]), f"securelinkctl {o}"
        assert o in options_in(ctl_man["SYNOPSIS"]), f"securelinkctl {o}"
    # The commands' options the main --help shows, in COMMANDS.
    for o in options_in(help_section(ctl_help[""], "Commands")):
        assert o in options_in(ctl_man["COMMANDS"]), f"securelinkctl {o}"
    global_options = options_in(help_section(ctl_help[""], "Options"))
    # An entry's tag: the command, then only its arguments (capitals,
    # brackets), so body text starting with "sign tens of..." is no tag.
    tag = rf"^(?:{'|'.join(CTL_COMMANDS)})(?: [\[A-Z<].*)?$"
    for c in CTL_COMMANDS:
        # The command's own entry in COMMANDS: from its tag to the next.
        m = re.search(rf"^{re.escape(c)}(?: [\[A-Z<].*)?$.*?(?={tag}|\Z)",
                      ctl_man["COMMANDS"], re.M | re.S)
        assert m, f"no entry for {c} in COMMANDS"
        entry = m.group(0)
        usage = ctl_help[c].split("\n", 1)[0]
        for o in options_in(ctl_help[c]) - global_options:
            assert o in options_in(entry), f"securelinkctl {c} {o} is not in its COMMANDS entry"
            if o in options_in(usage):
                line = next(s for s in ctl_man["SYNOPSIS"].splitlines()
                            if re.search(rf"\] {re.escape(c)}\b|^securelinkctl {re.escape(c)}\b", s))
                assert o in options_in(line), f"securelinkctl {c} {o} is not in the SYNOPSIS"


def test_ctl_every_man_page_option_is_in_help(ctl_help, ctl_man):
    known = set().union(*(options_in(t) for t in ctl_help.values()))
    for section in ("SYNOPSIS", "OPTIONS", "COMMANDS"):
        for o in options_in(ctl_man[section]):
            assert o in known, f"securelinkctl(1) {section} names {o}, --help does not"


def test_ctl_exit_statuses_match(ctl_help, ctl_man):
    in_help = re.findall(r"^  (\d+)  ", help_section(ctl_help[""], "Exit status"), re.M)
    in_man = re.findall(r"^(\d+)$", ctl_man["EXIT STATUS"], re.M)
    assert in_help == in_man == [str(i) for i in range(8)]


def test_ctl_defaults_match(ctl_help, ctl_man):
    text = "\n".join(ctl_man.values())
    for path in ("/run/securelink/securelinkd.sock", "/etc/securelink/securelinkd.conf"):
        assert path in ctl_help[""] + ctl_help["nginx-config"]
        assert path in text
    assert "SECURELINK_SOCKET" in ctl_help[""] and "SECURELINK_SOCKET" in ctl_man["ENVIRONMENT"]


# ---- securelinkd(8) ----


@pytest.fixture(scope="module")
def daemon_help():
    return help_text(binary("daemon", "securelinkd"))


@pytest.fixture(scope="module")
def daemon_man():
    return man_page("securelinkd.8")


def test_daemon_help_options_are_in_the_man_page(daemon_help, daemon_man):
    opts = options_in(daemon_help)
    assert {"-c", "--config", "--check-config", "-h", "--help", "--version"} <= opts
    usage = daemon_help.split("\n", 1)[0]
    for o in opts:
        assert o in options_in(daemon_man["OPTIONS"]), f"securelinkd {o}"
        if o in options_in(usage):
            assert o in options_in(daemon_man["SYNOPSIS"]), f"securelinkd {o}"
    assert usage == "Usage: " + daemon_man["SYNOPSIS"].strip().splitlines()[0]


def test_daemon_man_page_options_are_in_help(daemon_help, daemon_man):
    for section in ("SYNOPSIS", "OPTIONS"):
        for o in options_in(daemon_man[section]):
            assert o in options_in(daemon_help), f"securelinkd(8) {section} names {o}"


def test_daemon_exit_statuses_match_the_code(daemon_man):
    # The codes main.c defines, and the ones systemd must not restart on.
    with open(os.path.join(SOURCE_DIR, "daemon", "main.c")) as f:
        main_c = f.read()
    defined = set(re.findall(r"#define EXIT_\w+\s+(\d+)", main_c))
    documented = set(re.findall(r"^(\d+)$", daemon_man["EXIT STATUS"], re.M))
    assert defined <= documented
    assert documented == defined | {"0", "1"}
    with open(os.path.join(SOURCE_DIR, "systemd", "securelinkd.service.in")) as f:
        no_restart = re.search(r"^RestartPreventExitStatus=(.*)$", f.read(), re.M).group(1).split()
    assert set(no_restart) <= documented


# ---- securelinkd.conf(5) ----


def shipped_config():
    """[(section, key, default)] of conf/securelinkd.conf, in order."""
    out, section = [], None
    with open(os.path.join(SOURCE_DIR, "conf", "securelinkd.conf")) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            m = re.match(r"^\[(\w+)\]$", line)
            if m:
                section = m.group(1)
                continue
            key, _, value = line.partition("=")
            out.append((section, key.strip(), value.strip()))
    return out


def test_conf_every_key_with_its_default():
    man = man_page("securelinkd.conf.5")
    keys = shipped_config()
    assert len(keys) >= 20
    for section, key, default in keys:
        text = man.get(f"[{section}]")
        assert text is not None, f"no [{section}] section in securelinkd.conf(5)"
        want = f"{key} = {default}" if default else f"{key} ="
        assert re.search(rf"^{re.escape(want)}$", text, re.M), \
            f"securelinkd.conf(5) [{section}] lacks the line {want!r}"


def test_conf_documents_no_key_the_file_lacks():
    man = man_page("securelinkd.conf.5")
    shipped = {(s, k) for s, k, _ in shipped_config()}
    for title, text in man.items():
        m = re.match(r"^\[(\w+)\]$", title)
        if not m:
            continue
        for key in re.findall(r"^(\w+) =", text, re.M):
            assert (m.group(1), key) in shipped, f"securelinkd.conf(5) [{m.group(1)}] {key}"
