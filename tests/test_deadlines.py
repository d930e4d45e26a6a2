"""Deadlines of issue 18: no connection hangs forever, over HTTP/1.1 and HTTP/2 (h2c)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import select
import socket
import time

import pytest
import redis
import websockets

from tests.support.http import read_until_closed, request
from tests.support.processes import TelexProcess, TelexServer
from tests.support.waiting import wait_until
from tests.support.ws import RAW_WS
from tests.test_http2 import H2Client

RAW = "tests.apps.raw_http:channel_layer"


def _h2c(server) -> H2Client:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return H2Client(sock, "http")


# -- idle-response timeout -----------------------------------------------------------


def test_a_started_response_that_stalls_is_closed_after_the_idle_timeout_on_http1():
    args = ("--response-idle-timeout", "0.5", "--metrics-path", "/-/metrics")
    with TelexServer(RAW, *args) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /stream-wait HTTP/1.1\r\nHost: x\r\n\r\n")
            received = read_until_closed(sock, timeout=10)
        assert received.startswith(b"HTTP/1.1 200") and b"head;" in received
        assert not received.endswith(b"0\r\n\r\n")  # incomplete: no last chunk
        server.wait_for(r"no reply chunk on telex\.response\.\S+ for 0.5s; closing the incomplete response")
        assert b"telex_response_idle_timeouts_total 1" in request(server, "GET", "/-/metrics")[2]


def test_the_idle_timeout_defaults_to_the_http_timeout():
    with TelexServer(RAW, "-t", "0.5") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /stream-wait HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"head;" in read_until_closed(sock, timeout=10)


def test_a_stalled_http2_stream_is_reset_and_its_connection_lives_on():
    with TelexServer(RAW, "--response-idle-timeout", "0.5") as server:
        client = _h2c(server)
        try:
            stream = client.request("/hold?stalled")
            client.wait(lambda: stream in client.reset or stream in client.ended)
            assert stream in client.reset and stream not in client.ended
            assert client.data[stream].endswith(b";")
            assert client.get("/") == (200, b"Hello world! You asked for /")
            assert not client.terminated
        finally:
            client.close()


def test_a_stream_that_keeps_sending_outlives_the_idle_timeout():
    with TelexServer(RAW, "--response-idle-timeout", "0.5") as server:
        status, _, body = request(server, "GET", "/stream")
        assert status == 200 and body == b"first;chunk0;chunk1;chunk2;last"


# -- requests caught in a known data loss ------------------------------------------------


@pytest.mark.redis
def test_a_request_lost_with_redis_data_is_answered_503_at_once(fresh_redis_server):
    # No worker: the request waits in Redis, and is lost when Redis restarts empty.
    url = fresh_redis_server.url + "?prefix=lost1"
    args = ("-t", "60", "--layer-check-interval", "0.2", "--metrics-path", "/-/metrics")
    with TelexServer(url, *args) as server:
        server.wait_for("asyncio bridge")
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /waiting HTTP/1.1\r\nHost: x\r\n\r\n")
            stored = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
            assert wait_until(lambda: stored.keys("*http.request*"))  # the request is in Redis
            stored.close()
            started = time.monotonic()
            fresh_redis_server.kill()
            fresh_redis_server.start()
            response = sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 503") and b"lost this request" in response
        assert time.monotonic() - started < 30  # not the 60 s of -t
        server.wait_for(r"lost its data.*\(1\)")


# -- slow request bodies ---------------------------------------------------------------------

SLOW_BODY = ("--request-body-timeout", "0.5", "--request-body-min-rate", "1k", "--metrics-path", "/-/metrics")


def _trickle_until_answered(sock: socket.socket, send_byte) -> None:
    """Send a byte every 50 ms until the server says something (bounded)."""
    deadline = time.monotonic() + 15
    while not select.select([sock], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the trickled body was never cut off"
        send_byte()


def test_a_body_trickling_below_the_minimum_rate_is_answered_408_on_http1():
    with TelexServer(RAW, *SLOW_BODY) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            _trickle_until_answered(sock, lambda: sock.sendall(b"x"))
            response = read_until_closed(sock)
        assert response.startswith(b"HTTP/1.1 408") and b"too slowly" in response
        server.wait_for(r"request body for /body too slow: \d+ bytes in")
        assert b"telex_http_body_timeouts_total 1" in request(server, "GET", "/-/metrics")[2]


def test_a_chunked_body_trickling_below_the_minimum_rate_is_answered_408():
    with TelexServer(RAW, *SLOW_BODY) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            _trickle_until_answered(sock, lambda: sock.sendall(b"1\r\nx\r\n"))
            assert read_until_closed(sock).startswith(b"HTTP/1.1 408")


def test_a_body_trickling_below_the_minimum_rate_is_answered_408_on_its_http2_stream():
    with TelexServer(RAW, *SLOW_BODY) as server:
        client = _h2c(server)
        try:
            stream = client.request("/body", method="POST", length=100000)

            deadline = time.monotonic() + 15
            while stream not in client.ended and stream not in client.reset:
                assert time.monotonic() < deadline, "the trickled body was never cut off"
                if stream not in client.headers:
                    client.conn.send_data(stream, b"x")
                    client.flush()
                try:
                    client.pump(0.05)
                except TimeoutError:
                    pass
            assert client.headers[stream][b":status"] == b"408"
            assert client.get("/") == (200, b"Hello world! You asked for /")
        finally:
            client.close()


def test_a_100_mb_upload_at_loopback_speed_never_trips_the_body_deadline():
    # A short grace and 1 MiB/s: loopback is far faster, pauses for the layer aside.
    args = ("--request-body-timeout", "0.2", "--request-body-min-rate", "1m")
    with TelexServer(RAW, *args) as server:
        payload = os.urandom(1024 * 1024) * 100
        status, _, body = request(server, "POST", "/body", body=payload, timeout=120)
        assert status == 200
        assert json.loads(body)["sha256"] == hashlib.sha256(payload).hexdigest()


# -- handshake bursts ------------------------------------------------------------------------


async def _handshakes(port: int, count: int) -> list[object]:
    async def one(i: int) -> object:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/burst/{i}", open_timeout=30) as ws:
                await ws.send("hi")
                return await asyncio.wait_for(ws.recv(), 30)
        except Exception as exc:  # the status of a refused handshake, reported below
            return repr(exc)

    return await asyncio.gather(*(one(i) for i in range(count)))


@pytest.mark.redis
def test_a_burst_of_300_handshakes_on_redis_is_all_accepted(redis_server):
    url = redis_server.url + "?prefix=burst1"
    worker = TelexProcess(
        ["worker", "examples.echo.routing:channel_routing", "--layer", url], ready="listening on"
    )
    with TelexServer(url) as server, worker:
        results = asyncio.run(_handshakes(server.port, 300))
    refused = [result for result in results if result != "hi"]
    assert not refused, refused[:3]


def test_a_full_connect_channel_is_retried_before_503():
    # Room for 5 waiting handshakes: a burst of 60 fits only by retrying.
    with TelexServer(RAW_WS, env={"RAW_WS_CAPACITY": "5"}) as server:
        results = asyncio.run(_handshakes(server.port, 60))
    assert results == ["hi"] * 60
