"""Class-based consumers of tests/test_django_generic.py."""

import os

from telex.django.exceptions import DenyConnection, SendNotAvailableOnDemultiplexer, WebsocketCloseException
from telex.django.generic.websockets import (
    JsonWebsocketConsumer,
    WebsocketConsumer,
    WebsocketDemultiplexer,
    WebsocketMultiplexer,
)
from telex.django.security.websockets import allowed_hosts_only


class Room(WebsocketConsumer):
    """Everyone in /room/<name>/ gets every frame sent there; "close:<code>" closes with that code."""

    def connection_groups(self, room, **kwargs):
        return [f"room-{room}"]

    def receive(self, text=None, bytes=None, room=None, **kwargs):
        if text.startswith("close:"):
            raise WebsocketCloseException(int(text.partition(":")[2]))
        if text == "bye":
            self.close(4002)
            return
        self.group_send(f"room-{room}", text=f"{room}: {text}")


class Counter(JsonWebsocketConsumer):
    """Counts frames in the channel session (mounted with as_route(attrs={"channel_session": True}))."""

    def connect(self, message, **kwargs):
        message.channel_session["frames"] = 0
        super().connect(message, **kwargs)

    def receive(self, content, **kwargs):
        self.message.channel_session["frames"] += 1
        self.send({"echo": content, "frames": self.message.channel_session["frames"], "path": self.path})


class Who(JsonWebsocketConsumer):
    """http_user with strict ordering: the login at connect, the user on every frame."""

    http_user = True
    strict_ordering = True

    def connect(self, message, **kwargs):
        super().connect(message, **kwargs)
        self.send({"connected": self.message.user.username or "anonymous"})

    def receive(self, content, **kwargs):
        self.send({"user": self.message.user.username or "anonymous", "n": content["n"], "pid": os.getpid()})


class EchoStream(JsonWebsocketConsumer):
    """A stream of the demultiplexer: answers through its multiplexer; its own send() is refused."""

    def connect(self, message, multiplexer, **kwargs):
        multiplexer.send({"connected": multiplexer.stream})

    def receive(self, content, multiplexer, **kwargs):
        if content.get("send_directly"):
            try:
                self.send(content)
            except SendNotAvailableOnDemultiplexer:
                multiplexer.send({"refused": "SendNotAvailableOnDemultiplexer"})
            return
        if content.get("broadcast"):
            payload = {"broadcast": content["broadcast"]}
            WebsocketMultiplexer.group_send("demux-all", multiplexer.stream, payload)
            return
        multiplexer.send({"echo": content, "stream": multiplexer.stream})


class Demux(WebsocketDemultiplexer):
    groups = ["demux-all"]
    consumers = {"one": EchoStream, "two": EchoStream}


def deny(message):
    raise DenyConnection


@allowed_hosts_only
def origin_connect(message):
    message.reply_channel.send({"accept": True})
