"""Start each system under test for the HTTP and WebSocket scenarios.

Every system answers the same paths on 127.0.0.1: ``/`` hello world,
``/echo`` WebSocket echo, ``/chat`` WebSocket group chat, ``/upload``
(POST; replies with the body's size). A ``Server`` names the process whose
memory the scenarios measure.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.redis_server import RedisServer

from . import envs
from .harness import BenchError, Proc, Processes, Skip, child_env, free_port, wait_for_port
from .results_model import (
    DAPHNE,
    DAPHNE_TELEX,
    TELEX_MEMORY,
    TELEX_REDIS,
    TELEX_REDIS_WORKERS,
    TWISTED_BARE,
    Context,
    Row,
)

PEERS_DIR = Path(__file__).resolve().parent / "peers"
TELEX_ROUTING = "benchmarks.telex_app:routing"
SYSTEMS = (TELEX_MEMORY, TELEX_REDIS, DAPHNE, TWISTED_BARE)
# Scenarios that also compare the interface servers alone (issue 9).
WITH_DAPHNE_TELEX = (TELEX_MEMORY, TELEX_REDIS, DAPHNE, DAPHNE_TELEX, TWISTED_BARE)
# http-hello also runs Telex's processes two by two, as one command each (docs/deployment.md).
HTTP_HELLO_SYSTEMS = (*WITH_DAPHNE_TELEX, TELEX_REDIS_WORKERS)
START_TIMEOUT = 30.0

# What each system's layer holds back, printed next to the fan-out figures.
CAPACITIES = {
    DAPHNE: "asgi_redis defaults: capacity 100 per channel, all of one Daphne's reply "
    "channels share one 100 (daphne.response.X!)",
    TELEX_MEMORY: "memory:// defaults: capacity 100, process-local capacity 10,000",
    TELEX_REDIS: "redis:// defaults: capacity 100, process-local capacity 10,000",
    TELEX_REDIS_WORKERS: "redis:// defaults: capacity 100, process-local capacity 10,000",
    DAPHNE_TELEX: "redis:// defaults: capacity 100, process-local capacity 10,000",
    TWISTED_BARE: "no layer",
}


@dataclass
class Server:
    system: str
    port: int
    proc: Proc  # the interface server: the process whose RSS is measured
    note: str = ""


def http_get_ok(port: int, timeout: float) -> None:
    """GET / until a 200 arrives, proving the whole chain (server, layer, worker) is up."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                return
            last = data[:80].decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)  # the worker may still be importing; nothing to wait on
    raise BenchError(f"no 200 from port {port} within {timeout:.0f} s (last: {last})")


def daphne_telex_mode(proc: Proc) -> str:
    """Which reply reader Daphne chose, from its own start-up log and the layer module's line."""
    log = proc.output()
    if "Using native Twisted mode" in log:
        reader = "twisted (receive_twisted)"
    elif "busy-loop synchronous mode" in log:
        reader = "sync (50 ms idle poll)"
    else:
        reader = "unknown"
    match = re.search(r"daphne_telex: reactor (\w+)", log)
    reactor = match.group(1) if match else "unknown"
    if reactor != "AsyncioSelectorReactor" and reader.startswith("twisted"):
        reader += ", a blocking receive in the reactor's thread pool"
    return f"reader: {reader}; reactor: {reactor}"


def _telex_started(proc: Proc, port: int) -> None:
    try:
        wait_for_port(port, proc, START_TIMEOUT)
    except BenchError:
        if not proc.alive():
            raise Skip(f"telex serve not available ({proc.tail(1)})") from None
        raise


@contextmanager
def running(system: str, ctx: Context, procs: Processes) -> Iterator[Server]:
    """Start ``system`` (and its Redis, worker) and stop it all when the block ends."""
    port = free_port()
    redis = None
    try:
        if system in (DAPHNE, DAPHNE_TELEX, TELEX_REDIS, TELEX_REDIS_WORKERS):
            redis = RedisServer()
            redis.start()
        if system == TWISTED_BARE:
            proc = procs.start(
                "twisted-bare", [sys.executable, str(PEERS_DIR / "twisted_bare.py"), "--port", str(port)]
            )
            wait_for_port(port, proc, START_TIMEOUT)
            server = Server(system, port, proc)
        elif system == DAPHNE:
            peer = ctx.info["peers"].get("daphne_stack", {})
            if "error" in peer or not peer:
                raise Skip("Daphne stack virtualenv unavailable")
            assert redis is not None
            python = str(envs.daphne_python(ctx))
            env = child_env(BENCH_REDIS_URL=redis.url, DJANGO_SETTINGS_MODULE="benchpeer.settings")
            env["PYTHONPATH"] = str(PEERS_DIR)
            procs.start("daphne-worker", [python, "-m", "django", "runworker"], env=env)
            daphne = str(Path(python).parent / "daphne")
            proc = procs.start(
                "daphne",
                [daphne, "-b", "127.0.0.1", "-p", str(port), "benchpeer.asgi:channel_layer"],
                env=env,
            )
            wait_for_port(port, proc, START_TIMEOUT)
            server = Server(
                system,
                port,
                proc,
                note=f"reader: {peer.get('daphne_reader')}, msgpack: {peer.get('msgpack_mode')}",
            )
        elif system == DAPHNE_TELEX:
            if "error" in ctx.info["peers"].get("daphne_telex", {"error": ""}):
                raise Skip("Daphne + Telex layer virtualenv unavailable")
            assert redis is not None
            procs.start(
                "daphne-telex-worker",
                [sys.executable, "-m", "telex", "worker", TELEX_ROUTING, "--layer", redis.url],
            )
            # Only the peers directory on the path, and as the working directory
            # (Daphne puts "." first on sys.path): Daphne imports the venv's Telex.
            env = child_env(BENCH_REDIS_URL=redis.url, PYTHONPATH=str(PEERS_DIR))
            daphne = str(envs.daphne_telex_python(ctx).parent / "daphne")
            proc = procs.start(
                "daphne-telex",
                [daphne, "-b", "127.0.0.1", "-p", str(port), "daphne_telex:channel_layer"],
                env=env,
                cwd=str(PEERS_DIR),
            )
            wait_for_port(port, proc, START_TIMEOUT)
            server = Server(system, port, proc, note=daphne_telex_mode(proc))
        elif system == TELEX_MEMORY:
            proc = procs.start(
                "telex-memory",
                [
                    sys.executable,
                    "-m",
                    "telex",
                    "serve",
                    "--routing",
                    TELEX_ROUTING,
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "memory://",
                ],
            )
            _telex_started(proc, port)
            server = Server(system, port, proc)
        elif system == TELEX_REDIS:
            assert redis is not None
            proc = procs.start(
                "telex-redis",
                [sys.executable, "-m", "telex", "serve", "-b", "127.0.0.1", "-p", str(port), redis.url],
            )
            _telex_started(proc, port)
            procs.start(
                "telex-worker", [sys.executable, "-m", "telex", "worker", TELEX_ROUTING, "--layer", redis.url]
            )
            server = Server(system, port, proc)
        elif system == TELEX_REDIS_WORKERS:
            assert redis is not None
            serve = ["serve", "-b", "127.0.0.1", "-p", str(port), redis.url, "--workers", "2"]
            proc = procs.start("telex-redis-workers", [sys.executable, "-m", "telex", *serve])
            _telex_started(proc, port)
            worker = ["worker", TELEX_ROUTING, "--layer", redis.url, "--processes", "2"]
            procs.start("telex-worker-processes", [sys.executable, "-m", "telex", *worker])
            # The memory figures are the supervisor's alone: its children are separate processes.
            server = Server(system, port, proc, note="2 server + 2 worker processes, one command each")
        else:
            raise ValueError(f"unknown system {system!r}")
        http_get_ok(port, START_TIMEOUT)
        yield server
    finally:
        for proc in reversed(procs.procs):
            proc.kill()
        procs.procs.clear()
        if redis is not None:
            redis.stop()


def each_system(
    ctx: Context,
    scenario: str,
    cases: list[str],
    measure: Callable[[Server, Processes], Iterable[Row]],
    systems: tuple[str, ...] = SYSTEMS,
    *,
    start: Callable[[str, Context, Processes], AbstractContextManager[Server]] | None = None,
) -> list[Row]:
    """Run ``measure`` against every system in turn (started by ``start``, default ``running``);
    a system that cannot run gets skipped rows for the cases it did not measure (a generator
    ``measure`` keeps the rows it yielded before failing)."""
    start = start or running
    rows: list[Row] = []
    with Processes(ctx.log_dir) as procs:
        for system in systems:
            mine: list[Row] = []
            try:
                with start(system, ctx, procs) as server:
                    mine.extend(measure(server, procs))
            except (Skip, BenchError) as exc:
                reason = str(exc) if isinstance(exc, Skip) else f"error: {exc}"
                done = {row.case for row in mine}
                mine.extend(Row(scenario, case, system, skipped=reason) for case in cases if case not in done)
            rows.extend(mine)
    return rows
