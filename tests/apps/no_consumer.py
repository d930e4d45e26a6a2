"""A layer nobody consumes, with room for one request: for ChannelFull and timeouts."""

from telex.layers import InMemoryChannelLayer

channel_layer = InMemoryChannelLayer(capacity=1)
