"""Class-based consumers, close and deny, and origin checks of ``telex.django``, end to end.

``telex serve`` on Redis and one Django worker process (two threads); the
consumers are in tests/djangoproject/tapp/consumers_generic.py, mounted at /generic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.django_deploy import Deployment, migrate, receive_json

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def deployment(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    database = str(tmp_path_factory.mktemp("django-generic") / "db.sqlite3")
    migrate(database)
    with Deployment(redis_server.url, database, [{"threads": 2}]) as deployed:
        yield deployed


def close_code(socket) -> int:
    """Wait for the server to close ``socket``; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    return closed.value.rcvd.code


def test_websocket_consumer_groups_and_close(deployment):
    url = deployment.ws_url
    with (
        connect(url("/generic/room/blue/"), open_timeout=10) as ann,
        connect(url("/generic/room/blue/"), open_timeout=10) as bob,
        connect(url("/generic/room/red/"), open_timeout=10) as eve,
    ):
        ann.send("hi")
        assert ann.recv(timeout=10) == "blue: hi"
        assert bob.recv(timeout=10) == "blue: hi"
        eve.send("alone")
        assert eve.recv(timeout=10) == "red: alone"  # the blue frame never reached red

        bob.send("bye")  # self.close(4002)
        assert close_code(bob) == 4002


def test_websocket_close_exception_closes_with_its_code(deployment):
    with connect(deployment.ws_url("/generic/room/green/"), open_timeout=10) as socket:
        socket.send("close:4123")  # raise WebsocketCloseException(4123)
        assert close_code(socket) == 4123


def test_json_consumer_with_channel_session_from_as_route(deployment):
    with connect(deployment.ws_url("/generic/counter/"), open_timeout=10) as socket:
        for expected in (1, 2, 3):
            socket.send(json.dumps({"n": expected}))
            reply = receive_json(socket)
            assert reply["echo"] == {"n": expected}
            assert reply["frames"] == expected
        assert reply["path"] == "/generic/counter/"


def test_http_user_and_strict_ordering_on_a_class(deployment):
    headers = {"Cookie": f"sessionid={deployment.log_in('carol')}"}
    with connect(deployment.ws_url("/generic/who/"), additional_headers=headers, open_timeout=10) as socket:
        assert receive_json(socket) == {"connected": "carol"}
        for n in range(25):
            socket.send(json.dumps({"n": n}))
        replies = [receive_json(socket) for _ in range(25)]
    assert [reply["n"] for reply in replies] == list(range(25))
    assert {reply["user"] for reply in replies} == {"carol"}


def test_demultiplexer_streams_and_multiplexer(deployment):
    url = deployment.ws_url("/generic/demux/")
    with connect(url, open_timeout=10) as first, connect(url, open_timeout=10) as second:
        for socket in (first, second):
            greetings = [receive_json(socket), receive_json(socket)]
            assert greetings == [
                {"stream": "one", "payload": {"connected": "one"}},
                {"stream": "two", "payload": {"connected": "two"}},
            ]
        first.send(json.dumps({"stream": "two", "payload": {"x": 1}}))
        assert receive_json(first) == {"stream": "two", "payload": {"echo": {"x": 1}, "stream": "two"}}

        first.send(json.dumps({"stream": "one", "payload": {"send_directly": True}}))
        assert receive_json(first) == {
            "stream": "one",
            "payload": {"refused": "SendNotAvailableOnDemultiplexer"},
        }

        first.send(json.dumps({"stream": "one", "payload": {"broadcast": "to all"}}))
        for socket in (first, second):
            assert receive_json(socket) == {"stream": "one", "payload": {"broadcast": "to all"}}


def test_deny_connection_is_a_403(deployment):
    with pytest.raises(InvalidStatus) as refused:
        connect(deployment.ws_url("/generic/deny/"), open_timeout=10)
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin", [None, "http://evil.example", "http://127.0.0.1.evil.example", "http://[::2]"]
)
def test_origin_validator_refuses_other_origins(deployment, origin):
    with pytest.raises(InvalidStatus) as refused:
        connect(deployment.ws_url("/generic/origin/"), origin=origin, open_timeout=10)
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost", "[::1]:8000"])
def test_origin_validator_accepts_allowed_hosts(deployment, host):
    origin = "http://" + host.format(port=deployment.server.port)
    with connect(deployment.ws_url("/generic/origin/"), origin=origin, open_timeout=10) as socket:
        socket.close()
