"""Channels 4's side of group-fanout: Telex's ``/chat`` as a Channels consumer.

Served by ``uvicorn benchmarks.peers.channels4.fanout_asgi:application`` in
the Channels 4 virtualenv (benchmarks/envs.py). A WebSocket on ``/chat``
joins the group ``chat`` before it is accepted, and each message it sends is
``group_send`` to that group, which every member writes back to its socket.
The channel layer comes from the environment: ``BENCH_CHANNELS_LAYER``
(``core``: channels_redis's ``RedisChannelLayer``; ``pubsub``: its
``RedisPubSubChannelLayer``) on ``BENCH_REDIS_URL``, each with its defaults.
"""

from __future__ import annotations

import os

import django
from django.conf import settings

BACKENDS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

settings.configure(
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": BACKENDS[os.environ["BENCH_CHANNELS_LAYER"]],
            "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
        }
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402 - needs settings
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        # Join before accepting, as Telex's /chat does.
        await self.channel_layer.group_add("chat", self.channel_name)
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send("chat", {"type": "chat.message", "text": text_data})

    async def chat_message(self, event: dict) -> None:
        await self.send(text_data=event["text"])

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard("chat", self.channel_name)


application = ProtocolTypeRouter({"websocket": URLRouter([path("chat", ChatConsumer.as_asgi())])})
