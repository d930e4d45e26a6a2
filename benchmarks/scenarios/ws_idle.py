"""ws-idle: the interface server's resident memory per open idle WebSocket (issue 4)."""

from __future__ import annotations

import json
import sys

from ..harness import BenchError, Processes, rss_kb, wait_for_line
from ..results_model import Context, Row
from ..systems import Server, each_system

NAME = "ws-idle"


def run(ctx: Context) -> list[Row]:
    sockets = ctx.pick(2000, 10_000)
    case = f"{sockets:,} sockets"

    def measure(server: Server, procs: Processes) -> list[Row]:
        before = rss_kb(server.proc.pid)[0]
        client = procs.start(
            "ws-idle",
            [
                sys.executable,
                "-m",
                "benchmarks.clients.ws_bench",
                "idle",
                "--port",
                str(server.port),
                "--sockets",
                str(sockets),
                "--timeout",
                str(ctx.pick(60, 240)),
            ],
            stdin=True,
        )
        line = wait_for_line(client, "OPEN ", ctx.pick(70, 250))
        opened = int(line.split()[1])
        after = rss_kb(server.proc.pid)[0]
        assert client.popen.stdin is not None
        client.popen.stdin.write(b"done\n")
        client.popen.stdin.flush()
        if client.wait(60) != 0:
            raise BenchError(f"ws-idle client failed: {client.tail()}")
        per_socket = (after - before) / opened
        refused = json.loads(wait_for_line(client, "{", 10))["refused"]
        metrics = {
            "sockets": opened,
            "refused": refused,
            "rss_before_kb": before,
            "rss_after_kb": after,
            "kb_per_socket": per_socket,
        }
        return [
            Row(
                NAME,
                case,
                server.system,
                "kb_per_socket",
                "KiB/socket",
                metrics,
                higher_is_better=False,
                note=f"interface server process only; {refused} handshakes refused; {server.note}".rstrip(
                    "; "
                ),
            )
        ]

    return each_system(ctx, NAME, [case], measure)
