"""HTTP ⇄ ASGI message shapes, built and validated in one place (www.rst, HTTP).

Pure functions: no sockets, no reactor. The Twisted adapter in ``http.py``
calls them; tests drive them directly.
"""

from __future__ import annotations

import email.utils
import html
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

#: Token characters of RFC 9110 field names.
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
_BAD_VALUE_BYTES = b"\x00\r\n"


class MalformedHttpReply(ValueError):
    """A reply message that breaks www.rst; the text says what is wrong."""


class BadPath(ValueError):
    """A request path whose percent-escapes do not decode as UTF-8."""


def decode_path(raw_path: bytes) -> str:
    """``path`` of www.rst: percent escapes decoded, then UTF-8 decoded."""
    try:
        return unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPath(f"path is not valid UTF-8 after percent-decoding: {exc}") from None


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request target into its path and its raw query string."""
    path, _, query = target.partition(b"?")
    if path[:8].lower().startswith((b"http://", b"https://")):
        # Absolute form (RFC 9112 3.2.2; the scheme is case-insensitive): keep only the path.
        slash = path.find(b"/", path.find(b"//") + 2)
        path = path[slash:] if slash >= 0 else b"/"
    return path, query


def asgi_headers(raw_headers: Any) -> list[list[bytes]]:
    """Lowercased ``[name, value]`` pairs, per-name order kept, duplicates kept.

    Names containing ``_`` are dropped: a proxy that normalises ``-`` and
    ``_`` alike (as WSGI's environ does) would otherwise let a client spoof a
    header the proxy set, such as ``X-Forwarded-For`` sent as ``X_Forwarded_For``.
    """
    headers = []
    for raw_name, values in raw_headers:
        name = raw_name.lower()
        if b"_" in name:
            continue
        for value in values:
            headers.append([name, value])
    return headers


def request_message(
    *,
    reply_channel: str,
    http_version: str,
    method: bytes,
    scheme: str,
    raw_path: bytes,
    query_string: bytes,
    root_path: str,
    headers: list[list[bytes]],
    body: bytes,
    body_channel: str | None,
    client: list[Any] | None,
    server: list[Any] | None,
) -> dict[str, Any]:
    """The ``http.request`` message (www.rst, Request), every key present."""
    return {
        "reply_channel": reply_channel,
        "http_version": http_version,
        "method": method.decode("latin-1").upper(),
        "scheme": scheme,
        "path": decode_path(raw_path),
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers,
        "body": body,
        "body_channel": body_channel,
        "client": client,
        "server": server,
    }


def body_chunk_message(content: bytes, more_content: bool) -> dict[str, Any]:
    """A Request Body Chunk (www.rst) on ``body_channel``."""
    return {"content": content, "closed": False, "more_content": more_content}


#: The Request Body Chunk sent when the client disconnects mid-body.
BODY_CLOSED_MESSAGE: dict[str, Any] = {"content": b"", "closed": True, "more_content": False}


def disconnect_message(reply_channel: str, path: str) -> dict[str, Any]:
    """``http.disconnect`` (www.rst, Disconnect)."""
    return {"reply_channel": reply_channel, "path": path}


# Not frozen, unlike its siblings: a frozen dataclass sets each field through
# object.__setattr__, about 1,300 instructions a field (callgrind), and this one
# is built for every request. Nothing changes it after parse_reply.
@dataclass(slots=True)
class Response:
    status: int
    #: Without ``transfer-encoding``, and with at most one ``content-length``.
    headers: list[tuple[bytes, bytes]]
    content: bytes
    more_content: bool
    #: The application's ``Content-Length``, if it declared one.
    content_length: int | None = None
    #: The application asked for ``Transfer-Encoding: chunked``.
    chunked: bool = False


@dataclass(frozen=True, slots=True)
class ResponseChunk:
    content: bytes
    more_content: bool


@dataclass(frozen=True, slots=True)
class ServerPush:
    request: dict[str, Any]


Reply = Response | ResponseChunk | ServerPush


#: Telex's extension key of a Response (docs/asgi3.md): the process-specific
#: channel that gets this request's http.disconnect instead of the shared one.
DISCONNECT_CHANNEL_KEY = "telex.disconnect_channel"


def is_disconnect_claim(message: dict[str, Any]) -> bool:
    """A reply that only names the request's disconnect channel, before any Response.

    An ASGI 3 worker sends it when its application waits for
    ``http.disconnect`` with no response started (docs/http.md).
    """
    return len(message) == 1 and DISCONNECT_CHANNEL_KEY in message


def is_process_channel(name: Any) -> bool:
    """Whether ``name`` is a process-specific channel name, ``prefix!local``."""
    if type(name) is not str or len(name) > 255:
        return False
    prefix, bang, local = name.partition("!")
    return bool(prefix and bang and local) and "!" not in local and "?" not in name


def parse_reply(message: dict[str, Any]) -> Reply:
    """Classify and validate a message from an HTTP reply channel.

    www.rst tells the types apart by their keys: ``status`` makes a Response,
    ``request`` a Server Push, anything else is a Response Chunk.
    """
    if "status" in message:
        status = message["status"]
        # Only a final status: 1xx (101 too) would leave the client waiting
        # for the real response, and HTTP has none above 599 (RFC 9110 §15).
        if type(status) is not int or not 200 <= status <= 599:
            raise MalformedHttpReply(f"status must be an integer from 200 to 599, got {status!r}")
        headers, content_length, chunked = _check_headers(message.get("headers", ()))
        if content_length is not None and (chunked or status == 204):
            # RFC 9112 §6.2: no Content-Length beside Transfer-Encoding;
            # RFC 9110 §8.6: none on a 204.
            headers = [pair for pair in headers if pair[0] != b"content-length"]
            content_length = None
        return Response(
            status, headers, _check_content(message), _check_more(message), content_length, chunked
        )
    if "request" in message:
        if not isinstance(message["request"], dict):
            raise MalformedHttpReply("Server Push 'request' must be a dict")
        return ServerPush(message["request"])
    return ResponseChunk(_check_content(message), _check_more(message))


def _check_content(message: dict[str, Any]) -> bytes:
    content = message.get("content", b"")
    if content is None:
        return b""
    if type(content) is not bytes:
        raise MalformedHttpReply(f"content must be bytes, got {type(content).__name__}")
    return content


def _check_more(message: dict[str, Any]) -> bool:
    more = message.get("more_content", False)
    if type(more) is not bool:
        raise MalformedHttpReply(f"more_content must be a bool, got {type(more).__name__}")
    return more


#: The headers that frame the body: the server owns them (see ``_check_framing``).
_FRAMING_HEADERS = frozenset((b"content-length", b"transfer-encoding"))


def _check_headers(headers: Any) -> tuple[list[tuple[bytes, bytes]], int | None, bool]:
    """The headers, checked and lowercased, then the declared Content-Length
    and whether ``Transfer-Encoding: chunked`` was asked for."""
    if headers is None:
        return [], None, False
    if not isinstance(headers, (list, tuple)):
        raise MalformedHttpReply(
            f"headers must be a list of [name, value] pairs, got {type(headers).__name__}"
        )
    checked = []
    framing = None
    for pair in headers:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise MalformedHttpReply(f"each header must be a [name, value] pair, got {pair!r}")
        name, value = pair
        if type(name) is not bytes or type(value) is not bytes:
            raise MalformedHttpReply(f"header name and value must be bytes, got {pair!r}")
        name = name.lower()
        if not _HEADER_NAME.match(name):
            raise MalformedHttpReply(f"invalid header name {name!r}")
        if len(value.translate(None, _BAD_VALUE_BYTES)) != len(value):
            raise MalformedHttpReply(f"header {name!r} has a value containing CR, LF or NUL")
        if name in _FRAMING_HEADERS:
            framing = [*(framing or ()), (name, value)]
            continue
        checked.append((name, value))
    if framing is None:
        return checked, None, False
    content_length, chunked = _check_framing(framing)
    if content_length is not None:
        checked.append((b"content-length", b"%d" % content_length))
    return checked, content_length, chunked


def _check_framing(framing: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """The application's Content-Length (one value, however often repeated:
    RFC 9110 §8.6) and whether its Transfer-Encoding is ``chunked``, the only
    coding Telex applies (RFC 9112 §6.1); any other coding is refused, since
    the body would reach the client without it."""
    lengths = set()
    codings = []
    for name, value in framing:
        items = [item.strip() for item in value.split(b",")]
        if name == b"content-length":
            for item in items:
                if not item.isdigit() or len(item) > 18:
                    raise MalformedHttpReply(f"Content-Length must be a non-negative integer, got {value!r}")
                lengths.add(int(item))
        else:
            codings += [item.lower() for item in items if item]
    if len(lengths) > 1:
        raise MalformedHttpReply(f"Content-Length headers disagree: {sorted(lengths)}")
    if codings and codings != [b"chunked"]:
        raise MalformedHttpReply(
            f"Transfer-Encoding {b', '.join(codings)!r}: Telex applies no transfer coding but chunked "
            "(use Content-Encoding for compression)"
        )
    return (lengths.pop() if lengths else None), bool(codings)


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def error_page(status: int, detail: str) -> tuple[bytes, bytes]:
    """A small plain error page (never a traceback): ``(reason, body)``."""
    reason = _REASONS.get(status, "Error")
    body = (
        f"<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>"
        f"<body><h1>{status} {reason}</h1><p>{html.escape(detail)}</p></body></html>\n"
    )
    return reason.encode("ascii"), body.encode("utf-8")


_date_second = -1
_date_value = b""


def http_date() -> bytes:
    """The ``Date`` header's value now (RFC 9110 §6.6.1, IMF-fixdate), formatted once a second."""
    global _date_second, _date_value
    second = int(time.time())
    if second != _date_second:
        _date_second, _date_value = second, email.utils.formatdate(second, usegmt=True).encode("ascii")
    return _date_value


def denial_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """A WebSocket handshake refused with the application's own response
    (``telex.denial``): checked headers, the server's framing, then close."""
    own = b"".join(b"%s: %s\r\n" % pair for pair in headers if pair[0] not in _FRAMING_HEADERS)
    return b"HTTP/1.1 %d %s\r\nconnection: close\r\n%scontent-length: %d\r\ndate: %s\r\n\r\n%s" % (
        status,
        _REASONS.get(status, "Error").encode("ascii"),
        own,
        len(body),
        http_date(),
        body,
    )


def check_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """An application's response headers, checked and lowercased (``MalformedHttpReply``)."""
    return _check_headers(headers)[0]


def raw_error_response(
    status: int, detail: str | None = None, headers: list[tuple[bytes, bytes]] | None = None
) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, for the
    places that answer before (or instead of) twisted.web: a connection over
    the limit, a head too long or too slow, a refused WebSocket handshake.
    Without ``detail`` the response has no body. ``headers`` are checked as
    an application's are (``MalformedHttpReply``), so none can inject a line."""
    if detail is None:
        reason, body, kind = _REASONS.get(status, "Error").encode("ascii"), b"", b""
    else:
        reason, body = error_page(status, detail)
        kind = b"content-type: text/html; charset=utf-8\r\n"
    if headers:
        kind += b"".join(b"%s: %s\r\n" % pair for pair in _check_headers(headers)[0])
    return b"HTTP/1.1 %d %s\r\nconnection: close\r\n%scontent-length: %d\r\ndate: %s\r\n\r\n%s" % (
        status,
        reason,
        kind,
        len(body),
        http_date(),
        body,
    )
