"""Deploys that drop nothing, measured: a chat restarted under load, Telex against uvicorn.

``python -m benchmarks.resume_restart [--sockets 10000] [--interval 30] [--seconds 90]``

The same Channels 4 chat (``tests/apps/asgi3_channels4.py``: Django, auth
middleware, a group per room of ``--room`` sockets) on a redis-server of its
own, two ways:

* ``telex``: ``telex serve`` and two ``telex worker --asgi`` processes on
  Telex's layer (``telex.channels4``). A restart starts a new worker, waits
  until it listens, then sends the oldest one SIGTERM — a rolling deploy.
* ``uvicorn``: one uvicorn process on channels_redis's ``RedisChannelLayer``,
  the usual Channels 4 deployment. A restart is SIGTERM, then a new process.

Client processes (``benchmarks.clients.chat_members``, ``--per-client``
sockets each) open every socket, then each socket sends every ``--interval``
seconds for ``--seconds``; restarts happen at ``--restarts``. Reported per
system: messages expected and received, sockets that failed to open, client-side closes, messages out of
order, delivery latency (p50/p99/max, sampled), sockets resumed (Telex's
server log), how long each restart took, and RSS. Not in CI: the 1,000-socket
case is ``tests/test_asgi3_resume_load.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.redis_server import RedisServer

from .envs import channels4_python, ensure_channels4_env
from .harness import (
    REPO_ROOT,
    BenchError,
    Proc,
    Processes,
    child_env,
    free_port,
    machine_info,
    make_log_dir,
    raise_nofile,
    rss_kb,
    wait_for_line,
    wait_for_port,
)

CHAT = "tests.apps.asgi3_channels4:application"
#: Seconds a stopping uvicorn gets before SIGKILL, as a service manager would give it.
STOP_TIMEOUT = 20.0
SYSTEMS = {
    "telex": "telex serve + 2 telex worker --asgi, Telex's Redis layer (telex.channels4)",
    "uvicorn": "uvicorn, channels_redis RedisChannelLayer",
}


class Deployment:
    """The chat's server side for one system: started, restarted, measured."""

    def __init__(self, system: str, procs: Processes, redis_url: str, args: argparse.Namespace) -> None:
        self.system, self.procs, self.args = system, procs, args
        self.redis_url = redis_url
        self.port = free_port()
        self.spawned = 0
        self.killed = 0  # application processes that did not stop within STOP_TIMEOUT
        self.app_procs: list[Proc] = []
        self.server: Proc | None = None
        if system == "telex":
            layer = f"{redis_url}?prefix=chat"
            command = [sys.executable, "-m", "telex", "serve", "-b", "127.0.0.1", "-p", str(self.port), layer]
            command += ["--websocket-resume-timeout", str(args.resume_timeout)]
            self.server = procs.start("telex-serve", command, env=child_env())
            wait_for_port(self.port, self.server, 60)
            self.app_procs = [self._spawn(), self._spawn()]
        else:
            self.app_procs = [self._spawn()]

    def _spawn(self) -> Proc:
        self.spawned += 1
        name = f"{self.system}-app-{self.spawned}"
        if self.system == "telex":
            env = child_env(CHAT_LAYER=self.redis_url, CHAT_PREFIX="chat")
            command = [
                sys.executable,
                "-m",
                "telex",
                "worker",
                "--asgi",
                CHAT,
                "--layer",
                f"{self.redis_url}?prefix=chat",
            ]
            proc = self.procs.start(name, command, env=env, cwd=str(REPO_ROOT))
            wait_for_line(proc, "listening on", 60)
            return proc
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            PYTHONUNBUFFERED="1",
            CHAT_LAYER=self.redis_url,
            CHAT_PREFIX="chat",
            CHAT_BACKEND="channels_redis.core.RedisChannelLayer",
        )
        python = str(channels4_python(self.args.cache_dir))
        command = [
            python,
            "-m",
            "uvicorn",
            CHAT,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            # As a deploy would: without it uvicorn waits for every open WebSocket to close first.
            "--timeout-graceful-shutdown",
            "10",
        ]
        proc = self.procs.start(name, command, env=env, cwd=str(REPO_ROOT))
        wait_for_port(self.port, proc, 60)
        return proc

    def restart(self) -> float:
        """Replace the oldest application process; the seconds it took."""
        started = time.monotonic()
        old = self.app_procs.pop(0)
        if self.system == "telex":
            self.app_procs.append(self._spawn())  # up before the old one stops
            old.popen.send_signal(signal.SIGTERM)
            old.wait(120)
        else:
            old.popen.send_signal(signal.SIGTERM)
            try:
                old.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                # What systemd or Docker does next; seen with 10,000 sockets open.
                self.killed += 1
                old.kill()
            self.app_procs.append(self._spawn())
        return time.monotonic() - started

    def rss_mib(self) -> dict[str, float]:
        found = {}
        for proc in ([self.server] if self.server else []) + self.app_procs:
            if proc.alive():
                found[proc.name] = round(rss_kb(proc.pid)[0] / 1024, 1)
        return found

    def resumed(self) -> int:
        return self.server.output().count("resumed WebSocket") if self.server else 0


def run_system(system: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    clients_needed = math.ceil(args.sockets / args.per_client)
    messages = int(args.seconds / args.interval)
    with RedisServer() as redis_server, Processes(log_dir / system) as procs:
        (log_dir / system).mkdir(exist_ok=True)
        deployment = Deployment(system, procs, redis_server.url, args)
        clients = []
        for index in range(clients_needed):
            count = min(args.per_client, args.sockets - index * args.per_client)
            url = f"ws://127.0.0.1:{deployment.port}/chat/c{index}r{{room}}/"
            command = [
                sys.executable, "-m", "benchmarks.clients.chat_members", url, str(count),
                "--room", str(args.room), "--interval", str(args.interval),
                "--messages", str(messages), "--drain", str(args.drain),
            ]  # fmt: skip
            clients.append(procs.start(f"{system}-client-{index}", command, env=child_env(), stdin=True))
        for client in clients:
            wait_for_line(client, "READY", args.open_timeout)
        for client in clients:
            assert client.popen.stdin is not None
            client.popen.stdin.write(b"go\n")
            client.popen.stdin.flush()
        began = time.monotonic()
        restarts, memory = [], {}
        for at in args.restarts:
            time.sleep(max(0.0, began + at - time.monotonic()))
            memory = memory or deployment.rss_mib()
            restarts.append(round(deployment.restart(), 1))
        tallies = []
        for client in clients:
            client.wait(args.seconds + args.drain + 120)
            lines = [line for line in client.output().splitlines() if line.startswith("{")]
            if not lines:
                raise BenchError(f"{client.name} printed no tally: {client.tail()}")
            tallies.append(json.loads(lines[-1]))
        return {
            "system": system,
            "description": SYSTEMS[system],
            "sockets": sum(t["sockets"] for t in tallies),
            "expected": sum(t["expected"] for t in tallies),
            "received": sum(t["received"] for t in tallies),
            "failed_opens": sum(t["failed_opens"] for t in tallies),
            "closes": sum(t["closes"] for t in tallies),
            "out_of_order": sum(t["out_of_order"] for t in tallies),
            "latency_p50_ms": max(t["latencies"]["p50_ms"] for t in tallies),
            "latency_p99_ms": max(t["latencies"]["p99_ms"] for t in tallies),
            "latency_max_ms": max(t["latencies"]["max_ms"] for t in tallies),
            "resumed": deployment.resumed(),
            "restart_seconds": restarts,
            "killed_after_sigterm": deployment.killed,
            "rss_mib": memory,
            "examples": [example for t in tallies for example in t["examples"]][:5],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated: {', '.join(SYSTEMS)}")
    parser.add_argument("--sockets", type=int, default=10000)
    parser.add_argument("--room", type=int, default=10)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between a socket's messages")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--restarts", default="30,60", help="seconds into the run of each restart")
    parser.add_argument(
        "--resume-timeout",
        type=float,
        default=120.0,
        help="telex serve --websocket-resume-timeout (resumed sockets go at the new worker's connect rate)",
    )
    parser.add_argument("--per-client", type=int, default=5000, help="most sockets per client process")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds a socket waits for the rest")
    parser.add_argument("--open-timeout", type=float, default=600.0)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "telex-bench")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    args.restarts = [float(at) for at in args.restarts.split(",") if at]
    systems = [name for name in args.systems.split(",") if name]
    unknown = [name for name in systems if name not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system {', '.join(unknown)} (known: {', '.join(SYSTEMS)})")
    raise_nofile()
    if "uvicorn" in systems:
        ensure_channels4_env(args.cache_dir)
    log_dir = make_log_dir()
    print(f"logs in {log_dir}", flush=True)
    results = []
    for system in systems:
        print(f"== {system}: {args.sockets} sockets, a message every {args.interval:g} s each", flush=True)
        result = run_system(system, args, log_dir)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.json:
        record = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "results": results,
        }
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
