"""HTTP/1.1 over the channel layer (www.rst, HTTP), against real server processes.

The application is ``tests.apps.raw_http``: bare layer calls, no toolkit, so
these tests check the server's messages exactly as a worker receives them.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tests.apps.jsonable import from_jsonable as decode
from tests.support.http import (
    RAW,
    exchange_until_closed,
    raw_exchange,
    read_until_closed,
    received_message,
    request,
)
from tests.support.processes import ROOT, TelexServer, rss_kib, telex_env
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def server():
    with TelexServer(RAW, "--root-path", "/mounted", "--metrics-path", "/-/metrics") as process:
        yield process


# -- Request message -------------------------------------------------------------


def test_http_request_message_carries_every_spec_key(server):
    message = received_message(server, "/message?a=%20b&c", headers={"X-Test": "yes"})
    assert set(message) == {
        "reply_channel",
        "http_version",
        "method",
        "scheme",
        "path",
        "query_string",
        "root_path",
        "headers",
        "body",
        "body_channel",
        "client",
        "server",
    }
    assert message["http_version"] == "1.1"
    assert message["method"] == "GET"
    assert message["scheme"] == "http"
    assert message["path"] == "/message"
    assert message["query_string"] == b"a=%20b&c"
    assert message["root_path"] == "/mounted"
    assert [b"x-test", b"yes"] in message["headers"]
    assert message["body"] == b""
    assert message["body_channel"] is None
    assert message["client"][0] == "127.0.0.1" and isinstance(message["client"][1], int)
    assert message["server"] == ["127.0.0.1", server.port]


def test_method_is_uppercased(server):
    response = raw_exchange(server, b"get /message HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = response.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["method"] == "GET"


def test_http_version_1_0_is_reported(server):
    response = raw_exchange(server, b"GET /message HTTP/1.0\r\n\r\n")
    assert response.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["http_version"] == "1.0"


def test_path_is_percent_decoded_as_utf8(server):
    assert received_message(server, "/message/caf%C3%A9%20x")["path"] == "/message/caf\u00e9 x"


def test_undecodable_path_is_answered_400(server):
    status, _, body = request(server, "GET", "/bad%FFpath")
    assert status == 400
    assert b"UTF-8" in body and b"Traceback" not in body


def test_headers_are_lowercased_in_order_with_duplicates_kept(server):
    response = raw_exchange(
        server,
        b"GET /message HTTP/1.1\r\nHost: x\r\nX-Dup: one\r\nAccept: */*\r\nX-DUP: two\r\n"
        b"Connection: close\r\n\r\n",
    )
    headers = decode(json.loads(response.split(b"\r\n\r\n", 1)[1])["headers"])
    assert [b"x-dup", b"one"] in headers and [b"x-dup", b"two"] in headers
    assert headers.index([b"x-dup", b"one"]) < headers.index([b"x-dup", b"two"])
    assert all(name == name.lower() for name, _ in headers)


def test_header_names_containing_underscores_are_dropped(server):
    headers = received_message(server, headers={"X_Forwarded_For": "6.6.6.6", "X-Real": "1"})["headers"]
    assert [b"x-real", b"1"] in headers
    assert not [name for name, _ in headers if b"_" in name]


def test_reply_channels_are_process_specific_short_and_fresh_per_request(server):
    first = received_message(server)["reply_channel"]
    second = received_message(server)["reply_channel"]
    assert first != second
    assert first.split("!")[0] == second.split("!")[0]
    assert re.fullmatch(r"telex\.response\.[A-Za-z0-9_]+![0-9a-z]+", first)
    assert len(first) < 90


# -- Request bodies ------------------------------------------------------------------


def test_small_bodies_travel_inline(server):
    payload = os.urandom(100_000)
    status, _, body = request(server, "POST", "/body", body=payload)
    result = json.loads(body)
    assert status == 200
    assert result == {"size": 100_000, "sha256": hashlib.sha256(payload).hexdigest(), "streamed": False}


def test_large_bodies_stream_through_body_channel(server):
    payload = os.urandom(3_000_000)
    status, _, body = request(server, "POST", "/body", body=payload)
    assert status == 200
    assert json.loads(body) == {
        "size": 3_000_000,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "streamed": True,
    }


def test_chunked_request_bodies_are_read(server):
    chunks = [os.urandom(300_000) for _ in range(4)]
    status, _, body = request(server, "POST", "/body", body=iter(chunks))  # http.client chunk-encodes it
    assert status == 200
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()
    assert json.loads(body) == {"size": 1_200_000, "sha256": expected, "streamed": True}


def test_a_20mb_upload_under_small_body_capacity_keeps_server_memory_bounded():
    env = {"RAW_APP_BODY_CAPACITY": "2"}
    with TelexServer(RAW, "--request-body-chunk-size", "64k", env=env) as server:
        request(server, "POST", "/body", body=b"warm-up" * 100_000)
        before = rss_kib(server.process.pid, "VmHWM")
        payload = os.urandom(1024 * 1024)
        status, _, body = request(
            server,
            "POST",
            "/body",
            body=iter([payload] * 20),
            headers={"Content-Length": str(20 * len(payload))},
            timeout=60,
        )
        assert status == 200
        assert json.loads(body)["size"] == 20 * len(payload)
        growth_mb = (rss_kib(server.process.pid, "VmHWM") - before) / 1024
        assert growth_mb < 30, f"peak RSS grew by {growth_mb:.1f} MB"


def test_client_disconnecting_mid_body_sends_a_closed_chunk(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n" + b"z" * 1_000_000)
    assert wait_until(lambda: json.loads(request(server, "GET", "/body-events")[2]), timeout=10)
    assert json.loads(request(server, "GET", "/body-events")[2])[-1]["closed"] is True


def test_request_body_over_the_maximum_is_answered_413():
    with TelexServer(RAW, "--max-request-body-size", "1000") as server:
        status, _headers, body = request(server, "POST", "/body", body=b"x" * 5000)
        assert status == 413 and b"1000 bytes" in body
        response = raw_exchange(
            server,
            b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"800\r\n"
            + b"y" * 0x800
            + b"\r\n0\r\n\r\n",
        )
        assert response.startswith(b"HTTP/1.1 413")


def test_message_too_large_for_the_layer_is_answered_413():
    with TelexServer(RAW, "--request-body-inline-max", "4m") as server:
        status, _, _body = request(server, "POST", "/body", body=b"x" * 2_000_000)
        assert status == 413


def test_channel_full_on_http_request_is_answered_503_and_closed():
    with TelexServer("tests.apps.no_consumer:channel_layer", "-t", "30", "--metrics-path", "/m") as server:
        first = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        first.sendall(b"GET /occupy HTTP/1.1\r\nHost: x\r\n\r\n")
        # The first request is queued and fills the channel (capacity 1).
        assert wait_until(lambda: b"telex_http_requests_started_total 1" in request(server, "GET", "/m")[2])
        response = raw_exchange(server, b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        first.close()
        assert response.startswith(b"HTTP/1.1 503")
        assert b"connection: close" in response.lower()


# -- Responses ------------------------------------------------------------------------


def test_response_headers_are_sent_in_order_with_duplicates(server):
    response = raw_exchange(server, b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = response.split(b"\r\n\r\n")[0].lower()
    assert head.index(b"set-cookie: a=1") < head.index(b"set-cookie: b=2")
    assert b"x-custom: yes" in head


def test_streamed_responses_use_chunked_encoding_and_arrive_as_sent(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/stream-wait")
    response = connection.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read1(100) == b"head;"  # before the application has finished
    request(server, "GET", "/release")
    assert response.read() == b"tail"
    connection.close()


def test_keep_alive_is_preserved_across_requests_and_streamed_responses(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for path in ("/one", "/stream", "/two"):
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        response.read()
    assert connection.sock is not None  # never reconnected
    connection.close()


def test_complete_responses_get_a_content_length(server):
    _status, headers, body = request(server, "GET", "/a/b")
    assert body == b"Hello world! You asked for /a/b"
    assert headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/malformed/no-status", "Response Chunk arrived before the Response"),
        ("/malformed/bad-headers", "header name and value must be bytes"),
        ("/malformed/header-injection", "CR, LF or NUL"),
    ],
)
def test_malformed_replies_are_logged_and_answered_500(server, path, problem):
    status, _, body = request(server, "GET", path)
    assert status == 500
    assert b"Traceback" not in body and b"invalid response" in body
    server.wait_for(re.escape(problem))


def test_a_second_response_closes_the_connection_after_the_first(server):
    response = exchange_until_closed(server, b"GET /malformed/second-response HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200")
    assert b"two" not in response
    server.wait_for("a second Response arrived")


def test_server_push_is_dropped_on_http_1_1(server):
    assert request(server, "GET", "/push-then-response")[2] == b"after push"


def test_replies_for_finished_reply_channels_are_dropped_and_counted(server):
    raw_exchange(server, b"GET /malformed/second-response HTTP/1.1\r\nHost: x\r\n\r\n")
    metrics = request(server, "GET", "/-/metrics")[2].decode()
    assert "telex_malformed_replies_total" in metrics


# -- Disconnect and timeouts ------------------------------------------------------------


def _disconnects(server):
    return decode(json.loads(request(server, "GET", "/disconnects")[2]))


def test_http_disconnect_is_sent_once_when_the_client_leaves_before_the_response(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /longpoll HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(
            lambda: b"telex_http_requests_started_total" in request(server, "GET", "/-/metrics")[2]
        )
    assert wait_until(lambda: any(d["path"] == "/longpoll" for d in _disconnects(server)), timeout=10)
    matching = [d for d in _disconnects(server) if d["path"] == "/longpoll"]
    assert len(matching) == 1
    assert set(matching[0]) == {"reply_channel", "path"}


def test_no_http_disconnect_after_a_completed_response_by_default(server):
    request(server, "GET", "/completed-once")
    request(server, "GET", "/a-later-request")  # the same consumer thread, in order
    assert not [d for d in _disconnects(server) if d["path"] == "/completed-once"]


def test_http_disconnect_always_restores_daphne_behaviour():
    with TelexServer(RAW, "--http-disconnect-always") as server:
        request(server, "GET", "/completed")
        request(server, "GET", "/later")
        assert [d for d in _disconnects(server) if d["path"] == "/completed"]


def test_no_response_within_http_timeout_is_answered_503():
    with TelexServer(RAW, "-t", "0.5") as server:
        status, _, body = request(server, "GET", "/never")
        assert status == 503 and b"did not respond in time" in body


def test_idle_keep_alive_connections_are_closed():
    with TelexServer(RAW, "--keep-alive-timeout", "0.5") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"You asked for /"):
                data += sock.recv(4096)
            assert sock.recv(4096) == b""  # closed by the server, well before 10 s


def test_a_request_head_must_arrive_within_the_deadline():
    with TelexServer(RAW, "--request-head-timeout", "0.5") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")


def test_the_head_deadline_covers_a_first_request_line_still_incomplete():
    # Held back until it tells HTTP/1.1 from a bad HTTP/2 preface (sniff_protocol).
    with TelexServer(RAW, "--request-head-timeout", "0.5") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTT")
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")


# -- Malformed requests --------------------------------------------------------------------


def test_a_malformed_request_line_is_answered_400(server):
    assert raw_exchange(server, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_oversized_headers_are_answered_431_and_too_many_headers_400():
    with TelexServer(RAW, "--max-header-bytes", "1k", "--max-headers", "5") as server:
        big = raw_exchange(server, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
        assert big.startswith(b"HTTP/1.1 431")
        many = b"".join(b"X-%d: v\r\n" % i for i in range(10))
        assert raw_exchange(server, b"GET / HTTP/1.1\r\n" + many + b"\r\n").startswith(b"HTTP/1.1 400")


def test_conflicting_content_length_and_transfer_encoding_are_refused_not_smuggled(server):
    smuggle = (
        b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    response = raw_exchange(server, smuggle)
    assert response.startswith(b"HTTP/1.1 400")
    assert b"smuggled" not in response and response.count(b"HTTP/1.1") == 1


def test_more_connections_than_the_maximum_get_503():
    with TelexServer(RAW, "--max-connections", "2") as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert raw_exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503")
        for sock in held:
            sock.close()


def test_a_slow_reader_is_closed_once_its_unsent_output_passes_the_limit():
    with TelexServer(RAW, "--max-pending-output", "1m") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /stream-big?60 HTTP/1.1\r\nHost: x\r\n\r\n")
            server.wait_for("closing slow client", timeout=30)
            assert len(read_until_closed(sock)) < 60 * 512 * 1024  # cut off, not the whole body


@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_a_body_ending_exactly_on_a_chunk_boundary_still_gets_its_final_chunk(chunks):
    # Capacity 1 makes chunks wait (ChannelFull, retry), so one is in flight
    # when the body completes.
    env = {"RAW_APP_BODY_CAPACITY": "1"}
    args = ("--request-body-chunk-size", "64k", "--request-body-inline-max", "1k")
    with TelexServer(RAW, *args, env=env) as server:
        payload = os.urandom(chunks * 65536)
        status, _, body = request(server, "POST", "/body", body=payload, timeout=10)
        assert status == 200
        assert json.loads(body)["sha256"] == hashlib.sha256(payload).hexdigest()


def test_finished_requests_are_freed_without_the_garbage_collector():
    """docs/server.md tunes the collector for a server that makes almost no
    cyclic garbage: a request must not be kept alive by a reference cycle.
    Runs the in-process harness of benchmarks/clients/http_instructions.py."""
    count_alive = (
        "import gc; gc.disable()\n"
        "from benchmarks.clients.http_instructions import main\n"
        "main(50)\n"
        "from telex.protocols.http import AsgiRequest\n"
        "print(sum(isinstance(thing, AsgiRequest) for thing in gc.get_objects()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", count_alive],
        capture_output=True,
        text=True,
        env=telex_env(),
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert result.stdout.split()[-1] == "0", result.stdout + result.stderr
