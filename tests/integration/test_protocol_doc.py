# SPDX-License-Identifier: MIT
"""docs/protocol.md against the daemon's own parser tables in common/proto.c
and its limits in common/proto.h: every verb, error code and argument name
the parser knows is documented, and the page names none it does not know,
so the reference for client authors cannot drift from the code."""

import os
import re

import pytest

SOURCE_DIR = os.environ.get("SECURELINK_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(*parts):
    with open(os.path.join(SOURCE_DIR, *parts), encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def proto_c():
    return read("common", "proto.c")


@pytest.fixture(scope="module")
def proto_h():
    return read("common", "proto.h")


@pytest.fixture(scope="module")
def doc():
    return read("docs", "protocol.md")


def table(source, name):
    """The strings of a designated-initializer table in proto.c, in order."""
    m = re.search(rf"static const char \*const {name}\[[^\]]*\] = \{{(.*?)\n\}};", source, re.S)
    assert m, f"no {name} in common/proto.c"
    return re.findall(r'\[\w+\] = "([^"]+)"', m.group(1))


def function(source, name):
    m = re.search(rf"^static int {name}\(.*?^\}}$", source, re.S | re.M)
    assert m, f"no {name}() in common/proto.c"
    return m.group(0)


def section(doc, title, level=2):
    """The text under a heading, up to the next heading of the same or a higher level."""
    hashes = "#" * level
    m = re.search(rf"^{hashes} {re.escape(title)}\n(.*?)(?=^#{{1,{level}}} |\Z)", doc, re.S | re.M)
    assert m, f"docs/protocol.md has no '{hashes} {title}'"
    return m.group(1)


def code_table(text):
    return re.findall(r"^\| `([a-z-]+)` \|", text, re.M)


def test_every_verb_has_its_section_and_no_other(proto_c, doc):
    verbs = table(proto_c, "verb_table")
    assert len(verbs) >= 6
    documented = re.findall(r"^### ([A-Z]+)$", section(doc, "Verbs"), re.M)
    assert documented == verbs, "docs/protocol.md's verbs (in the parser's order) differ from verb_table"


def test_every_error_code_is_in_the_table_and_no_other(proto_c, doc):
    codes = table(proto_c, "error_table")
    assert len(codes) >= 10
    documented = code_table(section(doc, "Error codes"))
    client_codes = code_table(section(doc, "Client-side codes", level=3))
    daemon_codes = [c for c in documented if c not in client_codes]
    assert daemon_codes == codes, "docs/protocol.md's error table differs from error_table"
    assert not set(client_codes) & set(codes), "a client-side code shadows a daemon code"
    assert set(client_codes) == {"unreachable", "disconnected", "timeout", "protocol"}


def documented_options(doc, verb):
    return set(re.findall(r"`([a-z]+)=", section(section(doc, "Verbs"), verb, level=3)))


def test_sign_and_verify_options_match_the_parser(proto_c, doc):
    sign = set(re.findall(r'streq\(name, "(\w+)"\)', function(proto_c, "parse_sign_option")))
    verify = set(re.findall(r'streq\(name, "(\w+)"\)', function(proto_c, "parse_verify_option")))
    # The patterns still find them.
    assert {"ttl", "expires", "ip", "grant"} <= sign and {"ip", "cookie"} <= verify, (sign, verify)
    assert documented_options(doc, "SIGN") == sign
    assert documented_options(doc, "VERIFY") == verify
    for verb in ("PING", "STATUS", "ROTATE", "IMPORT"):
        assert documented_options(doc, verb) == set(), verb


def test_rotate_keyword_and_argument_free_verbs_match_the_parser(proto_c, doc):
    parse = function(proto_c, "parse_line")
    words = re.findall(r'streq\(word, "(\w+)"\)', parse)
    assert words == ["revoke"]
    assert section(section(doc, "Verbs"), "ROTATE", level=3).startswith("\n`ROTATE [revoke]`")
    # The verbs the parser refuses arguments for are documented without any.
    bare = re.findall(r'"(\w+) takes no arguments', parse)
    assert {"PING", "STATUS"} <= set(bare), bare  # the pattern still finds them
    for verb in bare:
        text = section(section(doc, "Verbs"), verb, level=3)
        assert text.startswith(f"\n`{verb}` →") and "No arguments" in text, verb


def test_limits_are_the_codes(proto_h, doc):
    line_max = int(re.search(r"#define PROTO_LINE_MAX\s+(\d+)", proto_h).group(1))
    secret_max = int(re.search(r"#define PROTO_IMPORT_SECRET_MAX\s+(\d+)", proto_h).group(1))
    limits = section(doc, "Limits")
    assert f"Request line: {line_max} bytes including the LF" in limits
    assert f"IMPORT secret: {secret_max} bytes" in limits
    # Every other mention of the line limit says the same number.
    assert set(re.findall(r"(\d+) bytes including the LF", doc)) == {str(line_max)}
    assert f"at most {secret_max} bytes before encoding" in doc
