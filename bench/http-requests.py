#!/usr/bin/python3
"""bench/run's keep-alive HTTP client for nginx under callgrind.

    http-requests.py --wait BASE_URL [PATH COUNT [COOKIE]]

Waits until BASE_URL accepts a connection and answers one request (nginx
under valgrind takes seconds to start), then sends COUNT GET requests of PATH
on one keep-alive connection (with the Cookie header COOKIE when given),
each of which must be answered 200. Every run makes the same single request
while waiting, so runs can be subtracted.
"""
import http.client
import sys
import time
import urllib.parse


def main():
    if len(sys.argv) not in (3, 5, 6) or sys.argv[1] != "--wait":
        sys.exit(__doc__)
    base = urllib.parse.urlsplit(sys.argv[2])
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
            conn.connect()
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                sys.exit(f"http-requests.py: nothing listens on {sys.argv[2]} after 60 s")
            time.sleep(0.05)
    conn.request("GET", "/")
    conn.getresponse().read()
    if len(sys.argv) >= 5:
        path, count = sys.argv[3], int(sys.argv[4])
        headers = {"Cookie": sys.argv[5]} if len(sys.argv) == 6 else {}
        for _ in range(count):
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                sys.exit(f"http-requests.py: {path} answered {r.status}")
    conn.close()


if __name__ == "__main__":
    main()
