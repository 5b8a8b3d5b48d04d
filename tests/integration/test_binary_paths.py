# SPDX-License-Identifier: MIT
"""[links] allow_binary_paths, with the real securelinkd over its real socket
and a real nginx (daemonsite.py): a target whose decoded path is not UTF-8
text (MD5 collision blocks are arbitrary bytes) is refused unless allowed.

Known answers come from outside our code: Python's strict UTF-8 codec and
unicodedata's "Cc" category say what is text, hashlib recomputes tokens from
the secrets in the keys file nginx reads, and nginx gives the status codes."""

import os
import threading
import time
import unicodedata
import urllib.parse

from daemonsite import TIMEOUT, err, make_daemon, query, token  # noqa: F401 (a fixture)

FIX = "set allow_binary_paths = yes in [links] to sign them"


def is_text(raw):
    """Python's verdict: strict UTF-8 (no overlong form, surrogate or code
    point beyond U+10FFFF) holding no control character (category Cc: C0,
    DEL and C1)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(unicodedata.category(ch) == "Cc" for ch in text)


def add_binary_file(d, name, data):
    """media/private/<name> for a name of arbitrary bytes (add_file takes str)."""
    directory = os.path.join(os.fsencode(d.media), b"private")
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def escaped(raw):
    return "".join(f"%{b:02X}" for b in raw)


def ask_all(d, lines):
    """Pipelined requests, answers in order (the writer is a thread: the
    daemon stops reading while its answers go unread)."""
    blob = ("\n".join(lines) + "\n").encode()
    with d.connect() as c:
        sender = threading.Thread(target=c.send, args=(blob,))
        sender.start()
        answers = [c.read_line() for _ in lines]
        sender.join(TIMEOUT)
        assert not sender.is_alive()
    return answers


def signed_by_hand(d, raw_path):
    """A link for raw_path (decoded bytes) made with hashlib and the active
    secret from the keys file: what a holder of the secret could make,
    whatever securelinkd refuses."""
    kid = max(d.keys()[1])
    secret = d.keys()[1][kid]
    expires = int(time.time()) + 600
    t = token(expires, raw_path, secret)
    path = urllib.parse.quote(raw_path, safe="/")
    return f"{d.base_url}{path}?token={t}&expires={expires}&kid={kid}", expires, kid


# The example, a control byte, a C1 control, a surrogate, an
# overlong '/', each escaped and with its offset in the decoded path.
REFUSED = [
    ("/media/private/%FF%FE%C0", "byte 15 (invalid UTF-8: byte 0xF5-0xFF)"),
    ("/media/private/a%09b.txt", "byte 16 (control character (U+0000-U+001F or U+007F))"),
    ("/media/private/%C2%85.txt", "byte 15 (C1 control character (U+0080-U+009F))"),
    ("/media/private/%ED%A0%80.txt", "byte 15 (invalid UTF-8: UTF-16 surrogate (U+D800-U+DFFF))"),
    ("/media/private/x%C0%AF.txt", "byte 16 (invalid UTF-8: overlong encoding)"),
    ("/media/public/%FF.css", "byte 14 (invalid UTF-8: byte 0xF5-0xFF)"),
]


def test_sign_refuses_a_path_that_is_not_text_naming_the_cause_and_the_fix(make_daemon):
    d = make_daemon()
    for target, where in REFUSED:
        code, message = err(d.ask(f"SIGN {target} ttl=60"))
        assert code == "bad-target", (target, message)
        assert message == (f"the decoded path is not text at {where}: binary paths are refused, "
                           "as MD5 collisions are made of arbitrary bytes (" + FIX + ")"), target
    # Raw bytes on the line are judged as their decoded path, as escapes are.
    with d.connect() as c:
        c.send(b"SIGN /media/private/\xff\xfe\xc0 ttl=60\n")
        code, message = err(c.read_line())
    assert code == "bad-target" and FIX in message
    # Text, raw or escaped, is signed as before.
    d.add_file("private/caf\u00e9 \u65e5\u672c.txt", b"text\n")
    assert d.get(d.sign("/media/private/caf%C3%A9%20\u65e5\u672c.txt")) == (200, b"text\n")


def test_verify_calls_a_link_to_a_binary_path_invalid_though_nginx_serves_it(make_daemon):
    """nginx serves whatever bytes the secret signed (which is why the daemon
    must refuse them); VERIFY does not vouch for a link SIGN would refuse."""
    d = make_daemon()
    add_binary_file(d, b"\xff\xfe\xc0", b"collision block\n")
    url, _, _ = signed_by_hand(d, b"/media/private/\xff\xfe\xc0")
    assert d.get(url) == (200, b"collision block\n")
    answer = d.ask(f"VERIFY {url}")
    assert answer == ("OK invalid the decoded path is not text at byte 15 (invalid UTF-8: byte "
                      "0xF5-0xFF): binary paths are refused, as MD5 collisions are made of "
                      "arbitrary bytes (" + FIX + ")")


def test_allow_binary_paths_signs_them_and_nginx_serves_them(make_daemon):
    d = make_daemon({"links": {"allow_binary_paths": "yes"}})
    files = {b"\xff\xfe\xc0": b"binary name\n", b"a\tb.txt": b"tab\n",
             b"\xc2\x85.txt": b"next line\n", b"\xed\xa0\x80.txt": b"surrogate\n"}
    _, secrets = d.keys()
    for name, body in files.items():
        add_binary_file(d, name, body)
        url = d.sign("/media/private/" + escaped(name))
        # The canonical encoding: every byte but A-Z a-z 0-9 - . _ ~ and '/' escaped.
        assert url.partition("?")[0] == \
            f"{d.base_url}/media/private/{urllib.parse.quote(name, safe='/')}"
        q = query(url)
        assert q["token"] == token(q["expires"], b"/media/private/" + name,
                                   secrets[int(q["kid"])]), name
        assert d.get(url) == (200, body), name
        assert d.ask(f"VERIFY {url}") == f"OK valid kid={q['kid']} expires={q['expires']}"
    assert d.ask("SIGN /media/public/%FF.css") == f"OK {d.base_url}/media/public/%FF.css"


def sequences():
    """Every byte alone; every pair led by a byte >= 0x80; three- and
    four-byte sequences around each lead byte's bounds for the second byte
    and with good and bad continuations after it."""
    out = [bytes([a]) for a in range(256)]
    out += [bytes([a, b]) for a in range(0x80, 0x100) for b in range(256)]
    seconds = range(0x7F, 0xC1)
    out += [bytes([a, b, c]) for a in range(0xE0, 0xF0) for b in seconds
            for c in (0x7F, 0x80, 0xBF, 0xC0)]
    out += [bytes([a, b, c, e]) for a in range(0xF0, 0xF8) for b in seconds
            for c in (0x80, 0xBF) for e in (0x7F, 0x80, 0xBF, 0xC0)]
    return out


def test_what_is_text_agrees_with_pythons_utf8_codec_and_unicodedata(make_daemon):
    d = make_daemon()
    seqs = sequences()
    # Public targets: no key and no token needed, the same rule applies.
    answers = ask_all(d, [f"SIGN /media/public/x{escaped(s)}y" for s in seqs])
    wrong = []
    for s, answer in zip(seqs, answers):
        if answer.startswith("OK "):
            verdict = True
        else:
            code, message = err(answer)
            assert code == "bad-target", (s, answer)
            # A decoded NUL is refused before (nginx answers 400 to it).
            assert FIX in message or b"\0" in s, (s, answer)
            verdict = False
        if verdict != is_text(b"x" + s + b"y"):
            wrong.append((s.hex(), answer))
    assert not wrong, f"{len(wrong)} of {len(seqs)} disagree with Python, e.g. {wrong[:5]}"
