"""The two wires under ``AsgiRequest``: HTTP/1.1 and HTTP/2, on twisted.web.

``AsgiRequest`` (http.py) is the wire-neutral stream: it turns a request into
ASGI messages and replies into a response. Whatever differs between the
wires it asks of a ``Wire``, chosen once per request by ``wire_for`` (the
layering of Hypercorn's ``protocol/h11.py``, ``protocol/h2.py`` under its
``http_stream.py``). The wires are stateless: one instance each, handed the
channel (HTTP/1.1's ``HTTPChannel``, HTTP/2's ``H2Stream``).

Below the adapters are the connection classes: ``TelexHTTPChannel`` (limits,
head deadline, early endings), ``TelexH2Connection`` (Twisted's HTTP/2
connection put right: idle timeout, closing over TLS, the GOAWAY codes RFC
9113 names, send windows), ``ConnectionProtocol`` (HTTP/1.1, or HTTP/2 by
ALPN or by the first bytes, ``sniff_protocol``) and ``Refuse503`` (over the
connection limit).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import h2.connection
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.events import RequestReceived, StreamReset, TrailersReceived
from h2.exceptions import DenialOfServiceError, FrameDataMissingError, InvalidBodyLengthError, ProtocolError
from h2.frame_buffer import FrameBuffer
from h2.stream import StreamState
from hpack.exceptions import HPACKError
from hyperframe.frame import SettingsFrame
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web._http2 import _END_STREAM_SENTINEL, H2Connection  # twisted[http2] is a dependency
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers

from . import http_messages as msgs
from . import http_parsing as parsing

logger = logging.getLogger("telex.http")

#: What an HTTP/2 client sends first (RFC 9113, 3.4); no HTTP/1 request starts so.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Connection-specific headers that HTTP/2 forbids (RFC 9113, 8.2.2); the h2
#: library refuses to send a response carrying them, so they are dropped. (``te``
#: is a request header, allowed there only as ``trailers``; h2 refused any other
#: value in a response with an exception.)
H2_FORBIDDEN_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade")
)


class Wire:
    """What the request asks of its wire. Methods take the request's channel."""

    #: Connection-specific response headers this wire cannot carry (dropped).
    forbidden_headers: frozenset[bytes] = frozenset()
    #: A WebSocket handshake can take the connection over (RFC 6455 is HTTP/1.1 only).
    can_upgrade = False

    def head_waits(self, length: int | None) -> bool:
        """Whether the head is handled after ``gotLength`` returns rather than
        by ``requestReceived`` (see ``AsgiRequest.gotLength``)."""
        raise NotImplementedError

    def request_line(self, channel: Any) -> tuple[bytes, bytes, bytes]:
        """Method, target and version, before ``requestReceived`` passes them."""
        raise NotImplementedError

    def pause_reading(self, channel: Any) -> None:
        raise NotImplementedError

    def resume_reading(self, channel: Any, idle_timeout: float) -> None:
        raise NotImplementedError

    def close_after(self, channel: Any, headers: Headers) -> None:
        """This response is the connection's last (an error while the body is unread)."""
        raise NotImplementedError

    def abort(self, channel: Any, graceful: bool) -> None:
        """End mid-response: ``graceful`` lets what was written reach the client."""
        raise NotImplementedError


class Http1Wire(Wire):
    can_upgrade = True

    def head_waits(self, length: int | None) -> bool:
        # A body-less request: requestReceived follows synchronously.
        return length != 0

    def request_line(self, channel: Any) -> tuple[bytes, bytes, bytes]:
        # Set by HTTPChannel.lineReceived from the request line; deleted
        # again just before requestReceived, which passes them instead.
        return channel._command, channel._path, channel._version

    def pause_reading(self, channel: Any) -> None:
        channel._networkProducer.pauseProducing()
        # Our pause, not the client's idleness: no idle timeout meanwhile.
        channel.setTimeout(None)

    def resume_reading(self, channel: Any, idle_timeout: float) -> None:
        channel.setTimeout(idle_timeout)
        channel._networkProducer.resumeProducing()

    def close_after(self, channel: Any, headers: Headers) -> None:
        headers.setRawHeaders(b"connection", [b"close"])
        channel.persistent = False

    def abort(self, channel: Any, graceful: bool) -> None:
        channel._closing = True
        if graceful:
            channel.transport.loseConnection()
        else:
            channel.transport.abortConnection()


class Http2Wire(Wire):
    forbidden_headers = H2_FORBIDDEN_HEADERS

    def head_waits(self, length: int | None) -> bool:
        return True

    def request_line(self, channel: Any) -> tuple[bytes, bytes, bytes]:
        return channel.command, channel.path, b"HTTP/2"

    def pause_reading(self, channel: Any) -> None:
        channel.pauseProducing()  # H2Stream: stops opening the flow-control window

    def resume_reading(self, channel: Any, idle_timeout: float) -> None:
        channel.resumeProducing()

    def close_after(self, channel: Any, headers: Headers) -> None:
        """Ending the stream is enough (and HTTP/2 forbids ``connection``)."""

    def abort(self, channel: Any, graceful: bool) -> None:
        # Resets this stream only. A broken reply is the server's error
        # (RFC 9113 §7, INTERNAL_ERROR), which a reset with Twisted's
        # NO_ERROR would hide.
        if graceful:
            channel._conn.abortRequest(channel.streamID, ErrorCodes.INTERNAL_ERROR)
        else:
            channel.abortConnection()


HTTP1 = Http1Wire()
HTTP2 = Http2Wire()


def wire_for(channel: Any) -> Wire:
    """The wire of a request's channel: twisted.web's HTTPChannel, else an H2Stream."""
    # HTTPChannel imported by name: twisted.web.http is a deprecation proxy,
    # whose every attribute lookup is a Python call.
    return HTTP1 if isinstance(channel, HTTPChannel) else HTTP2


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
            self.start_head_deadline()
        super().dataReceived(data)

    def start_head_deadline(self) -> None:
        """The first bytes of a request head are in: it must be complete in time."""
        if self._head_call is None:
            deadline = self.factory.context.settings.request_head_timeout
            self._head_call = self.callLater(deadline, self._head_timed_out)

    def cancel_head_deadline(self) -> None:
        if self._head_call is not None:
            if self._head_call.active():
                self._head_call.cancel()
            self._head_call = None

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        """Twisted's choice of body framing, with RFC 9112's rules (6.1, 6.3) that it
        lacks: it ignores ``Transfer-Encoding: identity`` (the body was then parsed as
        the next request) and answers other codings with a bare 400.

        A refused framing reads no body: the request is answered as soon as its head
        is complete (``AsgiRequest.head_refusal``) and the connection closes.
        """
        request = self.requests[-1]
        if request.head_refusal is not None:
            return True  # refused already: no decoder, no body
        if header == b"Transfer-Encoding":
            # Twisted's chunked decoder sets ``length`` None; Content-Length an integer.
            refusal = parsing.transfer_coding_refusal(data, self._version, chunked_before=self.length is None)
            if refusal is None and self._transferDecoder is not None and self.length is not None:
                refusal = parsing.BOTH_LENGTHS
        elif header == b"Content-Length" and self.length is None:
            refusal = parsing.BOTH_LENGTHS
        else:
            return super()._maybeChooseTransferDecoder(header, data)
        if refusal is None:
            return super()._maybeChooseTransferDecoder(header, data)
        request.head_refusal = refusal
        self.length, self._transferDecoder = 0, None
        return True

    def allHeadersReceived(self) -> None:
        self.cancel_head_deadline()
        if self.requests[-1].head_refusal is not None:
            # No "100 Continue" for a request refused already; with length 0
            # lineReceived goes straight on to allContentReceived.
            return
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        if not self._closing:
            super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        if self._closing:
            return
        if not request.state.body_complete:
            self._closing = True
            self.persistent = False
            self.transport.loseConnection()
            return
        super().requestDone(request)

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request line or header line over ``max_header_bytes``: 431, not a silent close."""
        self._closing = True
        self.transport.write(msgs.raw_error_response(431, "A request line or header is too long."))
        self.transport.loseConnection()

    def _head_timed_out(self) -> None:
        self._head_call = None
        logger.info("closing %s: request head not complete in time", self.transport.getPeer())
        self.factory.context.count("telex_http_head_timeouts_total")
        self._closing = True
        self.transport.write(msgs.raw_error_response(408))
        self.transport.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        self.cancel_head_deadline()
        super().connectionLost(reason)


class _FrameReader(FrameBuffer):
    """h2's frame reader. RFC 9113 (6.5) makes a SETTINGS acknowledgement with
    a payload a FRAME_SIZE_ERROR; h2 calls it a PROTOCOL_ERROR (h2spec
    http2/6.5/1). The frame header alone decides it."""

    def __next__(self) -> Any:
        header = self._data[:9]
        if len(header) == 9 and header[3] == SettingsFrame.type and header[4] & 0x1 and any(header[:3]):
            raise FrameDataMissingError("a SETTINGS acknowledgement must have no payload")
        return super().__next__()


#: Where a stream stands after a header block was decoded and accepted by the
#: stream's state machine: any error raised from there on is about the request.
_STREAM_ALIVE = frozenset((StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE, StreamState.HALF_CLOSED_LOCAL))


class MalformedRequestReset(StreamReset):
    """The server reset a stream for a malformed request. A StreamReset, so
    Twisted's event loop hands it to ``_requestAborted`` in its place among
    the other events, after the request's own (a request refused after its
    head reached Twisted ends there, in order)."""

    def __init__(self, stream_id: int) -> None:
        super().__init__(stream_id=stream_id, error_code=ErrorCodes.PROTOCOL_ERROR, remote_reset=False)


class _H2State(h2.connection.H2Connection):
    """h2's state machine, with the errors that RFC 9113 asks for where h2
    sends none or the wrong one.

    A malformed request (8.1.1: forbidden or uppercase header names, missing
    or repeated pseudo-headers, a bad content-length or a body at odds with
    it, trailers without END_STREAM) is a stream error: h2 raises
    ProtocolError for it, which would end every stream of the connection with
    GOAWAY. Here its stream alone is reset with PROTOCOL_ERROR, the connection
    learns of it through a ``MalformedRequestReset`` event, and the window its
    DATA used is given back. Each such reset spends ``spend_reset_token`` like
    a reset from the peer, so malformed requests cannot open streams without
    bound ("MadeYouReset", CVE-2025-8671): with none left, the error is a
    connection error again (GOAWAY ENHANCE_YOUR_CALM).
    """

    def __init__(self, config: Any, spend_reset_token: Callable[[], bool]) -> None:
        super().__init__(config=config)
        self.incoming_buffer = _FrameReader(server=not config.client_side)
        self.spend_reset_token = spend_reset_token

    def receive_data(self, data: Any) -> list[Any]:
        try:
            return super().receive_data(data)
        except ProtocolError:
            # h2 checks the preface before its error handling, so an invalid
            # one (3.4: a connection error of type PROTOCOL_ERROR) queued no
            # GOAWAY (h2spec http2/3.5/2).
            if self.state_machine.state is not ConnectionState.CLOSED:
                self.close_connection(ErrorCodes.PROTOCOL_ERROR)
            raise

    def _receive_headers_frame(self, frame: Any) -> Any:
        # Trailers make h2 forget the request's content-length: kept first.
        stream = self.streams.get(frame.stream_id)
        declared = stream._expected_content_length if stream is not None else None
        try:
            frames, events = super()._receive_headers_frame(frame)
        except ProtocolError as exc:
            # A header block that cannot be decoded is a COMPRESSION_ERROR
            # (4.3), where h2 says PROTOCOL_ERROR (h2spec hpack/2.3.3, 4.2,
            # 5.2, 6.1, 6.3 and http2/4.3). An oversized header list stays
            # ENHANCE_YOUR_CALM (h2's DenialOfServiceError).
            if isinstance(exc.__cause__, HPACKError) and not isinstance(exc, DenialOfServiceError):
                exc.error_code = ErrorCodes.COMPRESSION_ERROR
                raise
            # Only plain ProtocolErrors: its subclasses are about the stream's
            # state or the connection (closed streams, too many streams, flow
            # control), and a stream the state machine refused is CLOSED.
            stream = self.streams.get(frame.stream_id)
            if type(exc) is not ProtocolError or stream is None:
                raise
            if stream.state_machine.state not in _STREAM_ALIVE:
                raise
            return self._refuse(frame.stream_id, exc)
        # h2 checks content-length against DATA frames only: a request that
        # ends with its HEADERS or with trailers short of it is as malformed.
        # (h2 keeps both counts privately; the tests cover each case.)
        for event in events:
            stream = self.streams.get(frame.stream_id)
            if isinstance(event, RequestReceived) and event.stream_ended is not None:
                declared = stream._expected_content_length
            elif not isinstance(event, TrailersReceived):
                continue
            if declared is not None and declared != stream._actual_content_length:
                cause = InvalidBodyLengthError(declared, stream._actual_content_length)
                return self._refuse(frame.stream_id, cause)
        return frames, events

    def _receive_data_frame(self, frame: Any) -> Any:
        try:
            return super()._receive_data_frame(frame)
        except InvalidBodyLengthError as exc:
            # h2 counted the frame against the connection's window before
            # refusing it; nobody will read it, so the window is given back.
            frames, events = self._refuse(frame.stream_id, exc)
            self.acknowledge_received_data(frame.flow_controlled_length, frame.stream_id)
            return frames, events

    def _refuse(self, stream_id: int, cause: ProtocolError) -> tuple[list[Any], list[Any]]:
        if not self.spend_reset_token():
            raise DenialOfServiceError("too many malformed requests") from cause
        self.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
        return [], [MalformedRequestReset(stream_id)]


class TelexH2Connection(H2Connection):
    """Twisted's HTTP/2 connection, with what it gets wrong put right.

    - Its idle timer only counts frames, so a long-poll stream would be cut
      off after ``keep_alive_timeout`` with GOAWAY; HTTP/1.1 stops that timer
      while a request is in progress. Streams whose request went to the
      application are bounded by ``http_timeout`` instead.
    - It never unregisters itself as its transport's producer, and Twisted's
      TLS transport puts off a close until the producer is gone: over TLS a
      connection error (or the peer's GOAWAY, or the idle timeout) sent its
      GOAWAY and left the connection open. Cleartext TCP closed anyway, so
      h2c and TLS behaved differently.
    - Its sending loop keeps a stream whose send window is used up scheduled
      (a busy loop of empty iterations), and when a SETTINGS frame makes the
      window negative (RFC 9113, 6.9.2) it cuts a frame by that negative size
      and h2 refuses it: the stream stalled for good. Here a stream is
      scheduled only while it can send.
    """

    def __init__(self, reactor: Any = None) -> None:
        super().__init__(reactor)
        self.conn = _H2State(config=self.conn.config, spend_reset_token=self._spend_reset_token)

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        # A WINDOW_UPDATE or a SETTINGS frame may have opened send windows.
        self._schedule_sendable_streams()

    def _requestAborted(self, event: StreamReset) -> None:
        """A stream ended by a reset: the peer's, or ours for a malformed request.

        Body bytes Twisted holds for a paused stream were never acknowledged;
        they are given back to the connection's window, or every reset of a
        paused upload would shrink it for good. A malformed request's token was
        spent when it was refused, and one refused before its head reached
        Twisted has no stream here.
        """
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            unread = sum(length for _, length in stream._inboundDataBuffer if length)
            stream._inboundDataBuffer.clear()
            if unread:
                self.conn.acknowledge_received_data(unread, event.stream_id)
        if not isinstance(event, MalformedRequestReset):
            super()._requestAborted(event)
        elif stream is not None:
            stream.connectionLost(Failure(ConnectionLost("malformed request: stream reset")))
            self._requestDone(event.stream_id)

    def _spend_reset_token(self) -> bool:
        """One token of Twisted's reset-flood bucket (``_requestAborted``), False when empty."""
        now = self._reactor.seconds()
        elapsed = max(0.0, now - self._resetTokenTimestamp)
        self._resetTokens = min(self._resetTokenBurst, self._resetTokens + elapsed * self._resetTokenRate)
        self._resetTokenTimestamp = now
        if self._resetTokens < 1:
            return False
        self._resetTokens -= 1
        return True

    def _sendPrioritisedData(self, *args: Any) -> None:
        for stream_id, queue in self._outboundStreamQueues.items():
            if queue and not self._can_send(stream_id, queue):
                self.priority.block(stream_id)
        super()._sendPrioritisedData(*args)

    def _can_send(self, stream_id: int, queue: deque) -> bool:
        """Whether the stream's next queued item may go out: ending a stream
        needs no window, data needs a positive one."""
        return queue[0] is _END_STREAM_SENTINEL or self.conn.local_flow_control_window(stream_id) > 0

    def _schedule_sendable_streams(self) -> None:
        """Unblock streams with output that their windows now let through, and
        wake the sending loop if it was idle."""
        woken = False
        for stream_id, queue in self._outboundStreamQueues.items():
            if queue and self._can_send(stream_id, queue):
                self.priority.unblock(stream_id)
                woken = True
        if woken and self._sendingDeferred is not None:
            waiting, self._sendingDeferred = self._sendingDeferred, None
            waiting.callback(None)

    def connectionLost(self, reason: Any, _cancelTimeouts: bool = True) -> None:
        # Twisted calls this itself right after ``transport.loseConnection()``
        # when it ends the connection; see the class docstring for why the
        # producer must go.
        if self.transport is not None:
            self.transport.unregisterProducer()
        super().connectionLost(reason, _cancelTimeouts)

    def abortRequest(self, streamID: int, error_code: int = ErrorCodes.NO_ERROR) -> None:
        """Twisted's, with the RST_STREAM's error code to choose (see ``Http2Wire.abort``)."""
        self.conn.reset_stream(streamID, error_code)
        if self._tryToWriteControlData():
            self._requestDone(streamID)

    def timeoutConnection(self) -> None:
        if any(stream._request.state.in_progress for stream in self.streams.values()):
            self.resetTimeout()
            return
        super().timeoutConnection()
        self.transport.unregisterProducer()  # as in connectionLost: the TLS close waits for it


def sniff_protocol(data: bytes, line_limit: int) -> bytes | None:
    """``b"h2"`` or ``b"http/1.1"`` for a connection that began with ``data``;
    None while its first bytes cannot tell yet.

    The HTTP/2 preface (RFC 9113, 3.4) is reserved so that no HTTP/1 request
    looks like it. Anything else is HTTP/1.1, unless its first line has the
    shape of a request line naming a version other than HTTP/1.x or earlier
    (``PRI * HTTP/2.0`` with a wrong tail, ``INVALID CONNECTION PREFACE``):
    no HTTP/1 client sends that, so it is a bad HTTP/2 preface, answered with
    GOAWAY PROTOCOL_ERROR by the HTTP/2 side (h2spec http2/3.5/2). Other
    malformed lines stay HTTP/1.1's 400. At most the first line is buffered
    (in practice the first packet), and no more than ``line_limit`` bytes:
    beyond that HTTP/1.1 answers 431.
    """
    if data.startswith(H2_PREFACE):
        return b"h2"
    if H2_PREFACE.startswith(data):
        return None
    line, found, _ = data.lstrip(b"\r\n").partition(b"\n")
    if not found:
        return None if len(data) <= line_limit else b"http/1.1"
    words = line.rstrip(b"\r").split(b" ")
    if len(words) == 3 and not words[2].startswith((b"HTTP/1.", b"HTTP/0.")):
        return b"h2"
    return b"http/1.1"


class ConnectionProtocol(http._GenericHTTPChannelProtocol):
    """HTTP/1.1, or HTTP/2 by ALPN or by the prior-knowledge preface (h2c).

    Twisted's switch only looks at ALPN. This one also tells the two apart
    on cleartext connections (and TLS ones without ALPN) by their first
    bytes; see ``sniff_protocol``.
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
                protocol = sniff_protocol(data, self.factory.context.settings.max_header_bytes)
                if protocol is None:
                    self._sniffed = data
                    if not H2_PREFACE.startswith(data):
                        # An HTTP/1 request line still coming in, held back
                        # by the sniffing: the head deadline runs already.
                        self._channel.start_head_deadline()
                    return
                self._sniffed = b""
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
        old.cancel_head_deadline()  # armed while a bad preface came in (sniff_protocol)
        self._channel = TelexH2Connection()
        self._channel.requestFactory = self._requestFactory
        self._channel.site = self._site
        self._channel.factory = self._factory
        self._channel.timeOut = self._timeOut
        self._channel.callLater = self._callLater
        self._channel.makeConnection(old.transport)
        # The H2 connection is the transport's producer now, for back pressure.
        producer.registerProducer(self._channel, True)


class Refuse503(Protocol):
    """Answers one 503 and closes: the connection limit is reached."""

    def connectionMade(self) -> None:
        self.transport.write(msgs.raw_error_response(503, "Too many connections; try again shortly."))
        self.transport.loseConnection()
