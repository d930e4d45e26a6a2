"""WebSocket load: echo round trips, group fan-out, idle sockets.

Uses the ``websockets`` client in its own process. Handshakes are opened a
bounded number at a time so a slow server sees a queue, not a SYN flood.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

OPEN_AT_ONCE = 100


async def open_many(url: str, count: int, timeout: float) -> tuple[list, int]:
    """Open ``count`` sockets; return the open ones and how many handshakes failed.

    Daphne 1.4.2 refuses handshakes (HTTP 503) while websocket.connect is at
    capacity, so failures are counted, not fatal.
    """
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def one():
        async with gate:
            return await connect(
                url, open_timeout=timeout, ping_interval=None, max_queue=None, compression=None
            )

    results = await asyncio.wait_for(
        asyncio.gather(*(one() for _ in range(count)), return_exceptions=True), timeout + 10
    )
    sockets = [r for r in results if not isinstance(r, BaseException)]
    if not sockets:
        raise RuntimeError(f"no WebSocket opened at {url}: {results[0]!r}")
    return sockets, count - len(sockets)


async def close_all(sockets: list) -> None:
    await asyncio.wait_for(asyncio.gather(*(s.close() for s in sockets), return_exceptions=True), 30)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1000

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": ordered[-1] * 1000}


async def echo(port: int, sockets: int, messages: int, timeout: float) -> dict:
    clients, refused = await open_many(f"ws://127.0.0.1:{port}/echo", sockets, timeout)
    rtts: list[float] = []
    payload = "x" * 32
    closes: dict[str, int] = {}

    async def talk(ws) -> None:
        for _ in range(messages):
            sent = time.perf_counter()
            try:
                await ws.send(payload)
                await ws.recv()
            except ConnectionClosed as exc:
                # Daphne 1.4.2 closes with 1013 when websocket.receive is at capacity.
                code = str(exc.rcvd.code if exc.rcvd else None)
                closes[code] = closes.get(code, 0) + 1
                return
            rtts.append(time.perf_counter() - sent)

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(talk(ws) for ws in clients)), timeout)
    elapsed = time.perf_counter() - start
    await close_all(clients)
    return {
        "sockets": sockets,
        "refused": refused,
        "messages": len(rtts),
        "planned": sockets * messages,
        "closed_by_server": closes,
        "seconds": elapsed,
        "msgs_per_s": len(rtts) / elapsed,
        **percentiles(rtts),
    }


async def fanout(port: int, sockets: int, wait: float, timeout: float) -> dict:
    clients, refused = await open_many(f"ws://127.0.0.1:{port}/chat", sockets, timeout)
    arrivals: list[float] = []
    everyone = asyncio.Event()

    async def listen(ws) -> None:
        try:
            await ws.recv()
        except Exception:
            return
        arrivals.append(time.perf_counter())
        if len(arrivals) == len(clients):
            everyone.set()

    listeners = [asyncio.create_task(listen(ws)) for ws in clients]
    start = time.perf_counter()
    await clients[0].send("fan-out")
    try:
        await asyncio.wait_for(everyone.wait(), wait)
    except TimeoutError:
        pass
    for task in listeners:
        task.cancel()
    last = (max(arrivals) - start) * 1000 if arrivals else None
    first = (min(arrivals) - start) * 1000 if arrivals else None
    await close_all(clients)
    return {
        "sockets": sockets,
        "refused": refused,
        # A refused handshake is a socket the message never reached: counted as lost.
        "received": len(arrivals),
        "lost": sockets - len(arrivals),
        "first_ms": first,
        "last_ms": last,
        "waited_s": wait,
    }


async def idle(port: int, sockets: int, timeout: float) -> dict:
    start = time.perf_counter()
    clients, refused = await open_many(f"ws://127.0.0.1:{port}/echo", sockets, timeout)
    opened = time.perf_counter() - start
    print(f"OPEN {len(clients)}", flush=True)
    # Hold the sockets until the harness has read the server's memory.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await close_all(clients)
    return {
        "sockets": len(clients),
        "refused": refused,
        "open_seconds": opened,
        "opens_per_s": len(clients) / opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["echo", "fanout", "idle"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sockets", type=int, default=10)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--wait", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if args.mode == "echo":
        result = echo(args.port, args.sockets, args.messages, args.timeout)
    elif args.mode == "fanout":
        result = fanout(args.port, args.sockets, args.wait, args.timeout)
    else:
        result = idle(args.port, args.sockets, args.timeout)
    print(json.dumps(asyncio.run(result)), flush=True)


if __name__ == "__main__":
    main()
