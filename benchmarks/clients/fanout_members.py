"""One client process of group_fanout: up to ~15,000 group members.

``python -m benchmarks.clients.fanout_members --source 127.0.2.1 --ports P1,P2 --first F --count N``

A bare WebSocket client on asyncio protocols, not the ``websockets``
library: 100,000 sockets must fit in a few processes' memory and CPU. Each
socket binds ``--source`` (a loopback address of its own, so the run does
not exhaust one address's ~28,000 ephemeral ports, nor meet an earlier
case's TIME_WAIT) and connects to ``/chat`` on one of ``--ports``: socket
``F + i`` goes to ``ports[(F + i) % len(ports)]``, so the processes together
spread the members evenly over the servers.

Driven through stdin, one command a line, answered on stdout:
``arm R`` -> ``armed R``: count the text frames ``round R`` from now;
``send R`` -> ``sent R T``: the first socket still open sends ``round R`` (T, from
``time.perf_counter``, the system-wide monotonic clock, comparable between
processes); then, when every socket still open has it or ``--wait`` seconds have gone,
``result R {json}``. Pings are answered; no other frame is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import struct
import sys
import time
from typing import Any

from benchmarks.harness import raise_nofile

OPEN_AT_ONCE = 64
IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the port at connect(), per destination


class Member(asyncio.Protocol):
    """One socket: handshake, then unmasked server frames counted per round."""

    def __init__(self, owner: Members, port: int) -> None:
        self.owner = owner
        self.port = port
        self.buffer = b""
        self.open = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seen = -1
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.fail(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            self.open = True
            self.buffer = rest
            self.opened.set_result(None)
        self.read_frames()

    def read_frames(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, 2)
                start = 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, 2)
                start = 10
            if len(buffer) < start + length:
                break
            payload, buffer = buffer[start : start + length], buffer[start + length :]
            if opcode == 0x1:
                self.owner.arrived(self, payload)
            elif opcode == 0x9:
                self.write_frame(0xA, payload)
            elif opcode == 0x8:
                self.open = False
                self.owner.closed += 1
                self.owner.check()
                assert self.transport is not None
                self.transport.close()
        self.buffer = buffer

    def write_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        assert len(payload) < 126 and self.transport is not None
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def fail(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(why))
        if self.transport:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open:
            self.open = False
            self.owner.lost += 1
            self.owner.check()
        self.fail("connection lost during the handshake")


class Members:
    """This process's sockets and the current round's count."""

    def __init__(self, source: str, ports: list[int], first: int, count: int) -> None:
        self.source = source
        self.ports = ports
        self.first = first
        self.count = count
        self.members: list[Member] = []
        self.errors: dict[str, int] = {}
        self.closed = 0
        self.lost = 0
        self.expected = b""
        self.round = -1
        self.received = 0
        self.last: float | None = None
        self.everyone = asyncio.Event()

    async def open_one(self, index: int, gate: asyncio.Semaphore, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        port = self.ports[index % len(self.ports)]
        async with gate:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((self.source, 0))
                sock.setblocking(False)
                async with asyncio.timeout(timeout):
                    await loop.sock_connect(sock, ("127.0.0.1", port))
                    _, member = await loop.create_connection(lambda: Member(self, port), sock=sock)
                    await member.opened
            except (OSError, TimeoutError) as exc:
                sock.close()
                name = type(exc).__name__ + (f": {exc}" if str(exc) else "")
                self.errors[name] = self.errors.get(name, 0) + 1
                return
        self.members.append(member)

    async def open_all(self, timeout: float) -> None:
        gate = asyncio.Semaphore(OPEN_AT_ONCE)
        handshake = min(timeout, 60.0)
        async with asyncio.timeout(timeout):
            indices = range(self.first, self.first + self.count)
            await asyncio.gather(*(self.open_one(index, gate, handshake) for index in indices))

    def arm(self, round_number: int) -> None:
        self.round = round_number
        self.expected = f"round {round_number}".encode()
        self.received = 0
        self.last = None
        self.everyone = asyncio.Event()

    def arrived(self, member: Member, payload: bytes) -> None:
        if payload != self.expected or member.seen == self.round:
            return
        member.seen = self.round
        self.received += 1
        self.last = time.perf_counter()
        self.check()

    def check(self) -> None:
        """End the round once every socket still open has the message."""
        if self.received >= len(self.members) - self.closed - self.lost:
            self.everyone.set()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(args: argparse.Namespace) -> None:
    ports = [int(port) for port in args.ports.split(",")]
    members = Members(args.source, ports, args.first, args.count)
    started = time.perf_counter()
    try:
        await members.open_all(args.open_timeout)
    except TimeoutError:
        members.errors["not all opened in time"] = args.count - len(members.members)
    say(
        "ready "
        + json.dumps(
            {
                "opened": len(members.members),
                "errors": members.errors,
                "open_s": round(time.perf_counter() - started, 1),
            }
        )
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    waiting: asyncio.Task[Any] | None = None
    while line := (await reader.readline()).decode().split():
        command, round_number = line[0], int(line[1])
        if command == "arm":
            members.arm(round_number)
            waiting = asyncio.create_task(report(members, round_number, args.wait))
            say(f"armed {round_number}")
        elif command == "send":
            # The first socket still open sends (a peer may have closed some).
            sender = next(member for member in members.members if member.open)
            sent = time.perf_counter()
            sender.write_frame(0x1, f"round {round_number}".encode())
            say(f"sent {round_number} {sent!r}")
        elif command == "quit":
            break
    if waiting:
        waiting.cancel()


async def report(members: Members, round_number: int, wait: float) -> None:
    try:
        await asyncio.wait_for(members.everyone.wait(), wait)
    except TimeoutError:
        pass
    result = {
        "received": members.received,
        "members": len(members.members),
        "last": members.last,
        "closed": members.closed,
        "lost": members.lost,
    }
    say(f"result {round_number} {json.dumps(result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="loopback address the sockets bind")
    parser.add_argument("--ports", required=True, help="the servers' ports, comma-separated")
    parser.add_argument("--first", type=int, default=0, help="global index of this process's first socket")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--open-timeout", type=float, default=600.0)
    parser.add_argument("--wait", type=float, default=30.0)
    args = parser.parse_args()
    raise_nofile()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
