"""The access log: Combined Log Format plus duration, or one JSON object per line.

Combined lines parse as Apache's and nginx's do (``goaccess
--log-format=COMBINED`` is tested): a WebSocket gets one line when it ends,
with its real request line and status 101 (or the status that refused it),
the close code before the duration — as nginx logs a proxied WebSocket.
Everything the client chose (method, target, protocol, Referer, User-Agent,
a forwarded address) is escaped as Apache and nginx escape it: ``\\"``,
``\\\\`` and ``\\xHH`` for control bytes and bytes from 0x7F, so no one can
end a field early, forge a line, or send terminal escapes to whoever reads
the log. JSON lines are escaped by JSON itself (``\\u001b``).

This is the access log's JSON formatter; application logs have their own
(``--log-config``), kept apart because their fields differ.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any, TextIO

_UNSAFE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')
_ESCAPES = {bytes([byte]): f"\\x{byte:02X}".encode() for byte in range(256)}
_ESCAPES[b'"'] = b'\\"'
_ESCAPES[b"\\"] = b"\\\\"


def _escape_match(match: re.Match[bytes]) -> bytes:
    return _ESCAPES[match.group()]


def escape(value: bytes) -> str:
    """A field from the client, safe inside a Combined line."""
    if _UNSAFE.search(value) is None:  # the common case: printable ASCII
        return value.decode("ascii")
    return _UNSAFE.sub(_escape_match, value).decode("ascii")


def _header(request: Any, name: bytes) -> bytes | None:
    values = request.requestHeaders.getRawHeaders(name)
    return values[0] if values else None


class AccessLog:
    def __init__(self, destination: str, log_format: str = "combined") -> None:
        if log_format not in ("combined", "json"):
            raise ValueError(f"access log format must be 'combined' or 'json', not {log_format!r}")
        self.format = log_format
        self.stream: TextIO = (
            sys.stdout if destination == "-" else open(destination, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        )
        # strftime once a second, not once a line.
        self._second = -1
        self._stamp = ""

    def log_http(self, request: Any, duration: float) -> None:
        """A finished HTTP request; the byte count is the body sent (``%b``)."""
        host = getattr(request.getClientAddress(), "host", None) or "-"
        self._write(host, request, request.code, request.sentLength, close_code=None, duration=duration)

    def log_websocket(self, host: str, request: Any, event: str, code: int, duration: float) -> None:
        """``WSREJECT`` (``code`` is the status) and ``WSDISCONNECT`` (the
        close code) each end a WebSocket and write its line; ``WSCONNECT`` writes none."""
        if event == "WSDISCONNECT":
            self._write(host, request, 101, 0, close_code=code, duration=duration)
        elif event == "WSREJECT":
            self._write(host, request, code, 0, close_code=None, duration=duration)

    def _write(
        self, host: str, request: Any, status: int, size: int, *, close_code: int | None, duration: float
    ) -> None:
        method = request.method or b"-"
        target = request.uri or b"-"
        protocol = request.clientproto or b"HTTP/1.1"
        referer = _header(request, b"referer")
        agent = _header(request, b"user-agent")
        if self.format == "json":
            line = json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "client": host,
                    "method": method.decode("latin-1"),
                    "path": target.decode("latin-1"),
                    "protocol": protocol.decode("latin-1"),
                    "status": status,
                    "bytes": size,
                    "duration_ms": round(duration * 1000, 3),
                    "referer": None if referer is None else referer.decode("latin-1"),
                    "user_agent": None if agent is None else agent.decode("latin-1"),
                    "close_code": close_code,
                }
            )
        else:
            second = int(time.time())
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
            closed = "" if close_code is None else f"{close_code} "
            line = (
                f"{escape(host.encode('latin-1', 'backslashreplace'))} - - [{self._stamp}] "
                f'"{escape(method)} {escape(target)} {escape(protocol)}" {status} {size or "-"} '
                f'"{"-" if referer is None else escape(referer)}" '
                f'"{"-" if agent is None else escape(agent)}" {closed}{duration:.6f}'
            )
        try:
            self.stream.write(line + "\n")
        except (OSError, ValueError):
            pass  # a full disk or closed stdout must not take requests down

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()
