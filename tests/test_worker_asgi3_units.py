"""``telex.worker.asgi3`` in one process on the memory layer: back-pressure, scopes, imports.

The end-to-end behaviour through ``telex serve`` and Redis is in ``test_worker_asgi3.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from telex.layers import InMemoryChannelLayer
from telex.worker.asgi3 import ApplicationError, Asgi3Worker, load_application
from telex.worker.asgi3.layer import LayerAccess
from telex.worker.asgi3.scopes import http_scope, raw_path, subprotocols, websocket_event
from telex.worker.metrics import WorkerMetrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_send_to_a_full_channel_waits_until_there_is_room():
    layer = InMemoryChannelLayer(capacity=1, process_local_capacity=1)

    async def scenario():
        metrics = WorkerMetrics()
        access = LayerAccess(layer, metrics)
        assert await access.send("reply.x!1", {"n": 1})
        second = asyncio.ensure_future(access.send("reply.x!1", {"n": 2}))
        for _ in range(5):  # the retry loop runs, and the send stays pending while the channel is full
            await asyncio.sleep(0.01)
        assert not second.done()
        assert layer.receive(["reply.x!"]) == ("reply.x!1", {"n": 1})
        assert await second is True
        assert layer.receive(["reply.x!"]) == ("reply.x!1", {"n": 2})
        assert b"\ntelex_worker_send_retries_total 0" not in metrics.render()
        assert b"\ntelex_worker_send_retries_total " in metrics.render()

    asyncio.run(scenario())


def test_an_application_send_awaits_the_layer(monkeypatch):
    """A response body sent into a full reply channel: ``send`` returns only once it went."""
    layer = InMemoryChannelLayer(capacity=1, process_local_capacity=1)
    sent = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("no lifespan")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(5):
            await send({"type": "http.response.body", "body": b"%d" % n, "more_body": n < 4})
            sent.append(n)

    worker = Asgi3Worker(layer, app)
    worker.start()
    try:
        layer.send("http.request", {"reply_channel": "reply.x!1", "method": "GET", "path": "/", "body": b""})
        contents = []
        for _ in range(200):
            channel, message = layer.receive(["reply.x!"], block=True)
            if channel is None:
                continue
            # One message waits in the channel (capacity 1) and, now that this one was
            # taken, at most one more send may have completed: the rest are still waiting.
            assert len(sent) <= len(contents) + 2
            contents.append(message["content"])
            if not message["more_content"]:
                break
    finally:
        worker.stop(5.0)
    assert contents == [b"0", b"1", b"2", b"3", b"4"] and sent == [0, 1, 2, 3, 4]


def test_scopes_from_asgi1_messages():
    message = {
        "reply_channel": "r!1",
        "http_version": "1.1",
        "method": "post",
        "scheme": "https",
        "path": "/caf\u00e9 50%",
        "query_string": b"a=1",
        "root_path": "/mount",
        "headers": [[b"host", b"example.com"]],
        "client": ["10.0.0.1", 5000],
        "server": ["10.0.0.2", 443],
        "body": b"",
        "body_channel": None,
    }
    state = {"db": "pool"}
    scope = http_scope(message, state)
    # ASGI 3's path includes root_path; ASGI 1's, like WSGI's PATH_INFO, follows it.
    assert (scope["path"], scope["root_path"]) == ("/mount/caf\u00e9 50%", "/mount")
    assert scope["method"] == "POST" and scope["raw_path"] == b"/mount/caf%C3%A9%2050%25"
    assert scope["client"] == ("10.0.0.1", 5000) and scope["headers"] == [(b"host", b"example.com")]
    assert scope["state"] == state and scope["state"] is not state
    assert raw_path("/a;b=c/d@e") == b"/a;b=c/d@e"


def test_subprotocols_are_read_from_every_header_in_order():
    headers = [(b"Sec-WebSocket-Protocol", b"a, b"), (b"x", b"y"), (b"sec-websocket-protocol", b"c")]
    assert subprotocols(headers) == ["a", "b", "c"]


def test_a_message_with_a_code_on_a_socket_channel_is_its_disconnect():
    assert websocket_event({"code": 1001, "path": "/", "order": 3}) == {
        "type": "websocket.disconnect",
        "code": 1001,
    }
    assert websocket_event({"text": "hi", "bytes": None, "order": 1}) == {
        "type": "websocket.receive",
        "bytes": None,
        "text": "hi",
    }


async def _async_app(scope, receive, send):
    return None


class _CallableApp:
    async def __call__(self, scope, receive, send):
        return None


def test_async_functions_and_objects_with_an_async_call_are_applications():
    assert load_application(_async_app) is _async_app
    app = _CallableApp()
    assert load_application(app) is app


@pytest.mark.parametrize("thing", [_CallableApp, [], lambda scope, receive, send: None, "no_colon_here"])
def test_anything_else_is_refused(thing):
    with pytest.raises(ApplicationError):
        load_application(thing)


def test_the_asgi3_worker_imports_no_server_protocol_or_asgiref_code():
    code = (
        "import sys, telex.worker.asgi3, telex.cli.worker\n"
        "server = ('telex.server', 'telex.protocols', 'twisted', 'asgiref')\n"
        "loaded = [m for m in sys.modules if m.startswith(server)]\n"
        "assert not loaded, loaded\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=30)
