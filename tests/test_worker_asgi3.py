"""``telex worker --asgi``: a plain ASGI 3 application behind ``telex serve`` through Redis.

Real processes and sockets: one redis-server, one ``telex serve`` and one
worker running ``tests.apps.asgi3_plain``; a WebSocket instance lives in the
worker that accepted it, and its frames reach that process through the
``telex.receive_channel`` key of the accept.
"""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.http import request as http_request
from tests.support.processes import TelexProcess, TelexServer, run_telex
from tests.support.waiting import wait_until
from tests.support.ws import ws_url

pytestmark = pytest.mark.redis

PLAIN = "tests.apps.asgi3_plain:application"


def request(server, method, path, **kwargs):
    """``tests.support.http.request`` with the header names in lower case."""
    status, headers, body = http_request(server, method, path, **kwargs)
    return status, {name.lower(): value for name, value in headers.items()}, body


def asgi_worker(url: str, app: str = PLAIN, *extra: str) -> TelexProcess:
    return TelexProcess(["worker", "--asgi", app, "--layer", url, *extra], ready="listening on")


@pytest.fixture(scope="module")
def plain(redis_server):
    url = redis_server.url + "?prefix=asgi3plain"
    with TelexServer(url) as server, asgi_worker(url) as worker:
        yield server, worker


def test_lifespan_state_reaches_every_request(plain):
    server, _ = plain
    status, headers, body = request(server, "GET", "/state")
    assert (status, body) == (200, b"hello from lifespan")
    assert headers["content-type"] == "text/plain"


def test_the_http_scope_carries_the_request(plain):
    server, _ = plain
    status, _, body = request(server, "GET", "/scope?a=1&b=%20", headers={"X-Test": "yes"})
    scope = json.loads(body)
    assert status == 200
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert (scope["method"], scope["scheme"], scope["path"], scope["http_version"]) == (
        "GET",
        "http",
        "/scope",
        "1.1",
    )
    assert scope["raw_path"] == "/scope" and scope["query_string"] == "a=1&b=%20" and scope["root_path"] == ""
    assert scope["headers"]["x-test"] == "yes"
    assert scope["client"][0] == "127.0.0.1" and scope["server"] == ["127.0.0.1", server.port]


def test_a_large_request_body_streams_in_and_back_out(plain):
    server, _ = plain
    body = bytes(range(256)) * 8 * 1024  # 2 MiB: past the inline limit, so it comes on a body channel
    status, headers, echoed = request(server, "POST", "/echo-body", body=body)
    assert status == 200 and headers["x-parts"] == "streamed"
    assert echoed == body


def test_a_response_sent_in_parts_reaches_the_client_whole(plain):
    server, _ = plain
    status, headers, body = request(server, "GET", "/stream")
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert body == b"".join(b"part %d\n" % part for part in range(5))


def test_a_body_larger_than_a_layer_message_is_split(plain):
    server, _ = plain
    status, _, body = request(server, "GET", "/big")
    assert status == 200 and body == b"x" * (3 * 1024 * 1024 + 7)


def hang_up_mid_response(server, ident: str) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /wait-disconnect?{ident} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while b"waiting" not in received:
            received += sock.recv(4096)


def test_the_application_hears_the_client_hang_up(plain):
    server, worker = plain
    hang_up_mid_response(server, "one")
    worker.wait_for("app heard http.disconnect for one")


def test_the_disconnect_of_a_started_response_reaches_its_own_worker(redis_server):
    """The Response names the process's channel, so with two workers none is lost."""
    url = redis_server.url + "?prefix=asgi3hangup"
    with TelexServer(url) as server, asgi_worker(url) as first, asgi_worker(url) as second:
        for n in range(8):
            hang_up_mid_response(server, f"n{n}")
        output = lambda: first.output + "\n" + second.output + "\n"  # noqa: E731
        heard = {f"app heard http.disconnect for n{n}\n" for n in range(8)}
        assert wait_until(lambda: all(line in output() for line in heard), timeout=10), output()


@pytest.mark.parametrize("when", ["while it polls", "before it starts"])
def test_a_long_poll_hears_its_client_leave_whichever_worker_took_the_disconnect(redis_server, when):
    """No response yet, two workers: the one running the request claims its disconnect.

    A client leaving before the application even started is the hard case:
    the disconnect goes to the shared channel, often to the other worker, so
    the server sends it again when the right one claims the request.
    """
    url = redis_server.url + "?prefix=asgi3poll" + when.split()[0]
    with TelexServer(url) as server, asgi_worker(url) as first, asgi_worker(url) as second:
        output = lambda: first.output + "\n" + second.output + "\n"  # noqa: E731
        for n in range(8):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(f"GET /long-poll?p{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if when == "while it polls":
                    assert wait_until(lambda n=n: f"app polling for p{n}\n" in output(), timeout=10), output()
        heard = {f"app heard http.disconnect for p{n}\n" for n in range(8)}
        assert wait_until(lambda: all(line in output() for line in heard), timeout=15), output()


def test_an_application_that_raises_gives_a_500_and_the_worker_goes_on(plain):
    server, worker = plain
    status, _, body = request(server, "GET", "/raise")
    assert (status, body) == (500, b"500 Internal Server Error\n")
    worker.wait_for("boom in the ASGI application")
    assert request(server, "GET", "/state")[0] == 200


def test_websocket_echo_with_the_subprotocol_the_application_chose(plain):
    server, worker = plain
    with connect(ws_url(server, "/ws"), subprotocols=["chat.v2", "chat.v1"], open_timeout=10) as ws:
        assert ws.subprotocol == "chat.v2"
        for n in range(20):  # in order, every one
            ws.send(f"hello {n}")
        assert [ws.recv(timeout=10) for _ in range(20)] == [f"echo: hello {n}" for n in range(20)]
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=10) == b"\x03\x02\x01"
    worker.wait_for("app heard websocket.disconnect 1000")


def test_the_application_closes_a_websocket_with_its_code(plain):
    server, _ = plain
    with connect(ws_url(server, "/ws"), open_timeout=10) as ws:
        assert ws.subprotocol is None
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4001


def test_a_close_before_the_accept_refuses_the_handshake(plain):
    server, _ = plain
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(server, "/ws-refuse"), open_timeout=10)
    assert refused.value.response.status_code == 403


def test_a_denial_response_reaches_the_client(plain):
    server, _ = plain
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(server, "/ws-deny"), open_timeout=10)
    response = refused.value.response
    assert response.status_code == 401 and response.body == b"log in first"
    assert (
        response.headers["www-authenticate"] == "Bearer" and response.headers["content-type"] == "text/plain"
    )


def test_sockets_live_in_the_worker_that_accepted_them(redis_server):
    """Two workers: each socket's frames reach the process running its instance."""
    url = redis_server.url + "?prefix=asgi3two"
    with TelexServer(url) as server, asgi_worker(url), asgi_worker(url):
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(connect(ws_url(server, "/ws"), open_timeout=10)) for _ in range(6)]
            for round_ in range(3):
                for index, ws in enumerate(sockets):
                    ws.send(f"{index}-{round_}")
                for index, ws in enumerate(sockets):
                    assert ws.recv(timeout=10) == f"echo: {index}-{round_}"


def test_a_stopping_worker_with_no_resume_closes_its_sockets_with_1012(redis_server):
    url = redis_server.url + "?prefix=asgi3stop"
    with TelexServer(url) as server, asgi_worker(url, PLAIN, "--no-resume") as worker:
        with connect(ws_url(server, "/ws"), open_timeout=10) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "echo: hi"
            assert worker.stop() == 0
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1012


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("tests.apps.nowhere:application", "cannot import module 'tests.apps.nowhere'"),
        ("tests.apps.asgi3_plain:missing", "has no attribute 'missing'"),
        ("tests.apps.asgi3_bad:routing", "is not an ASGI 3 application but a routing list"),
        ("examples.hello_http.routing:channel_routing", "is not an ASGI 3 application"),
        ("tests.apps.asgi3_bad:sync_app", "is not an ASGI 3 application: it is not an async callable"),
        ("tests.apps.asgi3_bad:Asgi2App", "is a class"),
    ],
)
def test_a_bad_asgi_spec_is_one_line(app, expected):
    result = run_telex(["worker", "--asgi", app, "--layer", "memory://"])
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("telex worker: error: ") and expected in line


def test_routing_and_asgi_together_are_refused():
    result = run_telex(
        ["worker", "examples.hello_http.routing:channel_routing", "--asgi", PLAIN, "--layer", "memory://"]
    )
    assert result.returncode == 2 and "give ROUTING or --asgi, not both" in result.stderr


def test_a_failed_lifespan_startup_stops_the_worker_in_one_line(redis_server):
    result = run_telex(
        ["worker", "--asgi", "tests.apps.asgi3_bad:failing_startup", "--layer", redis_server.url]
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line == "telex worker: error: the application's lifespan startup failed: no database"


def test_starlette_behind_the_channel_layer(redis_server):
    pytest.importorskip("starlette")
    url = redis_server.url + "?prefix=asgi3starlette"
    with TelexServer(url) as server, asgi_worker(url, "tests.apps.asgi3_starlette:app"):
        status, _, body = request(server, "GET", "/hello/ann?q=1")
        assert status == 200
        assert json.loads(body) == {"started_by": "starlette lifespan", "name": "ann", "q": "1"}
        upload = b"abc" * 400_000  # 1.2 MB: streamed in on a body channel, streamed out in parts
        status, _, body = request(server, "POST", "/upload", body=upload)
        assert (status, body) == (200, upload.upper())
        with connect(ws_url(server, "/chat"), subprotocols=["chat.v1"], open_timeout=10) as ws:
            assert ws.subprotocol == "chat.v1"
            ws.send("hi")
            assert ws.recv(timeout=10) == "starlette: hi"


def test_django_asgi_handler_behind_the_channel_layer(redis_server):
    pytest.importorskip("django")
    url = redis_server.url + "?prefix=asgi3django"
    # Mounted under /app by a proxy that strips it: Django resolves the rest and builds paths with it.
    django_app = "tests.apps.asgi3_django:application"
    with TelexServer(url, "--root-path", "/app") as server, asgi_worker(url, django_app) as worker:
        # Django's handler raises on the lifespan scope: the worker runs without it, saying so once.
        worker.wait_for("does not support the lifespan scope .*ValueError: Django can only handle ASGI/HTTP")
        status, _, body = request(server, "GET", "/hello/bob/?q=x")
        assert status == 200
        assert json.loads(body) == {"name": "bob", "method": "GET", "q": "x", "path": "/app/hello/bob/"}
        status, _, body = request(server, "POST", "/echo/", body=b"0123456789" * 100_000)
        assert (status, body) == (200, (b"0123456789" * 100_000)[::-1])
        assert request(server, "GET", "/nowhere/")[0] == 404
        assert worker.stop() == 0


def test_django_cancels_a_slow_view_whose_client_left_with_two_workers(redis_server):
    """Django's handler listens for http.disconnect during the view; the claim brings it there."""
    pytest.importorskip("django")
    url = redis_server.url + "?prefix=asgi3djpoll"
    django_app = "tests.apps.asgi3_django:application"
    with (
        TelexServer(url) as server,
        asgi_worker(url, django_app) as first,
        asgi_worker(url, django_app) as second,
    ):
        for n in range(6):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(f"GET /poll/p{n}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        output = lambda: first.output + "\n" + second.output + "\n"  # noqa: E731
        cancelled = {f"django cancelled p{n}\n" for n in range(6)}
        assert wait_until(lambda: all(line in output() for line in cancelled), timeout=15), output()


def test_metrics_and_health_of_an_asgi_worker(redis_server):
    url = redis_server.url + "?prefix=asgi3metrics"
    with TelexServer(url) as server, asgi_worker(url, PLAIN, "--metrics-port", "0") as worker:
        port = int(worker.wait_for(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
        assert request(server, "GET", "/state")[0] == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as health:
            assert json.loads(health.read()) == {"status": "ok", "layer": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as metrics:
            text = metrics.read().decode()
        assert 'telex_worker_messages_total{channel="http.request"} 1' in text
        # SIGTERM reaches the main thread's wait whichever thread the kernel gives it to.
        assert worker.stop() == 0


def test_processes_runs_several_asgi_workers_from_one_command(redis_server):
    url = redis_server.url + "?prefix=asgi3processes"
    with TelexServer(url) as server, asgi_worker(url, PLAIN, "--processes", "2") as worker:
        worker.wait_for("listening on")
        assert wait_until(lambda: worker.output.count("worker running ASGI 3 application") == 2, timeout=20)
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(connect(ws_url(server, "/ws"), open_timeout=10)) for _ in range(4)]
            for index, ws in enumerate(sockets):
                ws.send(str(index))
            assert [ws.recv(timeout=10) for ws in sockets] == [f"echo: {index}" for index in range(4)]
        assert worker.stop() == 0


def test_a_channels_4_chat_spans_two_workers_through_telex_channels4(redis_server):
    """Channels 4 (auth middleware, groups) on ``telex.channels4``, one consumer per worker process:
    a message sent in one worker's socket reaches the room's sockets held by the other."""
    pytest.importorskip("channels")
    url = redis_server.url + "?prefix=asgi3chat"
    env = {"CHAT_LAYER": redis_server.url, "CHAT_PREFIX": "asgi3chat"}
    app = "tests.apps.asgi3_channels4:application"
    with (
        TelexServer(url) as server,
        TelexProcess(["worker", "--asgi", app, "--layer", url], ready="listening on", env=env),
        TelexProcess(["worker", "--asgi", app, "--layer", url], ready="listening on", env=env),
        contextlib.ExitStack() as sockets,
    ):
        people, pids = [], set()
        for _ in range(8):
            ws = sockets.enter_context(connect(ws_url(server, "/chat/lobby/")))
            hello = json.loads(ws.recv(timeout=10))
            assert hello["user"] == "AnonymousUser"
            people.append(ws)
            pids.add(hello["pid"])
        assert len(pids) == 2, "both workers should hold sockets of the room"
        people[0].send(json.dumps({"text": "hi all"}))
        got = [json.loads(ws.recv(timeout=10)) for ws in people]
        assert [message["text"] for message in got] == ["hi all"] * 8
