"""WebSockets that outlive their worker: ``telex worker --asgi`` stops or dies, the socket moves.

Real processes and sockets: a redis-server, ``telex serve`` and two
``telex worker --asgi`` processes. The client never sees a close: frames it
sends while its worker stops are handed back and reach the next worker in
order; a worker killed outright is noticed by its missing heartbeats.
"""

from __future__ import annotations

import contextlib
import json
import signal

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.processes import TelexProcess, TelexServer
from tests.support.ws import ws_url

pytestmark = pytest.mark.redis

PLAIN = "tests.apps.asgi3_plain:application"


def asgi_worker(url: str, *extra: str) -> TelexProcess:
    return TelexProcess(["worker", "--asgi", PLAIN, "--layer", url, *extra], ready="listening on")


def holder(ws, workers: list[TelexProcess]) -> TelexProcess:
    """The worker whose instance greeted this socket."""
    pid = int(ws.recv(timeout=10).removeprefix("hello "))
    return next(worker for worker in workers if worker.process.pid == pid)


def test_a_stopping_worker_hands_its_socket_to_another_without_a_close(redis_server):
    url = redis_server.url + "?prefix=resume1"
    with TelexServer(url) as server, asgi_worker(url) as first, asgi_worker(url) as second:
        with connect(ws_url(server, "/ws-pid"), open_timeout=10) as ws:
            old = holder(ws, [first, second])
            new = second if old is first else first
            ws.send("before")
            assert ws.recv(timeout=10) == f"{old.process.pid}: before"
            old.signal(signal.SIGTERM)
            # Sent while the worker stops: each is processed once, in order, by one worker or the other.
            for n in range(50):
                ws.send(f"m{n}")
            echoes = [ws.recv(timeout=20) for _ in range(50)]
            assert [echo.split(": ")[1] for echo in echoes] == [f"m{n}" for n in range(50)]
            assert old.wait(20) == 0
            ws.send("after")
            assert ws.recv(timeout=10) == f"{new.process.pid}: after"
        old.wait_for("app heard websocket.disconnect 1012")
        server.wait_for("resumed WebSocket")


def test_a_killed_worker_is_noticed_by_its_heartbeat_and_its_socket_resumes(redis_server):
    url = redis_server.url + "?prefix=resume2"
    with (
        TelexServer(url, "--worker-heartbeat-timeout", "1") as server,
        asgi_worker(url) as first,
        asgi_worker(url) as second,
    ):
        with connect(ws_url(server, "/ws-pid"), open_timeout=10) as ws:
            old = holder(ws, [first, second])
            new = second if old is first else first
            old.signal(signal.SIGKILL)
            old.wait(10)
            server.wait_for(r"worker telex\.asgi3\.\w+! sent no heartbeat", timeout=10)
            server.wait_for("resumed WebSocket", timeout=10)
            ws.send("still here")
            assert ws.recv(timeout=10) == f"{new.process.pid}: still here"


def test_with_no_other_worker_the_socket_closes_1012_after_the_resume_timeout(redis_server):
    url = redis_server.url + "?prefix=resume3"
    with TelexServer(url, "--websocket-resume-timeout", "1") as server, asgi_worker(url) as worker:
        with connect(ws_url(server, "/ws-pid"), open_timeout=10) as ws:
            holder(ws, [worker])
            assert worker.stop() == 0, worker.output
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1012
        server.wait_for("did not resume on another worker within 1s; closing with 1012")


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("no-resume", None),  # the stopping worker closes it itself
        ("refuse-resume", "the application refused to resume WebSocket"),
    ],
)
def test_an_application_that_cannot_resume_gets_its_client_closed_1012(redis_server, query, logged):
    url = redis_server.url + "?prefix=resume5" + query[:2]
    with TelexServer(url) as server, asgi_worker(url) as first, asgi_worker(url) as second:
        with connect(ws_url(server, f"/ws-pid?{query}"), open_timeout=10) as ws:
            old = holder(ws, [first, second])
            old.signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=20)
        assert closed.value.rcvd.code == 1012
        if logged:
            server.wait_for(logged)
        assert old.wait(20) == 0
        assert "resumed WebSocket" not in server.output


def test_a_starlette_websocket_moves_to_the_worker_started_for_the_deploy(redis_server):
    """A rolling deploy of a Starlette app: the socket opens on the old worker, a new one starts,
    the old one stops; the endpoint runs again on the new one and every frame is echoed once, in order."""
    pytest.importorskip("starlette")
    url = redis_server.url + "?prefix=resume6"
    app = "tests.apps.asgi3_starlette:app"
    with TelexServer(url) as server, TelexProcess(["worker", "--asgi", app, "--layer", url]) as old:
        with connect(ws_url(server, "/chat"), subprotocols=["chat.v1"], open_timeout=10) as ws:
            ws.send("on the old worker")
            assert ws.recv(timeout=10) == "starlette: on the old worker"
            with TelexProcess(["worker", "--asgi", app, "--layer", url]):
                old.signal(signal.SIGTERM)
                for n in range(20):
                    ws.send(f"m{n}")
                assert [ws.recv(timeout=20) for _ in range(20)] == [f"starlette: m{n}" for n in range(20)]
                assert old.wait(20) == 0
                ws.send("on the new worker")
                assert ws.recv(timeout=10) == "starlette: on the new worker"
                assert ws.subprotocol == "chat.v1"
        server.wait_for("resumed WebSocket")


CHAT = "tests.apps.asgi3_channels4:application"


def chat_worker(url: str, env: dict) -> TelexProcess:
    return TelexProcess(["worker", "--asgi", CHAT, "--layer", url], ready="listening on", env=env)


def test_a_channels_4_room_keeps_every_message_while_a_worker_stops(redis_server):
    """The consumers' channel names and group memberships survive the move: messages sent to the
    room while half its sockets change worker reach every socket, in order, and none sees a close."""
    pytest.importorskip("channels")
    url = redis_server.url + "?prefix=resumechat"
    env = {"CHAT_LAYER": redis_server.url, "CHAT_PREFIX": "resumechat"}
    with (
        TelexServer(url) as server,
        chat_worker(url, env) as first,
        chat_worker(url, env) as second,
        contextlib.ExitStack() as stack,
    ):
        room, pids = [], []
        for _ in range(8):
            ws = stack.enter_context(connect(ws_url(server, "/chat/room/"), open_timeout=10))
            room.append(ws)
            pids.append(json.loads(ws.recv(timeout=10))["pid"])
        assert set(pids) == {first.process.pid, second.process.pid}
        sender = room[pids.index(second.process.pid)]
        for n in range(10):
            sender.send(json.dumps({"n": n}))
        first.signal(signal.SIGTERM)
        for n in range(10, 40):
            sender.send(json.dumps({"n": n}))
        for ws in room:
            got = [json.loads(ws.recv(timeout=20)) for _ in range(40)]
            assert [message["n"] for message in got] == list(range(40))
        assert first.wait(20) == 0
        sender.send(json.dumps({"n": 40}))
        for ws in room:
            assert json.loads(ws.recv(timeout=10)) == {"n": 40, "type": None, "pid": second.process.pid}
