"""memory-layer: InMemoryChannelLayer send+receive throughput and wake-up latency (issue 2)."""

from __future__ import annotations

import sys

from ..harness import Processes, run_json
from ..results_model import TELEX_LAYER, Context, Row

NAME = "memory-layer"


def run(ctx: Context) -> list[Row]:
    count = ctx.pick(50_000, 300_000)
    samples = ctx.pick(300, 2000)
    with Processes(ctx.log_dir) as procs:
        result = run_json(
            procs,
            "memory-layer",
            [
                sys.executable,
                "-m",
                "benchmarks.clients.memory_layer",
                "--count",
                str(count),
                "--samples",
                str(samples),
                "--threads",
                "4",
            ],
            timeout=ctx.pick(60, 240),
        )
    rows = [
        Row(
            NAME,
            "send+receive, 1 thread",
            TELEX_LAYER,
            "msgs_per_s",
            "msg/s",
            {"msgs_per_s": result["one_thread_msgs_per_s"], "messages": count},
        ),
        Row(
            NAME,
            f"send+receive, {result['threads']} threads",
            TELEX_LAYER,
            "msgs_per_s",
            "msg/s",
            {"msgs_per_s": result["threads_msgs_per_s"], "messages": count},
            note="each thread on its own channel; one lock and the GIL are shared",
        ),
        Row(
            NAME,
            "1 sender -> 1 blocked receiver",
            TELEX_LAYER,
            "msgs_per_s",
            "msg/s",
            {"msgs_per_s": result["producer_consumer_msgs_per_s"], "messages": count // 2},
        ),
    ]
    for key, label in (
        ("wake_thread", "wake-up, receive(block=True)"),
        ("wake_async", "wake-up, receive_async"),
    ):
        stats = result[key]
        rows.append(
            Row(
                NAME,
                label,
                TELEX_LAYER,
                "p50_us",
                "us",
                {
                    "p50_us": stats["p50_us"],
                    "p90_us": stats["p90_us"],
                    "p99_us": stats["p99_us"],
                    "max_us": stats["max_us"],
                    "samples": stats["samples"],
                },
                higher_is_better=False,
                note="send from another thread to a receiver asleep 2 ms",
            )
        )
    return rows
