#!/usr/bin/python3
"""Start a program that speaks sd_notify and wait until it says READY=1.

    start-notify.py LOGFILE -- PROGRAM ARGS...

Binds a datagram socket, passes it as NOTIFY_SOCKET, starts the program in the
background (output to LOGFILE), and exits 0 printing its pid once READY=1
arrives; exits 1 with the log's tail when the program dies first or stays
silent for 30 seconds. The program keeps running.
"""
import os
import socket
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: start-notify.py LOGFILE -- PROGRAM ARGS...", file=sys.stderr)
        return 2
    log, argv = sys.argv[1], sys.argv[3:]
    d = tempfile.mkdtemp(prefix="sl-notify-")
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, start_new_session=True)
    sock.settimeout(0.2)
    waited = 0.0
    try:
        while waited < 30:
            try:
                msg = sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                waited += 0.2
                if proc.poll() is not None:
                    break
                continue
            if "READY=1" in msg.split("\n"):
                print(proc.pid)
                return 0
        with open(log, errors="replace") as f:
            tail = f.read()[-2000:]
        status = proc.poll()
        if status is None:
            proc.kill()
        print(f"start-notify: {argv[0]} did not get ready"
              f" ({'exit status %d' % status if status is not None else 'no READY=1 in 30s'}):\n{tail}",
              file=sys.stderr)
        return 1
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(d)


if __name__ == "__main__":
    sys.exit(main())
