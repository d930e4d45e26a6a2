"""asgi3-servers: ``telex serve --asgi`` against uvicorn, Hypercorn and Daphne 4 (issue 17).

Every system serves the same ASGI 3 application (``benchmarks/peers/asgi3_app.py``:
hello world over HTTP, a WebSocket echo) in one process on 127.0.0.1, with no
access log. The load is the one ``http-hello`` and ``ws-echo`` use: wrk on
``/`` and ``clients/ws_bench.py echo`` on ``/echo``. The machine may be
shared, so each row also has the server's own CPU time per request or
message, and the CPU seconds other processes took meanwhile.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .. import envs
from ..harness import REPO_ROOT, Processes, Skip, child_env, free_port, run_json
from ..results_model import DAPHNE4, HYPERCORN, TELEX_ASGI, UVICORN, UVICORN_ASYNCIO, Context, Row
from ..systems import PEERS_DIR, START_TIMEOUT, Server, each_system, http_get_ok, wait_for_port
from .django_view import children_cpu_seconds, cpu_seconds, cpu_snapshot, machine_busy_seconds
from .http_hello import wrk

NAME = "asgi3-servers"
APP = "asgi3_app:application"
SYSTEMS = (TELEX_ASGI, UVICORN, UVICORN_ASYNCIO, HYPERCORN, DAPHNE4)
SLUGS = {
    TELEX_ASGI: "telex-asgi",
    UVICORN: "uvicorn",
    UVICORN_ASYNCIO: "uvicorn-asyncio",
    HYPERCORN: "hypercorn",
    DAPHNE4: "daphne4",
}
NOTES = {
    TELEX_ASGI: "the application on the reactor's asyncio loop, through memory://",
    UVICORN: "uvicorn[standard]: uvloop, httptools, websockets",
    UVICORN_ASYNCIO: "--loop asyncio --http h11: the same event loop as Telex",
    HYPERCORN: "asyncio worker, h11 and wsproto",
    DAPHNE4: "Twisted and Autobahn, as Telex",
}


def _command(system: str, ctx: Context, port: int) -> list[str]:
    if system == TELEX_ASGI:
        return [sys.executable, "-m", "telex", "serve", "--asgi", APP, "-b", "127.0.0.1", "-p", str(port)]
    if "error" in ctx.info["peers"].get("asgi3_servers", {"error": ""}):
        raise Skip("uvicorn/Hypercorn/Daphne 4 virtualenv unavailable")
    bindir = envs.asgi3_bindir(ctx)
    if system in (UVICORN, UVICORN_ASYNCIO):
        plain = ["--loop", "asyncio", "--http", "h11"] if system == UVICORN_ASYNCIO else []
        where = ["--host", "127.0.0.1", "--port", str(port)]
        return [str(bindir / "uvicorn"), *where, *plain, "--no-access-log", "--log-level", "warning", APP]
    if system == HYPERCORN:
        return [str(bindir / "hypercorn"), "-b", f"127.0.0.1:{port}", APP]
    # -v 0: Daphne writes an access log to stdout from -v 1 on.
    return [str(bindir / "daphne"), "-v", "0", "-b", "127.0.0.1", "-p", str(port), APP]


@contextmanager
def running(system: str, ctx: Context, procs: Processes) -> Iterator[Server]:
    port = free_port()
    try:
        # The peers' own virtualenv sees the application's directory only.
        env = child_env(PYTHONPATH=str(PEERS_DIR))
        if system == TELEX_ASGI:
            env = child_env(PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(PEERS_DIR)]))
        proc = procs.start(SLUGS[system], _command(system, ctx, port), env=env)
        wait_for_port(port, proc, START_TIMEOUT)
        http_get_ok(port, START_TIMEOUT)
        yield Server(system, port, proc, note=NOTES[system])
    finally:
        for proc in reversed(procs.procs):
            proc.kill()
        procs.procs.clear()


def _measured(server: Server, row: Callable[[], Row], unit: str, count: str) -> Row:
    """``row()``, with the server's CPU µs per ``unit`` (of ``metrics[count]``) and what else ran."""
    members = {server.system: server.proc.pid}
    before, busy, children = cpu_snapshot(members), machine_busy_seconds(), children_cpu_seconds()
    measured = row()
    spent = sum(cpu_seconds(before, cpu_snapshot(members)).values())
    others = machine_busy_seconds() - busy - spent - (children_cpu_seconds() - children)
    done = measured.metrics.get(count) or 0
    measured.metrics.update(server_cpu_s=round(spent, 2), other_cpu_s=round(max(0.0, others), 2))
    measured.metrics[f"cpu_us_per_{unit}"] = round(spent * 1e6 / done) if done else None
    per = measured.metrics[f"cpu_us_per_{unit}"]
    measured.note = f"server {per} µs CPU/{unit}, others {max(0.0, others):.1f} CPU-s; {measured.note}"
    return measured


def _http(ctx: Context, procs: Processes, server: Server, connections: int, seconds: int) -> Row:
    metrics = wrk(ctx, procs, server.port, connections, seconds)
    note = server.note
    if metrics["non_2xx"] or metrics["socket_errors"]:
        note = f"{metrics['non_2xx']} not 2xx, {metrics['socket_errors']} socket errors; {note}"
    case = f"http wrk c={connections}"
    return Row(NAME, case, server.system, "ok_requests_per_s", "req/s", metrics, note=note)


def _ws_echo(ctx: Context, procs: Processes, server: Server, sockets: int, messages: int) -> Row:
    client = ["-m", "benchmarks.clients.ws_bench", "echo", "--port", str(server.port)]
    shape = ["--sockets", str(sockets), "--messages", str(messages), "--timeout", str(ctx.pick(40, 120))]
    metrics = run_json(
        procs, f"ws-echo-{sockets}", [sys.executable, *client, *shape], timeout=ctx.pick(60, 150)
    )
    note = server.note
    if metrics["closed_by_server"]:
        note = f"closed by the server: {metrics['closed_by_server']}; {note}"
    case = f"ws {sockets} sockets x {messages} msgs"
    return Row(NAME, case, server.system, "msgs_per_s", "msg/s", metrics, note=note)


def run(ctx: Context) -> list[Row]:
    if shutil.which("wrk") is None:
        raise Skip("wrk not installed (Debian: apt-get install wrk)")
    concurrencies = ctx.pick([1, 64], [1, 16, 64, 256])
    seconds = ctx.pick(3, 10)
    # Enough messages for the CPU figures: the kernel counts CPU time in 10 ms ticks.
    shapes = ctx.pick([(1, 2000), (50, 200)], [(1, 5000), (50, 1000), (200, 200)])
    cases = [f"http wrk c={c}" for c in concurrencies] + [f"ws {n} sockets x {m} msgs" for n, m in shapes]

    def measure(server: Server, procs: Processes) -> Iterator[Row]:
        for c in concurrencies:
            yield _measured(
                server, functools.partial(_http, ctx, procs, server, c, seconds), "request", "requests"
            )
        for n, m in shapes:
            echo = functools.partial(_ws_echo, ctx, procs, server, n, m)
            yield _measured(server, echo, "message", "messages")

    return each_system(ctx, NAME, cases, measure, SYSTEMS, start=running)
