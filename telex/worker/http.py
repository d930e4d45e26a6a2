"""HTTP responses as ASGI messages (spec ``www.rst``: Response, Response Chunk).

``send_response(message, body, status=..., headers=...)`` turns a status,
headers and a body — bytes, str or an iterator of either — into one Response
and as many Response Chunk messages as needed, each carrying at most
``chunk_size`` bytes so no message nears the layer's size limit (1 MiB + 64 KiB).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .channels import Channel
from .message import Message

__all__ = ["CHUNK_SIZE", "response_messages", "send_response"]

#: 256 KiB: a quarter of the layer's message limit, and a size at which the
#: per-message cost of a send is small against copying the bytes.
CHUNK_SIZE = 256 * 1024

Headers = Mapping[str | bytes, str | bytes] | Iterable[tuple[str | bytes, str | bytes]] | None
Body = bytes | str | Iterable[bytes | str]


def _header_list(headers: Headers, content_type: str | None) -> list[list[bytes]]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    result = []
    for name, value in items:
        name_bytes = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        value_bytes = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        # Spec: response header names must be lowercased.
        result.append([name_bytes.lower(), value_bytes])
    if content_type and not any(name == b"content-type" for name, _ in result):
        result.append([b"content-type", content_type.encode("latin-1")])
    return result


def _pieces(body: Body, chunk_size: int) -> Iterator[bytes]:
    parts: Iterable[bytes | str] = [body] if isinstance(body, bytes | str) else body
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else bytes(part)
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]


def response_messages(
    body: Body = b"",
    status: int = 200,
    headers: Headers = None,
    content_type: str | None = "text/plain; charset=utf-8",
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[dict]:
    """Yield the Response message, then Response Chunks; only the last has ``more_content`` False."""
    if type(status) is not int or not 100 <= status <= 999:
        raise ValueError(f"status must be an integer HTTP status code, not {status!r}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    pieces = (piece for piece in _pieces(body, chunk_size) if piece)
    message: dict[str, Any] = {
        "status": status,
        "headers": _header_list(headers, content_type),
        "content": next(pieces, b""),
    }
    # One piece of look-ahead, so each message knows whether more follows.
    for piece in pieces:
        message["more_content"] = True
        yield message
        message = {"content": piece}
    message["more_content"] = False
    yield message


def send_response(
    target: Message | Channel | str,
    body: Body = b"",
    status: int = 200,
    headers: Headers = None,
    *,
    content_type: str | None = "text/plain; charset=utf-8",
    chunk_size: int = CHUNK_SIZE,
    immediately: bool = False,
) -> None:
    """Send a whole response to a request's reply channel (held, like every send)."""
    if isinstance(target, Message):
        if target.reply_channel is None:
            raise ValueError(f"the message on {target.channel!r} has no reply_channel to respond on")
        channel = target.reply_channel
    elif isinstance(target, str):
        channel = Channel(target)
    else:
        channel = target
    for content in response_messages(body, status, headers, content_type, chunk_size):
        channel.send(content, immediately=immediately)
