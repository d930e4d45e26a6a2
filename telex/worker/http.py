"""HTTP requests and responses for consumers (spec ``www.rst``).

``iter_body(message)`` / ``read_body(message)`` give a request's body, reading
the Request Body Chunks of ``body_channel`` when the server streamed it.

``send_response(message, body, status=..., headers=...)`` turns a status,
headers and a body — bytes, str or an iterator of either — into one Response
and as many Response Chunk messages as needed, each carrying at most
``chunk_size`` bytes so no message nears the layer's size limit (1 MiB + 64 KiB).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .channels import Channel
from .message import Message

__all__ = ["CHUNK_SIZE", "RequestAborted", "iter_body", "read_body", "response_messages", "send_response"]

#: 256 KiB: a quarter of the layer's message limit, and a size at which the
#: per-message cost of a send is small against copying the bytes.
CHUNK_SIZE = 256 * 1024

# Pairs may be tuples or the ``[name, value]`` lists of the message format.
Headers = (
    Mapping[str | bytes, str | bytes] | Iterable[tuple[str | bytes, str | bytes] | list[str | bytes]] | None
)
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
    # Telex's server answers any other status with a 500 (an interim 1xx is not an answer).
    if type(status) is not int or not 200 <= status <= 599:
        raise ValueError(f"status must be an integer HTTP status code from 200 to 599, not {status!r}")
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


class RequestAborted(Exception):
    """The request body will not arrive in full: the client left, or it stalled."""


def iter_body(message: Message, timeout: float = 120.0) -> Iterator[bytes]:
    """The request body piece by piece: ``body``, then ``body_channel``'s chunks.

    Only one chunk is held at a time, so a large upload never sits whole in
    the worker. Raises :class:`RequestAborted` when the client disconnected
    mid-body (a chunk with ``closed``) or no chunk came within ``timeout``
    seconds (delivery is at-most-once, so a lost chunk must not hang a worker).
    """
    body = message.content.get("body") or b""
    if body:
        yield body
    body_channel = message.content.get("body_channel")
    if not body_channel:
        return
    deadline = time.monotonic() + timeout
    while True:
        channel, chunk = message.channel_layer.receive([body_channel], block=True)
        if channel is None:
            if time.monotonic() > deadline:
                raise RequestAborted(f"no body chunk on {body_channel} within {timeout:.0f}s")
            continue
        if chunk.get("closed"):
            raise RequestAborted("the client disconnected before sending the whole body")
        content = chunk.get("content") or b""
        if content:
            yield content
        if not chunk.get("more_content"):
            return
        deadline = time.monotonic() + timeout


def read_body(message: Message, max_size: int | None = None, timeout: float = 120.0) -> bytes:
    """The whole request body; :class:`RequestAborted` past ``max_size`` bytes."""
    pieces, size = [], 0
    for piece in iter_body(message, timeout):
        size += len(piece)
        if max_size is not None and size > max_size:
            raise RequestAborted(f"the request body is larger than {max_size} bytes")
        pieces.append(piece)
    return b"".join(pieces)
