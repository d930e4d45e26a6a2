"""The upper bound: Twisted answering by itself, with no channel layer.

HTTP hello world from ``twisted.web`` and, on the same port, WebSocket echo
and group chat from Autobahn. No Twisted-based server that hops through a
layer can beat this on the same machine.
"""

from __future__ import annotations

import argparse
import sys

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from twisted.web import resource, server


class Hello(resource.Resource):
    isLeaf = True

    def render(self, request):
        if request.path == b"/upload":
            size = len(request.content.read())
            request.setHeader(b"content-type", b"text/plain")
            return str(size).encode()
        request.setHeader(b"content-type", b"text/plain")
        return b"Hello world"


class Peer(WebSocketServerProtocol):
    chat: set[Peer] = set()

    def onOpen(self) -> None:
        if self.http_request_path == "/chat":
            Peer.chat.add(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.http_request_path == "/chat":
            for member in list(Peer.chat):
                member.sendMessage(payload, isBinary)
        else:
            self.sendMessage(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        Peer.chat.discard(self)


class Root(resource.Resource):
    def __init__(self) -> None:
        super().__init__()
        factory = WebSocketServerFactory()
        factory.protocol = Peer
        ws = WebSocketResource(factory)
        self.putChild(b"echo", ws)
        self.putChild(b"chat", ws)
        self.hello = Hello()

    def getChild(self, path: bytes, request):
        return self.hello


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    site = server.Site(Root())
    site.noisy = False
    reactor.listenTCP(args.port, site, interface="127.0.0.1", backlog=1024)
    print(f"listening on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
