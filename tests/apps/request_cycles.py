"""Serve HTTP requests in-process with the garbage collector off; print how many
finished requests are still alive (kept by reference cycles).

docs/server.md tunes the collector on the measurement that the server makes
almost no cyclic garbage; a request that only the collector can free would
undo that. Run as ``python -m tests.apps.request_cycles N``.
"""

from __future__ import annotations

import asyncio
import gc
import sys

from twisted.internet import asyncioreactor

asyncioreactor.install()

from twisted.internet import protocol, reactor  # noqa: E402

from telex.layers.memory import InMemoryChannelLayer  # noqa: E402
from telex.protocols.http import AsgiRequest  # noqa: E402
from telex.server.server import Server  # noqa: E402
from telex.server.settings import ServerSettings  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def application(layer: InMemoryChannelLayer) -> None:
    while True:
        _, message = await layer.receive_async(["http.request"])
        layer.send(message["reply_channel"], {"status": 200, "content": b"ok"})


class Client(protocol.Protocol):
    def __init__(self, requests: int) -> None:
        self.left = requests
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(REQUEST)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if not self.received.endswith(b"\r\n\r\nok"):
            return
        self.received = b""
        self.left -= 1
        if self.left:
            self.transport.write(REQUEST)
        else:
            reactor.stop()


def main(requests: int) -> None:
    layer = InMemoryChannelLayer()
    server = Server(ServerSettings(endpoints=["tcp:0:interface=127.0.0.1"]), layer)
    tasks = []

    def started(_: object) -> None:
        tasks.append(asyncio.ensure_future(application(layer)))
        port = server.ports[0].getHost().port
        protocol.ClientCreator(reactor, Client, requests).connectTCP("127.0.0.1", port)

    gc.collect()
    gc.disable()
    reactor.callWhenRunning(lambda: server.start().addCallback(started))
    reactor.run()
    print(sum(isinstance(thing, AsgiRequest) for thing in gc.get_objects()), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
