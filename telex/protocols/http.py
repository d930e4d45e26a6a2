"""HTTP/1.1 and HTTP/2 requests ⇄ ASGI messages, on ``twisted.web``.

``twisted.web.http.Request`` collects the whole body before ``process()``.
Telex instead uses the hooks the channel calls as the request arrives:
``gotLength`` (head complete), ``handleContentChunk`` (body data) and
``requestReceived`` (body complete). The same Request class is driven by
Twisted's HTTP/1.1 ``HTTPChannel`` and HTTP/2 ``H2Stream``, so one adapter
serves both. The Twisted details relied on are listed in ``docs/http.md``
and pinned by ``tests/test_http_twisted_contract.py``.

Flow of one request::

    head in ──► http.request (body inline if small and complete)
           └──► http.request with body_channel ──► Request Body Chunks …
    reply channel ──► Response ──► Response Chunks … ──► finish
    connection lost before the response completed ──► http.disconnect
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolNegotiationFactory, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.web import http
from twisted.web._http2 import H2Connection  # twisted[http2] is a dependency
from zope.interface import implementer

from . import http_messages as msgs
from .proxy import TrustedProxies, apply_proxy_headers

if TYPE_CHECKING:
    from .context import ServerContext

logger = logging.getLogger("telex.http")

#: Retry schedule (seconds) for a body chunk refused with ChannelFull: the
#: spec says wait and try again; the HTTP timeout bounds the total wait.
BODY_RETRY_DELAYS = (0.002, 0.005, 0.01, 0.02, 0.05)

_NO_BODY_STATUSES = frozenset((204, 304))

#: What an HTTP/2 client sends first (RFC 9113, 3.4); no HTTP/1 request starts so.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Connection-specific headers that HTTP/2 forbids (RFC 9113, 8.2.2); the h2
#: library refuses to send a response carrying them, so they are dropped.
_H2_FORBIDDEN_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


def _address(address: Any) -> list[Any] | None:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return None  # unix sockets and other non-IP transports
    return [host, port]


@implementer(IPushProducer)
class AsgiRequest(http.Request):
    """One HTTP request, translated to and from ASGI messages."""

    context: ServerContext

    def __init__(self, channel: Any, queued: object = None) -> None:
        super().__init__(channel)
        self.context = channel.factory.context
        self.settings = self.context.settings
        self.reply_channel: str | None = None
        self.asgi_path = ""
        self._head_done = False
        self._expected_length: int | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._body_channel: str | None = None
        self._body_complete = False
        self._request_sent = False
        self._chunk_in_flight = False
        self._last_chunk_sent = False
        self._reading_paused = False
        self._response_started = False
        self._response_complete = False
        self._finished = False
        self._lost = False
        self._timeout_call: Any = None
        self._output_paused = False
        self._held: deque[tuple[bytes, bool]] = deque()
        self._held_bytes = 0
        self._slow_call: Any = None
        self._sender = self.context.make_sender()
        self.started_at = time.monotonic()
        self.response_bytes = 0
        # A body-less placeholder: twisted.web code may look at .content.
        self.content = None

    # -- hooks called by HTTPChannel / H2Stream -----------------------------------

    def gotLength(self, length: int | None) -> None:
        # Called while HTTPChannel/H2Stream are mid-parse: finishing the
        # request from here would corrupt their state, so the head is handled
        # just after (or at the first body data, or at requestReceived, which
        # for a body-less HTTP/1.1 request follows synchronously).
        self._expected_length = length
        if length != 0 or not isinstance(self.channel, http.HTTPChannel):
            reactor.callLater(0, self._head_complete)

    def handleContentChunk(self, data: bytes) -> None:
        self._head_complete()
        if self._finished or self._lost:
            return  # the answer is out (e.g. 413); discard the rest of the body
        self._body_size += len(data)
        limit = self.settings.max_request_body_size
        if limit and self._body_size > limit:
            self._refuse(413, f"The request body is larger than {limit} bytes.")
            return
        self._body.append(data)
        if self._body_channel is None:
            if self._request_sent:
                return
            if self._body_size > self.settings.request_body_inline_max:
                self._start_request(streaming=True)
            return
        self._pump_body()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The body is complete. (Deliberately not calling ``process()``.)"""
        self._head_complete((command, path, version))
        self._body_complete = True
        if self._finished or self._lost:
            return
        if not self._request_sent:
            self._start_request(streaming=False)
        elif self._body_channel is not None:
            self._pump_body()

    def connectionLost(self, reason: Any) -> None:
        self._lost = True
        self._cancel_timers()
        if self._request_sent and not self._response_complete:
            if self._body_channel is not None and not self._body_complete:
                self._sender.send(self._body_channel, msgs.BODY_CLOSED_MESSAGE).addErrback(lambda _: None)
            self._send_disconnect()
        self._release()
        super().connectionLost(reason)

    # -- the request message -------------------------------------------------

    def _head_complete(self, request_line: tuple[bytes, bytes, bytes] | None = None) -> None:
        if self._head_done or self._lost:
            return
        self._head_done = True
        channel = self.channel
        if request_line is not None:
            command, target, version = request_line
        elif isinstance(channel, http.HTTPChannel):
            # Set by HTTPChannel.lineReceived from the request line; deleted
            # again just before requestReceived, which passes them instead.
            command, target, version = channel._command, channel._path, channel._version
        else:
            command, target, version = channel.command, channel.path, b"HTTP/2"
        self.http_version = {b"HTTP/1.0": "1.0", b"HTTP/2": "2"}.get(version, "1.1")
        # twisted.web's write()/finish() read these; it sets them only in
        # requestReceived, which for a streamed body comes too late.
        self.method, self.uri, self.clientproto = command, target, version
        raw_path, query_string = msgs.split_target(target)
        self.path = raw_path
        try:
            self.asgi_path = msgs.decode_path(raw_path)
        except msgs.BadPath as exc:
            self._refuse(400, str(exc))
            return
        upgrade = self.requestHeaders.getRawHeaders(b"upgrade")
        if upgrade and upgrade[0].lower() == b"websocket" and self.http_version == "1.1":
            if self.context.upgrade_websocket(self):
                self._finished = True
                return
            self._refuse(400, "WebSocket upgrades are not available here.")
            return
        local = self.context.local_response(self, self.asgi_path)
        if isinstance(local, Deferred):
            self._response_started = True
            self._request_sent = True  # answered here: nothing goes to the layer
            local.addCallback(lambda response: self._lost or self._finish_local(*response))
            return
        if local is not None:
            self._finish_local(*local)
            return
        limit = self.settings.max_request_body_size
        if limit and (self._expected_length or 0) > limit:
            self._refuse(413, f"The request body is larger than {limit} bytes.")
            return
        self._query_string = query_string
        if (self._expected_length or 0) > self.settings.request_body_inline_max:
            self._start_request(streaming=True)

    def _start_request(self, streaming: bool) -> None:
        """Send ``http.request``: inline body, or the start of a streamed one."""
        headers = msgs.asgi_headers(self.requestHeaders.getAllRawHeaders())
        client = _address(self.getClientAddress())
        scheme = "https" if self.isSecure() else "http"
        if self.settings.proxy_headers and _trusted(self.context, client):
            client, scheme = apply_proxy_headers(client, scheme, headers)
        self.reply_channel = self.context.new_reply_channel(self.handle_reply)
        body = b"".join(self._body)
        self._body.clear()
        if streaming:
            self._body_channel = self.context.layer_new_body_channel()
        message = msgs.request_message(
            reply_channel=self.reply_channel,
            http_version=self.http_version,
            method=self.method,
            scheme=scheme,
            raw_path=self.path,
            query_string=self._query_string,
            root_path=self.settings.root_path,
            headers=headers,
            body=body,
            body_channel=self._body_channel,
            client=client,
            server=_address(self.getHost()),
        )
        self._request_sent = True
        self._timeout_call = reactor.callLater(self.settings.http_timeout, self._timed_out)
        self._sender.send("http.request", message).addErrback(self._request_refused)
        self.context.count("telex_http_requests_started_total")
        if streaming:
            self._pump_body()

    def _request_refused(self, failure: Any) -> None:
        if failure.check(self.context.channel_full):
            logger.warning("http.request channel is full; answering 503 for %s", self.asgi_path)
            # Spec (Request): ChannelFull means 503 and close the connection.
            self._refuse(503, "The server is too busy to take this request; try again shortly.", close=True)
        elif failure.check(self.context.message_too_large):
            self._refuse(413, "The request is too large for the channel layer.")
        else:
            # The bridge logs the outage once (telex/_outage.py), not a line per request.
            logger.debug("could not send http.request: %s", failure.getErrorMessage())
            self._refuse(503, "The channel layer is unavailable.")

    # -- streaming the body --------------------------------------------------------

    def _pump_body(self) -> None:
        """Send buffered body data in chunk-size messages, one at a time.

        The last message always has ``more_content`` false — empty if the body
        ended exactly where the previous chunk did.
        """
        if self._chunk_in_flight or self._lost or self._response_complete or self._last_chunk_sent:
            return
        chunk_size = self.settings.request_body_chunk_size
        buffered = sum(map(len, self._body))
        if buffered < chunk_size and not self._body_complete:
            self._resume_reading()
            return
        data = b"".join(self._body)
        content, rest = data[:chunk_size], data[chunk_size:]
        self._body.clear()
        if rest:
            self._body.append(rest)
        more = bool(rest) or not self._body_complete
        self._last_chunk_sent = not more
        self._pause_reading()
        self._chunk_in_flight = True
        self._send_chunk(msgs.body_chunk_message(content, more), 0)

    def _send_chunk(self, message: dict, attempt: int) -> None:
        assert self._body_channel is not None
        self._sender.send(self._body_channel, message).addCallbacks(
            self._chunk_sent, self._chunk_refused, errbackArgs=(message, attempt)
        )

    def _chunk_sent(self, _: object) -> None:
        self._chunk_in_flight = False
        self._pump_body()

    def _chunk_refused(self, failure: Any, message: dict, attempt: int) -> None:
        if self._lost or self._finished:
            return
        if failure.check(self.context.channel_full):
            # Spec (Request Body Chunk): wait and try again; reading stays
            # paused meanwhile, so memory does not grow with the body.
            delay = BODY_RETRY_DELAYS[min(attempt, len(BODY_RETRY_DELAYS) - 1)]
            reactor.callLater(delay, self._send_chunk, message, attempt + 1)
            return
        logger.debug("could not send a body chunk to %s: %s", self._body_channel, failure.getErrorMessage())
        self._chunk_in_flight = False
        self._refuse(503, "The channel layer is unavailable.")

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self._body_complete:
            self._reading_paused = True
            if isinstance(self.channel, http.HTTPChannel):
                self.channel._networkProducer.pauseProducing()
                # Our pause, not the client's idleness: no idle timeout meanwhile.
                self.channel.setTimeout(None)
            else:
                self.channel.pauseProducing()  # H2Stream: stops opening the flow-control window

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if isinstance(self.channel, http.HTTPChannel):
                self.channel.setTimeout(self.settings.keep_alive_timeout)
                self.channel._networkProducer.resumeProducing()
            elif self.channel is not None:
                self.channel.resumeProducing()

    # -- replies ---------------------------------------------------------------------

    def handle_reply(self, message: dict) -> None:
        """A message arrived on this request's reply channel."""
        if self._finished or self._lost:
            return
        try:
            reply = msgs.parse_reply(message)
        except msgs.MalformedHttpReply as exc:
            self._malformed(str(exc))
            return
        if isinstance(reply, msgs.ServerPush):
            logger.debug("dropping Server Push on %s: this connection cannot push", self.reply_channel)
            return
        if isinstance(reply, msgs.Response):
            if self._response_started:
                self._malformed("a second Response arrived after the response had started")
                return
            self._begin_response(reply)
        elif not self._response_started:
            self._malformed("a Response Chunk arrived before the Response")
            return
        self._output(reply.content, reply.more_content)

    def _begin_response(self, reply: msgs.Response) -> None:
        self._response_started = True
        # The transport tells us (pauseProducing) when its buffer is full, so
        # output for a slow reader is held and counted here, not in Twisted.
        self.registerProducer(self, True)
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self.setResponseCode(reply.status)
        has_length = False
        h2 = not isinstance(self.channel, http.HTTPChannel)
        for name, value in reply.headers:
            if h2 and name in _H2_FORBIDDEN_HEADERS:
                logger.debug("dropping %r header on HTTP/2 %s", name, self.reply_channel)
                continue
            self.responseHeaders.addRawHeader(name, value)
            has_length = has_length or name == b"content-length"
        if (
            not reply.more_content
            and not has_length
            and reply.status not in _NO_BODY_STATUSES
            and reply.status >= 200
        ):
            # The whole body is here: a length keeps the connection reusable
            # even for HTTP/1.0 and avoids chunked framing.
            self.responseHeaders.setRawHeaders(b"content-length", [str(len(reply.content)).encode()])
        self.context.count("telex_http_responses_total", status=str(reply.status))

    def _output(self, content: bytes, more: bool) -> None:
        if self._output_paused or self._held:
            self._held.append((content, more))
            self._held_bytes += len(content)
            self._check_slow_client()
            return
        self._write_reply(content, more)

    def _write_reply(self, content: bytes, more: bool) -> None:
        if content:
            self.response_bytes += len(content)
            self.write(content)
        elif not self.startedWriting:
            self.write(b"")  # sends the head now, even for an empty first message
        if not more:
            self._response_complete = True
            self._finish()

    # IPushProducer, registered with the channel: the transport's buffer is full.
    def pauseProducing(self) -> None:
        self._output_paused = True

    def resumeProducing(self) -> None:
        self._output_paused = False
        while self._held and not self._output_paused and not self._finished:
            content, more = self._held.popleft()
            self._held_bytes -= len(content)
            self._write_reply(content, more)
        self._check_slow_client()

    def stopProducing(self) -> None:
        self._held.clear()
        self._held_bytes = 0

    def _check_slow_client(self) -> None:
        limit = self.settings.max_pending_output
        waiting = self._slow_call is not None and self._slow_call.active()
        if self._held_bytes <= limit:
            if waiting:
                self._slow_call.cancel()
            return
        if self._held_bytes > 4 * limit:
            self._drop_slow_client()
        elif not waiting:
            logger.warning(
                "slow client on %s: %d bytes waiting (limit %d); closing in %.0fs unless it catches up",
                self.reply_channel,
                self._held_bytes,
                limit,
                self.settings.slow_client_timeout,
            )
            self._slow_call = reactor.callLater(self.settings.slow_client_timeout, self._drop_slow_client)

    def _drop_slow_client(self) -> None:
        logger.warning("closing slow client on %s: %d bytes unsent", self.reply_channel, self._held_bytes)
        self.context.count("telex_slow_clients_closed_total")
        self._held.clear()
        self._held_bytes = 0
        self._abort()

    # -- endings -----------------------------------------------------------------------

    def _finish(self) -> None:
        """End the response. If the body is still arriving, the channel closes
        the connection afterwards instead of reading on (see TelexHTTPChannel)."""
        if self._finished:
            return
        self._finished = True
        self._cancel_timers()
        if self.producer is not None:
            self.unregisterProducer()
        if self.settings.http_disconnect_always and self._request_sent:
            self._send_disconnect()
        self._release()
        if not self._lost:
            self.finish()

    def _finish_local(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.setResponseCode(status)
        for name, value in headers:
            self.responseHeaders.addRawHeader(name, value)
        self.responseHeaders.setRawHeaders(b"content-length", [str(len(body)).encode()])
        self.write(body)
        self._response_complete = True
        self._finish()

    def _refuse(self, status: int, detail: str, close: bool = False) -> None:
        """Answer with a small error page if nothing was sent yet; else close.

        With ``close``, or while the body is still arriving, the connection
        ends after the page.
        """
        if self._finished or self._lost:
            return
        if self._response_started or self.startedWriting:
            self._abort(graceful=True)
            return
        self._response_started = True
        self._cancel_timers()
        reason, body = msgs.error_page(status, detail)
        self.setResponseCode(status, reason)
        self.responseHeaders.setRawHeaders(b"content-type", [b"text/html; charset=utf-8"])
        self.responseHeaders.setRawHeaders(b"content-length", [str(len(body)).encode()])
        if (close or not self._body_complete) and isinstance(self.channel, http.HTTPChannel):
            # HTTP/2 ends just this stream (and forbids the header).
            self.responseHeaders.setRawHeaders(b"connection", [b"close"])
            self.channel.persistent = False
        self.context.count("telex_http_responses_total", status=str(status))
        self.write(body)
        self._response_complete = True
        if self._request_sent:
            # The application may still answer; it is too late, and it gets a
            # disconnect so it can stop work on this request.
            self._send_disconnect()
        self._finish()

    def _malformed(self, problem: str) -> None:
        logger.error("malformed reply on %s: %s", self.reply_channel, problem)
        self.context.count("telex_malformed_replies_total")
        if self._response_started:
            self._abort(graceful=True)
        else:
            self._refuse(500, "The application sent an invalid response.")

    def _timed_out(self) -> None:
        if self._response_started or self._finished:
            return
        logger.warning(
            "no response on %s within %.0fs; answering 503", self.reply_channel, self.settings.http_timeout
        )
        self._refuse(503, "The application did not respond in time.")

    def _abort(self, graceful: bool = False) -> None:
        """End the connection mid-response. ``graceful`` lets what was already
        written reach the client (a broken reply); otherwise buffered output
        is dropped at once (a client that does not read)."""
        self._finished = True
        self._cancel_timers()
        self._release()
        if self._lost or self.channel is None:
            return
        if isinstance(self.channel, http.HTTPChannel):
            self.channel._closing = True
            if graceful:
                self.channel.transport.loseConnection()
            else:
                self.channel.transport.abortConnection()
        else:
            self.channel.abortConnection()  # HTTP/2: reset this stream only

    def _send_disconnect(self) -> None:
        if self.reply_channel is None or getattr(self, "_disconnect_sent", False):
            return
        self._disconnect_sent = True
        message = msgs.disconnect_message(self.reply_channel, self.asgi_path)
        # Spec (Disconnect): on ChannelFull give up; consumption is optional.
        self._sender.send("http.disconnect", message).addErrback(lambda _: None)

    def _release(self) -> None:
        if self.reply_channel is not None:
            self.context.release_reply_channel(self.reply_channel)

    def _cancel_timers(self) -> None:
        for call in (self._timeout_call, self._slow_call):
            if call is not None and call.active():
                call.cancel()


def _trusted(context: ServerContext, client: list[Any] | None) -> bool:
    proxies: TrustedProxies = context.trusted_proxies  # type: ignore[attr-defined]
    return proxies.trusts(client[0] if client else None)


class TelexHTTPChannel(http.HTTPChannel):
    """HTTP/1.1 connection: limits, head deadline, and early endings.

    When a response ends before its request body was read (413, an early
    answer), the rest of the body must never be parsed as a new request: the
    channel stops reading and closes once the response is written.
    """

    _closing = False
    _head_call: Any = None

    def connectionMade(self) -> None:
        settings = self.factory.context.settings
        self.maxHeaders = settings.max_headers
        self.totalHeadersSize = settings.max_header_bytes
        self.MAX_LENGTH = settings.max_header_bytes
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self._head_call is None and self.line_mode and not self._handlingRequest:
            # The first bytes of a request head: it must be complete in time.
            deadline = self.factory.context.settings.request_head_timeout
            self._head_call = self.callLater(deadline, self._head_timed_out)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        if self._head_call is not None:
            if self._head_call.active():
                self._head_call.cancel()
            self._head_call = None
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        if not self._closing:
            super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        if self._closing:
            return
        if not getattr(request, "_body_complete", True):
            self._closing = True
            self.persistent = False
            self.transport.loseConnection()
            return
        super().requestDone(request)

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request line or header line over ``max_header_bytes``: 431, not a silent close."""
        self._closing = True
        _, body = msgs.error_page(431, "A request line or header is too long.")
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n"
            b"content-type: text/html; charset=utf-8\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        self.transport.loseConnection()

    def _head_timed_out(self) -> None:
        self._head_call = None
        logger.info("closing %s: request head not complete in time", self.transport.getPeer())
        self.factory.context.count("telex_http_head_timeouts_total")
        self._closing = True
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        )
        self.transport.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        if self._head_call is not None and self._head_call.active():
            self._head_call.cancel()
        super().connectionLost(reason)


class TelexH2Connection(H2Connection):
    """An HTTP/2 connection whose idle timeout spares streams awaiting the
    application, and really closes over TLS.

    Twisted's HTTP/2 idle timer only counts frames, so a long-poll stream
    would be cut off after ``keep_alive_timeout`` with GOAWAY; HTTP/1.1 stops
    that timer while a request is in progress. Streams whose request went to
    the application are bounded by ``http_timeout`` instead.
    """

    def timeoutConnection(self) -> None:
        if any(getattr(stream._request, "_request_sent", False) for stream in self.streams.values()):
            self.resetTimeout()
            return
        super().timeoutConnection()
        # Twisted's TLS transport puts off its close until its producer (this
        # connection) unregisters: without this, an idle HTTP/2 connection
        # over TLS got its GOAWAY but stayed open another ``abortTimeout`` (15 s).
        self.transport.unregisterProducer()


class _ConnectionProtocol(http._GenericHTTPChannelProtocol):
    """HTTP/1.1, or HTTP/2 by ALPN or by the prior-knowledge preface (h2c).

    Twisted's switch only looks at ALPN. This one also recognises a
    cleartext connection that starts with the HTTP/2 preface, which RFC 9113
    reserves so that no HTTP/1 request can look like it; the bytes are
    buffered only until they can no longer be the preface (the first packet,
    in practice).
    """

    _sniffed = b""

    # The proxy forwards makeConnection to the wrapped channel, whose own
    # connectionMade runs; so the count is kept here.
    def makeConnection(self, transport: Any) -> None:
        self.factory.connection_made(self)
        super().makeConnection(transport)

    def connectionLost(self, reason: Any) -> None:
        self.factory.connection_lost(self)
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self._negotiatedProtocol is None:
            protocol = getattr(self._channel.transport, "negotiatedProtocol", None)
            if protocol is None:  # cleartext, or TLS without ALPN
                data = self._sniffed + data
                if len(data) < len(H2_PREFACE) and H2_PREFACE.startswith(data):
                    self._sniffed = data
                    return
                self._sniffed = b""
                protocol = b"h2" if data.startswith(H2_PREFACE) else b"http/1.1"
            if protocol == b"h2":
                self._switch_to_h2()
            self._negotiatedProtocol = protocol
        self._channel.dataReceived(data)

    def _switch_to_h2(self) -> None:
        """Replace the HTTP/1.1 channel by an HTTP/2 one, as Twisted does on ALPN."""
        old = self._channel
        producer = old._networkProducer
        producer.unregisterProducer()
        old.setTimeout(None)
        self._channel = TelexH2Connection()
        self._channel.requestFactory = self._requestFactory
        self._channel.site = self._site
        self._channel.factory = self._factory
        self._channel.timeOut = self._timeOut
        self._channel.callLater = self._callLater
        self._channel.makeConnection(old.transport)
        # The H2 connection is the transport's producer now, for back pressure.
        producer.registerProducer(self._channel, True)


class _Refuse503(Protocol):
    """Answers one 503 and closes: the connection limit is reached."""

    def connectionMade(self) -> None:
        reason, body = msgs.error_page(503, "Too many connections; try again shortly.")
        self.transport.write(
            b"HTTP/1.1 503 " + reason + b"\r\nconnection: close\r\ncontent-type: text/html; charset=utf-8"
            b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.loseConnection()


@implementer(IProtocolNegotiationFactory)
class HttpFactory(http.HTTPFactory):
    """Builds HTTP/1.1 (and, over TLS with ALPN, HTTP/2) connections for Telex."""

    def __init__(self, context: ServerContext, access_log: Any = None) -> None:
        super().__init__(timeout=context.settings.keep_alive_timeout)
        self.context = context
        self.access_log = access_log
        self.connections: set[Any] = set()
        #: Deferreds fired at the next connection close (graceful shutdown).
        self.close_waiters: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        limit = self.context.settings.max_connections
        if limit and len(self.connections) >= limit:
            self.context.count("telex_connections_refused_total")
            protocol = _Refuse503()
            protocol.factory = self
            return protocol
        protocol = _ConnectionProtocol(TelexHTTPChannel())
        protocol.factory = self
        protocol.requestFactory = AsgiRequest
        protocol.callLater = self.reactor.callLater
        protocol.timeOut = self.timeOut
        return protocol

    def connection_made(self, protocol: Any) -> None:
        self.connections.add(protocol)

    def connection_lost(self, protocol: Any) -> None:
        self.connections.discard(protocol)
        waiters, self.close_waiters = self.close_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def acceptableProtocols(self) -> list[bytes]:
        """ALPN, for TLS listeners made by Twisted (``-e ssl:...``): without
        this, Twisted's ALPN callback finds no common protocol and fails the
        handshake of every client that offers ALPN (browsers, curl)."""
        return [b"h2", b"http/1.1"]

    def log(self, request: Any) -> None:
        if self.access_log is not None:
            self.access_log.log_http(request)

    def startFactory(self) -> None:
        """Twisted's own access log is replaced by ``access_log``."""

    def stopFactory(self) -> None:
        pass
