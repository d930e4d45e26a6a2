"""Chat rooms that count every message: the client of the restart test and benchmark.

``SOCKETS`` WebSockets in rooms of ``ROOM`` (``URL`` with ``{room}`` in it),
each sending ``{"s": socket, "n": n}`` every ``INTERVAL`` seconds,
``MESSAGES`` times, to a chat that relays each message to the whole room
(``tests/apps/asgi3_channels4.py``). Each socket checks that it gets every
message of its room, each sender's in order; a close is counted, never retried,
and so is a socket that fails to open or to be greeted within ``OPEN_TIMEOUT``
(its messages then count as missing).

As a script (``python -m benchmarks.clients.chat_members URL SOCKETS ...``):
connect, print ``READY``, wait for a line on stdin, run, print the tally as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

#: Sockets opening at once.
CONNECTING = 50
#: Seconds a socket may take to open and be greeted.
OPEN_TIMEOUT = 120.0


@dataclass
class Tally:
    sockets: int = 0
    expected: int = 0
    received: int = 0
    closes: list[str] = field(default_factory=list)
    failed_opens: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    #: Seconds from a message's send to its arrival, sampled (one in 16).
    latencies: list[float] = field(default_factory=list)


@dataclass
class Plan:
    url: str
    sockets: int
    room: int
    interval: float
    messages: int
    drain: float


async def member(
    plan: Plan, index: int, opened: asyncio.Semaphore, start: asyncio.Event, tally: Tally
) -> None:
    expected = plan.messages * min(plan.room, plan.sockets - index // plan.room * plan.room)
    tally.expected += expected
    async with opened:
        ws = None
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                url = plan.url.format(room=index // plan.room)
                ws = await connect(url, ping_interval=None, max_queue=None)
                json.loads(await ws.recv())  # the greeting
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            tally.failed_opens.append(f"socket {index}: {exc!r}")
            tally.sockets += 1
            if ws is not None:
                await ws.close()
            return
    last: dict[int, int] = {}

    async def receive() -> None:
        got = 0
        try:
            while got < expected:
                message = json.loads(await ws.recv())
                sender, n = message["s"], message["n"]
                if n != last.get(sender, -1) + 1:
                    tally.out_of_order.append(f"socket {index}: {n} from {sender} after {last.get(sender)}")
                last[sender] = n
                got += 1
                tally.received += 1
                if got % 16 == 0:
                    tally.latencies.append(time.time() - message["t"])
        except ConnectionClosed as exc:
            tally.closes.append(f"socket {index}: {exc}")

    reader = asyncio.ensure_future(receive())
    try:
        tally.sockets += 1
        await start.wait()
        await asyncio.sleep(random.Random(index).random() * plan.interval)  # spread the sends
        began = time.monotonic()
        for n in range(plan.messages):
            try:
                await ws.send(json.dumps({"s": index, "n": n, "t": time.time()}))
            except ConnectionClosed:
                break  # counted by the reader
            await asyncio.sleep(max(0.0, began + (n + 1) * plan.interval - time.monotonic()))
        await asyncio.wait({reader}, timeout=plan.drain)
    finally:
        reader.cancel()
        await ws.close()


async def run(plan: Plan, ready: asyncio.Event, go: asyncio.Event) -> Tally:
    """Open every socket, set ``ready``, start sending when ``go`` is set; the tally at the end."""
    tally, opened, start = Tally(), asyncio.Semaphore(CONNECTING), asyncio.Event()
    members = [
        asyncio.ensure_future(member(plan, index, opened, start, tally)) for index in range(plan.sockets)
    ]
    while tally.sockets < plan.sockets:
        done = [task for task in members if task.done()]
        if done:  # a socket that failed to open: its exception ends the run
            await asyncio.gather(*done)
        await asyncio.sleep(0.05)
    ready.set()
    await go.wait()
    start.set()
    await asyncio.gather(*members)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", help="ws://host:port/chat/room{room}/")
    parser.add_argument("sockets", type=int)
    parser.add_argument("--room", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--drain", type=float, default=60.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    plan = Plan(args.url, args.sockets, args.room, args.interval, args.messages, args.drain)

    async def script() -> Tally:
        ready, go = asyncio.Event(), asyncio.Event()
        running = asyncio.ensure_future(run(plan, ready, go))
        await ready.wait()
        print("READY", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        go.set()
        return await running

    tally = asyncio.run(script())
    result = asdict(tally)
    result["closes"], result["out_of_order"] = len(tally.closes), len(tally.out_of_order)
    result["failed_opens"] = len(tally.failed_opens)
    latencies = sorted(tally.latencies) or [0.0]
    result["latencies"] = {
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
    }
    result["examples"] = (tally.failed_opens + tally.closes + tally.out_of_order)[:5]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
