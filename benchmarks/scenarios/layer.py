"""layer: Redis channel layer send+receive msgs/s and Redis commands per message (issue 5).

Telex's RedisChannelLayer and asgi_redis 1.4.3 (in the Daphne stack's
virtualenv) take turns on the same redis-server; commands are counted from
``INFO commandstats`` deltas around the measured part only.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from tests.support.redis_server import RedisServer

from .. import envs
from ..harness import BenchError, Processes, child_env, wait_for_line
from ..results_model import ASGI_REDIS, TELEX_LAYER, Context, Row

NAME = "layer"
CLIENT = Path(__file__).resolve().parent.parent / "clients" / "layer_bench.py"
CASES = {
    "worker": "send+receive(block=True), normal channel",
    "reply": "send+receive(block=False), process-specific channel",
    "group": "send_group to 1,000 members",
    "stream": "throughput: 1 sender + 1 blocked receiver thread at once",
}


def command_calls(client) -> dict[str, int]:
    """Calls per command from INFO commandstats (commands run inside Lua scripts included)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): fields["calls"] for name, fields in stats.items()}


def go(proc) -> None:
    assert proc.popen.stdin is not None
    proc.popen.stdin.write(b"go\n")
    proc.popen.stdin.flush()


def measure(
    ctx: Context, procs: Processes, server: RedisServer, *, impl: str, python: str, case: str
) -> dict:
    import redis

    count = ctx.pick(3000, 20000) if case != "group" else ctx.pick(3, 20)
    name = f"layer-{impl}-{case}"
    proc = procs.start(
        name,
        [
            python,
            str(CLIENT),
            "--impl",
            impl,
            "--url",
            server.url,
            "--port",
            str(server.port),
            "--case",
            case,
            "--count",
            str(count),
        ],
        env=child_env(),
        stdin=True,
    )
    wait_for_line(proc, "READY", 60)
    client = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        before = command_calls(client)
        go(proc)
        result = json.loads(wait_for_line(proc, "{", ctx.pick(60, 180)))
        after = command_calls(client)
    finally:
        client.close()
    go(proc)
    status = proc.wait(60)
    if status != 0:
        raise BenchError(f"{name} exited with status {status}: {proc.tail()}")
    if case == "group":
        result["received"] = json.loads(proc.output().strip().splitlines()[-1])["received"]
    # The INFO call that took the "before" snapshot is itself counted once.
    delta = {cmd: after.get(cmd, 0) - before.get(cmd, 0) for cmd in after}
    delta["info"] = delta.get("info", 0) - 1
    commands = {cmd: calls for cmd, calls in delta.items() if calls > 0}
    total = sum(commands.values())
    result["commands"] = commands
    result["commands_per_msg"] = total / result["messages"]
    return result


def run(ctx: Context) -> list[Row]:
    peer = ctx.info["peers"].get("daphne_stack", {})
    telex_ready = importlib.util.find_spec("telex.layers.redis") is not None
    rows: list[Row] = []
    server = RedisServer()
    server.start()
    try:
        with Processes(ctx.log_dir) as procs:
            for case, label in CASES.items():
                for impl, system in (("telex", TELEX_LAYER), ("asgi_redis", ASGI_REDIS)):
                    if impl == "telex" and not telex_ready:
                        rows.append(Row(NAME, label, system, skipped="telex.layers.redis not available"))
                        continue
                    if impl == "asgi_redis" and "error" in peer:
                        rows.append(Row(NAME, label, system, skipped="Daphne stack venv unavailable"))
                        continue
                    python = sys.executable if impl == "telex" else str(envs.daphne_python(ctx))
                    try:
                        result = measure(ctx, procs, server, impl=impl, python=python, case=case)
                    except BenchError as exc:
                        rows.append(Row(NAME, label, system, skipped=f"error: {exc}"))
                        continue
                    metrics = {k: v for k, v in result.items() if k != "commands"}
                    metrics["commands"] = result["commands"]
                    note = ", ".join(
                        f"{cmd} {calls / result['messages']:.2f}"
                        for cmd, calls in sorted(result["commands"].items())
                    )
                    rows.append(
                        Row(
                            NAME,
                            label,
                            system,
                            "msgs_per_s",
                            "msg/s",
                            metrics,
                            note=f"{result['commands_per_msg']:.2f} cmds/msg ({note})",
                        )
                    )
                    if case == "group" and result.get("received") != result["messages"]:
                        rows[-1].note += f"; received {result['received']} of {result['messages']}"
    finally:
        server.stop()
    return rows
