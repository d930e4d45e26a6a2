"""The access log: combined log format plus duration, or one JSON object per line."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


def _header(request: Any, name: bytes) -> str:
    values = request.requestHeaders.getRawHeaders(name)
    return values[0].decode("latin-1") if values else "-"


class AccessLog:
    def __init__(self, destination: str, log_format: str = "combined") -> None:
        if log_format not in ("combined", "json"):
            raise ValueError(f"access log format must be 'combined' or 'json', not {log_format!r}")
        self.format = log_format
        self.stream: TextIO = (
            sys.stdout if destination == "-" else open(destination, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        )

    def log_http(self, request: Any) -> None:
        client = request.getClientAddress()
        host = getattr(client, "host", None) or "-"
        duration = time.monotonic() - getattr(request, "started_at", time.monotonic())
        method = (request.method or b"-").decode("latin-1")
        target = (request.uri or b"-").decode("latin-1")
        protocol = (request.clientproto or b"HTTP/1.1").decode("latin-1")
        size = getattr(request, "response_bytes", 0)
        self._write(
            host, method, target, protocol, status=request.code, size=size, duration=duration, request=request
        )

    def log_websocket(self, host: str, path: str, event: str, code: int, duration: float) -> None:
        """WebSocket lines: ``WSCONNECT``/``WSREJECT``/``WSDISCONNECT`` as the method."""
        self._write(host, event, path, "WebSocket", status=code, size=0, duration=duration, request=None)

    def _write(
        self,
        host: str,
        method: str,
        target: str,
        protocol: str,
        *,
        status: int,
        size: int,
        duration: float,
        request: Any,
    ) -> None:
        referer = _header(request, b"referer") if request is not None else "-"
        agent = _header(request, b"user-agent") if request is not None else "-"
        if self.format == "json":
            line = json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "client": host,
                    "method": method,
                    "path": target,
                    "protocol": protocol,
                    "status": status,
                    "bytes": size,
                    "duration_ms": round(duration * 1000, 3),
                    "referer": None if referer == "-" else referer,
                    "user_agent": None if agent == "-" else agent,
                }
            )
        else:
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
            line = (
                f'{host} - - [{stamp}] "{method} {target} {protocol}" {status} {size or "-"} '
                f'"{referer}" "{agent}" {duration:.6f}'
            )
        try:
            self.stream.write(line + "\n")
        except (OSError, ValueError):
            pass  # a full disk or closed stdout must not take requests down

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()
