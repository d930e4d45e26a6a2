"""WebSocket helpers: raw frames for tests that control every byte on the wire, and
small wrappers around the ``websockets`` client."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from tests.apps.jsonable import from_jsonable as decode

# tests.apps.raw_ws: bare layer calls; it records every message it receives (see events()).
RAW_WS = "tests.apps.raw_ws:channel_layer"


def ws_url(server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def whoami(ws) -> str:
    """The reply channel of a ``websockets`` connection to ``tests.apps.raw_ws``."""
    ws.send("whoami")
    return ws.recv(timeout=10)


def close_code_of(ws) -> int | None:
    """Read a ``websockets`` connection until it closes; the close code the server sent."""
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(1000):
            ws.recv(timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else None


def handshake_request(path: str = "/echo", headers: tuple[tuple[str, str], ...] = (), port: int = 0) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(payload: bytes, opcode: int = 1, masked: bool = True, fin: bool = True) -> bytes:
    """One client frame (RFC 6455 5.2); clients must mask, tests may not."""
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawClient:
    """A WebSocket client on a bare socket: reads the handshake answer, then frames."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.port = port
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def read_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a response head; got {self.buffer!r}")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return head

    def read_frame(self) -> tuple[int, bytes]:
        """``(opcode, payload)`` of the next server frame (servers never mask)."""
        while True:
            if len(self.buffer) >= 2:
                length = self.buffer[1] & 0x7F
                offset = 2
                if length == 126 and len(self.buffer) >= 4:
                    length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif length == 127 and len(self.buffer) >= 10:
                    length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if (length < 126 or offset > 2) and len(self.buffer) >= offset + length:
                    opcode = self.buffer[0] & 0x0F
                    payload = self.buffer[offset : offset + length]
                    self.buffer = self.buffer[offset + length :]
                    return opcode, payload
            if not self._fill():
                raise ConnectionError("closed before a complete frame")

    def read_message(self) -> bytes:
        """The payload of the next data frame; pings and pongs are skipped, never answered."""
        for _ in range(1000):
            opcode, payload = self.read_frame()
            if opcode in (1, 2):
                return payload
            if opcode == 8:
                raise ConnectionError(f"closed by the server: {payload!r}")
        raise AssertionError("no data frame within 1000 frames")

    def read_close_code(self) -> int | None:
        """Read frames until a close frame; its code."""
        for _ in range(1000):
            opcode, payload = self.read_frame()
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        raise AssertionError("no close frame within 1000 frames")

    def close(self) -> None:
        self.sock.close()


def events(port: int) -> list[dict]:
    """Everything ``tests.apps.raw_ws`` has received, decoded."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=10) as response:
        return decode(json.loads(response.read()))


def events_for(port: int, reply_channel: str | None = None, path: str | None = None) -> list[dict]:
    return [
        event
        for event in events(port)
        if (reply_channel is None or event["reply_channel"] == reply_channel)
        and (path is None or event.get("path") == path)
    ]


def wait_for_event(port: int, predicate, timeout: float = 10.0) -> dict:
    """The first recorded event matching ``predicate``; polls the app over HTTP."""
    deadline = time.monotonic() + timeout
    while True:
        for event in events(port):
            if predicate(event):
                return event
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching event within {timeout}s: {events(port)[-10:]}")
        time.sleep(0.05)
