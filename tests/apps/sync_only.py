"""A foreign layer offering only the base ASGI API (send/receive/new_channel).

Like asgi_redis from a Channels 1.x install seen through Telex's eyes: no
extensions, a blocking receive, exceptions as attributes. The server must
reach it through its reader and sender threads. The application thread is
the raw HTTP app's consumer, reading the wrapped in-memory layer directly.
"""

from tests.apps import raw_http


class SyncOnlyLayer:
    extensions: list[str] = []

    def __init__(self, inner):
        self._inner = inner
        self.ChannelFull = inner.ChannelFull
        self.MessageTooLarge = inner.MessageTooLarge
        self.receive_calls = 0

    def send(self, channel, message):
        self._inner.send(channel, message)

    def receive(self, channels, block=False):
        self.receive_calls += 1
        return self._inner.receive(channels, block=block)

    def new_channel(self, pattern):
        return self._inner.new_channel(pattern)


channel_layer = SyncOnlyLayer(raw_http.channel_layer)
