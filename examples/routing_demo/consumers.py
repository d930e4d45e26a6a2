"""Consumers for the S7 routing example."""

from telex.worker import JsonWebsocketConsumer, WebsocketConsumer
from telex.worker.http import send_response


def poll_form(message):
    send_response(message, "poll: POST here to vote\n")


def poll_vote(message):
    send_response(message, f"voted: {message['body'].decode()}\n")


def article(message, year):
    send_response(message, f"articles of {year}\n")


class RoomConsumer(WebsocketConsumer):
    """Mounted under /chat: the inner route sees /<room>/ and passes ``room``."""

    def connection_groups(self, room, **kwargs):
        return [f"room-{room}"]

    def receive(self, text=None, bytes=None, room=None, **kwargs):
        self.group_send(f"room-{room}", text=f"[{room}] {text}")


class JsonEcho(JsonWebsocketConsumer):
    def receive(self, content=None, **kwargs):
        self.send({"echo": content})
