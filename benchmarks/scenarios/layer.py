"""layer: Redis channel layer send+receive msgs/s and Redis commands per message (issue 5).

Telex's RedisChannelLayer and asgi_redis 1.4.3 (in the Daphne stack's
virtualenv) take turns on the same redis-server, several rounds each,
alternating which goes first; each row is the median round. Commands are
counted from ``INFO commandstats`` deltas around the measured parts only.
The one-after-the-other cases run each client on the redis-server's CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from tests.support.redis_server import RedisServer

from .. import envs
from ..harness import BenchError, Processes, child_env, wait_for_line
from ..results_model import ASGI_REDIS, ROUND_TRIPS, TELEX_LAYER, Context, Row

NAME = "layer"
CLIENT = Path(__file__).resolve().parent.parent / "clients" / "layer_bench.py"
CASES = {
    "worker": "send+receive(block=True), normal channel",
    "reply": "send+receive(block=False), process-specific channel",
    "group": "send_group to 1,000 members",
    "stream": "throughput: 1 sender + 1 blocked receiver thread at once",
}


# The one-after-the-other cases, whose floor is two round trips per message.
# Each client and the redis-server share one CPU while they run: on a VM a
# wake-up on the other CPU costs tens of microseconds per hop, and where the
# scheduler puts the two processes changes from round to round, so unpinned
# these rows measure the placement more than the layer (docs/benchmarks.md).
FLOOR_CASES = ("worker", "reply")


def pin_to_one_cpu(pids: list[int]) -> set[int]:
    """Put ``pids`` on this process's last usable CPU; the CPU set to restore afterwards."""
    allowed = os.sched_getaffinity(0)
    for pid in pids:
        os.sched_setaffinity(pid, {max(allowed)})
    return allowed


def command_calls(client) -> dict[str, int]:
    """Calls per command from INFO commandstats (commands run inside Lua scripts included)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): fields["calls"] for name, fields in stats.items()}


def send_line(proc, line: bytes) -> None:
    assert proc.popen.stdin is not None
    proc.popen.stdin.write(line)
    proc.popen.stdin.flush()


def json_line(proc, index: int, timeout: float) -> dict:
    """The ``index``-th JSON line the client printed (0-based), once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in proc.output().splitlines() if line.startswith("{")]
        if len(lines) > index:
            return json.loads(lines[index])
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with status {proc.popen.returncode}: {proc.tail()}")
        time.sleep(0.01)
    raise BenchError(f"{proc.name} printed no result within {timeout:.0f} s: {proc.tail()}")


def start_client(ctx: Context, procs: Processes, server: RedisServer, *, impl: str, python: str, case: str):
    count = ctx.pick(3000, 20000) if case != "group" else ctx.pick(3, 20)
    args = [python, str(CLIENT), "--impl", impl, "--url", server.url, "--port", str(server.port)]
    proc = procs.start(
        f"layer-{impl}-{case}", [*args, "--case", case, "--count", str(count)], env=child_env(), stdin=True
    )
    wait_for_line(proc, "READY", 60)
    return proc


def measure_round(ctx: Context, proc, server: RedisServer, round_index: int) -> dict:
    """One measured round: the client's result plus the Redis commands it cost."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        before = command_calls(client)
        send_line(proc, b"go\n")
        result = json_line(proc, 2 * round_index, ctx.pick(60, 180))
        after = command_calls(client)
    finally:
        client.close()
    send_line(proc, b"check\n")
    result.update(json_line(proc, 2 * round_index + 1, 60))
    # The INFO call that took the "before" snapshot is itself counted once.
    delta = {cmd: after.get(cmd, 0) - before.get(cmd, 0) for cmd in after}
    delta["info"] = delta.get("info", 0) - 1
    result["commands"] = {cmd: calls for cmd, calls in delta.items() if calls > 0}
    return result


def measure_case(
    ctx: Context, procs: Processes, server: RedisServer, case: str, pythons: dict[str, str]
) -> dict[str, dict]:
    """Run ``ROUNDS`` rounds per layer, alternating which goes first; the median round counts."""
    clients = {
        impl: start_client(ctx, procs, server, impl=impl, python=python, case=case)
        for impl, python in pythons.items()
    }
    rounds: dict[str, list[dict]] = {impl: [] for impl in clients}
    order = list(clients)
    pinned = case in FLOOR_CASES
    if pinned:
        allowed = pin_to_one_cpu([server.process.pid, *(proc.popen.pid for proc in clients.values())])
    try:
        for index in range(ctx.pick(3, 5)):
            for impl in order if index % 2 == 0 else reversed(order):
                rounds[impl].append(measure_round(ctx, clients[impl], server, index))
    finally:
        if pinned:
            os.sched_setaffinity(server.process.pid, allowed)
    results = {}
    for impl, proc in clients.items():
        assert proc.popen.stdin is not None
        proc.popen.stdin.close()
        status = proc.wait(60)
        if status != 0:
            raise BenchError(f"{proc.name} exited with status {status}: {proc.tail()}")
        done = rounds[impl]
        result = dict(sorted(done, key=lambda r: r["msgs_per_s"])[len(done) // 2])
        result["rounds_msgs_per_s"] = [round(r["msgs_per_s"]) for r in done]
        messages = sum(r["messages"] for r in done)
        commands: dict[str, int] = {}
        for r in done:
            for cmd, calls in r["commands"].items():
                commands[cmd] = commands.get(cmd, 0) + calls
        result["commands"] = commands
        result["commands_per_msg"] = sum(commands.values()) / messages
        if case == "group":
            result["received"] = sum(r["received"] for r in done)
            result["sent"] = messages
        results[impl] = result
    return results


def run(ctx: Context) -> list[Row]:
    peer = ctx.info["peers"].get("daphne_stack", {})
    telex_ready = importlib.util.find_spec("telex.layers.redis") is not None
    pythons = {}
    skipped = {}
    if telex_ready:
        pythons["telex"] = sys.executable
    else:
        skipped["telex"] = "telex.layers.redis not available"
    if "error" in peer:
        skipped["asgi_redis"] = "Daphne stack venv unavailable"
    else:
        pythons["asgi_redis"] = str(envs.daphne_python(ctx))
    if importlib.util.find_spec("hiredis") is not None:
        pythons["floor"] = sys.executable
    else:
        skipped["floor"] = "hiredis (the redis extra) not installed"
    systems = {"telex": TELEX_LAYER, "asgi_redis": ASGI_REDIS, "floor": ROUND_TRIPS}
    rows: list[Row] = []
    server = RedisServer()
    server.start()
    try:
        with Processes(ctx.log_dir) as procs:
            for case, label in CASES.items():
                impls = {
                    impl: python for impl, python in pythons.items() if impl != "floor" or case in FLOOR_CASES
                }
                try:
                    results = measure_case(ctx, procs, server, case, impls)
                except BenchError as exc:
                    results = {}
                    skipped = {**skipped, **{impl: f"error: {exc}" for impl in pythons}}
                for impl, system in systems.items():
                    if impl == "floor" and case not in FLOOR_CASES:
                        continue
                    if impl not in results:
                        rows.append(Row(NAME, label, system, skipped=skipped.get(impl, "not run")))
                        continue
                    result = results[impl]
                    metrics = {k: v for k, v in result.items() if k != "commands"}
                    metrics["commands"] = result["commands"]
                    messages = sum(result["commands"].values()) / result["commands_per_msg"]
                    per = ", ".join(
                        f"{cmd} {calls / messages:.2f}" for cmd, calls in sorted(result["commands"].items())
                    )
                    rounds = "/".join(f"{value:,}" for value in result["rounds_msgs_per_s"])
                    note = f"{result['commands_per_msg']:.2f} cmds/msg ({per}); rounds {rounds}"
                    if case in FLOOR_CASES:
                        note += "; client and redis-server on one CPU"
                    if case == "group" and result["received"] != result["sent"]:
                        note += f"; received {result['received']} of {result['sent']}"
                    rows.append(Row(NAME, label, system, "msgs_per_s", "msg/s", metrics, note=note))
    finally:
        server.stop()
    return rows
