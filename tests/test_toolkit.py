"""The consumer toolkit: Message, Channel/Group, sessions, ordering, class consumers, responses."""

from __future__ import annotations

import importlib.util
import json

import pytest

from telex import Channel, Group
from telex.layers import InMemoryChannelLayer
from telex.routing import route, route_class
from telex.sessions import (
    channel_session,
    channel_session_user,
    channel_session_user_from_http,
    enforce_ordering,
    http_session_key,
    set_user_loader,
)
from telex.worker import JsonWebsocketConsumer, Message, WebsocketConsumer
from tests.worker_harness import FakeSocket, running_worker

HAS_REDIS_LAYER = importlib.util.find_spec("telex.layers.redis") is not None


@pytest.fixture(params=["memory", "redis"])
def layer(request):
    """Every layer offering telex.store / telex.ordering must serve the toolkit."""
    if request.param == "memory":
        return InMemoryChannelLayer()
    if not HAS_REDIS_LAYER:
        pytest.skip("the Redis layer is not in this build")
    from telex.layers import get_channel_layer

    redis_layer = get_channel_layer(request.getfixturevalue("redis_server").url)
    redis_layer.flush()
    return redis_layer


# -- Message, Channel, Group -----------------------------------------------------


def test_message_exposes_content_channel_reply_channel_and_layer():
    layer = InMemoryChannelLayer()
    message = Message({"reply_channel": "websocket.send.a!b", "path": "/"}, "websocket.connect", layer)
    assert message["path"] == "/"
    assert message.get("missing", 1) == 1
    assert message.content == {"reply_channel": "websocket.send.a!b", "path": "/"}
    assert message.channel == "websocket.connect"
    assert message.reply_channel == Channel("websocket.send.a!b", channel_layer=layer)
    assert message.channel_layer is layer
    assert Message({}, "custom", layer).reply_channel is None


def test_channel_send_outside_a_consumer_sends_at_once():
    layer = InMemoryChannelLayer()
    Channel("custom", channel_layer=layer).send({"a": 1})
    assert layer.receive(["custom"]) == ("custom", {"a": 1})


def test_channel_without_a_layer_outside_a_consumer_or_worker_is_an_error():
    with pytest.raises(RuntimeError, match="no channel layer"):
        Channel("custom")


def test_send_accepts_only_dicts():
    with pytest.raises(TypeError, match="only send dicts"):
        Channel("custom", channel_layer=InMemoryChannelLayer()).send("text")


def test_group_add_discard_and_send():
    layer = InMemoryChannelLayer()
    group = Group("room", channel_layer=layer)
    group.add("proc!one")
    group.add(Channel("proc!two", channel_layer=layer))
    group.discard("proc!one")
    group.send({"text": "hi"})
    assert group.channel_names() == ["proc!two"]
    assert layer.receive(["proc!"]) == ("proc!two", {"text": "hi"})
    assert layer.receive(["proc!"]) == (None, None)


def test_a_held_message_is_copied_when_sent():
    def consumer(message):
        content = {"text": "before"}
        message.reply_channel.send(content)
        content["text"] = "after"

    with running_worker([route("websocket.receive", consumer)]) as worker:
        socket = FakeSocket(worker.channel_layer)
        socket.send_text("go")
        assert socket.receive() == {"text": "before"}


def test_a_held_message_of_a_wrong_type_raises_in_the_consumer(caplog):
    def consumer(message):
        message.reply_channel.send({"text": {1, 2}})

    with running_worker([route("websocket.receive", consumer)]) as worker:
        socket = FakeSocket(worker.channel_layer)
        socket.send_text("go")
        assert socket.receive_nothing(0.1)
    assert "is of type set" in caplog.text


# -- channel_session -----------------------------------------------------------


def _connect(layer, reply_channel="websocket.send.s!1", channel="websocket.connect", **content):
    return Message({"reply_channel": reply_channel, "path": "/", "order": 0, **content}, channel, layer)


def test_channel_session_keeps_values_for_one_connection(layer):
    @channel_session
    def store(message):
        message.channel_session["room"] = message["path"]

    @channel_session
    def read(message):
        return message.channel_session.get("room")

    store(_connect(layer, path="/lobby/"))
    assert read(_connect(layer, channel="websocket.receive")) == "/lobby/"
    assert read(_connect(layer, reply_channel="websocket.send.s!other", channel="websocket.receive")) is None


def test_channel_session_is_written_only_when_changed(layer):
    @channel_session
    def nothing(message):
        pass

    nothing(_connect(layer))
    assert layer.store_get("telex.session:websocket.send.s!1") is None


def test_channel_session_changes_of_a_consumer_that_raised_are_discarded(layer):
    @channel_session
    def broken(message):
        message.channel_session["half"] = True
        raise RuntimeError

    with pytest.raises(RuntimeError):
        broken(_connect(layer))
    assert layer.store_get("telex.session:websocket.send.s!1") is None


def test_channel_session_is_deleted_after_disconnect(layer):
    @channel_session
    def touch(message):
        message.channel_session["x"] = 1

    touch(_connect(layer))
    touch(_connect(layer, channel="websocket.disconnect", code=1000))
    assert layer.store_get("telex.session:websocket.send.s!1") is None


def test_channel_session_needs_a_reply_channel():
    @channel_session
    def consumer(message):
        pass

    with pytest.raises(ValueError, match="needs a message with a reply_channel"):
        consumer(Message({"room": "x"}, "chat-messages", InMemoryChannelLayer()))


# -- HTTP session hook -----------------------------------------------------------


def _handshake(headers=(), query_string=b""):
    content = {"reply_channel": "websocket.send.h!1", "path": "/", "order": 0}
    content.update(headers=[list(h) for h in headers], query_string=query_string)
    return Message(content, "websocket.connect", InMemoryChannelLayer())


def test_the_session_key_comes_from_the_sessionid_cookie():
    message = _handshake(headers=[(b"cookie", b'csrftoken=a; sessionid="abc123"; theme=dark')])
    assert http_session_key(message) == "abc123"


def test_the_session_key_query_parameter_comes_before_the_cookie():
    message = _handshake(
        headers=[(b"cookie", b"sessionid=from-cookie")], query_string=b"x=1&session_key=from-query"
    )
    assert http_session_key(message) == "from-query"


def test_no_session_key_means_an_anonymous_user():
    set_user_loader(None)

    @channel_session_user_from_http
    def connect(message):
        return message.user

    assert connect(_handshake(headers=[(b"cookie", b"other=1")])) is None


def test_the_user_found_at_connect_is_kept_for_later_messages():
    users = {"k1": {"id": 1, "name": "ann"}}
    set_user_loader(users.get)
    try:
        layer = InMemoryChannelLayer()

        @channel_session_user_from_http
        def connect(message):
            return message.user

        @channel_session_user
        def receive(message):
            return message.user

        content = {
            "reply_channel": "websocket.send.h!1",
            "path": "/",
            "order": 0,
            "query_string": b"session_key=k1",
        }
        assert connect(Message(content, "websocket.connect", layer)) == {"id": 1, "name": "ann"}
        later = {"reply_channel": "websocket.send.h!1", "path": "/", "order": 1, "text": "hi"}
        assert receive(Message(later, "websocket.receive", layer)) == {"id": 1, "name": "ann"}
    finally:
        set_user_loader(None)


def test_a_session_key_without_a_user_loader_is_an_error():
    set_user_loader(None)

    @channel_session_user_from_http
    def connect(message):
        pass

    with pytest.raises(RuntimeError, match="no user loader"):
        connect(_handshake(query_string=b"session_key=k"))


# -- enforce_ordering ------------------------------------------------------------


def _frame(layer, order, channel="websocket.receive"):
    return Message(
        {"reply_channel": "websocket.send.o!1", "path": "/", "order": order, "text": str(order)},
        channel,
        layer,
    )


def test_strict_ordering_parks_a_message_until_its_predecessors_ran(layer):
    ran = []
    consumer = enforce_ordering(lambda message: ran.append(message["order"]))
    consumer(_frame(layer, 1))  # parked in the layer: connect (order 0) has not run
    assert ran == []
    consumer(_frame(layer, 0, "websocket.connect"))
    assert ran == [0]
    # The advance requeued order 1 at the front of its channel.
    channel, content = layer.receive(["websocket.receive"], block=True)
    assert (channel, content["order"]) == ("websocket.receive", 1)
    consumer(Message(content, channel, layer))
    assert ran == [0, 1]


def test_strict_ordering_drops_a_message_whose_turn_has_passed(layer, caplog):
    ran = []
    consumer = enforce_ordering(lambda message: ran.append(message["order"]))
    consumer(_frame(layer, 0, "websocket.connect"))
    consumer(_frame(layer, 0, "websocket.connect"))
    assert ran == [0]
    assert "its turn has passed" in caplog.text


def test_strict_ordering_needs_order_and_reply_channel():
    consumer = enforce_ordering(lambda message: None)
    with pytest.raises(ValueError, match="integer 'order'"):
        consumer(Message({"room": "x"}, "chat-messages", InMemoryChannelLayer()))


def test_slight_ordering_is_accepted_and_changes_nothing():
    def consumer(message):
        pass

    assert enforce_ordering(slight=True)(consumer) is consumer
    assert enforce_ordering()(consumer) is not consumer


# -- class-based consumers -------------------------------------------------------


class Room(WebsocketConsumer):
    channel_session = True

    def connection_groups(self, room, **kwargs):
        return [f"room-{room}"]

    def connect(self, message, room, **kwargs):
        message.channel_session["room"] = room
        super().connect(message)

    def receive(self, text=None, bytes=None, room=None, **kwargs):
        self.group_send(f"room-{self.message.channel_session['room']}", text=f"{room}: {text}")


class Echo(JsonWebsocketConsumer):
    strict_ordering = True

    def receive(self, content=None, **kwargs):
        self.send({"echo": content})
        if content == "bye":
            self.close(4000)


def test_a_websocket_consumer_joins_its_groups_at_connect_and_leaves_at_disconnect():
    with running_worker([route_class(Room, path=r"^/(?P<room>\w+)/$")]) as worker:
        layer = worker.channel_layer
        ann, bob = FakeSocket(layer, path="/red/"), FakeSocket(layer, path="/red/")
        assert ann.connect() == {"accept": True}
        assert bob.connect() == {"accept": True}
        ann.send_text("hi")
        assert bob.receive() == {"text": "red: hi"}
        assert ann.receive() == {"text": "red: hi"}
        ann.disconnect()
        bob.send_text("alone?")
        assert bob.receive() == {"text": "red: alone?"}
        assert layer.group_channels("room-red") == [bob.reply_channel]


def test_a_json_consumer_decodes_and_encodes_frames_in_order():
    with running_worker([route_class(Echo)], threads=3) as worker:
        socket = FakeSocket(worker.channel_layer)
        assert socket.connect() == {"accept": True}
        for index in range(20):
            socket.send_text(json.dumps(index))
        socket.send_text('"bye"')
        for index in range(20):
            assert json.loads(socket.receive()["text"]) == {"echo": index}
        assert socket.receive() == {"text": '{"echo": "bye"}'}
        assert socket.receive() == {"close": 4000}
