"""POST one large body over a raw socket and time it until the reply arrives."""

from __future__ import annotations

import argparse
import json
import socket
import time

CHUNK = memoryview(b"\0" * (256 * 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    size = args.megabytes * 1024 * 1024
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % size
        )
        left = size
        while left:
            piece = CHUNK[: min(left, len(CHUNK))]
            sock.sendall(piece)
            left -= len(piece)
        sent = time.perf_counter()
        reply = b""
        while data := sock.recv(65536):
            reply += data
    elapsed = time.perf_counter() - start
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0
    body = reply.partition(b"\r\n\r\n")[2]
    print(
        json.dumps(
            {
                "bytes": size,
                "status": status,
                "reply": body[-40:].decode(errors="replace"),
                "seconds": elapsed,
                "send_seconds": sent - start,
                "mb_per_s": size / 1048576 / elapsed,
            }
        )
    )


if __name__ == "__main__":
    main()
