"""The layer capabilities the server uses are resolved once, from their Protocols."""

from __future__ import annotations

from telex.layers.base import ChannelFull
from telex.layers.memory import InMemoryChannelLayer
from telex.server.bridge import make_bridge
from telex.server.capabilities import DEFAULT_GROUP_EXPIRY, LayerCapabilities


class ForeignLayer:
    """A Channels 1.x era layer: the spec's core API and its own exceptions."""

    class ChannelFull(Exception):
        pass

    class MessageTooLarge(Exception):
        pass

    def send(self, channel: str, message: dict) -> None:
        pass

    def receive(self, channels: list[str], block: bool = False) -> tuple[None, None]:
        return None, None


def test_a_foreign_layer_offers_only_the_core_and_gets_the_threaded_bridge():
    layer = ForeignLayer()
    capabilities = LayerCapabilities.of(layer)
    assert capabilities.channel_full is ForeignLayer.ChannelFull
    assert capabilities.message_too_large is ForeignLayer.MessageTooLarge
    assert not capabilities.in_process
    assert capabilities.send_async is capabilities.receive_async is None
    assert capabilities.channel_statistics is capabilities.check_data_lost_async is None
    assert capabilities.group_expiry == DEFAULT_GROUP_EXPIRY
    bridge = make_bridge(layer)
    try:
        assert bridge.kind == "threaded"
        bridge.probe()
    finally:
        bridge.stop()


def test_the_memory_layer_is_in_process_with_statistics_and_gets_the_inline_bridge():
    layer = InMemoryChannelLayer(group_expiry=42)
    capabilities = LayerCapabilities.of(layer)
    assert capabilities.in_process and capabilities.channel_full is ChannelFull
    assert capabilities.receive_async is not None and capabilities.channel_statistics is not None
    assert capabilities.group_expiry == 42
    assert make_bridge(layer).kind == "inline"


def test_threaded_is_chosen_whatever_the_layer_offers_when_asked():
    bridge = make_bridge(InMemoryChannelLayer(), threaded=True)
    try:
        assert bridge.kind == "threaded" and bridge.capabilities.in_process
    finally:
        bridge.stop()
