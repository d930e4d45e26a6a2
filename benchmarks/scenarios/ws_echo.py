"""ws-echo: messages/s and round-trip p50/p99 for N sockets each sending M messages (issue 4)."""

from __future__ import annotations

import sys

from ..harness import Processes, run_json
from ..results_model import DAPHNE, Context, Row
from ..systems import WITH_DAPHNE_TELEX, Server, each_system

NAME = "ws-echo"


def run(ctx: Context) -> list[Row]:
    # The Daphne stack's 50 ms idle poll makes 1 x M take M / 20 seconds there, so
    # --quick keeps M at 100 to fit its two-minute budget.
    shapes = ctx.pick([(1, 100), (50, 40)], [(1, 1000), (50, 200), (200, 100)])
    cases = [f"{n} sockets x {m} msgs" for n, m in shapes]

    def measure(server: Server, procs: Processes) -> list[Row]:
        rows = []
        for (sockets, messages), case in zip(shapes, cases, strict=True):
            metrics = run_json(
                procs,
                f"ws-echo-{sockets}",
                [
                    sys.executable,
                    "-m",
                    "benchmarks.clients.ws_bench",
                    "echo",
                    "--port",
                    str(server.port),
                    "--sockets",
                    str(sockets),
                    "--messages",
                    str(messages),
                    "--timeout",
                    str(ctx.pick(40, 120)),
                ],
                timeout=ctx.pick(60, 150),
            )
            note = server.note
            if server.system == DAPHNE and sockets == 1:
                note = f"Daphne polls its reply channel every 50 ms when idle; {note}"
            if metrics["closed_by_server"]:
                closed = sum(metrics["closed_by_server"].values())
                codes = ", ".join(metrics["closed_by_server"])
                note = (
                    f"{closed} sockets closed by the server (code {codes}), {metrics['messages']:,} of "
                    f"{metrics['planned']:,} echoed; {note}"
                )
            rows.append(Row(NAME, case, server.system, "msgs_per_s", "msg/s", metrics, note=note))
        return rows

    return each_system(ctx, NAME, cases, measure, WITH_DAPHNE_TELEX)
