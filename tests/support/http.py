"""HTTP/1.1 client helpers for tests against a running server process."""

from __future__ import annotations

import http.client
import json
import socket
import time

from tests.apps.jsonable import from_jsonable as decode

# tests.apps.raw_http: bare layer calls, so a test sees the server's messages as a worker does.
RAW = "tests.apps.raw_http:channel_layer"


def request(server, method, path, body=None, headers=None, timeout=10):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw_exchange(server, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (a FIN or a reset).

    Unlike :func:`raw_exchange`, a connection still open after ``timeout`` fails the test.
    """
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            raise AssertionError(f"the server left the connection open for {timeout} s") from None
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def exchange_until_closed(server, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes; everything the server answers before it closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def received_message(server, path="/message", **kwargs):
    """The ``http.request`` message ``tests.apps.raw_http`` received, echoed back as JSON."""
    status, _, body = request(server, "GET", path, **kwargs)
    assert status == 200, body
    return decode(json.loads(body))
