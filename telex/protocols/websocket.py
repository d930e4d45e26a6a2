"""WebSocket connections ⇄ ASGI messages, on Autobahn's Twisted protocol.

A WebSocket starts as an HTTP/1.1 request on the ordinary endpoints. When
``AsgiRequest`` sees ``Upgrade: websocket`` it calls :meth:`WebSocketSupport.upgrade`,
which takes the connection away from ``twisted.web`` (Twisted's
``HTTPChannel._protocolUpgradeForWebsockets``), hands its transport to an
Autobahn protocol and replays the handshake request into it, followed by
any bytes the client pipelined after the request. Autobahn validates the
handshake and calls ``onConnect``; the answer waits for the application.
The Twisted and Autobahn details relied on are listed in ``docs/websocket.md``
and pinned by ``tests/test_websocket_contract.py``.

Flow of one connection::

    handshake in ──► websocket.connect (order 0) ── reply: accept ──► 101
                                                 └─ reject/timeout ──► 403
    frames held until the accept ──► websocket.receive (order 1, 2, …)
    reply channel ──► frames to the client, close
    socket closed ──► websocket.disconnect (order one past the last receive), once
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from . import http_messages, peers
from . import websocket_messages as msgs
from .flow import HeldOutput, InOrderSender, nothing, write_through
from .websocket_resume import (
    CONNECTING,
    RELEASING,
    Move,
    ResumeQueue,
    WorkerWatch,
    heartbeat_channel,
    item_size,
    worker_of,
)

if TYPE_CHECKING:
    from .context import ServerContext

logger = logging.getLogger("telex.websocket")

#: Seconds a websocket.receive may stay refused with ChannelFull, retried on
#: flow.RETRY_DELAYS (spec, Receive: "you may retry"), before the close 1013.
RECEIVE_RETRY_FOR = 1.0

#: Part of ``websocket_connect_timeout`` a websocket.connect refused with
#: ChannelFull is retried on flow.RETRY_DELAYS before the 503: a burst of
#: handshakes waits for room instead of being refused at once.
CONNECT_RETRY_SHARE = 0.5

#: Seconds Autobahn's own opening-handshake timer waits beyond
#: ``websocket_connect_timeout``: Telex answers 403 first; this only catches
#: a connection that somehow got no answer at all.
HANDSHAKE_TIMEOUT_MARGIN = 10.0

#: Bytes a client may send before the accept (held, in order) before Telex
#: stops reading from its socket until the application answers.
HELD_BEFORE_ACCEPT_LIMIT = 64 * 1024

#: Received messages waiting for the layer (one send at a time, in order)
#: beyond which Telex stops reading from the socket until they are sent.
INBOUND_PAUSE_MESSAGES = 100
INBOUND_PAUSE_BYTES = 1024 * 1024

#: Disconnect code for a connection that ends without a close frame (RFC 6455 7.1.5).
ABNORMAL_CLOSURE = 1006
#: Disconnect code for a close frame that carried no code (RFC 6455 7.1.5).
NO_STATUS_RECEIVED = 1005


class WebSocketSupport:
    """The server's WebSocket side: upgrades, the open connections, shutdown."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.settings = context.settings
        self.connections: set[AsgiWebSocketProtocol] = set()
        self.open_count = 0
        lifetime = self.settings.websocket_timeout
        if lifetime is None:
            # Spec (Persistence): connections should not outlive the layer's
            # group expiry, or their group memberships silently lapse.
            lifetime = context.group_expiry
        self.lifetime: float | None = lifetime if lifetime > 0 else None
        self.factory = TelexWebSocketFactory(self)
        #: The workers holding sockets (``telex.receive_channel``) and their heartbeats.
        self.watch = WorkerWatch(self.settings.worker_heartbeat_timeout)
        self.resumes = ResumeQueue(context.make_sender(), context.channel_full)
        context.register_reply_channel(heartbeat_channel(context.reply_prefix), self.watch.heartbeat)

    def upgrade(self, request: Any) -> bool:
        """Take over ``request``'s connection; True means it is ours now."""
        channel = request.channel
        if not request.wire.can_upgrade or channel.transport is None:
            return False
        if request.expected_length:
            # A handshake with a body would leave the body to be parsed as frames.
            channel._closing = True
            refusal = http_messages.raw_error_response(
                400, "A WebSocket handshake request must not have a body."
            )
            channel.transport.write(refusal)
            channel.transport.loseConnection()
            return True
        # Bytes the client sent after the handshake request: still in the line
        # buffer (we are inside HTTPChannel.dataReceived) or, for data that
        # arrived while the request was being handled, in _dataBuffer.
        early = b"".join(channel._dataBuffer) + channel.clearLineBuffer()
        channel._dataBuffer = []
        # The HTTP channel no longer produces for this transport.
        channel.transport.unregisterProducer()
        protocol = self.factory.buildProtocol(channel.transport.getPeer())
        protocol.http_request = request
        self.connections.add(protocol)
        channel._protocolUpgradeForWebsockets(protocol)
        protocol.dataReceived(_handshake_bytes(request) + early)
        return True

    def close_all(self, code: int) -> None:
        """Close every WebSocket: 1001 at shutdown, 1012 when the layer lost data.

        Open sockets get a close frame with ``code`` (their
        ``websocket.disconnect`` messages follow as they close); handshakes
        still waiting for the application are answered 503.
        """
        for protocol in list(self.connections):
            protocol.close_now(code)
        self.watch.stop()


def _handshake_bytes(request: Any) -> bytes:
    """The request head as the client sent it, for Autobahn to parse."""
    lines = [b" ".join((request.method, request.uri, request.clientproto))]
    for name, values in request.requestHeaders.getAllRawHeaders():
        lines.extend(name + b": " + value for value in values)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class TelexWebSocketFactory(WebSocketServerFactory):
    """Autobahn's factory, configured from ``ServerSettings``."""

    def __init__(self, support: WebSocketSupport) -> None:
        super().__init__(server=None)
        self.support = support
        self.protocol = AsgiWebSocketProtocol
        settings = support.settings
        self.setProtocolOptions(
            webStatus=False,
            # Protocol errors are answered with a close frame carrying the
            # code (1002, 1007, 1009), not a silent TCP drop.
            failByDrop=False,
            openHandshakeTimeout=settings.websocket_connect_timeout + HANDSHAKE_TIMEOUT_MARGIN,
            autoPingInterval=settings.ping_interval,
            autoPingTimeout=settings.ping_timeout,
            maxMessagePayloadSize=settings.websocket_max_message_size,
            maxFramePayloadSize=settings.websocket_max_frame_size,
            perMessageCompressionAccept=_accept_deflate if settings.websocket_compression else lambda _: None,
        )


def _accept_deflate(offers: list[Any]) -> Any:
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class AsgiWebSocketProtocol(WebSocketServerProtocol):
    """One WebSocket, translated to and from ASGI messages."""

    factory: TelexWebSocketFactory
    http_request: Any = None

    def connectionMade(self) -> None:
        support = self.factory.support
        self.support = support
        self.context = support.context
        self.settings = support.settings
        self.reply_channel: str | None = None
        self.asgi_path: str = self.http_request.asgi_path
        self.client_host: str = getattr(self.http_request.getClientAddress(), "host", None) or "-"
        self.started_at = time.monotonic()
        self._sender = self.context.make_sender()
        self._handshake: Deferred | None = None  # pending while the application decides
        self._subprotocol: str | None = None
        self._offered: list[str] = []  # the subprotocols the client offered
        self._denial: bytes | None = None  # the application's own refusal response
        # The process-specific channel the accepting reply named for this socket's
        # websocket.receive/disconnect (docs/asgi3.md); else the shared channels.
        self._own_channel: str | None = None
        self._worker: str | None = None  # its process prefix, watched for heartbeats
        # The socket's own channel (reply channel + ".app"), which the server
        # forwards to whichever worker holds it; messages held until one does.
        self._socket_channel: str | None = None
        self._channel_held: list[dict] = []
        self._connect_message: dict | None = None  # sent again to resume the socket
        self._resumable = False  # the accepting worker may hand the socket on
        self._move: Move | None = None  # the socket is moving to another worker
        self._connect_call: Any = None
        self._connect_sender: InOrderSender | None = None
        self._lifetime_call: Any = None
        self._connect_sent = False
        self._opened = False
        self._closed = False
        self._close_frame_received = False
        self._disconnect_sent = False
        self._held_in: list[bytes] = []  # raw bytes received while the handshake is pending
        self._held_in_size = 0
        self._reading_paused = False
        self._received = 0  # client messages forwarded as websocket.receive
        self._inbound = InOrderSender(
            self._sender,
            self.context.channel_full,
            pause=self._pause_reading,
            resume=self._resume_reading,
            on_failure=self._receive_refused,
            on_drained=self._maybe_disconnect,
            pause_messages=INBOUND_PAUSE_MESSAGES,
            pause_bytes=INBOUND_PAUSE_BYTES,
            give_up_after=RECEIVE_RETRY_FOR,
        )
        # Frames (or a close code) for the client, held while it does not read.
        self._output: HeldOutput[bytes | str | int] = HeldOutput(
            self._write, _output_size, limit=self.settings.max_pending_output, on_slow=self._slow_reader
        )
        super().connectionMade()

    # -- bytes in ------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._handshake is not None:
            # Autobahn re-parses its buffer for a request head on every read
            # while connecting; frames held here cannot be mistaken for one.
            self._held_in.append(data)
            self._held_in_size += len(data)
            if self._held_in_size > HELD_BEFORE_ACCEPT_LIMIT:
                self._pause_reading()
            return
        # Autobahn's Twisted adapter only adds a debug line whose arguments it
        # formats on every read, logged or not.
        self._dataReceived(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Autobahn's, without the per-write debug line (see ``dataReceived``)."""
        if sync or chopsize or self.send_queue or self.logOctets:
            super().sendData(data, sync, chopsize)
            return
        write_through(self.transport, data)
        if self.state == WebSocketProtocol.STATE_OPEN:
            self.trafficStats.outgoingOctetsWireLevel += len(data)
        else:
            self.trafficStats.preopenOutgoingOctetsWireLevel += len(data)

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pauseProducing()

    def _resume_reading(self) -> None:
        if self._move is not None and self._move_full():
            return
        if self._reading_paused and self.transport is not None and not self._closed:
            self._reading_paused = False
            self.transport.resumeProducing()

    # -- the handshake ---------------------------------------------------------------

    def onConnect(self, request: Any) -> Deferred:  # type: ignore[override]  # Autobahn accepts a Deferred
        """Autobahn validated the handshake: ask the application (spec, Connection)."""
        http_request = self.http_request
        origin = (http_request.requestHeaders.getRawHeaders(b"origin") or [None])[0]
        origin_text = origin.decode("latin-1") if origin is not None else None
        if not msgs.origin_allowed(origin_text, self.settings.allowed_origins):
            logger.info("refusing WebSocket from origin %r: not in --allowed-origins", origin_text)
            raise ConnectionDeny(403, "This origin is not allowed.")
        headers = http_messages.asgi_headers(http_request.requestHeaders.getAllRawHeaders())
        client, scheme = peers.client_and_scheme(self.context, http_request, headers, websocket=True)
        self.client_host = client[0] if client else "-"
        self.asgi_path = http_request.asgi_path
        self._offered = list(request.protocols)
        self._subprotocol = msgs.choose_subprotocol(request.protocols, self.settings.ws_protocols)
        self.reply_channel = self.context.new_reply_channel(self.handle_reply)
        self._socket_channel = self.reply_channel + msgs.SOCKET_CHANNEL_SUFFIX
        self.context.register_reply_channel(self._socket_channel, self.handle_channel_message)
        message = msgs.connect_message(
            reply_channel=self.reply_channel,
            scheme=scheme,
            path=self.asgi_path,
            query_string=http_messages.split_target(http_request.uri)[1],
            root_path=self.settings.root_path,
            headers=headers,
            client=client,
            server=peers.address(http_request.getHost()),
        )
        self._connect_message = message
        # Kept locally: an in-process layer may refuse the send synchronously,
        # answering (and clearing _handshake) before this method returns.
        handshake = self._handshake = Deferred()
        self._connect_call = reactor.callLater(
            self.settings.websocket_connect_timeout, self._connect_timed_out
        )
        self._connect_sent = True
        connect = InOrderSender(
            self._sender,
            self.context.channel_full,
            pause=nothing,
            resume=nothing,
            on_failure=self._connect_refused,
            pause_messages=1,
            pause_bytes=0,
            give_up_after=self.settings.websocket_connect_timeout * CONNECT_RETRY_SHARE,
        )
        self._connect_sender = connect
        connect.push("websocket.connect", message, 0)
        return handshake

    def _connect_refused(self, failure: Any) -> None:
        self._connect_sent = False  # the application never saw this connection
        if failure.check(self.context.channel_full):
            # Spec (Connection): ChannelFull → HTTP 503 (or close 1013).
            logger.warning("websocket.connect channel is full; answering 503 for %s", self.asgi_path)
            self._refuse(503, "The server is too busy to take this connection; try again shortly.")
        elif failure.check(self.context.message_too_large):
            logger.warning("websocket.connect for %s is too large for the channel layer", self.asgi_path)
            self._refuse(431, "The handshake request is too large for the channel layer.")
        else:
            # The bridge logs the outage once (telex/_outage.py), not a line per request.
            logger.debug("could not send websocket.connect: %s", failure.getErrorMessage())
            self._refuse(503, "The channel layer is unavailable.")

    def _connect_timed_out(self) -> None:
        self._connect_call = None
        logger.warning(
            "no answer to websocket.connect on %s within %gs; answering 403",
            self.reply_channel,
            self.settings.websocket_connect_timeout,
        )
        self._refuse(403, "The application did not accept the connection in time.")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer the pending handshake with ``status``; Autobahn then closes."""
        handshake, self._handshake = self._handshake, None
        self._cancel(self._connect_call)
        self._stop_connect()
        if handshake is None:
            return
        handshake.errback(ConnectionDeny(status, detail))

    def _stop_connect(self) -> None:
        """No more retries of websocket.connect; one never delivered needs no disconnect."""
        connect, self._connect_sender = self._connect_sender, None
        if connect is not None:
            connect.stop()
            if not connect.delivered:
                self._connect_sent = False

    def _accept(self) -> None:
        handshake, self._handshake = self._handshake, None
        self._cancel(self._connect_call)
        assert handshake is not None
        held, self._held_in, self._held_in_size = b"".join(self._held_in), [], 0
        # Autobahn writes the 101, opens, and forwards the frames that came
        # with the handshake request; the frames held since follow, in order.
        handshake.callback(self._subprotocol)
        self._resume_reading()
        if held and not self._closed:
            super().dataReceived(held)
        self._flush_channel_held()

    def sendHttpErrorResponse(self, code: int, reason: str, responseHeaders: Any = None) -> None:
        """Autobahn puts its diagnostic into the status line; send a plain response,
        with the headers it names (``Sec-WebSocket-Version`` for a version it does
        not speak, RFC 6455 4.4), unless one is not a valid field line. A refusal
        that carried the application's own response (``telex.denial``) sends that."""
        if self._denial is not None:
            self.transport.write(self._denial)
            self._log_access("WSREJECT", code)
            return
        try:
            headers = [(str(n).encode("latin-1"), str(v).encode("latin-1")) for n, v in responseHeaders or ()]
            response = http_messages.raw_error_response(code, reason, headers)
        except (UnicodeEncodeError, http_messages.MalformedHttpReply) as exc:
            logger.warning("refusing a WebSocket handshake without its invalid headers: %s", exc)
            response = http_messages.raw_error_response(code, reason)
        self.transport.write(response)
        self._log_access("WSREJECT", code)

    def onOpen(self) -> None:
        self._opened = True
        self.support.open_count += 1
        transport = self.transport
        if getattr(transport, "producer", None) is None:
            transport.registerProducer(self._output, True)
        if self.support.lifetime is not None:
            self._lifetime_call = reactor.callLater(self.support.lifetime, self._lifetime_over)
        self._log_access("WSCONNECT", 101)

    def _lifetime_over(self) -> None:
        self._lifetime_call = None
        logger.info(
            "closing WebSocket %s: its lifetime (%gs) is over", self.reply_channel, self.support.lifetime
        )
        self._close(1001)

    # -- replies from the application ------------------------------------------------

    def handle_reply(self, message: dict) -> None:
        """A Send/Close/Accept message arrived on this connection's reply channel."""
        if self._closed:
            return
        if self._worker is not None:
            # A reply from the socket's worker proves it alive, even with heartbeats queued behind replies.
            self.support.watch.heard_from(self._worker)
        if msgs.MOVE_KEY in message:
            self._move_step(message)
            return
        try:
            reply = msgs.parse_reply(message)
        except msgs.MalformedWebSocketReply as exc:
            logger.error("ignoring a malformed message on %s: %s", self.reply_channel, exc)
            self.context.count("telex_malformed_replies_total")
            return
        if reply.unknown_keys:
            logger.warning(
                "ignoring unknown keys %s in a message on %s",
                ", ".join(reply.unknown_keys),
                self.reply_channel,
            )
        if reply.close_note:
            logger.warning("on %s: %s", self.reply_channel, reply.close_note)
        move = self._move
        if move is not None and move.phase == CONNECTING:
            # Only an explicit accept ends the move: frames of an instance still running on a
            # worker taken for dead are passed on to the client, as before the move.
            decision = msgs.handshake_decision(reply)
            if reply.accept is True:
                self._finish_move(reply)
            elif decision == msgs.REJECT:
                logger.info(
                    "the application refused to resume WebSocket %s; closing with 1012", self.reply_channel
                )
                self._end_move()
                self._close(1012)
                return
        elif self._handshake is not None:
            decision = msgs.handshake_decision(reply)
            if decision == msgs.UNDECIDED:
                logger.warning(
                    "a message on %s neither accepts nor rejects the pending handshake; ignored",
                    self.reply_channel,
                )
                return
            if decision == msgs.REJECT:
                if reply.denial is not None:
                    status, headers, body = reply.denial
                    self._denial = http_messages.denial_response(status, headers, body)
                    self._refuse(status, "The application refused the connection.")
                    return
                self._refuse(403, "The application refused the connection.")
                return
            self._take_extensions(reply)
            self._accept()
        elif reply.receive_channel is not None or reply.subprotocol is not None:
            logger.warning(
                "ignoring %s/%s on %s: they count only on the reply that accepts the handshake",
                msgs.RECEIVE_CHANNEL_KEY,
                msgs.SUBPROTOCOL_KEY,
                self.reply_channel,
            )
        if self.state != WebSocketProtocol.STATE_OPEN:
            return
        if reply.data is not None:
            self._queue_output(reply.data)
        if reply.close is not None:
            self._queue_output(reply.close)

    def _take_extensions(self, reply: msgs.Reply) -> None:
        """The accepting reply's Telex keys: the socket's receive channel, the subprotocol."""
        self._take_worker(reply)
        if reply.subprotocol is not None:
            if reply.subprotocol in self._offered:
                self._subprotocol = reply.subprotocol
            else:
                logger.warning(
                    "ignoring subprotocol %r on %s: the client did not offer it",
                    reply.subprotocol,
                    self.reply_channel,
                )

    def _take_worker(self, reply: msgs.Reply) -> None:
        """The accepting worker's channel for this socket (watched for heartbeats), and resumability."""
        if reply.receive_channel is None:
            return
        self._own_channel = reply.receive_channel
        self._worker = worker_of(reply.receive_channel)
        # Frames wait for a worker that is busy (stopping, taking resumed sockets) as long as
        # a move may take, with reading paused, rather than 1 s before a 1013.
        self._inbound.give_up_after(max(RECEIVE_RETRY_FOR, self.settings.websocket_resume_timeout))
        self._resumable = reply.resumable
        self.support.watch.add(self._worker, self)

    def _drop_worker(self) -> str | None:
        """Forget the worker holding the socket; its channel, if there was one."""
        channel, self._own_channel = self._own_channel, None
        worker, self._worker = self._worker, None
        if worker is not None:
            self.support.watch.remove(worker, self)
        return channel

    # -- the socket's own channel, and moving to another worker (websocket_resume.py) ----------

    def handle_channel_message(self, message: dict) -> None:
        """A message for the socket's own channel: to its worker, or held until one holds it."""
        if self._closed:
            return
        item = {msgs.CHANNEL_MESSAGE_KEY: message}
        if self._move is not None:
            if len(self._move.held) + len(self._move.returned) >= self.settings.websocket_resume_buffer:
                self._move.dropped += 1
                if self._move.dropped == 1:
                    logger.warning(
                        "dropping messages for %s: %d held while it moves (--websocket-resume-buffer)",
                        self._socket_channel,
                        self.settings.websocket_resume_buffer,
                    )
                self.context.count("telex_websocket_resume_dropped_total")
                return
            self._move.hold(item, 0)
        elif self._handshake is not None:
            self._channel_held.append(item)
        elif self._own_channel is not None:
            self._inbound.push(self._own_channel, item, 0)
        else:
            logger.debug("dropping a message for %s: no worker holds the socket", self._socket_channel)
            self.context.count("telex_replies_dropped_total")

    def _flush_channel_held(self) -> None:
        held, self._channel_held = self._channel_held, []
        if self._own_channel is not None and not self._closed:
            for item in held:
                self._inbound.push(self._own_channel, item, 0)
        elif held:
            logger.debug(
                "dropping %d message(s) for %s: no worker holds the socket", len(held), self._socket_channel
            )

    def worker_lost(self) -> None:
        """The worker holding this socket stopped sending heartbeats."""
        self._begin_move(released=False)

    def _move_step(self, message: dict) -> None:
        step = message.get(msgs.MOVE_KEY)
        move = self._move
        if step == "release":
            if move is None and self._own_channel is not None:
                self._begin_move(released=True)
        elif step == "return":
            returned = message.get("message")
            if move is not None and isinstance(returned, dict):
                move.returned.append(returned)
            else:
                logger.debug("dropping a message handed back for %s: it is not moving", self.reply_channel)
        elif step == "returned":
            if move is not None and move.phase == RELEASING:
                self._send_resume()
        else:
            logger.error(
                "ignoring a malformed message on %s: unknown %s %r", self.reply_channel, msgs.MOVE_KEY, step
            )
            self.context.count("telex_malformed_replies_total")

    def _begin_move(self, *, released: bool) -> None:
        """Hold what arrives for the socket and find it another worker, or close 1012."""
        if self._closed or not self._opened:
            return
        old = self._drop_worker()
        timeout = self.settings.websocket_resume_timeout
        if not self._resumable or timeout <= 0:
            logger.info(
                "closing WebSocket %s with 1012: its worker is gone and it cannot resume", self.reply_channel
            )
            self._close(1012)
            return
        move = self._move = Move(RELEASING if released else CONNECTING)
        move.timer = reactor.callLater(timeout, self._move_timed_out)
        if old is not None:
            # After every frame sent to it: the old worker hands back what it did not process.
            self._inbound.push(old, {msgs.MOVE_KEY: "released"}, 0)
        if not released:
            self._send_resume()

    def _send_resume(self) -> None:
        move = self._move
        assert move is not None and self._connect_message is not None
        move.phase = CONNECTING
        self.support.resumes.push(self, {**self._connect_message, msgs.RESUME_KEY: True})

    @property
    def awaiting_resume(self) -> bool:
        """Moving, and waiting for a worker to accept it (``ResumeQueue``)."""
        return self._move is not None and self._move.phase == CONNECTING and not self._closed

    def _finish_move(self, reply: msgs.Reply) -> None:
        """A worker accepted the resume: the socket is its now; what was held goes to it, in order."""
        move = self._end_move()
        self._take_worker(reply)
        channel = self._own_channel or "websocket.receive"
        for item in move.items():
            if msgs.CHANNEL_MESSAGE_KEY in item and self._own_channel is None:
                continue  # a worker without a channel of its own cannot take them
            self._inbound.push(channel, item, item_size(item))
        self.context.count("telex_websockets_resumed_total")
        logger.info("resumed WebSocket %s on %s", self.reply_channel, channel)
        self._resume_reading()

    def _end_move(self) -> Move:
        move, self._move = self._move, None
        assert move is not None
        self._cancel(move.timer)
        return move

    def _move_timed_out(self) -> None:
        if self._move is None:
            return
        self._move.timer = None
        logger.warning(
            "WebSocket %s did not resume on another worker within %gs; closing with 1012",
            self.reply_channel,
            self.settings.websocket_resume_timeout,
        )
        self.context.count("telex_websocket_resumes_failed_total")
        self._end_move()
        self._close(1012)

    def _move_full(self) -> bool:
        move = self._move
        assert move is not None
        return (
            len(move.held) + len(move.returned) >= self.settings.websocket_resume_buffer
            or move.held_bytes >= INBOUND_PAUSE_BYTES
        )

    # Not ``_send``: Autobahn's WebSocketProtocol._send pumps its own send queue.
    def _queue_output(self, item: bytes | str | int) -> None:
        """A frame (bytes/str) or a close (int), behind any held output."""
        self._output.offer(item)

    def _write(self, item: bytes | str | int) -> None:
        if self.state != WebSocketProtocol.STATE_OPEN:
            return  # closing: what was held for the client is not sent
        if isinstance(item, int):
            self._close(item)
            return
        is_binary = isinstance(item, bytes)
        payload = item if isinstance(item, bytes) else item.encode("utf-8")
        # Autobahn applies maxMessagePayloadSize to outgoing messages too;
        # the limit is meant for what clients send, not for the application.
        limit: int = self.maxMessagePayloadSize  # type: ignore[has-type]  # set by Autobahn's factory
        self.maxMessagePayloadSize = 0
        try:
            self.sendMessage(payload, isBinary=is_binary)
        finally:
            self.maxMessagePayloadSize = limit
        self.context.count("telex_websocket_messages_out_total")

    def _slow_reader(self, held: int) -> None:
        logger.warning(
            "closing WebSocket %s with 1008: the client is not reading (%d bytes unsent, limit %d)",
            self.reply_channel,
            held,
            self.settings.max_pending_output,
        )
        self.context.count("telex_slow_clients_closed_total")
        self._close(1008)

    def _close(self, code: int) -> None:
        if self.state == WebSocketProtocol.STATE_OPEN:
            # sendClose() refuses the 1xxx codes a server needs (1001, 1008,
            # 1011, 1013); the frame-level call takes any valid code.
            self.sendCloseFrame(code=code, isReply=False)

    def close_now(self, code: int) -> None:
        """Shutdown or data loss: close at once, dropping held output."""
        if self._handshake is not None:
            self._refuse(503, "The server is restarting; try again shortly.")
            return
        self._output.clear()
        self._close(code)

    # -- messages from the client -------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.context.count("telex_websocket_messages_in_total")
        if self._inbound.stopped:
            return
        assert self.reply_channel is not None
        self._received += 1
        message = msgs.receive_message(self.reply_channel, self.asgi_path, payload, isBinary, self._received)
        move = self._move
        if move is not None:
            move.hold(message, len(payload))
            if self._move_full():
                self._pause_reading()
            return
        self._inbound.push(self._own_channel or "websocket.receive", message, len(payload))

    def _receive_refused(self, failure: Any) -> None:
        """Forwarding ends (later frames are dropped) and the socket closes."""
        if failure.check(self.context.channel_full):
            # Spec (Receive): if it still does not send, close with 1013.
            logger.warning("websocket.receive stayed full for %s; closing with 1013", self.reply_channel)
            code = 1013
        elif failure.check(self.context.message_too_large):
            logger.warning(
                "a message from %s is too large for the channel layer; closing with 1009", self.reply_channel
            )
            code = 1009
        else:
            # The bridge logs the outage once (telex/_outage.py), not a line per socket.
            logger.debug("could not send websocket.receive: %s; closing with 1011", failure.getErrorMessage())
            code = 1011
        self._resume_reading()
        self._close(code)
        self._maybe_disconnect()

    # -- the end ------------------------------------------------------------------------

    def onCloseFrame(self, code: int | None, reasonRaw: bytes | None) -> Any:
        self._close_frame_received = True
        return super().onCloseFrame(code, reasonRaw)  # type: ignore[arg-type]  # Autobahn passes None

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel(self._connect_call)
        self._stop_connect()
        self._cancel(self._lifetime_call)
        self._handshake = None  # the client left while the application decided
        if self._move is not None:
            self._end_move()  # its disconnect goes to the shared channel, for a resumed instance
        self._disconnect_channel = self._drop_worker() or "websocket.disconnect"
        self._channel_held = []
        if self._socket_channel is not None:
            self.context.release_reply_channel(self._socket_channel)
        self.support.connections.discard(self)
        if self._opened:
            self.support.open_count -= 1
        self.disconnect_code = self._disconnect_code()
        if self.reply_channel is not None:
            self.context.release_reply_channel(self.reply_channel)
        if self._opened:
            self._log_access("WSDISCONNECT", self.disconnect_code)
        self._maybe_disconnect()

    def _disconnect_code(self) -> int:
        """The code for websocket.disconnect.

        Whoever closed first decides: the server's own close code when it
        started the closing handshake (application close, protocol error,
        limits, shutdown), else the client's. No closing handshake at all
        (a lost connection, a ping timeout, a refused handshake) is 1006.
        """
        if self.closedByMe and self.localCloseCode is not None:
            return self.localCloseCode
        if self._close_frame_received:
            return self.remoteCloseCode if self.remoteCloseCode is not None else NO_STATUS_RECEIVED
        return ABNORMAL_CLOSURE

    def _maybe_disconnect(self) -> None:
        """websocket.disconnect, once, after every receive before it (spec, Disconnection)."""
        if not self._closed or self._disconnect_sent or not self._inbound.idle:
            return
        self._disconnect_sent = True
        if not self._connect_sent or self.reply_channel is None:
            return
        message = msgs.disconnect_message(
            self.reply_channel, self.disconnect_code, self.asgi_path, self._inbound.delivered + 1
        )
        # Spec (Disconnection): on ChannelFull give up; consumption is optional.
        self._sender.send(self._disconnect_channel, message).addErrback(lambda _: None)

    def _log_access(self, event: str, code: int) -> None:
        access_log = self.context.access_log
        if access_log is not None:
            access_log.log_websocket(
                self.client_host, self.http_request, event, code, time.monotonic() - self.started_at
            )

    @staticmethod
    def _cancel(call: Any) -> None:
        if call is not None and call.active():
            call.cancel()


def _output_size(item: bytes | str | int) -> int:
    return 0 if isinstance(item, int) else len(item)
