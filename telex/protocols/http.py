"""HTTP/1.1 and HTTP/2 requests ⇄ ASGI messages, on ``twisted.web``.

``twisted.web.http.Request`` collects the whole body before ``process()``.
Telex instead uses the hooks the channel calls as the request arrives:
``gotLength`` (head complete), ``handleContentChunk`` (body data) and
``requestReceived`` (body complete). The same Request class is driven by
Twisted's HTTP/1.1 ``HTTPChannel`` and HTTP/2 ``H2Stream``; what differs is
asked of the request's wire (``http_wire.py``), its phase is kept in
``http_state.py`` and its flow control in ``flow.py``. The Twisted details
relied on are listed in ``docs/http.md`` and pinned by
``tests/test_http_twisted_contract.py``.

Flow of one request::

    head in ──► http.request (body inline if small and complete)
           └──► http.request with body_channel ──► Request Body Chunks …
    reply channel ──► Response ──► Response Chunks … ──► finish
    connection lost before the response completed ──► http.disconnect
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.web import http
from zope.interface import implementer

from . import http_messages as msgs
from . import http_parsing as parsing
from . import peers
from .flow import HeldOutput, InOrderSender
from .http_state import Event, Phase, RequestState
from .http_wire import ConnectionProtocol, Refuse503, TelexHTTPChannel, wire_for

if TYPE_CHECKING:
    from .context import ServerContext

logger = logging.getLogger("telex.http")

_NO_BODY_STATUSES = frozenset((204, 304))

#: Where a request's http.disconnect goes until a worker process names its own.
SHARED_DISCONNECT = "http.disconnect"


class AsgiRequest(http.Request):
    """One HTTP request, translated to and from ASGI messages."""

    context: ServerContext
    #: Body bytes still owed under the application's Content-Length (None: not tracked).
    _length_left: int | None = None
    #: The application sent more than its Content-Length (logged once).
    _overran = False

    def __init__(self, channel: Any, queued: object = None) -> None:
        super().__init__(channel)
        self.context = channel.factory.context
        self.settings = self.context.settings
        #: HTTP/1.1 or HTTP/2: what differs between them, asked of one adapter.
        self.wire = wire_for(channel)
        self.reply_channel: str | None = None
        self.asgi_path = ""
        #: The request's phase (read by the channels too); see http_state.py.
        self.state = RequestState()
        #: From the head (Content-Length); None for a chunked body.
        self.expected_length: int | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._body_channel: str | None = None
        self._body_sender: InOrderSender | None = None
        self._last_chunk_sent = False
        self._reading_paused = False
        self._disconnect_sent = False
        self._response_received = False
        self._released = False
        # The Response, or a claim before it, may name a process-specific
        # channel for http.disconnect (docs/asgi3.md).
        self._disconnect_channel = SHARED_DISCONNECT
        self._timeout_call: Any = None
        self._idle_call: Any = None
        self._rate_call: Any = None
        self._paused_at = 0.0
        self._last_reply_at = 0.0
        self._output: HeldOutput[tuple[bytes, bool]] = HeldOutput(
            self._write_reply,
            _content_size,
            limit=self.settings.max_pending_output,
            grace=self.settings.slow_client_timeout,
            on_slow=self._drop_slow_client,
            on_warn=self._warn_slow_client,
        )
        self._sender = self.context.make_sender()
        #: Set by the HTTP/1.1 channel when the head's framing is refused
        #: (http_parsing.py); answered as soon as the head is handled.
        self.head_refusal: parsing.Refusal | None = None
        self.started_at = time.monotonic()
        #: When the body deadline started, moved on by the time reading was paused.
        self._body_clock = self.started_at
        # A body-less placeholder: twisted.web code may look at .content.
        self.content = None

    def write(self, data: bytes) -> None:
        if not self.startedWriting and not self.responseHeaders.hasHeader(b"date"):
            self.responseHeaders.setRawHeaders(b"date", [msgs.http_date()])  # RFC 9110 §6.6.1
        super().write(data)

    # -- hooks called by HTTPChannel / H2Stream -----------------------------------

    def gotLength(self, length: int | None) -> None:
        # Called while HTTPChannel/H2Stream are mid-parse: finishing the
        # request from here would corrupt their state, so the head is handled
        # just after (or at the first body data, or at requestReceived, which
        # for a body-less HTTP/1.1 request follows synchronously).
        self.expected_length = length
        if self.wire.head_waits(length):
            reactor.callLater(0, self._head_complete)

    def handleContentChunk(self, data: bytes) -> None:
        self._head_complete()
        if self.state.ended:
            return  # the answer is out (e.g. 413); discard the rest of the body
        self._body_size += len(data)
        limit = self.settings.max_request_body_size
        if limit and self._body_size > limit:
            self._refuse(413, f"The request body is larger than {limit} bytes.")
            return
        self._body.append(data)
        if self._rate_call is None and (
            self.expected_length is None or self._body_size < self.expected_length
        ):
            self._arm_body_deadline()
        if self._body_channel is None:
            if self.state.phase is not Phase.GATHERING:
                return  # sent inline already, or answered by the server itself
            if self._body_size > self.settings.request_body_inline_max:
                self._start_request(streaming=True)
            return
        self._pump_body()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The body is complete. (Deliberately not calling ``process()``.)"""
        self._head_complete((command, path, version))
        self.state.body_complete = True
        if self._rate_call is not None and self._rate_call.active():
            self._rate_call.cancel()
        if self.state.ended:
            return
        if self.state.phase is Phase.GATHERING:
            self._start_request(streaming=False)
        elif self._body_channel is not None:
            self._pump_body()

    def connectionLost(self, reason: Any) -> None:
        owes_disconnect = self.state.owes_disconnect
        self.state.handle(Event.CONNECTION_LOST)
        self._cancel_timers()
        self._stop_body()
        if owes_disconnect:
            if self._body_channel is not None and not self.state.body_complete:
                self._sender.send(self._body_channel, msgs.BODY_CLOSED_MESSAGE).addErrback(lambda _: None)
            self._send_disconnect()
        self._release()
        super().connectionLost(reason)

    # -- the request message -------------------------------------------------

    def _head_complete(self, request_line: tuple[bytes, bytes, bytes] | None = None) -> None:
        if self.state.phase is not Phase.HEAD:
            return
        self.state.handle(Event.HEAD_READ)
        command, target, version = request_line or self.wire.request_line(self.channel)
        if target is None:  # HTTP/2 CONNECT: no :path (RFC 9113 8.5)
            target = b""
        self.http_version = {b"HTTP/1.0": "1.0", b"HTTP/2": "2"}.get(version, "1.1")
        # twisted.web's write()/finish() read these; it sets them only in
        # requestReceived, which for a streamed body comes too late.
        self.method, self.uri, self.clientproto = command, target, version
        refusal = self.head_refusal or parsing.head_refusal(
            command.upper(), target, version, self.requestHeaders.getRawHeaders(b"host")
        )
        if refusal is not None:
            self._refuse(refusal.status, refusal.detail, close=True)
            return
        if target[:1] != b"/":
            authority = parsing.absolute_form_authority(target)
            if authority is not None:
                # RFC 9112 3.2.2: the target's host is the request's, whatever Host said.
                self.requestHeaders.setRawHeaders(b"host", [authority])
        raw_path, query_string = msgs.split_target(target)
        self.path = raw_path
        try:
            self.asgi_path = msgs.decode_path(raw_path)
        except msgs.BadPath as exc:
            self._refuse(400, str(exc))
            return
        upgrade = self.requestHeaders.getRawHeaders(b"upgrade")
        if (
            upgrade
            and upgrade[0].lower() == b"websocket"
            and self.wire.can_upgrade
            and self.http_version == "1.1"
        ):
            if self.context.upgrade_websocket(self):
                self.state.handle(Event.UPGRADED)
                return
            self._refuse(400, "WebSocket upgrades are not available here.")
            return
        local = self.context.local_response(self, self.asgi_path)
        if local is not None:  # answered here: nothing goes to the layer
            self.state.handle(Event.RESPONSE_STARTED)
            local.addCallback(self._answer_locally)
            return
        limit = self.settings.max_request_body_size
        if limit and (self.expected_length or 0) > limit:
            self._refuse(413, f"The request body is larger than {limit} bytes.")
            return
        self._query_string = query_string
        if (self.expected_length or 0) > self.settings.request_body_inline_max:
            self._start_request(streaming=True)

    def _start_request(self, streaming: bool) -> None:
        """Send ``http.request``: inline body, or the start of a streamed one."""
        headers = msgs.asgi_headers(self.requestHeaders.getAllRawHeaders())
        client, scheme = peers.client_and_scheme(self.context, self, headers)
        self.reply_channel = self.context.new_reply_channel(self.handle_reply, self._layer_lost_data)
        body = b"".join(self._body)
        self._body.clear()
        if streaming:
            self._body_channel = self.context.new_body_channel()
            # Reading pauses while a chunk is with the layer (spec, Request Body
            # Chunk: wait and try again on ChannelFull), so memory stays flat.
            self._body_sender = InOrderSender(
                self._sender,
                self.context.channel_full,
                pause=self._pause_reading,
                resume=self._resume_reading,
                on_failure=self._body_refused,
                on_drained=self._pump_body,
                pause_messages=0,
                pause_bytes=0,
                give_up_after=None,
            )
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
            server=peers.address(self.getHost()),
        )
        self.state.handle(Event.REQUEST_SENT)
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
        sender = self._body_sender
        if sender is None or not sender.idle or self._last_chunk_sent:
            return
        if self.state.ended:
            return
        chunk_size = self.settings.request_body_chunk_size
        buffered = sum(map(len, self._body))
        if buffered < chunk_size and not self.state.body_complete:
            return
        data = b"".join(self._body)
        content, rest = data[:chunk_size], data[chunk_size:]
        self._body.clear()
        if rest:
            self._body.append(rest)
        more = bool(rest) or not self.state.body_complete
        self._last_chunk_sent = not more
        assert self._body_channel is not None
        sender.push(self._body_channel, msgs.body_chunk_message(content, more), len(content))

    def _body_refused(self, failure: Any) -> None:
        if self.state.ended:
            return
        logger.debug("could not send a body chunk to %s: %s", self._body_channel, failure.getErrorMessage())
        self._refuse(503, "The channel layer is unavailable.")

    def _stop_body(self) -> None:
        if self._body_sender is not None:
            self._body_sender.stop()

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self.state.body_complete and self.channel is not None:
            self._reading_paused = True
            self._paused_at = time.monotonic()
            self.wire.pause_reading(self.channel)

    def _resume_reading(self) -> None:
        if self._reading_paused and self.channel is not None:
            self._reading_paused = False
            # The body deadline leaves out the time the server itself held reading.
            self._body_clock += time.monotonic() - self._paused_at
            self.wire.resume_reading(self.channel, self.settings.keep_alive_timeout)

    def _arm_body_deadline(self) -> None:
        """Apache mod_reqtimeout's rule: the body may take ``request_body_timeout``
        seconds plus one per ``request_body_min_rate`` bytes received; checked
        by one timer that re-arms itself, not per chunk."""
        grace, rate = self.settings.request_body_timeout, self.settings.request_body_min_rate
        if not grace or not rate:
            return
        allowed = grace + self._body_size / rate
        self._rate_call = reactor.callLater(
            max(0.0, self._body_clock + allowed - time.monotonic()), self._body_deadline
        )

    def _body_deadline(self) -> None:
        self._rate_call = None
        if self.state.body_complete or self.state.ended:
            return
        if self._reading_paused:  # the server's own pause: look again later
            self._rate_call = reactor.callLater(self.settings.request_body_timeout, self._body_deadline)
            return
        grace, rate = self.settings.request_body_timeout, self.settings.request_body_min_rate
        elapsed = time.monotonic() - self._body_clock
        if elapsed < grace + self._body_size / rate:
            self._arm_body_deadline()
            return
        logger.warning(
            "request body for %s too slow: %d bytes in %.1fs (minimum %d bytes/s after %gs); answering 408",
            self.asgi_path,
            self._body_size,
            elapsed,
            rate,
            grace,
        )
        self.context.count("telex_http_body_timeouts_total")
        self._refuse(408, "The request body arrived too slowly.", close=True)

    # -- replies ---------------------------------------------------------------------

    def handle_reply(self, message: dict) -> None:
        """A message arrived on this request's reply channel."""
        if self.state.ended:
            return
        if msgs.is_disconnect_claim(message):
            self._take_disconnect_channel(message[msgs.DISCONNECT_CHANNEL_KEY])
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
            if self.state.phase is Phase.RESPONDING:
                self._malformed("a second Response arrived after the response had started")
                return
            if reply.content_length is not None and self._refused_for_length(reply, reply.content_length):
                return
            if msgs.DISCONNECT_CHANNEL_KEY in message:
                self._take_disconnect_channel(message[msgs.DISCONNECT_CHANNEL_KEY])
            self._response_received = True
            self._begin_response(reply)
        elif self.state.phase is not Phase.RESPONDING:
            self._malformed("a Response Chunk arrived before the Response")
            return
        self._reply_arrived(reply.more_content)
        self._output.offer((reply.content, reply.more_content))

    def _take_disconnect_channel(self, channel: Any) -> None:
        if msgs.is_process_channel(channel):
            self._disconnect_channel = channel
        else:
            logger.warning(
                "ignoring %s %r on %s: not a process-specific channel ('prefix!local')",
                msgs.DISCONNECT_CHANNEL_KEY,
                channel,
                self.reply_channel,
            )

    def _refused_for_length(self, reply: msgs.Response, declared: int) -> bool:
        """Whether a whole response short of its Content-Length is answered 500
        (nothing is sent yet, and a 500 beats a response that cannot complete);
        otherwise the body is held to that length from here on. Responses to
        HEAD and 304s declare a length without a body (RFC 9110 §8.6, §9.3.2)."""
        if reply.status == 304 or self.method == b"HEAD":
            return False
        if not reply.more_content and len(reply.content) < declared:
            self._malformed(
                f"the body has {len(reply.content)} of the {declared} bytes of its Content-Length"
            )
            return True
        self._length_left = declared
        return False

    def _begin_response(self, reply: msgs.Response) -> None:
        self.state.handle(Event.RESPONSE_STARTED)
        # The transport tells us (pauseProducing) when its buffer is full, so
        # output for a slow reader is held and counted here, not in Twisted.
        self.registerProducer(self._output, True)
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self.setResponseCode(reply.status)
        forbidden = self.wire.forbidden_headers
        for name, value in reply.headers:
            if name in forbidden:
                logger.debug("dropping %r header on HTTP/2 %s", name, self.reply_channel)
                continue
            self.responseHeaders.addRawHeader(name, value)
        if (
            not reply.more_content
            and reply.content_length is None
            and not reply.chunked
            and reply.status not in _NO_BODY_STATUSES
        ):
            # The whole body is here: a length keeps the connection reusable
            # even for HTTP/1.0 and avoids chunked framing. (Without it,
            # twisted.web chunk-encodes on HTTP/1.1, as the application asked.)
            self.responseHeaders.setRawHeaders(b"content-length", [str(len(reply.content)).encode()])
        self.context.count("telex_http_responses_total", status=str(reply.status))

    def _write_reply(self, item: tuple[bytes, bool]) -> None:
        content, more = item
        left = self._length_left
        if left is not None:
            if len(content) > left:
                content = content[:left]
                self._overrun()
            self._length_left = left - len(content)
        if content:
            self.write(content)
        elif not self.startedWriting:
            self.write(b"")  # sends the head now, even for an empty first message
        if not more:
            if self._length_left:
                # The client counts on the rest: only a closed connection
                # (a reset stream on HTTP/2) tells it the response is cut short.
                self._malformed(f"the body ended {self._length_left} bytes short of its Content-Length")
            else:
                self._finish()

    def _overrun(self) -> None:
        """More body than the application's Content-Length: the excess never
        reaches the client, and the connection ends with this response, since
        the application is out of step with what it declared."""
        if self._overran:
            return
        self._overran = True
        self._log_malformed("the body is longer than its Content-Length; the excess is dropped")
        self.wire.close_after(self.channel, self.responseHeaders)

    def _warn_slow_client(self, held: int) -> None:
        logger.warning(
            "slow client on %s: %d bytes waiting (limit %d); closing in %.0fs unless it catches up",
            self.reply_channel,
            held,
            self.settings.max_pending_output,
            self.settings.slow_client_timeout,
        )

    def _drop_slow_client(self, held: int) -> None:
        logger.warning("closing slow client on %s: %d bytes unsent", self.reply_channel, held)
        self.context.count("telex_slow_clients_closed_total")
        self._abort()

    # -- endings -----------------------------------------------------------------------

    def _finish(self) -> None:
        """The response is written in full: end it. If the body is still arriving,
        the channel closes the connection afterwards instead of reading on (see
        TelexHTTPChannel)."""
        if self.state.ended:
            return
        self.state.handle(Event.RESPONSE_ENDED)
        self._cancel_timers()
        self._stop_body()
        if self.producer is not None:
            self.unregisterProducer()
        if self.settings.http_disconnect_always and self.state.forwarded:
            self._send_disconnect()
        self._release()
        self.finish()

    def _answer_locally(self, response: Any) -> None:
        if self.state.phase is Phase.RESPONDING:  # not aborted while it waited
            self._finish_local(*response)

    def _finish_local(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.setResponseCode(status)
        for name, value in headers:
            self.responseHeaders.addRawHeader(name, value)
        self.responseHeaders.setRawHeaders(b"content-length", [str(len(body)).encode()])
        self.write(body)
        self._finish()

    def _refuse(self, status: int, detail: str, close: bool = False) -> None:
        """Answer with a small error page if nothing was sent yet; else close.

        With ``close``, or while the body is still arriving, the connection
        ends after the page.
        """
        if self.state.ended:
            return
        if self.state.phase is Phase.RESPONDING or self.startedWriting:
            self._abort(graceful=True)
            return
        self.state.handle(Event.RESPONSE_STARTED)
        self._cancel_timers()
        reason, body = msgs.error_page(status, detail)
        self.setResponseCode(status, reason)
        self.responseHeaders.setRawHeaders(b"content-type", [b"text/html; charset=utf-8"])
        self.responseHeaders.setRawHeaders(b"content-length", [str(len(body)).encode()])
        if close or not self.state.body_complete:
            self.wire.close_after(self.channel, self.responseHeaders)
        self.context.count("telex_http_responses_total", status=str(status))
        self.write(body)
        if self.state.forwarded:
            # The application may still answer; it is too late, and it gets a
            # disconnect so it can stop work on this request.
            self._send_disconnect()
        self._finish()

    def _malformed(self, problem: str) -> None:
        self._log_malformed(problem)
        if self.state.phase is Phase.RESPONDING:
            self._abort(graceful=True)
        else:
            self._refuse(500, "The application sent an invalid response.")

    def _log_malformed(self, problem: str) -> None:
        logger.error("malformed reply on %s: %s", self.reply_channel, problem)
        self.context.count("telex_malformed_replies_total")

    def _layer_lost_data(self, checked_at: float) -> None:
        """The layer lost its data: a request sent before the check found it
        that still waits for its Response may never get one."""
        if self.state.phase is Phase.WAITING and self.started_at < checked_at:
            self._refuse(503, "The channel layer lost this request; try again.")

    def _timed_out(self) -> None:
        if self.state.phase is not Phase.WAITING:
            return
        logger.warning(
            "no response on %s within %.0fs; answering 503", self.reply_channel, self.settings.http_timeout
        )
        self._refuse(503, "The application did not respond in time.")

    def _reply_arrived(self, more: bool) -> None:
        """Restart the idle-response clock: lazily, as one timer that re-arms
        itself when it fires early, not a reschedule per chunk."""
        if not more:
            if self._idle_call is not None and self._idle_call.active():
                self._idle_call.cancel()
            return
        self._last_reply_at = reactor.seconds()
        if self._idle_call is None:
            limit = self._idle_limit()
            if limit:
                self._idle_call = reactor.callLater(limit, self._response_idle)

    def _idle_limit(self) -> float:
        limit = self.settings.response_idle_timeout
        return self.settings.http_timeout if limit is None else limit

    def _response_idle(self) -> None:
        limit = self._idle_limit()
        idle = reactor.seconds() - self._last_reply_at
        if idle < limit:
            self._idle_call = reactor.callLater(limit - idle, self._response_idle)
            return
        if self.state.ended:
            return
        logger.warning(
            "no reply chunk on %s for %gs; closing the incomplete response", self.reply_channel, limit
        )
        self.context.count("telex_response_idle_timeouts_total")
        self._abort(graceful=True)

    def _abort(self, graceful: bool = False) -> None:
        """End the connection mid-response. ``graceful`` lets what was already
        written reach the client (a broken reply); otherwise buffered output
        is dropped at once (a client that does not read)."""
        if self.state.ended:
            return
        self.state.handle(Event.ABORTED)
        self._cancel_timers()
        self._stop_body()
        self._release()
        if self.channel is not None:
            self.wire.abort(self.channel, graceful)

    def _send_disconnect(self) -> None:
        if self.reply_channel is None or self._disconnect_sent:
            return
        self._disconnect_sent = True
        message = msgs.disconnect_message(self.reply_channel, self.asgi_path)
        # Spec (Disconnect): on ChannelFull give up; consumption is optional.
        self._sender.send(self._disconnect_channel, message).addErrback(lambda _: None)

    def _release(self) -> None:
        if self.reply_channel is None or self._released:
            return
        self._released = True
        self.context.release_reply_channel(self.reply_channel)
        if (
            self._disconnect_sent
            and self._disconnect_channel == SHARED_DISCONNECT
            and not self._response_received
        ):
            _LateClaim(
                self.context, self._sender, self.reply_channel, self.asgi_path, self.settings.http_timeout
            )

    def _cancel_timers(self) -> None:
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        if self._rate_call is not None and self._rate_call.active():
            self._rate_call.cancel()
        self._output.close()  # and its slow-client timer


class _LateClaim:
    """A request that ended before any worker process named its disconnect channel.

    Its ``http.disconnect`` went to the shared channel, which a worker process
    not running the request may have taken. If the one running it claims the
    request later (``telex.disconnect_channel`` alone), the disconnect is sent
    there too; a final reply, or ``linger`` seconds, end the wait.
    """

    __slots__ = ("call", "context", "path", "reply_channel", "sender")

    def __init__(
        self, context: ServerContext, sender: Any, reply_channel: str, path: str, linger: float
    ) -> None:
        self.context = context
        self.sender = sender
        self.reply_channel = reply_channel
        self.path = path
        context.register_reply_channel(reply_channel, self.handle)
        self.call = reactor.callLater(linger, self.release)

    def handle(self, message: dict) -> None:
        if msgs.is_disconnect_claim(message):
            channel = message[msgs.DISCONNECT_CHANNEL_KEY]
            if msgs.is_process_channel(channel):
                disconnect = msgs.disconnect_message(self.reply_channel, self.path)
                self.sender.send(channel, disconnect).addErrback(lambda _: None)
        elif message.get("more_content"):
            return  # the application is still answering; it may claim later
        self.release()

    def release(self) -> None:
        if self.call.active():
            self.call.cancel()
        self.context.release_reply_channel(self.reply_channel)


def _content_size(item: tuple[bytes, bool]) -> int:
    return len(item[0])


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
            protocol = Refuse503()
            protocol.factory = self
            return protocol
        protocol = ConnectionProtocol(TelexHTTPChannel())
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
