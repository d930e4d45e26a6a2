"""Instructions for one HTTP request through Telex's server, for callgrind.

Serves N keep-alive HTTP/1.1 requests in one process: a Telex server on
``memory://``, an application on the reactor answering ``http.request``
(no worker threads, so the count is deterministic), and a client on the
same reactor. Run it under callgrind for two values of N; the difference
divided by the difference in N is one request, start-up cancelled out::

    for n in 100 600; do
      PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
        python -m benchmarks.clients.http_instructions $n
    done   # per request = (Ir(600) - Ir(100)) / 500
"""

from __future__ import annotations

import asyncio
import sys

from twisted.internet import asyncioreactor

asyncioreactor.install()

from twisted.internet import protocol, reactor  # noqa: E402

from telex.layers.memory import InMemoryChannelLayer  # noqa: E402
from telex.server.server import Server  # noqa: E402
from telex.server.settings import ServerSettings  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
BODY = b"Hello world"


async def application(layer: InMemoryChannelLayer) -> None:
    while True:
        _, message = await layer.receive_async(["http.request"])
        reply = {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": BODY}
        layer.send(message["reply_channel"], reply)


class Client(protocol.Protocol):
    def __init__(self, requests: int) -> None:
        self.left = requests
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(REQUEST)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if not self.received.endswith(BODY):
            return
        self.received = b""
        self.left -= 1
        if self.left:
            self.transport.write(REQUEST)
        else:
            self.transport.loseConnection()
            reactor.stop()


def main(requests: int) -> None:
    layer = InMemoryChannelLayer()
    server = Server(ServerSettings(endpoints=["tcp:0:interface=127.0.0.1"]), layer)
    tasks = []

    def started(_: object) -> None:
        tasks.append(asyncio.ensure_future(application(layer)))
        port = server.ports[0].getHost().port
        protocol.ClientCreator(reactor, Client, requests).connectTCP("127.0.0.1", port)

    reactor.callWhenRunning(lambda: server.start().addCallback(started))
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
