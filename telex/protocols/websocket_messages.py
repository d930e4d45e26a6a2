"""WebSocket ⇄ ASGI message shapes, built and validated in one place (www.rst, WebSocket).

Pure functions and values: no sockets, no reactor. ``websocket.py`` calls
them; tests can drive them directly.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .http_messages import MalformedHttpReply, check_headers, is_process_channel

#: Close codes a server may put on the wire (RFC 6455 7.4.1 and the IANA
#: registry): 1004-1006 and 1015 are reserved and never sent in a frame.
_SENDABLE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))

#: Telex's extension keys of the reply that accepts a handshake (docs/asgi3.md):
#: the process-specific channel that gets the socket's later websocket.receive
#: and websocket.disconnect messages instead of the shared channels, and the
#: subprotocol the application chose.
RECEIVE_CHANNEL_KEY = "telex.receive_channel"
SUBPROTOCOL_KEY = "telex.subprotocol"
#: Telex's key of a refusal that carries the application's own HTTP response
#: (the ASGI WebSocket denial response extension).
DENIAL_KEY = "telex.denial"

#: Telex's key of the accepting reply saying the socket may move to another
#: worker when its worker stops or dies (docs/asgi3.md, Resuming).
RESUMABLE_KEY = "telex.resumable"

#: Keys of Send/Close/Accept; anything else is logged and ignored.
REPLY_KEYS = frozenset(
    ("bytes", "text", "close", "accept", RECEIVE_CHANNEL_KEY, SUBPROTOCOL_KEY, DENIAL_KEY, RESUMABLE_KEY)
)

#: The steps of moving a socket between workers (``websocket_resume.py``):
#: a reply carrying this key is one of them, not a Send/Close/Accept.
MOVE_KEY = "telex.move"
#: The key of a ``websocket.connect`` that resumes a socket already open.
RESUME_KEY = "telex.resume"
#: The key wrapping a message for a socket's own channel on its way to the worker.
CHANNEL_MESSAGE_KEY = "telex.message"
#: A socket's own channel is its reply channel with this suffix: the server
#: receives it and forwards it to whichever worker holds the socket.
SOCKET_CHANNEL_SUFFIX = ".app"
#: The local part, under a server's reply prefix, of the channel for workers' heartbeats.
HEARTBEAT_CHANNEL = "telex.heartbeat"


class MalformedWebSocketReply(ValueError):
    """A Send/Close/Accept message that breaks www.rst; the text says what is wrong."""


def connect_message(
    *,
    reply_channel: str,
    scheme: str,
    path: str,
    query_string: bytes,
    root_path: str,
    headers: list[list[bytes]],
    client: list[Any] | None,
    server: list[Any] | None,
) -> dict[str, Any]:
    """``websocket.connect`` (www.rst, Connection), every key present.

    The spec types ``root_path`` as a byte string here (a unicode string in
    ``http.request``); Telex follows the WebSocket section to the letter.
    """
    return {
        "reply_channel": reply_channel,
        "scheme": scheme,
        "path": path,
        "query_string": query_string,
        "root_path": root_path.encode("utf-8"),
        "headers": headers,
        "client": client,
        "server": server,
        "order": 0,
    }


def receive_message(
    reply_channel: str, path: str, payload: bytes, is_binary: bool, order: int
) -> dict[str, Any]:
    """``websocket.receive`` (www.rst, Receive): one of ``bytes``/``text`` is None."""
    return {
        "reply_channel": reply_channel,
        "path": path,
        "bytes": payload if is_binary else None,
        "text": None if is_binary else payload.decode("utf-8"),
        "order": order,
    }


def disconnect_message(reply_channel: str, code: int, path: str, order: int) -> dict[str, Any]:
    """``websocket.disconnect`` (www.rst, Disconnection)."""
    return {"reply_channel": reply_channel, "code": code, "path": path, "order": order}


@dataclass(frozen=True, slots=True)
class Reply:
    """A parsed Send/Close/Accept message.

    ``data`` is the frame to send (``bytes`` for a binary frame, ``str`` for a
    text frame, None for none; empty values are frames too). ``close`` is the
    close code (1000 for ``close: True``) or None.
    """

    accept: bool | None
    data: bytes | str | None
    close: int | None
    unknown_keys: tuple[str, ...] = ()
    #: Why ``close`` differs from what the message asked for, if it does.
    close_note: str | None = None
    #: ``telex.receive_channel``: where this socket's later messages go, or None.
    receive_channel: str | None = None
    #: ``telex.subprotocol``: the subprotocol the application chose, or None.
    subprotocol: str | None = None
    #: ``telex.denial``: the refusal's own response (status, headers, body), or None.
    denial: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None
    #: ``telex.resumable``: the socket may move to another worker.
    resumable: bool = False


def parse_reply(message: dict[str, Any]) -> Reply:
    """Validate a Send/Close/Accept message (www.rst, Send/Close/Accept).

    Raises MalformedWebSocketReply for wrong types and for both ``bytes`` and ``text``
    present (the spec: ignore the message entirely).
    """
    binary, text = message.get("bytes"), message.get("text")
    if binary is not None and text is not None:
        raise MalformedWebSocketReply(
            "both 'bytes' and 'text' are set; the spec says to ignore such a message"
        )
    if binary is not None and type(binary) is not bytes:
        raise MalformedWebSocketReply(f"'bytes' must be a byte string, got {type(binary).__name__}")
    if text is not None and type(text) is not str:
        raise MalformedWebSocketReply(f"'text' must be a unicode string, got {type(text).__name__}")
    accept = message.get("accept")
    if accept is not None and type(accept) is not bool:
        raise MalformedWebSocketReply(f"'accept' must be a bool, got {type(accept).__name__}")
    close, note = _close_code(message.get("close", False))
    unknown = tuple(sorted(str(key) for key in message if key not in REPLY_KEYS))
    receive_channel = message.get(RECEIVE_CHANNEL_KEY)
    if receive_channel is not None and not is_process_channel(receive_channel):
        raise MalformedWebSocketReply(
            f"{RECEIVE_CHANNEL_KEY!r} must be a process-specific channel name ('prefix!local'), "
            f"got {receive_channel!r}"
        )
    subprotocol = message.get(SUBPROTOCOL_KEY)
    if subprotocol is not None and type(subprotocol) is not str:
        raise MalformedWebSocketReply(
            f"{SUBPROTOCOL_KEY!r} must be a string, got {type(subprotocol).__name__}"
        )
    resumable = message.get(RESUMABLE_KEY, False)
    if type(resumable) is not bool:
        raise MalformedWebSocketReply(f"{RESUMABLE_KEY!r} must be a bool, got {type(resumable).__name__}")
    denial = _denial(message[DENIAL_KEY]) if DENIAL_KEY in message else None
    if denial is not None and close is None:
        raise MalformedWebSocketReply(
            f"{DENIAL_KEY!r} needs 'close': it is the answer to a refused handshake"
        )
    return Reply(
        accept,
        binary if binary is not None else text,
        close,
        unknown,
        note,
        receive_channel,
        subprotocol,
        denial,
        resumable,
    )


def _denial(denial: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    if type(denial) is not dict:
        raise MalformedWebSocketReply(f"{DENIAL_KEY!r} must be a dict, got {type(denial).__name__}")
    status, content = denial.get("status"), denial.get("content", b"")
    if type(status) is not int or not 200 <= status <= 599:
        raise MalformedWebSocketReply(
            f"{DENIAL_KEY!r} status must be an integer from 200 to 599, got {status!r}"
        )
    if type(content) is not bytes:
        raise MalformedWebSocketReply(f"{DENIAL_KEY!r} content must be bytes, got {type(content).__name__}")
    try:
        headers = check_headers(denial.get("headers"))
    except MalformedHttpReply as exc:
        raise MalformedWebSocketReply(f"{DENIAL_KEY!r}: {exc}") from None
    return status, headers, content


def _close_code(close: Any) -> tuple[int | None, str | None]:
    if close is None or close is False:
        return None, None
    if close is True:
        return 1000, None
    if type(close) is not int:
        raise MalformedWebSocketReply(f"'close' must be a bool or a positive integer, got {close!r}")
    if close <= 0:
        return None, None
    if close in _SENDABLE_CLOSE_CODES or 3000 <= close <= 4999:
        return close, None
    return 1000, f"close code {close} cannot be sent in a close frame (RFC 6455 7.4); closing with 1000"


# -- the handshake decision (www.rst, Send/Close/Accept, "while waiting for acceptance") --

ACCEPT = "accept"
REJECT = "reject"
UNDECIDED = "undecided"


def handshake_decision(reply: Reply) -> str:
    """What a reply does to a connection still waiting for acceptance.

    * ``accept: False`` rejects, whatever else the message holds.
    * ``accept: True`` accepts (then any data is sent and any close is done).
    * Non-empty ``bytes``/``text`` accepts, sends, then closes if ``close``.
    * ``close`` without non-empty data rejects (403; the code is ignored).
    * Anything else (``{}``, empty data alone) decides nothing yet.
    """
    if reply.accept is False:
        return REJECT
    if reply.accept is True or reply.data:
        return ACCEPT
    if reply.close is not None:
        return REJECT
    return UNDECIDED


# -- subprotocols and origins --------------------------------------------------------------


def choose_subprotocol(offered: list[str], supported: list[str]) -> str | None:
    """The first of the server's ``supported`` subprotocols that the client offered."""
    for name in supported:
        if name in offered:
            return name
    return None


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Check an ``Origin`` header against ``--allowed-origins``.

    An empty list allows every origin. Entries are full origins
    (``https://example.com:8443``), host names (``example.com``) or host
    patterns (``*.example.com``). A request without Origin is allowed: the
    check protects browsers, and browsers always send Origin.
    """
    if not allowed or origin is None:
        return True
    origin = origin.strip().lower()
    parts = urlsplit(origin)
    host = parts.hostname or ""
    for raw_entry in allowed:
        entry = raw_entry.strip().lower()
        if "://" in entry or entry == "null":
            if entry.rstrip("/") == origin.rstrip("/"):
                return True
        elif host and fnmatch.fnmatchcase(host, entry):
            return True
    return False
