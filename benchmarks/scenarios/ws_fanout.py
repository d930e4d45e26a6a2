"""ws-fanout: one group message to N sockets: time to the last arrival, and how many arrived."""

from __future__ import annotations

import sys

from ..harness import Processes, run_json
from ..results_model import Context, Row
from ..systems import CAPACITIES, Server, each_system

NAME = "ws-fanout"


def run(ctx: Context) -> list[Row]:
    sizes = ctx.pick([100, 1000], [100, 1000, 10_000])
    cases = [f"{n:,} sockets" for n in sizes]
    wait = ctx.pick(5.0, 15.0)

    def measure(server: Server, procs: Processes) -> list[Row]:
        rows = []
        for sockets, case in zip(sizes, cases, strict=True):
            metrics = run_json(
                procs,
                f"ws-fanout-{sockets}",
                [
                    sys.executable,
                    "-m",
                    "benchmarks.clients.ws_bench",
                    "fanout",
                    "--port",
                    str(server.port),
                    "--sockets",
                    str(sockets),
                    "--wait",
                    str(wait),
                    "--timeout",
                    str(ctx.pick(40, 200)),
                ],
                timeout=ctx.pick(70, 260),
            )
            received = f"received {metrics['received']:,}/{sockets:,} within {wait:.0f} s"
            if metrics["refused"]:
                received += f" ({metrics['refused']:,} handshakes refused)"
            note = f"{received}; {CAPACITIES[server.system]}"
            rows.append(
                Row(
                    NAME,
                    case,
                    server.system,
                    "last_ms",
                    "ms to last",
                    metrics,
                    higher_is_better=False,
                    note=note,
                )
            )
        return rows

    return each_system(ctx, NAME, cases, measure)
