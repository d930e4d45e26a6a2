"""Open-loop HTTP/1.1 load at a fixed request rate, with latency percentiles.

wrk 4 only drives closed-loop load, which hides a server's stalls (a slow
reply delays the next request instead of piling up behind it). Here
requests are scheduled at fixed instants and each latency is measured from
its scheduled instant, so stalls show in the percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def run(port: int, rate: float, seconds: float, connections: int) -> dict:
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (scheduled := await queue.get()) is not None:
            writer.write(REQUEST)
            try:
                status = await asyncio.wait_for(read_response(reader), 10)
            except (TimeoutError, asyncio.IncompleteReadError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            if status != 200:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)
        writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.perf_counter()
    total = int(rate * seconds)
    for index in range(total):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule itself is what is measured
        queue.put_nowait(scheduled)
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*tasks), seconds + 30)
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1000

    return {
        "requests": len(ordered),
        "errors": errors,
        "rate": rate,
        "requests_per_s": len(ordered) / elapsed,
        "p50_ms": at(0.5),
        "p90_ms": at(0.9),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.port, args.rate, args.seconds, args.connections))))


if __name__ == "__main__":
    main()
