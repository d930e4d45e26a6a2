"""``telex serve --asgi APP``: an ASGI 3 application in the server's own process.

Real ``telex serve`` processes over real sockets, no worker and no Redis:
the application runs on the reactor's asyncio loop as the consumer of the
server's memory:// layer. The application is the one ``telex worker --asgi``
runs in tests/test_worker_asgi3.py.
"""

from __future__ import annotations

import json
import signal
import socket

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.http import read_until_closed
from tests.support.processes import TelexServer, run_telex
from tests.support.redis_server import free_port
from tests.support.ws import ws_url
from tests.test_worker_asgi3 import PLAIN, request


@pytest.fixture(scope="module")
def served():
    with TelexServer("--asgi", PLAIN) as server:
        yield server


def test_lifespan_state_reaches_a_request(served):
    served.wait_for("running ASGI 3 application tests.apps.asgi3_plain:application")
    status, headers, body = request(served, "GET", "/state")
    assert (status, body) == (200, b"hello from lifespan")
    assert headers["content-type"] == "text/plain"


def test_the_http_scope_carries_the_request(served):
    status, _, body = request(served, "GET", "/scope?a=1", headers={"X-Test": "yes"})
    scope = json.loads(body)
    assert status == 200 and scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert (scope["path"], scope["query_string"], scope["headers"]["x-test"]) == ("/scope", "a=1", "yes")
    assert scope["client"][0] == "127.0.0.1" and scope["server"] == ["127.0.0.1", served.port]


def test_a_large_body_streams_in_and_back_out(served):
    body = bytes(range(256)) * 8 * 1024  # 2 MiB: it comes on a body channel, goes back in parts
    status, headers, echoed = request(served, "POST", "/echo-body", body=body)
    assert (status, headers["x-parts"]) == (200, "streamed")
    assert echoed == body


def test_a_response_sent_in_parts_reaches_the_client_whole(served):
    status, headers, body = request(served, "GET", "/stream")
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert body == b"".join(b"part %d\n" % part for part in range(5))


def test_an_application_that_raises_gives_a_500(served):
    assert request(served, "GET", "/raise")[:3:2] == (500, b"500 Internal Server Error\n")
    served.wait_for("boom in the ASGI application")
    assert request(served, "GET", "/state")[0] == 200


def test_a_burst_of_requests_waits_for_the_application_instead_of_503():
    """The server reads many requests in one turn of the loop before the application's intake
    runs: http.request holds 1,000 here, not the general 100."""
    port = free_port()  # with a backlog that holds every connection of the burst at once
    with TelexServer("--asgi", PLAIN, "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=1024"):
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(300)]
        try:
            for sock in sockets:
                sock.sendall(b"GET /state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            replies = [read_until_closed(sock) for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
    assert [reply.split(b"\r\n", 1)[0] for reply in replies] == [b"HTTP/1.1 200 OK"] * 300


def test_websocket_echo(served):
    with connect(ws_url(served, "/ws"), subprotocols=["chat.v2"], open_timeout=10) as ws:
        assert ws.subprotocol == "chat.v2"
        for n in range(20):
            ws.send(f"hello {n}")
        assert [ws.recv(timeout=10) for _ in range(20)] == [f"echo: hello {n}" for n in range(20)]
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=10) == b"\x03\x02\x01"
    served.wait_for("app heard websocket.disconnect 1000")


def test_a_websocket_refusal_and_a_denial_reach_the_client(served):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(served, "/ws-refuse"), open_timeout=10)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as denied:
        connect(ws_url(served, "/ws-deny"), open_timeout=10)
    assert (denied.value.response.status_code, denied.value.response.body) == (401, b"log in first")


def test_an_explicit_memory_layer_is_the_same(served):
    with TelexServer("memory://", "--asgi", PLAIN) as server:
        assert request(server, "GET", "/state")[2] == b"hello from lifespan"


def test_starlette_in_process():
    pytest.importorskip("starlette")
    with TelexServer("--asgi", "tests.apps.asgi3_starlette:app") as server:
        status, _, body = request(server, "GET", "/hello/ann?q=1")
        assert status == 200
        assert json.loads(body) == {"started_by": "starlette lifespan", "name": "ann", "q": "1"}
        upload = b"abc" * 400_000
        assert request(server, "POST", "/upload", body=upload)[::2] == (200, upload.upper())
        with connect(ws_url(server, "/chat"), subprotocols=["chat.v1"], open_timeout=10) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "starlette: hi"


def test_django_asgi_handler_in_process():
    """Django's handler refuses the lifespan scope (one line) and runs its sync views in a thread."""
    pytest.importorskip("django")
    with TelexServer("--asgi", "tests.apps.asgi3_django:application") as server:
        server.wait_for("does not support the lifespan scope .*ValueError: Django can only handle ASGI/HTTP")
        status, _, body = request(server, "GET", "/hello/bob/?q=x")
        assert status == 200
        assert json.loads(body) == {"name": "bob", "method": "GET", "q": "x", "path": "/hello/bob/"}
        status, _, body = request(server, "POST", "/echo/", body=b"0123456789" * 100_000)
        assert (status, body) == (200, (b"0123456789" * 100_000)[::-1])
        assert server.stop() == 0


def test_sigterm_drains_then_ends_the_instances_then_the_lifespan():
    """A response in flight completes; an open socket gets 1001, and its instance hears
    1001; then the lifespan shutdown runs, and the exit status is 0."""
    # A body longer than 4 bytes is streamed to the application in chunks of 5.
    streamed = ("--request-body-inline-max", "4", "--request-body-chunk-size", "5")
    with TelexServer("--asgi", PLAIN, *streamed) as server:
        with (
            connect(ws_url(server, "/ws"), open_timeout=10) as ws,
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as upload,
        ):
            ws.send("hi")
            assert ws.recv(timeout=10) == "echo: hi"
            upload.sendall(b"POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nfirst")
            received = b""
            while b"first" not in received:
                received += upload.recv(4096)
            server.signal(signal.SIGTERM)
            server.wait_for("shutting down: no new connections; 2 in flight")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1001
            upload.sendall(b"last")  # the request in flight still completes
            while not received.endswith(b"0\r\n\r\n"):
                chunk = upload.recv(4096)
                assert chunk, received
                received += chunk
            assert received.startswith(b"HTTP/1.1 200") and b"4\r\nlast\r\n" in received
        assert server.wait(30) == 0
    heard = server.output.index("app heard websocket.disconnect 1001")
    assert heard < server.output.index("app lifespan shutdown")


def test_a_failed_lifespan_startup_is_one_line_and_status_1():
    result = run_telex(["serve", "--asgi", "tests.apps.asgi3_bad:failing_startup", "-p", "0"])
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line == "telex serve: error: the application's lifespan startup failed: no database"


def test_a_port_in_use_is_one_line_after_the_lifespan_shutdown():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_telex(["serve", "--asgi", PLAIN, "-p", str(port)])
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"telex serve: error: cannot listen on 127.0.0.1:{port}")
    assert result.stdout.strip() == "app lifespan shutdown"  # its startup had run


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("tests.apps.nowhere:application", "cannot import module 'tests.apps.nowhere'"),
        ("tests.apps.asgi3_plain:missing", "has no attribute 'missing'"),
        ("tests.apps.asgi3_bad:routing", "is not an ASGI 3 application but a routing list"),
        ("tests.apps.asgi3_bad:sync_app", "is not an ASGI 3 application: it is not an async callable"),
        ("tests.apps.asgi3_bad:Asgi2App", "is a class"),
    ],
)
def test_a_bad_application_spec_is_one_line(app, expected):
    result = run_telex(["serve", "--asgi", app, "-p", "0"])
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("telex serve: error: ") and expected in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--routing", "examples.hello_http.routing:channel_routing"], "give --routing or --asgi, not both"),
        (["--workers", "2"], "--workers > 1 does not apply to --asgi"),
        (["--threads", "4"], "--threads does not apply to --asgi"),
        (["redis://127.0.0.1:6379/0"], "--asgi runs the application in this process on memory://, not on"),
    ],
)
def test_what_needs_another_process_is_refused_in_one_line(args, expected):
    result = run_telex(["serve", "--asgi", PLAIN, *args])
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("telex serve: error: ") and expected in line
