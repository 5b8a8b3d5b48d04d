#!/usr/bin/python3
"""The Python side of bench/run: securelink.Client.sign_many() against
in-process signing as an application did it before securelinkd.

    sign-many.py SOCKET SECONDS

Prints one JSON object. The baseline is django-nginx-secure-links'
FileStorage.url(). That package is not in Debian, so its algorithm is
reproduced here on top of Debian's Django (nginx_secure_links/storages.py and
utils.py: Django's FileSystemStorage.url(), the prefix check, expires from
an aware datetime, md5 of f"{expires}{url} {secret}", urlsafe base64 without
'=' and '/', urlencode of token and expires). A bare function doing only the
hash and the formatting is measured too, as the fastest thing an app could
possibly do in-process.
"""
import base64
import datetime
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "contrib", "python"))
import securelink  # noqa: E402

SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
TTL = 300
NAMES = [f"private/docs/quarterly-report-{i:06d}.pdf" for i in range(1000)]


def rate(fn, seconds):
    """Calls fn() (which returns how many links it made) until `seconds`
    passed; returns links per second."""
    fn()  # warm-up
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        n += fn()
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def paired(fn_a, fn_b, seconds, rounds=8):
    """Rates of fn_a and fn_b measured back to back in `rounds` rounds (b
    first every other round); returns [[a, b], ...]. The machine's load
    drifts between seconds, a ratio within one pair barely does."""
    pairs = []
    for i in range(rounds):
        if i % 2:
            b = rate(fn_b, seconds / rounds)
            a = rate(fn_a, seconds / rounds)
        else:
            a = rate(fn_a, seconds / rounds)
            b = rate(fn_b, seconds / rounds)
        pairs.append([a, b])
    return pairs


def bare_roundtrips(sock_path, lines):
    """The least Python can do per request: a blocking sendall() and recv()
    on a kept connection, no timeout, no parsing (issue 17's baseline)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)

    def run():
        for line in lines:
            s.sendall(line)
            data = s.recv(65536)
            while not data.endswith(b"\n"):
                data += s.recv(65536)
        return len(lines)
    return run


def package_storage():
    """django-nginx-secure-links' FileStorage with the package's settings
    resolved (it caches them in cached_property on first use), or None
    without Django."""
    try:
        from django.conf import settings
        from django.core.files.storage import FileSystemStorage
    except ImportError:
        return None
    if not settings.configured:
        settings.configure(MEDIA_URL="/media/", MEDIA_ROOT=tempfile.mkdtemp(), USE_TZ=True)

    class PackageFileStorage(FileSystemStorage):
        def __init__(self):
            super().__init__()
            self.expires_seconds = TTL
            self.nginx_secret_key = SECRET
            self.token_field_name = "token"
            self.expires_field_name = "expires"
            self.prefixes = ["private/"]
            self.prefix_predicate = bool  # private prefixes given
            self.not_hashable_prefix = ""  # MEDIA_URL has no scheme://host

        def _is_secure_path(self, url):
            return self.prefix_predicate(
                any(url.startswith(f"{self.base_url}{p}") for p in self.prefixes))

        @staticmethod
        def _gen_hash(url, expires, secret):
            raw = f"{expires}{url} {secret}"
            digest = hashlib.md5(raw.encode("utf-8")).digest()
            return base64.urlsafe_b64encode(digest).decode("utf-8").replace("=", "").replace("/", "")

        def url(self, name, lifetime=None):
            url = super().url(name)
            if not self._is_secure_path(url):
                return url
            hashable = url.replace(self.not_hashable_prefix, "")
            now = datetime.datetime.now(tz=datetime.timezone.utc)
            expires = int((now + datetime.timedelta(seconds=self.expires_seconds)).timestamp())
            token = self._gen_hash(hashable, expires, self.nginx_secret_key)
            params = urllib.parse.urlencode({self.token_field_name: token,
                                             self.expires_field_name: expires})
            return f"{url}?{params}"

    return PackageFileStorage()


def bare_url(path):
    expires = int(time.time()) + TTL
    digest = hashlib.md5(f"{expires}{path} {SECRET}".encode()).digest()
    token = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return f"{path}?token={token}&expires={expires}"


def main():
    sock, seconds = sys.argv[1], float(sys.argv[2])
    result = {}

    storage = package_storage()
    if storage is not None:
        import django
        # The reproduction must sign what the package signs.
        u = storage.url(NAMES[0])
        path, _, query = u.partition("?")
        q = urllib.parse.parse_qs(query)
        assert path == "/media/" + NAMES[0]
        assert q["token"][0] == PackageFileStorage_token(path, int(q["expires"][0]))
        result["filestorage_url"] = rate(lambda: [storage.url(n) for n in NAMES] and len(NAMES),
                                         seconds)
        result["django"] = django.get_version()

    paths = ["/media/" + n for n in NAMES]
    result["bare_md5_function"] = rate(lambda: [bare_url(p) for p in paths] and len(paths),
                                       seconds)

    client = securelink.Client(socket=sock)
    for batch in (100, 1000):
        chunks = [paths[i:i + batch] for i in range(0, len(paths), batch)]

        def run(chunks=chunks):
            n = 0
            for c in chunks:
                n += len(client.sign_many(c))
            return n
        result[f"sign_many_{batch}"] = rate(run, seconds)
    # One by one without the cache: the fast path itself (the daemon here
    # rounds expiry times, so a caching client would answer from memory).
    plain = securelink.Client(socket=sock, cache=False)
    result["sign_one_by_one"] = rate(lambda: [plain.sign(p) for p in paths[:200]] and 200,
                                     seconds / 2)
    # sign() one by one against the bare blocking round trip of the same
    # SIGN lines (ttl given, as the storage gives one).
    lines = [f"SIGN {p} ttl={TTL}\n".encode() for p in paths[:200]]
    bare = bare_roundtrips(sock, lines)
    result["bare_vs_sign_pairs"] = paired(
        bare, lambda: [plain.sign(p, ttl=TTL) for p in paths[:200]] and 200, seconds)
    if storage is not None:
        storage_benchmarks(result, sock, bare, seconds)
    result["python"] = sys.version.split()[0]
    print(json.dumps(result))


def storage_benchmarks(result, sock, bare, seconds):
    """SecureLinkStorage.url() (issue 17): cold, every name new, against the
    bare round trip; warm, a page of 100 names rendered 100 times within one
    window, against the package's FileStorage.url() on the same names."""
    from securelink.django import SecureLinkStorage
    ours = SecureLinkStorage(socket=sock, expires_seconds=TTL)
    theirs = package_storage()
    counter = iter(range(10 ** 12))

    def cold():
        for _ in range(200):
            ours.url(f"private/cold/{next(counter)}.pdf")
        return 200
    result["storage_cold_pairs"] = paired(bare, cold, seconds)
    page = NAMES[:100]

    def warm_ours():
        for _ in range(100):
            for n in page:
                ours.url(n)
        return 100 * len(page)

    def warm_theirs():
        for _ in range(100):
            for n in page:
                theirs.url(n)
        return 100 * len(page)
    ours.url(page[0])
    assert ours.client._gen is not None, "the bench daemon must set expires_granularity"
    result["storage_warm_pairs"] = paired(warm_theirs, warm_ours, seconds)
    # Per-call cost against the share of hits: a page of 100 names of
    # which k are new each time.
    # The least of three short rounds per point: the machine's noise only
    # ever adds.
    shares = (0, 10, 25, 50, 75, 90, 100)
    best = {k: float("inf") for k in shares}
    for _ in range(3):
        for k in shares:
            def mixed(k=k):
                for n in page[k:]:
                    ours.url(n)
                for _ in range(k):
                    ours.url(f"private/mixed/{next(counter)}.pdf")
                return len(page)
            best[k] = min(best[k], 1e6 / rate(mixed, seconds / 21))
    result["storage_hit_curve"] = [{"hit_share": (100 - k) / 100, "us_per_call": best[k]}
                                   for k in shares]


def PackageFileStorage_token(url, expires):
    """The token as nginx's documentation computes it (echo -n ... | openssl
    md5 -binary | openssl base64 | tr +/ -_ | tr -d =), done independently
    of the reproduction above."""
    digest = hashlib.md5(f"{expires}{url} {SECRET}".encode()).digest()
    return base64.b64encode(digest).decode().replace("+", "-").replace("/", "_").replace("=", "")


if __name__ == "__main__":
    main()
