"""The Twisted and Autobahn internals ``telex.protocols.websocket`` relies on.

Each test names what Telex uses and fails with a message saying what
changed, so an upgrade that breaks the upgrade path is caught here rather
than as a confusing end-to-end failure. ``docs/websocket.md`` lists them.
"""

from __future__ import annotations

import inspect
import sys

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.web import http

from telex.protocols import websocket
from telex.server.settings import ServerSettings
from tests.support.processes import TelexProcess
from tests.support.redis_server import free_port
from tests.support.ws import RawClient, frame, handshake_request


def test_httpchannel_offers_protocol_upgrade_for_websockets():
    upgrade = getattr(http.HTTPChannel, "_protocolUpgradeForWebsockets", None)
    assert upgrade is not None, "Twisted removed HTTPChannel._protocolUpgradeForWebsockets"
    channel = http.HTTPChannel()
    channel.makeConnection(StringTransport())
    received: list[bytes] = []

    class Target:
        def makeConnection(self, transport):
            self.transport = transport

        def dataReceived(self, data):
            received.append(data)

        def connectionLost(self, reason):
            received.append(b"lost")

    channel._protocolUpgradeForWebsockets(Target())
    channel.dataReceived(b"frame")
    channel.connectionLost(None)
    assert received == [b"frame", b"lost"], "the upgrade no longer redirects dataReceived/connectionLost"


def test_bytes_after_a_bodiless_request_wait_in_the_line_buffer_during_request_received():
    """``upgrade`` runs inside requestReceived; pipelined bytes are still in
    LineReceiver's buffer then (clearLineBuffer), and _dataBuffer is a list."""
    seen: dict[str, object] = {}

    class Request(http.Request):
        def requestReceived(self, command, path, version):
            seen["buffer"] = self.channel.clearLineBuffer()
            seen["data_buffer"] = list(self.channel._dataBuffer)

    channel = http.HTTPChannel()
    channel.requestFactory = Request
    channel.makeConnection(StringTransport())
    channel.dataReceived(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\nEARLY-FRAMES")
    assert seen.get("buffer") == b"EARLY-FRAMES", f"pipelined bytes are no longer in the line buffer: {seen}"
    assert seen.get("data_buffer") == [], "HTTPChannel._dataBuffer is no longer a list of pending bytes"
    assert callable(LineReceiver.clearLineBuffer)


def test_autobahn_on_connect_may_return_a_deferred_and_failhandshake_answers_through_send_http_error():
    source = inspect.getsource(WebSocketServerProtocol.processHandshake)
    assert "as_future(self.onConnect" in source, "Autobahn no longer lets onConnect return a Deferred"
    assert "ConnectionDeny" in source, "Autobahn no longer maps ConnectionDeny to an HTTP refusal"
    fail = inspect.getsource(WebSocketServerProtocol.failHandshake)
    assert "sendHttpErrorResponse(code" in fail, "failHandshake no longer calls sendHttpErrorResponse"


def test_autobahn_consumes_frames_buffered_with_the_handshake_after_opening():
    source = inspect.getsource(WebSocketServerProtocol.succeedHandshake)
    assert "self.consumeData()" in source, "succeedHandshake no longer processes bytes that came early"
    assert "self._onOpen()" in source


def test_autobahn_checks_outgoing_messages_against_max_message_payload_size():
    # Telex lifts the limit around sendMessage (the limit is for clients).
    source = inspect.getsource(WebSocketProtocol.sendMessage)
    assert "self.maxMessagePayloadSize" in source, "the outgoing-size workaround in _write can go"


def test_autobahns_queued_writes_reach_the_client_in_order_with_telexs_own():
    """Autobahn pumps writes made with ``sync=True`` (or a chop size) through
    ``WebSocketProtocol._send``; Telex's protocol must not shadow that name."""
    overrides = vars(websocket.AsgiWebSocketProtocol)
    assert "_send" not in overrides, "AsgiWebSocketProtocol overrides Autobahn's _send"
    port = free_port()
    command = (sys.executable, "-m", "tests.apps.queued_writes")
    with TelexProcess([str(port)], command=command):
        client = RawClient(port)
        try:
            client.send(handshake_request("/queued", port=port))
            assert client.read_head().startswith(b"HTTP/1.1 101")
            for text in (b"one", b"two"):
                client.send(frame(text))
                assert client.read_message() == b"queued: " + text
                assert client.read_message() == b"layer: " + text
        finally:
            client.close()


def test_autobahn_close_state_attributes_used_for_the_disconnect_code():
    source = inspect.getsource(WebSocketProtocol.sendCloseFrame)
    for name in ("self.localCloseCode", "self.closedByMe"):
        assert name in source, f"sendCloseFrame no longer sets {name}"
    assert "self.remoteCloseCode" in inspect.getsource(WebSocketProtocol.onCloseFrame)
    for state in ("STATE_CONNECTING", "STATE_OPEN", "STATE_CLOSING", "STATE_CLOSED"):
        assert hasattr(WebSocketProtocol, state), f"WebSocketProtocol.{state} is gone"


def test_autobahn_per_connection_timers_are_batched():
    """Ping and handshake timers share one reactor call per bucket (cheap for
    10,000 sockets); the buckets round to whole seconds (docs/websocket.md)."""
    factory = websocket.TelexWebSocketFactory(_Support(ServerSettings()))
    assert hasattr(factory, "_batched_timer"), "Autobahn factories no longer batch their timers"
    source = inspect.getsource(WebSocketProtocol._sendAutoPing)
    assert "_batched_timer.call_later" in source


def test_autobahn_handshake_timeout_is_above_the_connect_timeout():
    settings = ServerSettings(websocket_connect_timeout=7.0)
    factory = websocket.TelexWebSocketFactory(_Support(settings))
    assert factory.openHandshakeTimeout > settings.websocket_connect_timeout
    assert factory.failByDrop is False  # protocol errors get close frames with codes
    assert factory.autoPingInterval == settings.ping_interval
    assert factory.autoPingTimeout == settings.ping_timeout


class _Support:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
