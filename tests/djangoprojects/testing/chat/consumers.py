"""Consumers as a Channels 1.x project writes them."""

import json

from telex.django import Channel, Group
from telex.django.exceptions import WebsocketCloseException

from .models import Note


def connect(message):
    Group("chat").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def receive(message):
    Group("chat").send(
        {"text": json.dumps({"echo": message.content["text"], "path": message.content["path"]})}
    )


def close_with_code(message):
    raise WebsocketCloseException(4123)


def store_note(message):
    Note.objects.create(text=message.content["text"])
    message.reply_channel.send({"text": json.dumps({"notes": Note.objects.count()})})


def add_note(message):
    Note.objects.create(text=message.content["text"])
    Channel("notes.added").send({"text": message.content["text"]})


def ping(message):
    message.reply_channel.send({"pong": message.content.get("n", 0)})
