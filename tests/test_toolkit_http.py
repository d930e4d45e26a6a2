"""The toolkit's HTTP helpers through a real server: streamed bodies, failures."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from tests.support.http import raw_exchange, request
from tests.support.processes import TelexServer
from tests.support.waiting import wait_until

ROUTING = "tests.apps.toolkit_http:routing"


@pytest.fixture(scope="module")
def server():
    with TelexServer("--routing", ROUTING, "--threads", "2") as process:
        yield process


def test_iter_body_reads_a_streamed_body_from_body_channel(server):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    status, _, body = request(server, "POST", "/upload", body=payload, timeout=30)
    assert status == 200
    assert body.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"


def test_iter_body_raises_request_aborted_when_the_client_leaves_mid_body(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n" + b"z" * 600_000)
    assert wait_until(lambda: b"disconnected" in request(server, "GET", "/aborted")[2], timeout=15)


def test_a_consumer_failing_after_a_partial_response_ends_that_response(server):
    response = raw_exchange(server, b"GET /fails-midway HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200") and b"partial" in response
    assert response.endswith(b"0\r\n\r\n")  # ended, not left open until a timeout
    server.wait_for("ending the partial response")


def test_a_websocket_only_project_answers_a_page_load_with_404_at_once():
    with TelexServer("--routing", "examples.echo.routing:channel_routing", "-t", "60") as server:
        status, _, body = request(server, "GET", "/", timeout=10)
        assert status == 404 and body.startswith(b"Not Found: /")
