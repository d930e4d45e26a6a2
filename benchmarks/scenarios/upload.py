"""upload: one large request body through the layer: throughput and the server's peak RSS."""

from __future__ import annotations

import sys

from ..harness import Processes, rss_kb, run_json
from ..results_model import DAPHNE, Context, Row
from ..systems import Server, each_system

NAME = "upload"


def run(ctx: Context) -> list[Row]:
    megabytes = ctx.pick(20, 100)
    case = f"{megabytes} MB body"

    def measure(server: Server, procs: Processes) -> list[Row]:
        base = rss_kb(server.proc.pid)[0]
        metrics = run_json(
            procs,
            "upload",
            [
                sys.executable,
                "-m",
                "benchmarks.clients.upload",
                "--port",
                str(server.port),
                "--megabytes",
                str(megabytes),
                "--timeout",
                str(ctx.pick(60, 180)),
            ],
            timeout=ctx.pick(90, 240),
        )
        # VmHWM is the process's lifetime peak; the server was started fresh for this run.
        metrics["rss_base_kb"] = base
        metrics["peak_rss_kb"] = rss_kb(server.proc.pid)[1]
        metrics["peak_rss_mb"] = metrics["peak_rss_kb"] / 1024
        note = f"status {metrics['status']}, peak RSS {metrics['peak_rss_mb']:.0f} MiB"
        if server.system == DAPHNE:
            note += "; Daphne 1.4.2 sends the whole body in one http.request message (no body_channel)"
        return [Row(NAME, case, server.system, "mb_per_s", "MB/s", metrics, note=note)]

    return each_system(ctx, NAME, [case], measure)
