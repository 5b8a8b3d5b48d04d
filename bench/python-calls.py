#!/usr/bin/python3
"""bench/python-instructions' driver: N calls of one kind against a running
securelinkd, after a warm-up, so that callgrind's count over two values of
N gives the cost of one call.

    python-calls.py SOCKET KIND N

KIND: bare (a blocking sendall() + recv() of a SIGN line, bench/run's
baseline), sign (Client.sign() one by one, cache off), cold
(SecureLinkStorage.url() of a name never asked before; the daemon rounds
expiry times, so the storage's cache is on and every call is a miss).
"""
import os
import runpy
import sys

sock, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bench = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sign-many.py"),
                       run_name="sign_many")
securelink = bench["securelink"]
TTL = bench["TTL"]
paths = ["/media/" + name for name in bench["NAMES"][:200]]

if kind == "bare":
    run = bench["bare_roundtrips"](sock, [f"SIGN {p} ttl={TTL}\n".encode() for p in paths])
    calls = (lambda k: [run() for _ in range(k // len(paths))])
elif kind == "sign":
    client = securelink.Client(socket=sock, cache=False)

    def calls(k):
        for i in range(k):
            client.sign(paths[i % len(paths)], ttl=TTL)
elif kind == "cold":
    bench["package_storage"]()  # configures Django's settings
    from securelink.django import SecureLinkStorage
    storage = SecureLinkStorage(socket=sock, expires_seconds=TTL)
    names = iter(range(10 ** 12))

    def calls(k):
        for _ in range(k):
            storage.url(f"private/cold/{next(names)}.pdf")
else:
    sys.exit(f"python-calls.py: unknown kind {kind!r} (bare, sign or cold)")

calls(len(paths))  # warm-up: connected, CACHE asked
calls(n)
