"""A Telex server whose application also writes through Autobahn's send queue.

Autobahn queues a write (``sendData(sync=True)`` or a chop size) and pumps
its queue with ``WebSocketProtocol._send``; a subclass method of that name
would break the pump. The application here answers every message with one
queued write straight on the protocol, then a reply through the layer, so
a test sees both arrive, in order, over a real socket.

Run as ``python -m tests.apps.queued_writes PORT``; prints ``listening on``.
"""

from __future__ import annotations

import asyncio
import sys

from twisted.internet import asyncioreactor

asyncioreactor.install()

from twisted.internet import reactor  # noqa: E402

from telex.layers.memory import InMemoryChannelLayer  # noqa: E402
from telex.server.run import attach_websocket  # noqa: E402
from telex.server.server import Server  # noqa: E402
from telex.server.settings import ServerSettings  # noqa: E402


async def application(layer: InMemoryChannelLayer, server: Server) -> None:
    while True:
        channel, message = await layer.receive_async(["websocket.connect", "websocket.receive"])
        reply_channel = message["reply_channel"]
        if channel == "websocket.connect":
            layer.send(reply_channel, {"accept": True})
            continue
        for protocol in server.websocket.connections:
            protocol.sendMessage(b"queued: " + message["text"].encode(), sync=True)
        layer.send(reply_channel, {"text": "layer: " + message["text"]})


def main(port: int) -> None:
    layer = InMemoryChannelLayer()
    server = Server(ServerSettings(endpoints=[f"tcp:{port}:interface=127.0.0.1"]), layer)
    attach_websocket(server)

    tasks = []

    def started(_: object) -> None:
        tasks.append(asyncio.ensure_future(application(layer, server)))
        print(f"listening on http://127.0.0.1:{port}", flush=True)

    reactor.callWhenRunning(lambda: server.start().addCallback(started))
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
