#!/usr/bin/env python3
"""Idle HTTP/1.1 keep-alive clients for benches/proxy/idle.sh.

    python3 idle-clients.py HOST PORT PATH N

Opens N connections to HOST:PORT, sends one `GET PATH` (HTTP/1.1,
keep-alive) on each and reads its whole answer (Content-Length framing),
then keeps every connection open and idle. Prints `open N STATUS=COUNT...`
on one line when all of them have answered, and holds them until SIGTERM
or SIGINT, when it closes them all and prints `closed`. Exits 1 if a
connection fails or an answer is not 200 (after printing the statuses).
"""

import signal
import socket
import sys
import time


def read_answer(sock):
    """Reads one HTTP/1.1 answer; returns its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the answer's head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked answers are not expected here")
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the answer's body")
        body += chunk
    return status


def main():
    host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    socks = []
    statuses = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(request)
        code = read_answer(s)
        statuses[code] = statuses.get(code, 0) + 1
        socks.append(s)
    summary = " ".join(f"{k}={v}" for k, v in sorted(statuses.items()))
    print(f"open {len(socks)} {summary}", flush=True)
    if set(statuses) != {200}:
        sys.exit(1)
    while not stop:
        time.sleep(0.1)
    for s in socks:
        s.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
