"""ASGI 1 messages → ASGI 3 scopes and events (pure functions: no layer, no loop)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

#: What the scopes announce: ASGI 3.0, the HTTP and WebSocket spec 2.3 (``state``, ``reason`` on close).
ASGI = {"version": "3.0", "spec_version": "2.3"}

#: Characters left as they are when the decoded path is re-encoded as ``raw_path``.
_PATH_SAFE = "/!$&'()*+,;=:@"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        return (str(value[0]), int(value[1]))
    return None


def _headers(message: dict) -> list[tuple[bytes, bytes]]:
    return [(bytes(name), bytes(value)) for name, value in message.get("headers") or ()]


def raw_path(path: str) -> bytes:
    """The path percent-encoded again: ASGI 1 messages carry only the decoded path."""
    return quote(path, safe=_PATH_SAFE).encode("ascii")


def _paths(message: dict) -> tuple[str, str]:
    """``(path, root_path)`` for ASGI 3, where ``path`` includes ``root_path`` (as
    Starlette and Django read it); an ASGI 1 message's path, like WSGI's
    ``PATH_INFO``, is what follows its ``root_path``."""
    root_path = _text(message.get("root_path"))
    return root_path + (_text(message.get("path")) or "/"), root_path


def http_scope(message: dict, state: dict) -> dict[str, Any]:
    """The ``http`` scope of one ``http.request`` message."""
    path, root_path = _paths(message)
    return {
        "type": "http",
        "asgi": dict(ASGI),
        "http_version": message.get("http_version") or "1.1",
        "method": str(message.get("method") or "GET").upper(),
        "scheme": message.get("scheme") or "http",
        "path": path,
        "raw_path": raw_path(path),
        "query_string": message.get("query_string") or b"",
        "root_path": root_path,
        "headers": _headers(message),
        "client": _address(message.get("client")),
        "server": _address(message.get("server")),
        "state": dict(state),
        "extensions": {},
    }


def subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The subprotocols the client offered, in its order (``Sec-WebSocket-Protocol``, RFC 6455 4.1)."""
    offered: list[str] = []
    for name, value in headers:
        if name.lower() == b"sec-websocket-protocol":
            offered.extend(item.strip() for item in value.decode("latin-1").split(",") if item.strip())
    return offered


def websocket_scope(message: dict, state: dict) -> dict[str, Any]:
    """The ``websocket`` scope of one ``websocket.connect`` message."""
    path, root_path = _paths(message)
    headers = _headers(message)
    return {
        "type": "websocket",
        "asgi": dict(ASGI),
        "http_version": "1.1",
        "scheme": message.get("scheme") or "ws",
        "path": path,
        "raw_path": raw_path(path),
        "query_string": message.get("query_string") or b"",
        "root_path": root_path,
        "headers": headers,
        "client": _address(message.get("client")),
        "server": _address(message.get("server")),
        "subprotocols": subprotocols(headers),
        "state": dict(state),
        # A refusal may carry the application's own response (Telex's telex.denial key).
        "extensions": {"websocket.http.response": {}},
    }


def websocket_event(message: dict) -> dict[str, Any]:
    """The event of a message on a socket's receive channel: a disconnect carries ``code``."""
    if "code" in message:
        return {"type": "websocket.disconnect", "code": message.get("code") or 1005}
    return {"type": "websocket.receive", "bytes": message.get("bytes"), "text": message.get("text")}
