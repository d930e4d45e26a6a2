"""``telex_layer_errors_total`` counts what it says: failed reply reads and failed sends.

Each test provokes the error for real in a ``telex serve`` process and reads
the metric over HTTP from ``--metrics-path``, which the server answers itself.
"""

from __future__ import annotations

import http.client
import re
import socket

import pytest
from twisted.python.failure import Failure

from telex.layers import get_channel_layer
from tests.support.processes import TelexServer
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

FAILING = "tests.apps.failing_layer:channel_layer"


def _layer_errors(server: TelexServer) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/m")
        body = connection.getresponse().read().decode()
    finally:
        connection.close()
    assert "# TYPE telex_layer_errors_total counter" in body
    return float(re.search(r"^telex_layer_errors_total (\S+)$", body, re.MULTILINE).group(1))


def _post(server: TelexServer, size: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/upload", body=b"x" * size)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("bridge", ["inline", "threaded"])
def test_a_body_chunk_the_layer_fails_to_take_is_a_layer_error(bridge):
    streamed = ["--request-body-inline-max", "1k", "--request-body-chunk-size", "1k"]
    force_sync = ["--force-sync"] if bridge == "threaded" else []
    with TelexServer(FAILING, "--metrics-path", "/m", *streamed, *force_sync) as server:
        server.wait_for(rf"\({bridge} bridge\)")
        if bridge == "threaded":
            # Its reply reader blocks in receive(), whose first call fails.
            server.wait_for("channel layer unavailable: LayerDown: the layer lost its connection")
        before = _layer_errors(server)
        assert before == (1 if bridge == "threaded" else 0)
        assert _post(server, 4096) == 503
        assert _layer_errors(server) >= before + 1
        # The outage is logged once (docs/deployment.md), never a line per failed request.
        assert "could not send" not in server.output


def test_a_body_chunk_sent_while_redis_is_down_is_a_layer_error():
    redis = RedisServer()
    redis.start()
    try:
        layer = get_channel_layer(redis.url)
        streamed = ["--request-body-inline-max", "1k", "--request-body-chunk-size", "1k"]
        with TelexServer(redis.url, "--metrics-path", "/m", *streamed) as server:
            server.wait_for(r"\(asyncio bridge\)")
            assert _layer_errors(server) == 0
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
                client.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n")
                # The head alone starts the request: http.request reaches Redis...
                channel, message = layer.receive(["http.request"], block=True)
                assert channel == "http.request" and message["body_channel"]
                redis.kill()
                # ...and the body's first chunk finds it gone.
                client.sendall(b"x" * 4096)
                assert client.recv(65536).startswith(b"HTTP/1.1 503")
            # The failed send is the body chunk's, or (when Redis died before the server read the
            # reply to http.request) the request's own: either is one layer error.
            assert wait_until(lambda: _layer_errors(server) >= 1, timeout=10)
    finally:
        redis.kill()


def test_every_failed_send_counts_once_and_the_spec_refusals_not_at_all():
    from telex.layers.base import ChannelFull, MessageTooLarge
    from telex.server.bridge import InlineBridge, OrderedSender
    from tests.apps.failing_layer import FailingLayer

    bridge = InlineBridge(FailingLayer())
    sender = OrderedSender(bridge)
    failures = []
    sender.send("http.request.body?abc", {"content": b""}).addErrback(failures.append)
    sender.send("http.request", {"reply_channel": "x"}).addErrback(failures.append)
    assert len(failures) == 1 and bridge.errors == 1
    for refusal in (ChannelFull(), MessageTooLarge()):
        bridge.send_failed(Failure(refusal))
    assert bridge.errors == 1
