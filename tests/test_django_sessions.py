"""Sessions and auth of ``telex.django`` end to end: ``telex serve`` on Redis and two Django worker processes.

Worker A consumes ``websocket.connect`` and ``http.request``, worker B every
other channel (two threads), so a value a connect consumer puts in the
channel session is read by another process. The login comes from Django's
own ``login()`` in a view (tapp/views_http.py); consumers are in
tapp/consumers_sessions.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.support.django_deploy import Deployment, migrate, receive_json

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

FRONT = ["websocket.connect", "http.request"]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("django-sessions") / "db.sqlite3")
    migrate(path)
    return path


@pytest.fixture(scope="module")
def deployment(redis_server, database) -> Iterator[Deployment]:
    workers = [{"only": FRONT, "threads": 1}, {"exclude": FRONT, "threads": 2}]
    with Deployment(redis_server.url, database, workers) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def ann_session(deployment) -> str:
    return deployment.log_in("ann")


def session_rows(database: str, key: str) -> int:
    with sqlite3.connect(database, timeout=20) as db:
        return db.execute("SELECT count(*) FROM django_session WHERE session_key = ?", (key,)).fetchone()[0]


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_channel_session_is_shared_by_worker_processes_and_deleted_at_disconnect(deployment, database):
    pid_a, pid_b = deployment.worker_pids
    with connect(deployment.ws_url("/sessions/chan/?name=ann"), open_timeout=10) as socket:
        socket.send("hello")
        reply = receive_json(socket)
        assert reply["name"] == "ann"
        assert (reply["connect_pid"], reply["pid"]) == (pid_a, pid_b)
        key = reply["session_key"]
        assert key.startswith("chn") and len(key) == 32
        assert session_rows(database, key) == 1  # in the project's session engine (the database)

        # A consumer that raises: its session change and its send are both discarded.
        socket.send("boom")
        socket.send("again")
        reply = receive_json(socket)
        assert reply["name"] == "ann"
    wait_until(lambda: session_rows(database, key) == 0)
    assert "boom (expected by the test)" in deployment.output()


def test_websocket_user_from_the_login_cookie_kept_in_the_channel_session(deployment, ann_session):
    pid_a, pid_b = deployment.worker_pids
    headers = {"Cookie": f"other=1; sessionid={ann_session}"}
    with connect(deployment.ws_url("/sessions/user/"), additional_headers=headers, open_timeout=10) as socket:
        assert receive_json(socket) == {"pid": pid_a, "user": "ann", "http_session": True}
        socket.send("who")  # no cookie on frames: the user comes from the channel session, in worker B
        assert receive_json(socket) == {"pid": pid_b, "user": "ann"}


def test_anonymous_without_a_session_or_with_an_unknown_one(deployment):
    with connect(deployment.ws_url("/sessions/user/"), open_timeout=10) as socket:
        assert receive_json(socket)["user"] == "anonymous"
        assert receive_json_after(socket, "who")["user"] == "anonymous"
    headers = {"Cookie": "sessionid=nosuchsessionkey12345"}
    with connect(deployment.ws_url("/sessions/user/"), additional_headers=headers, open_timeout=10) as socket:
        reply = receive_json(socket)
        assert (reply["user"], reply["http_session"]) == ("anonymous", True)


def receive_json_after(socket, text: str) -> dict:
    socket.send(text)
    return receive_json(socket)


def test_session_key_query_parameter_and_transfer_user(deployment, ann_session):
    with connect(deployment.ws_url(f"/sessions/user/?session_key={ann_session}"), open_timeout=10) as socket:
        assert receive_json(socket)["user"] == "ann"
        assert receive_json_after(socket, "who")["user"] == "ann"
    # transfer_user() called by the consumer itself, on a handshake that carries the cookie.
    headers = {"Cookie": f"sessionid={ann_session}"}
    with connect(
        deployment.ws_url("/sessions/transfer/"), additional_headers=headers, open_timeout=10
    ) as socket:
        assert receive_json_after(socket, "who")["user"] == "ann"
    with connect(deployment.ws_url("/sessions/transfer/"), open_timeout=10) as socket:
        assert receive_json_after(socket, "who")["user"] == "anonymous"


def test_http_session_user_on_http_request(deployment, ann_session):
    for path, cookie in [
        ("/sessions/whoami/", ann_session),
        (f"/sessions/whoami/?session_key={ann_session}", None),
    ]:
        status, _, body = deployment.http_get(path, cookie)
        assert status == 200, body
        assert json.loads(body)["user"] == "ann"
    status, _, body = deployment.http_get("/sessions/whoami/")
    assert json.loads(body)["user"] == "anonymous"


def test_http_session_comes_back_on_frames_with_channel_and_http_session(deployment):
    key = deployment.log_in("bob")
    for _ in range(2):
        status, _, body = deployment.http_get("/http/count/", key)
        assert status == 200, body
    headers = {"Cookie": f"sessionid={key}"}
    with connect(deployment.ws_url("/sessions/both/"), additional_headers=headers, open_timeout=10) as socket:
        reply = receive_json_after(socket, "count?")
        assert (reply["user"], reply["count"], reply["pid"]) == ("bob", 2, deployment.worker_pids[1])


def test_enforce_ordering_runs_frames_in_order_on_two_threads(deployment):
    frames = [f"f{index}" for index in range(40)]
    with connect(deployment.ws_url("/sessions/order/"), open_timeout=10) as socket:
        for frame in frames:
            socket.send(frame)
        replies = [receive_json(socket)["seen"] for _ in frames]
    # Each consumer saw every earlier frame's session write: no lost update, no reordering.
    assert replies == [frames[: index + 1] for index in range(len(frames))]
    assert "dropped" not in deployment.output()


# -- in this process: edges a socket cannot reach easily ---------------------------------------


@pytest.fixture
def django_here() -> None:
    from tests.django_setup import setup_django

    setup_django()


@pytest.fixture
def file_sessions(django_here, tmp_path):
    from django.test import override_settings

    with override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.file", SESSION_FILE_PATH=str(tmp_path)
    ):
        yield tmp_path


def ws_message(channel: str, reply_channel: str = "telex.response.test!1", **content):
    from telex.django.message import Message
    from telex.layers import InMemoryChannelLayer

    return Message({"reply_channel": reply_channel, "path": "/", **content}, channel, InMemoryChannelLayer())


def test_channel_session_on_a_method_keeps_its_key_through_cycle_key(file_sessions):
    from telex.django.sessions import channel_session, session_for_reply_channel

    class Consumer:
        @channel_session
        def connect(self, message):
            message.channel_session["a"] = 1
            message.channel_session.cycle_key()  # as Django's auth may do on a rotated secret

        @channel_session
        def fail(self, message):
            message.channel_session["a"] = 2
            raise RuntimeError("discarded")

    consumer = Consumer()
    consumer.connect(ws_message("websocket.connect", order=0))
    with pytest.raises(RuntimeError):
        consumer.fail(ws_message("websocket.receive", order=1))
    session = session_for_reply_channel("telex.response.test!1")
    assert session["a"] == 1
    assert [path.name for path in file_sessions.iterdir()] == [f"sessionid{session.session_key}"]

    consumer.connect(ws_message("websocket.disconnect", order=2))
    assert list(file_sessions.iterdir()) == []


def test_channel_session_refuses_signed_cookies_and_messages_without_reply_channel(file_sessions):
    from django.test import override_settings

    from telex.django.sessions import channel_session

    consumer = channel_session(lambda message: None)
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
        with pytest.raises(ValueError, match="CHANNEL_SESSION_ENGINE"):
            consumer(ws_message("websocket.connect"))
    with pytest.raises(ValueError, match="reply_channel"):
        consumer(ws_message("websocket.connect", reply_channel=None))


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (b"http://[::1]:8000", True),
        (b"https://localhost", True),
        (b"http://evil.example", False),
        (None, False),
    ],
)
def test_origin_validator(django_here, origin, accepted):
    from telex.django.exceptions import DenyConnection
    from telex.django.security.websockets import allowed_hosts_only

    consumer = allowed_hosts_only(lambda message: "accepted")
    headers = [[b"host", b"127.0.0.1"]] + ([[b"origin", origin]] if origin else [])
    message = ws_message("websocket.connect", headers=headers)
    if accepted:
        assert consumer(message) == "accepted"
    else:
        with pytest.raises(DenyConnection):
            consumer(message)
