"""WebSocket over the channel layer (www.rst, WebSocket), against real server processes.

The application is ``tests.apps.raw_ws``: bare layer calls, no toolkit; it
records every message it receives, so these tests check the server's
messages exactly as a worker sees them. Clients are the ``websockets``
library, or raw sockets where the rule is about bytes on the wire.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from telex.protocols.http_messages import MalformedHttpReply, raw_error_response
from tests.support.http import exchange_until_closed
from tests.support.processes import TelexServer
from tests.support.ws import (
    RAW_WS,
    RawClient,
    close_code_of,
    events_for,
    frame,
    handshake_request,
    wait_for_event,
    whoami,
    ws_url,
)


@pytest.fixture(scope="module")
def server():
    with TelexServer(
        RAW_WS,
        "--root-path",
        "/mounted",
        "--proxy-headers",
        "--websocket-connect-timeout",
        "1",
        "--ws-protocol",
        "chat.v2,chat.v1",
        "--allowed-origins",
        "https://good.example,*.trusted.example",
        "--metrics-path",
        "/-/metrics",
    ) as process:
        yield process


def refusal_status(server, path: str, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as refused:
        with connect(ws_url(server, path), open_timeout=10, **kwargs):
            pass
    return refused.value.response.status_code


# -- websocket.connect ---------------------------------------------------------------


def test_websocket_connect_carries_every_spec_key(server):
    with connect(ws_url(server, "/echo/caf%C3%A9?a=%20b"), additional_headers={"X-Test": "yes"}) as ws:
        reply_channel = whoami(ws)
    (message,) = [e for e in events_for(server.port, reply_channel) if e["channel"] == "websocket.connect"]
    assert set(message) - {"channel"} == {
        "reply_channel",
        "scheme",
        "path",
        "query_string",
        "root_path",
        "headers",
        "client",
        "server",
        "order",
    }
    assert message["scheme"] == "ws"
    assert message["path"] == "/echo/caf\u00e9"
    assert message["query_string"] == b"a=%20b"
    assert message["root_path"] == b"/mounted"  # www.rst types it as a byte string here
    assert [b"x-test", b"yes"] in message["headers"]
    assert message["client"][0] == "127.0.0.1" and isinstance(message["client"][1], int)
    assert message["server"] == ["127.0.0.1", server.port]
    assert message["order"] == 0


def test_connect_headers_are_lowercased_with_duplicates_kept_and_underscore_names_dropped(server):
    client = RawClient(server.port)
    client.send(
        handshake_request("/echo", (("X-Dup", "one"), ("X_Spoof", "1"), ("X-DUP", "two")), port=server.port)
    )
    assert client.read_head().startswith(b"HTTP/1.1 101")
    client.send(frame(b"whoami"))
    reply_channel = client.read_message().decode()
    client.close()
    (message,) = [e for e in events_for(server.port, reply_channel) if e["channel"] == "websocket.connect"]
    headers = message["headers"]
    assert headers.index([b"x-dup", b"one"]) < headers.index([b"x-dup", b"two"])
    assert all(name == name.lower() and b"_" not in name for name, _ in headers)


def test_scheme_and_client_honour_trusted_proxy_headers(server):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Port": "4430"}
    with connect(ws_url(server, "/echo"), additional_headers=headers) as ws:
        reply_channel = whoami(ws)
    (message,) = [e for e in events_for(server.port, reply_channel) if e["channel"] == "websocket.connect"]
    assert message["scheme"] == "wss"
    assert message["client"] == ["203.0.113.9", 4430]


# -- Send/Close/Accept while connecting -------------------------------------------------


def test_accept_true_completes_the_handshake_with_101(server):
    with connect(ws_url(server, "/echo")) as ws:
        assert ws.response.status_code == 101
        ws.send("ping?")
        assert ws.recv(timeout=10) == "ping?"


def test_accept_false_is_answered_403_and_nothing_else(server):
    client = RawClient(server.port)
    client.send(handshake_request("/reject", port=server.port))
    head = client.read_head()
    assert head.startswith(b"HTTP/1.1 403")
    # The text in the same message is ignored; the connection just ends.
    body = client.buffer
    while client._fill():
        body = client.buffer
    assert b"must not arrive" not in body
    client.close()


def test_close_while_connecting_is_answered_403(server):
    assert refusal_status(server, "/close") == 403


def test_text_while_connecting_accepts_then_sends_it(server):
    with connect(ws_url(server, "/text-first")) as ws:
        assert ws.recv(timeout=10) == "hello"


def test_text_and_close_while_connecting_accept_send_then_close_with_the_code(server):
    with connect(ws_url(server, "/text-and-close")) as ws:
        assert ws.recv(timeout=10) == "goodbye"
        assert close_code_of(ws) == 4000


def test_accept_with_empty_text_sends_an_empty_message(server):
    with connect(ws_url(server, "/accept-with-empty-text")) as ws:
        assert ws.recv(timeout=10) == ""


def test_a_message_with_both_bytes_and_text_is_ignored_and_logged(server):
    with connect(ws_url(server, "/both-then-accept")) as ws:
        assert ws.recv(timeout=10) == "after"
    server.wait_for("both 'bytes' and 'text' are set")


def test_unknown_keys_are_logged_and_the_rest_obeyed(server):
    with connect(ws_url(server, "/unknown-key")) as ws:
        ws.send("still works")
        assert ws.recv(timeout=10) == "still works"
    server.wait_for("ignoring unknown keys colour")


def test_no_answer_within_the_connect_timeout_is_answered_403(server):
    started = time.monotonic()
    assert refusal_status(server, "/never") == 403
    assert 0.9 <= time.monotonic() - started < 5


def test_channel_full_on_connect_is_answered_503():
    # Nobody consumes websocket.connect and its capacity is 1: of two
    # handshakes, one waits in the channel (then times out: 403), the other
    # finds it full (503), whichever the server handles first.
    env = {"RAW_WS_NO_CONNECT": "1", "RAW_WS_CAPACITY": "1"}
    with TelexServer(RAW_WS, "--websocket-connect-timeout", "1", env=env) as process:
        clients = [RawClient(process.port) for _ in range(2)]
        for client in clients:
            client.send(handshake_request("/echo", port=process.port))
        statuses = sorted(int(client.read_head().split()[1]) for client in clients)
        for client in clients:
            client.close()
    assert statuses == [403, 503]


def test_origin_outside_the_allow_list_is_answered_403(server):
    assert refusal_status(server, "/origin-refused", origin="https://evil.example") == 403
    assert not events_for(server.port, path="/origin-refused")  # the application was never asked


def test_origins_in_the_allow_list_are_accepted(server):
    for origin in ("https://good.example", "https://app.trusted.example"):
        with connect(ws_url(server, "/echo"), origin=origin) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi"


def test_an_unsupported_version_is_refused_with_the_versions_supported(server):
    # RFC 6455 4.2.2 and 4.4: the answer names the versions the server speaks.
    head = handshake_request("/echo", port=server.port).replace(
        b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 12"
    )
    response = exchange_until_closed(server, head)
    status_line, _, rest = response.partition(b"\r\n")
    lines, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines.split(b"\r\n"))
    assert status_line.startswith(b"HTTP/1.1 400 ")
    assert headers[b"sec-websocket-version"] == b"13,8"  # Autobahn speaks RFC 6455 and hybi-08
    assert headers[b"connection"] == b"close" and int(headers[b"content-length"]) == len(body)
    assert b"not supported" in body and b"Traceback" not in body


def test_headers_of_a_refused_handshake_cannot_inject_lines():
    assert b"sec-websocket-version: 13\r\n" in raw_error_response(
        400, "no", [(b"Sec-WebSocket-Version", b"13")]
    )
    for header in ((b"x", b"1\r\nSet-Cookie: a=b"), (b"x y", b"1"), (b"x\r\nz", b"1")):
        with pytest.raises(MalformedHttpReply):
            raw_error_response(400, "no", [header])


def test_subprotocol_is_chosen_in_the_servers_order(server):
    with connect(ws_url(server, "/echo"), subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
    with connect(ws_url(server, "/echo"), subprotocols=["chat.v1", "other"]) as ws:
        assert ws.subprotocol == "chat.v1"


def test_no_common_subprotocol_accepts_without_one(server):
    client = RawClient(server.port)
    client.send(handshake_request("/echo", (("Sec-WebSocket-Protocol", "other"),), port=server.port))
    head = client.read_head()
    assert head.startswith(b"HTTP/1.1 101")
    assert b"sec-websocket-protocol" not in head.lower()
    client.close()


def test_frames_sent_before_the_accept_are_held_and_forwarded_after_it_in_order(server):
    client = RawClient(server.port)
    pipelined = b"".join(frame(f"early-{i}".encode()) for i in range(5))
    # Handshake and frames in ONE send: they arrive in the same read.
    client.send(handshake_request("/slow-accept?0.3", port=server.port) + pipelined + frame(b"whoami"))
    assert client.read_head().startswith(b"HTTP/1.1 101")
    echoed = [client.read_message().decode() for _ in range(6)]
    assert echoed[:5] == [f"early-{i}" for i in range(5)]
    reply_channel = echoed[5]
    client.close()
    receives = [e for e in events_for(server.port, reply_channel) if e["channel"] == "websocket.receive"]
    assert [e["text"] for e in receives[:5]] == [f"early-{i}" for i in range(5)]
    assert [e["order"] for e in receives] == list(range(1, 7))
    assert all(e["after_accept"] for e in receives)


# -- messages ----------------------------------------------------------------------------


def test_text_and_binary_messages_keep_their_type(server):
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("caf\u00e9")
        assert ws.recv(timeout=10) == "caf\u00e9"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=10) == b"\x00\xffbinary"
        reply_channel = whoami(ws)
    receives = [e for e in events_for(server.port, reply_channel) if e["channel"] == "websocket.receive"]
    assert (receives[0]["text"], receives[0]["bytes"]) == ("caf\u00e9", None)
    assert (receives[1]["text"], receives[1]["bytes"]) == (None, b"\x00\xffbinary")
    assert receives[0]["path"] == "/echo"


def test_empty_messages_are_forwarded_and_sent(server):
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("")
        assert ws.recv(timeout=10) == ""
        ws.send(b"")
        assert ws.recv(timeout=10) == b""
        ws.send("empty-text")
        assert ws.recv(timeout=10) == ""
        ws.send("empty-bytes")
        assert ws.recv(timeout=10) == b""


def test_receive_order_counts_from_one_and_disconnect_is_one_past_the_last(server):
    with connect(ws_url(server, "/echo")) as ws:
        for i in range(3):
            ws.send(str(i))
            ws.recv(timeout=10)
        reply_channel = whoami(ws)
    disconnect = wait_for_event(
        server.port, lambda e: e["channel"] == "websocket.disconnect" and e["reply_channel"] == reply_channel
    )
    receives = [e for e in events_for(server.port, reply_channel) if e["channel"] == "websocket.receive"]
    assert [e["order"] for e in receives] == [1, 2, 3, 4]
    assert disconnect["order"] == 5
    assert disconnect["path"] == "/echo"


def test_one_mib_messages_pass_both_ways(server):
    payload = bytes(range(256)) * 4096
    with connect(ws_url(server, "/echo"), max_size=2**21) as ws:
        ws.send(payload)
        assert ws.recv(timeout=10) == payload
        ws.send("big:1048576")
        assert ws.recv(timeout=10) == b"b" * 1048576


def test_messages_over_the_maximum_size_close_1009(server):
    with connect(ws_url(server, "/echo")) as ws:
        ws.send(b"x" * (1024 * 1024 + 1))
        assert close_code_of(ws) == 1009


# -- close codes ----------------------------------------------------------------------------


def test_close_true_closes_with_1000(server):
    with connect(ws_url(server, "/echo")) as ws:
        reply_channel = whoami(ws)
        ws.send("close")
        assert close_code_of(ws) == 1000
    disconnect = wait_for_event(
        server.port, lambda e: e["channel"] == "websocket.disconnect" and e["reply_channel"] == reply_channel
    )
    assert disconnect["code"] == 1000


def test_close_with_an_integer_closes_with_that_code(server):
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("close:4321")
        assert close_code_of(ws) == 4321


def test_data_and_close_in_one_message_send_then_close(server):
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("send-then-close")
        assert ws.recv(timeout=10) == "last words"
        assert close_code_of(ws) == 4001


def test_disconnect_carries_the_clients_close_code_exactly_once(server):
    with connect(ws_url(server, "/echo")) as ws:
        reply_channel = whoami(ws)
        ws.close(code=4002)
    wait_for_event(
        server.port, lambda e: e["channel"] == "websocket.disconnect" and e["reply_channel"] == reply_channel
    )
    with connect(ws_url(server, "/echo")) as ws:  # time for a second disconnect to show up, if any
        whoami(ws)
    events = events_for(server.port, reply_channel)
    assert [e["code"] for e in events if e["channel"] == "websocket.disconnect"] == [4002]


def test_a_lost_connection_disconnects_with_1006(server):
    client = RawClient(server.port)
    client.send(handshake_request("/echo", port=server.port))
    client.read_head()
    client.send(frame(b"whoami"))
    reply_channel = client.read_message().decode()
    client.close()  # no close frame
    disconnect = wait_for_event(
        server.port, lambda e: e["channel"] == "websocket.disconnect" and e["reply_channel"] == reply_channel
    )
    assert disconnect["code"] == 1006


# -- protocol errors ---------------------------------------------------------------------------


def test_invalid_utf8_in_a_text_frame_closes_1007_and_others_are_served(server):
    client = RawClient(server.port)
    client.send(handshake_request("/echo", port=server.port))
    client.read_head()
    client.send(frame(b"\xff\xfeinvalid"))
    assert client.read_close_code() == 1007
    client.close()
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("after")
        assert ws.recv(timeout=10) == "after"


def test_an_unmasked_client_frame_closes_1002_and_others_are_served(server):
    client = RawClient(server.port)
    client.send(handshake_request("/echo", port=server.port))
    client.read_head()
    client.send(frame(b"naked", masked=False))
    assert client.read_close_code() == 1002
    client.close()
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("after")
        assert ws.recv(timeout=10) == "after"


def test_open_websockets_are_a_metric(server):
    with connect(ws_url(server, "/echo")) as ws:
        whoami(ws)
        with urllib.request.urlopen(f"{server.url}/-/metrics", timeout=10) as response:
            metrics = response.read().decode()
    gauge = next(line for line in metrics.splitlines() if line.startswith("telex_open_websockets "))
    assert int(float(gauge.split()[1])) >= 1
    assert "telex_websocket_messages_in_total" in metrics
