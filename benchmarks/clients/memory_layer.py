"""InMemoryChannelLayer throughput and blocked-receiver wake-up latency.

Runs in its own process so that the harness can bound it and nothing else
shares its interpreter. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time

from telex.layers.memory import InMemoryChannelLayer

MESSAGE = {"text": "x" * 64, "order": 1}

# The wake-up samples need the receiver truly asleep when the send happens;
# this gap gives its thread time to register and block. Time is the thing
# measured here, so a sleep is the honest way to make the thread idle.
BLOCK_GAP = 0.002


def send_receive(layer: InMemoryChannelLayer, channel: str, count: int) -> None:
    send, receive, names = layer.send, layer.receive, [channel]
    for _ in range(count):
        send(channel, MESSAGE)
        receive(names)


def one_thread(count: int) -> float:
    layer = InMemoryChannelLayer()
    send_receive(layer, "warm", 1000)
    start = time.perf_counter()
    send_receive(layer, "bench", count)
    return count / (time.perf_counter() - start)


def threads(count: int, thread_count: int) -> float:
    """Aggregate msgs/s of ``thread_count`` threads, each on its own channel."""
    layer = InMemoryChannelLayer()
    per_thread = count // thread_count
    barrier = threading.Barrier(thread_count + 1)

    def worker(index: int) -> None:
        barrier.wait(30)
        send_receive(layer, f"bench{index}", per_thread)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(thread_count)]
    for thread in workers:
        thread.start()
    barrier.wait(30)
    start = time.perf_counter()
    for thread in workers:
        thread.join(120)
    return per_thread * thread_count / (time.perf_counter() - start)


def producer_consumer(count: int) -> float:
    """One sender thread, one receiver thread in receive(block=True)."""
    layer = InMemoryChannelLayer(capacity=1000)
    done = threading.Event()

    def consumer() -> None:
        got = 0
        while got < count:
            channel, _ = layer.receive(["pc"], block=True)
            if channel is not None:
                got += 1
        done.set()

    thread = threading.Thread(target=consumer)
    thread.start()
    start = time.perf_counter()
    sent = 0
    while sent < count:
        try:
            layer.send("pc", MESSAGE)
            sent += 1
        except layer.ChannelFull:
            time.sleep(0)  # yield the GIL so the consumer drains
    done.wait(120)
    elapsed = time.perf_counter() - start
    thread.join(10)
    return count / elapsed


def wake_thread(samples: int) -> list[float]:
    layer = InMemoryChannelLayer()
    ready = threading.Event()
    latencies: list[float] = []

    def receiver() -> None:
        for _ in range(samples):
            ready.set()
            _, message = layer.receive(["wake"], block=True)
            latencies.append(time.perf_counter() - message["t"])

    return _send_wake_ups(layer, threading.Thread(target=receiver), ready, samples, latencies)


def wake_async(samples: int) -> list[float]:
    layer = InMemoryChannelLayer()
    ready = threading.Event()
    latencies: list[float] = []

    async def receiver() -> None:
        for _ in range(samples):
            ready.set()
            _, message = await layer.receive_async(["wake"])
            latencies.append(time.perf_counter() - message["t"])

    thread = threading.Thread(target=asyncio.run, args=(receiver(),))
    return _send_wake_ups(layer, thread, ready, samples, latencies)


def _send_wake_ups(
    layer: InMemoryChannelLayer,
    receiver: threading.Thread,
    ready: threading.Event,
    samples: int,
    latencies: list,
) -> list[float]:
    """Send each sample once the receiver is asleep; the receiver records the delay."""
    receiver.start()
    for _ in range(samples):
        ready.wait(10)
        ready.clear()
        time.sleep(BLOCK_GAP)  # let the receiver fall asleep: what is measured is the wake-up
        layer.send("wake", {"t": time.perf_counter()})
    receiver.join(30)
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1e6

    return {
        "p50_us": at(0.5),
        "p90_us": at(0.9),
        "p99_us": at(0.99),
        "max_us": ordered[-1] * 1e6,
        "samples": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    result = {
        "one_thread_msgs_per_s": one_thread(args.count),
        "threads": args.threads,
        "threads_msgs_per_s": threads(args.count, args.threads),
        "producer_consumer_msgs_per_s": producer_consumer(args.count // 2),
        "wake_thread": summary(wake_thread(args.samples)),
        "wake_async": summary(wake_async(args.samples)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
