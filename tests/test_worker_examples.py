"""S1-S9 from examples/, driven through a real Worker on the in-memory layer.

The messages are those an interface server sends (spec www.rst); the
socket-level end-to-end runs are in tests/test_scenarios.py.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading

from telex.layers import InMemoryChannelLayer
from tests.worker_harness import FakeSocket, http_request, running_worker


def test_s1_hello_http_answers_with_the_decoded_path():
    with running_worker("examples.hello_http.routing:channel_routing") as worker:
        for path in ("/", "/a/b", "/caf\u00e9"):
            status, headers, body = http_request(worker.channel_layer, path)
            assert status == 200
            assert body.decode() == f"Hello world! You asked for {path}"
            assert [b"content-type", b"text/plain; charset=utf-8"] in headers


def test_s2_echo_sends_the_text_back_on_any_path():
    with running_worker("examples.echo.routing:channel_routing") as worker:
        socket = FakeSocket(worker.channel_layer, path="/chat/")
        assert socket.connect() == {"accept": True}  # the default connect consumer
        socket.send_text("hello world")
        assert socket.receive() == {"text": "hello world"}


def test_s3_every_socket_in_the_chat_receives_every_message():
    with running_worker("examples.chat.routing:channel_routing", threads=4) as worker:
        sockets = [FakeSocket(worker.channel_layer) for _ in range(5)]
        for socket in sockets:
            assert socket.connect() == {"accept": True}
        for index, sender in enumerate(sockets):
            sender.send_text(f"m{index}")
            for socket in sockets:
                assert socket.receive() == {"text": f"[user] m{index}"}
        sockets[0].disconnect()
        # Wait for the discard by observing the group, not by sleeping.
        for _ in range(500):
            if sockets[0].reply_channel not in worker.channel_layer.group_channels("chat"):
                break
            threading.Event().wait(0.01)
        sockets[1].send_text("after")
        for socket in sockets[1:]:
            assert socket.receive() == {"text": "[user] after"}
        assert sockets[0].receive_nothing()


def test_s4_production_is_the_chat_unchanged():
    from examples.chat.routing import channel_routing as chat
    from examples.production.routing import channel_routing

    assert channel_routing is chat


def test_s5_two_rooms_never_see_each_others_messages():
    with running_worker("examples.rooms.routing:channel_routing", threads=3) as worker:
        lobby = [FakeSocket(worker.channel_layer, path="/lobby/") for _ in range(2)]
        kitchen = [FakeSocket(worker.channel_layer, path="/kitchen/") for _ in range(2)]
        for socket in lobby + kitchen:
            assert socket.connect() == {"accept": True}
        lobby[0].send_text("in the lobby")
        kitchen[1].send_text("in the kitchen")
        for socket in lobby:
            assert socket.receive() == {"text": "in the lobby"}
        for socket in kitchen:
            assert socket.receive() == {"text": "in the kitchen"}
        for socket in lobby + kitchen:
            assert socket.receive_nothing(0.1)
        assert worker.channel_layer.store_get("telex.session:" + lobby[0].reply_channel) == {"room": "lobby"}


def test_s6_the_user_comes_from_the_cookie_or_the_session_key_parameter():
    with running_worker("examples.who_is_user.routing:channel_routing") as worker:
        layer = worker.channel_layer
        status, headers, body = http_request(layer, "/login", query_string=b"name=ann")
        assert status == 200
        cookie = dict(headers)[b"set-cookie"].decode()
        session_key = cookie.split(";")[0].partition("=")[2]
        status, _, body = http_request(layer, "/", headers=[[b"cookie", f"sessionid={session_key}".encode()]])
        assert body == b"Hello, ann!\n"

        by_cookie = FakeSocket(layer, headers=[[b"cookie", f"theme=dark; sessionid={session_key}".encode()]])
        by_query = FakeSocket(layer, query_string=f"session_key={session_key}".encode())
        anonymous = FakeSocket(layer)
        forged = FakeSocket(layer, query_string=b"session_key=ann.0000")
        assert by_cookie.connect() == {"accept": True}
        assert by_query.connect() == {"accept": True}
        assert anonymous.connect() == {"close": True}
        assert forged.connect() == {"close": True}
        by_query.send_text("hi")  # a later message: the user comes from the channel session
        assert by_cookie.receive() == {"text": "[ann] hi"}
        assert by_query.receive() == {"text": "[ann] hi"}


def test_s7_routing_by_path_method_include_and_class():
    with running_worker("examples.routing_demo.routing:channel_routing") as worker:
        layer = worker.channel_layer
        assert http_request(layer, "/poll/")[2] == b"poll: POST here to vote\n"
        assert http_request(layer, "/poll/", method="POST", body=b"yes")[2] == b"voted: yes\n"
        assert http_request(layer, "/articles/2017/")[2] == b"articles of 2017\n"
        assert http_request(layer, "/nowhere/")[0] == 404
        lobby = FakeSocket(layer, path="/chat/lobby/")
        other = FakeSocket(layer, path="/chat/other/")
        assert lobby.connect() == {"accept": True}
        assert other.connect() == {"accept": True}
        lobby.send_text("hello")
        assert lobby.receive() == {"text": "[lobby] hello"}
        assert other.receive_nothing(0.1)
        json_socket = FakeSocket(layer, path="/json/")
        assert json_socket.connect() == {"accept": True}
        json_socket.send_text('{"a": [1, 2]}')
        assert json_socket.receive() == {"text": '{"echo": {"a": [1, 2]}}'}


def test_s8_background_channel_stores_then_broadcasts(tmp_path, monkeypatch):
    database = tmp_path / "chat.sqlite3"
    monkeypatch.setenv("TELEX_EXAMPLE_DB", str(database))
    layer = InMemoryChannelLayer()
    routing = "examples.background.routing:channel_routing"
    # The S8 deployment: socket channels on one worker, the slow channel on another.
    with (
        running_worker(routing, layer=layer, exclude_channels=["chat-messages"]) as sockets_worker,
        running_worker(routing, layer=layer, only_channels=["chat-messages"]) as background_worker,
    ):
        assert "chat-messages" not in sockets_worker.channels
        assert background_worker.channels == ["chat-messages"]
        alice, bob = FakeSocket(layer, path="/lobby/"), FakeSocket(layer, path="/lobby/")
        assert alice.connect() == {"accept": True}
        assert bob.connect() == {"accept": True}
        for index in range(5):
            alice.send_text(f"message {index}")
        received = [bob.receive() for _ in range(5)]
        assert sorted(message["text"] for message in received) == [f"message {i}" for i in range(5)]
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT room, message FROM messages ORDER BY message").fetchall()
    assert rows == [("lobby", f"message {i}") for i in range(5)]


def test_s9_strict_ordering_runs_hundreds_of_shuffled_messages_in_order():
    layer = InMemoryChannelLayer(capacity=2000)
    with running_worker("examples.ordering.routing:channel_routing", layer=layer, threads=6):
        sockets = [FakeSocket(layer) for _ in range(4)]
        frames = 100
        for socket in sockets:
            socket.send_connect()
        # Everything arrives out of order, interleaved across sockets and
        # with the connects after some receives.
        messages = [s.receive_message(text=f"f{i}", order=i) for s in sockets for i in range(1, frames + 1)]
        random.Random(9).shuffle(messages)
        for message in messages:
            layer.send("websocket.receive", message)
        for socket in sockets:
            assert socket.receive() == {"accept": True}
            for index in range(1, frames + 1):
                assert socket.receive() == {"text": f"{index} f{index}"}


def test_s9_slight_ordering_connect_always_runs_before_receive():
    with running_worker("examples.ordering.routing:slight_routing", threads=6) as worker:
        sockets = [FakeSocket(worker.channel_layer) for _ in range(30)]
        # As a server does: frames go on the channel once the accept arrived.
        for socket in sockets:
            assert socket.connect() == {"accept": True}
            socket.send_text("x")
        for socket in sockets:
            assert socket.receive() == {"text": "connected x"}


def test_s9_a_message_that_never_arrives_is_skipped_after_the_timeout_and_logged(caplog):
    caplog.set_level(logging.WARNING, logger="telex.worker")
    with running_worker("examples.ordering.routing:channel_routing", ordering_timeout=0.2) as worker:
        socket = FakeSocket(worker.channel_layer)
        assert socket.connect() == {"accept": True}
        for order in (1, 2, 4, 5):  # order 3 is lost
            message = socket.receive_message(text=f"f{order}", order=order)
            worker.channel_layer.send("websocket.receive", message)
        assert socket.receive() == {"text": "1 f1"}
        assert socket.receive() == {"text": "2 f2"}
        assert socket.receive() == {"text": "3 f4"}
        assert socket.receive() == {"text": "4 f5"}
    skips = [r.getMessage() for r in caplog.records if "never arrived" in r.getMessage()]
    assert skips == [
        f"ordering: {socket.reply_channel} waited 0.2 s for message order 3, "
        "which never arrived; skipped to order 4"
    ]
