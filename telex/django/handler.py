"""Django's views behind Telex: an ``http.request`` message in, Django's response out.

``AsgiRequest`` is a Django request built from an ASGI 1 ``http.request``;
its body is read from the layer only as Django reads it, so an upload of any
size passes through the upload handlers one chunk at a time. ``AsgiHandler``
runs Django's whole request handling (URL resolver, middleware, error pages)
and turns the response into Response and Response Chunk messages.
``ViewConsumer`` sends them as they are made, with backpressure, and stops a
streaming response once the client has left (see ``http_disconnect``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

from django import http
from django.conf import settings
from django.core import signals
from django.core.handlers import base
from django.core.handlers.asgi import get_script_prefix
from django.core.handlers.exception import handle_uncaught_exception
from django.urls import get_resolver, get_urlconf, set_script_prefix
from django.utils.functional import cached_property
from django.utils.log import log_response

from ..worker.channels import current_context, send_with_retry
from ..worker.http import CHUNK_SIZE, iter_body, response_messages
from ..worker.http import RequestAborted as _BodyAborted
from .exceptions import RequestAborted, ResponseLater

__all__ = ["AsgiHandler", "AsgiRequest", "ViewConsumer", "client_gone", "http_disconnect"]

logger = logging.getLogger("django.request")
worker_logger = logging.getLogger("telex.worker")

#: ``telex.store`` key of a reply channel whose client has left (``http_disconnect``).
DISCONNECTED_PREFIX = "telex.django.gone:"
#: How long that mark is kept: a streaming response notices it at its next chunk.
DISCONNECTED_TTL = 3600.0


class _BodyStream(io.RawIOBase):
    """The request body as a raw file, pulled from the layer only as it is read.

    At most one chunk (``body`` or one Request Body Chunk) is held at a time.
    """

    def __init__(self, pieces: Iterator[bytes]) -> None:
        super().__init__()
        self._pieces = pieces
        self._piece = memoryview(b"")
        self.aborted = False

    def readable(self) -> bool:
        return True

    def _next_piece(self) -> bool:
        if self.aborted:
            raise RequestAborted("the client disconnected before sending the whole body")
        try:
            self._piece = memoryview(next(self._pieces))
        except StopIteration:
            return False
        except _BodyAborted as exc:
            self.aborted = True
            raise RequestAborted(str(exc)) from None
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._piece:
            if not self._next_piece():
                return 0
        count = min(len(buffer), len(self._piece))
        buffer[:count] = self._piece[:count]
        self._piece = self._piece[count:]
        return count

    def readall(self) -> bytes:
        # Whole pieces at once, not the default's 8 KiB reads.
        parts = [bytes(self._piece)]
        self._piece = memoryview(b"")
        while self._next_piece():
            parts.append(bytes(self._piece))
        self._piece = memoryview(b"")
        return b"".join(parts)


class AsgiRequest(http.HttpRequest):
    """A Django request from an ``http.request`` message, ``META`` as Django's WSGI handler fills it.

    ``message`` and ``reply_channel`` are kept, so a view can hand the reply
    channel on and raise ``ResponseLater``.
    """

    ResponseLater = ResponseLater

    def __init__(self, message: Any) -> None:
        self.message = message
        self.reply_channel = message.reply_channel
        self._post_parse_error = False
        self._read_started = False
        self.resolver_match = None
        self.path = message["path"]
        self.script_name = get_script_prefix(message.content)
        # An exact prefix ("/app" in "/app/x", not in "/application").
        if self.script_name and (
            self.path == self.script_name or self.path.startswith(self.script_name.rstrip("/") + "/")
        ):
            self.path_info = self.path[len(self.script_name.rstrip("/")) :] or "/"
        else:
            self.path_info = self.path
        self.method = message["method"].upper()
        query_string = message.get("query_string") or b""
        if isinstance(query_string, str):
            query_string = query_string.encode("latin-1")
        self._query_string = query_string
        scheme = message.get("scheme") or "http"
        self.META = {
            "REQUEST_METHOD": self.method,
            # As WSGI (PEP 3333): the raw bytes as latin-1; GET decodes them properly.
            "QUERY_STRING": query_string.decode("latin-1"),
            "SCRIPT_NAME": self.script_name,
            "PATH_INFO": self.path_info,
            "SERVER_PROTOCOL": "HTTP/" + str(message.get("http_version") or "1.1"),
            "wsgi.url_scheme": scheme,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        self._scheme = scheme
        client = message.get("client")
        if client:
            self.META["REMOTE_ADDR"] = self.META["REMOTE_HOST"] = str(client[0])
            self.META["REMOTE_PORT"] = str(client[1])
        self.META.update(_header_meta(message.get("headers") or ()))
        server = message.get("server")
        if server:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = str(server[0]), str(server[1])
        else:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = _host_and_port(
                self.META.get("HTTP_HOST"), scheme
            )
        self._set_content_type_params(self.META)
        self._body_stream = _BodyStream(iter_body(message))
        self._stream = io.BufferedReader(self._body_stream, buffer_size=CHUNK_SIZE)

    @property
    def body_aborted(self) -> bool:
        """True once reading the body found the client gone (or the body stalled)."""
        return self._body_stream.aborted

    def _get_scheme(self) -> str:
        return self._scheme

    @cached_property
    def GET(self) -> http.QueryDict:
        return http.QueryDict(self._query_string, encoding=self._encoding)

    def _get_post(self) -> http.QueryDict:
        if not hasattr(self, "_post"):
            self._load_post_and_files()
        return self._post

    def _set_post(self, post: http.QueryDict) -> None:
        self._post = post

    def _get_files(self) -> Any:
        if not hasattr(self, "_files"):
            self._load_post_and_files()
        return self._files

    POST = property(_get_post, _set_post)
    FILES = property(_get_files)

    @cached_property
    def COOKIES(self) -> dict[str, str]:
        return http.parse_cookie(self.META.get("HTTP_COOKIE", ""))

    def close(self) -> None:
        super().close()
        self._stream.close()


def _header_meta(headers: Iterable[Any]) -> dict[str, str]:
    """``HTTP_*``, ``CONTENT_TYPE`` and ``CONTENT_LENGTH``; repeated headers joined as WSGI servers do."""
    meta: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else str(raw_name)
        value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else str(raw_value)
        name = name.lower()
        # "-" and "_" both become "_": a header spelt with "_" could pose as another.
        if "_" in name:
            continue
        if name in ("content-length", "content-type"):
            key = name.upper().replace("-", "_")
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if key in meta:
            # HTTP/2 sends each cookie as its own field; they join with "; ".
            value = meta[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        meta[key] = value
    return meta


def _host_and_port(host: str | None, scheme: str) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT from a Host header, when the message has no ``server``."""
    if not host:
        return "unknown", "0"
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name or not port.isdigit():
        name, port = host, ""
    return name, port or ("443" if scheme == "https" else "80")


class _DropAbandoned(logging.Filter):
    """Keeps "Internal Server Error" tracebacks of requests whose client left out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _BodyAborted)


logger.addFilter(_DropAbandoned())


class AsgiHandler(base.BaseHandler):
    """Django's request handling for ``http.request`` messages (sync; middleware loaded once).

    Calling it with a message yields the response messages; it yields none
    when the view raised ``ResponseLater`` or the client left mid-body.
    """

    request_class = AsgiRequest
    #: Bytes per Response Chunk, well under the layer's message size limit.
    chunk_size = CHUNK_SIZE

    def __init__(self) -> None:
        super().__init__()
        self.load_middleware()

    def __call__(self, message: Any) -> Iterator[dict]:
        set_script_prefix(get_script_prefix(message.content))
        signals.request_started.send(sender=type(self), message=message)
        # The path is text and headers are latin-1 already: nothing here can fail to decode.
        request = self.request_class(message)
        response = self.get_response(request)
        if request.body_aborted:
            worker_logger.info(
                "the client of %s left before its request body was complete", message.reply_channel
            )
        if request.body_aborted or getattr(request, "_telex_no_response", False):
            # Closing sends request_finished, as Django's handlers do.
            response.close()
            return
        if isinstance(response, http.FileResponse):
            response.block_size = self.chunk_size
        if request.method == "HEAD" and not response.streaming:
            # The server sends no body for HEAD: keep it off the layer too.
            if not response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
            response.content = b""
        try:
            yield from self.encode_response(response, self.chunk_size)
        finally:
            response.close()

    def process_exception_by_middleware(
        self, exception: Exception, request: http.HttpRequest
    ) -> http.HttpResponseBase | None:
        """A view's ``ResponseLater``, or a body abort, means no response: skip the error handling."""
        if isinstance(exception, ResponseLater | _BodyAborted):
            request._telex_no_response = True  # type: ignore[attr-defined]
            return http.HttpResponse()
        return super().process_exception_by_middleware(exception, request)

    @classmethod
    def encode_response(cls, response: http.HttpResponseBase, chunk_size: int = CHUNK_SIZE) -> Iterator[dict]:
        """The Response message, then Response Chunks, each with at most ``chunk_size`` bytes.

        A streaming response is encoded as its iterator produces, so only one
        part is held at a time; each part is sent as it comes.
        """
        headers = [
            [name.lower().encode("latin-1"), value.encode("latin-1")] for name, value in response.items()
        ]
        headers.extend(
            [b"set-cookie", cookie.output(header="").strip().encode("latin-1")]
            for cookie in response.cookies.values()
        )
        if not response.streaming:
            yield from response_messages(
                response.content, response.status_code, headers, content_type=None, chunk_size=chunk_size
            )
            return
        start: dict[str, Any] = {"status": response.status_code, "headers": headers}
        for part in _streaming_parts(response):
            for offset in range(0, len(part), chunk_size):
                yield {**start, "content": part[offset : offset + chunk_size], "more_content": True}
                start = {}
        yield {**start, "content": b"", "more_content": False}

    @classmethod
    def exception_messages(cls, message: Any, exc_info: Any) -> list[dict]:
        """Django's 500 for an exception raised outside a view (the technical page with ``DEBUG``)."""
        request = None
        try:
            request = cls.request_class(message)
            response = handle_uncaught_exception(request, get_resolver(get_urlconf()), exc_info)
        except Exception:
            response = http.HttpResponseServerError(
                traceback.format_exc() if settings.DEBUG else "Internal Server Error",
                content_type="text/plain",
            )
        log_response(
            "%s: %s",
            response.reason_phrase,
            message.get("path"),
            response=response,
            request=request,
            exception=exc_info[1],
        )
        try:
            return list(cls.encode_response(response))
        finally:
            response.close()


def _streaming_parts(response: http.StreamingHttpResponse) -> Iterator[bytes]:
    """The parts of a streaming response; an async iterator runs on one event loop of its own."""
    if not getattr(response, "is_async", False):
        yield from response
        return
    loop = asyncio.new_event_loop()
    parts = aiter(response)
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(parts))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(parts.aclose())
        loop.close()


def http_disconnect(message: Any, **kwargs: Any) -> None:
    """The ``http.disconnect`` consumer: marks the reply channel gone, so its streaming response stops.

    The mark lives in the layer's ``telex.store``, so the worker thread or
    process that streams sees it, whichever took the disconnect.
    """
    layer = message.channel_layer
    reply_channel = message.get("reply_channel")
    if isinstance(reply_channel, str) and "telex.store" in getattr(layer, "extensions", ()):
        layer.store_set(DISCONNECTED_PREFIX + reply_channel, {"gone": True}, ttl=DISCONNECTED_TTL)


def client_gone(layer: Any, reply_channel: str) -> bool:
    """True once ``http_disconnect`` marked ``reply_channel``; always False without ``telex.store``."""
    if "telex.store" not in getattr(layer, "extensions", ()):
        return False
    return layer.store_get(DISCONNECTED_PREFIX + reply_channel) is not None


class ViewConsumer:
    """The ``http.request`` consumer that answers with Django's views (Channels 1.x's ViewConsumer).

    Response messages go to the reply channel at once, one by one, waiting
    while it is full; before each chunk after the first it checks whether the
    client left (one ``telex.store`` read) and stops the response if so.
    """

    handler_class: type[AsgiHandler] = AsgiHandler

    def __init__(self) -> None:
        self.handler = self.handler_class()

    def __call__(self, message: Any, **kwargs: Any) -> None:
        if message.reply_channel is None:
            raise ValueError(f"the message on {message.channel.name!r} has no reply_channel to respond on")
        layer = message.channel_layer
        reply_channel = message.reply_channel.name
        context = current_context()
        replies = self.handler(message)
        try:
            for index, reply in enumerate(replies):
                if index and client_gone(layer, reply_channel):
                    worker_logger.info("the client of %s left; stopped its response", reply_channel)
                    return
                if not send_with_retry(layer, reply_channel, reply):
                    return
                if context is not None:
                    context.replied = True
        finally:
            # Closes the response (and a streaming response's iterator).
            replies.close()  # type: ignore[attr-defined]  # a generator
