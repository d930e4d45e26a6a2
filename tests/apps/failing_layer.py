"""A memory layer that fails the way a network layer does, for ``telex_layer_errors_total``.

Served as ``telex serve tests.apps.failing_layer:channel_layer``: every send
to a body channel raises, and so does the first blocking receive (the reply
reader of the threaded bridge, ``--force-sync``). No consumer runs: the
server answers a request whose body it cannot send by itself (503).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from telex.layers import InMemoryChannelLayer


class LayerDown(Exception):
    """Not ChannelFull or MessageTooLarge: a layer error."""


class FailingLayer(InMemoryChannelLayer):
    def __init__(self) -> None:
        super().__init__()
        self.receive_failures = 1

    def send(self, channel: str, message: dict) -> None:
        if channel.startswith("http.request.body?"):
            raise LayerDown("the layer lost its connection")
        super().send(channel, message)

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[Any, Any]:
        if block and self.receive_failures:
            self.receive_failures -= 1
            raise LayerDown("the layer lost its connection")
        return super().receive(channels, block)


channel_layer = FailingLayer()
