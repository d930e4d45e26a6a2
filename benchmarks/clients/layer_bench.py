"""Redis channel layer micro-benchmark, for Telex's layer or asgi_redis 1.4.3.

Runs under whichever interpreter has the layer (asgi_redis lives in the
Daphne stack's virtualenv), so it imports nothing from the benchmarks
package. Protocol with the harness: print ``READY`` once set up and warmed
up; then, for each ``go`` line on stdin, measure and print one JSON line,
wait for another line, check deliveries and print them as a JSON line.
The harness reads Redis's ``INFO commandstats`` before the ``go`` and after
the result, so only the measured work is counted. Closing stdin ends it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

# Shaped like an http.request message, the commonest thing a layer carries.
MESSAGE = {
    "reply_channel": "http.response!abcdefghijkl",
    "http_version": "1.1",
    "method": "GET",
    "path": "/chat/room",
    "query_string": b"",
    "headers": [[b"host", b"127.0.0.1:8000"], [b"user-agent", b"bench"], [b"accept", b"*/*"]],
    "body": b"",
}


class RoundTrips:
    """No layer at all: one PING round trip per send and per receive (the floor).

    Any layer that needs a round trip to send and one to receive, one after
    the other, is slower than this on the same machine and Redis.
    """

    def __init__(self, port: int) -> None:
        import socket

        import hiredis

        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()
        self.ping = hiredis.pack_command((b"PING",))

    def round_trip(self) -> None:
        self.sock.sendall(self.ping)
        while self.reader.gets() is False:
            self.reader.feed(self.sock.recv(65536))

    def send(self, channel: str, message: dict) -> None:
        self.round_trip()

    def receive(self, channels: list[str], block: bool = False) -> tuple[str, dict]:
        self.round_trip()
        return channels[0], MESSAGE


def make_layer(impl: str, url: str, port: int, capacity: int):
    if impl == "floor":
        return RoundTrips(port)
    if impl == "telex":
        from telex.layers.redis import RedisChannelLayer

        return RedisChannelLayer.from_url(f"{url}?capacity={capacity}")
    from asgi_redis import RedisChannelLayer

    return RedisChannelLayer(hosts=[("127.0.0.1", port)], prefix="bench:", capacity=capacity)


def send_receive(layer, channel: str, receive_on: str, count: int, block: bool) -> None:
    send, receive, names = layer.send, layer.receive, [receive_on]
    for _ in range(count):
        send(channel, MESSAGE)
        got, _ = receive(names, block=block)
        if got is None:
            raise RuntimeError(f"message sent to {channel} was not received")


def stream(layer, channel: str, count: int) -> None:
    """A sender and a blocked receiver at once: throughput, not one round trip after another."""
    received = []

    def receive() -> None:
        got = 0
        while got < count:
            if layer.receive([channel], block=True)[0] is not None:
                got += 1
        received.append(got)

    receiver = threading.Thread(target=receive)
    receiver.start()
    send = layer.send
    for _ in range(count):
        send(channel, MESSAGE)
    receiver.join(300)
    if not received:
        raise RuntimeError("the receiver did not get every message in time")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["telex", "asgi_redis", "floor"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--case", choices=["worker", "reply", "group", "stream"], required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    # The stream case raises capacity on both sides so it measures the
    # layer rather than the sender's back-off on ChannelFull.
    layer = make_layer(args.impl, args.url, args.port, 100_000 if args.case == "stream" else 100)

    if args.case == "worker":
        # A worker's path: a normal channel, receive(block=True) with a message waiting.
        channel = receive_on = "http.request"
        block = True
    elif args.case == "reply":
        # An interface server's path: a process-specific reply channel, polled.
        channel, receive_on = "http.response!abcdefghijkl", "http.response!"
        block = False
    elif args.case == "stream":
        channel = receive_on = "bench.stream"
        block = True
    if args.case in ("worker", "reply", "stream"):
        send_receive(layer, channel, receive_on, 200, block)
    else:
        members = [f"bench.member{index}" for index in range(args.members)]
        for member in members:
            layer.group_add("bench", member)

    print("READY", flush=True)
    # One round per "go" line, until stdin closes: the harness alternates
    # rounds between layers so a machine's drift hits both alike.
    while sys.stdin.readline().strip() == "go":
        start = time.perf_counter()
        if args.case in ("worker", "reply", "stream"):
            if args.case == "stream":
                stream(layer, channel, args.count)
            else:
                send_receive(layer, channel, receive_on, args.count, block)
            elapsed = time.perf_counter() - start
            result = {"messages": args.count, "seconds": elapsed, "msgs_per_s": args.count / elapsed}
        else:
            for _ in range(args.count):
                layer.send_group("bench", {"text": "hello"})
            elapsed = time.perf_counter() - start
            result = {
                "messages": args.count * args.members,
                "group_sends": args.count,
                "seconds": elapsed,
                "ms_per_group_send": elapsed / args.count * 1000,
                "msgs_per_s": args.count * args.members / elapsed,
            }
        print(json.dumps(result), flush=True)
        sys.stdin.readline()  # the harness has read the command counts
        check = {}
        if args.case == "group":
            # Drained after the count, so each round starts with empty queues.
            received = 0
            for member in members:
                while layer.receive([member], block=False)[0] is not None:
                    received += 1
            check["received"] = received
        print(json.dumps(check), flush=True)


if __name__ == "__main__":
    main()
